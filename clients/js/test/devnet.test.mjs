// The client against a running devnet (DDX_DEVNET_INFO: the file `ddx devnet` writes; tests/app/conftest.py starts
// one): operator set from the chain, deposit, a resting sell and a crossing buy with verified receipts, the fill on
// the trader feed (and again on a resumed feed), the L2 book feed, REST reads, a withdrawal checkpointed and claimed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { WebSocket } from "ws";
import { Contract, JsonRpcProvider, NonceManager, Wallet } from "ethers";
import {
  DdxClient, domainOf, placeOrder, cancelAll, withdrawIntent, signRequest, ERC20_ABI, EXCHANGE_ABI, RequestRefused,
} from "../src/index.mjs";

const infoPath = process.env.DDX_DEVNET_INFO;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

test("the client against a devnet", { timeout: 300000 }, async (t) => {
  assert.ok(infoPath, "DDX_DEVNET_INFO must name a running devnet's info file (start `ddx devnet`)");
  const info = JSON.parse(readFileSync(infoPath, "utf8"));
  const provider = new JsonRpcProvider(info.rpc, info.chainId, { staticNetwork: true, pollingInterval: 250 });
  const domain = domainOf(info.chainId, info.exchange);
  const client = new DdxClient(info.apis, { domain, WebSocket });
  const [alice, bob] = info.devAccounts.slice(1, 3).map((a) => new Wallet(a.privateKey, provider));
  const [aliceTx, bobTx] = [alice, bob].map((w) => new NonceManager(w)); // ethers' pending count can lag anvil's
  const token = new Contract(info.collateral, ERC20_ABI, provider);
  const exchange = new Contract(info.exchange, EXCHANGE_ABI, provider);
  const streams = [];
  t.after(() => streams.forEach((s) => s.close()));

  await t.test("deployment and operator set", async () => {
    const about = await client.info();
    assert.equal(about.chainId, String(info.chainId));
    assert.equal(about.exchange, info.exchange);
    assert.equal(about.operators.length, info.apis.length);
    const set = await client.useChain(provider);
    assert.equal(set.operators.length, 4);
    assert.equal(set.threshold, 3);
    assert.ok(set.operators.includes(about.operator));
  });

  const amount = 10_000n * 10n ** 6n;
  await t.test("deposits are credited", async () => {
    for (const w of [aliceTx, bobTx]) {
      await (await token.connect(w).approve(info.exchange, amount)).wait();
      await (await exchange.connect(w).deposit(info.collateral, amount)).wait();
    }
    for (const w of [alice, bob]) {
      await until("the deposit credited", async () => {
        const acc = await client.account(w.address);
        return acc.accounts.some((a) => BigInt(a.collateral) >= amount);
      });
    }
  });

  const market = (await client.markets()).find((m) => m.symbol === "ETHP");
  const tick = BigInt(market.tick);
  const price = (BigInt((await client.ticker("ETHP")).mark) / tick + 5n) * tick; // above the mark: no one else's
  const size = 10_000n;
  const aliceUpdates = [];
  const books = [];
  let before;
  await t.test("a resting sell and a crossing buy: receipts verified, the fill on the feed and the book", async () => {
    const feed = client.stream({ channel: "trader", key: alice.address, onMessage: (m) => aliceUpdates.push(m) });
    streams.push(feed);
    streams.push(client.bookStream("ETHP", { onBook: (b) => books.push({ seq: b.seq, asks: b.levels("asks") }) }));
    await until("the snapshot", () => aliceUpdates.find((m) => m.type === "snapshot"));
    before = aliceUpdates[0].ordinal;

    const sell = await client.submit(await signRequest(bob, placeOrder({ trader: bob.address, market: "ETHP", side: 1, price, size }), domain));
    assert.ok(client.operators.has(sell.operatorAddress));
    assert.ok(sell.elapsedMs > 0 && sell.elapsedMs < 10000, `receipt in ${sell.elapsedMs} ms`);
    await until("the ask on the L2 feed", () => books.some((b) => b.asks.some(([p, s]) => p === price.toString() && BigInt(s) >= size)));

    const buy = await client.submit(await signRequest(alice, placeOrder({ trader: alice.address, market: "ETHP", side: 0, orderType: 1, price, size }), domain));
    assert.equal(buy.sender, alice.address);
    const fill = await until("the fill on alice's feed", () =>
      aliceUpdates.find((m) => m.type === "update" && m.kind === "Fill" && m.requestIndex === buy.requestIndex));
    assert.equal(fill.data.price, price.toString());
    assert.equal(fill.data.size, size.toString());
    // the receipt is retrievable from any operator, signed by each
    const again = await client.receipt(buy.requestHash);
    assert.equal(again.requestIndex, buy.requestIndex);
    // a duplicate submission gets the same receipt
    // the same nonce on another request is refused; nothing executes twice
    const other = placeOrder({ trader: alice.address, market: "ETHP", side: 0, price: price - tick, size, nonce: buy.nonce });
    await assert.rejects(client.submit(await signRequest(alice, other, domain)),
      (err) => err instanceof RequestRefused && err.reason === "nonce_reused");
  });

  await t.test("a feed resumed from an ordinal replays what followed, once", async () => {
    const replay = [];
    const resumed = client.stream({ channel: "trader", key: alice.address, from: before, onMessage: (m) => replay.push(m) });
    streams.push(resumed);
    await until("the replayed fill", () => replay.find((m) => m.kind === "Fill"));
    assert.ok(replay.every((m) => m.type === "update" && BigInt(m.ordinal) > BigInt(before)));
    const ordinals = replay.map((m) => m.ordinal);
    assert.equal(new Set(ordinals).size, ordinals.length);
  });

  await t.test("REST reads see the trade", async () => {
    const trades = await client.trades("ETHP", 10);
    assert.ok(trades.trades.some((x) => x.price === price.toString()));
    const fills = await until("alice's fill in history", async () => (await client.fills(alice.address)).items.find((f) => f.price === price.toString()));
    assert.equal(fills.role, "taker");
    const acc = await client.account(alice.address);
    const pos = acc.accounts.flatMap((a) => a.positions).find((p) => p.market === market.market);
    assert.equal(pos.side, "long");
    assert.ok(pos.liquidationPrice === null || BigInt(pos.liquidationPrice) < price);
    const candles = await client.candles("ETHP", "1m", 10);
    assert.ok(candles.candles.length >= 1);
    const l2 = await client.orderBook("ETHP");
    assert.match(l2.checksum, /^\d+$/);
  });

  await t.test("a withdrawal: receipted, checkpointed, claimed on-chain", async () => {
    const w = 1_000_000n;
    const claimedBefore = await exchange.claimed(alice.address, info.collateral);
    const receipt = await client.submit(await signRequest(alice, withdrawIntent({ trader: alice.address, token: info.collateral, amount: w }), domain));
    const epoch = BigInt(receipt.epoch);
    await until("a recorded checkpoint after the receipt's epoch", async () => BigInt(await exchange.latest_epoch()) >= epoch + 1n, 90000);
    const proof = await until("the withdrawal proof", async () => {
      const p = await client.withdrawalProof(alice.address, info.collateral).catch(() => null);
      return p && p.included && BigInt(p.cumulative) >= claimedBefore + w ? p : null;
    });
    const balance = await token.balanceOf(alice.address);
    await (await exchange.connect(aliceTx).claim(alice.address, info.collateral, proof.cumulative, proof.epoch, proof.proof.siblings)).wait();
    assert.equal(await token.balanceOf(alice.address), balance + BigInt(proof.cumulative) - claimedBefore);
    assert.equal(await exchange.claimed(alice.address, info.collateral), BigInt(proof.cumulative));
  });

  await t.test("cancel all", async () => {
    const r = await client.submit(await signRequest(bob, cancelAll({ trader: bob.address, market: 0 }), domain));
    assert.match(r.requestIndex, /^\d+$/);
  });
});
