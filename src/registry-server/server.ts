// Starts the reference Agent Registry HTTP server (node:http, no framework): auth by deployment key, routing,
// JSON errors (a catch-all 500 for real bugs, logged), a periodic unref'd purge sweep, graceful close, and
// limits against hostile or broken clients (connections, slow headers and bodies, long-polls).
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { bearerOf, matchesHash, registryKeyOf, sha256Hex } from "./auth.js";
import { ClientGoneError, RegistryHttpError, unauthorized } from "./errors.js";
import { errorReply, type RequestContext, sendJson } from "./http.js";
import { InboxWaiters } from "./inbox-waiters.js";
import { openRegistryStore } from "./open-store.js";
import { ProofChecker } from "./proofs.js";
import { buildRoutes } from "./routes.js";
import { RegistryService } from "./service.js";
import type { RegistryStore } from "./store.js";

export interface RegistryLogger {
  info(message: string): void;
  error(message: string, error?: unknown): void;
  /** Client misbehaviour that is no server fault (a client leaving mid-upload, a refused connection). */
  debug?(message: string): void;
}

export interface RegistryServerOptions {
  /** Interface to bind (default 127.0.0.1: loopback only unless told otherwise). */
  host?: string;
  /** Port (default 0: ephemeral; the CLI defaults to 8001). */
  port?: number;
  /**
   * SQLite file path or ":memory:" (default), or a PostgreSQL URL (postgres:// or postgresql://). Ignored when
   * `store` is given.
   */
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
  /**
   * Release period (default 7 days): a record that went offline or deregistered keeps its hostname, token and
   * inbox this long; then it is purged and the hostname is free.
   */
  offlineRetentionSeconds?: number;
  /** Operator key for /api/v1/admin/* (header X-Registry-Admin-Key); admin routes answer 403 without it. */
  adminKey?: string;
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
  /** Open connections at most (default 1,024); one more is answered 503 with Retry-After and closed. */
  maxConnections?: number;
  /** A client must send its request headers within this many ms of connecting or of its last request (default 20 s). */
  headersTimeoutMs?: number;
  /** A client must send its whole request (headers and body) within this many ms (default 60 s). */
  requestTimeoutMs?: number;
  /** Long-polls parked at once on one inbox (default 4); one more gets 429 with Retry-After. */
  maxLongPollsPerInbox?: number;
  /** Long-polls parked at once on the server (default 1,000); one more gets 503 with Retry-After. */
  maxLongPolls?: number;
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
  sweep(): Promise<{ agents: number; messages: number }>;
  /** What the server holds right now: accepted connections and parked long-polls (to watch the limits). */
  stats(): { connections: number; longPolls: number };
}

export const DEFAULT_MAX_CONNECTIONS = 1024;
export const DEFAULT_HEADERS_TIMEOUT_MS = 20_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
/** Seconds a client refused for lack of connections is asked to wait. */
const CONNECTION_RETRY_AFTER_S = 5;
/**
 * Connections beyond the cap are still accepted long enough to be told 503; this many more are dropped by
 * node:http outright, so a flood cannot pile up sockets waiting for their refusal to be written.
 */
const REFUSAL_HEADROOM = 64;

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
  debug: () => {},
  error: (message, error) => {
    process.stderr.write(`agent-registry: ${message}${error instanceof Error ? `\n${error.stack}` : ""}\n`);
  },
};

export async function startRegistryServer(
  options: RegistryServerOptions = {},
): Promise<RegistryServerHandle> {
  const host = options.host ?? "127.0.0.1";
  const logger = options.logger ?? stderrLogger;
  const store = options.store ?? (await openRegistryStore(options.db ?? ":memory:"));
  const waiters = new InboxWaiters({ perInbox: options.maxLongPollsPerInbox, total: options.maxLongPolls });
  const service = new RegistryService({
    store,
    waiters,
    now: options.now ?? Date.now,
    ttlSeconds: options.ttlSeconds ?? 180,
    agentTokens: options.agentTokens ?? true,
    requireTrust: options.requireTrust ?? false,
    offlineRetentionSeconds: options.offlineRetentionSeconds ?? 7 * DAY_S,
    messageRetentionSeconds: options.messageRetentionSeconds ?? 7 * DAY_S,
    adminKeyHash: options.adminKey ? sha256Hex(options.adminKey) : undefined,
    inboxMaxMessages: options.inboxMaxMessages,
    inboxMaxBytes: options.inboxMaxBytes,
    sendRatePerMinute: options.sendRatePerMinute,
    sendBurst: options.sendBurst,
  });
  const router = buildRoutes(service, waiters, new ProofChecker({ now: service.options.now }));
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
        sendJson(res, 404, { detail: `no route ${method} ${path}; see docs/registry-api.md for the API` });
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
      if (error instanceof ClientGoneError) {
        // Nobody is left to answer; make sure the socket goes too (a half-read request cannot be reused).
        logger.debug?.(`${error.message}; connection dropped`);
        res.destroy();
        return;
      }
      if (error instanceof RegistryHttpError) {
        const { status, body, headers } = errorReply(error);
        sendJson(res, status, body, headers);
        return;
      }
      logger.error(`internal error in ${operation}`, error);
      sendJson(res, 500, { detail: `internal error in ${operation}; the registry logged it, retry later` });
    }
  };

  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const headersTimeout = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const requestTimeout = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  // Sockets over the cap: they get one 503 and are closed; their requests are never handled.
  const refused = new WeakSet<Socket>();
  let connections = 0;
  // Open sockets, and those that have carried a request: at close, a socket that never sent one is cut at
  // once (node:http's closeIdleConnections leaves it to the headers timeout; HTTP clients open spare ones).
  const sockets = new Set<Socket>();
  const used = new WeakSet<Socket>();
  const refusal = JSON.stringify({
    detail: `the registry has its maximum of ${maxConnections} open connections; retry after ${CONNECTION_RETRY_AFTER_S} s`,
  });
  const refuseConnection = (socket: Socket) => {
    refused.add(socket);
    logger.debug?.(`connection refused: ${maxConnections} connections open`);
    // The answer is written before any request is read; HTTP clients take it as the answer to the request
    // they are sending. A client that keeps the socket open anyway is cut after a second.
    socket.setTimeout(1000, () => socket.destroy());
    socket.on("error", () => {
      // Why safe: the peer reset a connection we were refusing anyway.
    });
    socket.end(
      `HTTP/1.1 503 Service Unavailable\r\nretry-after: ${CONNECTION_RETRY_AFTER_S}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(refusal)}\r\n\r\n${refusal}`,
    );
  };

  const server = createServer(
    {
      maxHeaderSize: 64 * 1024,
      // Also bounds a slow body ("slow POST"): the whole request must arrive in time, or 408 and close.
      requestTimeout,
      headersTimeout,
      keepAliveTimeout: 10_000,
      // node:http checks the two timeouts on this period; tests with short timeouts need a finer one.
      connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(headersTimeout / 4))),
    },
    (req, res) => {
      if (refused.has(req.socket)) return;
      used.add(req.socket);
      handle(req, res).catch((error: unknown) => {
        logger.error("unhandled error while answering a request", error);
        if (!res.headersSent) res.destroy();
      });
    },
  );
  // Runs before node:http's own listener, so an over-the-cap socket is refused before anything is parsed.
  server.prependListener("connection", (socket: Socket) => {
    if (connections >= maxConnections) {
      refuseConnection(socket);
      return;
    }
    connections++;
    sockets.add(socket);
    socket.once("close", () => {
      connections--;
      sockets.delete(socket);
    });
  });
  server.maxConnections = maxConnections + REFUSAL_HEADROOM;
  server.on("drop", () => logger.debug?.("connection dropped: no room even to refuse it"));
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    // A client that resets or leaves is no error of ours; nothing can be answered.
    if (error.code === "ECONNRESET" || !socket.writable) {
      logger.debug?.(`client connection failed (${error.code ?? error.message}); dropped`);
      socket.destroy();
      return;
    }
    // Too slow (headersTimeout/requestTimeout): 408 and close, as node:http would without this listener.
    if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      logger.debug?.("client too slow to send its request; answered 408");
      socket.end(
        'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-type: application/json\r\n\r\n{"detail":"request not received in time; send headers and body without pausing"}',
      );
      return;
    }
    // Malformed HTTP (bad request line, oversized headers): answer 400 and drop the connection.
    socket.end(
      'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: application/json\r\n\r\n{"detail":"malformed HTTP request"}',
    );
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  }).catch(async (error: unknown) => {
    // A store this call opened (a PostgreSQL pool keeps the process alive) goes with the failed start.
    if (!options.store) await store.close();
    throw error;
  });

  const sweep = () => service.sweep();
  const sweepMs = options.sweepIntervalMs ?? 60_000;
  const timer =
    sweepMs > 0
      ? setInterval(() => {
          sweep().catch((error: unknown) => {
            logger.error("purge sweep failed (will retry on the next tick)", error);
          });
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
    stats: () => ({ connections, longPolls: waiters.admitted }),
    close() {
      closing ??= (async () => {
        stopping = true;
        if (timer) clearInterval(timer);
        waiters.close();
        // In-flight requests finish; connections that turn idle meanwhile are closed on the next tick of
        // this bounded loop, and anything still open after 10 s is cut.
        const closeIdle = () => {
          server.closeIdleConnections();
          for (const socket of sockets) if (!used.has(socket)) socket.destroy();
        };
        const idle = setInterval(closeIdle, 50);
        const force = setTimeout(() => server.closeAllConnections(), 10_000);
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          closeIdle();
        });
        clearInterval(idle);
        clearTimeout(force);
        await store.close();
      })();
      return closing;
    },
  };
}
