"""Typed errors raised at the protocol boundary."""

from ..errors import DdxError


class ProtocolError(DdxError, ValueError):
    """Input that does not follow docs/protocol.md."""


class ProofError(ProtocolError):
    """A malformed proof (not merely one that fails to verify)."""
