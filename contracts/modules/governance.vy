# pragma version ~=0.4.3
"""
@title Delayed governance by quorum message
@notice The only way to rotate the operator set, change its threshold, the collateral allow-list or a rate
        limit: a message signed by a quorum of the *current* set, carrying the next governance nonce. Each
        change is announced by an event when its signatures are checked and can be executed by anyone only
        `governance_delay` seconds later (fixed at deployment; no message can change it), so watchers and
        users see every change coming. There is no owner key.
@dev A change waits under its nonce as the EIP-712 struct hash of its message, the set that signed it and the
     time it becomes executable. Executing re-derives the struct hash from the call's arguments. Of the pending
     changes of one setting (the operator set -- rotations and threshold changes alike --, a token's allow-listing,
     a token's rate limit) only the newest announced can execute: announcing a change voids the older ones of its
     setting at once, so the quorum's last word stands whatever the execution order. A quorum-signed
     CancelChange voids a pending change (and with it, as it was the newest, its setting's older ones). Nothing
     executes once the exchange is frozen: the exits are then fixed as they were (docs/contracts.md,
     "Governance and exits").
"""

from contracts.modules import eip712
from contracts.modules import quorum
from contracts.modules import checkpoints
from contracts.modules import custody

uses: quorum
uses: checkpoints
uses: custody

ACTION_ROTATE_OPERATORS: constant(uint8) = 2
ACTION_SET_THRESHOLD: constant(uint8) = 3
ACTION_SET_COLLATERAL: constant(uint8) = 4
ACTION_SET_RATE_LIMIT: constant(uint8) = 5
ACTION_CANCEL_CHANGE: constant(uint8) = 6

ROTATE_OPERATORS_TYPEHASH: constant(bytes32) = keccak256(
    "RotateOperators(uint8 action,uint256 operatorSetId,uint256 nonce,address[] members,uint256 threshold)"
)
SET_THRESHOLD_TYPEHASH: constant(bytes32) = keccak256(
    "SetThreshold(uint8 action,uint256 operatorSetId,uint256 nonce,uint256 threshold)"
)
SET_COLLATERAL_TYPEHASH: constant(bytes32) = keccak256(
    "SetCollateral(uint8 action,uint256 operatorSetId,uint256 nonce,address token,bool allowed)"
)
SET_RATE_LIMIT_TYPEHASH: constant(bytes32) = keccak256(
    "SetRateLimit(uint8 action,uint256 operatorSetId,uint256 nonce,address token,uint256 capacity,uint256 period)"
)
CANCEL_CHANGE_TYPEHASH: constant(bytes32) = keccak256(
    "CancelChange(uint8 action,uint256 operatorSetId,uint256 nonce,uint256 target)"
)
MAX_GOVERNANCE_DELAY: constant(uint256) = 365 * 86400


struct PendingChange:
    action: uint8
    struct_hash: bytes32
    operator_set_id: uint256
    executable_at: uint256


event ChangeAnnounced:
    nonce: indexed(uint256)
    action: uint8
    operator_set_id: uint256
    executable_at: uint256
    struct_hash: bytes32


event RotationAnnounced:
    nonce: indexed(uint256)
    members: DynArray[address, quorum.MAX_OPERATORS]
    threshold: uint256


event ThresholdAnnounced:
    nonce: indexed(uint256)
    threshold: uint256


event CollateralAnnounced:
    nonce: indexed(uint256)
    token: indexed(address)
    allowed: bool


event RateLimitAnnounced:
    nonce: indexed(uint256)
    token: indexed(address)
    capacity: uint256
    period: uint256


event ChangeExecuted:
    nonce: indexed(uint256)
    action: uint8


event ChangeCancelled:
    nonce: indexed(uint256)
    target: indexed(uint256)


# The nonce the next announced change must carry.
governance_nonce: public(uint256)
pending_change: public(HashMap[uint256, PendingChange])
# Seconds between a change's announcement and its earliest execution; fixed at deployment.
governance_delay: public(uint256)
# setting -> token -> 1 + nonce of the newest announced change of that setting (the setting of a rotation or a
# threshold change is ACTION_ROTATE_OPERATORS with the zero token): only that change may execute.
_newest: HashMap[uint8, HashMap[address, uint256]]


@deploy
def __init__(governance_delay: uint256):
    """
    @param governance_delay Seconds every change waits between announcement and execution.
    """
    assert governance_delay > 0 and governance_delay <= MAX_GOVERNANCE_DELAY, "governance: delay out of range"
    self.governance_delay = governance_delay


@external
def announce_rotation(
    nonce: uint256,
    members: DynArray[address, quorum.MAX_OPERATORS],
    threshold: uint256,
    operator_set: quorum.OperatorSet,
    signer_bitmap: uint256,
    signatures: Bytes[quorum.MAX_SIGNATURE_BYTES],
):
    """
    @notice Announce replacing the operator set by `members` (ascending) with `threshold`.
    @param nonce Must equal `governance_nonce`.
    @param operator_set The current set; a quorum of it signed the RotateOperators message.
    """
    quorum._check_set(members, threshold)
    self._announce(
        nonce,
        ACTION_ROTATE_OPERATORS,
        empty(address),
        self._rotation_hash(operator_set.id, nonce, members, threshold),
        operator_set,
        signer_bitmap,
        signatures,
    )
    log RotationAnnounced(nonce=nonce, members=members, threshold=threshold)


@external
def execute_rotation(nonce: uint256, members: DynArray[address, quorum.MAX_OPERATORS], threshold: uint256):
    """
    @notice Install the operator set announced under `nonce`, once its delay is over. Anyone may call.
    """
    signed_by: uint256 = self.pending_change[nonce].operator_set_id
    self._take(
        nonce, ACTION_ROTATE_OPERATORS, empty(address), self._rotation_hash(signed_by, nonce, members, threshold)
    )
    quorum._install(members, threshold)


@external
def announce_threshold(
    nonce: uint256,
    threshold: uint256,
    operator_set: quorum.OperatorSet,
    signer_bitmap: uint256,
    signatures: Bytes[quorum.MAX_SIGNATURE_BYTES],
):
    """
    @notice Announce changing the current set's threshold to `threshold` (the set gets a new id when it executes).
    """
    quorum._check_set(operator_set.members, threshold)
    self._announce(
        nonce,
        ACTION_SET_THRESHOLD,
        empty(address),
        self._threshold_hash(operator_set.id, nonce, threshold),
        operator_set,
        signer_bitmap,
        signatures,
    )
    log ThresholdAnnounced(nonce=nonce, threshold=threshold)


@external
def execute_threshold(nonce: uint256, threshold: uint256):
    """
    @notice Apply the threshold announced under `nonce`, once its delay is over. Anyone may call.
    """
    signed_by: uint256 = self.pending_change[nonce].operator_set_id
    self._take(nonce, ACTION_SET_THRESHOLD, empty(address), self._threshold_hash(signed_by, nonce, threshold))
    quorum._install(quorum._members, threshold)


@external
def announce_collateral(
    nonce: uint256,
    token: address,
    allowed: bool,
    operator_set: quorum.OperatorSet,
    signer_bitmap: uint256,
    signatures: Bytes[quorum.MAX_SIGNATURE_BYTES],
):
    """
    @notice Announce adding `token` to (allowed) or removing it from the collateral allow-list.
            Removal stops deposits only; claims and escapes of the token keep working.
    """
    assert token != empty(address), "governance: zero token"
    self._announce(
        nonce,
        ACTION_SET_COLLATERAL,
        token,
        self._collateral_hash(operator_set.id, nonce, token, allowed),
        operator_set,
        signer_bitmap,
        signatures,
    )
    log CollateralAnnounced(nonce=nonce, token=token, allowed=allowed)


@external
def execute_collateral(nonce: uint256, token: address, allowed: bool):
    """
    @notice Apply the allow-list change announced under `nonce`, once its delay is over. Anyone may call.
    """
    signed_by: uint256 = self.pending_change[nonce].operator_set_id
    self._take(nonce, ACTION_SET_COLLATERAL, token, self._collateral_hash(signed_by, nonce, token, allowed))
    custody._set_collateral(token, allowed)


@external
def announce_rate_limit(
    nonce: uint256,
    token: address,
    capacity: uint256,
    period: uint256,
    operator_set: quorum.OperatorSet,
    signer_bitmap: uint256,
    signatures: Bytes[quorum.MAX_SIGNATURE_BYTES],
):
    """
    @notice Announce a new rate limit for `token`: at most `capacity` at once, refilled over `period` seconds.
    """
    assert token != empty(address), "governance: zero token"
    assert capacity > 0 and capacity <= custody.MAX_CAPACITY, "governance: rate capacity out of range"
    assert period > 0 and period <= custody.MAX_PERIOD, "governance: rate period out of range"
    self._announce(
        nonce,
        ACTION_SET_RATE_LIMIT,
        token,
        self._rate_limit_hash(operator_set.id, nonce, token, capacity, period),
        operator_set,
        signer_bitmap,
        signatures,
    )
    log RateLimitAnnounced(nonce=nonce, token=token, capacity=capacity, period=period)


@external
def execute_rate_limit(nonce: uint256, token: address, capacity: uint256, period: uint256):
    """
    @notice Apply the rate limit announced under `nonce`, once its delay is over. Anyone may call.
    """
    signed_by: uint256 = self.pending_change[nonce].operator_set_id
    self._take(
        nonce, ACTION_SET_RATE_LIMIT, token, self._rate_limit_hash(signed_by, nonce, token, capacity, period)
    )
    custody._set_rate_limit(token, capacity, period)


@external
def cancel_change(
    nonce: uint256,
    target: uint256,
    operator_set: quorum.OperatorSet,
    signer_bitmap: uint256,
    signatures: Bytes[quorum.MAX_SIGNATURE_BYTES],
):
    """
    @notice Void the pending change announced under `target`, at once (a quorum that learnt, say, that a key of
            an announced set is compromised). Being the newest of its setting, it leaves that setting unchanged.
    @param nonce Must equal `governance_nonce`: a cancel uses a governance nonce like an announcement.
    """
    assert self.pending_change[target].executable_at != 0, "governance: no such pending change"
    self._authorize(
        nonce,
        keccak256(abi_encode(CANCEL_CHANGE_TYPEHASH, ACTION_CANCEL_CHANGE, operator_set.id, nonce, target)),
        operator_set,
        signer_bitmap,
        signatures,
    )
    self.pending_change[target] = empty(PendingChange)
    log ChangeCancelled(nonce=nonce, target=target)


@internal
def _authorize(
    nonce: uint256,
    struct_hash: bytes32,
    operator_set: quorum.OperatorSet,
    signer_bitmap: uint256,
    signatures: Bytes[quorum.MAX_SIGNATURE_BYTES],
):
    assert nonce == self.governance_nonce, "governance: wrong nonce"
    quorum._verify(eip712._typed_digest(struct_hash), operator_set, signer_bitmap, signatures)
    self.governance_nonce = nonce + 1


@internal
@pure
def _setting(action: uint8) -> uint8:
    # A threshold change and a rotation both replace the operator set: one setting.
    if action == ACTION_SET_THRESHOLD:
        return ACTION_ROTATE_OPERATORS
    return action


@internal
def _announce(
    nonce: uint256,
    action: uint8,
    token: address,
    struct_hash: bytes32,
    operator_set: quorum.OperatorSet,
    signer_bitmap: uint256,
    signatures: Bytes[quorum.MAX_SIGNATURE_BYTES],
):
    self._authorize(nonce, struct_hash, operator_set, signer_bitmap, signatures)
    self._newest[self._setting(action)][token] = nonce + 1
    executable_at: uint256 = block.timestamp + self.governance_delay
    self.pending_change[nonce] = PendingChange(
        action=action, struct_hash=struct_hash, operator_set_id=operator_set.id, executable_at=executable_at
    )
    log ChangeAnnounced(
        nonce=nonce, action=action, operator_set_id=operator_set.id, executable_at=executable_at, struct_hash=struct_hash
    )


@internal
@pure
def _rotation_hash(
    operator_set_id: uint256, nonce: uint256, members: DynArray[address, quorum.MAX_OPERATORS], threshold: uint256
) -> bytes32:
    return keccak256(
        abi_encode(
            ROTATE_OPERATORS_TYPEHASH,
            ACTION_ROTATE_OPERATORS,
            operator_set_id,
            nonce,
            keccak256(slice(abi_encode(members, ensure_tuple=False), 32, 32 * len(members))),
            threshold,
        )
    )


@internal
@pure
def _threshold_hash(operator_set_id: uint256, nonce: uint256, threshold: uint256) -> bytes32:
    return keccak256(abi_encode(SET_THRESHOLD_TYPEHASH, ACTION_SET_THRESHOLD, operator_set_id, nonce, threshold))


@internal
@pure
def _collateral_hash(operator_set_id: uint256, nonce: uint256, token: address, allowed: bool) -> bytes32:
    return keccak256(abi_encode(SET_COLLATERAL_TYPEHASH, ACTION_SET_COLLATERAL, operator_set_id, nonce, token, allowed))


@internal
@pure
def _rate_limit_hash(
    operator_set_id: uint256, nonce: uint256, token: address, capacity: uint256, period: uint256
) -> bytes32:
    return keccak256(
        abi_encode(SET_RATE_LIMIT_TYPEHASH, ACTION_SET_RATE_LIMIT, operator_set_id, nonce, token, capacity, period)
    )


@internal
def _take(nonce: uint256, action: uint8, token: address, struct_hash: bytes32):
    """
    @dev Removes the pending change `nonce` if it is of `action` (for `token`), due, the newest announced change of
         its setting, and `struct_hash` (re-derived from the execution's arguments) is the announced one.
    """
    assert not checkpoints._is_frozen(), "governance: frozen"
    change: PendingChange = self.pending_change[nonce]
    assert change.executable_at != 0, "governance: no such pending change"
    assert change.action == action, "governance: pending change is of another kind"
    assert block.timestamp >= change.executable_at, "governance: delay not over"
    newest: uint256 = self._newest[self._setting(action)][token]
    assert newest == nonce + 1, "governance: a newer change of this setting was announced"
    assert struct_hash == change.struct_hash, "governance: arguments differ from the announced change"
    self.pending_change[nonce] = empty(PendingChange)
    log ChangeExecuted(nonce=nonce, action=action)
