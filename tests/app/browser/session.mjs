// What every browser test sets up the same way: the system chromium (never a downloaded one), a page whose console
// errors and page errors are collected, numbered screenshots that must not be blank, and page.waitForFunction that,
// on a timeout, says what the page was showing.
import assert from "node:assert/strict";
import { mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { Contract } from "ethers";
import { ERC20_ABI, EXCHANGE_ABI } from "../../../clients/js/src/index.mjs";
import { injectWallet } from "./wallet.mjs";

/**
 * A headless chromium page for test `t` (closed after it). `shots`: the screenshot folder. `user`: a test wallet
 * (wallet.mjs) to inject as window.ethereum, its failures collected in `walletErrors`. `report`: the selectors whose
 * text a timed-out wait prints. `consoleError(msg)`: return false for an error the test expects (default: every
 * console error is a problem). Returns { page, problems, walletErrors, shot, until }.
 */
export async function openPage(t, { shots, user, report = ["#notice"], timeout = 30000, consoleError = () => true } = {}) {
  assert.ok(process.env.CHROMIUM, "CHROMIUM must name the system chromium (Debian: apt-get install chromium)");
  assert.ok(shots, "DDX_SCREENSHOTS must name a folder for the screenshots");
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, headless: true, args: ["--no-sandbox"] });
  t.after(() => browser.close());
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
  const problems = [];
  page.on("console", (msg) => {
    if (msg.type() === "error" && consoleError(msg)) problems.push(`console: ${msg.text()} (${msg.location().url})`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  const walletErrors = [];
  if (user) await injectWallet(page, user, walletErrors);
  let n = 0;
  const shot = async (name) => {
    const path = join(shots, `${String(++n).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path, fullPage: true });
    assert.ok(statSync(path).size > 20000, `${name}: the screenshot is nearly empty`);
  };
  const until = async (fn, arg, wait = timeout) => {
    try {
      await page.waitForFunction(fn, arg, { timeout: wait });
    } catch (err) {
      const shown = await Promise.all(report.map(async (sel) => `${sel}: ${await page.locator(sel).innerText().catch(() => "?")}`));
      throw new Error(`${err.message}\nwaiting for: ${fn}\n${shown.join("\n")}\nproblems: ${problems.join("; ")}\n` +
        `wallet: ${walletErrors.join("; ")}`);
    }
  };
  return { page, problems, walletErrors, shot, until };
}

/** Give `signer` (ethers) `amount` of collateral on the exchange, unless `client` already lists an account for it. */
export async function ensureDeposited(client, signer, info, amount) {
  const address = await signer.getAddress();
  if ((await client.account(address)).accounts.length > 0) return;
  await (await new Contract(info.collateral, ERC20_ABI, signer).approve(info.exchange, amount)).wait();
  await (await new Contract(info.exchange, EXCHANGE_ABI, signer).deposit(info.collateral, amount)).wait();
  for (let i = 0; i < 240 && (await client.account(address)).accounts.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 250));
  }
}
