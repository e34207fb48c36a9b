"""The web app in a real browser (tests/app/browser/app.test.mjs): Playwright from npm driving Debian's chromium
headless against a running devnet, with a test EIP-1193 wallet. `make test` installs chromium where the machine
allows it (`apt-get install chromium`); without it this test fails and says how to get it — it never skips."""

from __future__ import annotations

import os
import shutil

import pytest
from apphelpers import REPO, run_node_tests

CANDIDATES = ("chromium", "chromium-browser")


def system_chromium() -> str | None:
    """$DDX_CHROMIUM, else Debian's chromium on the PATH (never a browser Playwright downloads)."""
    explicit = os.environ.get("DDX_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def test_a_traders_session_in_chromium(devnet, tmp_path):
    chromium = system_chromium()
    if chromium is None:
        pytest.fail("no chromium: the browser tests drive Debian's chromium package. Install it with "
                    "`apt-get install -y chromium` (what `make test` does when it runs as root), or point "
                    "DDX_CHROMIUM at a Chromium binary.")
    screenshots = tmp_path / "screenshots"
    shots = run_node_tests([REPO / "tests/app/browser/app.test.mjs"], 900, screenshots,
                           DDX_DEVNET_INFO=devnet["infoPath"], CHROMIUM=chromium)
    assert len(shots) >= 7, shots
    assert any("claimed-and-paid" in s for s in shots) and any("order-receipt-and-fill" in s for s in shots)
