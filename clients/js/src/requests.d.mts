// Declarations of requests.mjs. The field shapes come from request_types.d.mts, generated from the Python request
// types with request_types.mjs; only what the builders do with them is written here.
import type { Signature, TypedDataDomain } from "ethers";
import schema from "./request_types.mjs";
import type { ActionInput, AddressInput, BatchInput, Bytes32Input, ReceiptMessage, RequestInputs, RequestMessages,
  RequestType, UintInput } from "./request_types.mjs";

export type * from "./request_types.mjs";
export { schema };

export declare const Side: typeof schema.enums.Side;
export declare const OrderType: typeof schema.enums.OrderType;
export declare const ActionKind: typeof schema.enums.ActionKind;
export declare const AgentScope: typeof schema.enums.AgentScope;
export declare const Direction: typeof schema.enums.Direction;
export declare const REQUEST_TYPES: RequestType[];

/** Refused before anything is signed: an unknown or missing field, a value out of its type's range. */
export declare class RequestError extends Error {
  constructor(message: string);
}

/** The EIP-712 domain of a deployment (docs/protocol.md §5). */
export interface Domain {
  name: string;
  version: string;
  chainId: number;
  verifyingContract: string;
}

/**
 * The fields a builder fills when they are left out (requests.mjs DEFAULTS, plus a fresh nonce and the current
 * time): strategy "main", zero ids, prices, sizes and expiries, limit good-till-cancelled, not reduce-only.
 * tests/app/test_js_types.py checks this list against what the builders actually accept.
 */
export type DefaultedField = "strategy" | "orderType" | "reduceOnly" | "clientOrderId" | "expiry" | "attached" |
  "group" | "limitPrice" | "orderHash" | "side" | "price" | "size" | "kind" | "atomic" | "nonce" | "timestamp";

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type WithDefaults<T> = Simplify<Omit<T, DefaultedField> & Partial<Pick<T, Extract<keyof T, DefaultedField>>>>;

/** A batch action as `placeAction`, `cancelAction`, `modifyAction` or a caller writes it. */
export type ActionFields = WithDefaults<ActionInput>;
/** What the builder of request type `T` takes. */
export type RequestFields<T extends RequestType> = T extends "Batch"
  ? Simplify<WithDefaults<Omit<BatchInput, "actions">> & { actions: ActionFields[] }>
  : WithDefaults<RequestInputs[T]>;

/** A built request: its type and the message exactly as it is signed (§7.2). */
export interface Request<T extends RequestType = RequestType> {
  type: T;
  message: RequestMessages[T];
}

/** A signed request: the wire form of POST /v1/requests plus its hash. */
export interface SignedRequest<T extends RequestType = RequestType> extends Request<T> {
  signature: string;
  domain: { chainId: string; verifyingContract: string };
  requestHash: string;
}
export type WireRequest<T extends RequestType = RequestType> = Omit<SignedRequest<T>, "requestHash">;

export interface TypedDataField {
  name: string;
  type: string;
}
/** The eth_signTypedData_v4 document. */
export interface TypedDataDocument<T extends RequestType = RequestType> {
  types: Record<string, TypedDataField[]>;
  primaryType: T;
  domain: Domain;
  message: RequestMessages[T];
}

/** Anything that signs typed data: an ethers Signer (`signTypedData`) or `eip1193Signer`'s `signTypedDataV4`. */
export type RequestSigner =
  | { signTypedData(domain: TypedDataDomain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>): Promise<string> }
  | { signTypedDataV4(document: TypedDataDocument): Promise<string | Signature> };

/** The part of an EIP-1193 provider (window.ethereum) the signer calls. */
export interface Eip1193Provider {
  request(args: { method: string; params?: unknown[] | Record<string, unknown> }): Promise<unknown>;
}
export interface Eip1193Signer {
  address: string;
  signTypedDataV4(document: TypedDataDocument): Promise<string>;
}

export declare function domainOf(chainId: number | string | bigint, exchange: AddressInput): Domain;
export declare function id32(value: Bytes32Input | undefined): string;
export declare function nameOf(id: string): string | null;
export declare function freshNonce(): string;
export declare function buildRequest<T extends RequestType>(type: T, fields: RequestFields<T>): Request<T>;

export declare const builders: { [T in RequestType as Uncapitalize<T>]: (fields: RequestFields<T>) => Request<T> };
export declare const placeOrder: (fields: RequestFields<"PlaceOrder">) => Request<"PlaceOrder">;
export declare const cancelOrder: (fields: RequestFields<"CancelOrder">) => Request<"CancelOrder">;
export declare const cancelAll: (fields: RequestFields<"CancelAll">) => Request<"CancelAll">;
export declare const modifyOrder: (fields: RequestFields<"ModifyOrder">) => Request<"ModifyOrder">;
export declare const withdrawIntent: (fields: RequestFields<"WithdrawIntent">) => Request<"WithdrawIntent">;
export declare const createStrategy: (fields: RequestFields<"CreateStrategy">) => Request<"CreateStrategy">;
export declare const batch: (fields: RequestFields<"Batch">) => Request<"Batch">;
export declare const approveAgent: (fields: RequestFields<"ApproveAgent">) => Request<"ApproveAgent">;
export declare const revokeAgent: (fields: RequestFields<"RevokeAgent">) => Request<"RevokeAgent">;
export declare const scheduleCancel: (fields: RequestFields<"ScheduleCancel">) => Request<"ScheduleCancel">;
export declare const transfer: (fields: RequestFields<"Transfer">) => Request<"Transfer">;
export declare const placeTrigger: (fields: RequestFields<"PlaceTrigger">) => Request<"PlaceTrigger">;
export declare const placeTwap: (fields: RequestFields<"PlaceTwap">) => Request<"PlaceTwap">;

export declare function placeAction(fields: Omit<ActionFields, "kind">): ActionFields;
export declare function cancelAction(market: Bytes32Input, orderHash: Bytes32Input): ActionFields;
export declare function modifyAction(market: Bytes32Input, orderHash: Bytes32Input, price: UintInput, size: UintInput): ActionFields;

/** `Exchange.force_request(typeId, fields)`'s arguments (docs/protocol.md §6.5); a RequestError if not forceable. */
export declare function forcedFields(request: Request): { typeId: number; fields: string };
export declare function typesOf(type: RequestType): Record<string, TypedDataField[]>;
export declare function typedData<T extends RequestType>(request: Request<T>, domain: Domain): TypedDataDocument<T>;
export declare function requestHash(request: Request, domain: Domain): string;
export declare function batchActionId(hash: string, index: number | bigint): string;
export declare function signRequest<T extends RequestType>(signer: RequestSigner, request: Request<T>, domain: Domain): Promise<SignedRequest<T>>;
export declare function requestSigner(signed: SignedRequest | WireRequest, domain: Domain): string;
export declare function wireForm<T extends RequestType>(signed: SignedRequest<T>): WireRequest<T>;
export declare function eip1193Signer(provider: Eip1193Provider, address: AddressInput): Eip1193Signer;
/** A receipt as an operator returns it (docs/protocol.md §7.5): the signed fields, the operator's signature and
 * address (`receiptSigner` recovers the address from the signature: trust that, not the field). */
export interface Receipt extends ReceiptMessage {
  signature: string;
  operator?: string;
}
/** A receipt as a replica returns it from GET /v1/receipts: a replica holds no operator key, so nothing signs it. */
export interface UnsignedReceipt extends ReceiptMessage {
  signature: null;
  operator: null;
}
export declare function receiptSigner(receipt: Receipt, domain: Domain): string;
