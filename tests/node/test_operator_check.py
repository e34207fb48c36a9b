"""`ddx operator check --config`: everything `ddx node` validates before starting, without starting."""

from __future__ import annotations

from typer.testing import CliRunner

from ddx_offchain.cli.app import app
from ddx_offchain.daemon.cluster_files import write_cluster
from ddx_offchain.deployment.genesis import example_genesis
from ddx_offchain.protocol.eip712 import Domain

TOKEN = "0x" + "22" * 20


def test_a_good_config_passes_and_broken_files_are_named(tmp_path, monkeypatch):
    files = write_cluster(tmp_path, 3, Domain.of(1337, "0x" + "11" * 20), example_genesis(TOKEN))
    runner = CliRunner()
    monkeypatch.setenv(files.password_env, files.password)
    done = runner.invoke(app, ["operator", "check", "--config", str(files.configs[0])])
    assert done.exit_code == 0, done.output
    assert "node 1, operator 0x" in done.output and "ok: the node would start" in done.output

    good = (tmp_path / "op2.crt").read_bytes()
    (tmp_path / "op2.crt").write_text("not a certificate")  # a peer's pinned certificate
    done = runner.invoke(app, ["operator", "check", "--config", str(files.configs[0])])
    assert done.exit_code == 2 and "peers[2].cert" in done.output
    (tmp_path / "op2.crt").write_bytes(good)

    (tmp_path / "genesis.json").write_text('{"tokens": []}')
    done = runner.invoke(app, ["operator", "check", "--config", str(files.configs[2])])
    assert done.exit_code == 2 and "genesis" in done.output

    monkeypatch.setenv(files.password_env, "wrong password")
    done = runner.invoke(app, ["operator", "check", "--config", str(files.configs[1])])
    assert done.exit_code == 2 and "keystore" in done.output.lower()
