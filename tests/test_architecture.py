"""The folder tree is the architecture: arrows point inward and downward, never in a circle.

Checked on the source (AST), every import counted wherever it stands (module top, inside a function, under
`if TYPE_CHECKING:`), so a forbidden arrow fails here whether or not a test happens to execute it.

- **Layers** (`LAYERS`, bottom first): a package may import only packages of lower layers, never one of its own
  layer or above. Two packages in one layer are siblings and know nothing of each other.
- **No cycles** between modules, inside a package or across packages.
- **Pure cores** import no I/O, clock, randomness, threads or shells, and open no files.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ddx_offchain"
ROOT_NAME = "ddx_offchain"

# Bottom first. Each entry is one layer; each name is a package (or top-level module) under ddx_offchain.
LAYERS: list[set[str]] = [
    {"errors"},                      # the one error root, imports nothing
    {"protocol"},                    # the wire: EIP-712, keys, leaves, proofs            (core)
    {"tree"},                        # authenticated state tree                           (core)
    {"engine", "raft"},              # the exchange; consensus core + runtime             (core; raft runtime is I/O)
    {"deployment"},                  # artifacts, deploy steps, manifest, genesis, embedded chain
    {"node"},                        # the operator's application layer                   (shell)
    {"chain"},                       # the operator's L1 side, driving the node           (shell; chain/core pure)
    {"api", "replica"},              # HTTP/WS translation; the independent replayer and auditor
    {"client"},                      # the trader's SDK and settlement service            (edge)
    {"daemon"},                      # the `ddx node` process: assembles node + raft + chain + api
    {"devnet"},                      # the local network
    {"cli", "testing"},              # `ddx` commands (print only); test and benchmark harness
]
LAYER_OF = {name: depth for depth, layer in enumerate(LAYERS) for name in layer}

# Modules that would let wall-clock time, OS randomness, networking, threads, files or unsafe serialisation in.
FORBIDDEN_IN_CORES = {
    "asyncio", "socket", "ssl", "selectors", "threading", "multiprocessing", "subprocess", "concurrent",
    "time", "datetime", "random", "secrets", "uuid", "pickle", "marshal", "shelve",
    "os", "io", "pathlib", "shutil", "tempfile", "fcntl", "mmap", "sqlite3",
    "web3", "ape", "boa", "aiohttp", "requests", "urllib", "http",
}
# Calls that touch files even without an import (the builtin open, pathlib's readers and writers).
FILE_CALLS = {"read_text", "write_text", "read_bytes", "write_bytes"}

PURE_CORES = [
    PACKAGE / "errors.py",
    PACKAGE / "protocol",
    PACKAGE / "tree",
    PACKAGE / "engine",
    PACKAGE / "chain" / "core",
    PACKAGE / "raft" / "core",
    PACKAGE / "raft" / "rawnode.py",
    PACKAGE / "raft" / "driver.py",  # the Ready cycle the runtime and the simulator share
    PACKAGE / "raft" / "ports.py",
    PACKAGE / "raft" / "messages.py",
    PACKAGE / "raft" / "storage.py",
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _all_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _targets(path: Path, source: str | None = None):
    """(line, module) for every ddx import in `path`, resolved to the module actually loaded."""
    modules = _all_modules()
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(source if source is not None else path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if sub in modules else target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def _room(module: str) -> str | None:
    """The layered package a module belongs to (`node`, `errors`, …), None outside ddx_offchain."""
    parts = module.split(".")
    if parts[0] != ROOT_NAME or len(parts) < 2:
        return None
    return parts[1]


def _sources(roots):
    for root in roots:
        yield from ([root] if root.is_file() else sorted(root.rglob("*.py")))


def test_every_package_has_a_layer():
    rooms = {p.name if p.is_dir() else p.stem for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.name != "__init__.py")}
    assert rooms - set(LAYER_OF) == set(), "a new package needs its place in LAYERS"
    assert set(LAYER_OF) - rooms == set(), "LAYERS names a package that does not exist"


def _upward_arrows(path: Path, source: str | None = None) -> list[str]:
    room = _room(_module_name(path))
    offending = []
    for line, target in _targets(path, source):
        other = _room(target)
        if other is None or other == room:
            continue
        if room is None:  # ddx_offchain/__init__.py: the package's face, imports nothing of its own
            offending.append(f"{path.relative_to(PACKAGE)}:{line}: the package root imports {target}")
        elif LAYER_OF[other] >= LAYER_OF[room]:
            kind = "a sibling" if LAYER_OF[other] == LAYER_OF[room] else "a layer above"
            offending.append(f"{path.relative_to(PACKAGE)}:{line}: {room} imports {target} ({kind})")
    return offending


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_only_down(path: Path):
    offending = _upward_arrows(path)
    assert not offending, "\n".join(offending)


def test_the_layer_check_catches_arrows_up_and_sideways():
    probe = PACKAGE / "api" / "probe.py"  # never written
    found = "\n".join(_upward_arrows(probe, "from ..daemon import run\nfrom ..replica import audit\nfrom ..node import feeds\n"))
    assert "api imports ddx_offchain.daemon.run (a layer above)" in found
    assert "api imports ddx_offchain.replica.audit (a sibling)" in found
    assert "node" not in found


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # graphs here are a few hundred modules: recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _import_graph() -> dict[str, set[str]]:
    modules = _all_modules()
    return {name: {t for _, t in _targets(path) if t in modules and t != name} for name, path in modules.items()}


def test_no_module_cycles():
    cycles = _strongly_connected(_import_graph())
    assert not cycles, "modules that import each other (directly or around a circle):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_cycles():
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []


def test_the_core_list_is_not_empty():
    assert len(list(_sources(PURE_CORES))) > 30


def _impure(path: Path, source: str | None = None) -> list[str]:
    offending = []
    source = path.read_text() if source is None else source
    tree = ast.parse(source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [(node.lineno, node.module)]
        else:
            modules = []
        for line, module in modules:
            if module.split(".")[0] in FORBIDDEN_IN_CORES:
                offending.append(f"{path.name}:{line}: imports {module}")
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "open":
                offending.append(f"{path.name}:{node.lineno}: calls open() (files are a shell's job)")
            if isinstance(func, ast.Attribute) and func.attr in FILE_CALLS:
                offending.append(f"{path.name}:{node.lineno}: calls {func.attr}() (files are a shell's job)")
    core_rooms = {"errors", "protocol", "tree", "engine", "raft", "chain"}
    for line, target in _targets(path, source):
        room = _room(target)
        if room is not None and room not in core_rooms:
            offending.append(f"{path.name}:{line}: imports shell {target}")
        if target.startswith(f"{ROOT_NAME}.raft.") and not any(
                target == _module_name(c) or target.startswith(_module_name(c) + ".") for c in PURE_CORES):
            offending.append(f"{path.name}:{line}: imports the Raft runtime {target}")
        if target.startswith(f"{ROOT_NAME}.chain") and not target.startswith(f"{ROOT_NAME}.chain.core"):
            offending.append(f"{path.name}:{line}: imports the chain shell {target}")
    return offending


@pytest.mark.parametrize("path", list(_sources(PURE_CORES)), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_core_imports_nothing_impure(path: Path):
    offending = _impure(path)
    assert not offending, "pure core imports I/O, clock or shell code:\n" + "\n".join(offending)


def test_the_purity_check_catches_files_clocks_and_shells():
    probe = PACKAGE / "engine" / "probe.py"  # never written: the source is handed over as text
    source = "import time\nfrom ..node import history\n\ndef f(p):\n    return open(p).read()\n"
    found = "\n".join(_impure(probe, source))
    assert "imports time" in found and "calls open()" in found and "imports shell ddx_offchain.node" in found


def test_the_layer_picture_names_every_package():
    """docs/development.md says in one sentence what each folder holds; a new folder needs its sentence."""
    doc = (PACKAGE.parent / "docs" / "development.md").read_text()
    rows = {line.split("`")[1].rstrip("/").removesuffix(".py") for line in doc.splitlines() if line.startswith("| `")}
    assert set(LAYER_OF) <= rows, f"missing from docs/development.md: {sorted(set(LAYER_OF) - rows)}"
