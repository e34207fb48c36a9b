# pragma version ~=0.4.3
"""
@title Checkpoints with the operator set in a storage mapping (the scheme ddx did not choose)
@notice Benchmark-only twin of checkpoints.vy + quorum.vy that keeps `is_member[set_id][address]` in storage
        instead of a commitment to a set passed in calldata; signers are proven unique by strictly ascending
        recovered addresses. Same digest, same root storage, same event: benchmarks/gas.py compares the two
        schemes (docs/contracts.md, "Operator-set storage"). Never deployed.
"""

from contracts.modules import ecdsa
from contracts.modules import eip712

MAX_OPERATORS: constant(uint256) = 32
ACTION_CHECKPOINT: constant(uint8) = 1
CHECKPOINT_TYPEHASH: constant(bytes32) = keccak256(
    "Checkpoint(uint8 action,uint256 operatorSetId,uint256 epoch,bytes32 stateRoot,uint256 l1BlockNumber,bytes32 l1BlockHash,uint256 depositCount,uint256 forcedCount,bytes32 inboxAcc)"
)
EPOCH_SHIFT: constant(uint256) = 65
TIME_SHIFT: constant(uint256) = 1


event CheckpointRecorded:
    epoch: indexed(uint256)
    state_root: bytes32
    l1_block_number: uint256
    l1_block_hash: bytes32
    operator_set_id: uint256


is_member: public(HashMap[uint256, HashMap[address, bool]])
checkpoint_root: public(HashMap[uint256, bytes32])
# operator set id << 8 | threshold: one slot, like the commitment of the chosen scheme
_set: uint256
_head: uint256


@deploy
def __init__(members: DynArray[address, MAX_OPERATORS], threshold: uint256):
    for member: address in members:
        self.is_member[1][member] = True
    self._set = 1 << 8 | threshold
    self._head = block.timestamp << TIME_SHIFT


@external
def submit_checkpoint(
    epoch: uint256,
    state_root: bytes32,
    l1_block_number: uint256,
    l1_block_hash: bytes32,
    signatures: Bytes[MAX_OPERATORS * ecdsa.SIGNATURE_LENGTH],
):
    """
    @notice Same rules as the exchange's submit_checkpoint; signatures in strictly ascending signer order.
    """
    head: uint256 = self._head
    assert head & 1 == 0, "frozen"
    assert state_root != empty(bytes32), "zero state root"
    assert epoch > head >> EPOCH_SHIFT, "epoch not after the latest"
    assert l1_block_number < block.number, "anchored block not in the past"
    if l1_block_number + 256 >= block.number:
        assert blockhash(l1_block_number) == l1_block_hash, "anchored block hash mismatch"
    packed_set: uint256 = self._set
    set_id: uint256 = packed_set >> 8
    digest: bytes32 = eip712._typed_digest(
        keccak256(
            abi_encode(
                CHECKPOINT_TYPEHASH, ACTION_CHECKPOINT, set_id, epoch, state_root, l1_block_number, l1_block_hash,
                empty(uint256), empty(uint256), empty(bytes32),  # the twin has no inbox: the empty cursor
            )
        )
    )
    count: uint256 = len(signatures) // ecdsa.SIGNATURE_LENGTH
    assert count * ecdsa.SIGNATURE_LENGTH == len(signatures), "signatures are not 65 bytes each"
    assert count >= packed_set & 255, "too few signatures"
    previous: uint256 = 0
    offset: uint256 = 0
    for i: uint256 in range(count, bound=MAX_OPERATORS):
        signer: address = ecdsa._recover(
            digest,
            extract32(signatures, offset, output_type=uint256),
            extract32(signatures, unsafe_add(offset, 32), output_type=uint256),
            extract32(signatures, unsafe_add(offset, 33), output_type=uint256) & 255,
        )
        assert convert(signer, uint256) > previous, "signers not strictly ascending"
        assert self.is_member[set_id][signer], "signer outside the set"
        previous = convert(signer, uint256)
        offset = unsafe_add(offset, ecdsa.SIGNATURE_LENGTH)
    self.checkpoint_root[epoch] = state_root
    self._head = epoch << EPOCH_SHIFT | block.timestamp << TIME_SHIFT
    log CheckpointRecorded(
        epoch=epoch, state_root=state_root, l1_block_number=l1_block_number, l1_block_hash=l1_block_hash, operator_set_id=set_id
    )
