// The operator API from JavaScript (docs/api.md): REST reads, submission with receipt verification against the
// operator set recorded on-chain, and resumable WebSocket feeds. Works in browsers and in node (pass `fetch` and
// `WebSocket` implementations when the platform lacks them).
import { Contract, getAddress } from "ethers";
import { id32, receiptSigner, wireForm } from "./requests.mjs";
import { EXCHANGE_ABI } from "./abi.mjs";
import { LocalBook } from "./book.mjs";

/** The node answered with a reason (docs/api.md error table): `reason`, `status` and the body. */
export class RequestRefused extends Error {
  constructor(status, body) {
    super(`${body?.error ?? status}: ${body?.detail ?? ""}`);
    this.name = "RequestRefused";
    this.status = status;
    this.reason = body?.error ?? "http_error";
    this.body = body;
  }
}

export class ReceiptInvalid extends Error {
  constructor(message) {
    super(message);
    this.name = "ReceiptInvalid";
  }
}

// what the SDK retries, on the next operator (docs/api.md "Retries": the same signed bytes never execute twice)
const RETRYABLE = new Set(["outcome_unknown", "not_sequenced", "no_leader", "overloaded", "rate_limited"]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The operator set recorded on-chain, read through any ethers provider (BrowserProvider over EIP-1193 too). */
export async function operatorSetFromChain(provider, exchange) {
  const contract = new Contract(exchange, EXCHANGE_ABI, provider);
  const [members, threshold] = await Promise.all([contract.operators(), contract.threshold()]);
  return { operators: members.map((a) => getAddress(a)), threshold: Number(threshold) };
}

export class DdxClient {
  /**
   * @param {string[]} apis operators' base URLs; requests go to the first that answers
   * @param {{domain?: object, operators?: string[], fetch?: Function, WebSocket?: Function, retries?: number}} options
   */
  constructor(apis, options = {}) {
    if (!apis.length) throw new Error("at least one operator API");
    this.apis = apis.map((u) => u.replace(/\/$/, ""));
    this.domain = options.domain ?? null;
    this.operators = options.operators ? new Set(options.operators.map((a) => getAddress(a))) : null;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.retries = options.retries ?? 6;
    this.preferred = 0;
  }

  // ------------------------------------------------------------------ transport

  async _get(path, api) {
    const base = api ?? this.apis[this.preferred];
    const res = await this.fetch(base + path);
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new RequestRefused(res.status, body);
    return body;
  }

  /** GET on the preferred operator, falling over to the next on a network error or a 5xx. */
  async get(path) {
    let last;
    for (let i = 0; i < this.apis.length; i++) {
      const at = (this.preferred + i) % this.apis.length;
      try {
        const body = await this._get(path, this.apis[at]);
        this.preferred = at;
        return body;
      } catch (err) {
        if (err instanceof RequestRefused && err.status < 500) throw err;
        last = err;
      }
    }
    throw last;
  }

  // ------------------------------------------------------------------ requests and receipts

  /**
   * POST a signed request (requests.mjs signRequest) and verify the receipt: it names this request, the signer, the
   * nonce, and is signed by a member of the operator set. Retries the same signed bytes on retryable refusals and
   * unreachable operators, cycling through them. Returns the receipt plus `operatorAddress` and `elapsedMs`.
   */
  async submit(signed) {
    const body = JSON.stringify(wireForm(signed));
    const started = performance.now();
    let last;
    for (let attempt = 0; attempt < this.retries; attempt++) {
      const api = this.apis[(this.preferred + attempt) % this.apis.length];
      try {
        const res = await this.fetch(api + "/v1/requests", { method: "POST", headers: { "content-type": "application/json" }, body });
        const doc = await res.json().catch(() => null);
        if (!res.ok) {
          const refused = new RequestRefused(res.status, doc);
          if (!RETRYABLE.has(refused.reason)) throw refused;
          last = refused;
          await sleep(Math.min(1000, 50 * 2 ** attempt));
          continue;
        }
        const checked = await this.verify(doc, signed);
        return { ...checked, elapsedMs: performance.now() - started, api };
      } catch (err) {
        if (err instanceof RequestRefused || err instanceof ReceiptInvalid) throw err;
        last = err; // unreachable: the next operator
        await sleep(Math.min(1000, 50 * 2 ** attempt));
      }
    }
    throw last;
  }

  /** Check a receipt (docs/protocol.md §7.5); with `signed`, that it is this request's. */
  async verify(receipt, signed) {
    if (!this.domain) throw new ReceiptInvalid("no domain: pass {domain} or call connect()");
    if (signed) {
      if (receipt.requestHash !== signed.requestHash) throw new ReceiptInvalid(`receipt for ${receipt.requestHash}, not ${signed.requestHash}`);
      if (receipt.nonce !== signed.message.nonce) throw new ReceiptInvalid("receipt nonce differs from the request's");
    }
    const operator = receiptSigner(receipt, this.domain);
    if (!this.operators) throw new ReceiptInvalid("no operator set: pass {operators} or call useChain()");
    if (!this.operators.has(operator)) throw new ReceiptInvalid(`receipt signed by ${operator}, not a member of the operator set`);
    return { ...receipt, operatorAddress: operator };
  }

  /** Read the operator set from the exchange contract (the set receipts are checked against). */
  async useChain(provider, exchange) {
    const set = await operatorSetFromChain(provider, exchange ?? this.domain.verifyingContract);
    this.operators = new Set(set.operators);
    this.threshold = set.threshold;
    return set;
  }

  // ------------------------------------------------------------------ reads (docs/api.md)

  info() { return this.get("/v1/info"); }
  status(api) { return api ? this._get("/v1/status", api) : this.get("/v1/status"); }
  receipt(hash) { return this.get(`/v1/receipts/${hash}`); }
  markets() { return this.get("/v1/markets").then((d) => d.markets); }
  market(m) { return this.get(`/v1/markets/${encodeURIComponent(m)}`); }
  ticker(m) { return this.get(`/v1/tickers/${encodeURIComponent(m)}`); }
  tickers() { return this.get("/v1/tickers"); }
  trades(m, limit = 50) { return this.get(`/v1/markets/${encodeURIComponent(m)}/trades?limit=${limit}`); }
  candles(m, interval = "1m", limit = 500) { return this.get(`/v1/markets/${encodeURIComponent(m)}/candles?interval=${interval}&limit=${limit}`); }
  funding(m) { return this.get(`/v1/markets/${encodeURIComponent(m)}/funding`); }
  orderBook(m, depth = 50) { return this.get(`/v1/markets/${encodeURIComponent(m)}/book?depth=${depth}`); }
  account(t) { return this.get(`/v1/traders/${t}/account`); }
  openOrders(t) { return this.get(`/v1/traders/${t}/openOrders`); }
  withdrawable(t) { return this.get(`/v1/traders/${t}/withdrawable`); }
  fills(t, { before, limit = 50 } = {}) { return this.get(`/v1/traders/${t}/fills?limit=${limit}${before ? `&before=${before}` : ""}`); }
  orders(t, { before, limit = 50, status } = {}) {
    return this.get(`/v1/traders/${t}/orders?limit=${limit}${before ? `&before=${before}` : ""}${status ? `&status=${status}` : ""}`);
  }
  checkpoints(limit = 20) { return this.get(`/v1/checkpoints?limit=${limit}`); }
  /** The WITHDRAWAL leaf's proof document against `epoch` (default: the last epoch recorded on-chain). */
  withdrawalProof(t, token, epoch) { return this.get(`/v1/proofs/withdrawal/${t}/${token}${epoch === undefined ? "" : `?epoch=${epoch}`}`); }
  /** The BALANCE leaf's proof document (inclusion, or `included: false` with a non-inclusion proof) against `epoch`. */
  balanceProof(t, token, epoch) { return this.get(`/v1/proofs/balance/${t}/${token}${epoch === undefined ? "" : `?epoch=${epoch}`}`); }
  updates(after, limit = 100) { return this.get(`/v1/updates?after=${after}&limit=${limit}`); }

  // ------------------------------------------------------------------ feeds

  /**
   * The execution-update feed (`/v1/ws?channel=all|trader|market&key=`): calls `onMessage` with the snapshot, then
   * every update. On a disconnect it reconnects to the next operator with `from=<last ordinal>`, so no update is
   * lost or repeated. `from`: start after this ordinal (no snapshot). Returns {close(), lastOrdinal}.
   */
  stream({ channel = "all", key, from, onMessage, onError, onState }) {
    let last = from === undefined ? null : String(from);
    let closed = false;
    let ws = null;
    let attempt = 0;
    const connect = () => {
      if (closed) return;
      const api = this.apis[(this.preferred + attempt) % this.apis.length];
      const q = new URLSearchParams({ channel });
      if (key) q.set("key", key);
      if (last !== null) q.set("from", last);
      ws = new this.WebSocket(api.replace(/^http/, "ws") + "/v1/ws?" + q);
      ws.onopen = () => { attempt = 0; onState?.("open", api); };
      ws.onmessage = (ev) => {
        const doc = JSON.parse(typeof ev.data === "string" ? ev.data : ev.data.toString());
        if (doc.type === "error") {
          onError?.(doc);
          if (doc.error === "resume_unavailable" || doc.error === "resume_too_old") last = null; // fresh snapshot
          return;
        }
        if (doc.type === "snapshot") last = doc.ordinal;
        else if (doc.type === "update") {
          if (last !== null && BigInt(doc.ordinal) <= BigInt(last)) return; // never twice
          last = doc.ordinal;
        }
        onMessage(doc);
      };
      ws.onclose = () => {
        onState?.("closed", api);
        if (closed) return;
        attempt++;
        setTimeout(connect, Math.min(2000, 100 * attempt));
      };
      ws.onerror = () => {};
    };
    connect();
    return { close() { closed = true; ws?.close(); }, get lastOrdinal() { return last; } };
  }

  /**
   * The L2 book of `market`, kept from the book feed: each delta whose prevSeq is the book's seq applies and its
   * checksum is checked; a gap or a mismatch re-syncs from a snapshot. `onBook(book)` after every change.
   */
  bookStream(market, { onBook, depth = 100, onState } = {}) {
    const book = new LocalBook();
    let closed = false;
    let ws = null;
    let attempt = 0;
    const connect = (from) => {
      if (closed) return;
      const api = this.apis[(this.preferred + attempt) % this.apis.length];
      const q = new URLSearchParams({ channel: "book", key: id32(market), depth: String(depth) });
      if (from !== undefined) q.set("from", from);
      ws = new this.WebSocket(api.replace(/^http/, "ws") + "/v1/ws?" + q);
      ws.onopen = () => { attempt = 0; onState?.("open", api); };
      ws.onmessage = (ev) => {
        const doc = JSON.parse(typeof ev.data === "string" ? ev.data : ev.data.toString());
        if (doc.type === "book") {
          book.reset(doc);
        } else if (doc.type === "bookDelta") {
          if (!book.apply(doc)) { ws.close(); return; } // a gap or a bad checksum: reconnect for a snapshot
        } else if (doc.type === "error") {
          book.seq = null; ws.close(); return;
        }
        onBook?.(book);
      };
      ws.onclose = () => {
        onState?.("closed", api);
        if (closed) return;
        attempt++;
        const resume = book.seq === null ? undefined : book.seq; // resume after the last verified delta
        setTimeout(() => connect(resume), Math.min(2000, 100 * attempt));
      };
      ws.onerror = () => {};
    };
    connect();
    return { close() { closed = true; ws?.close(); }, book };
  }
}
