# pragma version ~=0.4.3
"""
@title Operator set and quorum verification
@notice Holds the current operator set (members, threshold, id) and checks that a message was signed by a
        quorum of it. Only a commitment to the set is read when verifying: the relayer passes the set in
        calldata and the contract compares its hash with the stored one, which measured cheaper than
        reading every member from storage (docs/contracts.md, "Operator-set storage").
@dev Signers are named by a bitmap over the set (bit i = members[i]) and their 65-byte signatures are
     concatenated in ascending bit order, so a signer can never be counted twice. Members are stored strictly ascending, which makes
     duplicates impossible and the commitment canonical.
"""

from contracts.modules import ecdsa

# Largest operator set: bounds calldata, memory and the signer bitmap (a uint256 could name 256).
MAX_OPERATORS: constant(uint256) = 32
# Signatures of a quorum: `r ‖ s ‖ v` of each signer, concatenated.
MAX_SIGNATURE_BYTES: constant(uint256) = MAX_OPERATORS * ecdsa.SIGNATURE_LENGTH


struct OperatorSet:
    id: uint256
    threshold: uint256
    members: DynArray[address, MAX_OPERATORS]


event OperatorSetChanged:
    operator_set_id: indexed(uint256)
    threshold: uint256
    members: DynArray[address, MAX_OPERATORS]
    commitment: bytes32


# Id of the current set; every signed message names it, so signatures of a rotated-out set are worthless.
operator_set_id: public(uint256)
threshold: public(uint256)
# keccak256(abi.encode(operator_set_id, threshold, members)): all that verification reads from storage.
operator_set_commitment: public(bytes32)
_members: DynArray[address, MAX_OPERATORS]
# Whether a threshold must be strictly above 2/3 of the set; fixed at deployment.
supermajority_required: public(bool)


@deploy
def __init__(members: DynArray[address, MAX_OPERATORS], threshold: uint256, supermajority_required: bool):
    """
    @param members The initial operators, strictly ascending.
    @param threshold How many of them must sign.
    @param supermajority_required Whether thresholds must be strictly above 2/3 of the set (the default).
    """
    self.supermajority_required = supermajority_required
    self._install(members, threshold)


@external
@view
def operators() -> DynArray[address, MAX_OPERATORS]:
    """
    @notice The members of the current operator set, ascending.
    """
    return self._members


@external
@view
def operator_set() -> OperatorSet:
    """
    @notice The current operator set exactly as `submit_checkpoint` and governance calls expect it.
    """
    return OperatorSet(id=self.operator_set_id, threshold=self.threshold, members=self._members)


@internal
@pure
def _commitment(set_id: uint256, threshold: uint256, members: DynArray[address, MAX_OPERATORS]) -> bytes32:
    return keccak256(abi_encode(set_id, threshold, members))


@internal
@view
def _check_set(members: DynArray[address, MAX_OPERATORS], threshold: uint256):
    """
    @dev Reverts unless `members` is a valid set for `threshold`.
    """
    count: uint256 = len(members)
    assert count > 0, "quorum: empty operator set"
    assert threshold > 0, "quorum: threshold is zero"
    assert threshold <= count, "quorum: threshold above set size"
    if self.supermajority_required:
        assert threshold * 3 > count * 2, "quorum: threshold not above 2/3 of the set"
    previous: address = empty(address)
    for member: address in members:
        assert member != empty(address), "quorum: zero address operator"
        assert member != previous, "quorum: duplicate operator"
        assert convert(member, uint160) > convert(previous, uint160), "quorum: operators not ascending"
        previous = member


@internal
def _install(members: DynArray[address, MAX_OPERATORS], threshold: uint256):
    """
    @dev Validates and installs a new set under the next id; the old set's signatures stop counting.
    """
    self._check_set(members, threshold)
    set_id: uint256 = self.operator_set_id + 1
    commitment: bytes32 = self._commitment(set_id, threshold, members)
    self.operator_set_id = set_id
    self.threshold = threshold
    self._members = members
    self.operator_set_commitment = commitment
    log OperatorSetChanged(operator_set_id=set_id, threshold=threshold, members=members, commitment=commitment)


@internal
@view
def _verify(
    digest: bytes32, operator_set: OperatorSet, signer_bitmap: uint256, signatures: Bytes[MAX_SIGNATURE_BYTES]
):
    """
    @dev Reverts unless `signatures` are a quorum of the current set over `digest`.
         The caller must have built `digest` with `operator_set.id`; the commitment check makes that the current id.
    @param signer_bitmap Bit i set: members[i] signed; its signature is the next 65 bytes of `signatures`.
    """
    # inlined _commitment: an internal call would copy the members into another memory frame
    assert (
        keccak256(abi_encode(operator_set.id, operator_set.threshold, operator_set.members))
        == self.operator_set_commitment
    ), "quorum: not the current operator set"
    count: uint256 = len(operator_set.members)
    assert signer_bitmap >> count == 0, "quorum: signer outside the set"
    offset: uint256 = 0
    signed: uint256 = 0
    for i: uint256 in range(count, bound=MAX_OPERATORS):
        if (signer_bitmap >> i) & 1 == 1:
            # offset <= 65 * 31 and signed <= 32 here, so unchecked arithmetic cannot overflow.
            assert unsafe_add(offset, ecdsa.SIGNATURE_LENGTH) <= len(signatures), "quorum: signatures are not 65 bytes each"
            signer: address = ecdsa._recover(
                digest,
                extract32(signatures, offset, output_type=uint256),
                extract32(signatures, unsafe_add(offset, 32), output_type=uint256),
                # the word ending at this signature's last byte: its low byte is v
                extract32(signatures, unsafe_add(offset, 33), output_type=uint256) & 255,
            )
            assert signer == operator_set.members[i], "quorum: signature is not from its operator"
            offset = unsafe_add(offset, ecdsa.SIGNATURE_LENGTH)
            signed = unsafe_add(signed, 1)
    assert offset == len(signatures), "quorum: signatures are not 65 bytes each"
    assert signed >= operator_set.threshold, "quorum: too few signatures"
