# pragma version ~=0.4.3
"""
@title Custody: deposits, withdrawal claims, rate limits and the escape hatch
@notice Holds the collateral. Deposits of allow-listed ERC20 tokens are numbered by a contract-wide,
        strictly increasing sequence so operators detect gaps, and folded into the inbox's rolling hash that
        every checkpoint must account for (inbox.vy). A claim proves the trader's WITHDRAWAL leaf
        (cumulative withdrawable) against any recorded checkpoint root and pays what was not yet claimed, so a
        newer checkpoint supersedes an older one without nullifiers. Once frozen, `escape` pays the BALANCE
        leaf of the last checkpoint, the deposits the engine had not credited by then, and the unclaimed
        withdrawable. Payouts drain a per-token rate limit.
@dev Checks-effects-interactions everywhere, plus the contract-wide reentrancy lock. Token transfers must
     return true or nothing. A deposit must raise this contract's balance by exactly the amount credited, so
     fee-on-transfer tokens are refused; rebasing tokens must still not be allow-listed (a negative rebase leaves
     the contract short of what it owes).
"""

from ethereum.ercs import IERC20

from contracts.modules import checkpoints
from contracts.modules import inbox
from contracts.modules import state_proof

uses: checkpoints
uses: inbox

# "main", right-padded with zeros: the strategy `deposit` credits.
DEFAULT_STRATEGY: constant(bytes32) = 0x6d61696e00000000000000000000000000000000000000000000000000000000

# Rate limits are token buckets packed in one word each, so a payout touches two storage slots, not four:
#   limit[token]  = capacity << 64 | period            (capacity < 2**128, period < 2**64 seconds)
#   bucket[token] = level << 64 | updated_at           (level <= capacity)
WORD_64: constant(uint256) = (1 << 64) - 1
# Amounts packed in a per-pair slot: deposits per (trader, token) and claimed withdrawable stay below 2**128.
MAX_AMOUNT: constant(uint256) = (1 << 128) - 1
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
    deposited: uint256
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
# Per (trader, token), one slot: deposited on-chain so far << 128 | withdrawable already paid. Both are needed by
# a claim or an escape of the pair, and sharing the slot makes a depositor's first claim a non-zero write.
_account: HashMap[address, HashMap[address, uint256]]
# Per (trader, token): what escapes paid for the balance part (BALANCE amount plus uncredited deposits).
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
@view
def claimed(trader: address, token: address) -> uint256:
    """
    @notice Withdrawable `token` already paid to `trader` (by claims and the withdrawable part of escapes).
    """
    return self._account[trader][token] & MAX_AMOUNT


@external
@view
def deposited(trader: address, token: address) -> uint256:
    """
    @notice Everything ever deposited on-chain to `trader` in `token` (every strategy); what the escape hatch
            compares with the BALANCE leaf's `deposited` to return deposits the engine had not credited.
    """
    return self._account[trader][token] >> 128


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
    account: uint256 = self._account[trader][token]
    already: uint256 = account & MAX_AMOUNT
    assert cumulative > already, "custody: nothing to claim"
    assert cumulative <= MAX_AMOUNT, "custody: amount too large"
    key: bytes32 = empty(bytes32)
    leaf: bytes32 = empty(bytes32)
    key, leaf = state_proof._withdrawal_leaf(trader, token, cumulative)
    assert state_proof._fold_to_root(key, leaf, siblings) == root, "custody: invalid proof"
    owed: uint256 = cumulative - already
    paid: uint256 = self._draw(token, owed)
    self._account[trader][token] = account + paid
    log Claim(trader=trader, token=token, epoch=epoch, cumulative=cumulative, paid=paid, unpaid=owed - paid)
    self._pay(token, trader, paid)
    return paid


@external
@nonreentrant
def escape(
    trader: address,
    token: address,
    balance: uint256,
    deposited: uint256,
    balance_siblings: DynArray[bytes32, state_proof.MAX_DEPTH],
    cumulative: uint256,
    withdrawal_siblings: DynArray[bytes32, state_proof.MAX_DEPTH],
    absent_other_key: bytes32,
    absent_other_value_hash: bytes32,
) -> uint256:
    """
    @notice Once frozen, pay `trader` what it owns in `token` according to the last checkpoint and the chain:
            the BALANCE leaf's amount, plus every deposit the engine had not credited at the checkpoint
            (deposited on-chain − the leaf's `deposited`), plus the unclaimed withdrawable. Each part is paid at
            most once in total (partial payments under the rate limit add up to it).
    @param balance The BALANCE leaf's amount in the last checkpoint.
    @param deposited The BALANCE leaf's `deposited`: the deposits the engine had credited to the pair.
           Pass balance = deposited = 0 when the pair has no BALANCE leaf (the engine never credited a deposit to
           it, or there is no checkpoint at all): `balance_siblings` is then a non-inclusion proof.
    @param balance_siblings The BALANCE leaf's inclusion (or non-inclusion) proof; checked when any of it is owed.
    @param cumulative The WITHDRAWAL leaf's amount in the last checkpoint; its proof is checked when any of it
           is owed. Pass 0 and no siblings when the trader has no withdrawal leaf.
    @param absent_other_key For a non-inclusion proof whose path ends in another item's leaf: that item's key
           (zero when the path ends in an empty subtree, and for inclusion proofs).
    @param absent_other_value_hash That other item's value hash.
    @return The amount paid.
    """
    assert checkpoints._is_frozen(), "custody: not frozen"
    epoch: uint256 = checkpoints._latest_epoch()
    # Before the first checkpoint this is zero: the root of the empty tree, in which every pair is absent.
    root: bytes32 = checkpoints.checkpoint_root[epoch]
    account: uint256 = self._account[trader][token]
    already_claimed: uint256 = account & MAX_AMOUNT
    already_escaped: uint256 = self.escaped[trader][token]
    owed_withdrawal: uint256 = 0
    owed_balance: uint256 = 0
    key: bytes32 = empty(bytes32)
    leaf: bytes32 = empty(bytes32)
    if cumulative > already_claimed:
        assert cumulative <= MAX_AMOUNT, "custody: amount too large"
        key, leaf = state_proof._withdrawal_leaf(trader, token, cumulative)
        assert state_proof._fold_to_root(key, leaf, withdrawal_siblings) == root, "custody: invalid withdrawal proof"
        owed_withdrawal = cumulative - already_claimed
    # The balance part: what the engine owed the pair at the checkpoint, plus the deposits it had not yet credited.
    entitled: uint256 = balance + (account >> 128)
    settled: uint256 = deposited + already_escaped
    if entitled > settled:
        key = state_proof._balance_key(trader, token)
        if balance == 0 and deposited == 0:
            # No leaf (the engine writes none for a pair it never credited): prove that by non-inclusion.
            leaf = state_proof._absence_start(key, len(balance_siblings), absent_other_key, absent_other_value_hash)
        else:
            leaf = state_proof._balance_leaf_hash(key, trader, token, balance, deposited)
        assert state_proof._fold_to_root(key, leaf, balance_siblings) == root, "custody: invalid balance proof"
        owed_balance = entitled - settled
    owed: uint256 = owed_withdrawal + owed_balance
    assert owed > 0, "custody: nothing to escape"
    paid: uint256 = self._draw(token, owed)
    # The withdrawable part is paid first; the balance part gets what remains.
    paid_withdrawal: uint256 = min(paid, owed_withdrawal)
    self._account[trader][token] = account + paid_withdrawal
    self.escaped[trader][token] = already_escaped + paid - paid_withdrawal
    log Escape(
        trader=trader,
        token=token,
        epoch=epoch,
        balance=balance,
        deposited=deposited,
        cumulative=cumulative,
        paid=paid,
        unpaid=owed - paid,
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
    account: uint256 = self._account[trader][token]
    assert amount <= MAX_AMOUNT - (account >> 128), "custody: deposit too large"
    self._account[trader][token] = account + (amount << 128)
    seq: uint256 = 0
    entries: uint256 = 0
    seq, entries = inbox._append_deposit(trader, strategy, token, amount)
    checkpoints._admit_entry(entries)
    log Deposit(seq=seq, trader=trader, strategy=strategy, token=token, amount=amount, depositor=msg.sender)
    # Credit only what arrives: a fee-on-transfer token (or one that switches a fee on later) is refused here
    # instead of crediting tokens the contract never received.
    held_before: uint256 = staticcall IERC20(token).balanceOf(self)
    assert extcall IERC20(token).transferFrom(msg.sender, self, amount, default_return_value=True), "custody: transferFrom failed"
    assert staticcall IERC20(token).balanceOf(self) == held_before + amount, "custody: deposit arrived short"


@internal
def _pay(token: address, recipient: address, amount: uint256):
    assert extcall IERC20(token).transfer(recipient, amount, default_return_value=True), "custody: transfer failed"


@internal
@view
def _refill(token: address, limit: uint256) -> (uint256, uint256):
    """
    @dev The bucket's level now and the time its refill is counted up to. Whole units are credited for the time
         elapsed; the clock advances only by the time those units took (rounded up, never past now), so the
         fraction of a unit earned since is carried to the next refill instead of being lost at every payout
         (frequent small claims used to lower everyone's throughput). A full bucket restarts the clock now.
    """
    capacity: uint256 = limit >> 64
    period: uint256 = limit & WORD_64
    if period == 0:
        return 0, block.timestamp
    bucket: uint256 = self._bucket[token]
    level: uint256 = bucket >> 64
    stamp: uint256 = bucket & WORD_64
    elapsed: uint256 = block.timestamp - stamp
    if elapsed >= period:
        return capacity, block.timestamp
    gained: uint256 = capacity * elapsed // period
    if level + gained >= capacity:
        return capacity, block.timestamp
    return level + gained, stamp + (gained * period + capacity - 1) // capacity


@internal
@view
def _refilled_level(token: address, limit: uint256) -> uint256:
    level: uint256 = 0
    stamp: uint256 = 0
    level, stamp = self._refill(token, limit)
    return level


@internal
def _draw(token: address, wanted: uint256) -> uint256:
    """
    @dev Takes up to `wanted` from the token's bucket and returns what was taken; reverts if the bucket is empty.
    """
    level: uint256 = 0
    stamp: uint256 = 0
    level, stamp = self._refill(token, self._limit[token])
    assert level > 0, "custody: rate limit exhausted"
    taken: uint256 = min(wanted, level)
    self._bucket[token] = (level - taken) << 64 | stamp
    return taken


@internal
def _set_collateral(token: address, allowed: bool):
    """
    @dev A token is allowed only once it has a rate limit: with none, claims and escapes could never pay its
         deposits out. Limits cannot be removed, so the check holds for as long as the token stays allowed.
    """
    assert token != empty(address), "custody: zero token"
    if allowed:
        assert self._limit[token] != 0, "custody: token has no rate limit"
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
