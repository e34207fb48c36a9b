import { test } from "node:test";
import assert from "node:assert/strict";
import { bookChecksum, crc32, LocalBook } from "../src/book.mjs";
import { toUnits, fromUnits, marketUnits } from "../src/units.mjs";

test("the checksum vector of docs/api.md", () => {
  const bids = [["2000000000", "1500000"], ["1990000000", "250000"], ["1980000000", "3000000"]];
  const asks = [["2010000000", "700000"], ["2020000000", "10000"]];
  assert.equal(bookChecksum(bids, asks), "1979999683");
  assert.equal(bookChecksum([], []), "2343686810");
  assert.equal(crc32("123456789"), 0xcbf43926);
});

test("a local book applies deltas in sequence and refuses gaps and bad checksums", () => {
  const book = new LocalBook();
  assert.ok(book.reset({ market: "0x", seq: "5", bids: [["100", "2"]], asks: [["110", "1"]], checksum: bookChecksum([["100", "2"]], [["110", "1"]]) }));
  const next = { prevSeq: "5", seq: "9", bids: [["101", "3"]], asks: [["110", "0"]], checksum: bookChecksum([["101", "3"], ["100", "2"]], []) };
  assert.ok(book.apply(next));
  assert.deepEqual(book.levels("bids"), [["101", "3"], ["100", "2"]]);
  assert.deepEqual(book.levels("asks"), []);
  assert.equal(book.seq, "9");
  assert.equal(book.apply({ ...next, prevSeq: "8", seq: "12" }), false); // a gap
  assert.equal(book.seq, null);
  book.reset({ market: "0x", seq: "12", bids: [], asks: [], checksum: bookChecksum([], []) });
  assert.equal(book.apply({ prevSeq: "12", seq: "13", bids: [["1", "1"]], asks: [], checksum: "1" }), false); // mismatch
  assert.equal(book.resyncs, 2);
});

test("human units", () => {
  assert.equal(toUnits("2000.01", 6), 2000010000n);
  assert.equal(fromUnits(2000010000n, 6), "2000.01");
  assert.equal(fromUnits("-1500000", 6), "-1.5");
  assert.throws(() => toUnits("1.0000001", 6), /decimals/);
  assert.throws(() => toUnits("1e3", 6), /decimal/);
  const u = marketUnits({ tick: "10000", lot: "1000", sizeDecimals: "6" }, 6);
  assert.equal(u.price("2000.01"), 2000010000n);
  assert.throws(() => u.price("2000.001"), /tick 0.01/);
  assert.throws(() => u.size("0.0001"), /lot 0.001/);
});
