"""Sharing checkpoint signatures between operators.

Each operator publishes its own signature for an epoch and collects the others'. Signatures are public data
(they go on-chain) and every one is checked on receipt against this operator's own checkpoint message
(progress.py), so the channel needs no secrecy and no trust: a peer that lies only fails to count.

`collect` returns every answer with its *source* (the peer that sent it), never a map keyed by the signer an answer
claims: a lying peer answering "as operator X" with junk must not be able to displace X's real signature, nor get
X blamed for it. The checkpointer recovers each answer's signer itself and keeps every valid one.

- `SignatureBoard`: in-process, for operators sharing one process (tests, the in-process devnet).
- `HttpSignatureExchange`: publishes locally and pulls from the peers' node APIs,
  `GET {peer}/v1/checkpoints/{epoch}/signature` -> {"epoch": "N", "signer": "0x…", "signature": "0x…"};
  `signature_routes()` gives the aiohttp route the node's API mounts to serve it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Protocol

MAX_RESPONSE_BYTES = 4096
SELF = "self"


@dataclass(frozen=True, slots=True)
class SignatureAnswer:
    source: str  # who sent it: a peer's URL, SELF, or the publishing operator on an in-process board
    claimed_signer: str  # what the answer says; never trusted (the signature's recovery decides)
    signature: bytes


class SignatureExchange(Protocol):
    async def publish(self, epoch: int, signer: str, signature: bytes) -> None: ...

    async def collect(self, epoch: int) -> list[SignatureAnswer]: ...


class SignatureBoard:
    """One board shared by the operators of one process: each publishes to it and reads the others from it."""

    def __init__(self) -> None:
        self.signatures: dict[int, dict[str, bytes]] = {}

    async def publish(self, epoch: int, signer: str, signature: bytes) -> None:
        self.signatures.setdefault(epoch, {})[signer] = signature

    async def collect(self, epoch: int) -> list[SignatureAnswer]:
        return [SignatureAnswer(signer, signer, sig) for signer, sig in self.signatures.get(epoch, {}).items()]


class HttpSignatureExchange:
    def __init__(self, peer_urls: list[str], *, timeout_s: float = 2.0) -> None:
        self.peer_urls = [u.rstrip("/") for u in peer_urls]
        self.timeout_s = timeout_s
        self.own: dict[int, tuple[str, bytes]] = {}
        self.peer_errors: dict[str, str] = {}

    async def publish(self, epoch: int, signer: str, signature: bytes) -> None:
        self.own[epoch] = (signer, signature)

    async def collect(self, epoch: int) -> list[SignatureAnswer]:
        """This operator's own signature and every peer's answer, each with the peer that sent it."""
        import aiohttp

        out: list[SignatureAnswer] = []
        if epoch in self.own:
            signer, signature = self.own[epoch]
            out.append(SignatureAnswer(SELF, signer, signature))
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            answers = await asyncio.gather(*(self._fetch(session, url, epoch) for url in self.peer_urls))
        for url, answer in zip(self.peer_urls, answers):
            if answer is not None:
                out.append(SignatureAnswer(url, *answer))
        return out

    async def _fetch(self, session, url: str, epoch: int) -> tuple[str, bytes] | None:
        try:
            async with session.get(f"{url}/v1/checkpoints/{epoch}/signature") as response:
                if response.status == 404:
                    self.peer_errors.pop(url, None)
                    return None
                body = await response.content.read(MAX_RESPONSE_BYTES + 1)
                if response.status != 200 or len(body) > MAX_RESPONSE_BYTES:
                    raise ValueError(f"HTTP {response.status}")
                data = json.loads(body)
                if str(data.get("epoch")) != str(epoch):
                    raise ValueError("answer for another epoch")
                signer, signature = data["signer"], data["signature"]
                if not (isinstance(signer, str) and isinstance(signature, str) and signature.startswith("0x")):
                    raise ValueError("malformed answer")
                self.peer_errors.pop(url, None)
                return signer, bytes.fromhex(signature[2:])
        except Exception as exc:  # a peer down or lying is the normal case this tolerates
            self.peer_errors[url] = f"{type(exc).__name__}: {exc}"[:200]
            return None

    def serve(self, epoch: int) -> dict | None:
        if epoch not in self.own:
            return None
        signer, signature = self.own[epoch]
        return {"epoch": str(epoch), "signer": signer, "signature": "0x" + signature.hex()}


def signature_routes(exchange: HttpSignatureExchange) -> list:
    """The aiohttp route serving this operator's checkpoint signatures to its peers."""
    from aiohttp import web

    async def get_signature(request: web.Request) -> web.Response:
        raw = request.match_info["epoch"]
        if not raw.isdigit() or len(raw) > 20:
            return web.json_response({"error": "bad_epoch", "detail": "epoch is a decimal integer"}, status=400)
        answer = exchange.serve(int(raw))
        if answer is None:
            return web.json_response({"error": "not_signed", "detail": "this operator has not signed that epoch"}, status=404)
        return web.json_response(answer)

    return [web.get("/v1/checkpoints/{epoch}/signature", get_signature)]
