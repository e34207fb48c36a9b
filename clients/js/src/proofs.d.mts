// Declarations of proofs.mjs: WITHDRAWAL and BALANCE proof documents checked as protocol/proof.py and items.py do.

/** A proof document that does not lead to its root, or is not of the pair it should be. */
export declare class ProofInvalid extends Error {
  constructor(message: string);
  name: "ProofInvalid";
}

/** The item kinds the contracts read (docs/protocol.md "Items"). */
export declare const ITEM_KIND: Readonly<{ WITHDRAWAL: 0x07; BALANCE: 0x08 }>;

/** An inclusion proof (docs/protocol.md §4). */
export interface InclusionProofJson {
  key: string;
  value_hash: string;
  siblings: string[];
}
/** A non-inclusion proof: the path ends in an empty subtree, or in another item's leaf (`other_key`, `other_value_hash`). */
export interface NonInclusionProofJson {
  key: string;
  siblings: string[];
  other_key?: string;
  other_value_hash?: string;
}

/** `GET /v1/proofs/withdrawal/{trader}/{token}[?epoch=]`: the cumulative withdrawable and its proof. */
export interface WithdrawalProof {
  epoch: string;
  root: string;
  trader: string;
  token: string;
  included: boolean;
  /** "0" when not included. */
  cumulative: string;
  proof: InclusionProofJson | NonInclusionProofJson;
}

/** `GET /v1/proofs/balance/{trader}/{token}[?epoch=]`: the BALANCE leaf (amount and credited deposits) or its absence. */
export interface BalanceProof {
  epoch: string;
  root: string;
  trader: string;
  token: string;
  included: boolean;
  amount: string;
  deposited: string;
  proof: InclusionProofJson | NonInclusionProofJson;
}

/** The tree key of the WITHDRAWAL item of (trader, token): 0x-hex, 32 bytes. */
export declare function withdrawalKey(trader: string, token: string): string;
/** The tree key of the BALANCE item of (trader, token): 0x-hex, 32 bytes. */
export declare function balanceKey(trader: string, token: string): string;
/** keccak256 of the WITHDRAWAL value abi.encode(uint8 7, trader, token, cumulative). */
export declare function withdrawalValueHash(trader: string, token: string, cumulative: bigint | string | number): string;
/** keccak256 of the BALANCE value abi.encode(uint8 8, trader, token, amount, deposited). */
export declare function balanceValueHash(
  trader: string, token: string, amount: bigint | string | number, deposited: bigint | string | number,
): string;
/** keccak256(0x00 ‖ key ‖ valueHash): a leaf. */
export declare function leafHash(key: string, valueHash: string): string;
/** Hash `start` up `key`'s path with `siblings` (bottom-up) to the root. */
export declare function foldToRoot(key: string, start: string, siblings: readonly string[]): string;
/** Check a proof document of `trader`/`token` against its own root; returns it, or throws ProofInvalid. */
export declare function verifyProofDocument(kind: "withdrawal", doc: unknown, trader: string, token: string): WithdrawalProof;
export declare function verifyProofDocument(kind: "balance", doc: unknown, trader: string, token: string): BalanceProof;
