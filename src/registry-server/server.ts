// Starts the reference Agent Registry HTTP server (node:http, no framework): auth by deployment key, routing,
// JSON errors (a catch-all 500 for real bugs, logged), a periodic unref'd purge sweep, graceful close.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { bearerOf, matchesHash, registryKeyOf, sha256Hex } from "./auth.js";
import { RegistryHttpError, unauthorized } from "./errors.js";
import { errorReply, type RequestContext, sendJson } from "./http.js";
import { InboxWaiters } from "./inbox-waiters.js";
import { buildRoutes } from "./routes.js";
import { RegistryService } from "./service.js";
import { SqliteRegistryStore } from "./sqlite-store.js";
import type { RegistryStore } from "./store.js";

export interface RegistryLogger {
  info(message: string): void;
  error(message: string, error?: unknown): void;
}

export interface RegistryServerOptions {
  /** Interface to bind (default 127.0.0.1: loopback only unless told otherwise). */
  host?: string;
  /** Port (default 0: ephemeral; the CLI defaults to 8001). */
  port?: number;
  /** SQLite file path or ":memory:" (default). Ignored when `store` is given. */
  db?: string;
  /** A store to use instead of opening `db` (closed by close()). */
  store?: RegistryStore;
  /** Deployment key required as X-Registry-Key on every /api/ call when set. */
  apiKey?: string;
  /** Liveness window in seconds (default 180 = three missed 60 s heartbeats). */
  ttlSeconds?: number;
  /** Issue agent tokens and require them to act as an agent (default true). */
  agentTokens?: boolean;
  /** Relay messages need approved trust between sender and recipient (default false). */
  requireTrust?: boolean;
  /** Offline agents are purged this long after they went offline (default 7 days). */
  offlineRetentionSeconds?: number;
  /** Unacknowledged relay messages are kept this long (default 7 days). */
  messageRetentionSeconds?: number;
  /** Unacknowledged messages one relay inbox may hold (default 1,000; 0 = no limit); more gets 507. */
  inboxMaxMessages?: number;
  /** Stored body bytes one relay inbox may hold (default 32 MiB; 0 = no limit); more gets 507. */
  inboxMaxBytes?: number;
  /** Relay sends a minute per sender installation (default 120; 0 = no limit); faster gets 429. */
  sendRatePerMinute?: number;
  /** Relay sends a sender may make at once before the rate applies (default 60). */
  sendBurst?: number;
  /** Purge sweep period (default 60 s; 0 disables the timer). */
  sweepIntervalMs?: number;
  /** Clock in epoch milliseconds (default Date.now); tests drive liveness with it. */
  now?: () => number;
  logger?: RegistryLogger;
}

export interface RegistryServerHandle {
  url: string;
  port: number;
  /** Stops accepting, lets in-flight requests finish (long-polls answer at once), closes storage. */
  close(): Promise<void>;
  /** Runs the purge sweep now; returns how many agents and messages were removed. */
  sweep(): { agents: number; messages: number };
}

const DAY_S = 24 * 60 * 60;

/**
 * One request's context. A class, not an object literal with a getter: V8 gives each such literal its own
 * hidden class, which piled up in the old generation at thousands of requests a second.
 */
class Context implements RequestContext {
  #controller: AbortController | undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly method: string,
    readonly path: string,
    readonly params: Readonly<Record<string, string>>,
    readonly url: URL,
  ) {}

  /** Made on first use (only long-polls use it); aborted when the response is cut short. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      const controller = new AbortController();
      this.#controller = controller;
      const res = this.res;
      if (res.closed && !res.writableFinished) controller.abort();
      else res.on("close", () => res.writableFinished || controller.abort());
    }
    return this.#controller.signal;
  }
}

const stderrLogger: RegistryLogger = {
  info: () => {},
  error: (message, error) => {
    process.stderr.write(`agent-registry: ${message}${error instanceof Error ? `\n${error.stack}` : ""}\n`);
  },
};

export async function startRegistryServer(
  options: RegistryServerOptions = {},
): Promise<RegistryServerHandle> {
  const host = options.host ?? "127.0.0.1";
  const logger = options.logger ?? stderrLogger;
  const store = options.store ?? new SqliteRegistryStore({ path: options.db ?? ":memory:" });
  const waiters = new InboxWaiters();
  const service = new RegistryService({
    store,
    waiters,
    now: options.now ?? Date.now,
    ttlSeconds: options.ttlSeconds ?? 180,
    agentTokens: options.agentTokens ?? true,
    requireTrust: options.requireTrust ?? false,
    offlineRetentionSeconds: options.offlineRetentionSeconds ?? 7 * DAY_S,
    messageRetentionSeconds: options.messageRetentionSeconds ?? 7 * DAY_S,
    inboxMaxMessages: options.inboxMaxMessages,
    inboxMaxBytes: options.inboxMaxBytes,
    sendRatePerMinute: options.sendRatePerMinute,
    sendBurst: options.sendBurst,
  });
  const router = buildRoutes(service, waiters);
  const keyHash = options.apiKey ? sha256Hex(options.apiKey) : undefined;

  const checkDeploymentKey = (req: IncomingMessage, path: string) => {
    if (!keyHash || !path.startsWith("/api/")) return;
    // The original plugin sent the deployment key as a bearer token on trust calls; accept that there only.
    const presented = registryKeyOf(req) ?? (path.startsWith("/api/v1/trust/") ? bearerOf(req) : undefined);
    if (presented === undefined || !matchesHash(presented, keyHash)) {
      throw unauthorized(
        "authenticate",
        "missing or wrong X-Registry-Key header; set registryApiKey (or AGENT_REGISTRY_API_KEY) to this registry's deployment key",
        "X-Registry-Key",
      );
    }
  };

  let stopping = false;
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    // While stopping, answer and drop the connection so keep-alive clients do not hold the close open.
    if (stopping) res.setHeader("connection", "close");
    let operation = "route request";
    try {
      const url = new URL(req.url ?? "/", "http://registry.invalid");
      const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, "") : url.pathname;
      const method = req.method ?? "GET";
      checkDeploymentKey(req, path);
      const match = router.match(method, path);
      if (match.kind === "not-found") {
        sendJson(res, 404, { detail: `no route ${method} ${path}; see docs/registry-server.md for the API` });
        return;
      }
      if (match.kind === "method-not-allowed") {
        sendJson(
          res,
          405,
          { detail: `${method} is not allowed on ${path}; use ${match.allow.join(" or ")}` },
          { allow: match.allow.join(", ") },
        );
        return;
      }
      operation = match.route.operation;
      const params: Record<string, string> = {};
      for (const [name, raw] of Object.entries(match.params)) {
        try {
          params[name] = decodeURIComponent(raw);
        } catch {
          // Why safe: a malformed escape is the client's mistake; the raw segment then fails validation or lookup.
          params[name] = raw;
        }
      }
      const ctx = new Context(req, res, method, path, params, url);
      const reply = await match.route.handler(ctx);
      if (stopping) res.setHeader("connection", "close");
      sendJson(res, reply.status, reply.body);
    } catch (error) {
      if (error instanceof RegistryHttpError) {
        const { status, body, headers } = errorReply(error);
        sendJson(res, status, body, headers);
        return;
      }
      logger.error(`internal error in ${operation}`, error);
      sendJson(res, 500, { detail: `internal error in ${operation}; the registry logged it, retry later` });
    }
  };

  const server = createServer(
    { maxHeaderSize: 64 * 1024, requestTimeout: 60_000, headersTimeout: 20_000, keepAliveTimeout: 10_000 },
    (req, res) => {
      handle(req, res).catch((error: unknown) => {
        logger.error("unhandled error while answering a request", error);
        if (!res.headersSent) res.destroy();
      });
    },
  );
  server.on("clientError", (_error, socket) => {
    // Malformed HTTP (bad request line, oversized headers): answer 400 and drop the connection.
    if (socket.writable)
      socket.end(
        'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: application/json\r\n\r\n{"detail":"malformed HTTP request"}',
      );
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });

  const sweep = () => service.sweep();
  const sweepMs = options.sweepIntervalMs ?? 60_000;
  const timer =
    sweepMs > 0
      ? setInterval(() => {
          try {
            sweep();
          } catch (error) {
            logger.error("purge sweep failed (will retry on the next tick)", error);
          }
        }, sweepMs)
      : undefined;
  timer?.unref();

  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    sweep,
    close() {
      closing ??= (async () => {
        stopping = true;
        if (timer) clearInterval(timer);
        waiters.close();
        // In-flight requests finish; connections that turn idle meanwhile are closed on the next tick of
        // this bounded loop, and anything still open after 10 s is cut.
        const idle = setInterval(() => server.closeIdleConnections(), 50);
        const force = setTimeout(() => server.closeAllConnections(), 10_000);
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        });
        clearInterval(idle);
        clearTimeout(force);
        store.close();
      })();
      return closing;
    },
  };
}
