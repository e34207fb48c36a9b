// Declarations of escape.mjs: the escape hatch (docs/contracts.md "Escape hatch"). Amounts are bigint.
import type { Provider, Signer, TransactionReceipt, TransactionResponse } from "ethers";
import type { DdxClient } from "./client.mjs";
import type { BalanceProof, WithdrawalProof } from "./proofs.mjs";

type Amount = bigint | string | number;

/** The escape cannot succeed as asked (not frozen, a proof of another pair or epoch, nothing owed). */
export declare class EscapeError extends Error {
  constructor(message: string);
  name: "EscapeError";
}

/** Why the hatch may open: no checkpoint for the escape delay, or a forced inbox entry past its deadline. */
export type FreezeReason = "no-checkpoint" | "forced-overdue";

/** The balance part of an escape, as custody.vy computes it (never below 0). */
export declare function escapeBalanceOwed(amount: Amount, leafDeposited: Amount, onChainDeposited: Amount, escaped: Amount): bigint;

/** When anyone may freeze, and why (chain/inbox_report.py `freeze_due`). */
export declare function freezeDue(c: {
  lastCheckpointAt: Amount; escapeDelay: Amount; covered: Amount; generationCount: Amount; generationSince: Amount;
  forcedDeadline: Amount;
}): { at: bigint; reason: FreezeReason };

/** The escape hatch's state, read from the exchange through any provider. */
export interface EscapeState {
  frozen: boolean;
  latestEpoch: bigint;
  lastCheckpointAt: bigint;
  escapeDelay: bigint;
  forcedDeadline: bigint;
  covered: bigint;
  generationCount: bigint;
  generationSince: bigint;
  /** The latest block's timestamp: what `freeze()` is checked against. */
  chainTime: bigint;
  sinceCheckpoint: bigint;
  freezeAt: bigint;
  reason: FreezeReason;
  secondsLeft: bigint;
  freezable: boolean;
}
export declare function escapeState(provider: Provider, exchange: string): Promise<EscapeState>;

/** The last recorded checkpoint's BALANCE document (inclusion or absence) and WITHDRAWAL document (null: none). */
export interface EscapeProofs {
  balance: BalanceProof | { epoch: string; root: string; trader: string; token: string; included: false; proof: { siblings: string[] } };
  withdrawal: WithdrawalProof | null;
}
export declare function escapeProofs(client: DdxClient, trader: string, token: string, latestEpoch: bigint | number): Promise<EscapeProofs>;

/** `escape(...)`'s nine arguments, in order. */
export type EscapeArgs = [
  trader: string, token: string, balance: bigint, deposited: bigint, balanceSiblings: string[], cumulative: bigint,
  withdrawalSiblings: string[], absentOtherKey: string, absentOtherValueHash: string,
];
export declare function escapeArgs(proofs: EscapeProofs): EscapeArgs;

/** What an escape with these proofs owes now: the balance part and the unclaimed withdrawable. */
export interface EscapeOwed {
  balance: bigint;
  withdrawal: bigint;
  total: bigint;
}
export declare function escapeOwed(provider: Provider, exchange: string, proofs: EscapeProofs): Promise<EscapeOwed>;

/** Freeze through `signer` when due; EscapeError before sending otherwise. */
export declare function sendFreeze(signer: Signer, exchange: string): Promise<TransactionResponse>;
/** Escape through `signer`; EscapeError before sending when not frozen, a proof is not of the last checkpoint, or nothing is owed. */
export declare function sendEscape(signer: Signer, exchange: string, proofs: EscapeProofs): Promise<{ tx: TransactionResponse; owed: EscapeOwed }>;
/** The Escape event of a mined escape: paid now, owed above the rate limit (unpaid), the checkpoint's epoch. */
export declare function escapePaid(receipt: TransactionReceipt, exchange: string): { paid: bigint; unpaid: bigint; epoch: bigint };
