"""Delayed governance by quorum message (governance.vy): rotation, threshold, allow-list, rate limits."""

import re

import boa
import pytest

from ddx_offchain.deployment.artifacts import REPO_ROOT
from ddx_offchain.protocol import operator_messages as om
from ddx_offchain.protocol.hashing import keccak256

from .conftest import DAY, ESCAPE_DELAY, GOVERNANCE_DELAY, Ledger, addresses, announce, events, execute, operator_keys

ROOT = keccak256(b"root")


def _new_keys(count=4, salt="rotated operator"):
    return operator_keys(count, salt=salt)


def _rotation(dx, keys, threshold=None, nonce=None):
    threshold = threshold or om.smallest_supermajority(len(keys))
    return om.RotateOperators(
        dx.operator_set.id, dx.exchange.governance_nonce() if nonce is None else nonce, tuple(addresses(keys)), threshold
    )


def test_rotation_is_announced_waits_for_the_delay_then_anyone_executes(dx):
    new_keys = _new_keys(7)
    message = _rotation(dx, new_keys)
    announce(dx, message)
    (announced,) = events(dx.exchange, "ChangeAnnounced")
    assert (announced.nonce, announced.action, announced.operator_set_id) == (0, om.Action.ROTATE_OPERATORS, 1)
    assert announced.executable_at == boa.env.timestamp + GOVERNANCE_DELAY
    assert dx.exchange.governance_nonce() == 1
    with boa.reverts("governance: delay not over"):
        execute(dx, message)
    boa.env.time_travel(seconds=GOVERNANCE_DELAY - 1)
    with boa.reverts("governance: delay not over"):
        execute(dx, message)
    boa.env.time_travel(seconds=1)
    execute(dx, message)
    (changed,) = events(dx.exchange, "OperatorSetChanged")
    assert (changed.operator_set_id, changed.threshold, list(changed.members)) == (2, 5, addresses(new_keys))
    assert dx.exchange.operator_set() == (2, 5, addresses(new_keys))
    with boa.reverts("governance: no such pending change"):  # executed once only
        execute(dx, message)


def test_stale_set_after_rotation(dx):
    old_set = dx.operator_set
    new_keys = _new_keys()
    message = _rotation(dx, new_keys)
    announce(dx, message)
    # until the rotation executes, the new set has no power and the old one keeps checkpointing
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    execute(dx, message)
    dx.refresh_set()
    checkpoint = dx.checkpoint_message(ROOT)
    # the old set, even presenting itself as it was, is refused
    old_message = om.Checkpoint(old_set.id, checkpoint.epoch, ROOT, checkpoint.l1_block_number, checkpoint.l1_block_hash)
    with boa.reverts("quorum: not the current operator set"):
        dx.submit(old_message, quorum=om.sign_quorum(old_message, dx.domain, old_set, dx.keys[:3]), operator_set=old_set)
    # old keys signing for the new set id are not its members
    stale = om.assemble_quorum(
        dx.operator_set, {a: om.sign(checkpoint, dx.domain, k) for a, k in zip(dx.operator_set.members, dx.keys[:3])}
    )
    with boa.reverts("quorum: signature is not from its operator"):
        dx.submit(checkpoint, quorum=stale)
    dx.keys = new_keys
    dx.submit(checkpoint)
    assert dx.exchange.latest_epoch() == checkpoint.epoch


def test_new_set_has_no_power_before_execution(dx):
    new_keys = _new_keys()
    announce(dx, _rotation(dx, new_keys))
    pending_set = om.OperatorSet(2, 3, tuple(addresses(new_keys)))
    message = om.Checkpoint(2, 1, ROOT, *dx.anchor())
    with boa.reverts("quorum: not the current operator set"):
        dx.submit(message, quorum=om.sign_quorum(message, dx.domain, pending_set, new_keys[:3]), operator_set=pending_set)


def test_signatures_of_a_replaced_set_cannot_announce_or_cancel(dx):
    old_set = dx.operator_set
    rotation = _rotation(dx, _new_keys())
    announce(dx, rotation)
    pending = om.SetCollateral(1, 1, "0x" + "ab" * 20, False)
    announce(dx, pending)
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    execute(dx, rotation)
    with boa.reverts("quorum: not the current operator set"):
        announce(dx, om.SetCollateral(1, 2, "0x" + "ab" * 20, True), operator_set=old_set)
    with boa.reverts("quorum: not the current operator set"):
        announce(dx, om.CancelChange(1, 2, 1), operator_set=old_set)
    dx.refresh_set()
    announce(dx, om.CancelChange(2, 2, 1), keys=_new_keys()[:3])
    with boa.reverts("governance: no such pending change"):
        execute(dx, pending)


@pytest.mark.parametrize("threshold,reason", [
    (0, "quorum: threshold is zero"),
    (5, "quorum: threshold above set size"),
    (2, "quorum: threshold not above 2/3 of the set"),
])
def test_bad_thresholds_at_rotation(dx, threshold, reason):
    message = om.RotateOperators(1, 0, tuple(addresses(_new_keys())), threshold)
    with boa.reverts(reason):
        announce(dx, message)


@pytest.mark.parametrize("members,reason", [
    ((), "quorum: empty operator set"),
    (("0x0000000000000000000000000000000000000000",), "quorum: zero address operator"),
])
def test_bad_sets_at_rotation(dx, members, reason):
    with boa.reverts(reason):
        announce(dx, om.RotateOperators(1, 0, members, 1))


def test_duplicate_and_unsorted_members_at_rotation(dx):
    members = addresses(_new_keys())
    with boa.reverts("quorum: duplicate operator"):
        announce(dx, om.RotateOperators(1, 0, (members[0], members[0], members[1], members[2]), 3))
    with boa.reverts("quorum: operators not ascending"):
        announce(dx, om.RotateOperators(1, 0, (members[1], members[0], members[2], members[3]), 3))


def test_threshold_change(dx):
    message = om.SetThreshold(1, 0, 4)
    announce(dx, message)
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    execute(dx, message)
    assert dx.exchange.operator_set() == (2, 4, list(dx.operator_set.members))
    dx.refresh_set()
    checkpoint = dx.checkpoint_message(ROOT)
    three = om.QuorumSignatures(0b0111, tuple(om.sign(checkpoint, dx.domain, k) for k in dx.keys[:3]))
    with boa.reverts("quorum: too few signatures"):
        dx.submit(checkpoint, quorum=three)
    dx.submit(dx.checkpoint_message(ROOT), keys=dx.keys)
    with boa.reverts("quorum: threshold not above 2/3 of the set"):
        announce(dx, om.SetThreshold(2, 1, 2))


def test_collateral_allow_list_change(dx):
    from .conftest import deploy_token

    token = deploy_token("NEW")
    trader = boa.env.generate_address()
    token.mint(trader, 10)
    token.approve(dx.exchange.address, 10, sender=trader)
    limit = om.SetRateLimit(1, 0, token.address, 1_000, 3_600)  # a token needs a rate limit before it is allowed
    message = om.SetCollateral(1, 1, token.address, True)
    announce(dx, limit)
    announce(dx, message)
    (event,) = events(dx.exchange, "CollateralAnnounced")
    assert (event.token, event.allowed) == (token.address, True)
    with boa.reverts("custody: token not allowed"):
        dx.exchange.deposit(token.address, 10, sender=trader)
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    execute(dx, limit)
    execute(dx, message)
    dx.exchange.deposit(token.address, 10, sender=trader)
    # delisting stops deposits only; claims keep working
    delist = om.SetCollateral(1, 2, dx.token.address, False)
    announce(dx, delist)
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    execute(dx, delist)
    assert not dx.exchange.collateral_allowed(dx.token.address)
    dx.fund(trader, 5)
    with boa.reverts("custody: token not allowed"):
        dx.exchange.deposit(dx.token.address, 5, sender=trader)


def test_rate_limit_change_waits_and_never_grants_an_extra_burst(dx):
    from .conftest import make_deployment

    with boa.env.anchor():
        dx = make_deployment(capacity=1_000, period=3_600)
        trader = boa.env.generate_address()
        dx.deposit(trader, 5_000)
        ledger = Ledger()
        ledger.set_withdrawable(trader, dx.token.address, 5_000)
        epoch = dx.checkpoint(ledger.root())
        siblings = ledger.withdrawal_siblings(trader, dx.token.address)
        message = om.SetRateLimit(1, 0, dx.token.address, 4_000, 3_600)
        announce(dx, message)
        (event,) = events(dx.exchange, "RateLimitAnnounced")
        assert (event.capacity, event.period) == (4_000, 3_600)
        assert dx.exchange.rate_limit(dx.token.address) == (1_000, 3_600)  # not yet
        assert dx.exchange.claim(trader, dx.token.address, 5_000, epoch, siblings) == 1_000
        boa.env.time_travel(seconds=GOVERNANCE_DELAY)
        # the bucket refilled to its old capacity; raising the cap keeps that level, it does not refill to 4,000
        execute(dx, message)
        assert dx.exchange.rate_limit(dx.token.address) == (4_000, 3_600)
        assert dx.exchange.available_to_pay(dx.token.address) == 1_000
        boa.env.time_travel(seconds=3_600)
        assert dx.exchange.available_to_pay(dx.token.address) == 4_000


@pytest.mark.parametrize("capacity,period,reason", [
    (0, 10, "governance: rate capacity out of range"),
    (2**128, 10, "governance: rate capacity out of range"),
    (10, 0, "governance: rate period out of range"),
    (10, 365 * 86400 + 1, "governance: rate period out of range"),
])
def test_bad_rate_limits_are_refused_at_announcement(dx, capacity, period, reason):
    with boa.reverts(reason):
        announce(dx, om.SetRateLimit(1, 0, dx.token.address, capacity, period))


def test_nonce_must_be_the_next_one_and_announcements_do_not_replay(dx):
    message = om.SetCollateral(1, 0, "0x" + "cd" * 20, True)
    announce(dx, message)
    with boa.reverts("governance: wrong nonce"):
        announce(dx, message)  # the same signed message again
    with boa.reverts("governance: wrong nonce"):
        announce(dx, om.SetCollateral(1, 5, "0x" + "cd" * 20, True))
    announce(dx, om.SetCollateral(1, 1, "0x" + "cd" * 20, False))
    assert dx.exchange.governance_nonce() == 2


def test_execution_must_match_the_announced_arguments(dx):
    message = om.SetCollateral(1, 0, dx.token.address, True)
    announce(dx, message)
    boa.env.time_travel(seconds=GOVERNANCE_DELAY)
    with boa.reverts("governance: arguments differ from the announced change"):
        execute(dx, om.SetCollateral(1, 0, dx.token.address, False))
    with boa.reverts("governance: pending change is of another kind"):
        execute(dx, om.SetThreshold(1, 0, 4))
    execute(dx, message)


def test_governance_signatures_need_a_quorum_and_the_right_domain(dx):
    message = om.SetThreshold(1, 0, 4)
    two = om.QuorumSignatures(0b0011, tuple(om.sign(message, dx.domain, k) for k in dx.keys[:2]))
    with boa.reverts("quorum: too few signatures"):
        dx.exchange.announce_threshold(0, 4, dx.operator_set.as_abi(), *two.as_abi())
    forked = om.Domain(dx.domain.chain_id + 1, dx.exchange.address)
    quorum = om.sign_quorum(message, forked, dx.operator_set, dx.keys[:3])
    with boa.reverts("quorum: signature is not from its operator"):
        dx.exchange.announce_threshold(0, 4, dx.operator_set.as_abi(), *quorum.as_abi())
    # a checkpoint signature cannot be replayed as a governance message (different type, different action)
    checkpoint = dx.checkpoint_message(ROOT)
    quorum = om.sign_quorum(checkpoint, dx.domain, dx.operator_set, dx.keys[:3])
    with boa.reverts("quorum: signature is not from its operator"):
        dx.exchange.announce_threshold(0, 4, dx.operator_set.as_abi(), *quorum.as_abi())


def test_no_owner_key_and_no_way_to_change_the_delays(dx):
    abi = dx.exchange.abi
    mutating = sorted(f["name"] for f in abi if f.get("type") == "function" and f["stateMutability"] not in ("view", "pure"))
    assert mutating == sorted([
        "submit_checkpoint", "submit_checkpoint_with_leaves", "freeze", "deposit", "deposit_to", "claim", "escape",
        "force_request",
        "announce_rotation", "execute_rotation", "announce_threshold", "execute_threshold",
        "announce_collateral", "execute_collateral", "announce_rate_limit", "execute_rate_limit", "cancel_change",
    ])
    # every announce_* is quorum-checked (tests above); every execute_* only applies what a quorum announced
    assert not any("owner" in f.get("name", "") for f in abi)


def test_type_strings_in_vyper_match_the_python_twin():
    sources = (REPO_ROOT / "contracts/modules/governance.vy").read_text() + (REPO_ROOT / "contracts/modules/checkpoints.vy").read_text()
    found = {primary: full for full, primary in re.findall(r'"((\w+)\([^"]*\))"', sources)}
    for primary in om.MESSAGE_FIELDS:
        assert found[primary] == om.type_string(primary)


def test_action_tags_in_vyper_match_the_python_twin():
    sources = (REPO_ROOT / "contracts/modules/governance.vy").read_text() + (REPO_ROOT / "contracts/modules/checkpoints.vy").read_text()
    tags = {name: int(value) for name, value in re.findall(r"ACTION_(\w+): constant\(uint8\) = (\d+)", sources)}
    assert tags == {a.name: a.value for a in om.Action}


@pytest.mark.parametrize("kind", ["rotation", "threshold", "collateral", "rate_limit"])
def test_on_chain_struct_hash_equals_eth_accounts(dx, kind):
    """The struct hash the contract derives and stores for an announced change is eth-account's hashStruct of the
    Python message: the two sides encode every governance type identically."""
    from eth_account._utils.encode_typed_data.encoding_and_hashing import hash_struct

    message = {
        "rotation": lambda: _rotation(dx, _new_keys(7)),
        "threshold": lambda: om.SetThreshold(1, 0, 4),
        "collateral": lambda: om.SetCollateral(1, 0, dx.token.address, False),
        "rate_limit": lambda: om.SetRateLimit(1, 0, dx.token.address, 12345, 600),
    }[kind]()
    announce(dx, message)
    typed = om.typed_data(message, dx.domain)
    expected = hash_struct(typed["primaryType"], typed["types"], typed["message"])
    action, struct_hash, set_id, _ = dx.exchange.pending_change(0)
    assert (action, struct_hash, set_id) == (int(message.message()["action"]), expected, 1)


def test_a_change_must_wait_three_forced_deadlines_at_deployment():
    """Security review finding 8: a change that restricts exits must not execute before a user who saw it announced
    can get out. Forcing an exit takes at most two forced deadlines to be honoured or to make the exchange
    freezable (and freezing stops every change); the third is the user's time to act."""
    from .conftest import deploy_exchange, operator_keys

    keys = operator_keys(4)
    with boa.reverts("exchange: governance delay shorter than the exit window"):
        deploy_exchange(keys, forced_deadline=3600, governance_delay=3 * 3600 - 1)
    deploy_exchange(keys, forced_deadline=3600, governance_delay=3 * 3600)


def test_no_change_executes_once_frozen(dx):
    """Finding 8, the other half: after a freeze the exits are fixed; a lowered rate limit or a delisting announced
    before cannot execute and throttle the escapes."""
    message = om.SetRateLimit(dx.operator_set.id, dx.exchange.governance_nonce(), dx.token.address, 1, DAY)
    announce(dx, message)
    boa.env.time_travel(seconds=ESCAPE_DELAY)
    dx.exchange.freeze()
    with boa.reverts("governance: frozen"):
        dx.exchange.execute_rate_limit(message.nonce, dx.token.address, 1, DAY)
    assert dx.exchange.rate_limit(dx.token.address)[0] != 1
