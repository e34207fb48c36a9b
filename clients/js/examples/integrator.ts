// How an integrator uses @ddx/client from TypeScript (docs/app.md "The JS client"): build, sign and submit a
// request, verify its receipt, read, follow a feed and the book, and leave through the escape hatch; in node with a
// key, or in a browser with a wallet. tests/app/test_js_types.py type-checks this file
// with `tsc --noEmit --strict` against the declarations in ../src/*.d.mts, so it breaks when they drift.
import { JsonRpcProvider, Wallet } from "ethers";
import {
  DdxClient, EscapeError, OrderType, ProofInvalid, ReceiptInvalid, RequestRefused, Side, batch, cancelAction, cancelAll,
  domainOf, eip1193Signer, escapeOwed, escapePaid, escapeProofs, escapeState, marketUnits, placeAction, placeOrder,
  requestSigner, sendEscape, sendFreeze, signRequest, typedData, withdrawIntent,
  type EscapeOwed, type EscapeProofs, type EscapeState, type Eip1193Provider, type FeedMessage, type Info, type Request, type RequestFields, type SubmittedReceipt,
} from "@ddx/client";

export async function trade(api: string, rpc: string, key: string): Promise<SubmittedReceipt> {
  const probe = new DdxClient([api]);
  const info: Info = await probe.info();
  const domain = domainOf(info.chainId, info.exchange);
  // a replica's /v1/info names the operators it follows: submit to them
  const client = new DdxClient(info.operators.map((o) => o.api), { domain });
  const set = await client.useChain(new JsonRpcProvider(rpc));
  console.log(`${set.operators.length} operators, threshold ${set.threshold}`);

  const signer = new Wallet(key);
  const market = await client.market("ETHP");
  const units = marketUnits(market, Number(info.collateral[0].decimals)); // tick and lot checks
  const fields: RequestFields<"PlaceOrder"> = {
    trader: signer.address, market: "ETHP", side: Side.BUY, orderType: OrderType.POST_ONLY,
    price: units.price("1999.5"), size: units.size("0.01"),
  };
  const order: Request<"PlaceOrder"> = placeOrder(fields);
  const document = typedData(order, domain); // what a wallet shows its user
  console.log(document.primaryType, document.message.price);

  const signed = await signRequest(signer, order, domain);
  if (requestSigner(signed, domain) !== signer.address) throw new Error("signed by someone else");
  let receipt: SubmittedReceipt;
  try {
    receipt = await client.submit(signed);
  } catch (err) {
    if (err instanceof RequestRefused) console.error(`refused (${err.status}): ${err.reason}`);
    else if (err instanceof ReceiptInvalid) console.error(`a receipt that does not verify: ${err.message}`);
    throw err;
  }
  console.log(`request ${receipt.requestIndex} in epoch ${receipt.epoch}, signed by ${receipt.operatorAddress} ` +
    `(${receipt.api}) after ${receipt.elapsedMs.toFixed(1)} ms`);
  const stored = await client.receipt(signed.requestHash); // later, from any operator (a replica's is unsigned)
  if (stored.signature !== null) console.log((await client.verify(stored, signed)).operatorAddress);

  // a batch that cancels the order and places another, all or nothing
  const replace = batch({
    trader: signer.address, atomic: true,
    actions: [cancelAction("ETHP", signed.requestHash), placeAction({ market: "ETHP", side: Side.SELL, price: "2001000000", size: 10000n })],
  });
  await client.submit(await signRequest(signer, replace, domain));

  const withdrawal = withdrawIntent({ trader: signer.address, token: info.collateral[0].token, amount: "1000000" });
  await client.submit(await signRequest(signer, withdrawal, domain));

  // reads
  const account = await client.account(signer.address);
  for (const strategy of account.accounts) {
    for (const p of strategy.positions) {
      console.log(p.side, units.showSize(p.size), "at", units.showPrice(p.entryPrice), "liquidation", p.liquidationPrice ?? "–");
    }
  }
  const fills = await client.fills(signer.address, { limit: 10 });
  if (fills.next !== null) await client.fills(signer.address, { before: fills.next, limit: 10 }); // the page after
  const ticker = await client.ticker("ETHP");
  console.log(fills.items.map((f) => `${f.role} ${f.side} ${f.size} @ ${f.price}`), ticker.mark, ticker.bestBid);

  // the trader feed (resumes from the last ordinal on a reconnect) and the checked L2 book
  const feed = client.stream({
    channel: "trader", key: signer.address,
    onMessage: (message: FeedMessage) => {
      if (message.type === "update" && message.kind === "Fill") console.log("fill", message.requestIndex, message.data);
      else if (message.type === "snapshot") console.log("snapshot at", message.ordinal);
    },
    onError: (error) => console.error(error.error),
  });
  const book = client.bookStream("ETHP", {
    onBook: (b) => {
      const best = b.levels("bids")[0];
      if (best) console.log(b.seq, best[0], best[1], b.checked);
    },
  });
  setTimeout(() => {
    console.log("resume from", feed.lastOrdinal, book.book.seq);
    feed.close();
    book.close();
  }, 10_000);
  return receipt;
}

// In a browser: the page's own fetch and WebSocket, and the user's wallet (window.ethereum) signing through
// eth_signTypedData_v4.
export async function cancelFromBrowser(api: string, wallet: Eip1193Provider, address: string): Promise<SubmittedReceipt> {
  const info = await (await fetch(api + "/v1/info")).json() as Info;
  const domain = domainOf(info.chainId, info.exchange);
  const client = new DdxClient(info.operators.map((o) => o.api), { domain, fetch, WebSocket: globalThis.WebSocket });
  const book = client.bookStream("ETHP", { onBook: (b) => console.log(b.levels("asks")[0]) });
  const everything = cancelAll({ trader: address, market: 0 }); // market 0: every market
  const receipt = await client.submit(await signRequest(eip1193Signer(wallet, address), everything, domain));
  book.close();
  return receipt;
}

// The escape hatch (docs/contracts.md): when the operators stop checkpointing, say when the hatch may open and why;
// once it may, freeze, then leave with the last recorded checkpoint's proofs — checked before anything is sent.
export async function leaveThroughTheHatch(api: string, rpc: string, key: string, token: string): Promise<bigint> {
  const info = await new DdxClient([api]).info();
  const client = new DdxClient(info.operators.map((o) => o.api), { domain: domainOf(info.chainId, info.exchange) });
  const provider = new JsonRpcProvider(rpc);
  const signer = new Wallet(key, provider);
  const state: EscapeState = await escapeState(provider, info.exchange);
  if (!state.frozen && !state.freezable) {
    const why = state.reason === "forced-overdue" ? "a forced request is past its deadline" : "no checkpoint";
    console.log(`the hatch may open in ${state.secondsLeft} s (${why})`);
    return 0n;
  }
  if (!state.frozen) await (await sendFreeze(signer, info.exchange)).wait();
  const proofs: EscapeProofs = await escapeProofs(client, signer.address, token, state.latestEpoch);
  const owed: EscapeOwed = await escapeOwed(provider, info.exchange, proofs);
  console.log(`owed ${owed.balance} (balance) + ${owed.withdrawal} (withdrawable)`);
  try {
    const { tx } = await sendEscape(signer, info.exchange, proofs);
    const mined = await tx.wait();
    if (mined === null) throw new Error("the escape was not mined");
    return escapePaid(mined, info.exchange).paid;
  } catch (err) {
    if (err instanceof EscapeError || err instanceof ProofInvalid) console.error(`not sent: ${err.message}`);
    throw err;
  }
}
