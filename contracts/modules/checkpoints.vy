# pragma version ~=0.4.3
"""
@title Checkpoint registry and escape-hatch trigger
@notice Records the state roots that a quorum of operators signed, one per epoch, and lets anyone freeze the
        exchange once no checkpoint has been recorded for `escape_delay` seconds, or once an inbox entry (a
        deposit or a forced request) has waited `forced_deadline` seconds without a recorded checkpoint covering
        it. Anyone may relay a checkpoint: its authority comes only from the signatures.
@dev Rules for a checkpoint (docs/contracts.md, "Checkpoints"): root is not zero; epoch strictly above the
     last one (gaps allowed); the anchored L1 block is in the past and, when it is one of the last 256 blocks,
     its hash matches `blockhash` (a checkpoint built on another fork is refused); the inbox cursor it states is
     on the chain's inbox and not behind the last recorded one; the exchange is not frozen.
     The deadline is kept with one "generation" (count, since): the inbox had `count` entries at time `since`,
     and none of them may stay uncovered past since + forced_deadline. A new generation starts when a checkpoint
     covers the current one (it then holds every entry not yet covered) or when an entry arrives with nothing
     pending. An entry is therefore covered, or the exchange freezable, within 2 × forced_deadline of its arrival
     (within forced_deadline when nothing was pending before it).
"""

from contracts.modules import eip712
from contracts.modules import inbox
from contracts.modules import quorum

uses: quorum
uses: inbox

ACTION_CHECKPOINT: constant(uint8) = 1
CHECKPOINT_TYPEHASH: constant(bytes32) = keccak256(
    "Checkpoint(uint8 action,uint256 operatorSetId,uint256 epoch,bytes32 stateRoot,uint256 l1BlockNumber,bytes32 l1BlockHash,uint256 depositCount,uint256 forcedCount,bytes32 inboxAcc)"
)
# blockhash() only knows the most recent 256 blocks.
BLOCKHASH_WINDOW: constant(uint256) = 256


event CheckpointRecorded:
    epoch: indexed(uint256)
    state_root: bytes32
    l1_block_number: uint256
    l1_block_hash: bytes32
    operator_set_id: uint256


event Frozen:
    last_epoch: uint256
    last_checkpoint_at: uint256
    caller: indexed(address)
    # true: an inbox entry waited past the forced deadline; false: no checkpoint for the escape delay
    inbox_overdue: bool


# epoch -> state root; zero means "no checkpoint for this epoch".
checkpoint_root: public(HashMap[uint256, bytes32])
# Seconds without a checkpoint after which anyone may freeze; fixed at deployment.
escape_delay: public(uint256)
# Seconds an inbox entry may wait for a recorded checkpoint that covers it; fixed at deployment.
forced_deadline: public(uint256)
# What every checkpoint and inbox entry reads, packed in one slot (one cold read, one write per checkpoint):
#   latest epoch << 192 | generation since << 137 | generation count << 89 | covered entries << 41
#   | timestamp of the last checkpoint (deployment before the first) << 1 | frozen
# covered: inbox entries (deposits + forced requests) the latest checkpoint covers. Generation: see @dev above;
# generation count <= covered means nothing is pending.
_head: uint256
FROZEN_BIT: constant(uint256) = 1
TIME_SHIFT: constant(uint256) = 1
COVERED_SHIFT: constant(uint256) = 41
GEN_COUNT_SHIFT: constant(uint256) = 89
GEN_TIME_SHIFT: constant(uint256) = 137
EPOCH_SHIFT: constant(uint256) = 192
TIME_MASK: constant(uint256) = (1 << 40) - 1
COUNT_MASK: constant(uint256) = (1 << 48) - 1
# Longest escape delay or forced deadline a deployment may choose.
MAX_ESCAPE_DELAY: constant(uint256) = 365 * 86400
# Epoch ids stay below 2**64 so they fit the head.
MAX_EPOCH: constant(uint256) = (1 << 64) - 1


@deploy
def __init__(escape_delay: uint256, forced_deadline: uint256):
    """
    @param escape_delay Seconds without a checkpoint after which anyone may freeze the exchange.
    @param forced_deadline Seconds an inbox entry may wait for a covering checkpoint before anyone may freeze.
    """
    # Bounded so `last checkpoint + escape_delay` can never overflow and lock `freeze` (and the escape hatch) out.
    assert escape_delay > 0 and escape_delay <= MAX_ESCAPE_DELAY, "checkpoints: escape delay out of range"
    assert forced_deadline > 0 and forced_deadline <= MAX_ESCAPE_DELAY, "checkpoints: forced deadline out of range"
    self.escape_delay = escape_delay
    self.forced_deadline = forced_deadline
    self._head = block.timestamp << TIME_SHIFT


@external
@view
def inbox_coverage() -> (uint256, uint256, uint256):
    """
    @notice How far recorded checkpoints cover the inbox, and the deadline that applies to what they do not.
    @return (entries covered by the latest checkpoint, entries of the pending generation, the time it started):
            when the second exceeds the first, anyone may freeze at since + forced_deadline unless a checkpoint
            covering them is recorded first.
    """
    head: uint256 = self._head
    return (head >> COVERED_SHIFT) & COUNT_MASK, (head >> GEN_COUNT_SHIFT) & COUNT_MASK, (head >> GEN_TIME_SHIFT) & TIME_MASK


@external
@view
def latest_epoch() -> uint256:
    """
    @notice The epoch of the last recorded checkpoint; 0 before the first.
    """
    return self._latest_epoch()


@external
@view
def last_checkpoint_at() -> uint256:
    """
    @notice When the last checkpoint was recorded (the deployment time before the first).
    """
    return (self._head >> TIME_SHIFT) & TIME_MASK


@external
@view
def frozen() -> bool:
    """
    @notice Whether the escape hatch is open: no more checkpoints or deposits.
    """
    return self._is_frozen()


@internal
@view
def _latest_epoch() -> uint256:
    return self._head >> EPOCH_SHIFT


@internal
@view
def _is_frozen() -> bool:
    return self._head & FROZEN_BIT == FROZEN_BIT


@external
@view
def latest_checkpoint() -> (uint256, bytes32, uint256):
    """
    @notice The last recorded checkpoint.
    @return (epoch, state root, timestamp recorded); epoch 0 and a zero root before the first one.
    """
    head: uint256 = self._head
    epoch: uint256 = head >> EPOCH_SHIFT
    return epoch, self.checkpoint_root[epoch], (head >> TIME_SHIFT) & TIME_MASK


@internal
def _admit_entry(entries: uint256):
    """
    @dev An inbox entry arrived; the inbox now holds `entries`. Refused once frozen. With nothing pending, it starts
         the generation the deadline runs for.
    """
    head: uint256 = self._head
    assert head & FROZEN_BIT == 0, "checkpoints: frozen"
    assert entries <= COUNT_MASK, "checkpoints: inbox full"
    if (head >> GEN_COUNT_SHIFT) & COUNT_MASK <= (head >> COVERED_SHIFT) & COUNT_MASK:
        keep: uint256 = head & ~((COUNT_MASK << GEN_COUNT_SHIFT) | (TIME_MASK << GEN_TIME_SHIFT))
        self._head = keep | entries << GEN_COUNT_SHIFT | block.timestamp << GEN_TIME_SHIFT


@internal
@view
def _checkpoint_struct_hash(
    operator_set_id: uint256,
    epoch: uint256,
    state_root: bytes32,
    l1_block_number: uint256,
    l1_block_hash: bytes32,
    cursor: inbox.InboxCursor,
) -> bytes32:
    return keccak256(
        abi_encode(
            CHECKPOINT_TYPEHASH,
            ACTION_CHECKPOINT,
            operator_set_id,
            epoch,
            state_root,
            l1_block_number,
            l1_block_hash,
            cursor.deposits,
            cursor.forced,
            cursor.acc,
        )
    )


@external
def submit_checkpoint(
    epoch: uint256,
    state_root: bytes32,
    l1_block_number: uint256,
    l1_block_hash: bytes32,
    cursor: inbox.InboxCursor,
    operator_set: quorum.OperatorSet,
    signer_bitmap: uint256,
    signatures: Bytes[quorum.MAX_SIGNATURE_BYTES],
):
    """
    @notice Record the state root of `epoch`, signed by a quorum of the current operator set, whose state covers
            the whole inbox as it stands (see `submit_checkpoint_with_leaves` for a state behind it).
    @param epoch Strictly greater than the latest recorded epoch.
    @param state_root The state tree's root (not zero).
    @param l1_block_number The L1 block the operators saw when they closed the epoch; in the past.
    @param l1_block_hash Its hash; checked when the block is one of the last 256.
    @param cursor The inbox as the state covers it: deposits and forced requests taken, and the rolling hash; here
           the inbox head.
    @param operator_set The current set, as returned by `operator_set()`.
    @param signer_bitmap Bit i set: operator_set.members[i] signed.
    @param signatures The signers' 65-byte signatures, in ascending bit order.
    """
    inbox._check_head(cursor)
    digest: bytes32 = self._checked_digest(epoch, state_root, l1_block_number, l1_block_hash, cursor, operator_set.id)
    quorum._verify(digest, operator_set, signer_bitmap, signatures)
    self._record(epoch, state_root, l1_block_number, l1_block_hash, cursor, cursor, operator_set.id)


@external
def submit_checkpoint_with_leaves(
    epoch: uint256,
    state_root: bytes32,
    l1_block_number: uint256,
    l1_block_hash: bytes32,
    cursor: inbox.InboxCursor,
    leaves: DynArray[bytes32, inbox.MAX_SUFFIX],
    operator_set: quorum.OperatorSet,
    signer_bitmap: uint256,
    signatures: Bytes[quorum.MAX_SIGNATURE_BYTES],
):
    """
    @notice `submit_checkpoint` for a state that covers the inbox up to `cursor`, behind its head: `leaves` are the
            inbox leaves after the cursor, up to the head, which prove the cursor is on the chain's inbox.
    @dev A separate entry point because a calldata array is copied to memory at its bound: the common case (the
         state covers the head) does not pay for it.
    """
    reached: inbox.InboxCursor = cursor
    for leaf: bytes32 in leaves:
        reached = inbox._step(reached, leaf)
    inbox._check_head(reached)
    digest: bytes32 = self._checked_digest(epoch, state_root, l1_block_number, l1_block_hash, cursor, operator_set.id)
    quorum._verify(digest, operator_set, signer_bitmap, signatures)
    self._record(epoch, state_root, l1_block_number, l1_block_hash, cursor, reached, operator_set.id)


@internal
@view
def _checked_digest(
    epoch: uint256,
    state_root: bytes32,
    l1_block_number: uint256,
    l1_block_hash: bytes32,
    cursor: inbox.InboxCursor,
    operator_set_id: uint256,
) -> bytes32:
    """
    @dev The rules both entry points share (the cursor is already proven on the inbox); returns what the quorum
         must have signed. The operator set and signatures stay with the caller: passing them here would copy them.
    """
    head: uint256 = self._head
    assert head & FROZEN_BIT == 0, "checkpoints: frozen"
    assert state_root != empty(bytes32), "checkpoints: zero state root"
    assert epoch > head >> EPOCH_SHIFT, "checkpoints: epoch not after the latest"
    assert epoch <= MAX_EPOCH, "checkpoints: epoch too large"
    assert l1_block_number < block.number, "checkpoints: anchored block not in the past"
    if l1_block_number + BLOCKHASH_WINDOW >= block.number:
        assert blockhash(l1_block_number) == l1_block_hash, "checkpoints: anchored block hash mismatch"
    assert cursor.deposits + cursor.forced >= (head >> COVERED_SHIFT) & COUNT_MASK, "checkpoints: inbox cursor goes backwards"
    return eip712._typed_digest(
        self._checkpoint_struct_hash(operator_set_id, epoch, state_root, l1_block_number, l1_block_hash, cursor)
    )


@internal
def _record(
    epoch: uint256,
    state_root: bytes32,
    l1_block_number: uint256,
    l1_block_hash: bytes32,
    cursor: inbox.InboxCursor,
    head_now: inbox.InboxCursor,
    operator_set_id: uint256,
):
    """
    @dev The effects of an accepted checkpoint; `head_now` is the inbox head it was proven against.
    """
    head: uint256 = self._head
    covered: uint256 = cursor.deposits + cursor.forced
    self.checkpoint_root[epoch] = state_root
    generation: uint256 = head & (COUNT_MASK << GEN_COUNT_SHIFT | TIME_MASK << GEN_TIME_SHIFT)
    if covered >= (head >> GEN_COUNT_SHIFT) & COUNT_MASK:
        # the pending generation is covered: what is left uncovered (up to the head) starts the next one now
        generation = (head_now.deposits + head_now.forced) << GEN_COUNT_SHIFT | block.timestamp << GEN_TIME_SHIFT
    self._head = epoch << EPOCH_SHIFT | generation | covered << COVERED_SHIFT | block.timestamp << TIME_SHIFT
    log CheckpointRecorded(
        epoch=epoch,
        state_root=state_root,
        l1_block_number=l1_block_number,
        l1_block_hash=l1_block_hash,
        operator_set_id=operator_set_id,
    )


@external
def freeze():
    """
    @notice Freeze the exchange once no checkpoint has been recorded for `escape_delay` seconds, or once an inbox
            entry (deposit or forced request) has waited past the forced deadline without a recorded checkpoint
            covering it. Frozen: no checkpoints, deposits or forced requests; traders leave through `escape`
            (and `claim`).
    """
    head: uint256 = self._head
    assert head & FROZEN_BIT == 0, "checkpoints: already frozen"
    last_checkpoint_at: uint256 = (head >> TIME_SHIFT) & TIME_MASK
    overdue: bool = (head >> GEN_COUNT_SHIFT) & COUNT_MASK > (head >> COVERED_SHIFT) & COUNT_MASK and (
        block.timestamp >= ((head >> GEN_TIME_SHIFT) & TIME_MASK) + self.forced_deadline
    )
    assert overdue or block.timestamp >= last_checkpoint_at + self.escape_delay, "checkpoints: escape delay not over"
    self._head = head | FROZEN_BIT
    log Frozen(
        last_epoch=head >> EPOCH_SHIFT, last_checkpoint_at=last_checkpoint_at, caller=msg.sender, inbox_overdue=overdue
    )
