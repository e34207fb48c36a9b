"""Builds the optional compiled kernels of the state tree (ddx_offchain/tree/_native.c; docs/tree.md, "Compiled
build") and the compiled engine (the engine's hot modules, compiled by mypyc from the same .py files; docs/engine.md
§15, "The compiled engine"). Everything else is in pyproject.toml. If the build fails (no C compiler, no Python
headers) the install still succeeds and the tree (or the engine) runs its pure-Python reference, saying so in one
line; DDX_PURE_PYTHON=1 at install time skips the builds."""

import json
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# gcc unrolls tiny_sha3's permutation loops completely only when told it may (2x faster keccak, measured);
# other compilers get the portable flags.
_UNROLL = ["--param", "max-completely-peel-times=32", "--param", "max-completely-peeled-insns=2000"]


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        if os.environ.get("DDX_PURE_PYTHON", "") not in ("", "0"):
            print("ddx: DDX_PURE_PYTHON set, not building the compiled tree kernels", file=sys.stderr)
            return
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure leaves the pure-Python reference
            print(f"ddx: compiled tree kernels not built ({exc}); the tree will run in pure Python", file=sys.stderr)

    def build_extension(self, ext: Extension) -> None:
        base = list(ext.extra_compile_args)
        try:
            ext.extra_compile_args = base + _UNROLL
            super().build_extension(ext)
        except Exception:  # noqa: BLE001 - a compiler without gcc's --param: build with the portable flags
            ext.extra_compile_args = base
            super().build_extension(ext)


# The engine's compiled modules: mypyc compiles ddx_offchain/engine/<name>.py into one group; the .py files stay the
# source of truth and the reference (ddx_offchain/__init__.py loads them instead when DDX_PURE_PYTHON=1).
ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)
from ddx_offchain import (  # noqa: E402
    COMPILED_ENGINE_GROUP,
    COMPILED_ENGINE_MODULES,
    COMPILED_ENGINE_STAMP,
    compiled_engine_digests,
)


class BuildExt(OptionalBuildExt):
    """Adds the compiled engine to the build. Type-checking and translating to C happen when build_ext is set up, not
    when setup.py is loaded (pip loads it several times per install). All or nothing: a group whose shared
    library failed would leave modules that cannot import, so any failure removes the engine's built modules and
    the engine runs its pure-Python reference."""

    def finalize_options(self) -> None:
        self._engine_outputs: list[str] = []
        self._engine_failed: str | None = None
        self._engine_names: set[str] = set()
        if os.environ.get("DDX_PURE_PYTHON", "") not in ("", "0"):
            print("ddx: DDX_PURE_PYTHON set, not building the compiled engine", file=sys.stderr)
        else:
            try:
                from mypyc.build import mypycify

                sources = [f"ddx_offchain/engine/{name}.py" for name in COMPILED_ENGINE_MODULES]
                engine = mypycify(sources, opt_level="3", group_name=COMPILED_ENGINE_GROUP)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - no mypyc, or mypy rejected the sources
                print(f"ddx: compiled engine not built ({exc!r}); the engine will run in pure Python", file=sys.stderr)
            else:
                self.distribution.ext_modules = [*(self.distribution.ext_modules or ()), *engine]
                self._engine_names = {ext.name for ext in engine}
        super().finalize_options()

    def run(self) -> None:
        super().run()
        if self._engine_failed is not None:
            for path in self._engine_outputs:
                if os.path.exists(path):
                    os.remove(path)
            print(f"ddx: compiled engine not built ({self._engine_failed}); the engine will run in pure Python",
                  file=sys.stderr)
            return
        if not self._engine_names:
            return
        # what the build was made from: ddx_offchain/__init__.py runs the .py files instead when they differ (an
        # engine file edited since), both beside the built modules (wheels) and in the source tree (editable)
        stamp = json.dumps(compiled_engine_digests(os.path.join(ROOT, "ddx_offchain", "engine")), indent=1)
        targets = {os.path.join(ROOT, "ddx_offchain", "engine")}
        targets.update(os.path.dirname(path) for path in self._engine_outputs)
        for folder in targets:
            if os.path.isdir(folder):
                with open(os.path.join(folder, COMPILED_ENGINE_STAMP), "w") as f:
                    f.write(stamp)

    def build_extension(self, ext: Extension) -> None:
        if ext.name not in self._engine_names:
            return super().build_extension(ext)
        self._engine_outputs.append(self.get_ext_fullpath(ext.name))
        if self._engine_failed is not None:
            return
        try:
            build_ext.build_extension(self, ext)
        except Exception as exc:  # noqa: BLE001 - see the class docstring
            self._engine_failed = repr(exc)


setup(
    ext_modules=[
        Extension(
            "ddx_offchain.tree._native",
            ["ddx_offchain/tree/_native.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
