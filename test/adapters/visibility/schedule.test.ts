// Schedule windows evaluated at fixed instants across time zones and DST transitions.
import { describe, expect, it } from "vitest";
import {
  createScheduleSource,
  isWithinSchedule,
  nextScheduleChange,
} from "../../../src/adapters/visibility/schedule.js";
import { type Schedule, scheduleSchema } from "../../../src/adapters/visibility/schemas.js";

const at = (iso: string) => new Date(iso);

const berlinOffice: Schedule = {
  timezone: "Europe/Berlin",
  windows: [{ days: ["mon", "tue", "wed", "thu", "fri"], start: "09:00", end: "17:30" }],
};

describe("isWithinSchedule", () => {
  it("is inside a weekday window in winter (CET, UTC+1)", () => {
    expect(isWithinSchedule(berlinOffice, at("2026-01-14T08:30:00Z"))).toBe(true); // Wed 09:30 CET
    expect(isWithinSchedule(berlinOffice, at("2026-01-14T07:59:00Z"))).toBe(false); // Wed 08:59 CET
  });

  it("follows summer time: the same UTC instant is outside in winter and inside in summer", () => {
    expect(isWithinSchedule(berlinOffice, at("2026-01-14T07:30:00Z"))).toBe(false); // 08:30 CET
    expect(isWithinSchedule(berlinOffice, at("2026-07-15T07:30:00Z"))).toBe(true); // 09:30 CEST
  });

  it("treats the end as exclusive", () => {
    expect(isWithinSchedule(berlinOffice, at("2026-01-14T16:29:00Z"))).toBe(true); // 17:29 CET
    expect(isWithinSchedule(berlinOffice, at("2026-01-14T16:30:00Z"))).toBe(false); // 17:30 CET
  });

  it("is outside on days without a window", () => {
    expect(isWithinSchedule(berlinOffice, at("2026-03-28T10:00:00Z"))).toBe(false); // Saturday
  });

  it("uses the schedule's zone, not the host's: Friday evening in Tokyo is Friday morning in UTC", () => {
    const tokyoNight: Schedule = {
      timezone: "Asia/Tokyo",
      windows: [{ days: ["fri"], start: "22:00", end: "02:00" }],
    };
    expect(isWithinSchedule(tokyoNight, at("2026-01-16T12:59:00Z"))).toBe(false); // Fri 21:59 JST
    expect(isWithinSchedule(tokyoNight, at("2026-01-16T13:00:00Z"))).toBe(true); // Fri 22:00 JST
    expect(isWithinSchedule(tokyoNight, at("2026-01-16T16:30:00Z"))).toBe(true); // Sat 01:30 JST (crossed midnight)
    expect(isWithinSchedule(tokyoNight, at("2026-01-16T17:00:00Z"))).toBe(false); // Sat 02:00 JST
    expect(isWithinSchedule(tokyoNight, at("2026-01-15T16:30:00Z"))).toBe(false); // Fri 01:30 JST (Thu not listed)
  });

  it("handles half-hour zones", () => {
    const kolkata: Schedule = {
      timezone: "Asia/Kolkata",
      windows: [{ days: ["mon"], start: "09:00", end: "10:00" }],
    };
    expect(isWithinSchedule(kolkata, at("2026-01-12T03:29:00Z"))).toBe(false); // 08:59 IST
    expect(isWithinSchedule(kolkata, at("2026-01-12T03:30:00Z"))).toBe(true); // 09:00 IST
  });

  it("reads start == end as a 24 h window from start", () => {
    const day: Schedule = { timezone: "UTC", windows: [{ days: ["mon"], start: "06:00", end: "06:00" }] };
    expect(isWithinSchedule(day, at("2026-01-12T06:00:00Z"))).toBe(true);
    expect(isWithinSchedule(day, at("2026-01-13T05:59:00Z"))).toBe(true);
    expect(isWithinSchedule(day, at("2026-01-13T06:00:00Z"))).toBe(false);
  });

  it("is never inside an empty schedule", () => {
    expect(isWithinSchedule({ timezone: "UTC", windows: [] }, at("2026-01-12T12:00:00Z"))).toBe(false);
  });
});

describe("nextScheduleChange", () => {
  it("finds the end of today's window", () => {
    expect(nextScheduleChange(berlinOffice, at("2026-01-16T16:00:00Z"))).toEqual(at("2026-01-16T16:30:00Z"));
  });

  it("skips the weekend to Monday's start, from exactly the previous flip", () => {
    expect(nextScheduleChange(berlinOffice, at("2026-01-16T16:30:00Z"))).toEqual(at("2026-01-19T08:00:00Z"));
  });

  it("rounds a mid-minute instant to the next whole minute", () => {
    expect(nextScheduleChange(berlinOffice, at("2026-01-16T16:29:59.500Z"))).toEqual(
      at("2026-01-16T16:30:00Z"),
    );
  });

  it("lands on the local time after the spring-forward night (Berlin, 29 Mar 2026)", () => {
    const daily: Schedule = {
      timezone: "Europe/Berlin",
      windows: [{ days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: "09:00", end: "17:00" }],
    };
    // Sat 18:00 CET -> Sun 09:00 CEST = 07:00 UTC (not 08:00 as a fixed +1 offset would say)
    expect(nextScheduleChange(daily, at("2026-03-28T17:00:00Z"))).toEqual(at("2026-03-29T07:00:00Z"));
    // ...and after the autumn change Sun 25 Oct 09:00 CET = 08:00 UTC
    expect(nextScheduleChange(daily, at("2026-10-24T16:00:00Z"))).toEqual(at("2026-10-25T08:00:00Z"));
  });

  it("flips at the DST jump when a window starts inside the skipped hour (New York, 8 Mar 2026)", () => {
    const early: Schedule = {
      timezone: "America/New_York",
      windows: [{ days: ["sun"], start: "02:30", end: "04:00" }],
    };
    // 02:30 does not exist that night: the clock jumps 01:59 EST -> 03:00 EDT at 07:00 UTC, already inside
    expect(nextScheduleChange(early, at("2026-03-08T06:00:00Z"))).toEqual(at("2026-03-08T07:00:00Z"));
    expect(nextScheduleChange(early, at("2026-03-08T07:00:00Z"))).toEqual(at("2026-03-08T08:00:00Z")); // 04:00 EDT
  });

  it("flips again when the repeated hour re-enters a window (New York, 1 Nov 2026)", () => {
    const halfHour: Schedule = {
      timezone: "America/New_York",
      windows: [{ days: ["sun"], start: "01:00", end: "01:30" }],
    };
    expect(isWithinSchedule(halfHour, at("2026-11-01T05:00:00Z"))).toBe(true); // 01:00 EDT
    expect(nextScheduleChange(halfHour, at("2026-11-01T05:00:00Z"))).toEqual(at("2026-11-01T05:30:00Z"));
    // 01:30 EDT -> at 06:00 UTC the clock falls back to 01:00 EST: inside again
    expect(nextScheduleChange(halfHour, at("2026-11-01T05:30:00Z"))).toEqual(at("2026-11-01T06:00:00Z"));
    expect(nextScheduleChange(halfHour, at("2026-11-01T06:00:00Z"))).toEqual(at("2026-11-01T06:30:00Z"));
  });

  it("finds a flip at a DST jump in the middle of a UTC hour (St. John's, -03:30 -> -02:30)", () => {
    const early: Schedule = {
      timezone: "America/St_Johns",
      windows: [{ days: ["sun"], start: "03:00", end: "04:00" }],
    };
    // 01:59 NST -> 03:00 NDT at 05:30 UTC: the window opens at the jump, half-way through the UTC hour
    expect(nextScheduleChange(early, at("2026-03-08T04:00:00Z"))).toEqual(at("2026-03-08T05:30:00Z"));
    expect(nextScheduleChange(early, at("2026-03-08T05:30:00Z"))).toEqual(at("2026-03-08T06:30:00Z"));
  });

  it("handles Lord Howe's 30-minute DST shift", () => {
    const night: Schedule = {
      timezone: "Australia/Lord_Howe",
      windows: [{ days: ["sun"], start: "01:45", end: "02:15" }],
    };
    // 3 Oct 2026 15:15 UTC = Sun 01:45 +10:30 (inside); at 15:30 UTC the clock jumps 02:00 -> 02:30 (outside)
    expect(isWithinSchedule(night, at("2026-10-03T15:15:00Z"))).toBe(true);
    expect(nextScheduleChange(night, at("2026-10-03T15:15:00Z"))).toEqual(at("2026-10-03T15:30:00Z"));
    // 4 Apr 2026: at 15:00 UTC the clock falls back 02:00 +11 -> 01:30 +10:30, re-entering at 01:45 (15:15 UTC)
    expect(nextScheduleChange(night, at("2026-04-04T14:50:00Z"))).toEqual(at("2026-04-04T15:00:00Z"));
    expect(nextScheduleChange(night, at("2026-04-04T15:00:00Z"))).toEqual(at("2026-04-04T15:15:00Z"));
  });

  it("returns null when nothing ever changes", () => {
    const always: Schedule = {
      timezone: "UTC",
      windows: [{ days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: "00:00", end: "00:00" }],
    };
    expect(isWithinSchedule(always, at("2026-01-12T12:00:00Z"))).toBe(true);
    expect(nextScheduleChange(always, at("2026-01-12T12:00:00Z"))).toBeNull();
    expect(nextScheduleChange({ timezone: "UTC", windows: [] }, at("2026-01-12T12:00:00Z"))).toBeNull();
  });

  it("agrees with isWithinSchedule just before and at every flip over a week", () => {
    let t = at("2026-03-26T00:00:00Z");
    const flips: string[] = [];
    for (let i = 0; i < 20; i++) {
      const next = nextScheduleChange(berlinOffice, t);
      if (!next) break;
      expect(isWithinSchedule(berlinOffice, new Date(next.getTime() - 60_000))).toBe(
        isWithinSchedule(berlinOffice, t),
      );
      expect(isWithinSchedule(berlinOffice, next)).not.toBe(isWithinSchedule(berlinOffice, t));
      flips.push(next.toISOString());
      t = next;
      if (next > at("2026-04-03T00:00:00Z")) break;
    }
    expect(flips).toEqual([
      "2026-03-26T08:00:00.000Z", // Thu 09:00 CET
      "2026-03-26T16:30:00.000Z",
      "2026-03-27T08:00:00.000Z",
      "2026-03-27T16:30:00.000Z",
      "2026-03-30T07:00:00.000Z", // Mon 09:00 CEST
      "2026-03-30T15:30:00.000Z",
      "2026-03-31T07:00:00.000Z",
      "2026-03-31T15:30:00.000Z",
      "2026-04-01T07:00:00.000Z",
      "2026-04-01T15:30:00.000Z",
      "2026-04-02T07:00:00.000Z",
      "2026-04-02T15:30:00.000Z",
      "2026-04-03T07:00:00.000Z",
    ]);
  });
});

describe("schedule source and schema", () => {
  it("reads from the injected clock and reports the next change", async () => {
    let now = at("2026-01-14T08:30:00Z");
    const source = createScheduleSource({ schedule: berlinOffice, now: () => now });
    await expect(source.read()).resolves.toEqual({
      discoverable: true,
      nextChangeAt: "2026-01-14T16:30:00.000Z",
    });
    expect(source.nextChange()).toEqual(at("2026-01-14T16:30:00Z"));
    now = at("2026-01-14T16:30:00Z");
    await expect(source.read()).resolves.toEqual({
      discoverable: false,
      nextChangeAt: "2026-01-15T08:00:00.000Z",
    });
  });

  it("defaults the zone to UTC and rejects unknown zones and bad times", () => {
    expect(scheduleSchema.parse({ windows: [] })).toEqual({ timezone: "UTC", windows: [] });
    expect(scheduleSchema.safeParse({ timezone: "Mars/Olympus", windows: [] }).success).toBe(false);
    expect(
      scheduleSchema.safeParse({ timezone: "UTC", windows: [{ days: ["mon"], start: "9:00", end: "17:00" }] })
        .success,
    ).toBe(false);
    expect(
      scheduleSchema.safeParse({
        timezone: "UTC",
        windows: [{ days: ["mon"], start: "24:00", end: "17:00" }],
      }).success,
    ).toBe(false);
  });
});
