# pragma version ~=0.4.3
"""
@title State-proof verification
@notice Folds an inclusion proof of the ddx compact sparse Merkle tree up to a root, and derives the
        keys and value hashes of the two items the custody contract reads: the cumulative withdrawable
        amount and the escape-hatch balance of a (trader, token). The byte-level format is specified in
        docs/protocol.md ("Hashing", "Items", "Proofs") and shared with ddx_offchain.protocol.
@dev Pure module: no storage, so it can be `import`ed and used without `initializes`.
"""

# Longest possible path: keys are 256 bits and two distinct keys differ by bit 255 at the latest.
MAX_DEPTH: constant(uint256) = 256

# Domain separation: a leaf hash is keccak256(0x00 ‖ key ‖ value_hash), an internal node keccak256(0x01 ‖ l ‖ r).
LEAF_PREFIX: constant(bytes1) = 0x00
NODE_PREFIX: constant(bytes1) = 0x01

KIND_WITHDRAWAL: constant(uint8) = 7
KIND_BALANCE: constant(uint8) = 8

# A key keeps the low 248 bits of its identity hash and carries its kind in the top byte.
KIND_SHIFT: constant(uint256) = 248
IDENTITY_MASK: constant(uint256) = (1 << 248) - 1


@internal
@pure
def _item_key(kind: uint8, trader: address, token: address) -> bytes32:
    digest: uint256 = convert(keccak256(abi_encode(kind, trader, token)), uint256)
    return convert((digest & IDENTITY_MASK) | (convert(kind, uint256) << KIND_SHIFT), bytes32)


@internal
@pure
def _leaf_hash(key: bytes32, value_hash: bytes32) -> bytes32:
    return keccak256(concat(LEAF_PREFIX, key, value_hash))


@internal
@pure
def _fold_to_root(key: bytes32, start: bytes32, siblings: DynArray[bytes32, MAX_DEPTH]) -> bytes32:
    """
    @dev Hashes `start`, the subtree at depth len(siblings) on key's path, up to the root.
         siblings[0] is the deepest sibling; bit j of the key (MSB first) set means "right child".
         Callers pass `siblings` straight from their own arguments: every internal call that takes the
         256-bound array copies it into a new memory frame, and memory expansion is the dominant cost.
    """
    node: bytes32 = start
    depth: uint256 = len(siblings)
    # Bit `depth - 1 - i` of the key (MSB first) decides level i of the fold; shifting the key right by
    # 256 - depth puts bit depth - 1 at the bottom, and each step moves one bit up the key.
    path: uint256 = 0
    if depth > 0:
        path = convert(key, uint256) >> unsafe_sub(256, depth)
    for sibling: bytes32 in siblings:
        if path & 1 == 1:
            node = keccak256(concat(NODE_PREFIX, sibling, node))
        else:
            node = keccak256(concat(NODE_PREFIX, node, sibling))
        path = path >> 1
    return node


@internal
@pure
def _withdrawal_leaf(trader: address, token: address, cumulative: uint256) -> (bytes32, bytes32):
    """
    @dev (key, leaf hash) of the WITHDRAWAL item saying (trader, token) may withdraw `cumulative` in total.
    """
    key: bytes32 = self._item_key(KIND_WITHDRAWAL, trader, token)
    return key, self._leaf_hash(key, keccak256(abi_encode(KIND_WITHDRAWAL, trader, token, cumulative)))


@internal
@pure
def _balance_key(trader: address, token: address) -> bytes32:
    return self._item_key(KIND_BALANCE, trader, token)


@internal
@pure
def _balance_leaf_hash(key: bytes32, trader: address, token: address, amount: uint256, deposited: uint256) -> bytes32:
    """
    @dev Leaf hash of the BALANCE item (key = _balance_key(trader, token)): the (trader, token) escape-hatch
         balance `amount` and the deposits the engine had credited to the pair, `deposited`, at the checkpoint.
    """
    return self._leaf_hash(key, keccak256(abi_encode(KIND_BALANCE, trader, token, amount, deposited)))


@internal
@pure
def _absence_start(key: bytes32, depth: uint256, other_key: bytes32, other_value_hash: bytes32) -> bytes32:
    """
    @dev Where a non-inclusion proof of `key` with `depth` siblings starts its fold (docs/protocol.md §4): EMPTY
         when the path ends in an empty subtree (`other_key` zero: no real key is zero, its kind byte is not), else
         the leaf of `other_key`, which must differ from `key` and share its first `depth` bits (reverts if not).
    """
    if other_key == empty(bytes32):
        return empty(bytes32)
    shared: bool = other_key != key
    if depth > 0:
        shared = shared and (convert(other_key, uint256) ^ convert(key, uint256)) >> unsafe_sub(256, depth) == 0
    assert shared, "state_proof: the other leaf is not on the key's path"
    return self._leaf_hash(other_key, other_value_hash)


@internal
@pure
def _root_of_inclusion(key: bytes32, value_hash: bytes32, siblings: DynArray[bytes32, MAX_DEPTH]) -> bytes32:
    return self._fold_to_root(key, self._leaf_hash(key, value_hash), siblings)


@internal
@pure
def _withdrawal_root(
    trader: address, token: address, cumulative: uint256, siblings: DynArray[bytes32, MAX_DEPTH]
) -> bytes32:
    """
    @dev The root implied by a proof that the (trader, token) cumulative withdrawable amount is `cumulative`.
    """
    key: bytes32 = empty(bytes32)
    leaf: bytes32 = empty(bytes32)
    key, leaf = self._withdrawal_leaf(trader, token, cumulative)
    return self._fold_to_root(key, leaf, siblings)


@internal
@pure
def _balance_root(
    trader: address, token: address, amount: uint256, deposited: uint256, siblings: DynArray[bytes32, MAX_DEPTH]
) -> bytes32:
    """
    @dev The root implied by a proof that the (trader, token) BALANCE leaf is (amount, deposited).
    """
    key: bytes32 = self._balance_key(trader, token)
    return self._fold_to_root(key, self._balance_leaf_hash(key, trader, token, amount, deposited), siblings)
