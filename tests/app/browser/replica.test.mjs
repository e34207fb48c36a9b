// The web app served by a public replica (tests/app/test_browser_replica.py: a devnet, and `ddx replica` following
// its operators; DDX_REPLICA is the replica's URL). Chromium opens the replica's /app/ with the test wallet:
//  - the market view (ticker, book feed, chart) and the operator view render, every read and feed from the replica,
//    and the page says it is served by a replica;
//  - a deposit through the wallet is credited in the replica-served account view;
//  - an order placed through the page is POSTed to an operator (never to the replica), its receipt is signed by a
//    member of the on-chain operator set, and the fill shows in the replica-served fills, position and trades.
// No console error, no failed request. Screenshots: $DDX_SCREENSHOTS.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Contract, NonceManager, Wallet } from "ethers";
import { WebSocket } from "ws";
import { DdxClient, domainOf, fromUnits, placeOrder, signRequest, ERC20_ABI, EXCHANGE_ABI } from "../../../clients/js/src/index.mjs";
import { testWallet } from "./wallet.mjs";
import { ensureDeposited, openPage } from "./session.mjs";

const info = JSON.parse(readFileSync(process.env.DDX_DEVNET_INFO, "utf8"));
const replica = process.env.DDX_REPLICA;
const shots = process.env.DDX_SCREENSHOTS;
const origin = (url) => new URL(url).origin.replace(/^ws/, "http");

test("the app served by a replica reads from it and sends signed requests to the operators", { timeout: 600000 }, async (t) => {
  assert.ok(replica && shots && process.env.CHROMIUM, "DDX_REPLICA, DDX_SCREENSHOTS and CHROMIUM must be set");
  const operatorOrigins = new Set(info.apis.map(origin));
  const replicaOrigin = origin(replica);
  assert.ok(!operatorOrigins.has(replicaOrigin));
  const served = await (await fetch(replica + "/v1/info")).json();
  assert.equal(served.replica, true);
  assert.deepEqual(served.operators.map((o) => origin(o.api)).sort(), [...operatorOrigins].sort());

  const user = testWallet(Wallet.createRandom().privateKey, info.rpc, info.chainId);
  const funder = new NonceManager(new Wallet(info.devAccounts[1].privateKey, user.provider));
  await (await funder.sendTransaction({ to: user.wallet.address, value: 10n ** 18n })).wait();
  await (await new Contract(info.collateral, ERC20_ABI, funder).transfer(user.wallet.address, 5000n * 10n ** 6n)).wait();
  const makerWallet = new Wallet(info.devAccounts[2].privateKey, user.provider);
  const maker = new NonceManager(makerWallet);
  const domain = domainOf(info.chainId, info.exchange);
  const operators = new DdxClient(info.apis, { domain, WebSocket });
  const onChain = await operators.useChain(user.provider);
  const fromReplica = new DdxClient([replica], { domain, WebSocket });

  const { page, problems, walletErrors, shot, until } = await openPage(t, { shots, user });
  const gets = []; // [origin, path] of every HTTP request the page makes
  const posts = []; // [origin, path, status] of every POST answered
  const sockets = []; // [origin, query] of every WebSocket the page opens
  page.on("requestfailed", (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
  page.on("request", (req) => { if (req.method() === "GET") gets.push([origin(req.url()), new URL(req.url()).pathname]); });
  page.on("response", (res) => {
    if (res.request().method() === "POST") posts.push([origin(res.url()), new URL(res.url()).pathname, res.status()]);
  });
  page.on("websocket", (ws) => sockets.push([origin(ws.url()), new URL(ws.url()).search]));
  // what the page read from the operators: only their own status (the operator view) and their checkpoint pipeline
  // (the settlement clock: built, signed, submitted happen at the operators; a replica audits recorded roots)
  const readFromOperators = () => gets.filter(([o, p]) => operatorOrigins.has(o) && !["/v1/status", "/readyz", "/v1/checkpoints"].includes(p));

  await t.test("the market and operator views render from the replica, which the page names", async () => {
    await page.goto(replica + "/app/");
    await page.waitForSelector("body[data-ready=true]", { timeout: 30000 });
    await until(() => document.querySelectorAll("#operator-rows tr").length === 4 && document.querySelector("#t-mark").textContent !== "–");
    await until(() => /checksum verified/.test(document.querySelector("#book-seq").textContent));
    await until(() => /Sequencing clock \(Raft\): healthy/.test(document.querySelector("#cluster-health").textContent));
    assert.match(await page.locator("#deployment").innerText(), /served by a replica: reads from it, requests to the operators/);
    assert.equal(await page.locator("#served-by").innerText(), "Served by a public replica");
    await until(() => document.querySelectorAll("#epochs-timeline li.epoch").length > 0); // the settlement clock
    assert.ok(await page.locator("#chart canvas").count() > 0, "lightweight-charts drew the chart");
    const paths = new Set(gets.filter(([o]) => o === replicaOrigin).map(([, p]) => p));
    for (const p of [/^\/app\/$/, /^\/v1\/info$/, /^\/v1\/markets$/, /^\/v1\/tickers\/0x[0-9a-f]{64}$/,
      /^\/v1\/markets\/0x[0-9a-f]{64}\/(trades|candles)$/]) {
      assert.ok([...paths].some((q) => p.test(q)), `${p} read from the replica (${[...paths].join(" ")})`);
    }
    assert.ok(sockets.length > 0 && sockets.every(([o, q]) => o === replicaOrigin && /channel=book/.test(q)), JSON.stringify(sockets));
    for (const op of operatorOrigins) assert.ok(gets.some(([o, p]) => o === op && p === "/v1/status"), `operator ${op}'s status`);
    assert.deepEqual(readFromOperators(), []);
    await shot("replica-market-and-operators");
  });

  await t.test("connect the wallet; a deposit is credited in the replica-served account", async () => {
    await page.getByRole("button", { name: "Connect wallet" }).click();
    await until((a) => document.querySelector("#wallet-address").textContent === a, user.wallet.address);
    assert.match(await page.locator("#notice").innerText(), /receipts are checked against the 4 operators recorded on-chain \(threshold 3\)/);
    await page.getByLabel("Deposit amount").fill("1000");
    await page.getByRole("button", { name: "Approve and deposit" }).click();
    await until(() => /Deposited 1000/.test(document.querySelector("#deposit-result").textContent), null, 60000);
    await until((c) => [...document.querySelectorAll("#balances td")].some((td) => td.textContent === c), fromUnits(1000n * 10n ** 6n, 6), 90000);
    const account = await fromReplica.account(user.wallet.address);
    assert.equal(account.accounts.reduce((s, a) => s + BigInt(a.collateral), 0n), 1000n * 10n ** 6n);
    await shot("replica-deposit-credited");
  });

  await t.test("an order through the page: sent to an operator, receipted, filled, shown from the replica", async () => {
    await ensureDeposited(operators, maker, info, 10n ** 10n);
    const market = (await fromReplica.markets()).find((m) => m.symbol === "ETHP");
    const tick = BigInt(market.tick);
    const fillPrice = (BigInt((await operators.ticker("ETHP")).mark) / tick + 3n) * tick;
    await operators.submit(await signRequest(makerWallet, placeOrder({ trader: makerWallet.address, market: "ETHP", side: 1, price: fillPrice, size: 10000n }), domain));
    const human = fromUnits(fillPrice, 6);
    await until((p) => [...document.querySelectorAll("#asks td")].some((td) => td.textContent === p), human); // the replica's book feed

    const postsBefore = posts.length;
    await page.getByLabel("Side").selectOption({ label: "Buy" });
    await page.getByLabel("Type").selectOption({ label: "Immediate or cancel" });
    await page.getByLabel("Price", { exact: true }).fill(human);
    await page.getByLabel("Size (contracts)").fill("0.01");
    await page.getByRole("button", { name: "Place order" }).click();
    const done = page.locator("#requests-timeline li.done").first();
    await done.waitFor({ timeout: 30000 });
    const sent = posts.slice(postsBefore).filter(([, p]) => p === "/v1/requests");
    assert.ok(sent.length >= 1 && sent.every(([o]) => operatorOrigins.has(o)), `the order went to an operator: ${JSON.stringify(sent)}`);
    assert.equal(sent.at(-1)[2], 200, "an operator answered with the receipt");
    assert.ok(!posts.some(([o]) => o === replicaOrigin), "nothing was posted to the replica");
    const entry = await done.innerText();
    const signer = /signed by (0x[0-9a-fA-F]{8})…/.exec(entry)?.[1];
    assert.ok(signer && onChain.operators.some((a) => a.startsWith(signer)), `receipt signed by an on-chain operator: ${entry}`);

    await until(() => /Fill 0\.01 @/.test(document.querySelector("#requests-timeline").textContent)); // replica's trader feed
    await until(() => /taker/.test(document.querySelector("#fills").textContent), null, 30000);
    await until(() => /long/.test(document.querySelector("#positions").textContent), null, 30000);
    await until((p) => [...document.querySelectorAll("#trades td")].some((td) => td.textContent === p), human);
    const fills = await fromReplica.fills(user.wallet.address);
    assert.ok(JSON.stringify(fills).includes(String(fillPrice)), "the replica has the fill");
    await shot("replica-order-receipt-from-operator-and-fill");
  });

  await t.test("every read and feed came from the replica; no console error, no failed request", () => {
    assert.deepEqual(readFromOperators(), []);
    assert.ok(gets.some(([o, p]) => o === replicaOrigin && p.startsWith(`/v1/traders/${user.wallet.address}`)));
    assert.ok(sockets.some(([o, q]) => o === replicaOrigin && /channel=trader/.test(q)));
    assert.ok(sockets.every(([o]) => o === replicaOrigin), JSON.stringify(sockets));
    assert.deepEqual(problems, []);
    assert.deepEqual(walletErrors, []);
  });
});
