// Offline: the typed data and signatures of every request type agree with the Python implementation
// (vectors written by tests/app/test_js_client.py from ddx_offchain.protocol.requests) and with docs/protocol.md §7.6.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Wallet } from "ethers";
import {
  REQUEST_TYPES, buildRequest, typedData, requestHash, signRequest, requestSigner, domainOf, placeOrder, id32, nameOf,
  RequestError, batch, placeAction, forcedFields, cancelAction, batchActionId, eip1193Signer, receiptSigner, schema, wireForm,
} from "../src/index.mjs";

const KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const TRADER = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";
const DOMAIN = domainOf(31337, "0x" + "5a".repeat(20));

test("the worked example of docs/protocol.md §7.6", async () => {
  const req = placeOrder({ trader: TRADER, market: "ETHP", side: 0, price: "2000000000", size: 10n, nonce: 1, timestamp: 1700000000000 });
  assert.equal(schema.requests.PlaceOrder.typeHash, "0xc520fb6b257f6ffd85045820b6516a89832095d6e4944a7096fee8500badefa2");
  assert.equal(requestHash(req, DOMAIN), "0xec8b1367af1c0ec5ada07c9d6a418b7ddd663f3bc1a5e4c87272c8741df3d68c");
  const signed = await signRequest(new Wallet(KEY), req, DOMAIN);
  assert.equal(signed.signature, "0xd8cb1d39349d24439a87dab5e62384dbb3c5f9e3494e1eb34f45f492e867ac282dbb50063bc93c08a9f3d7bf5aeb0795cc3d3b2810ebc6198e0bb7a15630e3311b");
  assert.equal(requestSigner(signed, DOMAIN), TRADER);
  assert.deepEqual(Object.keys(wireForm(signed)), ["type", "message", "signature", "domain"]);
  assert.deepEqual(signed.domain, { chainId: "31337", verifyingContract: DOMAIN.verifyingContract });
});

test("every request type: the same message, typed data, hash and signature as Python", async (t) => {
  const path = process.env.DDX_REQUEST_VECTORS;
  assert.ok(path, "DDX_REQUEST_VECTORS names the vectors tests/app/test_js_client.py writes from Python");
  const vectors = JSON.parse(readFileSync(path, "utf8"));
  assert.deepEqual(Object.keys(vectors.requests).sort(), [...REQUEST_TYPES].sort());
  assert.ok(Object.values(vectors.requests).filter((v) => v.forced).length >= 3, "forced-field vectors");
  const domain = domainOf(vectors.domain.chainId, vectors.domain.verifyingContract);
  const wallet = new Wallet(vectors.privateKey);
  for (const [type, v] of Object.entries(vectors.requests)) {
    await t.test(type, async () => {
      const req = buildRequest(type, v.typedData.message);
      assert.deepEqual(req.message, v.typedData.message);
      assert.deepEqual(typedData(req, domain), v.typedData);
      assert.equal(requestHash(req, domain), v.requestHash);
      const signed = await signRequest(wallet, req, domain);
      assert.equal(signed.signature, v.signature);
      if (v.forced) assert.deepEqual(forcedFields(req), v.forced);
      else if (!schema.requests[type].forceable) assert.throws(() => forcedFields(req), /cannot be forced/);
    });
  }
  // and a receipt Python signed recovers to the operator
  assert.equal(receiptSigner(vectors.receipt.json, domain), vectors.receipt.operator);
});

test("an EIP-1193 provider signs the eth_signTypedData_v4 document", async () => {
  const wallet = new Wallet(KEY);
  const calls = [];
  const provider = {
    async request({ method, params }) {
      calls.push(method);
      assert.equal(method, "eth_signTypedData_v4");
      assert.equal(params[0], TRADER);
      const doc = JSON.parse(params[1]);
      const { EIP712Domain, ...types } = doc.types;
      assert.equal(EIP712Domain.length, 4);
      return wallet.signTypedData(doc.domain, types, doc.message);
    },
  };
  const req = placeOrder({ trader: TRADER, market: "ETHP", side: 1, orderType: 2, price: "2001000000", size: "1000" });
  const signed = await signRequest(eip1193Signer(provider, TRADER), req, DOMAIN);
  assert.deepEqual(calls, ["eth_signTypedData_v4"]);
  assert.equal(requestSigner(signed, DOMAIN), TRADER);
});

test("builders refuse what the node would refuse, before anything is signed", () => {
  const base = { trader: TRADER, market: "ETHP", side: 0, price: "1", size: "1" };
  assert.throws(() => placeOrder({ ...base, trader: TRADER.toLowerCase().replace("c", "C") }), RequestError);
  assert.throws(() => placeOrder({ ...base, price: 1.5 }), /integer/);
  assert.throws(() => placeOrder({ ...base, size: (1n << 129n).toString() }), /outside uint256|2\^128/);
  assert.throws(() => placeOrder({ ...base, side: 256 }), /uint8/);
  assert.throws(() => placeOrder({ ...base, reduceOnly: "yes" }), /true or false/);
  assert.throws(() => placeOrder({ ...base, colour: 1 }), /no field colour/);
  assert.throws(() => placeOrder({ trader: TRADER, side: 0, price: "1", size: "1" }), /market is required/);
  assert.throws(() => buildRequest("Nope", {}), /unknown request type/);
  assert.throws(() => batch({ trader: TRADER, actions: [] }), /1\.\.50/);
  assert.throws(() => id32("x".repeat(33)), /1\.\.32 bytes/);
  assert.equal(id32("main"), "0x6d61696e" + "00".repeat(28));
  assert.equal(nameOf(id32("ETHP")), "ETHP");
});

test("a batch's action ids", () => {
  const req = batch({ trader: TRADER, nonce: 5, timestamp: 1, actions: [
    placeAction({ market: "ETHP", side: 0, orderType: 2, price: "1990000000", size: "1000", clientOrderId: "bid-1" }),
    cancelAction("ETHP", "0x" + "11".repeat(32)),
  ] });
  assert.equal(req.message.actions[1].side, "0");
  assert.equal(req.message.actions[1].orderHash, "0x" + "11".repeat(32));
  const hash = requestHash(req, DOMAIN);
  assert.match(batchActionId(hash, 0), /^0x[0-9a-f]{64}$/);
  assert.notEqual(batchActionId(hash, 0), batchActionId(hash, 1));
});
