"""One `ddx devnet` (anvil, the contracts, 4 operators, moving prices) for the JS client's and the browser's tests,
started as a newcomer starts it, from outside; and the app's vendored modules built as `make install` builds them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from apphelpers import NODE_MODULES, REPO, stop_process


@pytest.fixture(scope="session")
def app_built() -> None:
    """ddx_offchain/api/app/vendor/ from package-lock.json's ethers and lightweight-charts and clients/js/src."""
    assert (NODE_MODULES / "ethers").is_dir() and (NODE_MODULES / "lightweight-charts").is_dir(), \
        "node_modules lacks ethers or lightweight-charts: run `make install` (npm ci)"
    done = subprocess.run(["node", str(REPO / "clients/js/build.mjs")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="session")
def devnet(tmp_path_factory, app_built) -> dict:
    root = tmp_path_factory.mktemp("devnet")
    info_path = root / "devnet.json"
    # this checkout's code, whichever checkout the venv's editable install points at
    env = os.environ | {"DDX_DEVNET_INFO": str(info_path), "PYTHONPATH": str(REPO)}
    out, err = open(root / "devnet.out", "w"), open(root / "devnet.err", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "ddx_offchain.cli", "devnet", "--rpc-port", "0", "--epoch-seconds", "2", "--data-dir", str(root / "net")],
        env=env, stdout=out, stderr=err, cwd=root,
    )
    try:
        deadline = time.monotonic() + 180
        info = None
        while time.monotonic() < deadline and info is None:
            assert process.poll() is None, f"ddx devnet exited with {process.returncode}: {(root / 'devnet.err').read_text()[-3000:]}"
            try:
                info = json.loads(info_path.read_text())
            except (OSError, ValueError):
                time.sleep(0.2)
        assert info is not None, "the devnet did not describe itself within 180 s"
        info["infoPath"] = str(info_path)
        info["outPath"] = str(root / "devnet.out")
        yield info
    finally:
        stop_process(process, signal.SIGINT, 60)
        out.close()
        err.close()
