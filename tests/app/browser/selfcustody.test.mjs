// Self-custody in the browser, against `ddx node` processes on anvil (tests/app/test_browser_self_custody.py;
// DDX_CLUSTER_INFO: {apis, rpc, chainId, exchange, token, funderKey, control}). Each operator reaches the chain
// through its own proxy, which the control server can make hide deposit logs; /rpc/down cuts them all.
//  1. connect, approve + deposit through the wallet, request a withdrawal; both checkpointed;
//  2. a follower's RPC hides a deposit the leader sequences: that follower's verifier refuses (a verification
//     refusal alarm: "will not sign"); the leader's RPC hides the next one: its watcher halts (a deposit alarm:
//     "deposit ingestion halted") — each its own box, colour and words, unlike the clock alarms;
//  3. every operator loses the chain (no more checkpoints), the chain's clock moves past the escape delay: the
//     panel says the hatch may open and why; Freeze (reached by keyboard) and Escape go through the wallet, and the
//     wallet's token balance rises by exactly the payout the page predicted (the deposit: balance plus withdrawal).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Contract, NonceManager, Wallet } from "ethers";
import { DdxClient, domainOf, fromUnits, ERC20_ABI, EXCHANGE_ABI } from "../../../clients/js/src/index.mjs";
import { testWallet } from "./wallet.mjs";
import { openPage } from "./session.mjs";

const info = JSON.parse(readFileSync(process.env.DDX_CLUSTER_INFO, "utf8"));
const shots = process.env.DDX_SCREENSHOTS;
const UNIT = 10n ** 6n; // the mock collateral's decimals
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("escape through the wallet, and the two chain alarms on screen", { timeout: 800000 }, async (t) => {
  const user = testWallet(Wallet.createRandom().privateKey, info.rpc, info.chainId);
  const funder = new NonceManager(new Wallet(info.funderKey, user.provider));
  const mintable = new Contract(info.token, [...ERC20_ABI, "function mint(address receiver, uint256 amount)"], funder);
  await (await funder.sendTransaction({ to: user.wallet.address, value: 10n ** 18n })).wait();
  await (await mintable.mint(user.wallet.address, 1000n * UNIT)).wait();
  const token = new Contract(info.token, ERC20_ABI, user.provider);
  const exchange = new Contract(info.exchange, EXCHANGE_ABI, user.provider);
  const client = new DdxClient(info.apis, { domain: domainOf(info.chainId, info.exchange) });
  const operators = (await client.info()).operators;
  const indexOf = (id) => info.apis.indexOf(operators.find((o) => Number(o.id) === Number(id)).api);

  const { page, problems, walletErrors, shot, until } = await openPage(t, {
    shots, user, timeout: 60000, report: ["#notice", "#alarms", "#escape-status", "#escape-expected"],
  });

  await page.goto(info.apis[0] + "/app/");
  await page.waitForSelector("body[data-ready=true]", { timeout: 30000 });
  await page.getByRole("button", { name: "Connect wallet" }).click();
  await until((a) => document.querySelector("#wallet-address").textContent === a, user.wallet.address);

  await t.test("deposit and a withdrawal through the wallet, checkpointed", async () => {
    await page.getByLabel("Deposit amount").fill("1000");
    await page.getByRole("button", { name: "Approve and deposit" }).click();
    await until(() => /Deposited 1000/.test(document.querySelector("#deposit-result").textContent));
    await until(() => [...document.querySelectorAll("#balances td")].some((td) => td.textContent === "1000"));
    await page.getByLabel("Withdraw amount").fill("100");
    await page.getByRole("button", { name: "Request withdrawal" }).click();
    await page.waitForSelector("#withdrawals li:first-child [data-step=checkpointed].done", { timeout: 90000 });
    // once the deposit is covered by a recorded checkpoint, only the escape delay counts
    await until(() => document.querySelector("#escape-status").dataset.state === "closed"
      && /Closed: it may open in 7\.0 days .*no checkpoint since epoch \d+ .*the escape delay is 7\.0 days/.test(document.querySelector("#escape-status").textContent));
    await shot("deposit-withdrawal-checkpointed");
  });

  const status = await client.status();
  const leader = status.raft.leader;
  const follower = operators.map((o) => Number(o.id)).find((id) => id !== leader);

  await t.test("a follower's chain lacks a sequenced deposit: a verification refusal", async () => {
    await fetch(`${info.control}/hide-deposits/${indexOf(follower)}`);
    const exchangeAsFunder = new Contract(info.exchange, EXCHANGE_ABI, funder);
    await (await mintable.approve(info.exchange, 10n * UNIT)).wait();
    await (await mintable.mint(await funder.getAddress(), 10n * UNIT)).wait();
    await (await exchangeAsFunder.deposit(info.token, 5n * UNIT)).wait();
    await until((id) => [...document.querySelectorAll("#alarms li.alarm.refusal")].some((li) => li.dataset.operator === String(id)
      && /Verification refusal: operator \d+ will not sign/.test(li.textContent) && /withholds its signature/.test(li.textContent)), follower, 90000);
    assert.equal(await page.locator("#alarms li.alarm.deposit-gap").count(), 0, "the leader's watcher is still fine");
    await shot("verification-refusal");

    await fetch(`${info.control}/hide-deposits/${indexOf(leader)}`);
    await (await exchangeAsFunder.deposit(info.token, 5n * UNIT)).wait();
    await until((id) => [...document.querySelectorAll("#alarms li.alarm.deposit-gap")].some((li) => li.dataset.operator === String(id)
      && /Deposit alarm: operator \d+ halted deposit ingestion/.test(li.textContent) && /deposits made on-chain from now on are not credited/.test(li.textContent)), leader, 90000);
    // the two look different from each other and from the one-line clock alarms
    const look = await page.evaluate(() => ["refusal", "deposit-gap"].map((k) => {
      const li = document.querySelector(`#alarms li.alarm.${k}`);
      const css = getComputedStyle(li);
      return { border: css.borderLeftColor, background: css.backgroundColor, role: li.getAttribute("role"), title: li.querySelector("strong").textContent };
    }));
    assert.notEqual(look[0].border, look[1].border);
    assert.notEqual(look[0].background, look[1].background);
    assert.ok(look.every((l) => l.role === "alert" && l.background !== "rgba(0, 0, 0, 0)"));
    await page.locator("#alarms").scrollIntoViewIfNeeded();
    await shot("deposit-alarm-and-refusal");
  });

  await t.test("no checkpoints for the escape delay: freeze and escape through the wallet", async () => {
    await fetch(`${info.control}/rpc/down`);
    const delay = await exchange.escape_delay();
    await user.provider.send("evm_increaseTime", [Number(delay) + 60]);
    await user.provider.send("evm_mine", []);
    await until(() => document.querySelector("#escape-status").dataset.state === "freezable", null, 60000);
    const why = await page.locator("#escape-status").innerText();
    assert.match(why, /The hatch may open now: .*(escape delay is 7\.0 days|forced deadline is).* Anyone may freeze the exchange\./);
    await until(() => !document.querySelector("#freeze").disabled);
    await shot("hatch-may-open");
    // Freeze by keyboard: Tab to it, Enter
    await page.locator("#escape-h").click();
    for (let i = 0; i < 10 && await page.evaluate(() => document.activeElement?.id) !== "freeze"; i++) await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "freeze", "Freeze is reached by keyboard");
    const sends = user.calls.filter((m) => m === "eth_sendTransaction").length;
    await page.keyboard.press("Enter");
    await until(() => document.querySelector("#escape-status").dataset.state === "frozen" && document.querySelector("#escape-steps [data-step=frozen].done"));
    assert.equal(await exchange.frozen(), true);
    await until(() => document.querySelector("#d-submit").disabled && document.querySelector("#w-force").disabled);
    // the chain-clock alarms of the cut RPC stay one-line items, unlike the two boxes
    await until(() => [...document.querySelectorAll("#alarms li.alarm.chain")].some((li) => /RPC failing/.test(li.textContent)));
    const [line, ...boxes] = await page.evaluate(() => ["chain", "refusal", "deposit-gap"].map((k) => {
      const css = getComputedStyle(document.querySelector(`#alarms li.alarm.${k}`));
      return { color: css.color, background: css.backgroundColor, border: css.borderLeftStyle };
    }));
    assert.deepEqual([line.background, line.border], ["rgba(0, 0, 0, 0)", "none"]);
    assert.ok(boxes.every((b) => b.border === "solid" && b.background !== line.background && b.color !== line.color));
    assert.equal(user.calls.filter((m) => m === "eth_sendTransaction").length, sends + 1, "the freeze went through the wallet");

    await until(() => !document.querySelector("#escape-submit").disabled, null, 60000);
    const expectedText = await page.locator("#escape-expected").innerText();
    // 1000 deposited: 900 left as balance in the last checkpoint plus the unclaimed 100 withdrawal
    assert.match(expectedText, /^1000 \(balance 900 \+ unclaimed withdrawals 100, epoch \d+\)$/);
    await shot("frozen-escape-expected");
    const before = await token.balanceOf(user.wallet.address);
    await page.getByRole("button", { name: "Escape with wallet" }).click();
    await until(() => document.querySelector("#escape-steps [data-step=paid].done"), null, 60000);
    const after = await token.balanceOf(user.wallet.address);
    const paid = BigInt(await page.locator("#escape-submit").getAttribute("data-paid"));
    assert.equal(after - before, 1000n * UNIT, "the wallet's balance rose by exactly the predicted payout");
    assert.equal(paid, after - before, "the Escape event's paid amount is what arrived");
    assert.equal(await exchange.escaped(user.wallet.address, info.token), 900n * UNIT);
    assert.equal(await exchange.claimed(user.wallet.address, info.token), 100n * UNIT);
    assert.match(await page.locator("#escape-steps").innerText(), /paid: 1000 paid; wallet balance rose by 1000/);
    await until((s) => document.querySelector("#wallet-balance").textContent.startsWith(s), fromUnits(after, 6));
    assert.match(await page.locator("#withdrawals li:first-child").innerText(), /claimed \(by the escape, tx .*paid \(100 to your wallet/);
    await shot("escaped-and-paid");
    // nothing more to escape
    await until(() => document.querySelector("#escape-submit").disabled && /^0 /.test(document.querySelector("#escape-expected").textContent));
  });

  await t.test("no console errors, no wallet errors", () => {
    assert.deepEqual(walletErrors, []);
    assert.deepEqual(problems, []);
  });
});
