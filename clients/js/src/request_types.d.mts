// Generated from ddx_offchain.protocol.requests.request_schema(): do not edit by hand.
// Regenerate: .venv/bin/python -m ddx_offchain.cli.request_schema --declarations > clients/js/src/request_types.d.mts
// (tests/app/test_js_client.py fails when this file and the Python types differ.)

/** A uint as a builder takes it: a decimal string, a bigint or a safe integer (never a float). */
export type UintInput = string | bigint | number;
/** A bytes32 as a builder takes it: 0x + 64 hex, a readable name of 1..32 bytes ("main", "ETHP"),
 * or 0 or null for the zero id (`market: 0`: every market). */
export type Bytes32Input = string | 0 | null;
/** An address as a builder takes it: any case, or mixed case with a valid EIP-55 checksum. */
export type AddressInput = string;

export interface ActionMessage {
  kind: string;
  market: string;
  side: string;
  orderType: string;
  price: string;
  size: string;
  reduceOnly: boolean;
  orderHash: string;
  clientOrderId: string;
  expiry: string;
}
export interface ActionInput {
  kind: UintInput;
  market: Bytes32Input;
  side: UintInput;
  orderType: UintInput;
  price: UintInput;
  size: UintInput;
  reduceOnly: boolean;
  orderHash: Bytes32Input;
  clientOrderId: Bytes32Input;
  expiry: UintInput;
}

/** PlaceOrder(address trader,bytes32 strategy,bytes32 market,uint8 side,uint8 orderType,uint256 price,uint256 size,bool reduceOnly,uint64 nonce,uint64 timestamp,bytes32 clientOrderId,uint64 expiry) (type id 1) */
export interface PlaceOrderMessage {
  trader: string;
  strategy: string;
  market: string;
  side: string;
  orderType: string;
  price: string;
  size: string;
  reduceOnly: boolean;
  nonce: string;
  timestamp: string;
  clientOrderId: string;
  expiry: string;
}
export interface PlaceOrderInput {
  trader: AddressInput;
  strategy: Bytes32Input;
  market: Bytes32Input;
  side: UintInput;
  orderType: UintInput;
  price: UintInput;
  size: UintInput;
  reduceOnly: boolean;
  nonce: UintInput;
  timestamp: UintInput;
  clientOrderId: Bytes32Input;
  expiry: UintInput;
}

/** CancelOrder(address trader,bytes32 strategy,bytes32 market,bytes32 orderHash,uint64 nonce,uint64 timestamp) (type id 2) */
export interface CancelOrderMessage {
  trader: string;
  strategy: string;
  market: string;
  orderHash: string;
  nonce: string;
  timestamp: string;
}
export interface CancelOrderInput {
  trader: AddressInput;
  strategy: Bytes32Input;
  market: Bytes32Input;
  orderHash: Bytes32Input;
  nonce: UintInput;
  timestamp: UintInput;
}

/** CancelAll(address trader,bytes32 strategy,bytes32 market,uint64 nonce,uint64 timestamp) (type id 3) */
export interface CancelAllMessage {
  trader: string;
  strategy: string;
  market: string;
  nonce: string;
  timestamp: string;
}
export interface CancelAllInput {
  trader: AddressInput;
  strategy: Bytes32Input;
  market: Bytes32Input;
  nonce: UintInput;
  timestamp: UintInput;
}

/** ModifyOrder(address trader,bytes32 strategy,bytes32 market,bytes32 orderHash,uint256 price,uint256 size,uint64 nonce,uint64 timestamp) (type id 4) */
export interface ModifyOrderMessage {
  trader: string;
  strategy: string;
  market: string;
  orderHash: string;
  price: string;
  size: string;
  nonce: string;
  timestamp: string;
}
export interface ModifyOrderInput {
  trader: AddressInput;
  strategy: Bytes32Input;
  market: Bytes32Input;
  orderHash: Bytes32Input;
  price: UintInput;
  size: UintInput;
  nonce: UintInput;
  timestamp: UintInput;
}

/** WithdrawIntent(address trader,bytes32 strategy,address token,uint256 amount,uint64 nonce,uint64 timestamp) (type id 5) */
export interface WithdrawIntentMessage {
  trader: string;
  strategy: string;
  token: string;
  amount: string;
  nonce: string;
  timestamp: string;
}
export interface WithdrawIntentInput {
  trader: AddressInput;
  strategy: Bytes32Input;
  token: AddressInput;
  amount: UintInput;
  nonce: UintInput;
  timestamp: UintInput;
}

/** CreateStrategy(address trader,bytes32 strategy,uint64 nonce,uint64 timestamp) (type id 6) */
export interface CreateStrategyMessage {
  trader: string;
  strategy: string;
  nonce: string;
  timestamp: string;
}
export interface CreateStrategyInput {
  trader: AddressInput;
  strategy: Bytes32Input;
  nonce: UintInput;
  timestamp: UintInput;
}

/** Batch(address trader,bytes32 strategy,Action[] actions,uint64 nonce,uint64 timestamp,bool atomic)Action(uint8 kind,bytes32 market,uint8 side,uint8 orderType,uint256 price,uint256 size,bool reduceOnly,bytes32 orderHash,bytes32 clientOrderId,uint64 expiry) (type id 7) */
export interface BatchMessage {
  trader: string;
  strategy: string;
  actions: ActionMessage[];
  nonce: string;
  timestamp: string;
  atomic: boolean;
}
export interface BatchInput {
  trader: AddressInput;
  strategy: Bytes32Input;
  actions: ActionInput[];
  nonce: UintInput;
  timestamp: UintInput;
  atomic: boolean;
}

/** ApproveAgent(address trader,bytes32 strategy,address agent,uint8 scope,uint64 expiry,uint64 nonce,uint64 timestamp) (type id 8) */
export interface ApproveAgentMessage {
  trader: string;
  strategy: string;
  agent: string;
  scope: string;
  expiry: string;
  nonce: string;
  timestamp: string;
}
export interface ApproveAgentInput {
  trader: AddressInput;
  strategy: Bytes32Input;
  agent: AddressInput;
  scope: UintInput;
  expiry: UintInput;
  nonce: UintInput;
  timestamp: UintInput;
}

/** RevokeAgent(address trader,bytes32 strategy,address agent,uint64 nonce,uint64 timestamp) (type id 9) */
export interface RevokeAgentMessage {
  trader: string;
  strategy: string;
  agent: string;
  nonce: string;
  timestamp: string;
}
export interface RevokeAgentInput {
  trader: AddressInput;
  strategy: Bytes32Input;
  agent: AddressInput;
  nonce: UintInput;
  timestamp: UintInput;
}

/** ScheduleCancel(address trader,bytes32 strategy,bytes32 market,uint64 time,uint64 nonce,uint64 timestamp) (type id 10) */
export interface ScheduleCancelMessage {
  trader: string;
  strategy: string;
  market: string;
  time: string;
  nonce: string;
  timestamp: string;
}
export interface ScheduleCancelInput {
  trader: AddressInput;
  strategy: Bytes32Input;
  market: Bytes32Input;
  time: UintInput;
  nonce: UintInput;
  timestamp: UintInput;
}

/** Transfer(address trader,bytes32 strategy,bytes32 toStrategy,address token,uint256 amount,uint64 nonce,uint64 timestamp) (type id 11) */
export interface TransferMessage {
  trader: string;
  strategy: string;
  toStrategy: string;
  token: string;
  amount: string;
  nonce: string;
  timestamp: string;
}
export interface TransferInput {
  trader: AddressInput;
  strategy: Bytes32Input;
  toStrategy: Bytes32Input;
  token: AddressInput;
  amount: UintInput;
  nonce: UintInput;
  timestamp: UintInput;
}

/** PlaceTrigger(address trader,bytes32 strategy,bytes32 market,uint8 side,uint8 direction,uint256 triggerPrice,uint8 orderType,uint256 price,uint256 size,bool reduceOnly,bool attached,bytes32 group,bytes32 clientOrderId,uint64 nonce,uint64 timestamp) (type id 12) */
export interface PlaceTriggerMessage {
  trader: string;
  strategy: string;
  market: string;
  side: string;
  direction: string;
  triggerPrice: string;
  orderType: string;
  price: string;
  size: string;
  reduceOnly: boolean;
  attached: boolean;
  group: string;
  clientOrderId: string;
  nonce: string;
  timestamp: string;
}
export interface PlaceTriggerInput {
  trader: AddressInput;
  strategy: Bytes32Input;
  market: Bytes32Input;
  side: UintInput;
  direction: UintInput;
  triggerPrice: UintInput;
  orderType: UintInput;
  price: UintInput;
  size: UintInput;
  reduceOnly: boolean;
  attached: boolean;
  group: Bytes32Input;
  clientOrderId: Bytes32Input;
  nonce: UintInput;
  timestamp: UintInput;
}

/** PlaceTwap(address trader,bytes32 strategy,bytes32 market,uint8 side,uint256 size,uint64 duration,uint64 interval,uint256 limitPrice,bool reduceOnly,uint64 nonce,uint64 timestamp) (type id 13) */
export interface PlaceTwapMessage {
  trader: string;
  strategy: string;
  market: string;
  side: string;
  size: string;
  duration: string;
  interval: string;
  limitPrice: string;
  reduceOnly: boolean;
  nonce: string;
  timestamp: string;
}
export interface PlaceTwapInput {
  trader: AddressInput;
  strategy: Bytes32Input;
  market: Bytes32Input;
  side: UintInput;
  size: UintInput;
  duration: UintInput;
  interval: UintInput;
  limitPrice: UintInput;
  reduceOnly: boolean;
  nonce: UintInput;
  timestamp: UintInput;
}

export interface ReceiptMessage {
  requestHash: string;
  requestIndex: string;
  epoch: string;
  sender: string;
  nonce: string;
}

/** Every request type's signed message, by type name. */
export interface RequestMessages {
  PlaceOrder: PlaceOrderMessage;
  CancelOrder: CancelOrderMessage;
  CancelAll: CancelAllMessage;
  ModifyOrder: ModifyOrderMessage;
  WithdrawIntent: WithdrawIntentMessage;
  CreateStrategy: CreateStrategyMessage;
  Batch: BatchMessage;
  ApproveAgent: ApproveAgentMessage;
  RevokeAgent: RevokeAgentMessage;
  ScheduleCancel: ScheduleCancelMessage;
  Transfer: TransferMessage;
  PlaceTrigger: PlaceTriggerMessage;
  PlaceTwap: PlaceTwapMessage;
}
/** Every request type's builder fields (all of them; see requests.d.mts for the optional ones). */
export interface RequestInputs {
  PlaceOrder: PlaceOrderInput;
  CancelOrder: CancelOrderInput;
  CancelAll: CancelAllInput;
  ModifyOrder: ModifyOrderInput;
  WithdrawIntent: WithdrawIntentInput;
  CreateStrategy: CreateStrategyInput;
  Batch: BatchInput;
  ApproveAgent: ApproveAgentInput;
  RevokeAgent: RevokeAgentInput;
  ScheduleCancel: ScheduleCancelInput;
  Transfer: TransferInput;
  PlaceTrigger: PlaceTriggerInput;
  PlaceTwap: PlaceTwapInput;
}
export type RequestType = keyof RequestMessages;

export interface FieldSpec {
  readonly name: string;
  readonly type: string;
}
export interface RequestSpec {
  readonly typeId: number;
  readonly typeString: string;
  readonly typeHash: string;
  readonly fields: readonly FieldSpec[];
  readonly referenced: readonly string[];
  readonly agentSignable: boolean;
  readonly forceable: boolean;
}
export interface Enums {
  readonly Side: { readonly BUY: 0; readonly SELL: 1 };
  readonly OrderType: { readonly LIMIT: 0; readonly LIMIT_IOC: 1; readonly POST_ONLY: 2; readonly MARKET: 3; readonly FILL_OR_KILL: 4 };
  readonly ActionKind: { readonly PLACE: 0; readonly CANCEL: 1; readonly MODIFY: 2 };
  readonly AgentScope: { readonly TRADE: 1 };
  readonly Direction: { readonly RISES_TO: 0; readonly FALLS_TO: 1 };
}
/** The document request_types.mjs exports (ddx_offchain.protocol.requests.request_schema()). */
export interface RequestSchema {
  readonly domain: { readonly name: string; readonly version: string };
  readonly replayWindowMs: number;
  readonly notForcedFields: readonly string[];
  readonly maxQuantity: string;
  readonly maxBatchActions: number;
  readonly requests: { readonly [T in RequestType]: RequestSpec };
  readonly structs: { readonly Action: { readonly typeString: string; readonly fields: readonly FieldSpec[] } };
  readonly receipt: { readonly typeString: string; readonly typeHash: string; readonly fields: readonly FieldSpec[] };
  readonly enums: Enums;
}
declare const schema: RequestSchema;
export default schema;
