# pragma version ~=0.4.3
"""
@title The inbox module alone, for its vectors (docs/protocol.md §6.4): appends with any trader and token.
"""

from contracts.modules import inbox

initializes: inbox

exports: inbox.inbox_head


@external
def append_deposit(trader: address, strategy: bytes32, token: address, amount: uint256):
    inbox._append_deposit(trader, strategy, token, amount)


@external
def append_forced(trader: address, request_type: uint8, fields: Bytes[inbox.MAX_FIELDS_BYTES]):
    inbox._append_forced(trader, request_type, fields)
