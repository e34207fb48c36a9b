# pragma version ~=0.4.3
"""
@title A minimal contract wallet (as a Safe or an ERC-4337 account is to the exchange: an address with no key)
@notice Its owner makes it approve, deposit and force requests; it can never sign a withdraw intent. Test only.
"""

from ethereum.ercs import IERC20


interface Exchange:
    def deposit(token: address, amount: uint256): nonpayable
    def force_request(request_type: uint8, fields: Bytes[224]) -> uint256: nonpayable


owner: public(address)


@deploy
def __init__():
    self.owner = msg.sender


@external
def approve(token: address, spender: address, amount: uint256):
    assert msg.sender == self.owner, "wallet: not the owner"
    assert extcall IERC20(token).approve(spender, amount, default_return_value=True)


@external
def deposit(exchange: address, token: address, amount: uint256):
    assert msg.sender == self.owner, "wallet: not the owner"
    extcall Exchange(exchange).deposit(token, amount)


@external
def force(exchange: address, request_type: uint8, fields: Bytes[224]) -> uint256:
    assert msg.sender == self.owner, "wallet: not the owner"
    return extcall Exchange(exchange).force_request(request_type, fields)
