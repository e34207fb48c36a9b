# pragma version ~=0.4.3
"""
@title Hostile ERC20 that re-enters the exchange
@notice Test-only. When armed, its transfer/transferFrom call back into the exchange (a second claim, or a
        deposit) before finishing, to prove the reentrancy lock and checks-effects-interactions hold.
"""

interface Exchange:
    def claim(trader: address, token: address, cumulative: uint256, epoch: uint256, siblings: DynArray[bytes32, 256]) -> uint256: nonpayable
    def deposit(token: address, amount: uint256): nonpayable

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
target: public(address)
# 0: behave; 1: re-enter claim on transfer; 2: re-enter deposit on transferFrom
mode: public(uint256)
attack_trader: address
attack_cumulative: uint256
attack_epoch: uint256
attack_siblings: DynArray[bytes32, 256]


@external
def arm(target: address, mode: uint256, trader: address, cumulative: uint256, epoch: uint256, siblings: DynArray[bytes32, 256]):
    self.target = target
    self.mode = mode
    self.attack_trader = trader
    self.attack_cumulative = cumulative
    self.attack_epoch = epoch
    self.attack_siblings = siblings


@external
def mint(receiver: address, amount: uint256):
    self.balanceOf[receiver] += amount


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    return True


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[receiver] += amount
    if self.mode == 1:
        self.mode = 0
        extcall Exchange(self.target).claim(
            self.attack_trader, self, self.attack_cumulative, self.attack_epoch, self.attack_siblings
        )
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    self.allowance[sender][msg.sender] -= amount
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    if self.mode == 2:
        self.mode = 0
        extcall Exchange(self.target).deposit(self, amount)
    return True
