# pragma version ~=0.4.3
"""
@title ERC20 whose transfers report failure
@notice Test-only: transfer and transferFrom move nothing and return false, to prove the exchange checks the
        return value. `honest` switches it to a normal token (so deposits can be set up first).
"""

balanceOf: public(HashMap[address, uint256])
honest: public(bool)


@external
def set_honest(honest: bool):
    self.honest = honest


@external
def mint(receiver: address, amount: uint256):
    self.balanceOf[receiver] += amount


@external
def approve(spender: address, amount: uint256) -> bool:
    return True


@external
def transfer(receiver: address, amount: uint256) -> bool:
    if not self.honest:
        return False
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[receiver] += amount
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    if not self.honest:
        return False
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    return True
