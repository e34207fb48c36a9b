// The escape hatch from JavaScript (docs/contracts.md "Escape hatch"; the Python reference is
// ddx_offchain/client/claims.py `escape`, `escape_balance_owed`, `freeze_due_at` and client/settlement.py
// `escape_proofs`). Once no checkpoint is recorded for `escape_delay` seconds, or a forced inbox entry waited past
// the forced deadline, anyone may call `freeze()`; then a trader calls `escape(...)` with the BALANCE-leaf proof of
// the last recorded checkpoint (or its absence) and, optionally, the WITHDRAWAL-leaf proof. Amounts are BigInt.
import { Contract, ZeroHash, getAddress } from "ethers";
import { EXCHANGE_ABI } from "./abi.mjs";
import { verifyProofDocument } from "./proofs.mjs";

/** The escape cannot succeed as asked (not frozen, a proof of another pair or epoch, nothing owed). */
export class EscapeError extends Error {
  constructor(message) {
    super(message);
    this.name = "EscapeError";
  }
}

const big = (v) => BigInt(v);

/**
 * The balance part of an escape, as custody.vy computes it (claims.py `escape_balance_owed`): the leaf's amount plus
 * the deposits made on-chain that the checkpoint had not credited, minus what was escaped already; the middle term
 * has no floor, so a leaf crediting deposits the chain never received reduces the payout instead of being ignored.
 * @param {bigint|string|number} amount the BALANCE leaf's amount (0 when the pair has no leaf)
 * @param {bigint|string|number} leafDeposited the leaf's `deposited` (0 when absent)
 * @param {bigint|string|number} onChainDeposited `deposited(trader, token)` on the exchange
 * @param {bigint|string|number} escaped `escaped(trader, token)` on the exchange
 * @returns {bigint}
 */
export function escapeBalanceOwed(amount, leafDeposited, onChainDeposited, escaped) {
  const owed = big(amount) + big(onChainDeposited) - big(leafDeposited) - big(escaped);
  return owed > 0n ? owed : 0n;
}

/**
 * When anyone may freeze (chain/inbox_report.py `freeze_due`), and why: `escape_delay` after the last recorded
 * checkpoint, or earlier, `forced_deadline` after the pending inbox generation started when recorded checkpoints do
 * not cover it.
 * @param {{lastCheckpointAt: bigint, escapeDelay: bigint, covered: bigint, generationCount: bigint,
 *   generationSince: bigint, forcedDeadline: bigint}} c the contract's figures (numbers, strings or BigInt)
 * @returns {{at: bigint, reason: "no-checkpoint"|"forced-overdue"}}
 */
export function freezeDue(c) {
  const byDelay = big(c.lastCheckpointAt) + big(c.escapeDelay);
  if (big(c.generationCount) > big(c.covered)) {
    const byInbox = big(c.generationSince) + big(c.forcedDeadline);
    if (byInbox < byDelay) return { at: byInbox, reason: "forced-overdue" };
  }
  return { at: byDelay, reason: "no-checkpoint" };
}

/**
 * The escape hatch's state read from the exchange through any ethers provider: frozen, the last recorded epoch and
 * when it was recorded, the escape delay and forced deadline, the inbox coverage, the chain's time (the latest
 * block's timestamp, which is what `freeze()` is checked against) and, from those, when a freeze is allowed and why.
 * @param {import("ethers").Provider} provider
 * @param {string} exchange the exchange contract's address
 * @returns {Promise<{frozen: boolean, latestEpoch: bigint, lastCheckpointAt: bigint, escapeDelay: bigint,
 *   forcedDeadline: bigint, covered: bigint, generationCount: bigint, generationSince: bigint, chainTime: bigint,
 *   sinceCheckpoint: bigint, freezeAt: bigint, reason: string, secondsLeft: bigint, freezable: boolean}>}
 */
export async function escapeState(provider, exchange) {
  const c = new Contract(exchange, EXCHANGE_ABI, provider);
  const [frozen, latestEpoch, lastCheckpointAt, escapeDelay, forcedDeadline, coverage, block] = await Promise.all([
    c.frozen(), c.latest_epoch(), c.last_checkpoint_at(), c.escape_delay(), c.forced_deadline(), c.inbox_coverage(),
    provider.getBlock("latest"),
  ]);
  const [covered, generationCount, generationSince] = coverage.map(big);
  const chainTime = big(block.timestamp);
  const due = freezeDue({ lastCheckpointAt, escapeDelay, covered, generationCount, generationSince, forcedDeadline });
  const left = due.at - chainTime;
  return {
    frozen, latestEpoch: big(latestEpoch), lastCheckpointAt: big(lastCheckpointAt), escapeDelay: big(escapeDelay),
    forcedDeadline: big(forcedDeadline), covered, generationCount, generationSince, chainTime,
    sinceCheckpoint: chainTime - big(lastCheckpointAt), freezeAt: due.at, reason: due.reason,
    secondsLeft: left > 0n ? left : 0n, freezable: !frozen && left <= 0n,
  };
}

/**
 * The BALANCE document (inclusion or absence) and the WITHDRAWAL document (or null when the pair has none) of the
 * exchange's last recorded checkpoint, from the operators (client.mjs `balanceProof`, `withdrawalProof`) — what
 * settlement.py `escape_proofs` fetches, each checked (proofs.mjs verifyProofDocument). Before any checkpoint (`latestEpoch` 0) every pair is absent from the
 * empty tree and no proof is needed.
 * @param {import("./client.mjs").DdxClient} client
 * @param {string} trader
 * @param {string} token
 * @param {bigint|number} latestEpoch the exchange's `latest_epoch()`
 * @returns {Promise<{balance: object, withdrawal: object|null}>}
 */
export async function escapeProofs(client, trader, token, latestEpoch) {
  trader = getAddress(trader);
  token = getAddress(token);
  if (big(latestEpoch) === 0n) {
    return { balance: { epoch: "0", root: ZeroHash, trader, token, included: false, proof: { siblings: [] } }, withdrawal: null };
  }
  const [balance, withdrawal] = await Promise.all([
    client.balanceProof(trader, token, latestEpoch), client.withdrawalProof(trader, token, latestEpoch)]);
  for (const [kind, doc] of [["balance", balance], ["withdrawal", withdrawal]]) {
    if (big(doc.epoch) !== big(latestEpoch)) throw new EscapeError(`the operators proved epoch ${doc.epoch}, not the last recorded ${latestEpoch}`);
    verifyProofDocument(kind, doc, trader, token); // ProofInvalid: another pair, or not leading to its root
  }
  return { balance, withdrawal: withdrawal.included === false ? null : withdrawal };
}

/**
 * The arguments of `escape(trader, token, balance, deposited, balance_siblings, cumulative, withdrawal_siblings,
 * absent_other_key, absent_other_value_hash)` from escapeProofs' documents, as claims.py `escape` passes them: an
 * absent balance is (0, 0) with its non-inclusion siblings and, when its path ends in another item's leaf, that
 * leaf's key and value hash; no withdrawal leaf is cumulative 0 without siblings.
 * @param {{balance: object, withdrawal: object|null}} proofs
 * @returns {Array} the nine arguments, in order
 */
export function escapeArgs({ balance, withdrawal }) {
  const absent = balance.included === false;
  return [
    getAddress(balance.trader), getAddress(balance.token),
    absent ? 0n : big(balance.amount), absent ? 0n : big(balance.deposited), balance.proof.siblings,
    withdrawal ? big(withdrawal.cumulative) : 0n, withdrawal ? withdrawal.proof.siblings : [],
    absent ? (balance.proof.other_key ?? ZeroHash) : ZeroHash, absent ? (balance.proof.other_value_hash ?? ZeroHash) : ZeroHash,
  ];
}

/**
 * What `escape` will owe for these proofs now (claims.py `escape`): the balance part (escapeBalanceOwed against the
 * chain's `deposited` and `escaped`) and the unclaimed withdrawable (the leaf's cumulative minus `claimed`). The
 * contract pays the withdrawable part first and, under its rate limit, may pay less now (the rest stays owed).
 * @param {import("ethers").Provider} provider
 * @param {string} exchange
 * @param {{balance: object, withdrawal: object|null}} proofs
 * @returns {Promise<{balance: bigint, withdrawal: bigint, total: bigint}>}
 */
export async function escapeOwed(provider, exchange, proofs) {
  const c = new Contract(exchange, EXCHANGE_ABI, provider);
  const [trader, token, amount, deposited, , cumulative] = escapeArgs(proofs);
  const [onChain, escaped, claimed] = await Promise.all([c.deposited(trader, token), c.escaped(trader, token), c.claimed(trader, token)]);
  const balance = escapeBalanceOwed(amount, deposited, onChain, escaped);
  const withdrawal = cumulative > big(claimed) ? cumulative - big(claimed) : 0n;
  return { balance, withdrawal, total: balance + withdrawal };
}

/**
 * Freeze the exchange through `signer` (any ethers Signer, e.g. BrowserProvider.getSigner() over a wallet) when the
 * hatch may open; refuses before sending when it is not due yet or already frozen.
 * @param {import("ethers").Signer} signer
 * @param {string} exchange
 * @returns {Promise<import("ethers").TransactionResponse>}
 */
export async function sendFreeze(signer, exchange) {
  const state = await escapeState(signer.provider, exchange);
  if (state.frozen) throw new EscapeError("the exchange is frozen already: escape");
  if (!state.freezable) throw new EscapeError(`the hatch opens at ${state.freezeAt} (chain time ${state.chainTime}): ${state.secondsLeft} s to go`);
  return new Contract(exchange, EXCHANGE_ABI, signer).freeze();
}

/**
 * Send `escape(...)` for `proofs` through `signer`; refuses before sending when the exchange is not frozen, the
 * proofs are not of its last recorded epoch and root, or nothing is owed. Returns the transaction and what it is expected
 * to owe (escapeOwed); the Escape event of its receipt says what was paid (escapePaid).
 * @param {import("ethers").Signer} signer
 * @param {string} exchange
 * @param {{balance: object, withdrawal: object|null}} proofs
 * @returns {Promise<{tx: import("ethers").TransactionResponse, owed: {balance: bigint, withdrawal: bigint, total: bigint}}>}
 */
export async function sendEscape(signer, exchange, proofs) {
  const c = new Contract(exchange, EXCHANGE_ABI, signer);
  const [frozen, latest] = await Promise.all([c.frozen(), c.latest_epoch()]);
  if (!frozen) throw new EscapeError("the exchange is not frozen: escape opens after the escape delay without a checkpoint");
  const recorded = latest === 0n ? ZeroHash : await c.checkpoint_root(latest);
  for (const doc of [proofs.balance, proofs.withdrawal]) {
    if (doc && big(doc.epoch) !== big(latest)) throw new EscapeError(`escape proves against the last checkpoint (epoch ${latest}), not epoch ${doc.epoch}`);
    if (doc && doc.root.toLowerCase() !== recorded.toLowerCase()) throw new EscapeError(`the proof's root ${doc.root} is not the root recorded for epoch ${latest}`);
  }
  const owed = await escapeOwed(signer.provider, exchange, proofs);
  if (owed.total === 0n) throw new EscapeError("nothing to escape: the balance and withdrawable were paid already");
  return { tx: await c.escape(...escapeArgs(proofs)), owed };
}

/**
 * The Escape event of a mined escape transaction: {paid, unpaid, epoch} (unpaid: owed above the rate limit, still
 * owed to a later escape).
 * @param {import("ethers").TransactionReceipt} receipt
 * @param {string} exchange
 * @returns {{paid: bigint, unpaid: bigint, epoch: bigint}}
 */
export function escapePaid(receipt, exchange) {
  const c = new Contract(exchange, EXCHANGE_ABI);
  for (const log of receipt.logs) {
    if (getAddress(log.address) !== getAddress(exchange)) continue;
    const parsed = c.interface.parseLog(log);
    if (parsed?.name === "Escape") return { paid: parsed.args.paid, unpaid: parsed.args.unpaid, epoch: parsed.args.epoch };
  }
  throw new EscapeError("no Escape event in this receipt");
}
