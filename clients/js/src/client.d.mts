// Declarations of client.mjs: REST reads, submission with receipt verification, resumable feeds (docs/api.md).
import type { ContractRunner } from "ethers";
import type { LocalBook } from "./book.mjs";
import type { BalanceProof, WithdrawalProof } from "./proofs.mjs";
import type { AddressInput, Bytes32Input, Domain, Receipt, RequestType, SignedRequest, UnsignedReceipt } from "./requests.mjs";

/** A JSON document as the API returns it: integers are decimal strings (docs/protocol.md §7.0). */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonDocument = { [key: string]: Json };

/** The node answered with a reason (docs/api.md error table). */
export declare class RequestRefused extends Error {
  constructor(status: number, body: JsonDocument | null);
  status: number;
  /** The node's `error` (e.g. "bad_nonce", "insufficient_margin"), or "http_error". */
  reason: string;
  body: JsonDocument | null;
}

/** A receipt that is not this request's, or not signed by a member of the operator set. */
export declare class ReceiptInvalid extends Error {
  constructor(message: string);
}

export interface OperatorSet {
  operators: string[];
  threshold: number;
}
/** Reads `operators()` and `threshold()` from the exchange contract. */
export declare function operatorSetFromChain(provider: ContractRunner, exchange: AddressInput): Promise<OperatorSet>;

/** A receipt `verify` accepted: its signer is in the operator set. */
export interface VerifiedReceipt extends Receipt {
  operatorAddress: string;
}
/** What `submit` returns: the verified receipt, the time from submission, and the operator API that answered. */
export interface SubmittedReceipt extends VerifiedReceipt {
  elapsedMs: number;
  api: string;
}

// The documents the reads return (docs/api.md). Integers are decimal strings, prices in the collateral's units,
// sizes in 10^-sizeDecimals contracts, times in ms; tests/app/test_js_types.py type-checks a devnet's real answers
// against these (a field the API sends that is not declared here fails, as does a declared one it does not send).

/** GET /v1/info: the deployment a node (or a replica) serves. */
export interface Info {
  chainId: string;
  exchange: string;
  /** This node's operator address; null on a replica. */
  operator: string | null;
  /** Every operator's API (a replica: the ones it follows). */
  operators: { id: string; api: string }[];
  collateral: { token: string; decimals: string }[];
  /** Served by a public replica: send signed requests to `operators`. */
  replica?: boolean;
}

/** A market's specification and state (GET /v1/markets, /v1/markets/{market}). */
export interface MarketDocument {
  symbol: string | null;
  market: string;
  token: string;
  tokenDecimals: string | null;
  tick: string;
  lot: string;
  sizeDecimals: string;
  initialMarginBps: string;
  maintenanceMarginBps: string;
  makerFeeBps: string;
  takerFeeBps: string;
  liquidationFeeBps: string;
  marketOrderBandBps: string;
  premiumCapBps: string;
  fundingCapBps: string;
  fundingDampener: string;
  fundingIntervalMs: string;
  maxOrderNotional: string;
  active: boolean;
  index: string | null;
  mark: string | null;
  nextFundingMs: string;
  lastFundingPerUnit: string;
  openInterest: string;
  predictedFundingPerUnit: string;
  /** On the single-market read: the last ordinal the answer includes. */
  lastOrdinal?: string;
}

export interface Ticker {
  market: string;
  symbol: string | null;
  time: string;
  index: string | null;
  mark: string | null;
  last: string | null;
  bestBid: string | null;
  bestAsk: string | null;
  open24h: string | null;
  high24h: string | null;
  low24h: string | null;
  change24h: string | null;
  volume24h: string;
  quoteVolume24h: string;
  trades24h: string;
  openInterest: string;
  fundingPerUnit: string;
  predictedFundingPerUnit: string;
  nextFundingTime: string;
  fundingIntervalMs: string;
  lastOrdinal?: string;
}
export interface Tickers {
  tickers: Ticker[];
  lastOrdinal: string;
}

export interface Trade {
  id: string;
  time: string;
  price: string;
  size: string;
  notional: string;
  takerSide: "buy" | "sell";
  liquidation: boolean;
}
export interface Trades {
  market: string;
  trades: Trade[];
  lastOrdinal: string;
}

/** [start, open, high, low, close, volume, quoteVolume, trades] */
export type Candle = [string, string, string, string, string, string, string, string];
export interface Candles {
  market: string;
  interval: string;
  candles: Candle[];
  lastOrdinal: string;
}

export interface FundingRecord {
  ordinal: string;
  time: string;
  perUnit: string;
  intervals: string;
  paid: string;
  received: string;
}
export interface FundingHistory {
  market: string;
  funding: FundingRecord[];
  lastOrdinal: string;
}

export interface OrderBook {
  market: string;
  seq: string;
  bids: [price: string, size: string][];
  asks: [price: string, size: string][];
  checksum: string;
  lastOrdinal: string;
}

export interface Position {
  market: string;
  side: "long" | "short";
  size: string;
  cost: string;
  entryPrice: string;
  mark: string | null;
  notional: string;
  unrealizedPnl: string;
  realizedPnl: string;
  initialMargin: string;
  maintenanceMargin: string;
  /** null when no mark price liquidates it. */
  liquidationPrice: string | null;
}
export interface StrategyAccount {
  strategy: string;
  token: string;
  collateral: string;
  unrealizedPnl: string;
  equity: string;
  initialMargin: string;
  maintenanceMargin: string;
  availableMargin: string;
  freeCollateral: string;
  positions: Position[];
}
export interface Account {
  trader: string;
  known: boolean;
  accounts: StrategyAccount[];
  lastOrdinal: string;
}

export interface OpenOrder {
  orderHash: string;
  strategy: string;
  market: string;
  symbol: string | null;
  /** Side.BUY or Side.SELL */
  side: number;
  /** an OrderType */
  orderType: number;
  price: string;
  remaining: string;
  original: string;
  reduceOnly: boolean;
  clientOrderId: string;
  expiry: string;
}
export interface OpenOrders {
  openOrders: OpenOrder[];
  lastOrdinal: string;
}

export interface Withdrawable {
  withdrawable: { token: string; withdrawable: string }[];
  lastOrdinal: string;
}

/** A page of a trader's history, newest first; `next`: pass as `before` for the page after, null at the end. */
export interface Page<T> {
  items: T[];
  next: string | null;
  lastOrdinal: string;
}
export interface Fill {
  ordinal: string;
  market: string;
  strategy: string;
  orderId: string;
  role: "maker" | "taker";
  side: "buy" | "sell";
  price: string;
  size: string;
  fee: string;
  liquidation: boolean;
}
export interface OrderRecord {
  ordinal: string;
  orderId: string;
  strategy: string;
  market: string;
  side: "buy" | "sell";
  price: string;
  remaining: string;
  status: string;
  reason: string;
  reasonName: string | null;
}

/** An epoch's checkpoint: built → signed → submitted → recorded → final (docs/checkpoints.md). */
export interface Checkpoint {
  epoch: string;
  root: string;
  stage: string;
  /** The checkpointer's detail: signatures, threshold, txHashes, secondsToRecord, waiting, lastError, ... */
  detail: JsonDocument;
}
export interface Checkpoints {
  checkpoints: Checkpoint[];
  /** The checkpointer's (or a replica's audit's) state. */
  current: JsonDocument;
}

/** An execution update as the log and the feeds carry it. */
export interface UpdateRecord {
  ordinal: string;
  requestIndex: string;
  /** The engine update: Accepted, Rejected, Fill, OrderUpdate, PositionUpdate, StrategyUpdate, WithdrawalUpdate, ... */
  kind: string;
  traders: string[];
  market: string | null;
  /** Its fields (addresses EIP-55, other bytes hex, integers decimal strings, `reasonName` beside reason codes). */
  data: JsonDocument;
}
export interface Updates {
  after: string;
  updates: UpdateRecord[];
  lastOrdinal: string;
}

/** A feed message: the snapshot first (without `from`), then updates (docs/api.md "Execution updates"). */
export interface FeedSnapshot {
  type: "snapshot";
  channel: string;
  ordinal: string;
  state: Json;
}
export interface FeedUpdate extends UpdateRecord {
  type: "update";
}
export interface FeedError {
  type: "error";
  error: string;
  detail?: string;
}
export type FeedMessage = FeedSnapshot | FeedUpdate;

export type FeedState = "open" | "closed";
export interface StreamOptions {
  channel?: "all" | "trader" | "market";
  /** The trader's address or the market's id, for those channels. */
  key?: string;
  /** Start after this ordinal (no snapshot). */
  from?: string | number | bigint;
  onMessage(message: FeedMessage): void;
  onError?(error: FeedError): void;
  onState?(state: FeedState, api: string): void;
}
export interface Stream {
  close(): void;
  readonly lastOrdinal: string | null;
}
export interface BookStreamOptions {
  onBook?(book: LocalBook): void;
  depth?: number;
  onState?(state: FeedState, api: string): void;
}
export interface BookStream {
  close(): void;
  book: LocalBook;
}

/**
 * The WebSocket constructor the feeds use (the platform's, or the `ws` package's in node 20). The handlers' event
 * parameters are `any` because each platform passes its own event type (DOM `MessageEvent`, ws's `MessageEvent`);
 * the client reads only `data` (a string, or a Buffer from ws).
 */
export interface WebSocketLike {
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  close(): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface DdxClientOptions {
  domain?: Domain | null;
  /** The operator set receipts are checked against (else `useChain`). */
  operators?: AddressInput[];
  fetch?: typeof fetch;
  WebSocket?: WebSocketConstructor;
  /** Attempts per submission (default 6). */
  retries?: number;
}

export interface PageOptions {
  before?: string | number | bigint;
  limit?: number;
}

export declare class DdxClient {
  /** @param apis operators' base URLs; requests go to the first that answers. */
  constructor(apis: string[], options?: DdxClientOptions);
  apis: string[];
  domain: Domain | null;
  operators: Set<string> | null;
  threshold?: number;
  retries: number;
  /** Index into `apis` of the operator that answered last. */
  preferred: number;

  /** GET `path` from the preferred operator, falling over to the next on a network error or a 5xx. */
  get<T = JsonDocument>(path: string): Promise<T>;
  /** POST a signed request and verify its receipt, retrying the same signed bytes across operators. */
  submit<T extends RequestType>(signed: SignedRequest<T>): Promise<SubmittedReceipt>;
  /** Check a receipt (docs/protocol.md §7.5); with `signed`, that it is this request's. */
  verify(receipt: Receipt, signed?: SignedRequest): Promise<VerifiedReceipt>;
  /** Read the operator set from the exchange contract (`exchange` defaults to the domain's). */
  useChain(provider: ContractRunner, exchange?: AddressInput): Promise<OperatorSet>;

  info(): Promise<Info>;
  /** This node's status, or `api`'s (no fail-over): docs/operations.md. */
  status(api?: string): Promise<JsonDocument>;
  /** A sequenced request's receipt: signed when an operator answers, unsigned from a replica. */
  receipt(hash: string): Promise<Receipt | UnsignedReceipt>;
  markets(): Promise<MarketDocument[]>;
  market(market: Bytes32Input): Promise<MarketDocument>;
  ticker(market: Bytes32Input): Promise<Ticker>;
  tickers(): Promise<Tickers>;
  trades(market: Bytes32Input, limit?: number): Promise<Trades>;
  candles(market: Bytes32Input, interval?: string, limit?: number): Promise<Candles>;
  funding(market: Bytes32Input): Promise<FundingHistory>;
  orderBook(market: Bytes32Input, depth?: number): Promise<OrderBook>;
  account(trader: string): Promise<Account>;
  openOrders(trader: string): Promise<OpenOrders>;
  withdrawable(trader: string): Promise<Withdrawable>;
  fills(trader: string, options?: PageOptions): Promise<Page<Fill>>;
  orders(trader: string, options?: PageOptions & { status?: string }): Promise<Page<OrderRecord>>;
  checkpoints(limit?: number): Promise<Checkpoints>;
  /** The WITHDRAWAL leaf's proof document against `epoch` (default: the last epoch recorded on-chain). */
  withdrawalProof(trader: string, token: string, epoch?: bigint | number | string): Promise<WithdrawalProof>;
  /** The BALANCE leaf's proof document (inclusion, or `included: false` with a non-inclusion proof) against `epoch`. */
  balanceProof(trader: string, token: string, epoch?: bigint | number | string): Promise<BalanceProof>;
  updates(after: string | number | bigint, limit?: number): Promise<Updates>;

  /** The execution-update feed; resumes on the next operator from the last ordinal, never delivering one twice. */
  stream(options: StreamOptions): Stream;
  /** The L2 book of `market`, kept from the book feed and checked against each delta's checksum. */
  bookStream(market: Bytes32Input, options?: BookStreamOptions): BookStream;
}
