# pragma version ~=0.4.3
"""
@title Forced requests: a trader's request sent through L1 instead of the operators' API
@notice Any address (a contract wallet too: the trader is `msg.sender`) may put one of its own trader requests in
        the inbox. The operators must take it with the L1 block it was logged in and apply it exactly as the same
        signed request from that trader (it may be rejected on its merits); a checkpoint that leaves it out past
        the forced deadline lets anyone freeze the exchange, which opens the escape hatch. This is what a censoring
        quorum cannot get around (docs/contracts.md, "Trust model").
@dev The request is given as its type id (docs/protocol.md §7.1) and its fields as 32-byte ABI words in the
     type's declaration order, without trader, nonce and timestamp (the trader is the caller; the forced seq
     replaces nonce and timestamp). Only the length is checked here; the engine decodes the words and rejects a
     malformed one, which still counts as processed.
"""

from contracts.modules import checkpoints
from contracts.modules import inbox

uses: checkpoints
uses: inbox


event ForcedRequest:
    seq: uint256
    trader: indexed(address)
    request_type: uint8
    # deposits in the inbox before this request: where the engine applies it among the deposits
    deposits_before: uint256
    fields: Bytes[inbox.MAX_FIELDS_BYTES]


@internal
@pure
def _field_words(request_type: uint8) -> uint256:
    """
    @dev How many field words each request type carries (docs/protocol.md §7.1, less trader, nonce, timestamp);
         0: not a request type.
    """
    if request_type == 1:  # PlaceOrder: strategy, market, side, orderType, price, size, reduceOnly, clientOrderId, expiry
        return 9
    if request_type == 2:  # CancelOrder: strategy, market, orderHash
        return 3
    if request_type == 3:  # CancelAll: strategy, market
        return 2
    if request_type == 4:  # ModifyOrder: strategy, market, orderHash, price, size
        return 5
    if request_type == 5:  # WithdrawIntent: strategy, token, amount
        return 3
    if request_type == 6:  # CreateStrategy: strategy
        return 1
    if request_type == 8:  # ApproveAgent: strategy, agent, scope, expiry (how a contract wallet approves an agent)
        return 4
    if request_type == 9:  # RevokeAgent: strategy, agent
        return 2
    return 0  # 7 (Batch) too: its actions are dynamic; force them one by one


@external
def force_request(request_type: uint8, fields: Bytes[inbox.MAX_FIELDS_BYTES]) -> uint256:
    """
    @notice Put a request of the caller's in the inbox, to be applied by the engine as if the caller had signed it.
    @param request_type The request type id: 1 PlaceOrder, 2 CancelOrder, 3 CancelAll, 4 ModifyOrder,
           5 WithdrawIntent, 6 CreateStrategy, 8 ApproveAgent, 9 RevokeAgent.
    @param fields The request's fields but trader, nonce and timestamp, as 32-byte ABI words in declaration order.
    @return The forced request's seq.
    """
    words: uint256 = self._field_words(request_type)
    assert words != 0, "forced: unknown request type"
    assert len(fields) == words * 32, "forced: fields do not match the request type"
    seq: uint256 = 0
    deposits: uint256 = 0
    entries: uint256 = 0
    seq, deposits, entries = inbox._append_forced(msg.sender, request_type, fields)
    checkpoints._admit_entry(entries)
    log ForcedRequest(seq=seq, trader=msg.sender, request_type=request_type, deposits_before=deposits, fields=fields)
    return seq
