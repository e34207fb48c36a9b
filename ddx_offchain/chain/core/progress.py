"""Per-epoch checkpoint progress: built → signed (k of n) → submitted (tx) → recorded → final.

Pure: no clock (times are passed in as seconds), no I/O. Signature checks use eth-account (pure computation).
The checkpointer shell (checkpointer.py) feeds it what happened; `status()` is what /v1/status shows.

Stages (docs/checkpoints.md, "Statuses"):
  built       the epoch's checkpoint message exists; this operator has not signed it yet (it is verifying the
              chain blocks the epoch sequenced, see `waiting`)
  refused     this operator will not sign: a sequenced chain block contradicts its own RPC (`reason`)
  signed      signed here; k of n signatures known, threshold t not reached yet
  quorum      k ≥ t: ready to relay (relay order and fees decide who sends when)
  submitted   a transaction carrying it was sent (tx hashes listed); not yet seen on-chain
  recorded    the contract holds this epoch's root (by anyone's transaction)
  final       recorded, and the recording block is `confirmations` deep
  superseded  a later epoch was recorded first, so this one never will be (the contract allows gaps)
  conflict    the contract holds a different root for this epoch than the one computed here: an alarm
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ...errors import DdxError
from ...protocol import operator_messages as om
from ...protocol.errors import ProtocolError

MAX_EARLY_EPOCHS = 8  # signatures kept for epochs this node has not built yet (peers ahead of it)


class Stage(str, Enum):
    BUILT = "built"
    REFUSED = "refused"
    SIGNED = "signed"
    QUORUM = "quorum"
    SUBMITTED = "submitted"
    RECORDED = "recorded"
    FINAL = "final"
    SUPERSEDED = "superseded"
    CONFLICT = "conflict"


TERMINAL = {Stage.FINAL, Stage.SUPERSEDED, Stage.CONFLICT}
ON_CHAIN = {Stage.RECORDED, Stage.FINAL}


class SignatureRejected(DdxError, ValueError):
    """A peer's signature that does not count toward the quorum (and why)."""


@dataclass
class Submission:
    tx_hash: bytes
    nonce: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    attempt: int
    sent_at: float


@dataclass
class EpochCheckpoint:
    epoch: int
    message: om.Checkpoint
    built_at: float
    stage: Stage = Stage.BUILT
    own_signature: bytes | None = None
    signatures: dict[str, bytes] = field(default_factory=dict)  # signer address -> 65-byte signature
    rejected: dict[str, str] = field(default_factory=dict)  # source (peer) -> why its answer did not count
    waiting: str | None = None  # why this operator has not signed yet
    reason: str | None = None  # why it refused, or the conflict
    quorum_at: float | None = None
    submissions: list[Submission] = field(default_factory=list)
    failures: int = 0
    last_error: str | None = None
    retry_at: float | None = None
    recorded_block: int | None = None
    recorded_at: float | None = None
    final_at: float | None = None


class CheckpointProgress:
    """Every epoch this operator has built, for one operator set on one deployment."""

    def __init__(
        self, domain: om.Domain, operator_set: om.OperatorSet, me: str, *, confirmations: int, stall_after_s: float = 60.0
    ) -> None:
        self.domain = domain
        self.stall_after_s = stall_after_s
        self.operator_set = operator_set
        self.me = om.sort_operators([me])[0]
        self.confirmations = confirmations
        self.epochs: dict[int, EpochCheckpoint] = {}
        self._early: dict[int, dict[str, bytes]] = {}
        self.head: int | None = None
        self.relay_failures_total = 0  # every failed relay attempt since start (never resets: a counter)
        self.chain_latest_epoch = 0  # the contract's latest recorded epoch, as last read

    # ---- building and signing ------------------------------------------------------------------------------

    def built(self, message: om.Checkpoint, now: float) -> EpochCheckpoint:
        if message.operator_set_id != self.operator_set.id:
            raise ProtocolError(f"checkpoint for operator set {message.operator_set_id}, current is {self.operator_set.id}")
        existing = self.epochs.get(message.epoch)
        if existing is not None:
            if existing.message != message:
                raise ProtocolError(f"epoch {message.epoch} was already built with other contents")
            return existing
        message.message()  # validates every field
        cp = self.epochs[message.epoch] = EpochCheckpoint(message.epoch, message, now)
        for source, signature in self._early.pop(message.epoch, {}).items():
            try:
                self.add_answer(message.epoch, source, signature, now)
            except SignatureRejected:
                pass
        return cp

    def wait(self, epoch: int, why: str) -> None:
        cp = self.epochs[epoch]
        if cp.stage is Stage.BUILT:
            cp.waiting = why

    def refuse(self, epoch: int, reason: str) -> None:
        cp = self.epochs[epoch]
        if cp.own_signature is None and cp.stage not in TERMINAL and cp.stage not in ON_CHAIN:
            cp.stage = Stage.REFUSED
            cp.reason = reason
            cp.waiting = None

    def signed(self, epoch: int, signature: bytes, now: float) -> None:
        cp = self.epochs[epoch]
        if cp.stage is Stage.REFUSED:
            raise ProtocolError(f"epoch {epoch} was refused: {cp.reason}")
        signer = om.recover(cp.message, self.domain, signature)
        if signer != self.me:
            raise ProtocolError(f"own signature recovers to {signer}, not {self.me}")
        cp.own_signature = signature
        cp.waiting = None
        cp.signatures[self.me] = signature
        if cp.stage is Stage.BUILT:
            cp.stage = Stage.SIGNED
        self._check_quorum(cp, now)

    def add_signature(self, epoch: int, signer: str, signature: bytes, now: float) -> None:
        """A signature for `epoch` that operator `signer` published: an answer whose source is `signer`."""
        try:
            signer = om.sort_operators([signer])[0]
        except ProtocolError as exc:
            raise SignatureRejected(str(exc)) from None
        if signer not in self.operator_set.members:
            raise SignatureRejected(f"{signer} is not in operator set {self.operator_set.id}")
        self.add_answer(epoch, signer, signature, now)

    def add_answer(self, epoch: int, source: str, signature: bytes, now: float) -> str | None:
        """A signature for `epoch` sent by `source` (a peer), whatever signer it claims to be: counted, under the
        member it recovers to over exactly this operator's checkpoint message, and never replacing a valid one
        already counted; otherwise the refusal is recorded against `source`, the one that sent it (a lying peer
        cannot displace an honest operator's signature or get it blamed). Returns the recovered member (None: kept
        for an epoch not built yet). Raises SignatureRejected."""
        if not isinstance(signature, bytes) or len(signature) != om.SIGNATURE_LENGTH:
            raise SignatureRejected(f"a signature is {om.SIGNATURE_LENGTH} bytes")
        cp = self.epochs.get(epoch)
        if cp is None:
            self._keep_early(epoch, source, signature)
            return None
        if int.from_bytes(signature[32:64], "big") > _SECP256K1_HALF_N:
            cp.rejected[source] = "high-s signature"
            raise SignatureRejected(cp.rejected[source])
        try:
            recovered = om.recover(cp.message, self.domain, signature)
        except Exception as exc:  # eth-keys raises several types for malformed signatures; om refuses v not 27/28
            cp.rejected[source] = f"unreadable signature: {exc}"
            raise SignatureRejected(cp.rejected[source]) from None
        if recovered not in self.operator_set.members:
            cp.rejected[source] = ("not a member's signature over this checkpoint: signed another checkpoint for "
                                   "this epoch (different root or anchor block), or junk")
            raise SignatureRejected(cp.rejected[source])
        cp.rejected.pop(source, None)
        cp.signatures.setdefault(recovered, signature)  # a valid signature is never replaced
        self._check_quorum(cp, now)
        return recovered

    def _keep_early(self, epoch: int, source: str, signature: bytes) -> None:
        built = max(self.epochs) if self.epochs else 0
        if epoch <= built or epoch > built + MAX_EARLY_EPOCHS:
            raise SignatureRejected(f"epoch {epoch} is not expected here (latest built {built})")
        self._early.setdefault(epoch, {})[source] = signature

    def _check_quorum(self, cp: EpochCheckpoint, now: float) -> None:
        if cp.stage is Stage.SIGNED and len(cp.signatures) >= self.operator_set.threshold:
            cp.stage = Stage.QUORUM
            cp.quorum_at = now
            cp.waiting = None

    def quorum(self, epoch: int) -> om.QuorumSignatures:
        return om.assemble_quorum(self.operator_set, self.epochs[epoch].signatures)

    # ---- relaying ------------------------------------------------------------------------------------------

    def submitted(self, epoch: int, submission: Submission) -> None:
        cp = self.epochs[epoch]
        cp.submissions.append(submission)
        cp.last_error = None
        if cp.stage is Stage.QUORUM:
            cp.stage = Stage.SUBMITTED

    def failed(self, epoch: int, error: str, retry_at: float) -> None:
        """A relay attempt failed (RPC down, estimate reverted, fee above cap, tx reverted): retried later."""
        cp = self.epochs[epoch]
        cp.failures += 1
        self.relay_failures_total += 1
        cp.last_error = error
        cp.retry_at = retry_at

    # ---- what the chain says -------------------------------------------------------------------------------

    def observe_chain(
        self, epoch: int, *, recorded_root: bytes, latest_epoch: int, recorded_block: int | None, now: float
    ) -> None:
        """The contract's `checkpoint_root(epoch)` and `latest_epoch()`; `recorded_block` is where the
        CheckpointRecorded event of this epoch was logged (None if not found yet)."""
        cp = self.epochs.get(epoch)
        if cp is None or cp.stage in TERMINAL:
            return
        if recorded_root == b"\x00" * 32:
            if latest_epoch > epoch:
                cp.stage = Stage.SUPERSEDED
                cp.reason = f"epoch {latest_epoch} was recorded first"
            elif cp.stage in ON_CHAIN:  # the recording block was reorged out
                cp.stage = Stage.SUBMITTED if cp.submissions else Stage.QUORUM
                cp.recorded_block = None
            return
        if recorded_root != cp.message.state_root:
            cp.stage = Stage.CONFLICT
            cp.reason = (
                f"the contract recorded root 0x{recorded_root.hex()} for epoch {epoch}, "
                f"this operator computed 0x{cp.message.state_root.hex()}"
            )
            return
        if cp.stage not in ON_CHAIN:
            cp.stage = Stage.RECORDED
            cp.recorded_at = now
            cp.waiting = None
            cp.last_error = None
        if recorded_block is not None:
            cp.recorded_block = recorded_block
        self._check_final(cp, now)

    def observe_head(self, head: int, now: float) -> None:
        self.head = head
        for cp in self.epochs.values():
            self._check_final(cp, now)

    def _check_final(self, cp: EpochCheckpoint, now: float) -> None:
        if (
            cp.stage is Stage.RECORDED
            and cp.recorded_block is not None
            and self.head is not None
            and self.head - cp.recorded_block >= self.confirmations
        ):
            cp.stage = Stage.FINAL
            cp.final_at = now

    def rotate(self, operator_set: om.OperatorSet) -> list[int]:
        """The contract now has another operator set: open epochs signed for the old one can never be recorded
        (the contract refuses a rotated-out set), so they are superseded; the next epoch is built for the new set.
        Returns the epochs given up."""
        if operator_set.id == self.operator_set.id:
            return []
        given_up = []
        for cp in self.epochs.values():
            if cp.stage not in TERMINAL and cp.stage not in ON_CHAIN:
                cp.stage = Stage.SUPERSEDED
                cp.reason = f"operator set {self.operator_set.id} was rotated out (now {operator_set.id}) before it was recorded"
                given_up.append(cp.epoch)
        self.operator_set = operator_set
        self._early.clear()
        return given_up

    # ---- queries -------------------------------------------------------------------------------------------

    def open_epochs(self) -> list[EpochCheckpoint]:
        return [cp for _, cp in sorted(self.epochs.items()) if cp.stage not in TERMINAL]

    def observe_latest(self, latest_epoch: int) -> None:
        """The contract's `latest_epoch()`: what is recorded, whether or not this operator built that epoch (a
        restarted node knows it at once, instead of answering `no_recorded_epoch` until it rebuilds it)."""
        self.chain_latest_epoch = max(self.chain_latest_epoch, latest_epoch)

    def last_recorded(self) -> int | None:
        recorded = [e for e, cp in self.epochs.items() if cp.stage in ON_CHAIN]
        if self.chain_latest_epoch:
            recorded.append(self.chain_latest_epoch)
        return max(recorded) if recorded else None

    def prune(self, keep: int = 16) -> None:
        """Forget terminal epochs beyond the newest `keep`."""
        for epoch in sorted(self.epochs)[:-keep]:
            if self.epochs[epoch].stage in TERMINAL:
                del self.epochs[epoch]

    def status(self, now: float) -> dict:
        epochs = [epoch_status(self, cp, now) for _, cp in sorted(self.epochs.items())]
        open_ = [e for e in epochs if e["stage"] not in {s.value for s in TERMINAL}]
        conflicts = [e for e in epochs if e["stage"] == Stage.CONFLICT.value]
        refused = [e for e in epochs if e["stage"] == Stage.REFUSED.value]
        if conflicts:
            state = "conflict"
        elif refused:
            state = "refusing"
        elif any(e["stage"] in ("built", "signed") and e["ageSeconds"] >= self.stall_after_s for e in open_):
            state = "stalled"
        elif any(e["lastError"] for e in open_):
            state = "retrying"
        elif any(e["stage"] in ("built", "signed") for e in open_):
            state = "collecting"
        elif open_:
            state = "relaying"
        else:
            state = "idle"
        return {
            "state": state,
            "operatorSet": {"id": self.operator_set.id, "threshold": self.operator_set.threshold, "size": len(self.operator_set.members)},
            "lastRecordedEpoch": self.last_recorded(),
            "lastFinalEpoch": max((e for e, cp in self.epochs.items() if cp.stage is Stage.FINAL), default=None),
            "epochs": epochs[-8:],
        }


_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


def epoch_status(progress: CheckpointProgress, cp: EpochCheckpoint, now: float) -> dict:
    """The JSON status of one epoch (docs/checkpoints.md, "Statuses")."""
    operator_set = progress.operator_set
    m = cp.message
    return {
        "epoch": cp.epoch,
        "stage": cp.stage.value,
        "root": "0x" + m.state_root.hex(),
        "l1Block": m.l1_block_number,
        "l1BlockHash": "0x" + m.l1_block_hash.hex(),
        "signatures": len(cp.signatures),
        "threshold": operator_set.threshold,
        "operators": len(operator_set.members),
        "signers": sorted(cp.signatures),
        "rejectedAnswers": dict(sorted(cp.rejected.items())),
        "waiting": cp.waiting,
        "reason": cp.reason,
        "txHashes": ["0x" + s.tx_hash.hex() for s in cp.submissions],
        "attempts": len(cp.submissions),
        "failures": cp.failures,
        "lastError": cp.last_error,
        "recordedBlock": cp.recorded_block,
        "ageSeconds": round(now - cp.built_at, 3),
        "secondsToRecord": None if cp.recorded_at is None else round(cp.recorded_at - cp.built_at, 3),
        "secondsToFinal": None if cp.final_at is None else round(cp.final_at - cp.built_at, 3),
    }
