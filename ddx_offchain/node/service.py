"""One operator's request path: admission -> nonce check -> propose -> commit -> apply -> signed receipt.

A receipt is signed only after the entry is committed on a quorum (the sequencer's promise) *and* applied by this
node's state machine, so it names the request index and epoch every node computes, and a request that the state
machine refuses (expired, duplicate of another) never gets a receipt of its own. A retried request with the same
(trader, nonce) gets the receipt of the first copy, whether it is still in flight or already applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..protocol.eip712 import Domain, DomainCache, Signer, checksum_address
from ..protocol.requests import ENTRY_OPERATOR_COMMAND, Receipt, SignedReceipt, SignedRequest, encode_entry
from ..raft.fsm import Command
from .admission import Admission, AdmissionError, RefusedWhenApplied
from .sequencer import DefinitelyNotSequenced, NotLeaderError, Sequencer, SequencingError
from .state_machine import DUPLICATE, REFUSED, SEQUENCED, AppliedEntry, ExchangeStateMachine

log = logging.getLogger("ddx.node")

ENTRY_OPERATOR_COMMAND_TAG = bytes([ENTRY_OPERATOR_COMMAND])
RECENT_RECEIPTS = 200_000  # receipts answerable from memory before history is consulted
PROPOSE_TIMEOUT_S = 5.0
MAX_IN_FLIGHT = 20_000  # proposals awaiting their outcome on this node; beyond it, refuse before proposing


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """Enough to (re)sign a receipt on any node: every field is consensus data."""

    request_hash: bytes
    request_index: int
    epoch: int
    sender: bytes  # the request's signer: its trader or the trader's agent
    nonce: int

    def receipt(self) -> Receipt:
        return Receipt(self.request_hash, self.request_index, self.epoch, self.sender, self.nonce)


class _Pending:
    """A request this node proposed and awaits. The proposer reads `applied` once its proposal resolves (the
    sequencer resolves only after this node applied the entry), so it needs no future of its own; a second
    submitter of the same request (a client retry while the first is in flight) waits on a future made for it."""

    __slots__ = ("request_hash", "applied", "abandoned", "waiters")

    def __init__(self, request_hash: bytes) -> None:
        self.request_hash = request_hash
        self.applied: AppliedEntry | None = None
        self.abandoned = False  # the proposer gave up (error, timeout): waiters learn the outcome is unknown
        self.waiters: list[asyncio.Future] | None = None

    def settle(self, applied: AppliedEntry | None) -> None:
        """Record the outcome (None: abandoned) and wake every waiting retry."""
        if applied is None:
            self.abandoned = True
        else:
            self.applied = applied
        if self.waiters:
            for waiter in self.waiters:
                if not waiter.done():
                    waiter.set_result(applied)
            self.waiters = None

    def waiter(self) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if self.applied is not None or self.abandoned:
            future.set_result(self.applied)
        else:
            if self.waiters is None:
                self.waiters = []
            self.waiters.append(future)
        return future


class OperatorService:
    def __init__(
        self,
        *,
        domain: Domain,
        operator_key: bytes | None,
        machine: ExchangeStateMachine,
        sequencer: Sequencer,
        admission: Admission,
        leader_urls: dict[int, str] | None = None,
        propose_timeout_s: float = PROPOSE_TIMEOUT_S,
        lookup_receipt: Callable[[bytes], ReceiptRecord | None] | None = None,
    ) -> None:
        self.domain = domain
        self._domain_cache = DomainCache(domain)
        # None on a replica (replica/): it holds no operator key, so it serves receipts it cannot sign
        self._signer = Signer(operator_key) if operator_key is not None else None
        self.operator_address = self._signer.address if self._signer is not None else None
        self.machine = machine
        self.sequencer = sequencer
        self.admission = admission
        self.leader_urls = leader_urls or {}
        self.propose_timeout_s = propose_timeout_s
        self.max_in_flight = MAX_IN_FLIGHT
        self._lookup_receipt = lookup_receipt  # history (SQLite) for receipts older than the in-memory window
        self._pending: dict[tuple[bytes, int], _Pending] = {}
        self._operator_waiters: dict[bytes, asyncio.Future] = {}
        self._recent: OrderedDict[bytes, ReceiptRecord] = OrderedDict()
        self.listeners: list[Callable[[AppliedEntry], None]] = []
        self.observers: list[Callable[[str, float], None]] = []  # (outcome, seconds) per submission, for metrics
        self.apply_observer: Callable[[float], None] | None = None
        self.restore_listeners: list[Callable[[], None]] = []  # state replaced by a snapshot (feeds restart there)

    # ------------------------------------------------------------ the applied stream (from the sequencer)

    def apply(self, commands: Sequence[Command]) -> list[bytes | None]:
        """raft.fsm.StateMachine: the runtime hands committed commands here directly, each applied in log order
        (a proposal's outcome reaches its submitter through `_pending`, not through Raft's result)."""
        for command in commands:
            self.apply_committed(command.index, command.payload)
        return [None] * len(commands)

    def apply_committed(self, log_index: int, data: bytes) -> None:
        started = time.perf_counter()
        applied = self.machine.apply(log_index, data)
        if self.apply_observer is not None:
            self.apply_observer(time.perf_counter() - started)
        if applied is None:
            return
        if applied.request_hash is not None and applied.status == SEQUENCED:
            self._remember(ReceiptRecord(applied.request_hash, applied.request_index, applied.epoch, applied.sender, applied.nonce))
        if data[:1] == ENTRY_OPERATOR_COMMAND_TAG:
            waiter = self._operator_waiters.pop(data, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(applied)
        if applied.sender is not None:
            pending = self._pending.get((applied.sender, applied.nonce))
            if pending is not None and pending.request_hash == applied.request_hash and pending.applied is None:
                pending.settle(applied)
        for listener in self.listeners:
            try:
                listener(applied)
            except Exception:  # a broken observer (history, feeds) must never stop consensus apply
                log.exception("applied-entry listener failed at request %d", applied.request_index)

    def snapshot(self) -> bytes:
        return self.machine.snapshot()

    def capture(self) -> Callable[[], bytes]:
        return self.machine.capture()

    def restore(self, data: bytes) -> None:
        self.machine.restore(data)
        for listener in self.restore_listeners:
            listener()

    def _remember(self, record: ReceiptRecord) -> None:
        self._recent[record.request_hash] = record
        if len(self._recent) > RECENT_RECEIPTS:
            self._recent.popitem(last=False)

    # ------------------------------------------------------------ receipts

    def sign_receipt(self, record: ReceiptRecord) -> SignedReceipt:
        if self._signer is None:
            raise RuntimeError("this node holds no operator key: it cannot sign receipts")
        return record.receipt().sign(self._domain_cache, self._signer)

    def receipt_json(self, record: ReceiptRecord) -> dict:
        """The receipt, signed by this operator; unsigned (operator and signature null) on a replica."""
        if self._signer is None:
            return record.receipt().message_json() | {"operator": None, "signature": None}
        signed = self.sign_receipt(record)
        out = signed.receipt.message_json()
        out["operator"] = checksum_address(self.operator_address)
        out["signature"] = "0x" + signed.signature.hex()
        return out

    def find_receipt(self, request_hash: bytes) -> ReceiptRecord | None:
        record = self._recent.get(request_hash)
        if record is None:
            found = self.machine.seen_by_hash(request_hash)  # also after a snapshot install, inside the window
            if found is not None:
                trader, nonce, seen = found
                record = ReceiptRecord(request_hash, seen.request_index, seen.epoch, trader, nonce)
        if record is None and self._lookup_receipt is not None:
            record = self._lookup_receipt(request_hash)
        return record

    # ------------------------------------------------------------ operator commands

    async def propose_operator_command(self, command: bytes) -> AppliedEntry:
        """Sequence an operator command (the engine's encoding: chain block, prices, time, epoch, listings) and
        return how it applied. Used by the chain watcher and the epoch scheduler on the leader. The command must be
        unique (engine commands carry a request id), so its entry bytes identify it. Raises SequencingError."""
        entry = ENTRY_OPERATOR_COMMAND_TAG + command
        future = asyncio.get_running_loop().create_future()
        self._operator_waiters[entry] = future
        try:
            await asyncio.wait_for(self.sequencer.propose(entry), self.propose_timeout_s)
            done, _ = await asyncio.wait({future}, timeout=self.propose_timeout_s)
            if not done:
                raise SequencingError("committed but not applied here in time")
            return future.result()
        except asyncio.TimeoutError:
            raise SequencingError("not committed in time: outcome unknown") from None
        finally:
            self._operator_waiters.pop(entry, None)

    # ------------------------------------------------------------ submission

    async def submit(self, doc: object, origin: object | None = None) -> ReceiptRecord:
        """Admit, sequence and apply one request (its decoded JSON, docs/protocol.md §7.2); the ReceiptRecord to
        sign, or AdmissionError. `origin`: where it came from, for the rate limits (node/rate_limits.py Origin)."""
        started = time.perf_counter()
        try:
            record = await self._submit(doc, origin)
        except AdmissionError as exc:
            self._observe(exc.reason, started)
            raise
        self._observe("receipt", started)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("receipt for 0x%s", record.request_hash.hex(), extra={"request_index": record.request_index})
        return record

    def admit(self, doc: object, origin: object | None = None) -> SignedRequest:
        """Admission alone (docs/api.md, step 1), charging the origin's and the trader's rate limits; nothing is
        proposed. For a request this node holds to sequence later (`submit_admitted`): the request channel's
        cancel-on-disconnect."""
        return self.admission.admit(doc, origin)

    async def submit_admitted(self, signed: SignedRequest) -> tuple[ReceiptRecord, AppliedEntry | None]:
        """Sequence a request `admit` passed earlier: its timestamp is checked against the admission window again
        (nothing older than it is proposed by this node), the rate limits are not charged twice, the signature is
        not recovered twice; then the nonce rules, proposal and apply exactly as `submit`. Returns the record and
        how this node applied it (None when it was sequenced before: a duplicate answers the original's record)."""
        started = time.perf_counter()
        try:
            self.admission.check_timestamp(signed.request)
            outcome = await self._sequence(signed)
        except AdmissionError as exc:
            self._observe(exc.reason, started)
            raise
        self._observe("receipt", started)
        return outcome

    def _observe(self, outcome: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        for observer in self.observers:
            observer(outcome, elapsed)

    async def _submit(self, doc: object, origin: object | None) -> ReceiptRecord:
        admission = self.admission
        if admission.verifier is None:  # the default: no second coroutine frame on the hot path
            return (await self._sequence(admission.admit(doc, origin)))[0]
        return (await self._sequence(await admission.admit_async(doc, origin)))[0]

    async def _sequence(self, signed: SignedRequest) -> tuple[ReceiptRecord, AppliedEntry | None]:
        request = signed.request
        key = (signed.signer, request.nonce)
        seen = self.machine.seen(*key)
        if seen is not None:
            if seen.request_hash != signed.request_hash:
                raise AdmissionError("nonce_reused", "this nonce was already used by another request", requestIndex=seen.request_index)
            return ReceiptRecord(seen.request_hash, seen.request_index, seen.epoch, signed.signer, request.nonce), None
        pending = self._pending.get(key)
        if pending is not None:
            if pending.request_hash != signed.request_hash:
                raise AdmissionError("nonce_reused", "this nonce is in flight for another request")
            applied = await self._wait(pending.waiter())
            return self._outcome(applied, signed), applied
        if len(self._pending) >= self.max_in_flight:
            raise AdmissionError("overloaded", "too many requests in flight on this node: retry shortly")
        pending = self._pending[key] = _Pending(signed.request_hash)
        try:
            try:
                entry = encode_entry(signed)
                self.machine.note_verified(entry, signed)
                # No timer of our own: the sequencer resolves or fails every proposal within its proposal timeout
                # (Sequencer.propose), and an asyncio.wait_for here would cost a task and a timer per request.
                await self.sequencer.propose(entry)
            except NotLeaderError as exc:
                raise self._not_leader(exc.leader_id) from None
            except DefinitelyNotSequenced as exc:
                if self.sequencer.leader_id() is None:  # asked only on failure: status is not free
                    raise self._not_leader(None) from None
                raise AdmissionError("not_sequenced", f"not sequenced ({exc}): safe to retry") from None
            except SequencingError as exc:
                raise AdmissionError(
                    "outcome_unknown", f"sequencing did not complete ({exc}): retry with the same nonce"
                ) from None
            applied = pending.applied
            if applied is None:  # resolved before this node applied it: only a sequencer breaking its contract
                applied = await self._wait(pending.waiter())
            return self._outcome(applied, signed), applied
        finally:
            if self._pending.get(key) is pending:
                del self._pending[key]
            if pending.applied is None:
                pending.settle(None)

    async def _wait(self, future: asyncio.Future) -> AppliedEntry:
        """A retry waiting for the outcome of the same request proposed by an earlier submitter."""
        try:
            applied = await asyncio.wait_for(future, self.propose_timeout_s)
        except asyncio.TimeoutError:
            applied = None
        if applied is None:
            raise AdmissionError("outcome_unknown", "not applied here in time: retry with the same nonce")
        return applied

    def _outcome(self, applied: AppliedEntry, signed: SignedRequest) -> ReceiptRecord:
        request = signed.request
        if applied.status == REFUSED:
            raise RefusedWhenApplied(applied.reason or "refused", "sequenced but refused by the state machine", requestIndex=applied.request_index)
        request_index = applied.duplicate_of if applied.status == DUPLICATE else applied.request_index
        return ReceiptRecord(signed.request_hash, request_index, applied.epoch, signed.signer, request.nonce)

    def _not_leader(self, leader_id: int | None) -> AdmissionError:
        if leader_id is None:
            return AdmissionError("no_leader", "the cluster has no leader right now: retry shortly")
        return AdmissionError("not_leader", "send the request to the leader", leader=self.leader_urls.get(leader_id), leaderId=leader_id)
