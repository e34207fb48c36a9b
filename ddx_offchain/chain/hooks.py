"""Where the node's apply loop meets the chain side: one call per applied operator command.

The node (every operator, leader or not) calls `ChainHooks.applied(command, updates, engine_block)` after the
engine applied a `ChainBlock` or `AdvanceEpoch` command, with the engine's own updates and its (block number, block
hash) cursor after the command. Accepted chain blocks go to the verifier's ledger; a frozen epoch becomes a
checkpoint to build, anchored at the last L1 block the engine sequenced.
"""

from __future__ import annotations

from ..engine.commands import AdvanceEpoch, ChainBlock
from ..engine.updates import Accepted, EpochFrozen
from .checkpointer import Checkpointer
from .core.blocks import SequencedBlock
from .verifier import BlockVerifier


class ChainHooks:
    def __init__(self, verifier: BlockVerifier, checkpointer: Checkpointer | None) -> None:
        self.verifier = verifier
        self.checkpointer = checkpointer

    def applied(self, command, updates: list, engine_block: tuple[int, bytes]) -> None:
        if not updates or not isinstance(updates[0], Accepted):
            return  # a rejected command changed nothing
        if isinstance(command, ChainBlock):
            self.verifier.record(SequencedBlock.from_command(command))
        elif isinstance(command, AdvanceEpoch) and self.checkpointer is not None:
            for update in updates:
                if isinstance(update, EpochFrozen):
                    number, block_hash = engine_block
                    self.checkpointer.epoch_frozen(update.epoch, update.root, number, block_hash)
