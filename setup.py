"""Builds the optional compiled kernels of the state tree (ddx_offchain/tree/_native.c; docs/tree.md, "Compiled
build"). Everything else is in pyproject.toml. If the build fails (no C compiler, no Python headers) the install
still succeeds and the tree runs its pure-Python reference, saying so in one line; DDX_PURE_PYTHON=1 at install
time skips the build."""

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


setup(
    ext_modules=[
        Extension(
            "ddx_offchain.tree._native",
            ["ddx_offchain/tree/_native.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
