// Cross-check: nextScheduleChange (hourly offset sampling) against a brute-force minute-by-minute walk with
// isWithinSchedule, for seeded random schedules in zones with DST, half-hour and 45-minute offsets, starting
// near DST transitions.
import { describe, expect, it } from "vitest";
import { isWithinSchedule, nextScheduleChange } from "../../../src/adapters/visibility/schedule.js";
import type { Schedule, Weekday } from "../../../src/adapters/visibility/schemas.js";

/** mulberry32: small deterministic PRNG so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ZONES = [
  "Europe/Berlin",
  "America/New_York",
  "Australia/Lord_Howe", // 30-minute DST shift
  "Asia/Kathmandu", // +05:45
  "America/St_Johns", // -03:30 with DST
  "Pacific/Auckland",
  "UTC",
];
const STARTS = [
  "2026-03-07T18:00:00Z",
  "2026-03-28T20:00:00Z",
  "2026-04-04T10:00:00Z",
  "2026-09-26T08:00:00Z",
  "2026-10-03T12:00:00Z",
  "2026-10-24T22:00:00Z",
  "2026-10-31T20:00:00Z",
  "2026-03-08T02:00:00Z", // St. John's and New York spring forward
  "2026-10-03T12:00:00Z", // Lord Howe spring forward (15:30 UTC)
  "2026-04-04T12:00:00Z", // Lord Howe falls back (15:00 UTC)
];
const DAYS: Weekday[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

function randomSchedule(rand: () => number, timezone: string): Schedule {
  const hhmm = () => {
    // Half the boundaries fall in the small hours, where DST transitions happen.
    const h = rand() < 0.5 ? Math.floor(rand() * 5) : Math.floor(rand() * 24);
    const m = [0, 15, 30, 45, 7][Math.floor(rand() * 5)]!;
    return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`;
  };
  const windows = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => ({
    days: DAYS.filter(() => rand() < 0.4).concat(DAYS[Math.floor(rand() * 7)]!),
    start: hhmm(),
    end: hhmm(),
  }));
  return { timezone, windows };
}

function bruteForceNext(schedule: Schedule, from: Date, horizonMinutes: number): Date | null {
  const state = isWithinSchedule(schedule, from);
  const first = Math.floor(from.getTime() / 60_000) * 60_000 + 60_000;
  for (let i = 0; i < horizonMinutes; i++) {
    const t = new Date(first + i * 60_000);
    if (isWithinSchedule(schedule, t) !== state) return t;
  }
  return null;
}

describe("nextScheduleChange cross-check", () => {
  it("matches a minute-by-minute walk for 60 seeded schedules near DST transitions", () => {
    const rand = prng(20261125);
    const horizon = 2 * 24 * 60;
    for (let i = 0; i < 60; i++) {
      const zone = ZONES[i % ZONES.length]!;
      const start = new Date(
        new Date(STARTS[Math.floor(rand() * STARTS.length)]!).getTime() + Math.floor(rand() * 720) * 60_000,
      );
      const schedule = randomSchedule(rand, zone);
      const expected = bruteForceNext(schedule, start, horizon);
      const actual = nextScheduleChange(schedule, start);
      const label = `${JSON.stringify(schedule)} from ${start.toISOString()}`;
      if (expected) expect(actual?.toISOString(), label).toBe(expected.toISOString());
      else if (actual) expect(actual.getTime() - start.getTime(), label).toBeGreaterThan(horizon * 60_000);
    }
  });
});
