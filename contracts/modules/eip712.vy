# pragma version ~=0.4.3
"""
@title EIP-712 domain of the ddx exchange
@notice Every operator message is signed as EIP-712 typed data under
        EIP712Domain(string name,string version,uint256 chainId,address verifyingContract) with
        name "DDX", version "1", chainId read live from the chain and verifyingContract this contract
        (docs/protocol.md, sections 5 and 6). Reading the chain id live, never caching it, means a
        signature made for one fork is refused on the other.
@dev Pure module: no storage.
"""

DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
NAME_HASH: constant(bytes32) = keccak256("DDX")
VERSION_HASH: constant(bytes32) = keccak256("1")


@internal
@view
def _domain_separator() -> bytes32:
    return keccak256(abi_encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, chain.id, self))


@internal
@view
def _typed_digest(struct_hash: bytes32) -> bytes32:
    """
    @dev keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message)).
    """
    return keccak256(concat(x"1901", self._domain_separator(), struct_hash))
