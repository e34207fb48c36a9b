"""Compiled contracts (ABI + bytecode) straight from contracts/, with the pinned vyper==0.4.3.

Used where ape is not: the embedded devnet chain and the gas benchmark. ape compiles the same sources for
`ape run deploy`; both paths feed the same deployment logic (ddx_offchain/deployment/deploy.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import DdxError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = REPO_ROOT / "contracts"

# Contract name -> source path, relative to the repository root.
SOURCES = {
    "Exchange": "contracts/Exchange.vy",
    "MockERC20": "contracts/mocks/MockERC20.vy",
    "MockAggregator": "contracts/mocks/MockAggregator.vy",
}


class ArtifactError(DdxError, RuntimeError):
    """A contract could not be found or compiled."""


SHIPPED_ABI_DIR = Path(__file__).resolve().parent / "abi"


@lru_cache(maxsize=None)
def shipped_abi(name: str) -> list:
    """The ABI of a contract as shipped in the package (deployment/abi/NAME.json): what clients and operators
    talk to the chain with, without a compiler. tests/contracts/test_shipped_abi.py keeps it equal to the
    compiled one (`python -m ddx_offchain.deployment.toolchain write-abi` rewrites it)."""
    path = SHIPPED_ABI_DIR / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except OSError:
        raise ArtifactError(f"no shipped ABI for {name!r} at {path}") from None


def write_shipped_abis() -> list[Path]:
    SHIPPED_ABI_DIR.mkdir(exist_ok=True)
    out = []
    for name in SOURCES:
        path = SHIPPED_ABI_DIR / f"{name}.json"
        path.write_text(json.dumps(compile_contract(name).abi, indent=1, sort_keys=True) + "\n")
        out.append(path)
    return out


@dataclass(frozen=True)
class Artifact:
    name: str
    source_path: str
    abi: list
    bytecode: bytes

    def abi_json(self) -> str:
        return json.dumps(self.abi, indent=1, sort_keys=True)


def compile_contract(name: str, root: Path = REPO_ROOT) -> Artifact:
    """Compile `name` (a key of SOURCES) with imports resolved from the repository root."""
    try:
        relative = SOURCES[name]
    except KeyError:
        raise ArtifactError(f"unknown contract {name!r}; known: {sorted(SOURCES)}") from None
    return compile_path(relative, name, root)


@lru_cache(maxsize=None)
def compile_path(relative: str, name: str | None = None, root: Path = REPO_ROOT) -> Artifact:
    """Compile the Vyper file at `relative` (to the repository root), e.g. a test or benchmark harness."""
    import vyper
    from vyper.compiler.input_bundle import FilesystemInputBundle

    name = name or Path(relative).stem
    path = root / relative
    if not path.is_file():
        raise ArtifactError(f"{path} not found")
    out = vyper.compile_code(
        path.read_text(),
        contract_path=relative,
        input_bundle=FilesystemInputBundle([root]),
        output_formats=["abi", "bytecode"],
    )
    return Artifact(name=name, source_path=relative, abi=out["abi"], bytecode=bytes.fromhex(out["bytecode"][2:]))
