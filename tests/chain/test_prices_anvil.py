"""A Chainlink-interface aggregator on a real node (anvil from npm), read by the operator's price source through
the chain RPC, and aggregated with the feed's rules."""

from __future__ import annotations

import asyncio
import time

import pytest
from web3 import Web3

from ddx_offchain.chain.core.prices import Aggregate, PriceRules
from ddx_offchain.chain.price_feed import MarketFeed, PriceFeed
from ddx_offchain.chain.price_sources import ChainlinkSource, PriceSourceError
from ddx_offchain.chain.rpc import http_web3
from ddx_offchain.deployment.artifacts import compile_contract

ETHP = b"ETHP".ljust(32, b"\0")



def _deploy(w3: Web3, decimals: int, answer: int):
    artifact = compile_contract("MockAggregator")
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx = factory.constructor(decimals, "ETH / USD", answer).transact({"from": w3.eth.accounts[0]})
    address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
    return w3.eth.contract(address=address, abi=artifact.abi)


def test_chainlink_aggregator_read_through_the_rpc_scaled_exactly_and_refused_when_not_positive(anvil):
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    feed8 = _deploy(w3, 8, 2_345_67000001)  # 8 decimals, as Chainlink's USD feeds
    feed18 = _deploy(w3, 18, 2_345_670_000_000_000_000_999)

    async def scenario():
        aw3 = http_web3(anvil.url)
        try:
            source = ChainlinkSource("chainlink:eth-usd", aw3, feed8.address, 6)
            seen = await source.read()
            block = w3.eth.get_block("latest")
            assert seen.price == 2_345_670_000  # 2345.67000001 at 6 decimals, truncated
            assert seen.at_ms == block["timestamp"] * 1000  # the round's updatedAt decides freshness
            assert (await ChainlinkSource("wide", aw3, feed18.address, 6).read()).price == 2_345_670_000
            # the feed's aggregate over two on-chain sources, fresh by the local clock
            rules = PriceRules(min_sources=2, staleness_ms=600_000)
            feed = PriceFeed(
                [MarketFeed(ETHP, [source, ChainlinkSource("wide", aw3, feed18.address, 6)])], rules,
                clock_ms=lambda: time.time_ns() // 1_000_000,
            )
            await feed.poll_once()
            assert isinstance(feed.markets[ETHP].last_result, Aggregate)
            assert feed.proposal().prices[0].price == 2_345_670_000
            feed8.functions.set_answer(0).transact({"from": w3.eth.accounts[0]})
            with pytest.raises(PriceSourceError, match="not positive"):
                await source.read()
            with pytest.raises(PriceSourceError):
                await ChainlinkSource("nothing there", aw3, "0x" + "00" * 19 + "01", 6).read()
        finally:
            await aw3.provider.disconnect()

    asyncio.run(scenario())
