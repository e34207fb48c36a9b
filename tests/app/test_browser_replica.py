"""The web app served by a public replica, in chromium (tests/app/browser/replica.test.mjs): a devnet, `ddx replica`
following its four operators as its own process, and the page opened from the replica. Its reads and feeds come from
the replica, its signed requests go to the operators, and an order placed through it is receipted by an operator and
shows up in the replica-served views."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from apphelpers import REPO, node_env, run_node_tests, stop_process
from test_browser import system_chromium


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.fixture
def replica(devnet, tmp_path):
    """`ddx replica` following every operator of the devnet, once it has replayed what they had sequenced when it
    started (the devnet keeps sequencing price updates, so it never stands still)."""
    target = int(_get(devnet["apis"][0] + "/v1/updates?after=0&limit=1")["lastOrdinal"])
    url = f"http://127.0.0.1:{_free_port()}"
    command = [sys.executable, "-m", "ddx_offchain.cli", "replica", "--manifest", devnet["manifest"],
               "--genesis", devnet["genesis"], "--rpc", devnet["rpc"], "--data-dir", str(tmp_path / "replica"),
               "--listen", url.removeprefix("http://"), "--confirmations", "1"]
    for api in devnet["apis"]:
        command += ["--source", api]
    log = open(tmp_path / "replica.log", "w")
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                               env=node_env(PYTHONPATH=str(REPO)))
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "replica.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the replica did not catch up within 120 s: " + (
                tmp_path / "replica.log").read_text()[-3000:]
            try:
                if int(_get(url + "/v1/updates?after=0&limit=1")["lastOrdinal"]) >= target:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        stop_process(process, signal.SIGTERM, 30)
        log.close()


def test_the_app_served_by_a_replica_in_chromium(devnet, replica, tmp_path):
    chromium = system_chromium()
    if chromium is None:
        pytest.fail("no chromium: install it with `apt-get install -y chromium` (what `make test` does as root), "
                    "or point DDX_CHROMIUM at a Chromium binary.")
    screenshots = tmp_path / "screenshots"
    shots = run_node_tests([REPO / "tests/app/browser/replica.test.mjs"], 900, screenshots,
                           DDX_DEVNET_INFO=devnet["infoPath"], DDX_REPLICA=replica, CHROMIUM=chromium)
    assert len(shots) == 3 and "replica-order-receipt-from-operator-and-fill" in shots[-1], shots
