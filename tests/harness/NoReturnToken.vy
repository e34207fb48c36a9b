# pragma version ~=0.4.3
"""
@title ERC20 whose transfers return nothing (like USDT)
@notice Test-only: proves the exchange accepts a token that signals success by not reverting instead of
        returning true.
"""

balanceOf: public(HashMap[address, uint256])


@external
def mint(receiver: address, amount: uint256):
    self.balanceOf[receiver] += amount


@external
def transfer(receiver: address, amount: uint256):
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[receiver] += amount


@external
def transferFrom(sender: address, receiver: address, amount: uint256):
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
