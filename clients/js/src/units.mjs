// Human units <-> the engine's integers (docs/api.md "Human units"): decimal strings only, never floats.

/** "2000.01" with 6 decimals -> 2000010000n; refuses more digits than `decimals` and anything not a decimal. */
export function toUnits(text, decimals) {
  const s = String(text).trim();
  const m = /^(\d+)(?:\.(\d*))?$/.exec(s);
  if (!m) throw new Error(`not a decimal number: ${text}`);
  const frac = m[2] ?? "";
  if (frac.length > decimals) throw new Error(`${text} has more than ${decimals} decimals`);
  return BigInt(m[1]) * 10n ** BigInt(decimals) + BigInt(frac.padEnd(decimals, "0") || "0");
}

/** 2000010000 with 6 decimals -> "2000.01" (trailing zeros dropped). */
export function fromUnits(value, decimals) {
  if (value === null || value === undefined) return "–";
  let n = BigInt(value);
  const neg = n < 0n;
  if (neg) n = -n;
  const base = 10n ** BigInt(decimals);
  const whole = n / base;
  const frac = (n % base).toString().padStart(decimals, "0").replace(/0+$/, "");
  return (neg ? "-" : "") + whole.toString() + (frac ? "." + frac : "");
}

/** A market's converters, from its document (`tick`, `lot`, `sizeDecimals`) and the collateral's decimals. */
export function marketUnits(market, tokenDecimals) {
  const sizeDecimals = Number(market.sizeDecimals);
  const tick = BigInt(market.tick);
  const lot = BigInt(market.lot);
  return {
    price(text) {
      const v = toUnits(text, tokenDecimals);
      if (v % tick !== 0n) throw new Error(`price ${text} is not a multiple of the tick ${fromUnits(tick, tokenDecimals)}`);
      return v;
    },
    size(text) {
      const v = toUnits(text, sizeDecimals);
      if (v % lot !== 0n) throw new Error(`size ${text} is not a multiple of the lot ${fromUnits(lot, sizeDecimals)}`);
      return v;
    },
    showPrice: (v) => fromUnits(v, tokenDecimals),
    showSize: (v) => fromUnits(v, sizeDecimals),
  };
}
