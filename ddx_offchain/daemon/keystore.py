"""The operator's signing key: an eth-account (Web3 Secret Storage v3) encrypted keystore, never plaintext.

The password comes from the environment variable the config names, or, when that is unset and a terminal is
attached, from a prompt. Nothing else is accepted: no key in the config, no key on the command line.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import DdxError

MAX_KEYSTORE_BYTES = 64 * 1024


class KeystoreError(DdxError, ValueError):
    """The keystore cannot be read or unlocked; the message says which and why (never the password)."""


def load_operator_key(
    path: Path,
    password_env: str,
    *,
    environ: Mapping[str, str] = os.environ,
    prompt: Callable[[str], str] | None = None,
    interactive: bool | None = None,
) -> bytes:
    from eth_account import Account

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {path}: {exc.strerror}") from None
    if len(raw) > MAX_KEYSTORE_BYTES:
        raise KeystoreError(f"keystore {path} is larger than {MAX_KEYSTORE_BYTES} bytes")
    try:
        document = json.loads(raw)
    except ValueError:
        raise KeystoreError(f"keystore {path} is not JSON") from None
    if not isinstance(document, dict) or "crypto" not in {k.lower() for k in document}:
        raise KeystoreError(f"keystore {path} is not an encrypted keystore (no crypto section)")
    password = environ.get(password_env)
    if password is None:
        if interactive is None:
            interactive = sys.stdin.isatty()
        if not interactive:
            raise KeystoreError(f"set {password_env} to the keystore password (no terminal to prompt on)")
        password = (prompt or getpass.getpass)(f"Password for operator keystore {path.name}: ")
    try:
        return bytes(Account.decrypt(document, password))
    except ValueError:
        raise KeystoreError(f"wrong password for keystore {path} (or a corrupt keystore)") from None
    except (KeyError, TypeError) as exc:
        raise KeystoreError(f"malformed keystore {path}: {exc!r}") from None


def write_keystore(
    path: Path, private_key: bytes, password: str, *, iterations: int | None = None, kdf: str = "pbkdf2"
) -> None:
    """Encrypt `private_key` to `path` (mode 600). Without `iterations`, eth-account's default (scrypt n=2^18);
    with it, `kdf` ("pbkdf2": the iteration count, for tests and devnets; "scrypt": the cost n)."""
    from eth_account import Account

    kwargs = {"kdf": kdf, "iterations": iterations} if iterations else {}
    document = Account.encrypt(private_key, password, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_secret(path, json.dumps(document).encode())


def write_secret(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (mode 600 from its creation: never briefly readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
