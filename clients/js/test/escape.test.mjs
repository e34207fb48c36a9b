// Offline: the escape hatch's arithmetic agrees with Python (vectors written by tests/app/test_js_client.py from
// ddx_offchain/client/claims.py `escape_balance_owed` and chain/inbox_report.py `freeze_due`), proof documents
// made from a Python state tree verify and tampered ones do not, and the escape transaction's arguments are built
// as claims.py `escape` builds them. The devnet and browser tests send them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Interface, ZeroHash, getAddress } from "ethers";
import {
  EXCHANGE_ABI, escapeArgs, escapeBalanceOwed, escapePaid, freezeDue, EscapeError, ProofInvalid, verifyProofDocument,
} from "../src/index.mjs";

const vectors = () => {
  const path = process.env.DDX_REQUEST_VECTORS;
  assert.ok(path, "DDX_REQUEST_VECTORS names the vectors tests/app/test_js_client.py writes from Python");
  return JSON.parse(readFileSync(path, "utf8")).escape;
};
const TRADER = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";
const TOKEN = "0x" + "ab".repeat(20);
const sib = (b) => "0x" + b.repeat(32);

test("the balance part of an escape is Python's escape_balance_owed", () => {
  const cases = vectors().balanceOwed;
  assert.ok(cases.length >= 8);
  assert.ok(cases.some((c) => c.owed === "0") && cases.some((c) => BigInt(c.owed) > 2n ** 128n));
  for (const { args, owed } of cases) {
    assert.equal(escapeBalanceOwed(...args), BigInt(owed), args.join(", "));
    assert.equal(escapeBalanceOwed(...args.map(BigInt)), BigInt(owed));
  }
});

test("when the hatch may open is Python's freeze_due, with the reason", () => {
  const cases = vectors().freezeDue;
  assert.ok(cases.length >= 4);
  const reasons = new Set();
  for (const { args, at } of cases) {
    const [lastCheckpointAt, escapeDelay, covered, generationCount, generationSince, forcedDeadline] = args;
    const due = freezeDue({ lastCheckpointAt, escapeDelay, covered, generationCount, generationSince, forcedDeadline });
    assert.equal(due.at, BigInt(at), args.join(", "));
    assert.equal(due.reason, due.at === BigInt(lastCheckpointAt) + BigInt(escapeDelay) ? "no-checkpoint" : "forced-overdue");
    reasons.add(due.reason);
  }
  assert.deepEqual([...reasons].sort(), ["forced-overdue", "no-checkpoint"]);
});

test("escape arguments: a balance leaf with a withdrawal leaf, and an absence ending in another leaf", () => {
  const balance = { epoch: "7", trader: TRADER.toLowerCase(), token: TOKEN, included: true, amount: "900", deposited: "1000",
    proof: { key: sib("01"), value_hash: sib("02"), siblings: [sib("03"), sib("04")] } };
  const withdrawal = { epoch: "7", trader: TRADER, token: TOKEN, included: true, cumulative: "100", proof: { siblings: [sib("05")] } };
  assert.deepEqual(escapeArgs({ balance, withdrawal }),
    [TRADER, getAddress(TOKEN), 900n, 1000n, [sib("03"), sib("04")], 100n, [sib("05")], ZeroHash, ZeroHash]);
  const absent = { epoch: "7", trader: TRADER, token: TOKEN, included: false,
    proof: { key: sib("01"), siblings: [sib("06")], other_key: sib("07"), other_value_hash: sib("08") } };
  const args = escapeArgs({ balance: absent, withdrawal: null });
  assert.deepEqual(args.slice(2), [0n, 0n, [sib("06")], 0n, [], sib("07"), sib("08")]);
  // the exact calldata the contract takes (the ABI fragment is checked against the shipped ABI in abi.test.mjs)
  const data = new Interface(EXCHANGE_ABI).encodeFunctionData("escape", args);
  assert.equal(data.slice(0, 10), new Interface(EXCHANGE_ABI).getFunction("escape").selector);
});

test("an Escape event is read from a receipt, and a receipt without one is an EscapeError", () => {
  const exchange = "0x" + "5a".repeat(20);
  const iface = new Interface(EXCHANGE_ABI);
  const log = iface.encodeEventLog("Escape", [TRADER, TOKEN, 7n, 900n, 1000n, 100n, 950n, 50n]);
  const paid = escapePaid({ logs: [{ address: exchange, ...log }] }, exchange);
  assert.deepEqual([paid.paid, paid.unpaid, paid.epoch], [950n, 50n, 7n]);
  assert.throws(() => escapePaid({ logs: [] }, exchange), EscapeError);
});

test("proof documents from a Python state tree verify; every tampering is a ProofInvalid", () => {
  const path = process.env.DDX_REQUEST_VECTORS;
  assert.ok(path);
  const { valid } = JSON.parse(readFileSync(path, "utf8")).proofs;
  assert.ok(valid.length >= 20);
  const kinds = new Set(valid.map(({ kind, doc }) => `${kind}:${doc.included}:${"other_key" in doc.proof}`));
  assert.deepEqual([...kinds].sort(), ["balance:false:false", "balance:false:true", "balance:true:false", "withdrawal:true:false"]);
  const copy = (doc) => JSON.parse(JSON.stringify(doc));
  const flip = (hex) => hex.slice(0, -1) + (hex.endsWith("0") ? "1" : "0");
  for (const { kind, doc } of valid) {
    assert.equal(verifyProofDocument(kind, doc, doc.trader, doc.token), doc);
    const tampered = [];
    if (doc.proof.siblings.length) tampered.push((d) => { d.proof.siblings[0] = flip(d.proof.siblings[0]); });
    tampered.push((d) => { d.root = flip(d.root); });
    if (doc.included) {
      const field = kind === "withdrawal" ? "cumulative" : "amount";
      tampered.push((d) => { d[field] = String(BigInt(d[field]) + 1n); });
      tampered.push((d) => { d.included = false; });
    } else if (doc.proof.other_key) {
      tampered.push((d) => { d.proof.other_value_hash = flip(d.proof.other_value_hash); });
      tampered.push((d) => { delete d.proof.other_key; delete d.proof.other_value_hash; });
    } else {
      tampered.push((d) => { d.proof.siblings = [...d.proof.siblings, ZeroHash]; }); // an empty slot one level deeper
    }
    for (const change of tampered) {
      const bad = copy(doc);
      change(bad);
      assert.throws(() => verifyProofDocument(kind, bad, bad.trader, bad.token), ProofInvalid, `${kind} ${change}`);
    }
    // another pair's document, and the other kind's key
    assert.throws(() => verifyProofDocument(kind, doc, doc.trader, "0x" + "cd".repeat(20)), ProofInvalid);
    if (doc.included) assert.throws(() => verifyProofDocument(kind === "balance" ? "withdrawal" : "balance", doc, doc.trader, doc.token), ProofInvalid);
  }
});
