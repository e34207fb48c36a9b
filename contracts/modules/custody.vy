# pragma version ~=0.4.3
"""
@title Custody: deposits, withdrawal claims, rate limits and the escape hatch
@notice Holds the collateral. Deposits of allow-listed ERC20 tokens are numbered by a contract-wide,
        strictly increasing sequence so operators detect gaps. A claim proves the trader's WITHDRAWAL leaf
        (cumulative withdrawable) against any recorded checkpoint root and pays what was not yet claimed, so a
        newer checkpoint supersedes an older one without nullifiers. Once frozen, `escape` pays the BALANCE
        leaf of the last checkpoint (plus unclaimed withdrawable). Payouts drain a per-token rate limit.
@dev Checks-effects-interactions everywhere, plus the contract-wide reentrancy lock. Token transfers must
     return true or nothing. Fee-on-transfer and rebasing tokens must not be allow-listed: deposits credit the
     amount asked for.
"""

from ethereum.ercs import IERC20

from contracts.modules import checkpoints
from contracts.modules import state_proof

uses: checkpoints

# "main", right-padded with zeros: the strategy `deposit` credits.
DEFAULT_STRATEGY: constant(bytes32) = 0x6d61696e00000000000000000000000000000000000000000000000000000000

# Rate limits are token buckets packed in one word each, so a payout touches two storage slots, not four:
#   limit[token]  = capacity << 64 | period            (capacity < 2**128, period < 2**64 seconds)
#   bucket[token] = level << 64 | updated_at           (level <= capacity)
WORD_64: constant(uint256) = (1 << 64) - 1
MAX_CAPACITY: constant(uint256) = (1 << 128) - 1
MAX_PERIOD: constant(uint256) = 365 * 86400


event Deposit:
    seq: uint256
    trader: indexed(address)
    strategy: bytes32
    token: indexed(address)
    amount: uint256
    depositor: indexed(address)


event Claim:
    trader: indexed(address)
    token: indexed(address)
    epoch: uint256
    cumulative: uint256
    paid: uint256
    unpaid: uint256


event Escape:
    trader: indexed(address)
    token: indexed(address)
    epoch: uint256
    balance: uint256
    cumulative: uint256
    paid: uint256
    unpaid: uint256


event CollateralChanged:
    token: indexed(address)
    allowed: bool


event RateLimitChanged:
    token: indexed(address)
    capacity: uint256
    period: uint256


collateral_allowed: public(HashMap[address, bool])
# Number of deposits so far; the next deposit gets seq = deposit_count + 1.
deposit_count: public(uint256)
# Per (trader, token): withdrawable already paid, and escape balance already paid.
claimed: public(HashMap[address, HashMap[address, uint256]])
escaped: public(HashMap[address, HashMap[address, uint256]])
_limit: HashMap[address, uint256]
_bucket: HashMap[address, uint256]


@external
@view
def rate_limit(token: address) -> (uint256, uint256):
    """
    @notice The token's rate limit: at most `capacity` at once, refilled linearly over `period` seconds.
    @return (capacity, period)
    """
    packed: uint256 = self._limit[token]
    return packed >> 64, packed & WORD_64


@external
@view
def available_to_pay(token: address) -> uint256:
    """
    @notice How much of `token` claims and escapes may pay right now under its rate limit.
    """
    return self._refilled_level(token, self._limit[token])


@external
@nonreentrant
def deposit(token: address, amount: uint256):
    """
    @notice Deposit `amount` of `token` for the caller's default strategy ("main").
    @dev Pulls the tokens with transferFrom; the caller must have approved this contract.
    """
    self._deposit(msg.sender, DEFAULT_STRATEGY, token, amount)


@external
@nonreentrant
def deposit_to(trader: address, strategy: bytes32, token: address, amount: uint256):
    """
    @notice Deposit `amount` of `token`, paid by the caller, to `trader`'s `strategy`.
    """
    self._deposit(trader, strategy, token, amount)


@external
@nonreentrant
def claim(
    trader: address,
    token: address,
    cumulative: uint256,
    epoch: uint256,
    siblings: DynArray[bytes32, state_proof.MAX_DEPTH],
) -> uint256:
    """
    @notice Pay `trader` the part of its cumulative withdrawable `token` not yet claimed. Anyone may relay;
            the tokens always go to `trader`.
    @param cumulative The WITHDRAWAL leaf's amount in the checkpoint of `epoch`.
    @param epoch Any recorded epoch; a newer one supersedes older ones since the amount only grows.
    @param siblings The leaf's inclusion proof, bottom-up (docs/protocol.md, "Proofs").
    @return The amount paid: cumulative - claimed, or less when the rate limit is short (the rest stays claimable).
    """
    root: bytes32 = checkpoints.checkpoint_root[epoch]
    assert root != empty(bytes32), "custody: unknown epoch"
    already: uint256 = self.claimed[trader][token]
    assert cumulative > already, "custody: nothing to claim"
    key: bytes32 = empty(bytes32)
    leaf: bytes32 = empty(bytes32)
    key, leaf = state_proof._withdrawal_leaf(trader, token, cumulative)
    assert state_proof._fold_to_root(key, leaf, siblings) == root, "custody: invalid proof"
    owed: uint256 = cumulative - already
    paid: uint256 = self._draw(token, owed)
    self.claimed[trader][token] = already + paid
    log Claim(trader=trader, token=token, epoch=epoch, cumulative=cumulative, paid=paid, unpaid=owed - paid)
    self._pay(token, trader, paid)
    return paid


@external
@nonreentrant
def escape(
    trader: address,
    token: address,
    balance: uint256,
    balance_siblings: DynArray[bytes32, state_proof.MAX_DEPTH],
    cumulative: uint256,
    withdrawal_siblings: DynArray[bytes32, state_proof.MAX_DEPTH],
) -> uint256:
    """
    @notice Once frozen, pay `trader` its BALANCE leaf of the last checkpoint plus its unclaimed withdrawable.
            Each part is paid at most once in total (partial payments under the rate limit add up to it).
    @param balance The BALANCE leaf's amount in the last checkpoint; its proof is checked when any of it is owed.
    @param cumulative The WITHDRAWAL leaf's amount in the last checkpoint; its proof is checked when any of it
           is owed. Pass 0 and no siblings when the trader has no withdrawal leaf.
    @return The amount paid.
    """
    assert checkpoints._is_frozen(), "custody: not frozen"
    epoch: uint256 = checkpoints._latest_epoch()
    root: bytes32 = checkpoints.checkpoint_root[epoch]
    assert root != empty(bytes32), "custody: no checkpoint to escape from"
    already_claimed: uint256 = self.claimed[trader][token]
    already_escaped: uint256 = self.escaped[trader][token]
    owed_withdrawal: uint256 = 0
    owed_balance: uint256 = 0
    key: bytes32 = empty(bytes32)
    leaf: bytes32 = empty(bytes32)
    if cumulative > already_claimed:
        key, leaf = state_proof._withdrawal_leaf(trader, token, cumulative)
        assert state_proof._fold_to_root(key, leaf, withdrawal_siblings) == root, "custody: invalid withdrawal proof"
        owed_withdrawal = cumulative - already_claimed
    if balance > already_escaped:
        key, leaf = state_proof._balance_leaf(trader, token, balance)
        assert state_proof._fold_to_root(key, leaf, balance_siblings) == root, "custody: invalid balance proof"
        owed_balance = balance - already_escaped
    owed: uint256 = owed_withdrawal + owed_balance
    assert owed > 0, "custody: nothing to escape"
    paid: uint256 = self._draw(token, owed)
    # The withdrawable part is paid first; the balance part gets what remains.
    paid_withdrawal: uint256 = min(paid, owed_withdrawal)
    self.claimed[trader][token] = already_claimed + paid_withdrawal
    self.escaped[trader][token] = already_escaped + paid - paid_withdrawal
    log Escape(
        trader=trader, token=token, epoch=epoch, balance=balance, cumulative=cumulative, paid=paid, unpaid=owed - paid
    )
    self._pay(token, trader, paid)
    return paid


@internal
def _deposit(trader: address, strategy: bytes32, token: address, amount: uint256):
    assert not checkpoints._is_frozen(), "custody: frozen"
    assert self.collateral_allowed[token], "custody: token not allowed"
    assert amount > 0, "custody: zero amount"
    assert trader != empty(address), "custody: zero trader"
    assert strategy != empty(bytes32), "custody: zero strategy"
    seq: uint256 = self.deposit_count + 1
    self.deposit_count = seq
    log Deposit(seq=seq, trader=trader, strategy=strategy, token=token, amount=amount, depositor=msg.sender)
    assert extcall IERC20(token).transferFrom(msg.sender, self, amount, default_return_value=True), "custody: transferFrom failed"


@internal
def _pay(token: address, recipient: address, amount: uint256):
    assert extcall IERC20(token).transfer(recipient, amount, default_return_value=True), "custody: transfer failed"


@internal
@view
def _refilled_level(token: address, limit: uint256) -> uint256:
    capacity: uint256 = limit >> 64
    period: uint256 = limit & WORD_64
    if period == 0:
        return 0
    bucket: uint256 = self._bucket[token]
    level: uint256 = bucket >> 64
    elapsed: uint256 = block.timestamp - (bucket & WORD_64)
    if elapsed >= period:
        return capacity
    return min(capacity, level + capacity * elapsed // period)


@internal
def _draw(token: address, wanted: uint256) -> uint256:
    """
    @dev Takes up to `wanted` from the token's bucket and returns what was taken; reverts if the bucket is empty.
    """
    level: uint256 = self._refilled_level(token, self._limit[token])
    assert level > 0, "custody: rate limit exhausted"
    taken: uint256 = min(wanted, level)
    self._bucket[token] = (level - taken) << 64 | block.timestamp
    return taken


@internal
def _set_collateral(token: address, allowed: bool):
    assert token != empty(address), "custody: zero token"
    self.collateral_allowed[token] = allowed
    log CollateralChanged(token=token, allowed=allowed)


@internal
def _set_rate_limit(token: address, capacity: uint256, period: uint256):
    """
    @dev A token's first limit starts with a full bucket; a changed limit keeps what is left in the bucket
         (capped by the new capacity), so changing a limit never grants an extra burst.
    """
    assert token != empty(address), "custody: zero token"
    assert capacity > 0 and capacity <= MAX_CAPACITY, "custody: rate capacity out of range"
    assert period > 0 and period <= MAX_PERIOD, "custody: rate period out of range"
    previous: uint256 = self._limit[token]
    level: uint256 = capacity
    if previous != 0:
        level = min(self._refilled_level(token, previous), capacity)
    self._limit[token] = capacity << 64 | period
    self._bucket[token] = level << 64 | block.timestamp
    log RateLimitChanged(token=token, capacity=capacity, period=period)
