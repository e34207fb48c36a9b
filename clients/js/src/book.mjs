// An L2 book kept from the book feed's snapshot and deltas (docs/api.md "L2 book", "Book checksum").

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE 802.3, as zlib.crc32) of an ASCII string, unsigned. */
export function crc32(text) {
  let c = 0xffffffff;
  for (let i = 0; i < text.length; i++) c = CRC_TABLE[(c ^ text.charCodeAt(i)) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The book checksum: the top 25 levels per side, "price:size" joined by ",", bids "|" asks. */
export function bookChecksum(bids, asks) {
  const side = (levels) => levels.slice(0, 25).map(([p, s]) => `${p}:${s}`).join(",");
  return String(crc32(`${side(bids)}|${side(asks)}`));
}

export class LocalBook {
  constructor() {
    this.seq = null; // null: no verified book (waiting for a snapshot)
    this.bids = new Map();
    this.asks = new Map();
    this.resyncs = 0;
    this.checked = 0;
  }

  reset(snapshot) {
    this.bids = new Map(snapshot.bids.map(([p, s]) => [p, s]));
    this.asks = new Map(snapshot.asks.map(([p, s]) => [p, s]));
    this.market = snapshot.market;
    const ok = bookChecksum(this.levels("bids"), this.levels("asks")) === snapshot.checksum;
    this.seq = ok ? snapshot.seq : null;
    return ok;
  }

  levels(side) {
    const map = side === "bids" ? this.bids : this.asks;
    const sorted = [...map.entries()].sort((a, b) => {
      const d = BigInt(a[0]) - BigInt(b[0]);
      return d === 0n ? 0 : (d < 0n) === (side === "bids") ? 1 : -1;
    });
    return sorted;
  }

  /** Apply a delta; false (and the book marked unverified) on a gap or a checksum mismatch. */
  apply(delta) {
    if (this.seq === null || delta.prevSeq !== this.seq) {
      this.seq = null;
      this.resyncs++;
      return false;
    }
    for (const [p, s] of delta.bids) s === "0" ? this.bids.delete(p) : this.bids.set(p, s);
    for (const [p, s] of delta.asks) s === "0" ? this.asks.delete(p) : this.asks.set(p, s);
    if (bookChecksum(this.levels("bids"), this.levels("asks")) !== delta.checksum) {
      this.seq = null;
      this.resyncs++;
      return false;
    }
    this.checked++;
    this.seq = delta.seq;
    return true;
  }
}
