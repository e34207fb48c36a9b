"""Differential test: the compiled engine (mypyc, built by setup.py from the engine's own .py files) and the
pure-Python reference give identical updates, state items and roots after every command of random request logs.

The stateful test's rules (test_properties.EngineMachine) generate the logs; at the end of each run the log is
replayed here, in this process's build, and in a worker process running the other build (DDX_PURE_PYTHON flipped),
and the per-step digests must be equal. So the test covers both builds in either pass of `make test`. Without a
compiled build it is skipped, unless DDX_REQUIRE_COMPILED=1, which then fails (as it does below when this very
process should be compiled and is not).

DDX_ENGINE_DIFF_EXAMPLES (default 25) and DDX_ENGINE_DIFF_STEPS (default 40) turn it up.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_differential import step_digests
from hypothesis import HealthCheck, settings
from test_properties import EngineMachine

from ddx_offchain import PURE_PYTHON
from ddx_offchain.engine import ENGINE_BUILD, encode_command

REQUIRED = os.environ.get("DDX_REQUIRE_COMPILED", "") not in ("", "0")
EXAMPLES = int(os.environ.get("DDX_ENGINE_DIFF_EXAMPLES", "25"))
STEPS = int(os.environ.get("DDX_ENGINE_DIFF_STEPS", "40"))
WORKER = Path(__file__).with_name("engine_differential.py")

if REQUIRED and not PURE_PYTHON and ENGINE_BUILD != "compiled":
    raise RuntimeError(f"DDX_REQUIRE_COMPILED=1 but the compiled engine is {ENGINE_BUILD}")


class _OtherBuild:
    """The worker process running the other build, started on first use and kept for the whole module."""

    process: subprocess.Popen | None = None
    info: dict = {}

    @classmethod
    def start(cls) -> dict:
        if cls.process is None:
            env = dict(os.environ, DDX_PURE_PYTHON="0" if PURE_PYTHON else "1")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(WORKER.parent), *sys.path)))
            cls.process = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           text=True, env=env)
            atexit.register(cls.process.kill)
            cls.info = json.loads(cls.process.stdout.readline())
        return cls.info

    @classmethod
    def digests(cls, log: list) -> list:
        cls.start()
        cls.process.stdin.write(json.dumps([encode_command(c).hex() for c in log]) + "\n")
        cls.process.stdin.flush()
        return json.loads(cls.process.stdout.readline())


def _builds() -> tuple[str, str]:
    """(this process's build, the worker's build); skips (or fails, when required) without a compiled one."""
    other = _OtherBuild.start()
    here = ENGINE_BUILD
    if "compiled" not in (here, other["build"]):
        if REQUIRED:
            raise RuntimeError(f"DDX_REQUIRE_COMPILED=1 but neither side runs the compiled engine ({here}, {other})")
        pytest.skip(f"the compiled engine is not available ({here}, {other['build']})")
    return here, other["build"]


def test_the_two_sides_run_different_builds():
    here, other = _builds()
    assert {here, other} == {"compiled", "pure-python"}
    here_file = sys.modules["ddx_offchain.engine.engine"].__file__
    pure_file = _OtherBuild.info["engine_file"] if other == "pure-python" else here_file
    assert pure_file.endswith("engine.py")  # DDX_PURE_PYTHON=1 loads the sources even though the build is present


class DifferentialMachine(EngineMachine):
    def teardown(self):
        if not hasattr(self, "d"):
            return
        _builds()
        self.d.epoch()
        mine = step_digests(self.d.log)
        theirs = _OtherBuild.digests(self.d.log)
        assert len(theirs) == len(mine)
        for i, (a, b) in enumerate(zip(mine, theirs)):
            assert a == b, f"step {i} ({type(self.d.log[i]).__name__}): {ENGINE_BUILD} {a} != other build {b}"


DifferentialMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCompiledMatchesPure = DifferentialMachine.TestCase
