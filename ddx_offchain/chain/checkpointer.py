"""The checkpointer: turns each frozen epoch into a checkpoint recorded on-chain, and reports its progress.

Runs on every operator, apart from sequencing: the node calls `epoch_frozen()` when it applies an epoch advance
(engine root + the last sequenced L1 block), and `run()` (an asyncio task) does the rest, each tick:

1. verify the chain blocks sequenced up to the anchor against this operator's RPC (verifier.py), and the state's
   inbox cursor against the contract's own inbox head at the anchor block (a leader that sequenced a block past a
   deposit or forced request leaves the engine behind the contract); sign the checkpoint message
   (protocol/operator_messages.py) only if everything matches; refuse and say why otherwise;
2. publish the signature and collect the peers' (signatures.py), each checked against this operator's message;
3. once a quorum exists, relay `submit_checkpoint` when relay_policy says it is this operator's turn, with
   EIP-1559 fees under a cap, replacing a stuck transaction with bumped fees, backing off after failures;
4. watch the contract until the epoch is recorded (by anyone) and then final (confirmation depth).

A failure anywhere (RPC down, fee spike, revert, a peer offline) is retried and shown in `status()`; it never
blocks the node's sequencing, which does not wait for any of this.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from eth_account import Account

from ..protocol import operator_messages as om
from ..protocol.inbox import InboxCursor
from .core.clock import ClockLedger
from .core.prices import Verdict as PriceVerdict
from .core.progress import CheckpointProgress, EpochCheckpoint, SignatureRejected, Stage, Submission
from .core.progress import epoch_status as _epoch_entry
from .core.relay_policy import Backoff, FeePolicy, Fees, FeeTooHigh, may_relay
from .core.verification import Verdict
from .price_feed import PriceFeed
from .rpc import ChainRpc, RpcHealth
from .signatures import SignatureExchange
from .verifier import BlockVerifier

log = logging.getLogger("ddx.chain.checkpointer")


@dataclass(frozen=True)
class CheckpointerConfig:
    confirmations: int = 6  # depth after which a recorded checkpoint is final
    relay_timeout_s: float = 30.0  # each relayer's turn before the next one may send too
    resubmit_after_s: float = 60.0  # replace a transaction not mined after this long (bumped fees)
    stall_after_s: float = 120.0  # an epoch short of signatures this long shows as "stalled"
    tick_s: float = 1.0
    fee_policy: FeePolicy = field(default_factory=FeePolicy)
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=1.0, maximum=60.0))
    search_from_block: int = 0  # where to look for CheckpointRecorded events (the deployment block)
    set_refresh_s: float = 30.0  # how often the contract's operator set is read (rotations)


class Checkpointer:
    def __init__(
        self,
        *,
        rpc: ChainRpc,
        domain: om.Domain,
        operator_key: bytes,
        operator_set: om.OperatorSet,
        verifier: BlockVerifier,
        exchange: SignatureExchange,
        config: CheckpointerConfig = CheckpointerConfig(),
        relayer_key: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
        prices: PriceFeed | None = None,
        sequenced_time: ClockLedger | None = None,
    ) -> None:
        self.rpc = rpc
        self.domain = domain
        self._key = operator_key
        self._relayer_key = relayer_key or operator_key
        self.me = Account.from_key(operator_key).address
        self.relayer = Account.from_key(self._relayer_key).address
        if self.me not in operator_set.members:
            raise ValueError(f"{self.me} is not in operator set {operator_set.id}")
        self.member = True  # False once a rotation left this operator out: it stops signing
        self.verifier = verifier
        self.prices = prices
        self.sequenced_time = sequenced_time
        self.exchange = exchange
        self.config = config
        self.clock = clock
        self.progress = CheckpointProgress(
            domain, operator_set, self.me, confirmations=config.confirmations, stall_after_s=config.stall_after_s
        )
        self.health = RpcHealth()
        self._mined: set[bytes] = set()  # our transactions already mined (success or revert)
        # (epoch, root, stage, status entry) on every stage change: the node's history keeps them (/v1/checkpoints)
        self.stage_listeners: list[Callable[[int, bytes, str, dict], None]] = []
        self._stages: dict[int, Stage] = {}
        self._set_checked_at: float | None = None
        self.inbox_mismatches = 0  # epochs refused because their inbox cursor is not the contract's at the anchor
        self.price_refusals = 0  # epochs refused because a sequenced index price contradicts this operator's sources
        self.time_refusals = 0  # epochs refused because a sequenced time runs ahead of this operator's clock

    # ---- from the node -------------------------------------------------------------------------------------

    def epoch_frozen(
        self, epoch: int, state_root: bytes, l1_block_number: int, l1_block_hash: bytes, inbox: InboxCursor
    ) -> EpochCheckpoint:
        """The engine froze `epoch` with `state_root`, having sequenced L1 up to (l1_block_number, hash) and taken
        the inbox up to `inbox`."""
        message = om.Checkpoint(self.progress.operator_set.id, epoch, state_root, l1_block_number, l1_block_hash, inbox)
        cp = self.progress.built(message, self.clock())
        self._report_stages()
        return cp

    def _forget_final(self) -> None:
        """Once an epoch is final on-chain, what it covers needs no more checking: the verifier's ledger drops the
        blocks up to its anchor, the price ledger the prices before it (both would otherwise grow forever)."""
        finals = [cp for cp in self.progress.epochs.values() if cp.stage is Stage.FINAL]
        if not finals:
            return
        newest = max(finals, key=lambda cp: cp.epoch)
        self.verifier.forget_through(newest.message.l1_block_number)
        if self.prices is not None:
            self.prices.ledger.forget_before(newest.epoch)

    def _report_stages(self) -> None:
        if not self.stage_listeners:
            return
        now = self.clock()
        for epoch, cp in self.progress.epochs.items():
            if self._stages.get(epoch) is cp.stage:
                continue
            self._stages[epoch] = cp.stage
            entry = _epoch_entry(self.progress, cp, now)
            for listener in self.stage_listeners:
                try:
                    listener(epoch, cp.message.state_root, cp.stage.value, entry)
                except Exception:  # a broken observer must not stop checkpointing
                    log.exception("checkpoint stage listener failed")
        for epoch in [e for e in self._stages if e not in self.progress.epochs]:
            del self._stages[epoch]

    # ---- the loop ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # tick reports its own failures; this keeps the task alive on a bug
                log.exception("checkpointer tick failed")
            await asyncio.sleep(self.config.tick_s)

    async def tick(self) -> None:
        now = self.clock()
        try:
            head = await self.rpc.block_number()
        except Exception as exc:
            self.health.failed(exc)
            for cp in self.progress.open_epochs():
                cp.last_error = f"RPC unavailable: {self.health.last_error}"
            return
        self.progress.observe_head(head, now)
        try:
            self.progress.observe_latest(await self.rpc.latest_epoch())
        except Exception as exc:
            self.health.failed(exc)
        if self._set_checked_at is None or now - self._set_checked_at >= self.config.set_refresh_s:
            try:
                await self._refresh_operator_set()
                self._set_checked_at = now
            except Exception as exc:
                self.health.failed(exc)
        # Sign, collect and observe every open epoch first, then relay: so the relay pass knows which is newest.
        for step in (self._advance, self._relay_step):
            for cp in self.progress.open_epochs():
                try:
                    await step(cp, now)
                    self.health.succeeded()
                except Exception as exc:
                    self.health.failed(exc)
                    self.progress.failed(cp.epoch, f"RPC: {self.health.last_error}", now + self._delay(cp))
        self._forget_final()  # before prune(), which may drop the final epoch from progress
        self._report_stages()
        self.progress.prune()

    async def _advance(self, cp: EpochCheckpoint, now: float) -> None:
        if cp.stage is Stage.BUILT:
            # An epoch replayed from the log after a restart may be long recorded (or superseded): no need to
            # verify and sign it again.
            await self._observe_chain(cp, now)
        if cp.stage is Stage.BUILT:
            await self._try_sign(cp, now)
        if cp.stage in (Stage.BUILT, Stage.SIGNED, Stage.QUORUM, Stage.SUBMITTED, Stage.REFUSED):
            await self._collect(cp, now)
        if cp.stage in (Stage.SIGNED,) and len(cp.signatures) < self.progress.operator_set.threshold:
            missing = [m for m in self.progress.operator_set.members if m not in cp.signatures]
            cp.waiting = (
                f"{len(cp.signatures)} of {len(self.progress.operator_set.members)} signatures, "
                f"{self.progress.operator_set.threshold} needed (missing {', '.join(missing)})"
            )
        if cp.stage in (Stage.QUORUM, Stage.SUBMITTED, Stage.RECORDED, Stage.BUILT, Stage.REFUSED, Stage.SIGNED):
            await self._observe_chain(cp, now)

    async def _relay_step(self, cp: EpochCheckpoint, now: float) -> None:
        if cp.stage is Stage.SUBMITTED or (cp.stage is Stage.QUORUM and not self._newer_quorum(cp.epoch)):
            await self._relay(cp, now)

    def _newer_quorum(self, epoch: int) -> bool:
        """A later epoch already has its quorum: recording it supersedes this one, so this one is not sent (one
        transaction instead of two; the contract allows gaps)."""
        return any(
            e > epoch and cp.stage in (Stage.QUORUM, Stage.SUBMITTED, Stage.RECORDED, Stage.FINAL)
            for e, cp in self.progress.epochs.items()
        )

    async def _refresh_operator_set(self) -> None:
        current = await self.rpc.operator_set()
        if current.id == self.progress.operator_set.id:
            return
        given_up = self.progress.rotate(current)
        self.member = self.me in current.members
        log.warning(
            "operator set rotated to %d (%d members, threshold %d)%s; epochs given up: %s",
            current.id, len(current.members), current.threshold, "" if self.member else ", this operator is no longer in it",
            given_up,
        )

    async def _try_sign(self, cp: EpochCheckpoint, now: float) -> None:
        m = cp.message
        if not self.member:
            self.progress.refuse(cp.epoch, f"this operator is not in the current operator set {self.progress.operator_set.id}")
            return
        if m.l1_block_number == 0:
            # No chain block was sequenced before this epoch froze: there is no L1 block to anchor, and the
            # contract would compare block 0's hash with zero. Nobody should sign it; the next epoch will do.
            self.progress.refuse(cp.epoch, "the epoch anchors no L1 block (none sequenced yet): not checkpointable")
            return
        verdict = await self.verifier.check_through(m.l1_block_number, m.l1_block_hash)
        if verdict is not None:
            if verdict.verdict is Verdict.MISMATCH:
                self._refuse(cp, verdict.reason)
            else:
                self.progress.wait(cp.epoch, verdict.reason)
            return
        contract = await self.rpc.inbox_head(m.l1_block_number)
        if contract != m.inbox:
            self.inbox_mismatches += 1
            self._refuse(
                cp,
                f"the state covers {m.inbox.deposits} deposits and {m.inbox.forced} forced requests (inbox hash "
                f"0x{m.inbox.acc.hex()[:16]}…), the contract had {contract.deposits} and {contract.forced} "
                f"(0x{contract.acc.hex()[:16]}…) at anchor block {m.l1_block_number}: an inbox entry was skipped "
                "or altered",
            )
            return
        ahead = None if self.sequenced_time is None else self.sequenced_time.verdict_for_epoch(cp.epoch)
        if ahead is not None:
            self.time_refusals += 1
            self._refuse(cp, ahead.reason)
            return
        price = None if self.prices is None else self.prices.check_epoch(cp.epoch)
        if price is not None:
            if price.verdict is PriceVerdict.MISMATCH:
                self.price_refusals += 1
                self._refuse(cp, price.reason)
            else:
                self.progress.wait(cp.epoch, price.reason)
            return
        signature = om.sign(m, self.domain, self._key)
        self.progress.signed(cp.epoch, signature, now)
        await self.exchange.publish(cp.epoch, self.me, signature)
        log.info("signed checkpoint of epoch %d (root 0x%s)", cp.epoch, m.state_root.hex())

    def _refuse(self, cp: EpochCheckpoint, reason: str) -> None:
        """Never sign this epoch (nor, since states are cumulative, any later one built on the same entry)."""
        self.progress.refuse(cp.epoch, reason)
        log.error("refusing to sign epoch %d: %s", cp.epoch, reason)

    async def _collect(self, cp: EpochCheckpoint, now: float) -> None:
        if cp.own_signature is not None:
            await self.exchange.publish(cp.epoch, self.me, cp.own_signature)  # idempotent; survives peer restarts
        counted = set(cp.signatures.values())
        for answer in await self.exchange.collect(cp.epoch):
            if answer.signature in counted:
                continue
            try:
                self.progress.add_answer(cp.epoch, answer.source, answer.signature, now)
            except SignatureRejected as exc:
                log.warning("answer from %s (claiming %s) for epoch %d not counted: %s", answer.source,
                            answer.claimed_signer, cp.epoch, exc)

    async def _observe_chain(self, cp: EpochCheckpoint, now: float) -> None:
        root = await self.rpc.checkpoint_root(cp.epoch)
        latest = await self.rpc.latest_epoch()
        block = None
        if root != b"\x00" * 32 and cp.recorded_block is None:
            block = await self.rpc.recorded_block(cp.epoch, self.config.search_from_block)
        self.progress.observe_chain(cp.epoch, recorded_root=root, latest_epoch=latest, recorded_block=block, now=now)

    async def _relay(self, cp: EpochCheckpoint, now: float) -> None:
        operator_set = self.progress.operator_set
        if cp.quorum_at is None or not may_relay(
            cp.epoch, operator_set.members, self.me, now - cp.quorum_at, self.config.relay_timeout_s
        ):
            return
        if cp.retry_at is not None and now < cp.retry_at:
            return
        pending = await self._pending_submission(cp)
        if cp.retry_at is not None and now < cp.retry_at:
            return  # our last transaction just turned out reverted: back off first
        if pending is not None and now - pending.sent_at < self.config.resubmit_after_s:
            return  # give the network time to mine it
        try:
            base_fee = await self.rpc.base_fee()
            previous = Fees(pending.max_fee_per_gas, pending.max_priority_fee_per_gas) if pending else None
            fees = self.config.fee_policy.fees(base_fee, len(cp.submissions), previous)
        except FeeTooHigh as exc:
            self.progress.failed(cp.epoch, str(exc), now + self._delay(cp))
            return
        try:
            nonce = pending.nonce if pending is not None else await self.rpc.pending_nonce(self.relayer)
            tx_hash = await self.rpc.send_checkpoint(
                self._relayer_key, cp.message, self.progress.quorum(cp.epoch), operator_set, fees, nonce,
                search_from=self.config.search_from_block,
            )
        except Exception as exc:
            # A revert at estimation may just mean another relayer got there first: the next observation says.
            self.progress.failed(cp.epoch, f"relay failed: {type(exc).__name__}: {exc}"[:300], now + self._delay(cp))
            return
        self.progress.submitted(
            cp.epoch, Submission(tx_hash, nonce, fees.max_fee_per_gas, fees.max_priority_fee_per_gas, len(cp.submissions), now)
        )
        log.info("relayed epoch %d: tx 0x%s (attempt %d)", cp.epoch, tx_hash.hex(), len(cp.submissions))

    async def _pending_submission(self, cp: EpochCheckpoint) -> Submission | None:
        """Our newest transaction for this epoch if it is still unmined; reverted ones are reported."""
        if not cp.submissions:
            return None
        last = cp.submissions[-1]
        if last.tx_hash in self._mined:
            return None
        for sub in reversed(cp.submissions):
            if sub.tx_hash in self._mined:
                continue
            receipt = await self.rpc.receipt(sub.tx_hash)
            if receipt is None:
                continue
            self._mined.add(sub.tx_hash)
            status, block = receipt
            if status == 0:
                self.progress.failed(
                    cp.epoch, f"transaction 0x{sub.tx_hash.hex()} reverted in block {block}", self.clock() + self._delay(cp)
                )
            return None  # one of the same-nonce transactions was mined: the nonce is spent
        return last

    def _delay(self, cp: EpochCheckpoint) -> float:
        return self.config.backoff.delay(cp.failures + 1)

    # ---- status --------------------------------------------------------------------------------------------

    def status(self) -> dict:
        return self.progress.status(self.clock()) | {
            "operator": self.me,
            "relayer": self.relayer,
            "rpc": self.health.status(),
            "verifier": self.verifier.status(),
        } | ({} if self.prices is None else {"prices": self.prices.status() | {"refusals": self.price_refusals}})
