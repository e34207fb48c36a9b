// Declarations of client.mjs: REST reads, submission with receipt verification, resumable feeds (docs/api.md).
import type { ContractRunner } from "ethers";
import type { LocalBook } from "./book.mjs";
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

/** GET /v1/info: the deployment a node (or a replica) serves. */
export interface Info extends JsonDocument {
  chainId: string;
  exchange: string;
  operator: string | null;
  operators: { id: string; api: string }[];
  collateral: { token: string; decimals: string }[];
}

/** A feed message: the snapshot first (without `from`), then updates (docs/api.md "Execution updates"). */
export interface FeedSnapshot {
  type: "snapshot";
  channel: string;
  ordinal: string;
  state: Json;
}
export interface FeedUpdate {
  type: "update";
  ordinal: string;
  requestIndex: string;
  /** The engine update: Accepted, Rejected, Fill, OrderUpdate, PositionUpdate, StrategyUpdate, WithdrawalUpdate, ... */
  kind: string;
  traders: string[];
  market: string | null;
  data: JsonDocument;
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

/** The WebSocket constructor the feeds use (the platform's, or the `ws` package's in node 20). */
export interface WebSocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
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
  /** This node's status, or `api`'s (no fail-over). */
  status(api?: string): Promise<JsonDocument>;
  /** A sequenced request's receipt: signed when an operator answers, unsigned from a replica. */
  receipt(hash: string): Promise<Receipt | UnsignedReceipt>;
  markets(): Promise<JsonDocument[]>;
  market(market: Bytes32Input): Promise<JsonDocument>;
  ticker(market: Bytes32Input): Promise<JsonDocument>;
  tickers(): Promise<JsonDocument>;
  trades(market: Bytes32Input, limit?: number): Promise<JsonDocument>;
  candles(market: Bytes32Input, interval?: string, limit?: number): Promise<JsonDocument>;
  funding(market: Bytes32Input): Promise<JsonDocument>;
  orderBook(market: Bytes32Input, depth?: number): Promise<JsonDocument>;
  account(trader: string): Promise<JsonDocument>;
  openOrders(trader: string): Promise<JsonDocument>;
  withdrawable(trader: string): Promise<JsonDocument>;
  fills(trader: string, options?: PageOptions): Promise<JsonDocument>;
  orders(trader: string, options?: PageOptions & { status?: string }): Promise<JsonDocument>;
  checkpoints(limit?: number): Promise<JsonDocument>;
  withdrawalProof(trader: string, token: string): Promise<JsonDocument>;
  updates(after: string | number | bigint, limit?: number): Promise<JsonDocument>;

  /** The execution-update feed; resumes on the next operator from the last ordinal, never delivering one twice. */
  stream(options: StreamOptions): Stream;
  /** The L2 book of `market`, kept from the book feed and checked against each delta's checksum. */
  bookStream(market: Bytes32Input, options?: BookStreamOptions): BookStream;
}
