# pragma version ~=0.4.3
"""
@title Test harness exposing the state_proof module
@notice Test-only: lets Python run the on-chain verifier in py-evm for parity tests. Never deployed.
"""

from contracts.modules import state_proof

MAX_DEPTH: constant(uint256) = 256


@external
@pure
def item_key(kind: uint8, trader: address, token: address) -> bytes32:
    """
    @notice The key of a (trader, token) item of `kind`.
    """
    return state_proof._item_key(kind, trader, token)


@external
@pure
def root_of_inclusion(key: bytes32, value_hash: bytes32, siblings: DynArray[bytes32, MAX_DEPTH]) -> bytes32:
    """
    @notice The root an inclusion proof implies.
    """
    return state_proof._root_of_inclusion(key, value_hash, siblings)


@external
@pure
def withdrawal_root(
    trader: address, token: address, cumulative: uint256, siblings: DynArray[bytes32, MAX_DEPTH]
) -> bytes32:
    """
    @notice The root a withdrawal-leaf proof implies.
    """
    return state_proof._withdrawal_root(trader, token, cumulative, siblings)


@external
@pure
def balance_root(
    trader: address, token: address, amount: uint256, deposited: uint256, siblings: DynArray[bytes32, MAX_DEPTH]
) -> bytes32:
    """
    @notice The root a balance-leaf proof implies.
    """
    return state_proof._balance_root(trader, token, amount, deposited, siblings)


@external
@pure
def absence_root(
    key: bytes32, other_key: bytes32, other_value_hash: bytes32, siblings: DynArray[bytes32, MAX_DEPTH]
) -> bytes32:
    """
    @notice The root a non-inclusion proof of `key` implies (other_key zero: the path ends in EMPTY).
    """
    return state_proof._fold_to_root(
        key, state_proof._absence_start(key, len(siblings), other_key, other_value_hash), siblings
    )
