// Declarations of book.mjs: the L2 book kept from the book feed (docs/api.md "L2 book", "Book checksum").

/** A level: [price, size] as decimal strings. */
export type Level = [price: string, size: string];

/** The book feed's snapshot (`{"type": "book"}`). */
export interface BookSnapshot {
  type: "book";
  market: string;
  seq: string;
  bids: Level[];
  asks: Level[];
  checksum: string;
}
/** A delta (`{"type": "bookDelta"}`): levels whose size changed, "0" for removed. */
export interface BookDelta {
  type: "bookDelta";
  market: string;
  seq: string;
  prevSeq: string;
  bids: Level[];
  asks: Level[];
  checksum: string;
}

export declare function crc32(text: string): number;
export declare function bookChecksum(bids: Level[], asks: Level[]): string;

export declare class LocalBook {
  /** null: no verified book (waiting for a snapshot). */
  seq: string | null;
  market?: string;
  bids: Map<string, string>;
  asks: Map<string, string>;
  resyncs: number;
  checked: number;
  constructor();
  reset(snapshot: BookSnapshot): boolean;
  /** Best first. */
  levels(side: "bids" | "asks"): Level[];
  apply(delta: BookDelta): boolean;
}
