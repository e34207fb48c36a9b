// The web app in a real browser: Playwright (playwright-core from npm, no browser download) drives Debian's chromium
// headless against a running devnet (DDX_DEVNET_INFO). The wallet is a test EIP-1193 provider injected as
// window.ethereum and backed by a local key: the app calls it exactly as it would call MetaMask (eth_requestAccounts,
// eth_signTypedData_v4, eth_sendTransaction, reads), and it signs here, in node, and forwards the rest to anvil.
// Scenario: connect, approve + deposit, deposit credited, place an order and see its receipt time in ms and the
// fill, request a withdrawal, watch the epoch go through its stages, claim through the wallet, wallet balance rises.
// Also: no console errors, every control labelled and reachable by keyboard. Screenshots: $DDX_SCREENSHOTS.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Contract, NonceManager, Wallet } from "ethers";
import { testWallet } from "./wallet.mjs";
import { ensureDeposited, openPage } from "./session.mjs";
import { WebSocket } from "ws";
import { DdxClient, domainOf, fromUnits, placeOrder, signRequest, ERC20_ABI, EXCHANGE_ABI } from "../../../clients/js/src/index.mjs";

const infoPath = process.env.DDX_DEVNET_INFO;
const shots = process.env.DDX_SCREENSHOTS;

test("a trader's session in the browser", { timeout: 600000 }, async (t) => {
  assert.ok(infoPath, "DDX_DEVNET_INFO must name a running devnet's info file");
  const info = JSON.parse(readFileSync(infoPath, "utf8"));
  // the user's own new key (dev account 0 is the devnet's faucet and price mover: its nonces are not ours to count),
  // given gas money and collateral by a dev account
  const user = testWallet(Wallet.createRandom().privateKey, info.rpc, info.chainId);
  const funder = new NonceManager(new Wallet(info.devAccounts[1].privateKey, user.provider)); // ethers' pending count lags anvil
  await (await funder.sendTransaction({ to: user.wallet.address, value: 10n ** 18n })).wait();
  await (await new Contract(info.collateral, ERC20_ABI, funder).transfer(user.wallet.address, 5000n * 10n ** 6n)).wait();
  const makerWallet = new Wallet(info.devAccounts[2].privateKey, user.provider);
  const maker = new NonceManager(makerWallet);
  const domain = domainOf(info.chainId, info.exchange);
  const client = new DdxClient(info.apis, { domain, WebSocket });
  await client.useChain(user.provider);
  const token = new Contract(info.collateral, ERC20_ABI, user.provider);
  const exchange = new Contract(info.exchange, EXCHANGE_ABI, user.provider);

  const { page, problems, shot, until } = await openPage(t, { shots, user });
  page.on("requestfailed", (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
  const offsite = [];
  page.on("request", (req) => { if (!/^(http:\/\/127\.0\.0\.1|ws:\/\/127\.0\.0\.1|data:)/.test(req.url())) offsite.push(req.url()); });
  const body = () => page.locator("body").innerText();

  await t.test("the app loads from the operator with every module from the package", async () => {
    await page.goto(info.apis[0] + "/app/");
    await page.waitForSelector("body[data-ready=true]", { timeout: 30000 });
    await page.waitForFunction(() => document.querySelectorAll("#operator-rows tr").length === 4 && document.querySelector("#t-mark").textContent !== "–");
    const text = await body();
    for (const expected of ["Order book", "Order entry", "The two clocks", "Withdrawals", "Operators", `chain ${info.chainId}`, "leader"]) {
      assert.ok(text.includes(expected), `the page shows "${expected}"`);
    }
    assert.ok(await page.locator("#chart canvas").count() > 0, "lightweight-charts drew the chart");
    await page.waitForFunction(() => /Sequencing clock \(Raft\): healthy/.test(document.querySelector("#cluster-health").textContent));
    await page.waitForFunction(() => document.querySelectorAll("#epochs-timeline li.epoch").length > 0);
    await shot("market-and-operators");
  });

  await t.test("connect the wallet", async () => {
    await page.getByRole("button", { name: "Connect wallet" }).click();
    await page.waitForFunction((a) => document.querySelector("#wallet-address").textContent === a, user.wallet.address);
    assert.match(await page.locator("#notice").innerText(), /receipts are checked against the 4 operators recorded on-chain \(threshold 3\)/);
    assert.ok(user.calls.includes("eth_requestAccounts"));
    await shot("connected");
  });

  const deposit = 1000n * 10n ** 6n;
  await t.test("approve and deposit through the wallet; the deposit is credited", async () => {
    const collateral = async () => (await client.account(user.wallet.address)).accounts.reduce((s, a) => s + BigInt(a.collateral), 0n);
    const before = await collateral();
    await page.getByLabel("Deposit amount").fill("1000");
    await page.getByRole("button", { name: "Approve and deposit" }).click();
    await until(() => /Deposited 1000/.test(document.querySelector("#deposit-result").textContent), null, 60000);
    assert.equal(user.calls.filter((m) => m === "eth_sendTransaction").length, 2, "approve and deposit, each a wallet transaction");
    for (let i = 0; i < 240 && (await collateral()) < before + deposit; i++) await new Promise((r) => setTimeout(r, 250));
    const credited = await collateral();
    assert.equal(credited, before + deposit, "the operators credited exactly the deposit");
    const shown = fromUnits(credited, 6);
    await until((c) => [...document.querySelectorAll("#balances td")].some((td) => td.textContent === c), shown, 30000);
    // the escape hatch is closed while the operators checkpoint: the panel says when it would open, and why
    await until(() => document.querySelector("#escape-status").dataset.state === "closed"
      && /Closed: it may open in .* no checkpoint since epoch \d+ .*the escape delay is/.test(document.querySelector("#escape-status").textContent));
    assert.ok(await page.locator("#freeze").isDisabled() && await page.locator("#escape-submit").isDisabled());
    await shot("deposit-credited");
  });

  let fillPrice;
  await t.test("place an order: the receipt in milliseconds, then the fill", async () => {
    // a counterparty rests a sell through the JS client
    await ensureDeposited(client, maker, info, 10n ** 10n);
    const market = (await client.markets()).find((m) => m.symbol === "ETHP");
    const tick = BigInt(market.tick);
    fillPrice = (BigInt((await client.ticker("ETHP")).mark) / tick + 3n) * tick;
    await client.submit(await signRequest(makerWallet, placeOrder({ trader: makerWallet.address, market: "ETHP", side: 1, price: fillPrice, size: 10000n }), domain));
    const human = (Number(fillPrice) / 1e6).toFixed(2);
    await page.waitForFunction((p) => [...document.querySelectorAll("#asks td")].some((td) => td.textContent === p), human.replace(/\.?0+$/, ""), { timeout: 30000 });

    await page.getByLabel("Side").selectOption({ label: "Buy" });
    await page.getByLabel("Type").selectOption({ label: "Immediate or cancel" });
    await page.getByLabel("Price", { exact: true }).fill(human);
    await page.getByLabel("Size (contracts)").fill("0.01");
    await page.getByRole("button", { name: "Place order" }).click();
    const receipt = page.locator("#requests-timeline li.done .receipt-ms").first();
    await receipt.waitFor({ timeout: 30000 });
    const ms = Number((await receipt.innerText()).replace(" ms", ""));
    assert.ok(ms >= 0 && ms < 10000, `receipt in ${ms} ms`);
    assert.ok(user.calls.includes("eth_signTypedData_v4"), "the order was signed by the wallet");
    await until(() => /Fill 0\.01 @/.test(document.querySelector("#requests-timeline").textContent));
    await page.waitForFunction(() => document.querySelectorAll("#fills tr td").length > 1 && /taker/.test(document.querySelector("#fills").textContent), null, { timeout: 30000 });
    await page.waitForFunction(() => /long/.test(document.querySelector("#positions").textContent), null, { timeout: 30000 });
    await shot("order-receipt-and-fill");
  });

  await t.test("a resting order can be cancelled from the open orders", async () => {
    await page.getByLabel("Type").selectOption({ label: "Post-only" });
    const low = ((Number(fillPrice) - 200 * 1e6) / 1e6).toFixed(2);
    await page.getByLabel("Price", { exact: true }).fill(low);
    await page.getByRole("button", { name: "Place order" }).click();
    const cancel = page.getByRole("button", { name: /^Cancel buy 0\.01 at/ });
    await cancel.waitFor({ timeout: 30000 });
    await cancel.click();
    await page.waitForFunction(() => /no open orders/.test(document.querySelector("#open-orders").textContent), null, { timeout: 30000 });
  });

  await t.test("a stop-market and a TWAP are signed and receipted; cancel all stops them", async () => {
    const receipts = () => page.locator("#requests-timeline li.done").count();
    let done = await receipts();
    await page.getByLabel("Type").selectOption({ label: "Stop market (trigger)" });
    assert.ok(await page.getByLabel("Price", { exact: true }).isDisabled());
    await page.getByLabel("Side").selectOption({ label: "Sell" });
    await page.getByLabel("Trigger price").fill(((Number(fillPrice) - 300 * 1e6) / 1e6).toFixed(2));
    await page.getByLabel("Reduce only").check();
    await page.getByRole("button", { name: "Place order" }).click();
    await until((n) => document.querySelectorAll("#requests-timeline li.done").length > n, done);
    // the receipt comes first, its execution updates (the Accepted) a moment later on the feed
    await until(() => /Accepted|Rejected/.test(document.querySelector("#requests-timeline li.done").innerText));
    assert.match(await page.locator("#requests-timeline li.done").first().innerText(), /sell 0\.01 stop-market, trigger ≤ .* reduce-only: receipt in \d+ ms[\s\S]*Accepted/);
    done = await receipts();
    await page.getByLabel("Reduce only").uncheck();
    await page.getByLabel("Type").selectOption({ label: "TWAP" });
    await page.getByLabel("Side").selectOption({ label: "Buy" });
    await page.getByLabel("Price", { exact: true }).fill(((Number(fillPrice) - 400 * 1e6) / 1e6).toFixed(2));
    await page.getByLabel("TWAP duration (s)").fill("120");
    await page.getByRole("button", { name: "Place order" }).click();
    await until((n) => document.querySelectorAll("#requests-timeline li.done").length > n, done);
    // the receipt comes first, its execution updates (the Accepted) a moment later on the feed
    await until(() => /Accepted|Rejected/.test(document.querySelector("#requests-timeline li.done").innerText));
    assert.match(await page.locator("#requests-timeline li.done").first().innerText(), /buy 0\.01 TWAP over 120 s limit .*: receipt in \d+ ms[\s\S]*Accepted/);
    done = await receipts();
    await page.getByRole("button", { name: "Cancel all" }).click();
    await until((n) => document.querySelectorAll("#requests-timeline li.done").length > n, done);
    assert.match(await page.locator("#requests-timeline li.done").first().innerText(), /cancel all: receipt in \d+ ms/);
    await page.getByLabel("Type").selectOption({ label: "Limit (good till cancelled)" });
    await shot("stop-twap-cancel-all");
  });

  await t.test("strategies and agent keys: create a strategy, move collateral to it, approve an agent and revoke it", async () => {
    const receipts = () => page.locator("#requests-timeline li.done").count();
    let done = await receipts();
    await page.getByLabel("New strategy").fill("hedge");
    await page.getByRole("button", { name: "Create strategy" }).click();
    await until((n) => document.querySelectorAll("#requests-timeline li.done").length > n, done);
    done = await receipts();
    await page.getByLabel("Transfer from").fill("main");
    await page.getByLabel("to", { exact: true }).fill("hedge");
    await page.getByLabel("Amount", { exact: true }).fill("10");
    await page.getByRole("button", { name: "Transfer" }).click();
    await until((n) => document.querySelectorAll("#requests-timeline li.done").length > n, done);
    await until(() => [...document.querySelectorAll("#balances tr")].some((r) => /hedge/.test(r.textContent) && /10(\.0+)?\b/.test(r.textContent)));
    const agent = "0x" + "ab".repeat(20);
    await page.getByLabel("Approve agent (trade only)").fill(agent);
    await page.getByRole("button", { name: "Approve agent" }).click();
    await until((a) => document.querySelector("#agents").textContent.toLowerCase().includes(a), agent);
    await shot("strategies-and-agents");
    await page.getByRole("button", { name: /Revoke agent/ }).click();
    await until(() => /no agent keys/.test(document.querySelector("#agents").textContent));
  });

  await t.test("withdraw: request, sequenced, checkpointed, claim through the wallet, paid", async () => {
    const claimedBefore = await exchange.claimed(user.wallet.address, info.collateral);
    const walletBefore = await token.balanceOf(user.wallet.address);
    await page.getByLabel("Withdraw amount").fill("100");
    await page.getByRole("button", { name: "Request withdrawal" }).click();
    await page.waitForSelector("#withdrawals [data-step=sequenced].done", { timeout: 30000 });
    assert.match(await page.locator("#withdrawals [data-step=sequenced]").first().innerText(), /receipt in \d+ ms, epoch \d+/);
    await shot("withdrawal-sequenced");
    await page.waitForSelector("#withdrawals [data-step=checkpointed].done", { timeout: 90000 });
    const epoch = Number((await page.locator("#withdrawals [data-step=checkpointed]").first().innerText()).match(/epoch (\d+) recorded/)[1]);
    await page.waitForFunction((e) => {
      const li = document.querySelector(`#epochs-timeline li[data-epoch="${e}"]`);
      return li && li.dataset.stage === "final" && /signed \(\d of 4, need 3\)/.test(li.textContent);
    }, String(epoch), { timeout: 60000 }).catch(async () => {
      // the epoch scrolled out of the last 8: any final epoch shows the same stages
      await page.waitForSelector("#epochs-timeline li[data-stage=final]");
    });
    await until(() => !document.querySelector("#claim").disabled, null, 60000);
    await shot("epoch-stages-and-claimable");
    const sends = user.calls.filter((m) => m === "eth_sendTransaction").length;
    await page.getByRole("button", { name: "Claim with wallet" }).click();
    await until(() => /Claimed: /.test(document.querySelector("#notice").textContent), null, 60000);
    assert.equal(user.calls.filter((m) => m === "eth_sendTransaction").length, sends + 1, "the claim went through the wallet");
    await page.waitForSelector("#withdrawals [data-step=paid].done", { timeout: 30000 });
    const paid = (await exchange.claimed(user.wallet.address, info.collateral)) - claimedBefore;
    assert.ok(paid >= 100n * 10n ** 6n, `paid ${paid}`);
    assert.equal(await token.balanceOf(user.wallet.address), walletBefore + paid);
    const shown = (walletBefore + paid) / 10n ** 6n;
    await page.waitForFunction((s) => document.querySelector("#wallet-balance").textContent.startsWith(s), String(shown), { timeout: 30000 });
    await shot("claimed-and-paid");
  });

  await t.test("a forced withdrawal through L1: logged, taken by the engine, checkpointed, claimed", async () => {
    const claimedBefore = await exchange.claimed(user.wallet.address, info.collateral);
    const forcedBefore = await exchange.forced_count();
    await page.getByLabel("Withdraw amount").fill("50");
    await page.getByRole("button", { name: "Force withdrawal via L1" }).click();
    await page.waitForSelector("#withdrawals [data-step=logged].done", { timeout: 60000 });
    assert.equal(await exchange.forced_count(), forcedBefore + 1n);
    await page.waitForSelector("#withdrawals [data-step=taken].done", { timeout: 60000 });
    await page.waitForSelector("#withdrawals li:first-child [data-step=checkpointed].done", { timeout: 90000 });
    await until(() => !document.querySelector("#claim").disabled, null, 60000);
    await page.getByRole("button", { name: "Claim with wallet" }).click();
    await page.waitForSelector("#withdrawals li:first-child [data-step=paid].done", { timeout: 60000 });
    assert.equal(await exchange.claimed(user.wallet.address, info.collateral), claimedBefore + 50n * 10n ** 6n);
    await shot("forced-withdrawal-paid");
  });

  await t.test("every control is labelled and reachable by keyboard", async () => {
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll("button, input, select")].filter((el) => {
      const name = el.getAttribute("aria-label") || [...(el.labels ?? [])].map((l) => l.textContent.trim()).join(" ") || el.textContent.trim();
      return !name;
    }).map((el) => el.outerHTML));
    assert.deepEqual(unlabelled, []);
    const wanted = await page.evaluate(() => [...document.querySelectorAll("button:not([disabled]), input:not([disabled]), select")].map((el) => el.id || el.getAttribute("aria-label")));
    await page.locator("body").click({ position: { x: 5, y: 5 } });
    const reached = new Set();
    for (let i = 0; i < wanted.length + 20; i++) {
      await page.keyboard.press("Tab");
      reached.add(await page.evaluate(() => document.activeElement.id || document.activeElement.getAttribute("aria-label")));
    }
    assert.deepEqual(wanted.filter((id) => !reached.has(id)), []);
  });

  await t.test("no console errors, nothing fetched from outside", () => {
    assert.deepEqual(problems, []);
    assert.deepEqual(offsite, []);
  });
});
