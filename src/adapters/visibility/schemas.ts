// zod schemas of the visibility sources' options, imported by the plugin's config schema (src/config.ts).
import { z } from "zod";

export const weekdaySchema = z.enum(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
export type Weekday = z.infer<typeof weekdaySchema>;

export const clockTimeSchema = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "time of day as HH:MM (24 h)");

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    // Intl throws RangeError for an unknown zone: that is the answer, not a failure.
    return false;
  }
}

export const timeZoneSchema = z
  .string()
  .min(1)
  .refine(isTimeZone, "unknown IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)");

export const scheduleWindowSchema = z
  .object({
    days: z.array(weekdaySchema).min(1).describe("Weekdays on which the window starts"),
    start: clockTimeSchema,
    end: clockTimeSchema.describe(
      "may be earlier than start: the window then crosses midnight; equal = 24 h",
    ),
  })
  .strict();

export const scheduleSchema = z
  .object({
    timezone: timeZoneSchema.default("UTC").describe("IANA time zone of the windows, e.g. Europe/Berlin"),
    windows: z.array(scheduleWindowSchema).default([]),
  })
  .strict()
  .describe("Discoverable only inside these weekly windows");

export type Schedule = z.output<typeof scheduleSchema>;
export type ScheduleWindow = z.output<typeof scheduleWindowSchema>;

export const convexOptionsSchema = z
  .object({
    convexUrl: z.url().describe("Convex deployment URL, e.g. https://happy-otter-123.convex.cloud"),
    installationId: z.string().min(1).describe("Id of this installation in the Convex `installations` table"),
    queryPath: z.string().min(1).default("installations:get"),
    /** Sent as `args.gatewayToken` (env BUTLEY_GATEWAY_TOKEN), as later versions of the original plugin did. */
    gatewayToken: z.string().min(1).optional(),
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  })
  .strict();

export type ConvexOptions = z.input<typeof convexOptionsSchema>;

/**
 * Convex `POST /api/query` answer. `metadata` keys: the brief's names (`displayName`, ...) and the original
 * plugin's (`networkDisplayName`, ...) are both read.
 */
export const convexQueryResponseSchema = z.discriminatedUnion("status", [
  z.object({
    status: z.literal("success"),
    value: z
      .object({
        metadata: z
          .object({
            networkDiscoverable: z.boolean().nullish(),
            displayName: z.string().nullish(),
            networkDisplayName: z.string().nullish(),
            description: z.string().nullish(),
            networkDescription: z.string().nullish(),
            capabilities: z.array(z.string()).nullish(),
            networkCapabilities: z.array(z.string()).nullish(),
            networkScheduleEnabled: z.boolean().nullish(),
            networkScheduleTimezone: z.string().nullish(),
            networkSchedule: z
              .record(
                z.string(),
                z.object({ start: z.string().nullish(), end: z.string().nullish() }).nullable(),
              )
              .nullish(),
          })
          .nullish(),
      })
      .nullable(),
  }),
  z.object({ status: z.literal("error"), errorMessage: z.string().optional() }),
]);
