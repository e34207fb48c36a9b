"""`ddx devnet`: start the full devnet and print its endpoints and a live status line; with `--demo`,
run the scripted scenario (devnet/scenario.py) and stop."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from pathlib import Path
from typing import Callable

from .cluster import start_cluster
from .prices import OracleFeeds

Echo = Callable[[str], None]
STATUS_EVERY_S = 2.0


async def _run(
    *, demo: bool, operators: int, rpc_url: str | None, epoch_seconds: float, confirmations: int | None, root: Path,
    ape_deploy: bool, echo: Echo
) -> int:
    echo(f"starting the devnet in {root}: {'chain at ' + rpc_url if rpc_url else 'embedded py-evm chain'}, {operators} operators")
    # Outside the demo (which moves prices itself, to show a liquidation), prices come from a mock Chainlink
    # aggregator on the devnet's chain, read by every operator's own feed and moved by a random walk.
    feeds = OracleFeeds({"ETHP": 2_000})
    cluster = await start_cluster(
        root, operators=operators, rpc_url=rpc_url, epoch_interval_s=epoch_seconds, confirmations=confirmations,
        deploy_with_ape=ape_deploy, echo=echo, price_feeds=None if demo else feeds,
    )
    driver = None
    try:
        echo(f"exchange {cluster.manifest.exchange} (chain {cluster.manifest.chain_id}), collateral {cluster.token.address}")
        for i, (url, running) in enumerate(zip(cluster.api_urls, cluster.nodes), start=1):
            host, port = running.settings.raft_listen
            echo(f"operator {i}: API {url}  (status {url}/v1/status, proofs {url}/v1/proofs/withdrawal|balance/…)  Raft/TLS {host}:{port}")
        if demo:
            from .scenario import run_scenario

            await run_scenario(cluster, echo)
            return 0
        for market, aggregator in feeds.oracle.aggregators.items():
            echo(f"index price {market}: mock Chainlink aggregator {aggregator.address} (8 decimals, random walk every "
                 f"2 s; dev-only: anyone may call set_answer), read by every operator's price feed")
        driver = asyncio.ensure_future(feeds.oracle.drive())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            echo(cluster.status_line())
            try:
                await asyncio.wait_for(stop.wait(), STATUS_EVERY_S)
            except asyncio.TimeoutError:
                pass
        return 0
    finally:
        if driver is not None:
            driver.cancel()
        await cluster.stop()


def run_devnet(
    *, demo: bool, operators: int = 3, rpc_url: str | None = None, epoch_seconds: float = 5.0,
    confirmations: int | None = None, data_dir: str | None = None, ape_deploy: bool = False, echo: Echo = print,
) -> int:
    if operators < 1 or operators > 32:
        echo("--operators must be between 1 and 32")
        return 2
    if ape_deploy and rpc_url is None:
        echo("--ape-deploy needs --rpc (ape deploys to a node)")
        return 2
    if data_dir is not None:
        return asyncio.run(_run(demo=demo, operators=operators, rpc_url=rpc_url, epoch_seconds=epoch_seconds,
                                confirmations=confirmations, root=Path(data_dir), ape_deploy=ape_deploy, echo=echo))
    with tempfile.TemporaryDirectory(prefix="ddx-devnet-") as tmp:
        return asyncio.run(_run(demo=demo, operators=operators, rpc_url=rpc_url, epoch_seconds=epoch_seconds,
                                confirmations=confirmations, root=Path(tmp), ape_deploy=ape_deploy, echo=echo))
