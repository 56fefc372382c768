// What PostgreSQL's planner knows about the keys of agent_words (search words and capability keys): the most
// common keys with their frequencies (pg_stats, kept by autovacuum's ANALYZE; migration 0004 keeps the 1,000 most
// common). A search sizes each of its key ranges before it chooses a driver; a range these statistics already put
// far beyond the exact bound is broad without being counted (see postgres-store.ts).

/** Compares two strings by code point, as PostgreSQL's "C" collation orders UTF-8 text. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // UTF-16 orders a surrogate (an astral code point) below U+E000-U+FFFF; code points order it above.
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

export class KeyStatistics {
  static readonly EMPTY = new KeyStatistics([], []);

  /** `keys` and `counts` side by side, keys in code point order. */
  private constructor(
    private readonly keys: readonly string[],
    private readonly counts: readonly number[],
  ) {}

  /**
   * From pg_stats' most_common_vals and most_common_freqs of agent_words.word and the table's row estimate
   * (pg_class.reltuples; -1 or 0 before the first ANALYZE). Malformed input gives no statistics.
   */
  static of(keys: unknown, freqs: unknown, rows: unknown): KeyStatistics {
    const total = Number(rows);
    if (!Array.isArray(keys) || !Array.isArray(freqs) || keys.length !== freqs.length)
      return KeyStatistics.EMPTY;
    if (!Number.isFinite(total) || total <= 0) return KeyStatistics.EMPTY;
    const pairs = keys
      .map((key, i) => ({ key: String(key), count: Number(freqs[i]) * total }))
      .filter((p) => Number.isFinite(p.count) && p.count > 0)
      .sort((a, b) => compareCodePoints(a.key, b.key));
    return new KeyStatistics(
      pairs.map((p) => p.key),
      pairs.map((p) => p.count),
    );
  }

  get size(): number {
    return this.keys.length;
  }

  /** Estimated entries of the common keys in [lo, hi) (0 when none is common: such a range is counted). */
  estimate(lo: string, hi: string): number {
    let low = 0;
    let high = this.keys.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (compareCodePoints(this.keys[mid]!, lo) < 0) low = mid + 1;
      else high = mid;
    }
    let sum = 0;
    for (let i = low; i < this.keys.length && compareCodePoints(this.keys[i]!, hi) < 0; i++)
      sum += this.counts[i]!;
    return Math.round(sum);
  }
}
