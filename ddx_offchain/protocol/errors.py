"""Typed errors raised at the protocol boundary."""


class ProtocolError(ValueError):
    """Input that does not follow docs/protocol.md."""


class ProofError(ProtocolError):
    """A malformed proof (not merely one that fails to verify)."""
