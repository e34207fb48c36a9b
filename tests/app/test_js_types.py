"""The JS client's TypeScript declarations (clients/js/src/*.d.mts): `tsc --noEmit --strict` compiles the integrator's
example (clients/js/examples/integrator.ts, through the package's `exports`), a module generated from the client's
run-time behaviour (tests/app/typescript/declaration_checks.mjs: every runtime export of index.mjs declared, every
builder's required fields declared required) and one holding a devnet's real answers to every read, each assigned
to its declared type (tests/app/typescript/capture_reads.mjs) — so a declaration that drifts from the code or the
API fails here."""

from __future__ import annotations

import json
import subprocess

from apphelpers import NODE_MODULES, REPO, node_env

CLIENT = REPO / "clients" / "js"
EXAMPLE = CLIENT / "examples"
TSC = NODE_MODULES / ".bin" / "tsc"


def write_checks(tmp_path) -> str:
    checks = tmp_path / "declaration_checks.mts"
    done = subprocess.run(["node", str(REPO / "tests/app/typescript/declaration_checks.mjs"), str(checks)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=node_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return str(checks)


def typecheck(tmp_path, *files: str) -> subprocess.CompletedProcess:
    assert TSC.exists(), "node_modules lacks typescript: run `make install` (npm ci)"
    config = tmp_path / "tsconfig.json"
    config.write_text(json.dumps({"extends": str(EXAMPLE / "tsconfig.json"), "files": list(files)}))
    return subprocess.run([str(TSC), "--noEmit", "--strict", "-p", str(config)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=node_env())


def test_the_integrators_example_and_every_export_type_check(tmp_path):
    checks = write_checks(tmp_path)
    text = open(checks).read()
    assert "  DdxClient: true," in text and "  placeOrder: true," in text and "requiredBatch" in text
    done = typecheck(tmp_path, str(EXAMPLE / "integrator.ts"), checks)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_a_drifted_declaration_fails_the_check(tmp_path):
    """The check is not vacuous: an export the declarations lack, a builder field declared optional that the builder
    requires, and an integrator's mistake each fail to compile."""
    checks = write_checks(tmp_path)
    text = open(checks).read()
    undeclared = tmp_path / "undeclared.mts"
    undeclared.write_text(text.replace("  DdxClient: true,", "  DdxClient: true,\n  cancelEverything: true,"))
    required = tmp_path / "required.mts"
    required.write_text(text.replace('RequestFields<"WithdrawIntent">>, "trader" | "token" | "amount",',
                                     'RequestFields<"WithdrawIntent">>, "trader" | "token",'))
    misuse = tmp_path / "misuse.mts"
    misuse.write_text(f'import {{ placeOrder }} from {json.dumps(str(CLIENT / "src" / "index.mjs"))};\n'
                      'export const order = placeOrder({ trader: "0x", market: "ETHP", sizes: "1" });\n')
    expected = {undeclared: "cancelEverything", required: 'requiredFieldsDiffer: "WithdrawIntent"', misuse: "sizes"}
    for broken, error in expected.items():
        done = typecheck(tmp_path, str(broken))
        assert done.returncode != 0 and error in done.stdout, (broken.name, done.stdout[-3000:])


def test_a_devnets_answers_have_the_declared_types(devnet, tmp_path):
    """Every read's real answer, as a literal of its declared type: a missing, undeclared or mistyped field fails."""
    reads = tmp_path / "reads.mts"
    done = subprocess.run(["node", str(REPO / "tests/app/typescript/capture_reads.mjs"), str(reads)], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env=node_env(DDX_DEVNET_INFO=devnet["infoPath"]))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = reads.read_text()
    for declared in ("Account", "OpenOrders", "Page<Fill>", "SubmittedReceipt", "Updates"):
        assert f": {declared} = " in text
    assert '"positions": [\n' in text and '"openOrders": [\n' in text, "the traffic left a position and an open order"
    checked = typecheck(tmp_path, str(reads))
    assert checked.returncode == 0, checked.stdout[-6000:]

    undeclared = tmp_path / "undeclared_field.mts"
    undeclared.write_text(text.replace('"liquidationPrice":', '"bankruptcyPrice": "1",\n "liquidationPrice":', 1))
    checked = typecheck(tmp_path, str(undeclared))
    assert checked.returncode != 0 and "bankruptcyPrice" in checked.stdout, checked.stdout[-3000:]
