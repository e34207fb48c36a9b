"""`pip install ddx` is the trader SDK: a wheel built from this tree, installed into a fresh venv with its declared
dependencies only, imports the client (requests, receipts, proofs, on-chain claims with the shipped ABIs) without
ape, vyper, titanoboa or the operator's libraries."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OPERATOR_ONLY = ("eth-ape", "vyper", "titanoboa", "prometheus-client", "crc32c", "cryptography", "ape-vyper")

CHECK = r"""
import sys
from ddx_offchain.client import DdxClient, Trader
from ddx_offchain.client.settlement import Settlement
from ddx_offchain.client.claims import LeafProof, claim
from ddx_offchain.deployment.artifacts import shipped_abi
from ddx_offchain.protocol.eip712 import Domain
from ddx_offchain.protocol.requests import request_from_json

domain = Domain.of(31337, "0x" + "5a" * 20)
signed = Trader(b"\x01" * 32, domain).place_order("ETHP", 0, 10**5, 2_000 * 10**6)
request, signature, _ = request_from_json(signed.to_json())
assert request == signed.request and signature == signed.signature
assert any(entry.get("name") == "claim" for entry in shipped_abi("Exchange"))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("vyper", "ape", "boa", "eth_tester", "prometheus_client"))
assert not heavy, heavy
print("sdk ok")
"""


def test_the_sdk_installs_and_imports_without_the_operator_dependencies(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "ddx_offchain", source / "ddx_offchain", ignore=shutil.ignore_patterns("__pycache__"))
    run = lambda *args, **kw: subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)  # noqa: E731
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source))
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("ddx-*.whl")

    venv = tmp_path / "venv"
    made = run(sys.executable, "-m", "venv", str(venv))
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = run(str(python), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"), str(wheel))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    listed = run(str(python), "-m", "pip", "list", "--format=freeze").stdout.lower()
    present = [name for name in OPERATOR_ONLY if f"\n{name}==" in "\n" + listed]
    assert not present, f"operator-only packages installed with the SDK: {present}"
    checked = run(str(python), "-c", CHECK, cwd=tmp_path)
    assert checked.returncode == 0 and "sdk ok" in checked.stdout, checked.stdout + checked.stderr
