import { describe, expect, it } from "vitest";
import { compareCodePoints, KeyStatistics } from "../../src/registry-server/key-statistics.js";

describe("compareCodePoints", () => {
  it("orders as PostgreSQL's C collation does: by code point, an astral letter after U+FFFD", () => {
    const astral = "\u{1D49C}"; // MATHEMATICAL SCRIPT CAPITAL A, a surrogate pair in UTF-16
    expect(compareCodePoints(astral, "\uFFFD")).toBeGreaterThan(0);
    expect("\uFFFD" > astral).toBe(true); // what plain string comparison says instead
    expect(compareCodePoints("abc", "abd")).toBeLessThan(0);
    expect(compareCodePoints("ab", "abc")).toBeLessThan(0);
    expect(compareCodePoints("same", "same")).toBe(0);
    const sorted = ["z", astral, "\uFFFD", "\u0001code", "a"].sort(compareCodePoints);
    expect(sorted).toEqual(["\u0001code", "a", "z", "\uFFFD", astral]);
  });
});

describe("KeyStatistics", () => {
  const stats = KeyStatistics.of(
    ["quick", "\u0001code", "quickly", "calm", "\u0001code-review", "qu\u{1D49C}"],
    [0.1, 0.02, 0.01, 0.05, 0.005, 0.001],
    1_000_000,
  );
  const END = "\u{10FFFF}";

  it("sums the common keys of a word's prefix range", () => {
    expect(stats.size).toBe(6);
    expect(stats.estimate("quick", `quick${END}`)).toBe(110_000);
    expect(stats.estimate("qu", `qu${END}`)).toBe(111_000); // the astral key is inside the range too
    expect(stats.estimate("calm", `calm${END}`)).toBe(50_000);
  });

  it("gives a capability's own key only, not the keys it is a prefix of", () => {
    expect(stats.estimate("\u0001code", "\u0001code\u0001")).toBe(20_000);
  });

  it("gives 0 for a range with no common key (such a range is counted)", () => {
    expect(stats.estimate("zebra", `zebra${END}`)).toBe(0);
    expect(KeyStatistics.EMPTY.estimate("quick", `quick${END}`)).toBe(0);
  });

  it("has no statistics from missing or malformed input (no ANALYZE yet, an unknown table size)", () => {
    expect(KeyStatistics.of(null, null, 100).size).toBe(0);
    expect(KeyStatistics.of(["a"], [0.5, 0.5], 100).size).toBe(0);
    expect(KeyStatistics.of(["a"], [0.5], -1).size).toBe(0);
    expect(KeyStatistics.of(["a", "b"], [0.5, "x"], 100).size).toBe(1);
  });
});
