"""The local control port of a Raft server process: propose, read barrier and status, for tests and benchmarks.

It listens on loopback only (the server refuses any other address): it is an operator's local tool, not the
traders' API (that is `ddx_offchain/api`). Frames are the peer wire's: a 4-byte big-endian length, then msgpack.
Requests are pipelined: a client may send many before reading, and answers carry the request id.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import socket

import msgspec

from ddx_offchain.raft.codec import LENGTH_PREFIX_BYTES

from ...errors import DdxError

MAX_CONTROL_FRAME_BYTES = 1 << 20


class RequestKind(enum.IntEnum):
    PROPOSE = 0
    READ_INDEX = 1
    STATUS = 2
    TRANSFER_LEADERSHIP = 3
    LOAD = 4  # benchmark: the server proposes `count`-free load itself (see loadgen.py); answer in `status`


class ControlRequest(msgspec.Struct, array_like=True, frozen=True):
    id: int
    kind: RequestKind
    payload: bytes = b""
    client_id: bytes = b""
    sequence: int = 0
    target: int = 0  # TRANSFER_LEADERSHIP: the new leader
    # LOAD: run for `seconds` (milli-seconds here, an integer) with `window` outstanding (closed loop) or at
    # `rate` proposals per second (open loop, when rate > 0), proposing `payload`.
    load_milliseconds: int = 0
    window: int = 0
    rate: int = 0


class ControlResponse(msgspec.Struct, array_like=True, frozen=True):
    id: int
    ok: bool
    index: int = 0
    result: bytes | None = None
    duplicate: bool = False
    error: str = ""  # the error class name, e.g. "ProposalTimeoutError"
    detail: str = ""
    leader: int = 0
    status: dict | None = None


_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(ControlRequest)
_response_decoder = msgspec.msgpack.Decoder(ControlResponse)


def encode_control(message: ControlRequest | ControlResponse) -> bytes:
    payload = _encoder.encode(message)
    return len(payload).to_bytes(LENGTH_PREFIX_BYTES, "big") + payload


def decode_request(payload: bytes) -> ControlRequest:
    return _request_decoder.decode(payload)


class ControlError(DdxError):
    def __init__(self, response: ControlResponse) -> None:
        super().__init__(f"{response.error}: {response.detail}")
        self.response = response


class ControlClient:
    """Pipelined asyncio client of one server's control port."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._out = bytearray()
        self._flush_scheduled = False
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, host: str, port: int) -> ControlClient:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def _read(self) -> None:
        try:
            while True:
                length = int.from_bytes(await self._reader.readexactly(LENGTH_PREFIX_BYTES), "big")
                response = _response_decoder.decode(await self._reader.readexactly(length))
                future = self._waiting.pop(response.id, None)
                if future is not None and not future.done():
                    future.set_result(response)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            error = ConnectionError(f"control connection closed: {exc!r}")
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(error)
            self._waiting.clear()

    def send(self, request_kind: RequestKind, **fields) -> asyncio.Future:
        """Send without waiting; the future resolves to the ControlResponse."""
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        if self._task.done():
            future.set_exception(ConnectionError("control connection closed"))
            return future
        self._waiting[request_id] = future
        # Coalesce the requests of one event-loop turn into one write (one syscall instead of one each).
        self._out += encode_control(ControlRequest(request_id, request_kind, **fields))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and not self._writer.is_closing():
            self._writer.write(bytes(self._out))
        self._out.clear()

    async def call(self, request_kind: RequestKind, **fields) -> ControlResponse:
        response = await self.send(request_kind, **fields)
        if not response.ok:
            raise ControlError(response)
        return response

    async def propose(self, payload: bytes, client_id: bytes = b"", sequence: int = 0) -> ControlResponse:
        return await self.call(RequestKind.PROPOSE, payload=payload, client_id=client_id, sequence=sequence)

    async def status(self) -> dict:
        response = await self.call(RequestKind.STATUS)
        assert response.status is not None
        return response.status

    async def drain(self) -> None:
        self._flush()
        await self._writer.drain()

    async def close(self) -> None:
        self._task.cancel()
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass
