"""Make ape find the pip-installed Vyper compiler instead of downloading one.

ape-vyper resolves compilers through vvm, which only looks in its install folder for `vyper-<version>`.
We point that name at the `vyper` executable installed next to this interpreter, so compilation is offline.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import DdxError
from .artifacts import write_shipped_abis

VYPER_VERSION = "0.4.3"


class ToolchainError(DdxError, RuntimeError):
    """The pinned Vyper compiler is not installed in this environment."""


def vvm_folder() -> Path:
    override = os.environ.get("VVM_BINARY_PATH")
    return Path(override) if override else Path.home() / ".vvm"


def pip_vyper_executable() -> Path:
    exe = Path(sys.executable).parent / "vyper"
    if not exe.exists():
        raise ToolchainError(f"vyper=={VYPER_VERSION} is not installed next to {sys.executable}")
    import vyper

    installed = vyper.__version__.split("+")[0]
    if installed != VYPER_VERSION:
        raise ToolchainError(f"vyper {installed} installed, {VYPER_VERSION} pinned")
    return exe


def link_vyper() -> Path:
    """Idempotently link vvm's `vyper-<version>` to the pip-installed compiler; returns the link."""
    target = pip_vyper_executable()
    folder = vvm_folder()
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / f"vyper-{VYPER_VERSION}"
    if link.is_symlink() or link.exists():
        if link.resolve() == target.resolve():
            return link
        link.unlink()
    link.symlink_to(target)
    return link


def main(argv: list[str]) -> int:
    if argv[1:] == ["write-abi"]:
        for path in write_shipped_abis():
            print(path)
        return 0
    if argv[1:] == ["link-vyper"]:
        print(f"vyper {VYPER_VERSION} for ape: {link_vyper()}")
        return 0
    print("usage: python -m ddx_offchain.deployment.toolchain link-vyper | write-abi", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
