# pragma version ~=0.4.3
"""
@title ERC20 that keeps a fee on every transfer
@notice Test-only: like USDT once its fee switch is on, the receiver gets `amount - fee_bps/10000 of it`; proves
        the exchange refuses such a deposit instead of crediting tokens it never received.
"""

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
fee_bps: public(uint256)


@external
def set_fee_bps(fee_bps: uint256):
    self.fee_bps = fee_bps


@external
def mint(receiver: address, amount: uint256):
    self.balanceOf[receiver] += amount


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    return True


@internal
def _move(sender: address, receiver: address, amount: uint256):
    fee: uint256 = amount * self.fee_bps // 10000
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount - fee


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._move(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    self.allowance[sender][msg.sender] -= amount
    self._move(sender, receiver, amount)
    return True
