"""ddx: off-chain side of a self-custodied derivatives exchange.

Pure cores (`protocol`, `tree`, `engine`, the `raft` state machine) import no asyncio, web3, sockets, files or
clock; the shells above them wire them to the world. docs/development.md draws the layers.
"""

__version__ = "0.1.0"

# DDX_PURE_PYTHON=1 runs the pure-Python reference of the compiled code: the tree's kernels
# (ddx_offchain/tree/kernels.py) and the engine's compiled modules (below). Read here, once per process, so that the
# pure cores themselves never look at the environment.
import os as _os
import sys as _sys

PURE_PYTHON = _os.environ.get("DDX_PURE_PYTHON", "") not in ("", "0")

# The engine's modules that setup.py compiles with mypyc (one group, one shared library) from these very .py files
# (docs/engine.md §15, "The compiled engine"). Compiled extension modules shadow the .py files on import, so when the
# pure reference must run (DDX_PURE_PYTHON=1, or a build made from other sources) a finder placed first on
# sys.meta_path loads exactly these modules from their .py files. A build is stale when a .py file's sha256 differs from
# the one setup.py recorded when it compiled it. All or nothing: the compiled modules call each
# other natively, so a mix is never loaded.
COMPILED_ENGINE_MODULES = ("codec", "margin", "book", "state", "risk", "triggers", "twap", "engine")
COMPILED_ENGINE_GROUP = "ddx_offchain.engine._compiled"


COMPILED_ENGINE_STAMP = "_compiled_sources.json"  # written by setup.py beside the build: the sources' digests


def compiled_engine_digests(folder: str) -> dict[str, str]:
    """sha256 of each compiled module's .py file in `folder` (setup.py records them; _engine_build compares)."""
    import hashlib

    digests = {}
    for name in COMPILED_ENGINE_MODULES:
        with open(_os.path.join(folder, name + ".py"), "rb") as f:
            digests[name] = hashlib.sha256(f.read()).hexdigest()
    return digests


def _engine_build() -> str:
    """'compiled', 'pure-python' (DDX_PURE_PYTHON=1), 'not-built' or 'stale' (a .py changed since the build)."""
    if PURE_PYTHON:
        return "pure-python"
    from importlib.machinery import EXTENSION_SUFFIXES

    folder = _os.path.join(_os.path.dirname(__file__), "engine")
    for name in COMPILED_ENGINE_MODULES:
        if not any(_os.path.exists(_os.path.join(folder, name + suffix)) for suffix in EXTENSION_SUFFIXES):
            return "not-built"
    try:
        with open(_os.path.join(folder, COMPILED_ENGINE_STAMP)) as f:
            import json

            built_from = json.load(f)
    except (OSError, ValueError):
        return "stale"
    return "compiled" if built_from == compiled_engine_digests(folder) else "stale"


class _EngineFromSource:
    """A meta-path finder that loads the compiled engine modules from their .py files."""

    names = frozenset(f"{__name__}.engine.{name}" for name in COMPILED_ENGINE_MODULES)

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname not in cls.names:
            return None
        from importlib.util import spec_from_file_location

        for folder in path or ():
            source = _os.path.join(folder, fullname.rpartition(".")[2] + ".py")
            if _os.path.isfile(source):
                return spec_from_file_location(fullname, source)
        return None


ENGINE_BUILD = _engine_build()
if ENGINE_BUILD != "compiled":
    _sys.meta_path.insert(0, _EngineFromSource)
