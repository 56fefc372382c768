// Visibility from the installation's metadata in Convex, as the original plugin read it: a public query
// `installations:get` through Convex's HTTP API. Only `networkDiscoverable === true` makes the agent
// discoverable: a missing installation (value null), missing metadata or a missing flag all read as private,
// matching the original plugin (opt-in; never publish an agent nobody chose to publish).
// Later versions of the original metadata also carry a weekly schedule (networkScheduleEnabled/Timezone/
// Schedule, one optional {start,end} per day name); when enabled it narrows `networkDiscoverable` further.
import { isWithinSchedule, nextScheduleChange } from "./schedule.js";
import {
  type ConvexOptions,
  convexOptionsSchema,
  convexQueryResponseSchema,
  type Schedule,
  scheduleSchema,
  type Weekday,
} from "./schemas.js";
import { VisibilityError, type VisibilityReading, type VisibilitySource } from "./types.js";

export type ConvexFetch = (input: string, init: RequestInit) => Promise<Response>;

export interface ConvexSourceOptions extends ConvexOptions {
  fetch?: ConvexFetch;
  /** Clock for the metadata schedule (tests, simulated time). */
  now?: () => Date;
}

const WEEKDAYS: readonly Weekday[] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

type ConvexDaySchedule = Record<string, { start?: string | null; end?: string | null } | null>;

/**
 * Converts the metadata's per-day schedule (keys "mon"/"monday"/"Monday", null = not that day; a missing
 * start means from midnight, a missing end until midnight) into our schedule, or the reason it is invalid.
 */
export function scheduleFromConvex(
  timezone: string | null | undefined,
  days: ConvexDaySchedule,
): { schedule: Schedule } | { error: string } {
  const windows: Array<{ days: Weekday[]; start: string; end: string }> = [];
  for (const [key, hours] of Object.entries(days)) {
    const day = WEEKDAYS.find((d) => key.trim().toLowerCase().startsWith(d));
    if (!day) return { error: `unknown day "${key.slice(0, 20)}"` };
    if (hours === null) continue;
    windows.push({ days: [day], start: hours.start || "00:00", end: hours.end || "00:00" });
  }
  const parsed = scheduleSchema.safeParse({ timezone: timezone || "UTC", windows });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { error: issue ? `${issue.path.join(".")}: ${issue.message}` : "invalid schedule" };
  }
  return { schedule: parsed.data };
}

function networkCode(err: unknown): string {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current && typeof current === "object"; depth++) {
    const c = current as { code?: unknown; cause?: unknown };
    if (typeof c.code === "string") return c.code;
    current = c.cause;
  }
  return err instanceof Error ? err.message : "network error";
}

export function createConvexSource(options: ConvexSourceOptions): VisibilitySource {
  const { fetch: injected, now: clock, ...rest } = options;
  const opts = convexOptionsSchema.parse(rest);
  const doFetch: ConvexFetch = injected ?? ((input, init) => fetch(input, init));
  const now = clock ?? (() => new Date());
  const args: Record<string, string> = { id: opts.installationId };
  if (opts.gatewayToken) args.gatewayToken = opts.gatewayToken;
  /** Convex validation errors may echo argument values: never let the gateway token reach a message. */
  const redact = (text: string) => (opts.gatewayToken ? text.split(opts.gatewayToken).join("***") : text);
  const origin = new URL(opts.convexUrl);
  const display = `${origin.protocol}//${origin.host}`;
  const endpoint = `${opts.convexUrl.replace(/\/+$/, "")}/api/query`;
  const operation = `visibility.convex(${opts.queryPath})`;

  async function read(signal?: AbortSignal): Promise<VisibilityReading> {
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let response: Response;
    let text: string;
    try {
      response = await doFetch(endpoint, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ path: opts.queryPath, args, format: "json" }),
        signal: combined,
        // Not followed: the gateway token in the body would go along to wherever Location points.
        redirect: "manual",
      });
      text = await response.text();
    } catch (cause) {
      if (signal?.aborted) {
        throw new VisibilityError("Reading visibility from Convex was cancelled", {
          operation,
          kind: "aborted",
          cause,
        });
      }
      if (timeout.aborted) {
        throw new VisibilityError(
          `Convex at ${display} did not answer within ${opts.timeoutMs} ms; keeping the last known visibility — check the deployment or raise the timeout`,
          { operation, kind: "timeout", cause },
        );
      }
      throw new VisibilityError(
        `Convex at ${display} is unreachable (${networkCode(cause)}); check visibility.convexUrl (or BUTLEY_CONVEX_URL)`,
        { operation, kind: "unreachable", cause },
      );
    }

    if (response.status >= 300 && response.status < 400) {
      throw new VisibilityError(
        `Convex at ${display} answered with a redirect (${response.status}); set visibility.convexUrl to the deployment's final URL`,
        { operation, kind: "http", status: response.status },
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (cause) {
      throw new VisibilityError(
        `Convex at ${display} answered ${response.status} with a non-JSON body; check visibility.convexUrl points at a Convex deployment`,
        response.ok
          ? { operation, kind: "bad_response", cause }
          : { operation, kind: "http", status: response.status, cause },
      );
    }
    const parsed = convexQueryResponseSchema.safeParse(json);
    if (!response.ok && !(parsed.success && parsed.data.status === "error")) {
      throw new VisibilityError(
        `Convex at ${display} answered ${response.status}; check visibility.convexUrl and that the deployment is running`,
        { operation, kind: "http", status: response.status },
      );
    }
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new VisibilityError(
        `Convex at ${display} sent an unexpected answer to ${opts.queryPath} (${issue ? `${issue.path.join(".")}: ${issue.message}` : "bad shape"}); check the query path`,
        { operation, kind: "bad_response", cause: parsed.error },
      );
    }
    if (parsed.data.status === "error") {
      throw new VisibilityError(
        `Convex query ${opts.queryPath} failed: ${redact(parsed.data.errorMessage ?? "no message").slice(0, 300)}; check the query path, installationId and gateway token`,
        { operation, kind: "query_failed", status: response.status },
      );
    }
    const metadata = parsed.data.value?.metadata;
    const reading: VisibilityReading = { discoverable: metadata?.networkDiscoverable === true };
    if (reading.discoverable && metadata?.networkScheduleEnabled === true && metadata.networkSchedule) {
      const converted = scheduleFromConvex(metadata.networkScheduleTimezone, metadata.networkSchedule);
      if ("error" in converted) {
        throw new VisibilityError(
          `Convex metadata has an invalid networkSchedule (${converted.error}); fix the schedule in the workspace settings`,
          { operation, kind: "bad_response" },
        );
      }
      const at = now();
      reading.discoverable = isWithinSchedule(converted.schedule, at);
      const next = nextScheduleChange(converted.schedule, at);
      if (next) reading.nextChangeAt = next.toISOString();
    }
    const displayName = metadata?.displayName ?? metadata?.networkDisplayName;
    const description = metadata?.description ?? metadata?.networkDescription;
    const capabilities = metadata?.capabilities ?? metadata?.networkCapabilities;
    if (displayName) reading.displayName = displayName;
    if (description) reading.description = description;
    if (capabilities && capabilities.length > 0) reading.capabilities = capabilities;
    return reading;
  }

  return { read };
}
