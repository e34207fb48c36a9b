# pragma version ~=0.4.3
"""
@title Mock Chainlink aggregator (devnet and tests only)
@notice The two AggregatorV3Interface calls a consumer makes (`decimals`, `latestRoundData`), with an answer anyone
        may set: the devnet's price driver and the tests move it. Never deploy it where real money is at stake.
"""

decimals: public(uint8)
description: public(String[32])
_round: uint80
_answer: int256
_updated_at: uint256


event AnswerUpdated:
    current: indexed(int256)
    roundId: indexed(uint256)
    updatedAt: uint256


@deploy
def __init__(decimals: uint8, description: String[32], answer: int256):
    self.decimals = decimals
    self.description = description
    self._set(answer)


@external
def set_answer(answer: int256):
    """
    @notice A new round with `answer`, updated now.
    """
    self._set(answer)


@internal
def _set(answer: int256):
    self._round += 1
    self._answer = answer
    self._updated_at = block.timestamp
    log AnswerUpdated(current=answer, roundId=convert(self._round, uint256), updatedAt=block.timestamp)


@view
@external
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    return self._round, self._answer, self._updated_at, self._updated_at, self._round
