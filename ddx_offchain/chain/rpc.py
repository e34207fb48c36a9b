"""The thin web3 shell: one operator's view of the chain and the exchange contract, over web3.py 7 (async).

Everything the watcher, the verifier and the checkpointer ask of the chain goes through `ChainRpc`, so tests can
put a failing or lying RPC in front of a real chain. `Web3ChainRpc` implements it with an `AsyncWeb3` (HTTP for a
node such as anvil or a provider; eth-tester's in-process py-evm for the embedded chain) and the exchange ABI from
the compiled artifacts or the deployment manifest (never copied by hand). `RpcHealth` counts failures for status
and metrics; callers retry with `relay_policy.Backoff`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from eth_account import Account
from web3 import AsyncWeb3
from web3.exceptions import BlockNotFound, Web3TypeError

from ..protocol import inbox as ib
from ..protocol import operator_messages as om
from .core.blocks import BlockHeader, ChainDataError, DepositEvent, ForcedEvent, InboxEvent, inbox_order
from .core.relay_policy import Fees

GAS_HEADROOM_PERCENT = 25
GAS_FLOOR = 30_000


class ChainRpc(Protocol):
    async def block_number(self) -> int: ...

    async def headers(self, first: int, last: int) -> list[BlockHeader]: ...

    async def inbox_events(self, first: int, last: int) -> list[InboxEvent]: ...

    async def inbox_head(self, block_number: int | None = None) -> ib.InboxCursor: ...

    async def base_fee(self) -> int: ...

    async def operator_set(self) -> om.OperatorSet: ...

    async def checkpoint_root(self, epoch: int) -> bytes: ...

    async def latest_epoch(self) -> int: ...

    async def recorded_block(self, epoch: int, from_block: int) -> int | None: ...

    async def pending_nonce(self, address: str) -> int: ...

    async def send_checkpoint(
        self, key: bytes, message: om.Checkpoint, quorum: om.QuorumSignatures, operator_set: om.OperatorSet,
        fees: Fees, nonce: int, search_from: int = 0,
    ) -> bytes: ...

    async def receipt(self, tx_hash: bytes) -> tuple[int, int] | None: ...


@dataclass
class RpcHealth:
    """Failures of one RPC endpoint as one component sees them (for /v1/status and /metrics)."""

    consecutive_failures: int = 0
    total_failures: int = 0
    last_error: str | None = None
    recent: list[str] = field(default_factory=list)

    def failed(self, error: BaseException) -> None:
        self.consecutive_failures += 1
        self.total_failures += 1
        self.last_error = f"{type(error).__name__}: {error}"[:300]
        self.recent = (self.recent + [self.last_error])[-5:]

    def succeeded(self) -> None:
        self.consecutive_failures = 0

    def status(self) -> dict:
        return {
            "ok": self.consecutive_failures == 0,
            "consecutiveFailures": self.consecutive_failures,
            "totalFailures": self.total_failures,
            "lastError": self.last_error,
        }


class Web3ChainRpc:
    """ChainRpc over an AsyncWeb3 and the deployed exchange."""

    def __init__(self, w3: AsyncWeb3, exchange: str, abi: list) -> None:
        self.w3 = w3
        self._batching = True
        self.exchange = w3.eth.contract(address=AsyncWeb3.to_checksum_address(exchange), abi=abi)

    async def block_number(self) -> int:
        return int(await self.w3.eth.block_number)

    async def close(self) -> None:
        """Release the provider's HTTP session (a no-op for the in-process chain)."""
        from web3 import AsyncHTTPProvider

        if isinstance(self.w3.provider, AsyncHTTPProvider):
            await self.w3.provider.disconnect()

    async def headers(self, first: int, last: int) -> list[BlockHeader]:
        """Headers first..last, ascending, stopping at the first one the node does not have. One JSON-RPC batch when
        the provider supports batching (a catch-up costs one round trip per batch, not per block)."""
        if last > first and self._batching:
            try:
                async with self.w3.batch_requests() as batch:
                    for number in range(first, last + 1):
                        batch.add(self.w3.eth.get_block(number))
                    blocks = await batch.async_execute()
                return _headers_until_missing(blocks)
            except Web3TypeError:
                self._batching = False  # e.g. the in-process eth-tester provider
            except Exception:
                pass  # a block past the head fails the batch: fetch one by one, stopping there
        out = []
        for number in range(first, last + 1):
            try:
                block = await self.w3.eth.get_block(number)
            except BlockNotFound:
                break
            if block is None:
                break
            out.append(_header(block))
        return out

    async def inbox_events(self, first: int, last: int) -> list[InboxEvent]:
        """Every Deposit and ForcedRequest log of blocks first..last, in the contract's order."""
        return inbox_order(await self.deposits(first, last) + await self.forced_requests(first, last))

    async def inbox_head(self, block_number: int | None = None) -> ib.InboxCursor:
        """The contract's inbox head (counts and rolling hash) after block `block_number` (default: latest)."""
        block = "latest" if block_number is None else block_number
        deposits, forced, acc = await self.exchange.functions.inbox_head().call(block_identifier=block)
        return ib.InboxCursor(int(deposits), int(forced), bytes(acc))

    async def _logs(self, event: str, first: int, last: int) -> list:
        """The exchange's `event` logs of blocks first..last; a log from another contract is an RPC lie."""
        logs = await getattr(self.exchange.events, event).get_logs(from_block=first, to_block=last)
        for log in logs:
            if log["address"].lower() != self.exchange.address.lower():
                raise ChainDataError(f"a {event} log from another contract")
        return logs

    async def forced_requests(self, first: int, last: int) -> list[ForcedEvent]:
        out = []
        for log in await self._logs("ForcedRequest", first, last):
            args = log["args"]
            out.append(
                ForcedEvent(
                    seq=int(args["seq"]),
                    trader=bytes.fromhex(args["trader"][2:]),
                    request_type=int(args["request_type"]),
                    deposits_before=int(args["deposits_before"]),
                    fields=bytes(args["fields"]),
                    block_number=int(log["blockNumber"]),
                    block_hash=bytes(log["blockHash"]),
                    log_index=int(log["logIndex"]),
                )
            )
        return out

    async def inbox_suffix(self, cursor: ib.InboxCursor, after_block: int, search_from: int = 0) -> list[bytes]:
        """The inbox leaves after `cursor` up to the contract's head, which `submit_checkpoint_with_leaves` takes
        to prove a cursor behind the head. An honest state took whole blocks, so they were logged after
        `after_block` (its anchor); a state that skipped an entry has one before it, found by searching again from
        `search_from` (the deployment block). Raises ChainDataError when the logs do not reach the head (it moved,
        or the RPC lost a log)."""
        head = await self.inbox_head()
        if head == cursor:
            return []
        latest = await self.block_number()
        for first in dict.fromkeys((after_block + 1, min(search_from, after_block + 1))):
            events = await self.inbox_events(first, latest)
            leaves = [
                e.leaf() for e in events if e.seq > (cursor.deposits if type(e) is DepositEvent else cursor.forced)
            ]
            reached = cursor.after(leaves)
            if reached == head:
                break
        else:
            raise ChainDataError(
                f"inbox logs from block {first} take the cursor to {reached.deposits}/{reached.forced}, "
                f"the head is {head.deposits}/{head.forced}: asking again"
            )
        if len(leaves) > ib.MAX_SUFFIX:
            raise ChainDataError(f"{len(leaves)} inbox entries after the checkpoint's cursor, at most {ib.MAX_SUFFIX}")
        return leaves

    async def deposits(self, first: int, last: int) -> list[DepositEvent]:
        out = []
        for log in await self._logs("Deposit", first, last):
            args = log["args"]
            out.append(
                DepositEvent(
                    seq=int(args["seq"]),
                    trader=bytes.fromhex(args["trader"][2:]),
                    strategy=bytes(args["strategy"]),
                    token=bytes.fromhex(args["token"][2:]),
                    amount=int(args["amount"]),
                    block_number=int(log["blockNumber"]),
                    block_hash=bytes(log["blockHash"]),
                    log_index=int(log["logIndex"]),
                )
            )
        return out

    async def base_fee(self) -> int:
        block = await self.w3.eth.get_block("latest")
        return int(block.get("baseFeePerGas", 0))

    async def operator_set(self) -> om.OperatorSet:
        set_id, threshold, members = await self.exchange.functions.operator_set().call()
        supermajority = bool(await self.exchange.functions.supermajority_required().call())
        return om.OperatorSet(int(set_id), int(threshold), tuple(members), supermajority)

    async def checkpoint_root(self, epoch: int) -> bytes:
        return bytes(await self.exchange.functions.checkpoint_root(epoch).call())

    async def latest_epoch(self) -> int:
        return int(await self.exchange.functions.latest_epoch().call())

    async def recorded_block(self, epoch: int, from_block: int) -> int | None:
        logs = await self.exchange.events.CheckpointRecorded.get_logs(
            argument_filters={"epoch": epoch}, from_block=from_block, to_block="latest"
        )
        blocks = [int(log["blockNumber"]) for log in logs if int(log["args"]["epoch"]) == epoch]
        return max(blocks) if blocks else None

    async def recorded_checkpoints(self, from_block: int) -> list[tuple[int, bytes, int, bytes, int]]:
        """Every CheckpointRecorded event since `from_block`: (epoch, root, l1 block, l1 block hash, block)."""
        logs = await self.exchange.events.CheckpointRecorded.get_logs(from_block=from_block, to_block="latest")
        return [
            (
                int(log["args"]["epoch"]),
                bytes(log["args"]["state_root"]),
                int(log["args"]["l1_block_number"]),
                bytes(log["args"]["l1_block_hash"]),
                int(log["blockNumber"]),
            )
            for log in logs
        ]

    async def pending_nonce(self, address: str) -> int:
        return int(await self.w3.eth.get_transaction_count(AsyncWeb3.to_checksum_address(address), "pending"))

    async def send_checkpoint(
        self, key: bytes, message: om.Checkpoint, quorum: om.QuorumSignatures, operator_set: om.OperatorSet,
        fees: Fees, nonce: int, search_from: int = 0,
    ) -> bytes:
        """Relay a checkpoint; `search_from` is where inbox logs start (the deployment block), see inbox_suffix."""
        sender = Account.from_key(key).address
        leaves = await self.inbox_suffix(message.inbox, message.l1_block_number, search_from)
        name, args = om.checkpoint_call(message, operator_set, quorum, leaves)
        call = getattr(self.exchange.functions, name)(*args)
        # Estimating first surfaces a revert reason (stale set, epoch already recorded, wrong anchor) without
        # spending gas.
        try:
            gas = await call.estimate_gas({"from": sender})
        except Exception as exc:
            if "not in the past" not in str(exc):
                raise
            # An epoch anchored at the head (a dev chain that mines only when a transaction arrives, e.g. anvil as
            # installed) reverts when estimated at the head, although the mined transaction, in the next block,
            # would not: estimate against the pending block, where it will land.
            gas = await call.estimate_gas({"from": sender}, block_identifier="pending")
        gas = max(GAS_FLOOR, gas + gas * GAS_HEADROOM_PERCENT // 100)
        tx = await call.build_transaction(
            {
                "from": sender,
                "nonce": nonce,
                "gas": gas,
                "maxFeePerGas": fees.max_fee_per_gas,
                "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
                "chainId": int(await self.w3.eth.chain_id),
            }
        )
        signed = Account.sign_transaction(tx, key)
        return bytes(await self.w3.eth.send_raw_transaction(signed.raw_transaction))

    async def receipt(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(status, block number) of a mined transaction, or None while it is pending or unknown."""
        from web3.exceptions import TransactionNotFound

        try:
            receipt = await self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None
        if receipt is None:
            return None
        return int(receipt["status"]), int(receipt["blockNumber"])


def _header(block) -> BlockHeader:
    return BlockHeader(int(block["number"]), bytes(block["hash"]), bytes(block["parentHash"]))


def _headers_until_missing(blocks) -> list[BlockHeader]:
    out = []
    for block in blocks:
        if block is None or not hasattr(block, "get") or block.get("hash") is None:
            break
        out.append(_header(block))
    return out


def http_web3(url: str, timeout_s: float = 10.0) -> AsyncWeb3:
    """An AsyncWeb3 for a JSON-RPC URL (anvil, a provider)."""
    from web3 import AsyncHTTPProvider

    return AsyncWeb3(AsyncHTTPProvider(url, request_kwargs={"timeout": timeout_s}))


def embedded_async_web3(sync_w3) -> AsyncWeb3:
    """An AsyncWeb3 sharing the in-process chain of `embedded.embedded_web3()` (same eth-tester instance)."""
    from web3.providers.eth_tester import AsyncEthereumTesterProvider

    provider = AsyncEthereumTesterProvider()
    provider.ethereum_tester = sync_w3.provider.ethereum_tester
    return AsyncWeb3(provider)
