"""Readable bytes32 ids: markets and strategies are named by their UTF-8 name right-padded with zeros ("ETHP" ->
0x45544850…00, "main"), so a market can be addressed by its symbol wherever its id is taken (docs/api.md).

`id32_of` reads either form; `readable_name` gives the symbol of an id when it is one. A reference starting with
`0x` is always the hex form (a name cannot start with `0x`), so no reference is ambiguous.
"""

from __future__ import annotations

import re

from .errors import ProtocolError

_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")


def id32_of(ref: bytes | str, what: str = "market") -> bytes:
    """The bytes32 id of `ref`: 32 bytes as they are, `0x` + 64 hex digits, or a readable name (1..32 bytes of
    UTF-8). ProtocolError otherwise."""
    if isinstance(ref, (bytes, bytearray)):
        if len(ref) != 32:
            raise ProtocolError(f"a {what} id is 32 bytes, got {len(ref)}")
        return bytes(ref)
    if not isinstance(ref, str):
        raise ProtocolError(f"a {what} is a 0x-hex bytes32 id or its name, got {type(ref).__name__}")
    if ref[:2].lower() == "0x":
        if not _HEX32.match(ref):
            raise ProtocolError(f"a 0x {what} id is 64 hex digits (a {what} name cannot start with 0x)")
        return bytes.fromhex(ref[2:])
    raw = ref.encode()
    if not 0 < len(raw) <= 32 or "\0" in ref:
        raise ProtocolError(f"a {what} name is 1..32 bytes of UTF-8 without NUL")
    return raw.ljust(32, b"\0")


def readable_name(id32: bytes) -> str | None:
    """The name a bytes32 id reads as (UTF-8, printable, zero-padded on the right), or None if it is not a name."""
    name_bytes = id32.rstrip(b"\0")
    if not name_bytes or b"\0" in name_bytes:
        return None
    try:
        name = name_bytes.decode()
    except UnicodeDecodeError:
        return None
    if not name.isprintable() or name[:2].lower() == "0x":
        return None
    return name
