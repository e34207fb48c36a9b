"""Checkpoint signatures between operators over HTTP: each serves its own, collects the peers'; a peer down or
answering garbage is tolerated and reported, never counted."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from aiohttp import web

from ddx_offchain.chain.signatures import HttpSignatureExchange, signature_routes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def test_signatures_travel_between_operator_apis_and_bad_peers_are_tolerated():
    async def scenario():
        ports = [free_port() for _ in range(4)]
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        exchanges = [HttpSignatureExchange([u for j, u in enumerate(urls[:3]) if j != i] + [urls[3]], timeout_s=1.0) for i in range(3)]
        runners = []
        for exchange, port in zip(exchanges, ports):
            app = web.Application()
            app.add_routes(signature_routes(exchange))
            runners.append(await serve(app, port))

        async def garbage(request):
            return web.json_response({"epoch": "7", "signer": 5, "signature": "nope"})

        liar = web.Application()
        liar.add_routes([web.get("/v1/checkpoints/{epoch}/signature", garbage)])
        runners.append(await serve(liar, ports[3]))
        try:
            await exchanges[0].publish(7, "0x" + "11" * 20, b"\x01" * 65)
            await exchanges[1].publish(7, "0x" + "22" * 20, b"\x02" * 65)
            collected = await exchanges[2].collect(7)
            assert collected == {"0x" + "11" * 20: b"\x01" * 65, "0x" + "22" * 20: b"\x02" * 65}
            assert urls[3] in exchanges[2].peer_errors and "malformed" in exchanges[2].peer_errors[urls[3]]
            assert await exchanges[2].collect(8) == {}  # nobody signed epoch 8 (404s are not errors)
            await runners[1].cleanup()  # operator 2 goes down
            collected = await exchanges[2].collect(7)
            assert list(collected) == ["0x" + "11" * 20] and urls[1] in exchanges[2].peer_errors
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{urls[0]}/v1/checkpoints/x/signature") as resp:
                    assert resp.status == 400
        finally:
            for runner in runners:
                await runner.cleanup()

    asyncio.run(scenario())
