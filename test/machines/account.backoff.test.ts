// Backoff used by the account machine for registration retries: exponential, capped, with jitter derived from
// the installation id (deterministic, so delays are testable and installations do not retry in lockstep).
import { describe, expect, it } from "vitest";
import {
  backoffDelay,
  baseDelay,
  fnv1a32,
  JITTER_RATIO,
  jitterFraction,
} from "../../src/machines/backoff.js";

const POLICY = { initialMs: 1_000, maxMs: 300_000, factor: 2 };

describe("registration backoff", () => {
  it("hashes with FNV-1a 32 (published test vectors)", () => {
    expect(fnv1a32("")).toBe(0x811c9dc5);
    expect(fnv1a32("a")).toBe(0xe40c292c);
    expect(fnv1a32("foobar")).toBe(0xbf9cf968);
  });

  it("doubles from initialMs and stops at maxMs", () => {
    expect([1, 2, 3, 9, 10, 50].map((n) => baseDelay(POLICY, n))).toEqual([
      1_000, 2_000, 4_000, 256_000, 300_000, 300_000,
    ]);
    expect(baseDelay(POLICY, 5_000), "huge attempt counts stay finite").toBe(300_000);
  });

  it("gives exact, repeatable delays for one installation", () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => backoffDelay(POLICY, n, "inst-alpha-0001"));
    expect(delays).toEqual([959, 1_923, 3_842, 7_653, 15_294, 30_663, 61_276, 123_653, 247_105, 297_226]);
  });

  it("keeps every delay within [base * (1 - jitter), base] and never above the cap", () => {
    for (const seed of ["a", "b", "inst-1", "inst-2", "00000000-0000-0000-0000-000000000000"]) {
      for (let attempt = 1; attempt <= 30; attempt++) {
        const base = baseDelay(POLICY, attempt);
        const delay = backoffDelay(POLICY, attempt, seed);
        expect(delay).toBeLessThanOrEqual(Math.min(base, POLICY.maxMs));
        expect(delay).toBeGreaterThanOrEqual(Math.floor(base * (1 - JITTER_RATIO)));
      }
    }
  });

  it("spreads installations apart", () => {
    const firstRetry = Array.from({ length: 50 }, (_, i) => backoffDelay(POLICY, 3, `inst-${i}`));
    expect(new Set(firstRetry).size).toBeGreaterThan(40);
    const fractions = Array.from({ length: 200 }, (_, i) => jitterFraction(`inst-${i}`, 1));
    expect(Math.min(...fractions)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...fractions)).toBeLessThan(1);
  });

  it("never returns less than 1 ms", () => {
    expect(backoffDelay({ initialMs: 0, maxMs: 10, factor: 2 }, 1, "x")).toBe(1);
  });
});
