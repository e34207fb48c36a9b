"""Regression tests for the findings of the contract security review (docs/contracts.md, "Security review").
Each test fails on the contracts as they were before the finding's fix."""

import boa
import pytest

from ddx_offchain.protocol import operator_messages as om

from .conftest import GOVERNANCE_DELAY, addresses, announce, deploy_token, events, execute, operator_keys


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


def test_an_older_change_cannot_undo_a_newer_one_of_the_same_setting(dx):
    """Finding: every pending change stayed executable in any order, so after the quorum announced "allow X" and
    later "delist X" (say, X turned on a transfer fee), anyone could execute the delisting first and the stale
    allowance after it, leaving X allowed against the quorum's last decision. The same held for rate limits."""
    token = dx.token.address
    delist_first = om.SetCollateral(1, 0, token, False)
    relist = om.SetCollateral(1, 1, token, True)
    delist_last = om.SetCollateral(1, 2, token, False)
    for message in (delist_first, relist, delist_last):
        announce(dx, message)
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    execute(dx, delist_last)
    for stale in (delist_first, relist):
        with boa.reverts("governance: a newer change of this setting was announced"):
            execute(dx, stale)
    assert not dx.exchange.collateral_allowed(token)

    lower = om.SetRateLimit(1, 3, token, 1_000, 3_600)
    other_token = om.SetRateLimit(1, 4, "0x" + "ab" * 20, 5, 60)
    higher = om.SetRateLimit(1, 5, token, 9_000, 3_600)
    for message in (lower, other_token, higher):
        announce(dx, message)
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    execute(dx, higher)
    with boa.reverts("governance: a newer change of this setting was announced"):
        execute(dx, lower)
    assert dx.exchange.rate_limit(token) == (9_000, 3_600)
    # another setting's older change is independent and still executes
    execute(dx, other_token)
    assert dx.exchange.rate_limit("0x" + "ab" * 20) == (5, 60)


def _rotation(dx, nonce, keys, threshold=3):
    return om.RotateOperators(dx.operator_set.id, nonce, tuple(addresses(keys)), threshold)


def test_only_the_newest_announced_change_of_the_operator_set_executes(dx):
    """Second review, finding 1: all changes waited the same delay and anyone could execute, so the older of two
    announced operator-set changes always ran first and the newer one then reverted as signed by a replaced set.
    An older SetThreshold(4) beat a newer SetThreshold(3); an older rotation beat a newer threshold change.
    Now announcing a change voids the older pending ones of its setting at once, whoever executes first."""
    older = om.SetThreshold(1, 0, 4)
    newer = om.SetThreshold(1, 1, 3)
    announce(dx, older)
    announce(dx, newer)
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    with boa.reverts("governance: a newer change of this setting was announced"):
        execute(dx, older)
    execute(dx, newer)
    assert dx.exchange.operator_set()[:2] == (2, 3)
    dx.refresh_set()
    # a rotation and a threshold change are one setting: the set
    rotation = _rotation(dx, 2, operator_keys(4, salt="finding 1 rotation"))
    threshold = om.SetThreshold(dx.operator_set.id, 3, 4)
    announce(dx, rotation)
    announce(dx, threshold)
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    with boa.reverts("governance: a newer change of this setting was announced"):
        execute(dx, rotation)
    execute(dx, threshold)
    assert dx.exchange.operator_set() == (3, 4, list(dx.operator_set.members))


def test_a_pending_change_of_another_setting_survives_a_rotation(dx):
    """Finding 1, its last part: any set change voided every pending allow-list or rate-limit change (they were
    'signed by a replaced operator set'). Settings are now independent: a quorum's decision about a token stands
    across a rotation (and the new quorum can cancel it if it disagrees)."""
    limit = om.SetRateLimit(1, 0, dx.token.address, 7_000, 3_600)
    rotation = _rotation(dx, 1, operator_keys(4, salt="finding 1 survivor"))
    announce(dx, limit)
    announce(dx, rotation)
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    execute(dx, rotation)
    execute(dx, limit)
    assert dx.exchange.rate_limit(dx.token.address) == (7_000, 3_600)


def test_a_quorum_signed_cancel_voids_a_pending_change(dx):
    """Finding 1: a quorum that announced a rotation and then learnt one of the new keys is compromised could not
    stop it. A CancelChange signed by a quorum of the current set voids it at once; the older changes of its
    setting stay void (the quorum's last word was the cancelled change)."""
    compromised = _rotation(dx, 0, operator_keys(4, salt="finding 1 compromised"))
    announce(dx, compromised)
    cancel = om.CancelChange(1, 1, target=0)
    two = om.QuorumSignatures(0b0011, tuple(om.sign(cancel, dx.domain, k) for k in dx.keys[:2]))
    with boa.reverts("quorum: too few signatures"):
        dx.exchange.cancel_change(1, 0, dx.operator_set.as_abi(), *two.as_abi())
    announce(dx, cancel)
    (cancelled,) = events(dx.exchange, "ChangeCancelled")
    assert (cancelled.nonce, cancelled.target) == (1, 0)
    assert dx.exchange.pending_change(0) == (0, b"\0" * 32, 0, 0)
    assert dx.exchange.governance_nonce() == 2
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    with boa.reverts("governance: no such pending change"):
        execute(dx, compromised)
    assert dx.exchange.operator_set_id() == 1
    # the cancel took a nonce, so its signatures cannot be replayed; and a cancel cannot target nothing
    with boa.reverts("governance: no such pending change"):
        announce(dx, cancel)
    with boa.reverts("governance: no such pending change"):
        announce(dx, om.CancelChange(1, 2, target=0))
    announce(dx, om.SetCollateral(1, 2, dx.token.address, True))
    with boa.reverts("governance: wrong nonce"):
        announce(dx, om.CancelChange(1, 1, target=2))
    # the setting's older pending change stays void after its newer one is cancelled
    older = om.SetCollateral(1, 3, dx.token.address, False)
    newer = om.SetCollateral(1, 4, dx.token.address, True)
    announce(dx, older)
    announce(dx, newer)
    announce(dx, om.CancelChange(1, 5, target=4))
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    with boa.reverts("governance: a newer change of this setting was announced"):
        execute(dx, older)
    assert dx.exchange.collateral_allowed(dx.token.address)


def test_a_deposit_that_arrives_short_is_refused(dx):
    """Finding: deposits credited the amount asked for, so a fee-on-transfer token (or one, like USDT, that can
    switch a fee on after it was allow-listed) credited tokens the contract never received and the last claimants
    or escapers of the token found it short. The deposit must now bring exactly `amount`."""
    from .conftest import HARNESS, deploy_exchange, factory

    token = factory(HARNESS / "FeeOnTransferToken.vy").deploy()
    exchange = deploy_exchange(dx.keys, 3, tokens=[token])
    trader = boa.env.generate_address()
    token.mint(trader, 1_000)
    token.approve(exchange.address, 1_000, sender=trader)
    exchange.deposit(token.address, 100, sender=trader)  # no fee yet: accepted
    token.set_fee_bps(100)  # 1%: 5 of the 500 stay with the token
    with boa.reverts("custody: deposit arrived short"):
        exchange.deposit(token.address, 500, sender=trader)
    assert exchange.deposited(trader, token.address) == 100
    assert exchange.deposit_count() == 1
    assert token.balanceOf(exchange.address) == 100


def test_an_escape_delay_that_would_disable_the_escape_hatch_is_refused_at_deployment(dx):
    """Finding (low): the escape delay was unbounded, and `last_checkpoint_at + escape_delay` overflowing made
    `freeze` revert forever: a deployment could ship without a working escape hatch."""
    from .conftest import deploy_exchange

    for delay in (2**256 - 1, 365 * 86400 + 1):
        with boa.reverts("checkpoints: escape delay out of range"):
            deploy_exchange(dx.keys, 3, tokens=[dx.token], escape_delay=delay)
    deploy_exchange(dx.keys, 3, tokens=[dx.token], escape_delay=365 * 86400)
    # the deploy script refuses the same configuration before sending anything
    from ddx_offchain.deployment.deploy import DeployConfig, DeployConfigError

    from .conftest import addresses

    config = DeployConfig(tuple(addresses(dx.keys)), 3, (), escape_delay=365 * 86400 + 1)
    with pytest.raises(DeployConfigError, match="escape_delay"):
        config.validated()


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_python_recovery_refuses_every_signature_the_contract_refuses(dx):
    """Finding: `operator_messages.recover` (what a node uses to vet a peer's signature before counting it)
    accepted v = 0/1 and high-s twins that the contract refuses, so one operator could hand its peers such a
    signature, have it counted, and make every relayed checkpoint revert: a single key stalling checkpoints until
    the escape hatch opens."""
    message = dx.checkpoint_message(b"\x11" * 32)
    good = om.sign(message, dx.domain, dx.keys[0])
    r, s, v = good[:32], int.from_bytes(good[32:64], "big"), good[64]
    low_v = r + good[32:64] + bytes([v - 27])
    high_s = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    assert om.recover(message, dx.domain, good) == dx.operator_set.members[0]
    for bad, reason in ((low_v, "v"), (high_s, "high s")):
        with pytest.raises(om.ProtocolError, match=reason):
            om.recover(message, dx.domain, bad)
        # and the contract refuses the same bytes, so a relay including them would revert
        others = [om.sign(message, dx.domain, k) for k in dx.keys[1:3]]
        quorum = om.QuorumSignatures(0b0111, (bad, *others))
        with boa.reverts():
            dx.submit(message, quorum=quorum)


def test_a_token_whose_transfers_return_nothing_deposits_and_pays(dx):
    """Checked (no finding): tokens that return nothing, like USDT, work for deposits and claims."""
    from .conftest import HARNESS, Ledger, deploy_exchange, factory

    token = factory(HARNESS / "NoReturnToken.vy").deploy()
    dx.exchange = deploy_exchange(dx.keys, 3, tokens=[token])
    dx.refresh_set()
    trader = boa.env.generate_address()
    token.mint(trader, 100)
    dx.exchange.deposit(token.address, 100, sender=trader)
    ledger = Ledger()
    ledger.set_withdrawable(trader, token.address, 60)
    epoch = dx.checkpoint(ledger.root())
    assert dx.exchange.claim(trader, token.address, 60, epoch, ledger.withdrawal_siblings(trader, token.address)) == 60
    assert (token.balanceOf(trader), token.balanceOf(dx.exchange.address)) == (60, 40)
