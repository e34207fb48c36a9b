"""Start anvil (installed from npm by `make install`) on 127.0.0.1 with an ephemeral port, for the tests."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANVIL = REPO / "node_modules" / ".bin" / "anvil"
STARTUP_TIMEOUT_S = 30.0


class Anvil:
    def __init__(self, *extra_args: str) -> None:
        if not ANVIL.exists():
            pytest.fail(f"{ANVIL} is missing: run `make install` (npm ci installs anvil)")
        self.process = subprocess.Popen(
            [str(ANVIL), "--host", "127.0.0.1", "--port", "0", *extra_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.url = self._wait_for_port()

    def _wait_for_port(self) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        assert self.process.stdout is not None
        seen = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line)
            match = re.search(r"Listening on (127\.0\.0\.1:\d+)", line)
            if match:
                return f"http://{match.group(1)}"
        self.stop()
        raise RuntimeError("anvil did not start: " + "".join(seen[-10:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
