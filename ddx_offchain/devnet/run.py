"""`ddx devnet`: start the full devnet and print what a trader's wallet or script needs, then a live status line;
with `--demo`, run the scripted scenario (devnet/scenario.py) on the embedded chain and stop.

Outside the demo the chain is a local anvil node (the make targets install it from npm) with a JSON-RPC endpoint,
chain id 31337 and a block every second, so a wallet (MetaMask) or a web3.py/ethers script can deposit and claim
(docs/devnet.md). Its dev accounts — public keys of anvil's default mnemonic, dev-only — are printed and funded with
the mock collateral; `--fund ADDR` funds more. Index prices come from a mock Chainlink aggregator per market, moved
by a random walk (`ddx devnet price MARKET VALUE` sets one). Everything a script needs is also written to a JSON
info file (`devnet_info_path()`), which `ddx devnet price` and `ddx devnet fund` read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from web3 import Web3

from .anvil import DEVNET_CHAIN_ID, AnvilProcess, dev_accounts, find_anvil
from .cluster import DOLLAR, DevnetCluster, start_cluster
from .prices import OracleFeeds

Echo = Callable[[str], None]
STATUS_EVERY_S = 2.0
DEFAULT_OPERATORS = 4  # threshold 3: one operator may fail and checkpoints go on
DEV_ACCOUNTS_SHOWN = 3
DEV_FUNDS = 1_000_000 * DOLLAR


def devnet_info_path() -> Path:
    """Where the running devnet describes itself: $DDX_DEVNET_INFO, else ~/.ddx/devnet.json."""
    return Path(os.environ.get("DDX_DEVNET_INFO") or Path.home() / ".ddx" / "devnet.json")


@dataclass(frozen=True)
class ChainChoice:
    rpc_url: str | None  # None: the embedded chain
    anvil: AnvilProcess | None


def _choose_chain(*, demo: bool, rpc_url: str | None, embedded: bool, rpc_port: int, root: Path, echo: Echo) -> ChainChoice:
    if rpc_url is not None or demo or embedded:
        return ChainChoice(rpc_url, None)
    root.mkdir(parents=True, exist_ok=True)
    if find_anvil() is None:
        echo("anvil not found (run `npm ci`, as `make install` does): using the embedded chain, which has no JSON-RPC "
             "endpoint for wallets")
        return ChainChoice(None, None)
    anvil = AnvilProcess("--chain-id", str(DEVNET_CHAIN_ID), "--block-time", "1", "--mixed-mining",
                         port=rpc_port, log_path=root / "anvil.log")
    return ChainChoice(anvil.url, anvil)


def _describe(cluster: DevnetCluster, feeds: OracleFeeds, choice: ChainChoice, funded: list[str], root: Path) -> dict:
    manifests = sorted((root / "deployments").glob("*/latest.json"))
    return {
        "rpc": choice.rpc_url,
        "chainId": cluster.manifest.chain_id,
        "exchange": cluster.manifest.exchange,
        "collateral": cluster.token.address,
        "collateralDecimals": 6,
        "manifest": str(manifests[-1]) if manifests else None,
        "genesis": str(root / "operators" / "genesis.json"),
        "app": f"{cluster.api_urls[0]}/app/",
        "apis": list(cluster.api_urls),
        "aggregators": {m: a.address for m, a in (feeds.oracle.aggregators.items() if feeds.oracle else [])},
        "devAccounts": [{"address": a, "privateKey": k} for a, k in dev_accounts(DEV_ACCOUNTS_SHOWN)]
        if choice.anvil is not None else [],
        "funded": funded,
        "dataDir": str(root),
    }


async def _run(
    *, demo: bool, operators: int, rpc_url: str | None, embedded: bool, rpc_port: int, fund: list[str],
    epoch_seconds: float, confirmations: int | None, root: Path, ape_deploy: bool, echo: Echo
) -> int:
    choice = _choose_chain(demo=demo, rpc_url=rpc_url, embedded=embedded, rpc_port=rpc_port, root=root, echo=echo)
    # the web app's URL is the first one printed (once the operators have ports); anvil's comes with the welcome
    where = ("a local anvil chain" if choice.anvil is not None else f"chain at {choice.rpc_url}" if choice.rpc_url
             else "embedded py-evm chain")
    echo(f"starting the devnet in {root}: {where}, {operators} operators")
    # Outside the demo (which moves prices itself, to show a liquidation), prices come from a mock Chainlink
    # aggregator on the devnet's chain, read by every operator's own feed and moved by a random walk.
    feeds = OracleFeeds({"ETHP": 2_000})
    cluster = driver = None
    try:
        cluster = await start_cluster(
            root, operators=operators, rpc_url=choice.rpc_url, epoch_interval_s=epoch_seconds,
            confirmations=confirmations, deploy_with_ape=ape_deploy, echo=echo, price_feeds=None if demo else feeds,
        )
        echo(f"web app: {cluster.api_urls[0]}/app/  (open this first: market, wallet, the two clocks, operators; "
             f"every operator serves it)")
        echo(f"exchange {cluster.manifest.exchange} (chain {cluster.manifest.chain_id}), collateral {cluster.token.address}")
        for i, (url, running) in enumerate(zip(cluster.api_urls, cluster.nodes), start=1):
            host, port = running.settings.raft_listen
            echo(f"operator {i}: API {url}  (status {url}/v1/status, proofs {url}/v1/proofs/withdrawal|balance/…)  Raft/TLS {host}:{port}")
        if demo:
            from .scenario import run_scenario

            await run_scenario(cluster, echo)
            echo("to do these steps yourself in a browser with your wallet: run `ddx devnet` and open the web app "
                 "URL it prints first (docs/app.md)")
            return 0
        funded = [a for a, _ in dev_accounts(DEV_ACCOUNTS_SHOWN)] if choice.anvil is not None else []
        for address in funded + list(fund):
            cluster.fund(address, DEV_FUNDS)
        info = _describe(cluster, feeds, choice, funded + list(fund), root)
        _print_welcome(info, echo)
        path = devnet_info_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(info, indent=1))
        echo(f"devnet info (for scripts, `ddx devnet price`, `ddx devnet fund`): {path}")
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
        if cluster is not None:
            await cluster.stop()
        if choice.anvil is not None:
            choice.anvil.stop()


def _print_welcome(info: dict, echo: Echo) -> None:
    echo(f"web app {info['app']}: connect a wallet on the JSON-RPC below (a dev account's key, or fund your own)")
    if info["rpc"]:
        echo(f"JSON-RPC {info['rpc']}  chain id {info['chainId']}  (add it to a wallet as a custom network)")
    else:
        echo(f"embedded chain, id {info['chainId']}: no JSON-RPC endpoint (run without --embedded, with anvil installed)")
    echo(f"genesis {info['genesis']}  manifest {info['manifest']}  (ddx audit --genesis … --manifest …)")
    for market, address in info["aggregators"].items():
        echo(f"index price {market}: mock Chainlink aggregator {address} (8 decimals), random walk every 2 s; "
             f"`ddx devnet price {market} VALUE` sets it")
    if info["devAccounts"]:
        echo("dev accounts — DEV ONLY, the keys of anvil's public default mnemonic; funded with ETH and "
             f"{DEV_FUNDS // DOLLAR:,} mock collateral:")
        for account in info["devAccounts"]:
            echo(f"  {account['address']}  key {account['privateKey']}")
    for address in info["funded"][len(info["devAccounts"]):]:
        echo(f"  funded {address} with ETH and {DEV_FUNDS // DOLLAR:,} mock collateral")


def _configure_logging() -> None:
    """Operators' logs (warnings, refusals, relays) go to stderr; the status line and endpoints to stdout."""
    root = logging.getLogger("ddx")
    if not any(getattr(h, "_ddx_devnet", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._ddx_devnet = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def run_devnet(
    *, demo: bool, operators: int = DEFAULT_OPERATORS, rpc_url: str | None = None, embedded: bool = False,
    rpc_port: int = 8545, fund: list[str] | None = None, epoch_seconds: float = 5.0, confirmations: int | None = None,
    data_dir: str | None = None, ape_deploy: bool = False, echo: Echo = print,
) -> int:
    if operators < 1 or operators > 32:
        echo("--operators must be between 1 and 32")
        return 2
    if ape_deploy and rpc_url is None:
        echo("--ape-deploy needs --rpc (ape deploys to a node)")
        return 2
    try:
        fund = [Web3.to_checksum_address(a) for a in fund or []]
    except ValueError as exc:
        echo(f"--fund: {exc}")
        return 2
    if not demo:
        _configure_logging()
    kwargs = dict(demo=demo, operators=operators, rpc_url=rpc_url, embedded=embedded, rpc_port=rpc_port,
                  fund=fund, epoch_seconds=epoch_seconds, confirmations=confirmations,
                  ape_deploy=ape_deploy, echo=echo)
    if data_dir is not None:
        return asyncio.run(_run(root=Path(data_dir), **kwargs))
    with tempfile.TemporaryDirectory(prefix="ddx-devnet-") as tmp:
        return asyncio.run(_run(root=Path(tmp), **kwargs))
