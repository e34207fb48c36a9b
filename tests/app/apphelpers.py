"""Paths and environments the app's tests share."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / "node_modules"


def node_env(**extra: str) -> dict[str, str]:
    return os.environ | {"NODE_PATH": str(NODE_MODULES)} | extra


def run_node_tests(scripts: list, timeout: int, screenshots: Path | None = None, **env: str) -> list[str]:
    """Run node's test runner on `scripts` (with the browser's screenshots going to `screenshots`, if given) and
    require every test to pass; returns the screenshots' names, sorted."""
    import subprocess

    if screenshots is not None:
        env["DDX_SCREENSHOTS"] = str(screenshots)
    done = subprocess.run(
        ["node", "--test", "--test-reporter=spec", *map(str, scripts)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env=node_env(**env),
    )
    assert done.returncode == 0, done.stdout[-10000:] + done.stderr[-4000:]
    assert "fail 0" in done.stdout, done.stdout[-3000:]
    return [] if screenshots is None else sorted(p.name for p in screenshots.glob("*.png"))


def stop_process(process, sig: int, timeout: float) -> None:
    """Send `sig` and wait up to `timeout` s for the process to leave; kill it if it does not."""
    import subprocess

    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
