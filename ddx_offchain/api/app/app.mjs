// The ddx web app (docs/app.md): market, wallet, order entry, account, the two clocks, withdrawals and operators.
// Built on the JS client (clients/js, served as ./vendor/ddx-client/); the wallet is whatever EIP-1193 provider the
// page has (window.ethereum, as MetaMask injects it): it signs requests (eth_signTypedData_v4) and sends every
// transaction (approve, deposit, claim, forced request, freeze, escape), and the app reads the chain through it.
import { BrowserProvider, Contract, getAddress } from "ethers";
import { CandlestickSeries, LineSeries, createChart } from "lightweight-charts";
import {
  DdxClient, domainOf, placeOrder, placeTrigger, placeTwap, cancelOrder, cancelAll, withdrawIntent, forcedFields, signRequest, eip1193Signer, fromUnits,
  createStrategy, transfer, approveAgent, revokeAgent, id32,
  escapeState, escapeProofs, escapeOwed, sendFreeze, sendEscape, escapePaid, verifyProofDocument,
  marketUnits, toUnits, ERC20_ABI, EXCHANGE_ABI, RequestRefused,
} from "@ddx/client";

const $ = (id) => document.getElementById(id);
const ORDER_TYPES = ["limit", "IOC", "post-only", "market", "FOK"];
const STAGES = ["built", "signed", "submitted", "recorded", "final"];
const state = {
  info: null, client: null, submitter: null, domain: null, market: null, units: null, tokenDecimals: 6, token: null,
  wallet: null, address: null, browser: null, exchange: null, erc20: null,
  requests: [], // {id, type, label, startedAt, receipt, elapsedMs, updates: [], error}
  byIndex: new Map(), // requestIndex -> request entry
  stageSeen: new Map(), // "epoch:stage" -> first time this page saw it (ms)
  withdrawals: [], // {amount, receipt, requestedAt, claimedAt, paid}
  lastRecorded: null, latestEpoch: null, lastFinal: null,
  escape: { hatch: null, owed: null, steps: [] }, // steps: {step, done, detail}
};

function text(el, value) {
  if (el.textContent !== String(value)) el.textContent = value;
}
function notice(message, kind = "info") {
  const el = $("notice");
  el.textContent = message;
  el.dataset.kind = kind;
}
function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.append(c);
    else td.textContent = c;
    tr.append(td);
  }
  return tr;
}
function fillBody(tbody, rows, empty = "none") {
  tbody.replaceChildren(...(rows.length ? rows : [row([empty])]));
}
const clock = (ms) => new Date(Number(ms)).toLocaleTimeString([], { hour12: false });
const price = (v) => (v === null || v === undefined ? "–" : state.units ? state.units.showPrice(v) : v);
const size = (v) => (v === null || v === undefined ? "–" : state.units ? state.units.showSize(v) : v);
const money = (v) => (v === null || v === undefined ? "–" : fromUnits(v, state.tokenDecimals));
const sideName = (s) => (s === 0 || s === "0" || s === "buy" ? "buy" : "sell");
async function safely(what, fn) {
  try {
    return await fn();
  } catch (err) {
    notice(`${what}: ${err.shortMessage ?? err.message}`, "error");
    return undefined;
  }
}

// ---------------------------------------------------------------- start

async function start() {
  const res = await fetch("/v1/info");
  state.info = await res.json();
  const own = location.origin;
  const operatorApis = state.info.operators.map((o) => o.api);
  state.domain = domainOf(state.info.chainId, state.info.exchange);
  // reads and feeds from the node that served the page, falling over to the operators; served by a replica (which
  // replays and audits the operators' log but sequences nothing), signed requests go to the operators it follows
  state.client = new DdxClient([own, ...operatorApis.filter((u) => u !== own)], { domain: state.domain });
  state.submitter = state.info.replica ? new DdxClient(operatorApis, { domain: state.domain }) : state.client;
  const servedBy = state.info.replica ? ` · served by a replica: reads from it, requests to the operators` : "";
  text($("deployment"), `chain ${state.info.chainId} · exchange ${state.info.exchange} · ${state.info.operators.length} operators${servedBy}`);
  if (state.info.replica) text($("served-by"), "Served by a public replica");
  const markets = await state.client.markets();
  state.market = markets[0];
  state.token = state.market.token;
  const decimals = state.market.tokenDecimals ?? state.info.collateral.find((c) => c.token === state.token)?.decimals;
  if (decimals !== undefined && decimals !== null) state.tokenDecimals = Number(decimals);
  state.units = marketUnits(state.market, state.tokenDecimals);
  text($("market-symbol"), state.market.symbol ?? state.market.market);
  setupChart();
  state.client.bookStream(state.market.market, { onBook: renderBook, depth: 50 });
  $("connect").addEventListener("click", () => safely("connect", connect));
  $("order-form").addEventListener("submit", (e) => { e.preventDefault(); safely("order", submitOrder); });
  $("cancel-all").addEventListener("click", () => safely("cancel all", submitCancelAll));
  $("deposit-form").addEventListener("submit", (e) => { e.preventDefault(); safely("deposit", deposit); });
  $("withdraw-form").addEventListener("submit", (e) => { e.preventDefault(); safely("withdrawal", requestWithdrawal); });
  $("claim").addEventListener("click", () => safely("claim", claim));
  $("strategy-form").addEventListener("submit", (e) => { e.preventDefault(); safely("strategy", submitStrategy); });
  $("transfer-form").addEventListener("submit", (e) => { e.preventDefault(); safely("transfer", submitTransfer); });
  $("agent-form").addEventListener("submit", (e) => { e.preventDefault(); safely("agent", submitAgent); });
  $("w-force").addEventListener("click", () => safely("forced withdrawal", forceWithdrawal));
  $("freeze").addEventListener("click", () => safely("freeze", freeze));
  $("escape-submit").addEventListener("click", () => safely("escape", escapeWithWallet));
  $("o-type").addEventListener("change", () => {
    const kind = $("o-type").value;
    $("o-price").disabled = kind === "3" || kind === "stop"; // market orders and stop-markets carry no price
    $("o-trigger").disabled = kind !== "stop";
    $("o-duration").disabled = kind !== "twap";
  });
  every(2000, refreshMarket);
  every(5000, refreshCandles);
  every(1000, refreshCheckpoints);
  every(1500, refreshOperators);
  every(2000, refreshAccount);
  every(2000, refreshEscape);
  if (!window.ethereum) notice("No wallet found: install MetaMask (or any EIP-1193 wallet) to trade; market data works without one.");
  document.body.dataset.ready = "true";
}

function every(ms, fn) {
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try { await fn(); } catch (err) { notice(`${fn.name}: ${err.message}`, "error"); } finally { busy = false; }
  };
  tick();
  setInterval(tick, ms);
}

// ---------------------------------------------------------------- market view

let chart, candles, markLine;
let lastMarkTime = 0;
function setupChart() {
  chart = createChart($("chart"), { height: 260, layout: { background: { color: "#ffffff" }, textColor: "#222" },
    timeScale: { timeVisible: true, secondsVisible: false } });
  candles = chart.addSeries(CandlestickSeries, { priceFormat: { type: "price", precision: 2, minMove: 0.01 } });
  // the mark price as the operators sequence it (one point per ticker refresh, at the sequenced time)
  markLine = chart.addSeries(LineSeries, { color: "#5b6473", lineWidth: 1, priceLineVisible: false, title: "mark" });
}

async function refreshCandles() {
  const doc = await state.client.candles(state.market.market, "1m", 300);
  candles.setData(doc.candles.map(([t, o, h, l, c]) => ({
    time: Number(t) / 1000, open: Number(price(o)), high: Number(price(h)), low: Number(price(l)), close: Number(price(c)),
  })));
}

async function refreshMarket() {
  const [t, trades] = await Promise.all([state.client.ticker(state.market.market), state.client.trades(state.market.market, 20)]);
  const at = Math.floor(Number(t.time) / 1000);
  if (t.mark && at > lastMarkTime) {
    lastMarkTime = at;
    markLine.update({ time: at, value: Number(price(t.mark)) });
  }
  text($("t-index"), price(t.index));
  text($("t-mark"), price(t.mark));
  text($("t-last"), price(t.last));
  text($("t-volume"), size(t.volume24h));
  text($("t-funding"), `${money(t.fundingPerUnit)} / ${money(t.predictedFundingPerUnit)}`);
  text($("t-next-funding"), clock(t.nextFundingTime));
  if (!$("o-price").value && t.mark && t.mark !== "0") $("o-price").value = price(t.mark);
  fillBody($("trades"), trades.trades.map((x) => row([clock(x.time), price(x.price), size(x.size), x.takerSide])), "no trades yet");
}

function renderBook(book) {
  const asks = book.levels("asks").slice(0, 10).reverse();
  const bids = book.levels("bids").slice(0, 10);
  fillBody($("asks"), asks.map(([p, s]) => row([price(p), size(s)])), "no asks");
  fillBody($("bids"), bids.map(([p, s]) => row([price(p), size(s)])), "no bids");
  text($("book-seq"), book.seq === null ? "re-syncing…" : `seq ${book.seq}, checksum verified (${book.checked} deltas)`);
}

// ---------------------------------------------------------------- wallet

async function connect() {
  if (!window.ethereum) throw new Error("no EIP-1193 wallet in this browser (window.ethereum)");
  const [account] = await window.ethereum.request({ method: "eth_requestAccounts" });
  const chainId = BigInt(await window.ethereum.request({ method: "eth_chainId" }));
  if (chainId !== BigInt(state.info.chainId)) {
    await window.ethereum.request({ method: "wallet_switchEthereumChain", params: [{ chainId: "0x" + BigInt(state.info.chainId).toString(16) }] });
  }
  state.address = getAddress(account);
  state.browser = new BrowserProvider(window.ethereum);
  state.wallet = eip1193Signer(window.ethereum, state.address);
  state.exchange = new Contract(state.info.exchange, EXCHANGE_ABI, state.browser);
  state.erc20 = new Contract(state.token, ERC20_ABI, state.browser);
  if (state.market.tokenDecimals === null && !state.info.collateral.length) {
    state.tokenDecimals = Number(await state.erc20.decimals());
    state.units = marketUnits(state.market, state.tokenDecimals);
  }
  const set = await state.submitter.useChain(state.browser, state.info.exchange); // the set receipts are checked against
  text($("wallet-address"), state.address);
  $("connect").textContent = "Connected";
  notice(`Connected ${state.address}; receipts are checked against the ${set.operators.length} operators recorded on-chain (threshold ${set.threshold}).`);
  state.client.stream({ channel: "trader", key: state.address, onMessage: onTraderMessage });
  await refreshAccount();
}

async function sendTx(label, contractCall) {
  const signer = await state.browser.getSigner(state.address);
  const started = performance.now();
  const tx = await contractCall(signer);
  notice(`${label}: transaction ${tx.hash} sent, waiting for it to be mined…`);
  const receipt = await tx.wait();
  if (receipt.status !== 1) throw new Error(`${label} reverted`);
  return { receipt, seconds: (performance.now() - started) / 1000 };
}

async function deposit() {
  requireWallet();
  const amount = toUnits($("d-amount").value, state.tokenDecimals);
  const approve = await sendTx("approve", (s) => state.erc20.connect(s).approve(state.info.exchange, amount));
  const dep = await sendTx("deposit", (s) => state.exchange.connect(s).deposit(state.token, amount));
  const msg = `Deposited ${money(amount)} (approve ${approve.seconds.toFixed(1)} s, deposit ${dep.seconds.toFixed(1)} s, block ${dep.receipt.blockNumber}); the operators credit it once they sequence the block.`;
  text($("deposit-result"), msg);
  notice(msg);
}

function requireWallet() {
  if (!state.address) throw new Error("connect a wallet first");
}

// ---------------------------------------------------------------- requests: the sequencing clock

async function submit(label, request) {
  requireWallet();
  const entry = { id: state.requests.length + 1, label, type: request.type, startedAt: Date.now(), updates: [] };
  state.requests.unshift(entry);
  renderRequests();
  try {
    const signed = await signRequest(state.wallet, request, state.domain);
    entry.hash = signed.requestHash;
    const receipt = await state.submitter.submit(signed);
    entry.receipt = receipt;
    entry.elapsedMs = receipt.elapsedMs;
    state.byIndex.set(receipt.requestIndex, entry);
    for (const u of pendingUpdates.get(receipt.requestIndex) ?? []) entry.updates.push(u);
    pendingUpdates.delete(receipt.requestIndex);
    return receipt;
  } catch (err) {
    entry.error = err instanceof RequestRefused ? `refused: ${err.reason} (${err.body?.detail ?? ""})` : err.message;
    throw err;
  } finally {
    renderRequests();
  }
}

const pendingUpdates = new Map(); // updates that arrived before their receipt
function onTraderMessage(doc) {
  if (doc.type !== "update") return;
  const entry = state.byIndex.get(doc.requestIndex);
  if (entry) entry.updates.push(doc);
  else {
    if (!pendingUpdates.has(doc.requestIndex)) pendingUpdates.set(doc.requestIndex, []);
    pendingUpdates.get(doc.requestIndex).push(doc);
    if (pendingUpdates.size > 200) pendingUpdates.delete(pendingUpdates.keys().next().value);
  }
  renderRequests();
  if (["Fill", "StrategyUpdate", "PositionUpdate", "OrderUpdate", "WithdrawalUpdate", "DepositCredited"].includes(doc.kind)) refreshAccount();
}

function describeUpdate(u) {
  const d = u.data;
  switch (u.kind) {
    case "Fill": return `Fill ${size(d.size)} @ ${price(d.price)}`;
    case "OrderUpdate": {
      const status = ["open", "filled", "cancelled"][Number(d.status)] ?? d.status;
      return `Order ${status}, ${size(d.remaining)} remaining${status === "cancelled" ? ` (${d.reasonName})` : ""}`;
    }
    case "PositionUpdate": return `Position ${size(d.size ?? "0")}`;
    case "WithdrawalUpdate": return `Withdrawal ${money(d.amount)} (withdrawal leaf now ${money(d.cumulative)}, claimable once checkpointed)`;
    case "StrategyUpdate": return `Collateral ${money(d.collateral)}`;
    case "Rejected": return `Rejected: ${d.reasonName ?? d.reason}${d.detail ? ` ${d.detail}` : ""}`;
    default: return u.kind;
  }
}

function renderRequests() {
  const items = state.requests.slice(0, 30).map((r) => {
    const li = document.createElement("li");
    li.className = r.error ? "error" : r.receipt ? "done" : "pending";
    const head = document.createElement("div");
    head.className = "request-head";
    if (r.receipt) {
      head.innerHTML = "";
      head.append(`${r.label}: receipt in `);
      const ms = document.createElement("strong");
      ms.className = "receipt-ms";
      ms.textContent = `${Math.round(r.elapsedMs)} ms`;
      head.append(ms, ` · request #${r.receipt.requestIndex} · epoch ${r.receipt.epoch} · signed by ${r.receipt.operatorAddress.slice(0, 10)}… (in the on-chain set)`);
    } else {
      head.textContent = `${r.label}: ${r.error ?? "signing and sequencing…"}`;
    }
    li.append(head);
    if (r.updates.length) {
      const ul = document.createElement("ul");
      ul.className = "updates";
      for (const u of r.updates.slice(0, 12)) {
        const item = document.createElement("li");
        item.textContent = describeUpdate(u);
        ul.append(item);
      }
      li.append(ul);
    }
    return li;
  });
  $("requests-timeline").replaceChildren(...items);
}

async function submitOrder() {
  const kind = $("o-type").value;
  const side = Number($("o-side").value);
  const base = { trader: state.address, market: state.market.market, side, size: state.units.size($("o-size").value), reduceOnly: $("o-reduce").checked };
  const sideText = `${sideName(side)} ${$("o-size").value}`;
  const flags = base.reduceOnly ? " reduce-only" : "";
  let req, label;
  if (kind === "stop") {
    // a buy stop fires when the mark rises to the trigger, a sell stop when it falls to it (docs/protocol.md §7.1)
    const direction = side === 0 ? 0 : 1;
    req = placeTrigger({ ...base, direction, triggerPrice: state.units.price($("o-trigger").value), orderType: 3, price: 0n });
    label = `${sideText} stop-market, trigger ${direction === 0 ? "≥" : "≤"} ${$("o-trigger").value}${flags}`;
  } else if (kind === "twap") {
    const duration = BigInt($("o-duration").value) * 1000n;
    const interval = duration / 10n >= 1000n ? duration / 10n : 1000n;
    const limit = $("o-price").value ? state.units.price($("o-price").value) : 0n;
    req = placeTwap({ ...base, duration, interval, limitPrice: limit });
    label = `${sideText} TWAP over ${$("o-duration").value} s${limit ? ` limit ${$("o-price").value}` : ""}${flags}`;
  } else {
    const orderType = Number(kind);
    req = placeOrder({ ...base, orderType, price: orderType === 3 ? 0n : state.units.price($("o-price").value) });
    label = `${sideText} ${ORDER_TYPES[orderType]}${orderType === 3 ? "" : ` @ ${$("o-price").value}`}${flags}`;
  }
  const receipt = await submit(label, req);
  text($("order-result"), `${label}: receipt in ${Math.round(receipt.elapsedMs)} ms (request #${receipt.requestIndex})`);
}

async function submitStrategy() {
  const name = $("s-name").value.trim();
  await submit(`create strategy ${name}`, createStrategy({ trader: state.address, strategy: id32(name) }));
}

async function submitTransfer() {
  const amount = toUnits($("x-amount").value, state.tokenDecimals);
  const from = $("x-from").value.trim();
  const to = $("x-to").value.trim();
  await submit(`transfer ${money(amount)} ${from} → ${to}`, transfer({
    trader: state.address, strategy: id32(from), toStrategy: id32(to), token: state.token, amount }));
}

async function submitAgent() {
  const agent = getAddress($("a-address").value.trim());
  const expiry = BigInt(Date.now() + Number($("a-hours").value) * 3_600_000);
  // zero strategy: the agent may trade for every strategy of this trader (docs/protocol.md §7.1, ApproveAgent)
  await submit(`approve agent ${agent.slice(0, 10)}… for ${$("a-hours").value} h`, approveAgent({
    trader: state.address, strategy: "0x" + "00".repeat(32), agent, scope: 1, expiry }));
}

async function submitCancelAll() {
  const receipt = await submit("cancel all", cancelAll({ trader: state.address, market: 0 }));
  text($("order-result"), `cancel all: receipt in ${Math.round(receipt.elapsedMs)} ms`);
}

async function cancelOne(order) {
  await submit(`cancel ${order.orderHash.slice(0, 10)}…`, cancelOrder({ trader: state.address, strategy: order.strategy, market: order.market, orderHash: order.orderHash }));
}

// ---------------------------------------------------------------- account

async function refreshAccount() {
  if (!state.address) return;
  const c = state.client;
  const [account, open, fills, withdrawable] = await Promise.all([
    c.account(state.address), c.openOrders(state.address), c.fills(state.address, { limit: 20 }), c.withdrawable(state.address)]);
  fillBody($("balances"), account.accounts.map((a) => row([nameOf(a.strategy), money(a.collateral), money(a.equity), money(a.availableMargin), money(a.freeCollateral)])), "no deposit credited yet");
  fillBody($("positions"), account.accounts.flatMap((a) => a.positions.map((p) => row([
    p.symbol ?? nameOf(p.market), p.side, size(p.size.replace("-", "")), price(p.entryPrice), price(p.mark), money(p.unrealizedPnl), price(p.liquidationPrice)]))), "no positions");
  fillBody($("open-orders"), open.openOrders.map((o) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "Cancel";
    b.setAttribute("aria-label", `Cancel ${sideName(o.side)} ${size(o.remaining)} at ${price(o.price)}`);
    b.addEventListener("click", () => safely("cancel", () => cancelOne(o)));
    return row([sideName(o.side), price(o.price), size(o.remaining), ORDER_TYPES[Number(o.orderType)] ?? o.orderType, b]);
  }), "no open orders");
  fillBody($("fills"), fills.items.map((f) => row([f.ordinal, f.side, price(f.price), size(f.size), f.role, money(f.fee)])), "no fills yet");
  const trader = await c.get(`/v1/traders/${state.address}`);
  fillBody($("agents"), (trader.agents ?? []).map((a) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "Revoke";
    b.setAttribute("aria-label", `Revoke agent ${a.agent}`);
    b.addEventListener("click", () => safely("revoke", () => submit(`revoke agent ${a.agent.slice(0, 10)}…`,
      revokeAgent({ trader: state.address, strategy: a.strategy, agent: a.agent }))));
    const strategy = /^0x0+$/.test(a.strategy) ? "every strategy" : nameOf(a.strategy);
    return row([a.agent, strategy, a.expired ? "expired" : new Date(Number(a.expiry)).toISOString(), b]);
  }), "no agent keys");
  const cumulative = BigInt(withdrawable.withdrawable.find((w) => w.token === state.token)?.withdrawable ?? 0);
  await refreshForced();
  await refreshWallet(cumulative);
}

function nameOf(id) {
  const hex = id.slice(2).replace(/(00)+$/, "");
  const s = hex.match(/../g)?.map((b) => String.fromCharCode(parseInt(b, 16))).join("") ?? "";
  return /^[\x20-\x7e]+$/.test(s) ? s : id.slice(0, 10) + "…";
}

// ---------------------------------------------------------------- withdrawals: request → sequenced → checkpointed → claim → paid

async function refreshWallet(cumulative) {
  const [balance, claimed, recorded] = await Promise.all([
    state.erc20.balanceOf(state.address), state.exchange.claimed(state.address, state.token), state.exchange.latest_epoch()]);
  state.walletBalance = balance;
  state.chainRecorded = recorded;
  text($("wallet-balance"), `${money(balance)} collateral`);
  // what a claim would pay now: the cumulative withdrawn in the last recorded root minus what was claimed
  let claimable = 0n;
  if (cumulative > claimed) {
    const proof = await state.client.withdrawalProof(state.address, state.token).catch(() => null);
    if (proof && proof.included) claimable = BigInt(proof.cumulative) - claimed;
    state.proof = proof;
  }
  state.claimable = claimable > 0n ? claimable : 0n;
  text($("claimable"), money(state.claimable));
  $("claim").disabled = state.claimable === 0n;
  renderWithdrawals();
}

async function requestWithdrawal() {
  const amount = toUnits($("w-amount").value, state.tokenDecimals);
  const w = { amount, requestedAt: Date.now() };
  state.withdrawals.unshift(w);
  renderWithdrawals();
  w.receipt = await submit(`withdraw ${money(amount)}`, withdrawIntent({ trader: state.address, token: state.token, amount }));
  renderWithdrawals();
}

/** The same withdrawal through the exchange contract (docs/contracts.md, forced requests): for when the operators
 * ignore signed requests. The engine must take it with the L1 block that logged it. */
async function forceWithdrawal() {
  requireWallet();
  const amount = toUnits($("w-amount").value, state.tokenDecimals);
  const { typeId, fields } = forcedFields(withdrawIntent({ trader: state.address, token: state.token, amount, nonce: 0, timestamp: 0 }));
  const w = { forced: true, amount, requestedAt: Date.now() };
  state.withdrawals.unshift(w);
  renderWithdrawals();
  const { receipt, seconds } = await sendTx("forced withdrawal", (s) => state.exchange.connect(s).force_request(typeId, fields));
  w.seq = await state.exchange.forced_count(); // ours is the newest forced request when its tx was mined, or older
  w.tx = receipt.hash;
  w.loggedSeconds = seconds;
  notice(`Forced withdrawal logged on-chain in ${seconds.toFixed(1)} s (forced request ${w.seq}, block ${receipt.blockNumber}); the operators must take it with that block.`);
  renderWithdrawals();
}

/** Forced withdrawals: taken once the engine's inbox count reaches their seq; the epoch then current covers them. */
async function refreshForced() {
  const waiting = state.withdrawals.filter((w) => w.forced && w.seq !== undefined && w.takenEpoch === undefined);
  if (!waiting.length) return;
  const [inbox, status] = await Promise.all([state.client.get(`/v1/inbox?trader=${state.address}`), state.client.status()]);
  for (const w of waiting) {
    if (BigInt(inbox.engine.forced) >= w.seq) {
      w.takenAt = Date.now();
      w.takenEpoch = BigInt(status.engine.epoch);
    }
  }
}

async function claim() {
  requireWallet();
  // checked here before the wallet is asked to pay gas for it (the contract checks it again)
  const proof = verifyProofDocument("withdrawal", await state.client.withdrawalProof(state.address, state.token), state.address, state.token);
  const before = await state.erc20.balanceOf(state.address);
  const { receipt, seconds } = await sendTx("claim", (s) =>
    state.exchange.connect(s).claim(state.address, state.token, proof.cumulative, proof.epoch, proof.proof.siblings));
  const after = await state.erc20.balanceOf(state.address);
  const paid = after - before;
  for (const w of state.withdrawals) {
    const epoch = withdrawalEpoch(w);
    if (epoch !== null && !w.paid && BigInt(proof.epoch) > epoch) { w.paid = paid; w.paidAt = Date.now(); w.claimTx = receipt.hash; }
  }
  notice(`Claimed: ${money(paid)} paid to ${state.address} in ${seconds.toFixed(1)} s (epoch ${proof.epoch}, tx ${receipt.hash}).`);
  await refreshAccount();
}

/** The epoch a withdrawal applied in: its receipt's, or (forced) the engine's when it took it. */
function withdrawalEpoch(w) {
  if (w.receipt) return BigInt(w.receipt.epoch);
  return w.takenEpoch ?? null;
}

function renderWithdrawals() {
  const recorded = state.chainRecorded ?? (state.lastRecorded === null ? null : BigInt(state.lastRecorded));
  const items = state.withdrawals.map((w) => {
    const li = document.createElement("li");
    const steps = [];
    if (w.forced) {
      steps.push(["logged", !!w.tx, w.tx ? `on L1 in ${w.loggedSeconds.toFixed(1)} s, forced request ${w.seq}` : "waiting for the wallet"]);
      steps.push(["taken", w.takenEpoch !== undefined, w.takenEpoch !== undefined ? `by the engine with its L1 block, epoch ${w.takenEpoch}` : "the operators must take it with its L1 block"]);
    } else {
      steps.push(["requested", true, clock(w.requestedAt)]);
      steps.push(["sequenced", !!w.receipt, w.receipt ? `receipt in ${Math.round(w.receipt.elapsedMs)} ms, epoch ${w.receipt.epoch}` : "waiting for a receipt"]);
    }
    const applied = withdrawalEpoch(w);
    const needed = applied === null ? null : applied + 1n;
    const checkpointed = needed !== null && recorded !== null && recorded >= needed;
    steps.push(["checkpointed", checkpointed, needed === null ? "" : checkpointed ? `epoch ${needed} recorded on-chain` : `waits for epoch ${needed} to be recorded (last recorded: ${recorded ?? "none"})`]);
    steps.push(["claimed", !!w.paid, w.paid ? `${w.viaEscape ? "by the escape, " : ""}tx ${w.claimTx.slice(0, 12)}…` : checkpointed ? "claimable: use Claim with wallet" : "not yet claimable"]);
    steps.push(["paid", !!w.paid, w.paid ? `${money(w.paid)} to your wallet at ${clock(w.paidAt)}` : ""]);
    li.append(`${w.forced ? "forced withdrawal" : "withdraw"} ${money(w.amount)}: `);
    for (const [name, done, detail] of steps) {
      const span = document.createElement("span");
      span.className = `step ${done ? "done" : "todo"}`;
      span.dataset.step = name;
      span.textContent = `${done ? "✓" : "…"} ${name}${detail ? ` (${detail})` : ""}`;
      li.append(span);
    }
    return li;
  });
  $("withdrawals").replaceChildren(...items);
}

// ---------------------------------------------------------------- epochs: the settlement clock

async function refreshCheckpoints() {
  // the settlement pipeline (built, signed, submitted) is the operators' own: a replica only audits recorded roots
  const doc = await state.submitter.checkpoints(8);
  const now = Date.now();
  const newestRecorded = Math.max(-1, ...doc.checkpoints.filter((c) => STAGES.indexOf(c.stage) >= 3).map((c) => Number(c.epoch)));
  const items = doc.checkpoints.map((c) => {
    const d = c.detail ?? {};
    const reached = STAGES.indexOf(c.stage);
    const superseded = reached < 3 && Number(c.epoch) < newestRecorded;
    for (let i = 0; i <= reached; i++) {
      const key = `${c.epoch}:${STAGES[i]}`;
      if (!state.stageSeen.has(key)) state.stageSeen.set(key, now);
    }
    const li = document.createElement("li");
    li.className = "epoch";
    li.dataset.epoch = c.epoch;
    li.dataset.stage = c.stage;
    li.append(`epoch ${c.epoch}: `);
    STAGES.forEach((stage, i) => {
      const span = document.createElement("span");
      span.className = `stage ${i <= reached ? "done" : "todo"}`;
      let label = stage;
      if (stage === "signed" && d.signatures !== undefined) label += ` (${d.signatures} of ${d.operators}, need ${d.threshold})`;
      if (stage === "submitted" && d.txHashes?.length) label += ` (tx ${d.txHashes[0].slice(0, 10)}…)`;
      if (stage === "recorded" && d.secondsToRecord !== undefined && d.secondsToRecord !== null) label += ` (${d.secondsToRecord.toFixed(1)} s, block ${d.recordedBlock})`;
      if (stage === "final" && d.secondsToFinal !== undefined && d.secondsToFinal !== null) label += ` (${d.secondsToFinal.toFixed(1)} s)`;
      const seen = state.stageSeen.get(`${c.epoch}:${stage}`);
      if (i <= reached && seen) label += ` ${clock(seen)}`;
      span.textContent = (i <= reached ? "✓ " : "· ") + label;
      li.append(span);
    });
    if (superseded) {
      const why = document.createElement("div");
      why.className = "why";
      why.textContent = `superseded: epoch ${newestRecorded} was recorded, and its root covers this epoch's requests`;
      li.append(why);
    } else if (d.waiting || d.reason || d.lastError) {
      const why = document.createElement("div");
      why.className = "why";
      why.textContent = `why not yet: ${d.waiting ?? d.reason ?? d.lastError}`;
      li.append(why);
    }
    return li;
  });
  $("epochs-timeline").replaceChildren(...items);
  const recorded = doc.checkpoints.find((c) => c.stage === "recorded" || c.stage === "final");
  if (recorded) state.lastRecorded = recorded.epoch;
  renderWithdrawals();
}

// ---------------------------------------------------------------- escape hatch: closed → freezable → frozen → escaped → paid

const seconds = (s) => {
  s = Number(s);
  return s >= 172800 ? `${(s / 86400).toFixed(1)} days` : s >= 7200 ? `${(s / 3600).toFixed(1)} h` : `${s} s`;
};
const chainClock = (t) => new Date(Number(t) * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";

/** Why the hatch is (or will be) open, in the trader's words: the contract's two freeze conditions. */
function hatchReason(h) {
  if (h.reason === "forced-overdue") {
    return `an inbox entry (a forced request or a deposit) waiting since ${chainClock(h.generationSince)} is not covered by a recorded checkpoint; the forced deadline is ${seconds(h.forcedDeadline)}`;
  }
  const last = h.latestEpoch === 0n ? "no checkpoint was ever recorded (since the deployment" : `no checkpoint since epoch ${h.latestEpoch} (recorded`;
  return `${last} at ${chainClock(h.lastCheckpointAt)}, ${seconds(h.sinceCheckpoint)} ago by the chain's clock); the escape delay is ${seconds(h.escapeDelay)}`;
}

async function refreshEscape() {
  if (!state.address) return;
  const h = await escapeState(state.browser, state.info.exchange);
  state.escape.hatch = h;
  const status = $("escape-status");
  if (h.frozen) {
    status.dataset.state = "frozen";
    text(status, `Frozen: the exchange records no more checkpoints or deposits. Escape pays against the last recorded checkpoint (epoch ${h.latestEpoch}).`);
  } else if (h.freezable) {
    status.dataset.state = "freezable";
    text(status, `The hatch may open now: ${hatchReason(h)}. Anyone may freeze the exchange.`);
  } else {
    status.dataset.state = "closed";
    text(status, `Closed: it may open in ${seconds(h.secondsLeft)} (at ${chainClock(h.freezeAt)}) if ${h.reason === "forced-overdue" ? "" : "still "}${hatchReason(h)}.`);
  }
  // the payout is only worth proving once the hatch may open; before, the withdrawal panel is the way out
  if (h.frozen || h.freezable) {
    state.escape.proofs = await escapeProofs(state.client, state.address, state.token, h.latestEpoch);
    state.escape.owed = await escapeOwed(state.browser, state.info.exchange, state.escape.proofs);
    const o = state.escape.owed;
    text($("escape-expected"), `${money(o.total)} (balance ${money(o.balance)} + unclaimed withdrawals ${money(o.withdrawal)}, epoch ${h.latestEpoch})`);
  } else {
    state.escape.owed = null;
    text($("escape-expected"), "– (the hatch is closed)");
  }
  $("freeze").disabled = !h.freezable;
  // a frozen exchange takes no deposit and no forced request (custody.vy): say so instead of letting them revert
  for (const id of ["d-submit", "w-force"]) {
    $(id).disabled = h.frozen;
    if (h.frozen) $(id).title = "The exchange is frozen: use the escape hatch";
  }
  $("escape-submit").disabled = !(h.frozen && state.escape.owed && state.escape.owed.total > 0n);
  renderEscape();
}

function escapeStep(step, done, detail) {
  state.escape.steps = state.escape.steps.filter((s) => s.step !== step).concat([{ step, done, detail }]);
  renderEscape();
}

function renderEscape() {
  const items = ["frozen", "escaped", "paid"].map((step) => {
    const s = state.escape.steps.find((x) => x.step === step) ?? { done: step === "frozen" && state.escape.hatch?.frozen, detail: "" };
    const li = document.createElement("li");
    li.className = `step ${s.done ? "done" : "todo"}`;
    li.dataset.step = step;
    li.textContent = `${s.done ? "✓" : "·"} ${step}${s.detail ? `: ${s.detail}` : ""}`;
    return li;
  });
  $("escape-steps").replaceChildren(...items);
}

async function freeze() {
  requireWallet();
  const { receipt, seconds: took } = await sendTx("freeze", (signer) => sendFreeze(signer, state.info.exchange));
  escapeStep("frozen", true, `by this wallet, tx ${receipt.hash.slice(0, 12)}… (block ${receipt.blockNumber}, ${took.toFixed(1)} s)`);
  notice(`Frozen: the exchange is frozen (tx ${receipt.hash}); escape with the wallet now.`);
  await refreshEscape();
}

async function escapeWithWallet() {
  requireWallet();
  const latest = await state.exchange.latest_epoch();
  const proofs = await escapeProofs(state.client, state.address, state.token, latest);
  const before = await state.erc20.balanceOf(state.address);
  let expected, expectedWithdrawal = 0n;
  const { receipt, seconds: took } = await sendTx("escape", async (signer) => {
    const sent = await sendEscape(signer, state.info.exchange, proofs);
    expected = sent.owed.total;
    expectedWithdrawal = sent.owed.withdrawal;
    escapeStep("escaped", false, `expected ${money(expected)}, transaction sent`);
    return sent.tx;
  });
  const event = escapePaid(receipt, state.info.exchange);
  const after = await state.erc20.balanceOf(state.address);
  escapeStep("escaped", true, `expected ${money(expected)}, tx ${receipt.hash.slice(0, 12)}… (${took.toFixed(1)} s)`);
  escapeStep("paid", true, `${money(event.paid)} paid${event.unpaid > 0n ? `, ${money(event.unpaid)} still owed (rate limit)` : ""}; wallet balance rose by ${money(after - before)}`);
  $("escape-submit").dataset.paid = String(event.paid);
  // the escape paid the checkpointed withdrawals too (their part comes first): their entries end here
  if (expectedWithdrawal > 0n && event.paid >= expectedWithdrawal) {
    for (const w of state.withdrawals) {
      const epoch = withdrawalEpoch(w);
      if (!w.paid && epoch !== null && event.epoch > epoch) Object.assign(w, { paid: w.amount, paidAt: Date.now(), claimTx: receipt.hash, viaEscape: true });
    }
    renderWithdrawals();
  }
  notice(`Escaped: ${money(event.paid)} paid to ${state.address} (expected ${money(expected)}; wallet ${money(before)} → ${money(after)}).`);
  text($("wallet-balance"), `${money(after)} collateral`);
  await refreshEscape();
}

// ---------------------------------------------------------------- operators

/** The chain side in one cell: checkpointer state, RPC, and the watcher's deposit confirmations. */
function chainSide(cp, rpcOk) {
  const w = cp.watcher;
  let deposits = "";
  if (w && w.head !== null && w.head !== undefined) {
    deposits = `; deposits taken ${Math.max(0, (w.nextDepositSeq ?? 1) - 1)} (L1 head ${w.head}, confirmed ${w.confirmedHeight}, ${w.confirmations} conf.)`;
  } else if (w) {
    deposits = `; watcher: ${w.state ?? "idle"} (the leader follows L1)`;
  }
  return `${cp.state ?? "–"}${rpcOk === false ? ", RPC down" : ""}${deposits}`;
}

async function refreshOperators() {
  const results = await Promise.all(state.info.operators.map(async (o) => {
    try {
      // readiness from /v1/status (always 200) rather than /readyz, whose 503 the browser logs as an error
      const status = await state.client._get("/v1/status", o.api);
      return { o, status, ready: status.readiness ?? { ready: false, detail: "no readiness in status" } };
    } catch (err) {
      return { o, error: err.message };
    }
  }));
  const alarms = [];
  const rows = results.map(({ o, status, ready, error }) => {
    if (error) {
      alarms.push({ kind: "cluster", text: `operator ${o.id} unreachable (${o.api})` });
      return row([`#${o.id}`, "down", "–", "–", "–", "no", "–", "–"]);
    }
    const r = status.raft ?? {};
    const cp = status.checkpoint ?? {};
    const epoch = status.engine?.epoch;
    const recorded = cp.lastRecordedEpoch;
    const lag = epoch !== undefined && recorded !== undefined && recorded !== null ? epoch - recorded : null;
    const rpcOk = cp.rpc ? cp.rpc.ok : null;
    if (!ready.ready) alarms.push({ kind: "cluster", text: `operator ${o.id} not ready: ${ready.detail}` });
    if (rpcOk === false) alarms.push({ kind: "chain", text: `operator ${o.id}: RPC failing (${cp.rpc.lastError ?? "no answer"}): checkpoints wait, trading goes on` });
    if (cp.watcher?.alarm) alarms.push(depositAlarm(o, cp.watcher.alarm));
    if (cp.verifier?.mismatches?.length) alarms.push(refusalAlarm(o, cp.verifier.mismatches));
    if (cp.prices?.refusals) alarms.push({ kind: "chain", text: `operator ${o.id}: refused ${cp.prices.refusals} sequenced price(s)` });
    if (lag !== null && lag > 3) alarms.push({ kind: "chain", text: `operator ${o.id}: checkpoint lag ${lag} epochs` });
    return row([
      `#${o.id}${o.api === location.origin ? " (this page)" : ""}`, r.role ?? "–", r.term ?? "–", r.leader ?? "none",
      `${r.commitIndex ?? "–"} / ${r.appliedIndex ?? "–"}`, ready.ready ? "yes" : `no (${ready.detail})`,
      `${epoch ?? "–"} / ${recorded ?? "–"}${lag === null ? "" : ` (lag ${lag})`}`, chainSide(cp, rpcOk),
    ]);
  });
  fillBody($("operator-rows"), rows);
  const up = results.filter((x) => !x.error);
  const leaders = new Set(up.map((x) => x.status.raft?.leader).filter((l) => l !== undefined && l !== null));
  const sequencing = up.length === results.length && leaders.size === 1 ? "healthy" : up.length * 2 > results.length && leaders.size >= 1 ? "degraded" : "stopped";
  const chainOk = up.every((x) => x.status.checkpoint?.rpc?.ok !== false);
  const health = $("cluster-health");
  health.replaceChildren();
  const seq = document.createElement("span");
  seq.className = `clock-health ${sequencing}`;
  seq.textContent = `Sequencing clock (Raft): ${sequencing} — ${up.length} of ${results.length} operators up, leader ${[...leaders].join(", ") || "none"}`;
  const set = document.createElement("span");
  set.className = `clock-health ${chainOk ? "healthy" : "degraded"}`;
  set.textContent = `Settlement clock (chain): ${chainOk ? "healthy" : "degraded (RPC)"}`;
  health.append(seq, " · ", set);
  $("alarms").replaceChildren(...(alarms.length ? alarms : [{ kind: "none", text: "no alarms" }]).map(renderAlarm));
}

// The chain watcher's alarm kinds (chain/core/follower.py AlarmKind), in words.
const DEPOSIT_ALARMS = {
  deposit_gap: "a deposit is missing from the chain's logs (a gap in the deposit numbers)",
  deposit_repeated: "a deposit appeared twice in the chain's logs",
  forced_gap: "a forced request is missing from the chain's logs",
  forced_repeated: "a forced request appeared twice in the chain's logs",
  inbox_mismatch: "the deposit and forced-request logs do not add up to the contract's own inbox count (a log went missing)",
  sequenced_block_reorged: "an L1 block already sequenced was reorganised away",
};

/** The leader's chain watcher stopped: no deposit or forced request is taken until an operator restarts it. */
function depositAlarm(o, alarm) {
  return {
    kind: "deposit-gap", operator: o.id,
    title: `Deposit alarm: operator ${o.id} halted deposit ingestion`,
    text: `${DEPOSIT_ALARMS[alarm.kind] ?? alarm.kind} at L1 block ${alarm.block} (${alarm.detail}).`,
    meaning: "For traders: deposits made on-chain from now on are not credited until the operators fix their chain " +
      "access, and forced requests are not taken; trading on what is credited goes on. The tokens stay in the " +
      "contract: if a deposit or forced request stays uncovered past the forced deadline, anyone may freeze the " +
      "exchange and escape (below).",
  };
}

/** This operator's own chain contradicts blocks the leader sequenced: it will not sign epochs that contain them. */
function refusalAlarm(o, mismatches) {
  const blocks = mismatches.map((m) => m.block).join(", ");
  return {
    kind: "refusal", operator: o.id,
    title: `Verification refusal: operator ${o.id} will not sign`,
    text: `${mismatches.length} sequenced L1 block(s) (${blocks}) differ from its own view of the chain: ${mismatches[0].reason}.`,
    meaning: `For traders: operator ${o.id} withholds its signature from every epoch containing ${mismatches.length > 1 ? "these blocks" : "this block"}; ` +
      "checkpoints are recorded only while enough other operators sign them (the on-chain threshold), otherwise " +
      "withdrawals wait and the escape delay runs.",
  };
}

function renderAlarm(a) {
  const li = document.createElement("li");
  li.className = `alarm ${a.kind}`;
  if (a.operator !== undefined) li.dataset.operator = String(a.operator);
  if (a.title) {
    li.setAttribute("role", "alert");
    const title = document.createElement("strong");
    title.textContent = a.title;
    const what = document.createElement("div");
    what.textContent = a.text;
    const meaning = document.createElement("div");
    meaning.className = "meaning";
    meaning.textContent = a.meaning;
    li.append(title, what, meaning);
    return li;
  }
  li.textContent = a.kind === "none" ? a.text : `${a.kind === "cluster" ? "cluster clock" : "chain clock"}: ${a.text}`;
  return li;
}

start().catch((err) => notice(`could not start: ${err.message}`, "error"));
