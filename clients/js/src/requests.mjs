// Typed-data builders for every trader request (docs/protocol.md §7), generated from the same field lists as the
// Python (request_types.mjs is emitted by ddx_offchain.protocol.requests.request_schema()).
//
//   const req = placeOrder({ trader, market: "ETHP", side: 0, price: "2000000000", size: "1000000" });
//   const doc = typedData(req, domain);          // the exact eth_signTypedData_v4 document
//   const signed = await signRequest(signer, req, domain);   // {type, message, signature, domain, requestHash}
import { AbiCoder, TypedDataEncoder, Signature, getAddress, isHexString, toUtf8Bytes, hexlify, zeroPadBytes, keccak256,
  concat, toBeHex, verifyTypedData } from "ethers";
import schema from "./request_types.mjs";

export { schema };
export const { Side, OrderType, ActionKind, AgentScope, Direction } = schema.enums;
export const REQUEST_TYPES = Object.keys(schema.requests);
const ZERO32 = "0x" + "00".repeat(32);
const MAX_QUANTITY = BigInt(schema.maxQuantity);

export class RequestError extends Error {
  constructor(message) {
    super(message);
    this.name = "RequestError";
  }
}

/** The EIP-712 domain (docs/protocol.md §5) of a deployment: chain id and exchange contract. */
export function domainOf(chainId, exchange) {
  return { name: schema.domain.name, version: schema.domain.version, chainId: Number(chainId), verifyingContract: getAddress(exchange) };
}

/** A readable bytes32 id ("main", "ETHP": UTF-8 right-padded with zeros) or a 0x + 64-hex id, as 0x-hex. */
export function id32(value) {
  if (value === undefined || value === null || value === 0 || value === "0") return ZERO32;
  if (typeof value === "string" && value.startsWith("0x")) {
    if (!isHexString(value, 32)) throw new RequestError(`not a bytes32: ${value}`);
    return value.toLowerCase();
  }
  if (typeof value !== "string") throw new RequestError(`a bytes32 id is a name or 0x-hex, not ${typeof value}`);
  const raw = toUtf8Bytes(value);
  if (raw.length < 1 || raw.length > 32) throw new RequestError("a readable id is 1..32 bytes of UTF-8");
  return hexlify(zeroPadBytes(raw, 32)).toLowerCase();
}

/** The readable name of a bytes32 id, or null when it is not one (the API's `symbol`). */
export function nameOf(id) {
  const hex = id.slice(2).replace(/(00)+$/, "");
  if (!hex) return null;
  const bytes = hex.match(/../g).map((b) => parseInt(b, 16));
  if (bytes.some((b) => b < 0x20 || b > 0x7e)) return null;
  return String.fromCharCode(...bytes);
}

function uint(name, abi, value) {
  let n;
  try {
    n = typeof value === "bigint" ? value : BigInt(typeof value === "number" ? (Number.isSafeInteger(value) ? value : NaN) : value);
  } catch {
    throw new RequestError(`${name} must be an integer (decimal string, bigint or safe integer), got ${value}`);
  }
  const bits = Number(abi.slice(4));
  if (n < 0n || n >= 1n << BigInt(bits)) throw new RequestError(`${name} is outside ${abi}`);
  return n.toString();
}

function encodeField(name, abi, value) {
  switch (abi) {
    case "address":
      try {
        return getAddress(value);
      } catch {
        throw new RequestError(`${name} is not an address (mixed case must be a valid EIP-55 checksum): ${value}`);
      }
    case "bytes32":
      return id32(value);
    case "bool":
      if (typeof value !== "boolean") throw new RequestError(`${name} must be true or false`);
      return value;
    case "Action[]":
      if (!Array.isArray(value) || value.length < 1 || value.length > schema.maxBatchActions)
        throw new RequestError(`${name}: a batch carries 1..${schema.maxBatchActions} actions`);
      return value.map((a, i) => encodeStruct("Action", schema.structs.Action.fields, a, `${name}[${i}]`));
    default:
      if (abi.startsWith("uint")) return uint(name, abi, value);
      throw new RequestError(`unknown ABI type ${abi}`);
  }
}

// Fields a builder may leave out: what the Python SDK defaults too (zero ids and times, limit GTC, not reduce-only).
const DEFAULTS = {
  strategy: "main", orderType: 0, reduceOnly: false, clientOrderId: ZERO32, expiry: 0, attached: false, group: ZERO32,
  limitPrice: 0, orderHash: ZERO32, side: 0, price: 0, size: 0, kind: 0, atomic: false,
};

function encodeStruct(type, fields, values, where = type) {
  const known = new Set(fields.map((f) => f.name));
  for (const key of Object.keys(values)) {
    if (!known.has(key)) throw new RequestError(`${where}: ${type} has no field ${key}`);
  }
  const message = {};
  for (const { name, type: abi } of fields) {
    let value = values[name];
    if (value === undefined) {
      if (!(name in DEFAULTS)) throw new RequestError(`${where}: ${name} is required`);
      value = DEFAULTS[name];
    }
    message[name] = encodeField(`${where}.${name}`, abi, value);
  }
  return message;
}

let lastNonce = 0n;
/** A fresh nonce: microseconds since the Unix epoch, strictly increasing in this process. */
export function freshNonce() {
  let n = BigInt(Date.now()) * 1000n;
  if (n <= lastNonce) n = lastNonce + 1n;
  lastNonce = n;
  return n.toString();
}

/** Build any request by type name: `{type, message}` with every field encoded as §7.2 writes it. */
export function buildRequest(type, fields) {
  const spec = schema.requests[type];
  if (!spec) throw new RequestError(`unknown request type ${type}`);
  const values = { nonce: freshNonce(), timestamp: Date.now(), ...fields };
  const message = encodeStruct(type, spec.fields, values);
  for (const q of ["price", "size", "amount", "triggerPrice", "limitPrice"]) {
    if (q in message && BigInt(message[q]) > MAX_QUANTITY) throw new RequestError(`${q} exceeds 2^128 - 1`);
  }
  return { type, message };
}

const lcFirst = (s) => s[0].toLowerCase() + s.slice(1);
/** One builder per request type, named in camelCase (placeOrder, cancelAll, withdrawIntent, placeTwap, ...). */
export const builders = Object.fromEntries(REQUEST_TYPES.map((t) => [lcFirst(t), (fields) => buildRequest(t, fields)]));
export const {
  placeOrder, cancelOrder, cancelAll, modifyOrder, withdrawIntent, createStrategy, batch, approveAgent, revokeAgent,
  scheduleCancel, transfer, placeTrigger, placeTwap,
} = builders;

/** Batch actions (kind 0 place, 1 cancel, 2 modify): unused fields are zero, as the protocol requires. */
export const placeAction = (f) => ({ kind: ActionKind.PLACE, ...f });
export const cancelAction = (market, orderHash) => ({ kind: ActionKind.CANCEL, market, orderHash });
export const modifyAction = (market, orderHash, price, size) => ({ kind: ActionKind.MODIFY, market, orderHash, price, size });

/**
 * A forced request (docs/protocol.md §6.5): what `Exchange.force_request(typeId, fields)` takes for this request —
 * its ABI words less trader, nonce and timestamp (the L1 sender is the trader; the forced seq replaces the rest).
 */
export function forcedFields(request) {
  const spec = schema.requests[request.type];
  if (!spec.forceable) throw new RequestError(`a ${request.type} cannot be forced`);
  const fields = spec.fields.filter((f) => !schema.notForcedFields.includes(f.name));
  return { typeId: spec.typeId, fields: AbiCoder.defaultAbiCoder().encode(fields.map((f) => f.type), fields.map((f) => request.message[f.name])) };
}

/** The ethers `types` of a request (without EIP712Domain). */
export function typesOf(type) {
  const spec = schema.requests[type];
  const types = { [type]: spec.fields };
  for (const ref of spec.referenced) types[ref] = schema.structs[ref].fields;
  return types;
}

const DOMAIN_FIELDS = [
  { name: "name", type: "string" },
  { name: "version", type: "string" },
  { name: "chainId", type: "uint256" },
  { name: "verifyingContract", type: "address" },
];

/** The full eth_signTypedData_v4 document (what Python's `typed_data()` returns). */
export function typedData(request, domain) {
  return { types: { EIP712Domain: DOMAIN_FIELDS, ...typesOf(request.type) }, primaryType: request.type, domain, message: request.message };
}

/** The request hash: the EIP-712 signing digest, the request's name everywhere (receipts, order ids). */
export function requestHash(request, domain) {
  return TypedDataEncoder.hash(domain, typesOf(request.type), request.message);
}

/** Batch action i's id: keccak256(requestHash ‖ uint256 i). */
export function batchActionId(hash, index) {
  return keccak256(concat([hash, toBeHex(index, 32)]));
}

/**
 * Sign with an ethers Signer (Wallet, JsonRpcSigner: `signTypedData`) or an EIP-1193 signer (`eip1193Signer`).
 * Returns the wire form (§7.2) plus `requestHash`.
 */
export async function signRequest(signer, request, domain) {
  const raw = signer.signTypedDataV4
    ? await signer.signTypedDataV4(typedData(request, domain))
    : await signer.signTypedData(domain, typesOf(request.type), request.message);
  const signature = Signature.from(raw).serialized; // r ‖ s ‖ v with v 27/28, low s (ethers refuses high s)
  return {
    type: request.type,
    message: request.message,
    signature,
    domain: { chainId: String(domain.chainId), verifyingContract: domain.verifyingContract },
    requestHash: requestHash(request, domain),
  };
}

/** Who signed a request (the trader, or an agent of the trader's). */
export function requestSigner(signed, domain) {
  return verifyTypedData(domain, typesOf(signed.type), signed.message, signed.signature);
}

/** The wire body for POST /v1/requests (drops the local `requestHash`). */
export function wireForm(signed) {
  const { requestHash: _, ...wire } = signed;
  return wire;
}

/**
 * An EIP-1193 provider (window.ethereum, as MetaMask injects it) as a request signer: `eth_signTypedData_v4` with
 * the JSON document, exactly what a wallet shows its user.
 */
export function eip1193Signer(provider, address) {
  return {
    address: getAddress(address),
    signTypedDataV4: (doc) => provider.request({ method: "eth_signTypedData_v4", params: [address, JSON.stringify(doc)] }),
  };
}

const RECEIPT_TYPES = { Receipt: schema.receipt.fields };

/** The operator that signed a receipt (docs/protocol.md §7.5). */
export function receiptSigner(receipt, domain) {
  const message = {};
  for (const { name } of schema.receipt.fields) message[name] = receipt[name];
  return verifyTypedData(domain, RECEIPT_TYPES, message, receipt.signature);
}
