"""Checkpoint signatures between operators over HTTP: each serves its own, collects the peers'; a peer down or
answering garbage is tolerated and reported, never counted."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
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
            assert [(a.source, a.claimed_signer, a.signature) for a in collected] == [
                (urls[0], "0x" + "11" * 20, b"\x01" * 65), (urls[1], "0x" + "22" * 20, b"\x02" * 65)]
            assert urls[3] in exchanges[2].peer_errors and "malformed" in exchanges[2].peer_errors[urls[3]]
            assert await exchanges[2].collect(8) == []  # nobody signed epoch 8 (404s are not errors)
            await runners[1].cleanup()  # operator 2 goes down
            collected = await exchanges[2].collect(7)
            assert [a.source for a in collected] == [urls[0]] and urls[1] in exchanges[2].peer_errors
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{urls[0]}/v1/checkpoints/x/signature") as resp:
                    assert resp.status == 400
        finally:
            for runner in runners:
                await runner.cleanup()

    asyncio.run(scenario())


@pytest.mark.parametrize("operators, threshold", [(4, 3), (7, 5)])
def test_a_peer_answering_as_another_operator_cannot_displace_it_nor_get_it_blamed(operators, threshold):
    """Finding 2 of the security review: answers used to be filed under the signer they claim, a later one
    overwriting an earlier one, so a liar polled after honest operator X, answering "as X" with junk, erased X's
    signature everywhere (and the status blamed X). With n - 1 honest operators and threshold t = n - 1 that
    stalled every checkpoint. Now each answer counts under the member it recovers to, and the liar is blamed."""
    from types import SimpleNamespace

    from eth_account import Account

    from ddx_offchain.chain.checkpointer import Checkpointer
    from ddx_offchain.chain.core.progress import CheckpointProgress, Stage
    from ddx_offchain.protocol import operator_messages as om
    from ddx_offchain.protocol.hashing import keccak256

    keys = sorted((keccak256(b"liar test %d" % i) for i in range(operators)), key=lambda k: int(Account.from_key(k).address, 16))
    members = tuple(Account.from_key(k).address for k in keys)
    domain = om.Domain(31337, "0x" + "ab" * 20)
    message = om.Checkpoint(1, 1, b"\x42" * 32, 100, b"\x10" * 32)
    me, liar, victim = 0, operators - 1, 1  # the liar (a member) answers as the victim with junk

    async def scenario():
        ports = [free_port() for _ in range(operators)]
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        # operator 0 polls the victim first, then the liar: the order in which overwriting did the damage
        mine = HttpSignatureExchange([urls[victim], urls[liar]] + [u for i, u in enumerate(urls) if i not in (me, victim, liar)])
        runners = []
        for i in range(1, operators):
            if i == liar:
                async def lie(request):
                    return web.json_response({"epoch": "1", "signer": members[victim], "signature": "0x" + "07" * 65})
                app = web.Application()
                app.add_routes([web.get("/v1/checkpoints/{epoch}/signature", lie)])
            else:
                exchange = HttpSignatureExchange([])
                await exchange.publish(1, members[i], om.sign(message, domain, keys[i]))
                app = web.Application()
                app.add_routes(signature_routes(exchange))
            runners.append(await serve(app, ports[i]))
        try:
            progress = CheckpointProgress(domain, om.OperatorSet(1, threshold, members), members[me], confirmations=1)
            cp = progress.built(message, 0.0)
            progress.signed(1, om.sign(message, domain, keys[me]), 0.0)
            node = SimpleNamespace(exchange=mine, progress=progress, me=members[me])
            await Checkpointer._collect(node, cp, 1.0)  # what the checkpointer does each tick
            assert cp.stage is Stage.QUORUM and len(cp.signatures) == operators - 1  # everyone honest counted
            assert members[victim] in cp.signatures and members[liar] not in cp.signatures
            assert list(cp.rejected) == [urls[liar]]  # the liar is blamed, not the operator it claimed to be
            await Checkpointer._collect(node, cp, 2.0)  # and a second round changes nothing
            assert cp.signatures[members[victim]] == om.sign(message, domain, keys[victim])
        finally:
            for runner in runners:
                await runner.cleanup()

    asyncio.run(scenario())
