"""The integrator features on a real cluster: three `ddx node` processes against anvil, index prices from an HTTP
source the test moves, two depositing traders. An agent key trades for its trader in a batch with client order ids,
a stop fires on a sequenced price move, a TWAP works its size over sequenced time, a dead man's switch cancels what
is left, a transfer moves collateral between strategies — and every operator ends on the same state root."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
from anvil_node import Anvil
from test_node_processes_anvil import depositing_trader, eventually, start_operator_processes, wait_or_kill

from ddx_offchain.client import DdxClient, RequestRefused, Trader, place_action
from ddx_offchain.devnet.cluster import DOLLAR
from ddx_offchain.protocol.eip712 import Domain
from ddx_offchain.protocol.hashing import keccak256

USD = 1_000_000  # price units: token base units per whole contract
ONE = 1_000_000  # size units: 10^-6 contract


class PriceSource:
    """An HTTP ticker (`{"price": "2000.00"}`) on loopback whose price the test sets."""

    def __init__(self, price: str) -> None:
        self.price = price
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                body = json.dumps({"price": source.price}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/eth"

    def close(self) -> None:
        self.server.shutdown()


def prices_config(url: str) -> str:
    return f"""
[prices]
poll_interval_ms = 300
cadence_ms = 2000
move_bps = 5
max_change_bps = 500

[[prices.markets]]
market = "ETHP"
decimals = 6

[[prices.markets.sources]]
url = "{url}"
path = "price"
"""


def test_agents_batches_stops_twap_switch_and_transfer_on_operator_processes(tmp_path):
    source = PriceSource("2000")
    anvil = Anvil("--block-time", "1", "--chain-id", "1337")
    procs: list[subprocess.Popen] = []
    try:
        w3, members, manifest, _, files = start_operator_processes(anvil, tmp_path, procs, prices_config(source.url))
        _, _, maker_key, maker_address = depositing_trader(w3, manifest, b"features maker", approve=60 * DOLLAR)
        _, token, taker_key, taker_address = depositing_trader(w3, manifest, b"features taker", approve=60 * DOLLAR)
        domain = Domain.of(manifest.chain_id, manifest.exchange)
        operators = [bytes.fromhex(m[2:]) for m in members]
        maker, taker = Trader(maker_key, domain), Trader(taker_key, domain)
        agent_key = keccak256(b"features agent")
        agent = Trader(agent_key, domain, trader=taker.address)
        usdc = bytes.fromhex(token.address[2:])

        async def scenario():
            deadline = time.monotonic() + 120
            async with DdxClient(files.api_urls, domain, operators, retries=40) as client, \
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:

                async def on_every_node(path: str, check) -> bool:
                    for url in files.api_urls:
                        async with http.get(url + path) as resp:
                            if resp.status != 200 or not check(await resp.json()):
                                return False
                    return True

                def collateral(doc):
                    return any(s["collateral"] == str(60 * DOLLAR) for s in doc["strategies"])

                for who in (maker_address, taker_address):
                    await eventually(lambda who=who: on_every_node(f"/v1/traders/{who}", collateral),
                                     "both deposits credited on every node", deadline)
                await eventually(lambda: on_every_node("/v1/markets/ETHP", lambda d: d["index"] == str(2000 * USD)),
                                 "the index price from the HTTP source", deadline)

                # an agent key trades for the taker: two post-only bids in one batch, with client order ids
                await client.submit(taker.approve_agent(agent.signer, int(time.time() * 1000) + 3_600_000))
                receipt = await client.submit(agent.batch([
                    place_action("ETHP", 0, 5_000, 1995 * USD, order_type=2, client_order_id="b1"),
                    place_action("ETHP", 0, 5_000, 1990 * USD, order_type=2, client_order_id="b2"),
                ]))
                assert receipt.sender == agent.signer
                for cid in ("b1", "b2"):
                    order = await client.open_order(trader=taker.address, client_order_id=cid)
                    assert order["remaining"] == "5000"

                # the maker's stop-market sell fires when the sequenced index falls to 1,998 and hits the 1,995 bid
                await client.submit(maker.place_trigger("ETHP", 1, 1, 1998 * USD, 5_000))
                source.price = "1998"

                def position(size: int):
                    return lambda doc: any(p["size"] == str(size) for p in doc["positions"])

                await eventually(lambda: on_every_node(f"/v1/traders/{maker_address}", position(-5_000)),
                                 "the stop fired and filled", deadline)

                # a TWAP buys 0.004 in two slices a second apart from the maker's offer
                await client.submit(maker.place_order("ETHP", 1, 4_000, 2005 * USD))
                await client.submit(taker.place_twap("ETHP", 0, 4_000, 2_000, 1_000, limit_price=2010 * USD))
                await eventually(lambda: on_every_node(f"/v1/traders/{taker_address}", position(9_000)),
                                 "both TWAP slices filled", deadline)

                # the dead man's switch, signed by the agent: the 1,990 bid is cancelled when sequenced time gets there
                await client.submit(agent.schedule_cancel(int(time.time() * 1000) + 2_000))

                async def bid_gone():
                    try:
                        await client.open_order(trader=taker.address, client_order_id="b2")
                    except RequestRefused as exc:  # 404: no such open order any more
                        return exc.status == 404
                    return False

                await eventually(bid_gone, "the scheduled cancel fired", deadline)

                # collateral moves between the maker's own strategies
                await client.submit(maker.create_strategy("hedge"))
                await client.submit(maker.transfer("hedge", usdc, 5 * DOLLAR))
                hedge = "0x" + b"hedge".ljust(32, b"\x00").hex()
                await eventually(lambda: on_every_node(
                    f"/v1/traders/{maker_address}",
                    lambda d: any(s["strategy"] == hedge and s["collateral"] == str(5 * DOLLAR) for s in d["strategies"])),
                    "the transfer", deadline)

                async def same_root():
                    roots = set()
                    for url in files.api_urls:
                        async with http.get(url + "/v1/status") as resp:
                            engine = (await resp.json())["engine"]
                            roots.add((engine["nextRequestIndex"], engine["stateRoot"]))
                    return len(roots) == 1

                await eventually(same_root, "every operator at the same state root", deadline)

        asyncio.run(scenario())
    finally:
        for proc in procs:
            proc.terminate()
        wait_or_kill(procs)
        anvil.stop()
        source.close()
