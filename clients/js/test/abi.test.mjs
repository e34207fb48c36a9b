import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Interface } from "ethers";
import { EXCHANGE_ABI, ERC20_ABI } from "../src/abi.mjs";

const shipped = (name) => {
  const doc = JSON.parse(readFileSync(new URL(`../../../ddx_offchain/deployment/abi/${name}.json`, import.meta.url), "utf8"));
  return new Interface(Array.isArray(doc) ? doc : doc.abi);
};

for (const [name, fragments] of [["Exchange", EXCHANGE_ABI], ["MockERC20", ERC20_ABI]]) {
  test(`every ${name} fragment the client calls is in the shipped ABI`, () => {
    const full = shipped(name);
    for (const f of new Interface(fragments).fragments) {
      if (f.type === "event") {
        const event = full.getEvent(f.topicHash);
        assert.ok(event, `${f.format()} is not in ${name}.json`);
        assert.equal(event.format("full"), f.format("full"));
        continue;
      }
      const there = full.getFunction(f.selector);
      assert.ok(there, `${f.format()} is not in ${name}.json`);
      assert.equal(there.format("sighash"), f.format("sighash"));
      assert.deepEqual(there.outputs.map((o) => o.type), f.outputs.map((o) => o.type), f.format());
    }
  });
}
