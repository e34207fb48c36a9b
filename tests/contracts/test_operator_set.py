"""Operator-set rules at deployment (quorum.vy `_check_set`), the stored commitment, and the Python twin."""

import boa
import pytest
from eth_account import Account

from ddx_offchain.protocol import operator_messages as om
from ddx_offchain.protocol.errors import ProtocolError

from .conftest import EXCHANGE, addresses, deploy_exchange, deploy_token, factory, operator_keys

KEYS = operator_keys(4)
MEMBERS = addresses(KEYS)


def _deploy(members, threshold, supermajority=True):
    return factory(EXCHANGE).deploy(
        members,
        threshold,
        supermajority,
        [],
        7 * 86400,
        43200,
        2 * 86400,
    )


BAD_SETS = [
    ([], 1, "quorum: empty operator set"),
    (MEMBERS, 0, "quorum: threshold is zero"),
    (MEMBERS, 5, "quorum: threshold above set size"),
    (MEMBERS, 2, "quorum: threshold not above 2/3 of the set"),  # 2 of 4 is not > 8/3
    (MEMBERS[:3], 2, "quorum: threshold not above 2/3 of the set"),  # 2 of 3 is exactly 2/3
    (["0x0000000000000000000000000000000000000000"] + MEMBERS[1:], 3, "quorum: zero address operator"),
    ([MEMBERS[0], MEMBERS[0], MEMBERS[1], MEMBERS[2]], 3, "quorum: duplicate operator"),
    ([MEMBERS[1], MEMBERS[0], MEMBERS[2], MEMBERS[3]], 3, "quorum: operators not ascending"),
    ([MEMBERS[0], MEMBERS[1], MEMBERS[2], MEMBERS[0]], 3, "quorum: operators not ascending"),
]


@pytest.mark.parametrize("members,threshold,reason", BAD_SETS)
def test_bad_sets_are_refused_at_deployment(members, threshold, reason):
    with boa.reverts(reason):
        _deploy(members, threshold)


@pytest.mark.parametrize("members,threshold,reason", BAD_SETS)
def test_python_twin_refuses_the_same_sets(members, threshold, reason):
    with pytest.raises(ProtocolError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        om.check_operator_set(members, threshold)


def test_two_thirds_rule_can_be_waived_at_deployment_only_explicitly():
    exchange = _deploy(MEMBERS, 2, supermajority=False)
    assert exchange.threshold() == 2
    assert exchange.supermajority_required() is False
    with boa.reverts("quorum: threshold above set size"):
        _deploy(MEMBERS, 5, supermajority=False)


@pytest.mark.parametrize("count,threshold", [(1, 1), (3, 3), (4, 3), (7, 5), (10, 7), (16, 11), (32, 22)])
def test_smallest_supermajorities_are_accepted(count, threshold):
    keys = operator_keys(count)
    assert om.smallest_supermajority(count) == threshold
    exchange = deploy_exchange(keys, threshold)
    assert exchange.operators() == addresses(keys)


def test_more_than_32_operators_do_not_fit():
    keys = operator_keys(33)
    with boa.reverts():
        deploy_exchange(keys, 23)


def test_commitment_and_set_view_match_python():
    exchange = _deploy(MEMBERS, 3)
    on_chain = exchange.operator_set()
    assert on_chain == (1, 3, MEMBERS)
    expected = om.OperatorSet(1, 3, tuple(MEMBERS))
    assert exchange.operator_set_commitment() == expected.commitment()
    assert exchange.operator_set_id() == 1


def test_deploy_announces_the_set():
    exchange = _deploy(MEMBERS, 3)
    logs = [e for e in exchange.get_logs() if type(e).__name__ == "OperatorSetChanged"] or exchange.get_logs()
    assert any(getattr(e, "operator_set_id", None) == 1 for e in logs)


def test_sort_operators_orders_numerically():
    shuffled = list(reversed(MEMBERS))
    assert om.sort_operators(shuffled) == tuple(MEMBERS)
    assert Account.from_key(KEYS[0]).address == MEMBERS[0]


def test_initial_collateral_gets_allow_list_and_rate_limit():
    token = deploy_token()
    exchange = deploy_exchange(KEYS, 3, tokens=[token], capacity=500, period=3600)
    assert exchange.collateral_allowed(token.address)
    assert exchange.rate_limit(token.address) == (500, 3600)
    assert exchange.available_to_pay(token.address) == 500


@pytest.mark.parametrize("capacity,period,reason", [
    (0, 3600, "custody: rate capacity out of range"),
    (2**128, 3600, "custody: rate capacity out of range"),
    (10, 0, "custody: rate period out of range"),
    (10, 366 * 86400, "custody: rate period out of range"),
])
def test_bad_initial_rate_limits_are_refused(capacity, period, reason):
    token = deploy_token()
    with boa.reverts(reason):
        deploy_exchange(KEYS, 3, tokens=[token], capacity=capacity, period=period)


def test_bad_delays_are_refused():
    with boa.reverts("checkpoints: escape delay out of range"):
        deploy_exchange(KEYS, 3, escape_delay=0)
    with boa.reverts("governance: delay out of range"):
        deploy_exchange(KEYS, 3, governance_delay=0)
