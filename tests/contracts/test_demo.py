"""`ddx devnet --contracts-only`: the settlement walk-through with no operators completes and prints every step."""

import subprocess
import sys
from pathlib import Path

from ddx_offchain.deployment.artifacts import REPO_ROOT
from ddx_offchain.deployment.manifest import load_manifest
from ddx_offchain.devnet.demo import run_demo


def test_demo_walks_deposit_checkpoint_claim(tmp_path):
    lines = []
    result = run_demo(echo=lines.append, deployments_root=tmp_path)
    text = "\n".join(lines)
    for step in ("1. deploy", "3. deposit", "5. checkpoint", "6. claim"):
        assert step in text
    assert result["deposit_seq"] == 1 and result["epoch"] == 1
    assert result["received"] == 400_000_000
    (folder,) = tmp_path.iterdir()
    assert load_manifest(folder).exchange == result["exchange"]


def test_cli_contracts_only_walk_runs_without_operators(tmp_path):
    ddx = Path(sys.executable).parent / "ddx"
    done = subprocess.run([str(ddx), "devnet", "--contracts-only"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "6. claim" in done.stdout and "trader received 400000000" in done.stdout
