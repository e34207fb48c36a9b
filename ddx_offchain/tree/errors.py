"""Typed errors of the state tree. All derive from ProtocolError, so one `except ProtocolError` covers the wire."""

from ..protocol.errors import ProtocolError


class TreeError(ProtocolError):
    """A request the state tree refuses; the tree is left unchanged."""


class InvalidItem(TreeError):
    """A key or value that is not of the form docs/protocol.md requires (32-byte key, bounded bytes value)."""


class ItemNotFound(TreeError, KeyError):
    """The key is not in the tree (deleting or proving presence of an absent item)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "item not found"


class ItemPresent(TreeError):
    """A non-inclusion proof was asked for a key that is in the tree."""


class ValuesNotKept(TreeError):
    """get() on a tree built with keep_values=False: it holds only value hashes."""


class SnapshotError(TreeError):
    """A snapshot file or buffer that cannot be restored; the message says what is wrong."""


class SnapshotTruncated(SnapshotError):
    """The snapshot ends before the length its header and records announce."""


class SnapshotChecksumMismatch(SnapshotError):
    """The snapshot's bytes do not match its checksum: it was altered."""


class SnapshotFormatError(SnapshotError):
    """Not a ddx snapshot, an unsupported version, or a record that breaks the format."""


class SnapshotRootMismatch(SnapshotError):
    """The items in the snapshot do not hash to the root its header records."""
