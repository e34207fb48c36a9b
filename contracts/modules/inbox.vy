# pragma version ~=0.4.3
"""
@title The L1 inbox: every deposit and forced request, in one rolling hash
@notice Deposits and forced requests are the entries the off-chain engine must take from L1. Each is numbered in
        its own sequence (deposit seq, forced seq, both from 1) and folded, in the order they happen on-chain,
        into one rolling hash:  acc_0 = 0,  acc_n = keccak256(acc_{n-1} ‖ leaf_n). A checkpoint states the inbox
        cursor its state covers (deposit count, forced count, acc); the contract accepts it only if that cursor is
        a prefix of the chain's inbox (docs/contracts.md, "The inbox"; docs/protocol.md §6.4).
@dev A leaf is its kind in the top byte and the low 31 bytes of the entry's hash:
         deposit: 0x01 ‖ keccak256(abi.encode(seq, trader, strategy, token, amount))[1:]
         forced:  0x02 ‖ keccak256(seq ‖ trader ‖ request_type ‖ fields)[1:]   (words, fields as given)
     so a suffix of leaves tells the contract how many entries of each kind it spans, and the rolling hash binds
     the kinds (a leaf with the wrong kind byte folds to a different acc).
     Slot packing: `_counts` = forced count << 64 | deposit count (each < 2**64); `_acc` the rolling hash.
     Only the head is stored (one slot written per entry beyond the counter a deposit always wrote): a cursor
     behind the head is proven by the leaves between it and the head, given in calldata.
"""

KIND_DEPOSIT: constant(uint256) = 1
KIND_FORCED: constant(uint256) = 2
WORD_64: constant(uint256) = (1 << 64) - 1
LOW_248: constant(uint256) = (1 << 248) - 1
# Most leaves a checkpoint may give to prove a cursor behind the head: ~32 bytes of calldata and two hashes each.
MAX_SUFFIX: constant(uint256) = 1024
# Longest forced-request fields: a PlaceOrder's seven words (docs/protocol.md §6.5).
MAX_FIELDS_BYTES: constant(uint256) = 9 * 32


struct InboxCursor:
    deposits: uint256
    forced: uint256
    acc: bytes32


_counts: uint256
_acc: bytes32


@external
@view
def inbox_head() -> InboxCursor:
    """
    @notice The inbox head: deposits and forced requests so far, and the rolling hash over all of them.
    """
    counts: uint256 = self._counts
    return InboxCursor(deposits=counts & WORD_64, forced=counts >> 64, acc=self._acc)


@external
@view
def deposit_count() -> uint256:
    """
    @notice Number of deposits so far; the next deposit gets seq = deposit_count + 1.
    """
    return self._counts & WORD_64


@external
@view
def forced_count() -> uint256:
    """
    @notice Number of forced requests so far; the next one gets seq = forced_count + 1.
    """
    return self._counts >> 64


@internal
@pure
def _leaf(kind: uint256, entry_hash: bytes32) -> bytes32:
    return convert(kind << 248 | convert(entry_hash, uint256) & LOW_248, bytes32)


@internal
def _append_deposit(trader: address, strategy: bytes32, token: address, amount: uint256) -> (uint256, uint256):
    """
    @dev Numbers and folds one deposit. Returns (its seq, entries in the inbox now).
    """
    counts: uint256 = self._counts
    seq: uint256 = (counts & WORD_64) + 1
    assert seq <= WORD_64, "inbox: full"
    self._counts = counts + 1
    self._acc = keccak256(
        concat(self._acc, self._leaf(KIND_DEPOSIT, keccak256(abi_encode(seq, trader, strategy, token, amount))))
    )
    return seq, seq + (counts >> 64)


@internal
def _append_forced(trader: address, request_type: uint8, fields: Bytes[MAX_FIELDS_BYTES]) -> (uint256, uint256, uint256):
    """
    @dev Numbers and folds one forced request. Returns (its seq, deposits before it, entries in the inbox now).
    """
    counts: uint256 = self._counts
    deposits: uint256 = counts & WORD_64
    seq: uint256 = (counts >> 64) + 1
    assert seq <= WORD_64, "inbox: full"
    self._counts = counts + (1 << 64)
    entry: bytes32 = keccak256(
        concat(convert(seq, bytes32), convert(convert(trader, uint256), bytes32), convert(convert(request_type, uint256), bytes32), fields)
    )
    self._acc = keccak256(concat(self._acc, self._leaf(KIND_FORCED, entry)))
    return seq, deposits, seq + deposits


@internal
@pure
def _step(cursor: InboxCursor, leaf: bytes32) -> InboxCursor:
    """
    @dev The cursor moved past one more leaf: its kind byte says which count grows.
    """
    kind: uint256 = convert(leaf, uint256) >> 248
    deposits: uint256 = cursor.deposits
    forced: uint256 = cursor.forced
    if kind == KIND_DEPOSIT:
        deposits += 1
    else:
        assert kind == KIND_FORCED, "inbox: leaf of unknown kind"
        forced += 1
    return InboxCursor(deposits=deposits, forced=forced, acc=keccak256(concat(cursor.acc, leaf)))


@internal
@view
def _check_head(reached: InboxCursor):
    """
    @dev Reverts unless `reached` (a stated cursor moved past the leaves given after it) is the inbox head: the
         stated cursor is then the inbox as it stood after its counts, since the rolling hash binds every leaf and
         its kind (a different history would need a keccak256 collision).
    """
    counts: uint256 = self._counts
    assert reached.deposits == counts & WORD_64 and reached.forced == counts >> 64, "inbox: cursor and leaves do not reach the head"
    assert reached.acc == self._acc, "inbox: cursor is not on the chain's inbox"
