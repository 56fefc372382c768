// Visibility from weekly windows in an IANA time zone. Pure functions over (schedule, instant): wall-clock time
// comes from Intl.DateTimeFormat, so DST shifts are handled by the platform's zone data, not by arithmetic.
// `nextScheduleChange` lets the plugin wake exactly at the next flip instead of polling.
import type { z } from "zod";
import { type Schedule, scheduleSchema, type Weekday } from "./schemas.js";
import type { VisibilitySource } from "./types.js";

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
/** A weekly schedule that has not flipped within 8 days never will (zone rules aside). */
const HORIZON_MS = 8 * 24 * HOUR_MS;

const DAY_INDEX: Record<Weekday, number> = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Offset of the zone's wall clock from UTC at instant `t`, in ms (Berlin in summer: +7_200_000). */
function offsetAt(timeZone: string, t: number): number {
  const parts: Record<string, number> = {};
  for (const p of formatterFor(timeZone).formatToParts(new Date(t))) {
    if (p.type !== "literal") parts[p.type] = Number(p.value);
  }
  const wall = Date.UTC(
    parts.year ?? 1970,
    (parts.month ?? 1) - 1,
    parts.day ?? 1,
    (parts.hour ?? 0) % 24,
    parts.minute ?? 0,
    parts.second ?? 0,
  );
  return wall - Math.floor(t / 1000) * 1000;
}

function toMinutes(hhmm: string): number {
  const [h, m] = hhmm.split(":");
  return Number(h) * 60 + Number(m);
}

interface CompiledWindow {
  days: Set<number>;
  start: number;
  end: number;
}

function compile(schedule: Schedule): CompiledWindow[] {
  return schedule.windows.map((w) => ({
    days: new Set(w.days.map((d) => DAY_INDEX[d])),
    start: toMinutes(w.start),
    end: toMinutes(w.end),
  }));
}

/**
 * Whether a wall-clock time (ms since epoch, read as UTC fields) lies in a window. A window belongs to the
 * day it starts on; end <= start means it runs past midnight into the next day (end == start: 24 h).
 */
function inWindows(windows: readonly CompiledWindow[], wallMs: number): boolean {
  const wall = new Date(wallMs);
  const day = wall.getUTCDay();
  const previous = (day + 6) % 7;
  const minute = wall.getUTCHours() * 60 + wall.getUTCMinutes();
  return windows.some((w) =>
    w.start < w.end
      ? w.days.has(day) && minute >= w.start && minute < w.end
      : (w.days.has(day) && minute >= w.start) || (w.days.has(previous) && minute < w.end),
  );
}

export function isWithinSchedule(schedule: Schedule, date: Date): boolean {
  const t = date.getTime();
  return inWindows(compile(schedule), t + offsetAt(schedule.timezone, t));
}

/**
 * The first instant after `date` at which `isWithinSchedule` changes, or null when it does not change within
 * 8 days (no windows, or always on). Minute resolution; zone offsets are sampled per hour and per minute only
 * in an hour that contains a DST transition, so a call costs a few hundred Intl calls at most.
 */
export function nextScheduleChange(schedule: Schedule, date: Date): Date | null {
  const windows = compile(schedule);
  const tz = schedule.timezone;
  const t0 = date.getTime();
  const current = inWindows(windows, t0 + offsetAt(tz, t0));
  const end = t0 + HORIZON_MS;
  let bucket = Number.NaN;
  let bucketOffset: number | null = null;
  for (let t = Math.floor(t0 / MINUTE_MS) * MINUTE_MS + MINUTE_MS; t <= end; t += MINUTE_MS) {
    const hour = Math.floor(t / HOUR_MS);
    if (hour !== bucket) {
      bucket = hour;
      const first = offsetAt(tz, hour * HOUR_MS);
      const last = offsetAt(tz, hour * HOUR_MS + HOUR_MS - MINUTE_MS);
      // Equal at both ends: no transition inside this hour (zones never shift twice within an hour).
      bucketOffset = first === last ? first : null;
    }
    const offset = bucketOffset ?? offsetAt(tz, t);
    if (inWindows(windows, t + offset) !== current) return new Date(t);
  }
  return null;
}

export interface ScheduleSource extends VisibilitySource {
  /** When the reading will next flip, from `now()` (or `from`); null if never within 8 days. */
  nextChange(from?: Date): Date | null;
}

export interface ScheduleSourceOptions {
  schedule: z.input<typeof scheduleSchema>;
  /** Injectable clock (tests, simulated time). */
  now?: () => Date;
}

export function createScheduleSource(options: ScheduleSourceOptions): ScheduleSource {
  const schedule = scheduleSchema.parse(options.schedule);
  const now = options.now ?? (() => new Date());
  return {
    read: async () => {
      const at = now();
      const next = nextScheduleChange(schedule, at);
      return next
        ? { discoverable: isWithinSchedule(schedule, at), nextChangeAt: next.toISOString() }
        : { discoverable: isWithinSchedule(schedule, at) };
    },
    nextChange: (from) => nextScheduleChange(schedule, from ?? now()),
  };
}
