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
# pure reference must run (DDX_PURE_PYTHON=1, or a build older than its sources) a finder placed first on
# sys.meta_path loads exactly these modules from their .py files. All or nothing: the compiled modules call each
# other natively, so a mix is never loaded.
COMPILED_ENGINE_MODULES = ("codec", "margin", "book", "state", "risk", "triggers", "twap", "engine")
COMPILED_ENGINE_GROUP = "ddx_offchain.engine._compiled"


def _engine_build() -> str:
    """'compiled', 'pure-python' (DDX_PURE_PYTHON=1), 'not-built' or 'stale' (a .py newer than its build)."""
    if PURE_PYTHON:
        return "pure-python"
    from importlib.machinery import EXTENSION_SUFFIXES

    folder = _os.path.join(_os.path.dirname(__file__), "engine")
    for name in COMPILED_ENGINE_MODULES:
        built = [_os.path.join(folder, name + suffix) for suffix in EXTENSION_SUFFIXES]
        built = [path for path in built if _os.path.exists(path)]
        if not built:
            return "not-built"
        if _os.path.getmtime(_os.path.join(folder, name + ".py")) > _os.path.getmtime(built[0]):
            return "stale"
    return "compiled"


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
