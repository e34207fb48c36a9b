"""The Python side of the operator messages (ddx_offchain/protocol/operator_messages.py): typed data, digests,
validation, quorum assembly; and the benchmark's storage-mapping twin, so its figures come from a working
implementation."""

import boa
import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data

from ddx_offchain.protocol import operator_messages as om
from ddx_offchain.protocol.errors import ProtocolError
from ddx_offchain.protocol.hashing import keccak256
from ddx_offchain.protocol.inbox import InboxCursor  # noqa: E402

from .conftest import HARNESS, addresses, factory, install_block_hashes, operator_keys

DOMAIN = om.Domain(1, "0x" + "11" * 20)
KEYS = operator_keys(4)
SET = om.OperatorSet(1, 3, tuple(addresses(KEYS)))


def test_digest_is_eip712_of_the_documented_type_string():
    cursor = InboxCursor(5, 2, keccak256(b"acc"))
    message = om.Checkpoint(1, 7, keccak256(b"r"), 100, keccak256(b"b"), cursor)
    typed = om.typed_data(message, DOMAIN)
    assert typed["primaryType"] == "Checkpoint"
    assert om.digest(message, DOMAIN) == _hash_eip191_message(encode_typed_data(full_message=typed))
    # hashStruct by hand from the type string, as the contract does
    type_hash = keccak256(om.type_string("Checkpoint").encode())
    from eth_abi import encode

    struct_hash = keccak256(encode(
        ["bytes32", "uint8", "uint256", "uint256", "bytes32", "uint256", "bytes32", "uint256", "uint256", "bytes32"],
        [type_hash, 1, 1, 7, keccak256(b"r"), 100, keccak256(b"b"), 5, 2, keccak256(b"acc")],
    ))
    from eth_account._utils.encode_typed_data.encoding_and_hashing import hash_domain

    assert om.digest(message, DOMAIN) == keccak256(b"\x19\x01" + hash_domain(DOMAIN.as_typed_data()) + struct_hash)


def test_rotation_members_hash_as_an_eip712_array():
    members = tuple(addresses(KEYS))
    message = om.RotateOperators(1, 0, members, 3)
    from eth_abi import encode

    members_hash = keccak256(b"".join(encode(["address"], [m]) for m in members))
    struct_hash = keccak256(encode(
        ["bytes32", "uint8", "uint256", "uint256", "bytes32", "uint256"],
        [keccak256(om.type_string("RotateOperators").encode()), 2, 1, 0, members_hash, 3],
    ))
    from eth_account._utils.encode_typed_data.encoding_and_hashing import hash_domain

    assert om.digest(message, DOMAIN) == keccak256(b"\x19\x01" + hash_domain(DOMAIN.as_typed_data()) + struct_hash)


def test_sign_and_recover_round_trip():
    message = om.SetRateLimit(1, 3, "0x" + "22" * 20, 10, 60)
    signature = om.sign(message, DOMAIN, KEYS[0])
    assert len(signature) == 65 and signature[64] in (27, 28)
    assert om.recover(message, DOMAIN, signature) == Account.from_key(KEYS[0]).address


def test_assemble_quorum_orders_by_member_index():
    message = om.SetThreshold(1, 0, 4)
    by_signer = {Account.from_key(k).address: om.sign(message, DOMAIN, k) for k in reversed(KEYS[1:])}
    quorum = om.assemble_quorum(SET, by_signer)
    assert quorum.signer_bitmap == 0b1110
    assert quorum.signatures == tuple(om.sign(message, DOMAIN, k) for k in KEYS[1:])
    assert quorum.packed() == b"".join(quorum.signatures)


def test_assemble_quorum_refuses_outsiders_and_short_quorums():
    message = om.SetThreshold(1, 0, 4)
    with pytest.raises(ProtocolError, match="needs 3"):
        om.sign_quorum(message, DOMAIN, SET, KEYS[:2])
    with pytest.raises(ProtocolError, match="not in operator set"):
        om.sign_quorum(message, DOMAIN, SET, KEYS[:2] + ["0x" + keccak256(b"outsider").hex()])


@pytest.mark.parametrize("build", [
    lambda: om.Domain(0, "0x" + "11" * 20),
    lambda: om.Domain(1, "0x1234"),
    lambda: om.Checkpoint(1, -1, b"\0" * 32, 0, b"\0" * 32).message(),
    lambda: om.Checkpoint(1, 1, b"\0" * 31, 0, b"\0" * 32).message(),
    lambda: om.SetCollateral(1, 0, "0x" + "11" * 20, 1).message(),
    lambda: om.SetRateLimit(1, 0, "not an address", 1, 1).message(),
    lambda: om.OperatorSet(1, 2, tuple(addresses(KEYS))),
    lambda: om.recover(om.SetThreshold(1, 0, 4), DOMAIN, b"\0" * 64),
])
def test_bad_inputs_are_typed_errors(build):
    with pytest.raises(ProtocolError):
        build()


def test_mapping_twin_works_so_its_gas_figures_are_fair():
    with boa.env.anchor():
        boa.env.time_travel(blocks=300)
        install_block_hashes()
        twin = factory(HARNESS / "QuorumMappingVariant.vy").deploy(list(SET.members), 3)
        domain = om.Domain(boa.env.evm.patch.chain_id, twin.address)
        from .conftest import _blockhash

        number = boa.env.evm.patch.block_number - 1
        message = om.Checkpoint(1, 1, keccak256(b"root"), number, _blockhash(number))
        signatures = [om.sign(message, domain, k) for k in KEYS[:3]]
        with boa.reverts("signers not strictly ascending"):
            twin.submit_checkpoint(1, message.state_root, number, message.l1_block_hash, signatures[1] + signatures[0] + signatures[2])
        outsider = om.sign(message, domain, "0x" + keccak256(b"z").hex())
        with boa.reverts():
            twin.submit_checkpoint(1, message.state_root, number, message.l1_block_hash, signatures[0] + signatures[1] + outsider)
        twin.submit_checkpoint(1, message.state_root, number, message.l1_block_hash, b"".join(signatures))
        assert twin.checkpoint_root(1) == message.state_root
