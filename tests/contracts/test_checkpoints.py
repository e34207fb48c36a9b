"""Checkpoint submission: its own rules and every attack on the quorum signatures."""

import boa
import pytest
from eth_account import Account

from ddx_offchain.protocol import operator_messages as om
from ddx_offchain.protocol.hashing import keccak256

from .conftest import deploy_exchange, events, make_deployment, operator_keys

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ROOT = keccak256(b"state root")


def _signed(dx, message, keys=None):
    keys = dx.keys[: dx.operator_set.threshold] if keys is None else keys
    return {Account.from_key(k).address: om.sign(message, dx.domain, k) for k in keys}


def _submit_raw(dx, message, bitmap, signatures: bytes, operator_set=None):
    operator_set = operator_set or dx.operator_set
    dx.exchange.submit_checkpoint(
        message.epoch,
        message.state_root,
        message.l1_block_number,
        message.l1_block_hash,
        message.inbox.as_abi(),
        operator_set.as_abi(),
        bitmap,
        signatures,
    )


def test_quorum_checkpoint_is_recorded_with_event(dx):
    message = dx.checkpoint_message(ROOT)
    relayer = boa.env.generate_address()  # anyone may relay
    dx.submit(message, sender=relayer)
    (event,) = events(dx.exchange, "CheckpointRecorded")
    assert (event.epoch, event.state_root, event.l1_block_number, event.l1_block_hash, event.operator_set_id) == (
        1, ROOT, message.l1_block_number, message.l1_block_hash, 1,
    )
    assert dx.exchange.checkpoint_root(1) == ROOT
    epoch, root, recorded_at = dx.exchange.latest_checkpoint()
    assert (epoch, root, recorded_at) == (1, ROOT, boa.env.timestamp)
    assert dx.exchange.latest_epoch() == 1


def test_every_member_may_sign_not_only_the_first(dx):
    message = dx.checkpoint_message(ROOT)
    dx.submit(message, keys=dx.keys[1:])  # members 1, 2, 3
    assert dx.exchange.checkpoint_root(1) == ROOT


def test_all_members_signing_is_fine(dx):
    dx.submit(dx.checkpoint_message(ROOT), keys=dx.keys)
    assert dx.exchange.latest_epoch() == 1


def test_zero_root_is_refused(dx):
    with boa.reverts("checkpoints: zero state root"):
        dx.submit(dx.checkpoint_message(b"\0" * 32))


def test_epoch_must_increase_but_may_skip(dx):
    dx.submit(dx.checkpoint_message(ROOT, epoch=5))
    with boa.reverts("checkpoints: epoch not after the latest"):
        dx.submit(dx.checkpoint_message(keccak256(b"other"), epoch=5))
    with boa.reverts("checkpoints: epoch not after the latest"):
        dx.submit(dx.checkpoint_message(keccak256(b"other"), epoch=4))
    dx.submit(dx.checkpoint_message(keccak256(b"other"), epoch=9))
    assert dx.exchange.latest_epoch() == 9
    assert dx.exchange.checkpoint_root(5) == ROOT  # older checkpoints stay recorded


def test_epoch_zero_is_never_valid(dx):
    with boa.reverts("checkpoints: epoch not after the latest"):
        dx.submit(dx.checkpoint_message(ROOT, epoch=0))


def test_epoch_above_2_128_is_refused(dx):
    with boa.reverts("checkpoints: epoch too large"):
        dx.submit(dx.checkpoint_message(ROOT, epoch=2**128))


def test_anchored_block_must_be_in_the_past(dx):
    current = boa.env.evm.patch.block_number
    for number in (current, current + 1):
        message = om.Checkpoint(1, 1, ROOT, number, keccak256(b"future"))
        with boa.reverts("checkpoints: anchored block not in the past"):
            dx.submit(message)


def test_anchored_block_hash_must_match_within_256_blocks(dx):
    number = boa.env.evm.patch.block_number - 10
    good = dx.checkpoint_message(ROOT)
    wrong = om.Checkpoint(1, 1, ROOT, number, keccak256(b"another fork's block"))
    with boa.reverts("checkpoints: anchored block hash mismatch"):
        dx.submit(wrong)
    oldest_checked = boa.env.evm.patch.block_number - 256
    with boa.reverts("checkpoints: anchored block hash mismatch"):
        dx.submit(om.Checkpoint(1, 1, ROOT, oldest_checked, keccak256(b"wrong")))
    dx.submit(good)


def test_anchored_block_older_than_256_is_not_checkable_and_accepted(dx):
    number = boa.env.evm.patch.block_number - 257
    dx.submit(om.Checkpoint(1, 1, ROOT, number, keccak256(b"unverifiable")))
    assert dx.exchange.latest_epoch() == 1


# ---- attacks on the quorum --------------------------------------------------------------------------------


def test_too_few_signatures(dx):
    message = dx.checkpoint_message(ROOT)
    quorum = om.assemble_quorum(dx.operator_set, _signed(dx, message, dx.keys[:3]))
    # drop the last signer: 2 of 4 is below threshold 3
    bitmap = 0b0011
    with boa.reverts("quorum: too few signatures"):
        _submit_raw(dx, message, bitmap, b"".join(quorum.signatures[:2]))


def test_duplicate_signer(dx):
    message = dx.checkpoint_message(ROOT)
    sig0 = om.sign(message, dx.domain, dx.keys[0])
    sig1 = om.sign(message, dx.domain, dx.keys[1])
    # operator 0's signature presented again for operator 2's bit
    with boa.reverts("quorum: signature is not from its operator"):
        _submit_raw(dx, message, 0b0111, sig0 + sig1 + sig0)
    # and as a bitmap cannot name a member twice, the same signature thrice can only claim three members
    with boa.reverts("quorum: signature is not from its operator"):
        _submit_raw(dx, message, 0b0111, sig0 * 3)


def test_unsorted_signers(dx):
    message = dx.checkpoint_message(ROOT)
    sigs = [om.sign(message, dx.domain, k) for k in dx.keys[:3]]
    with boa.reverts("quorum: signature is not from its operator"):
        _submit_raw(dx, message, 0b0111, sigs[1] + sigs[0] + sigs[2])


def test_signer_outside_the_set(dx):
    message = dx.checkpoint_message(ROOT)
    outsider = "0x" + keccak256(b"outsider").hex()
    sigs = [om.sign(message, dx.domain, k) for k in dx.keys[:2]] + [om.sign(message, dx.domain, outsider)]
    with boa.reverts("quorum: signature is not from its operator"):
        _submit_raw(dx, message, 0b0111, b"".join(sigs))
    # a bit beyond the set's size names nobody
    sigs = [om.sign(message, dx.domain, k) for k in dx.keys[:3]]
    with boa.reverts("quorum: signer outside the set"):
        _submit_raw(dx, message, 0b10011, b"".join(sigs))


def test_operator_set_not_the_current_one(dx):
    message = dx.checkpoint_message(ROOT)
    quorum = om.sign_quorum(message, dx.domain, dx.operator_set, dx.keys[:3])
    lowered = om.OperatorSet.__new__(om.OperatorSet)  # bypass the Python checks: an attacker's calldata
    object.__setattr__(lowered, "id", 1)
    object.__setattr__(lowered, "threshold", 1)
    object.__setattr__(lowered, "members", dx.operator_set.members)
    with boa.reverts("quorum: not the current operator set"):
        _submit_raw(dx, message, quorum.signer_bitmap, quorum.packed(), operator_set=lowered)
    impostors = operator_keys(4, salt="impostor")
    fake = om.OperatorSet(1, 3, tuple(om.sort_operators(Account.from_key(k).address for k in impostors)))
    fake_quorum = om.sign_quorum(message, dx.domain, fake, sorted(impostors, key=lambda k: int(Account.from_key(k).address, 16))[:3])
    with boa.reverts("quorum: not the current operator set"):
        _submit_raw(dx, message, fake_quorum.signer_bitmap, fake_quorum.packed(), operator_set=fake)


def test_high_s_signature(dx):
    message = dx.checkpoint_message(ROOT)
    sigs = [om.sign(message, dx.domain, k) for k in dx.keys[:3]]
    r, s, v = sigs[1][:32], int.from_bytes(sigs[1][32:64], "big"), sigs[1][64]
    sigs[1] = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # valid, but the high-s twin
    with boa.reverts("ecdsa: high s"):
        _submit_raw(dx, message, 0b0111, b"".join(sigs))


@pytest.mark.parametrize("cut", [1, 2, 65])
def test_signature_lengths_other_than_65(dx, cut):
    message = dx.checkpoint_message(ROOT)
    sigs = [om.sign(message, dx.domain, k) for k in dx.keys[:3]]
    short = b"".join(sigs)[:-cut]  # a 64-byte last signature, or fewer bytes than signers
    with boa.reverts("quorum: signatures are not 65 bytes each"):
        _submit_raw(dx, message, 0b0111, short)
    with boa.reverts("quorum: signatures are not 65 bytes each"):
        _submit_raw(dx, message, 0b0111, b"".join(sigs) + b"\x1b" * cut)


def test_64_byte_signature_in_the_middle(dx):
    message = dx.checkpoint_message(ROOT)
    sigs = [om.sign(message, dx.domain, k) for k in dx.keys[:3]]
    with boa.reverts():
        _submit_raw(dx, message, 0b0111, sigs[0] + sigs[1][:64] + sigs[2])


def test_zero_recovered_address(dx):
    message = dx.checkpoint_message(ROOT)
    sigs = [om.sign(message, dx.domain, k) for k in dx.keys[:3]]
    sigs[2] = b"\0" * 32 + (1).to_bytes(32, "big") + b"\x1b"  # r = 0: ecrecover yields nothing
    with boa.reverts("ecdsa: invalid signature"):
        _submit_raw(dx, message, 0b0111, b"".join(sigs))


def test_bad_v(dx):
    message = dx.checkpoint_message(ROOT)
    sigs = [om.sign(message, dx.domain, k) for k in dx.keys[:3]]
    sigs[0] = sigs[0][:64] + bytes([sigs[0][64] - 27])  # 0/1 style v
    with boa.reverts("ecdsa: v is not 27 or 28"):
        _submit_raw(dx, message, 0b0111, b"".join(sigs))


def test_signatures_for_another_message_are_refused(dx):
    message = dx.checkpoint_message(ROOT)
    other = dx.checkpoint_message(keccak256(b"another root"))
    quorum = om.sign_quorum(other, dx.domain, dx.operator_set, dx.keys[:3])
    with boa.reverts("quorum: signature is not from its operator"):
        dx.submit(message, quorum=quorum)


def test_changed_chain_id_fork(dx):
    message = dx.checkpoint_message(ROOT)
    forked_domain = om.Domain(dx.domain.chain_id + 1, dx.exchange.address)
    quorum = om.sign_quorum(message, forked_domain, dx.operator_set, dx.keys[:3])
    with boa.reverts("quorum: signature is not from its operator"):
        dx.submit(message, quorum=quorum)
    # and the other way round: signed on this chain, replayed after the chain id changed
    quorum = om.sign_quorum(message, dx.domain, dx.operator_set, dx.keys[:3])
    chain_id = boa.env.evm.patch.chain_id
    boa.env.evm.patch.chain_id = chain_id + 1
    try:
        with boa.reverts("quorum: signature is not from its operator"):
            dx.submit(message, quorum=quorum)
    finally:
        boa.env.evm.patch.chain_id = chain_id
    dx.submit(message, quorum=quorum)


def test_second_deployment_cross_contract_replay(dx):
    twin = deploy_exchange(dx.keys, 3, tokens=[dx.token])
    assert twin.operator_set_commitment() == dx.exchange.operator_set_commitment()  # same operators, same set id
    message = dx.checkpoint_message(ROOT)
    quorum = om.sign_quorum(message, dx.domain, dx.operator_set, dx.keys[:3])
    dx.submit(message, quorum=quorum)
    with boa.reverts("quorum: signature is not from its operator"):
        twin.submit_checkpoint(
            message.epoch, message.state_root, message.l1_block_number, message.l1_block_hash,
            message.inbox.as_abi(), dx.operator_set.as_abi(), *quorum.as_abi(),
        )


@pytest.mark.parametrize("count", [3, 7, 16])
def test_larger_sets_verify(count):
    with boa.env.anchor():
        dx = make_deployment(count)
        dx.submit(dx.checkpoint_message(ROOT), keys=dx.keys[-dx.operator_set.threshold:])
        assert dx.exchange.latest_epoch() == 1
