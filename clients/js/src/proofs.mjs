// Proofs against a state root, checked in JavaScript as ddx_offchain/protocol/proof.py and items.py check them
// (docs/protocol.md "Items" and "Proofs"), for the two items the contracts read: WITHDRAWAL and BALANCE leaves of a
// (trader, token) pair. The client checks a proof document before it builds a transaction on it, so a wrong or
// tampered document is refused here instead of reverting on-chain (the contract checks it again).
import { AbiCoder, ZeroHash, concat, getAddress, isHexString, keccak256, toBeHex } from "ethers";

/** A proof document that does not lead to its root, or is not of the pair it should be. */
export class ProofInvalid extends Error {
  constructor(message) {
    super(message);
    this.name = "ProofInvalid";
  }
}

export const ITEM_KIND = Object.freeze({ WITHDRAWAL: 0x07, BALANCE: 0x08 });
const MAX_DEPTH = 256;
const LOW_248 = (1n << 248n) - 1n;
const abi = AbiCoder.defaultAbiCoder();

function itemKey(kind, types, values) {
  const digest = BigInt(keccak256(abi.encode(["uint8", ...types], [kind, ...values])));
  return toBeHex((digest & LOW_248) | (BigInt(kind) << 248n), 32);
}

/**
 * The tree key of the WITHDRAWAL item of (trader, token).
 * @param {string} trader
 * @param {string} token
 * @returns {string} 0x-hex, 32 bytes
 */
export const withdrawalKey = (trader, token) => itemKey(ITEM_KIND.WITHDRAWAL, ["address", "address"], [trader, token]);

/**
 * The tree key of the BALANCE item of (trader, token).
 * @param {string} trader
 * @param {string} token
 * @returns {string} 0x-hex, 32 bytes
 */
export const balanceKey = (trader, token) => itemKey(ITEM_KIND.BALANCE, ["address", "address"], [trader, token]);

/**
 * keccak256 of the WITHDRAWAL value abi.encode(uint8 7, trader, token, cumulative).
 * @returns {string}
 */
export const withdrawalValueHash = (trader, token, cumulative) =>
  keccak256(abi.encode(["uint8", "address", "address", "uint256"], [ITEM_KIND.WITHDRAWAL, trader, token, BigInt(cumulative)]));

/**
 * keccak256 of the BALANCE value abi.encode(uint8 8, trader, token, amount, deposited).
 * @returns {string}
 */
export const balanceValueHash = (trader, token, amount, deposited) =>
  keccak256(abi.encode(["uint8", "address", "address", "uint256", "uint256"], [ITEM_KIND.BALANCE, trader, token, BigInt(amount), BigInt(deposited)]));

/**
 * keccak256(0x00 || key || valueHash): a leaf.
 * @param {string} key
 * @param {string} valueHash
 * @returns {string}
 */
export const leafHash = (key, valueHash) => keccak256(concat(["0x00", key, valueHash]));

/**
 * Hash `start` (the subtree at depth siblings.length on key's path) up to the root; siblings bottom-up, the
 * direction at each level the key's bit there (1: the right child).
 * @param {string} key
 * @param {string} start
 * @param {string[]} siblings
 * @returns {string} the root
 */
export function foldToRoot(key, start, siblings) {
  let h = start;
  let path = BigInt(key) >> BigInt(MAX_DEPTH - siblings.length);
  for (const sibling of siblings) {
    h = path & 1n ? keccak256(concat(["0x01", sibling, h])) : keccak256(concat(["0x01", h, sibling]));
    path >>= 1n;
  }
  return h;
}

const is32 = (v) => isHexString(v, 32);

function commonPrefixBits(a, b) {
  const x = BigInt(a) ^ BigInt(b);
  return MAX_DEPTH - (x === 0n ? 0 : x.toString(2).length);
}

/**
 * Check an API proof document (`GET /v1/proofs/withdrawal|balance/{trader}/{token}`: {epoch, root, trader, token,
 * included, cumulative | amount and deposited, proof: {key, value_hash | siblings[, other_key, other_value_hash]}})
 * as claims.py `LeafProof.from_api` / `AbsentBalance.from_api` do: it is the pair's item and leads to `root` —
 * from the leaf when included, from the empty subtree or the other item's leaf on the path when absent.
 * @param {"withdrawal"|"balance"} kind
 * @param {object} doc
 * @param {string} trader
 * @param {string} token
 * @returns {object} the document, checked
 */
export function verifyProofDocument(kind, doc, trader, token) {
  if (!doc || typeof doc !== "object" || !doc.proof || !Array.isArray(doc.proof.siblings)) throw new ProofInvalid("malformed proof document");
  trader = getAddress(trader);
  token = getAddress(token);
  if (getAddress(doc.trader) !== trader || getAddress(doc.token) !== token) throw new ProofInvalid(`a proof of another pair than ${trader}/${token}`);
  const { siblings } = doc.proof;
  if (siblings.length > MAX_DEPTH || !siblings.every(is32) || !is32(doc.root)) throw new ProofInvalid("malformed proof: siblings and root are 32-byte hex");
  const key = kind === "withdrawal" ? withdrawalKey(trader, token) : balanceKey(trader, token);
  if (doc.proof.key !== undefined && doc.proof.key.toLowerCase() !== key) throw new ProofInvalid(`the proof is for another item than the ${kind} leaf of ${trader}/${token}`);
  let start;
  if (doc.included === false) {
    const { other_key: otherKey, other_value_hash: otherValueHash } = doc.proof;
    if ((otherKey === undefined) !== (otherValueHash === undefined)) throw new ProofInvalid("other_key and other_value_hash go together");
    if (otherKey === undefined) start = ZeroHash;
    else {
      if (!is32(otherKey) || !is32(otherValueHash)) throw new ProofInvalid("malformed absence proof");
      if (otherKey.toLowerCase() === key) throw new ProofInvalid("the leaf on the path is the key itself: that proves presence");
      if (commonPrefixBits(key, otherKey) < siblings.length) throw new ProofInvalid("the leaf on the path does not share the path with the key");
      start = leafHash(otherKey, otherValueHash);
    }
  } else {
    const valueHash = kind === "withdrawal"
      ? withdrawalValueHash(trader, token, doc.cumulative)
      : balanceValueHash(trader, token, doc.amount, doc.deposited);
    start = leafHash(key, valueHash);
  }
  if (foldToRoot(key, start, siblings) !== doc.root.toLowerCase()) {
    throw new ProofInvalid(`the ${kind} proof of ${trader}/${token} does not lead to root ${doc.root}`);
  }
  return doc;
}
