"""The devnet's index prices: a Chainlink-interface mock aggregator per market on the devnet's chain, moved by a
random walk (or by hand), and read by every operator's price feed like a real feed (docs/operations.md, "Index
prices"). Dev-only: anyone may set a mock's answer."""

from __future__ import annotations

import asyncio
import random

from web3 import Web3

from ..chain.core.prices import PriceRules
from ..chain.price_feed import MarketFeed, PriceFeed
from ..chain.price_sources import ChainlinkSource
from ..deployment.artifacts import compile_contract

FEED_DECIMALS = 8  # as Chainlink's USD feeds
DEVNET_RULES = PriceRules(cadence_ms=2_000, window_ms=3_000)


def set_answer(aggregator, answer: int) -> None:
    """A new round of a mock aggregator (a web3 contract), `answer` with FEED_DECIMALS decimals; ValueError unless
    positive."""
    if answer <= 0:
        raise ValueError("a price must be positive")
    w3 = aggregator.w3
    w3.eth.wait_for_transaction_receipt(aggregator.functions.set_answer(answer).transact({"from": w3.eth.accounts[0]}))


class DevnetOracle:
    def __init__(self, w3: Web3, prices: dict[str, int], *, quote_decimals: int = 6, seed: int = 7) -> None:
        """`prices`: market name -> starting price in whole quote units (e.g. {"ETHP": 2000})."""
        self.w3 = w3
        self.quote_decimals = quote_decimals
        self.random = random.Random(seed)
        artifact = compile_contract("MockAggregator")
        self.aggregators = {}
        for market, price in prices.items():
            factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
            tx = factory.constructor(FEED_DECIMALS, f"{market} / USD"[:32], price * 10**FEED_DECIMALS).transact(
                {"from": w3.eth.accounts[0]}
            )
            address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
            self.aggregators[market] = w3.eth.contract(address=address, abi=artifact.abi)

    def feed(self, async_w3) -> PriceFeed:
        """One operator's feed: every mock aggregator read through that operator's own RPC connection."""
        markets = [
            MarketFeed(market.encode().ljust(32, b"\0"),
                       [ChainlinkSource(f"chainlink:{agg.address}", async_w3, agg.address, self.quote_decimals)])
            for market, agg in self.aggregators.items()
        ]
        return PriceFeed(markets, DEVNET_RULES, poll_interval_s=0.5)

    def answer(self, market: str) -> int:
        return int(self.aggregators[market].functions.latestRoundData().call()[1])

    def set_price(self, market: str, answer: int) -> None:
        """Set `market`'s aggregator answer (FEED_DECIMALS decimals)."""
        set_answer(self.aggregators[market], answer)

    async def drive(self, interval_s: float = 2.0, step_bps: int = 20) -> None:
        """A random walk: every `interval_s`, each market moves by up to `step_bps` either way."""
        while True:
            await asyncio.sleep(interval_s)
            for market in self.aggregators:
                answer = self.answer(market)
                self.set_price(market, max(1, answer + answer * self.random.randint(-step_bps, step_bps) // 10_000))


class OracleFeeds:
    """`start_cluster(price_feeds=OracleFeeds({...}))`: deploys the mock aggregators on the cluster's chain at the
    first operator, then gives every operator its own feed of them (`oracle` afterwards)."""

    def __init__(self, prices: dict[str, int]) -> None:
        self.prices = prices
        self.oracle: DevnetOracle | None = None

    def __call__(self, _index: int, cluster) -> PriceFeed:
        if self.oracle is None:
            self.oracle = DevnetOracle(cluster.w3, self.prices)
        return self.oracle.feed(cluster.make_async())
