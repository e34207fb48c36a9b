"""Regression tests for the findings of the contract security review (docs/contracts.md, "Security review").
Each test fails on the contracts as they were before the finding's fix."""

import boa

from ddx_offchain.protocol import operator_messages as om

from .conftest import GOVERNANCE_DELAY, announce, deploy_token, execute


def test_a_token_cannot_be_allow_listed_before_it_has_a_rate_limit(dx):
    """Finding: allow-listing a token without a rate limit accepted deposits that no claim or escape could ever pay
    (an unset limit pays nothing), so the funds were stuck until the quorum set a limit, forever if it never did."""
    token = deploy_token("NOLIMIT")
    allow = om.SetCollateral(1, 0, token.address, True)
    announce(dx, allow)
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    with boa.reverts("custody: token has no rate limit"):
        execute(dx, allow)
    assert not dx.exchange.collateral_allowed(token.address)
    # with a limit first, the same kind of change goes through
    limit = om.SetRateLimit(1, 1, token.address, 1_000, 3_600)
    allow_again = om.SetCollateral(1, 2, token.address, True)
    announce(dx, limit)
    announce(dx, allow_again)
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    execute(dx, limit)
    execute(dx, allow_again)
    assert dx.exchange.collateral_allowed(token.address)
