"""Why a command was refused (Rejected.reason) and why an order left the book (OrderUpdate.reason)."""

from enum import IntEnum


class Reject(IntEnum):
    MALFORMED = 1  # a field of the wrong type, width or range
    UNKNOWN_MARKET = 2
    MARKET_INACTIVE = 3
    NO_PRICE = 4  # the market has no index price yet
    BAD_PRICE = 5  # not a positive multiple of the tick (or non-zero on a market order)
    BAD_SIZE = 6  # not a positive multiple of the lot
    NOTIONAL_TOO_LARGE = 7
    TOO_MANY_OPEN_ORDERS = 8
    INSUFFICIENT_MARGIN = 9  # the post-trade state would be below initial margin
    POST_ONLY_WOULD_CROSS = 10
    REDUCE_ONLY_NOT_REDUCING = 11  # no position, or the order is on the position's side
    # 12 is reserved (unused)
    UNKNOWN_ORDER = 13  # no such open order for this trader, strategy and market
    UNKNOWN_STRATEGY = 14
    STRATEGY_EXISTS = 15
    TOO_MANY_STRATEGIES = 16
    INSUFFICIENT_FREE_COLLATERAL = 17
    BAD_AMOUNT = 18
    UNKNOWN_TOKEN = 19
    DEPOSIT_SEQUENCE_GAP = 20
    DEPOSIT_REPEATED = 21
    BLOCK_NOT_NEWER = 22
    TIME_NOT_NEWER = 23
    EPOCH_NOT_NEXT = 24
    MARKET_EXISTS = 25
    BAD_MARKET_PARAMS = 26
    TOKEN_EXISTS = 27
    DUPLICATE_ORDER_ID = 28
    PRICE_NOT_POSITIVE = 29
    FORCED_SEQUENCE = 30  # a chain block's forced requests do not continue the forced seq
    BAD_AGENT = 31  # the agent is zero or the trader, the scope unknown, or the expiry not after the sequenced time
    TOO_MANY_AGENTS = 32
    UNKNOWN_AGENT = 33
    BAD_BATCH = 34  # not 1..MAX_BATCH_ACTIONS actions
    FILL_OR_KILL_NOT_FILLED = 35  # the book (at the limit, after self-trade prevention) cannot fill it in full
    BAD_SCHEDULE = 36  # a cancel time not after the sequenced time
    TOO_MANY_SCHEDULES = 37
    DUPLICATE_CLIENT_ORDER_ID = 38  # an open order of the strategy already has this client order id
    BAD_EXPIRY = 39  # an expiry not after the sequenced time, or on an order that does not rest
    TRIGGER_ALREADY_REACHED = 40  # the mark is already at or past the trigger price in its direction
    TOO_MANY_TRIGGERS = 41
    NO_POSITION_TO_ATTACH = 42  # an attached trigger needs a position its side reduces
    BAD_TWAP = 43  # interval under 1 s or above the duration, too many slices, or a price off the tick
    TOO_MANY_TWAPS = 44
    ATOMIC_BATCH_FAILED = 45  # an action of an all-or-nothing batch was rejected: none of them applied


class CancelReason(IntEnum):
    NONE = 0
    USER = 1  # CancelOrder / CancelAll
    MODIFIED = 2  # replaced by ModifyOrder
    IOC_REMAINDER = 3  # the unfilled rest of an immediate-or-cancel or market order
    SELF_TRADE = 4  # the incoming remainder met the trader's own resting order
    MAKER_MARGIN = 5  # filling this resting order would put its owner below maintenance margin
    LIQUIDATION = 6  # the owner is being liquidated
    REDUCE_ONLY = 7  # a resting reduce-only order with no position left to reduce
    SCHEDULED = 8  # the trader's scheduled cancel (dead man's switch) fired
    EXPIRED = 9  # a good-till-time order reached its expiry
    POSITION_CLOSED = 10  # a trigger attached to a position that closed (or flipped)
    GROUP_FIRED = 11  # another trigger of its one-cancels-other group fired
