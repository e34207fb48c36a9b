"""The arrows point inward: pure cores import no I/O, clock, randomness or shell packages.

Checked on the source (AST), so a forbidden import anywhere in a core module fails here, whether or not a test
happens to execute it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ddx_offchain"

# Modules that would let wall-clock time, OS randomness, networking, threads or unsafe serialisation into a core.
FORBIDDEN = {
    "asyncio", "socket", "ssl", "selectors", "threading", "multiprocessing", "subprocess", "concurrent",
    "time", "datetime", "random", "secrets", "uuid", "pickle", "marshal", "shelve",
    "web3", "ape", "boa", "aiohttp", "requests", "urllib", "http",
}
# The shells may import cores; cores never import shells.
SHELLS = {"ddx_offchain.node", "ddx_offchain.api", "ddx_offchain.chain", "ddx_offchain.client",
          "ddx_offchain.devnet", "ddx_offchain.cli"}

PURE_CORES = [
    PACKAGE / "protocol",
    PACKAGE / "tree",
    PACKAGE / "engine",
    PACKAGE / "raft" / "core",
    PACKAGE / "raft" / "rawnode.py",
    PACKAGE / "raft" / "messages.py",
    PACKAGE / "raft" / "storage.py",
]


def _sources():
    for root in PURE_CORES:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        yield from files


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _resolve_relative(path: Path, node: ast.ImportFrom) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    base = parts[: len(parts) - node.level]
    return ".".join(base + ([node.module] if node.module else []))


def test_the_core_list_is_not_empty():
    assert len(list(_sources())) > 20


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_core_imports_nothing_impure(path: Path):
    offending = [
        f"{path.name}:{line}: {module}"
        for line, module in _imports(path)
        if module.split(".")[0] in FORBIDDEN or any(module == s or module.startswith(s + ".") for s in SHELLS)
    ]
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            target = _resolve_relative(path, node)
            if any(target == s or target.startswith(s + ".") for s in SHELLS):
                offending.append(f"{path.name}:{node.lineno}: relative import of shell {target}")
    assert not offending, "pure core imports I/O, clock or shell code:\n" + "\n".join(offending)
