"""Typed errors raised by the Raft core. Raising one never leaves the state machine half-changed."""

from ...errors import DdxError


class RaftError(DdxError):
    """Base class of the core's errors."""


class ProposalDroppedError(RaftError):
    """The proposal was not accepted (no leader, transfer in progress, flow control, or a membership rule)."""


class StepError(RaftError):
    """A message that must not be stepped (local-only type, response from a non-member, misuse of Ready)."""


class LogInvariantError(RaftError):
    """The log was asked to do something that would break Raft's safety (e.g. overwrite a committed entry).
    Seeing it means a bug or a corrupted storage: the node must stop."""
