// Declarations of units.mjs: human units <-> the engine's integers, on decimal strings only.

export declare function toUnits(text: string, decimals: number): bigint;
/** "–" for null or undefined. */
export declare function fromUnits(value: string | bigint | number | null | undefined, decimals: number): string;

/** What marketUnits reads of a market document (GET /v1/markets/{market}). */
export interface MarketScale {
  tick: string | bigint;
  lot: string | bigint;
  sizeDecimals: string | number;
}
export interface MarketUnits {
  /** A price in engine units; throws unless a multiple of the tick. */
  price(text: string): bigint;
  /** A size in engine units; throws unless a multiple of the lot. */
  size(text: string): bigint;
  showPrice(value: string | bigint): string;
  showSize(value: string | bigint): string;
}
export declare function marketUnits(market: MarketScale, tokenDecimals: number): MarketUnits;
