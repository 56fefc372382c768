// The operations endpoints beside the API: /livez (the process answers), /readyz (the store answers and the
// server is not draining) and /metrics (Prometheus text, optionally behind a bearer token). They need no
// deployment key, are never rate limited and are left out of the request metrics, so probes neither fail for
// want of a key nor swell the API's figures. Readiness checks are shared: a flood of /readyz runs one store
// check at a time, each bounded by a timeout.
import type { IncomingMessage, ServerResponse } from "node:http";
import { bearerOf, matchesHash, sha256Hex } from "./auth.js";
import type { StructuredLogger } from "./logger.js";
import type { RegistryMetrics } from "./metrics.js";
import { StoreNotReadyError } from "./store-hooks.js";

export const OPERATIONS_PATHS = new Set(["/livez", "/readyz", "/metrics"]);

/** How long a readiness check may take before the server counts itself not ready (default). */
export const DEFAULT_READY_TIMEOUT_MS = 2000;

export type ReadyState = { ready: true } | { ready: false; reason: string };

export interface ReadinessOptions {
  /** The store's check: resolves when it can serve, throws (StoreNotReadyError for a public reason) if not. */
  check: () => Promise<unknown> | unknown;
  timeoutMs?: number;
  logger: Pick<StructuredLogger, "info" | "warn">;
}

export class Readiness {
  #draining = false;
  #running: Promise<ReadyState> | undefined;
  #lastFailure: string | undefined;

  constructor(readonly options: ReadinessOptions) {}

  /** From now on the server reports not ready (shutdown has begun); there is no way back. */
  startDraining(): void {
    this.#draining = true;
  }

  get draining(): boolean {
    return this.#draining;
  }

  check(): Promise<ReadyState> {
    if (this.#draining) {
      return Promise.resolve({
        ready: false,
        reason: "draining: this server is shutting down; use another one",
      });
    }
    this.#running ??= this.#run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #run(): Promise<ReadyState> {
    const timeoutMs = this.options.timeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    let state: ReadyState;
    try {
      const outcome = await Promise.race([
        Promise.resolve(this.options.check()).then(() => "ok" as const),
        timeout,
      ]);
      state =
        outcome === "ok"
          ? { ready: true }
          : { ready: false, reason: `store did not answer within ${timeoutMs} ms` };
    } catch (error) {
      state = {
        ready: false,
        // Other errors may name hosts or users: the reply says where to look, the log says what happened.
        reason:
          error instanceof StoreNotReadyError
            ? `store not ready: ${error.reason}`
            : "store not ready: its check failed (see the server log)",
      };
      if (!(error instanceof StoreNotReadyError)) {
        this.options.logger.warn("readiness check failed", {
          error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
        });
      }
    } finally {
      clearTimeout(timer);
    }
    // Log changes only: a probe every few seconds must not write a line each time.
    const failure = state.ready ? undefined : state.reason;
    if (failure !== this.#lastFailure) {
      if (failure) this.options.logger.warn("not ready", { reason: failure });
      else this.options.logger.info("ready again");
      this.#lastFailure = failure;
    }
    return state;
  }
}

export interface OperationsOptions {
  readiness: Readiness;
  metrics: RegistryMetrics;
  /** When set, /metrics wants `Authorization: Bearer <token>`. */
  metricsToken?: string;
}

function reply(res: ServerResponse, status: number, contentType: string, text: string, extra = {}): void {
  if (res.headersSent || res.destroyed) return;
  res
    .writeHead(status, {
      "content-type": contentType,
      "content-length": Buffer.byteLength(text),
      "cache-control": "no-store",
      ...extra,
    })
    .end(text);
}

const json = (res: ServerResponse, status: number, body: unknown, extra = {}) =>
  reply(res, status, "application/json", JSON.stringify(body), extra);

/** Answers /livez, /readyz and /metrics; the caller checked that `path` is one of OPERATIONS_PATHS. */
export function operationsHandler(options: OperationsOptions) {
  const tokenHash = options.metricsToken ? sha256Hex(options.metricsToken) : undefined;
  // Scrapes that arrive together share one render (a few ms of CPU each): a burst costs one.
  let rendering: ReturnType<RegistryMetrics["render"]> | undefined;
  const render = () => {
    rendering ??= options.metrics.render().finally(() => {
      rendering = undefined;
    });
    return rendering;
  };
  return async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") {
      json(
        res,
        405,
        { detail: `${method} is not allowed on ${path}; use GET or HEAD` },
        { allow: "GET, HEAD" },
      );
      return;
    }
    if (path === "/livez") {
      json(res, 200, { ok: true });
      return;
    }
    if (path === "/readyz") {
      const state = await options.readiness.check();
      if (state.ready) json(res, 200, { ready: true });
      else json(res, 503, { ready: false, detail: state.reason }, { "retry-after": "5" });
      return;
    }
    if (tokenHash) {
      const presented = bearerOf(req);
      if (presented === undefined || !matchesHash(presented, tokenHash)) {
        json(
          res,
          401,
          {
            detail: "missing or wrong metrics token; send Authorization: Bearer <the --metrics-token value>",
          },
          { "www-authenticate": "Bearer" },
        );
        return;
      }
    }
    const { contentType, text } = await render();
    reply(res, 200, contentType, text);
  };
}
