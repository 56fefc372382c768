// Visibility from the installation's metadata in Convex, as the original plugin read it: a public query
// `installations:get` through Convex's HTTP API. Only `networkDiscoverable === true` makes the agent
// discoverable: a missing installation (value null), missing metadata or a missing flag all read as private,
// matching the original plugin (opt-in; never publish an agent nobody chose to publish).
import { type ConvexOptions, convexOptionsSchema, convexQueryResponseSchema } from "./schemas.js";
import { VisibilityError, type VisibilityReading, type VisibilitySource } from "./types.js";

export type ConvexFetch = (input: string, init: RequestInit) => Promise<Response>;

export interface ConvexSourceOptions extends ConvexOptions {
  fetch?: ConvexFetch;
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
  const { fetch: injected, ...rest } = options;
  const opts = convexOptionsSchema.parse(rest);
  const doFetch: ConvexFetch = injected ?? ((input, init) => fetch(input, init));
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
        body: JSON.stringify({ path: opts.queryPath, args: { id: opts.installationId }, format: "json" }),
        signal: combined,
        redirect: "error",
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
        `Convex query ${opts.queryPath} failed: ${(parsed.data.errorMessage ?? "no message").slice(0, 300)}; check the query path and installationId`,
        { operation, kind: "query_failed", status: response.status },
      );
    }
    const metadata = parsed.data.value?.metadata;
    const reading: VisibilityReading = { discoverable: metadata?.networkDiscoverable === true };
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
