// Command line of the reference registry: `agent-registry serve [options]` prints one line with the URL when
// ready; SIGTERM/SIGINT finish in-flight requests, close storage and exit 0. `agent-registry release` is the
// operator's recovery for an agent that lost its token or its key (admin key from the environment, never an
// argument).
import { parseArgs } from "node:util";
import { isPostgresUrl } from "./open-store.js";
import { runMigrate } from "./postgres-migrations.js";
import { redactConnectionString } from "./postgres-store.js";
import {
  DEFAULT_HEADERS_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  startRegistryServer,
} from "./server.js";

const USAGE = `usage: agent-registry serve [--host 127.0.0.1] [--port 8001] [--db PATH|:memory:|postgres://...] [--api-key KEY]
                            [--ttl SECONDS] [--agent-tokens on|off] [--require-trust on|off]
                            [--release-after SECONDS] [--admin-key KEY]
                            [--max-connections N] [--headers-timeout SECONDS] [--request-timeout SECONDS]
                            [--max-long-polls N] [--max-long-polls-per-inbox N]
                            [--inbox-max-messages N] [--inbox-max-bytes BYTES] [--send-rate PER_MINUTE]
                            [--send-burst N]
       agent-registry migrate --db postgres://...
           applies the PostgreSQL store's pending schema migrations and exits (serve also does at start)
       agent-registry release --url URL --hostname HOSTNAME
           frees a hostname whose owner lost its agent token or its key: drops both, so the owner's next
           registration gets a new token and may bind a new key (tell the owner's peers to expect a new
           fingerprint). Admin key from env AGENT_REGISTRY_ADMIN_KEY, deployment key from env
           AGENT_REGISTRY_API_KEY
  --host            interface to bind (default 127.0.0.1)
  --port            TCP port, 0 = ephemeral (default 8001)
  --db              SQLite file, :memory:, or a postgres:// URL (default env DATABASE_URL, else agent-registry.db)
  --api-key         deployment key required as X-Registry-Key (or env AGENT_REGISTRY_API_KEY)
  --ttl             seconds without heartbeat before an agent is offline (default 180)
  --agent-tokens    issue agent tokens and require them to act as an agent (default on)
  --require-trust   relay messages need approved trust (default off)
  --release-after   seconds an offline or deregistered agent keeps its hostname and token (default 604800)
  --admin-key       operator key enabling POST /api/v1/admin/release (or env AGENT_REGISTRY_ADMIN_KEY)
  --max-connections        open connections at most; more get 503 (default 1024)
  --headers-timeout        seconds a client has to send its request headers (default 20)
  --request-timeout        seconds a client has to send its whole request (default 60)
  --max-long-polls         inbox long-polls parked at once; more get 503 (default 1000)
  --max-long-polls-per-inbox  long-polls parked at once on one inbox; more get 429 (default 4)
  --inbox-max-messages  unacknowledged messages one relay inbox may hold, 0 = no limit (default 1000)
  --inbox-max-bytes     stored body bytes one relay inbox may hold, 0 = no limit (default 33554432 = 32 MiB)
  --send-rate       relay sends a minute per sender installation, 0 = no limit (default 120)
  --send-burst      relay sends a sender may make at once (default 60)`;

const INSECURE_WARNING =
  "agent-registry: WARNING: INSECURE: --agent-tokens off: any client can re-register, move or delete any agent, " +
  "read its relay inbox and decide its trust; use it only for tests on a trusted machine\n";

export class CliUsageError extends Error {
  override readonly name = "CliUsageError";
}

export interface ServeOptions {
  host: string;
  port: number;
  db: string;
  apiKey: string | undefined;
  ttlSeconds: number;
  agentTokens: boolean;
  requireTrust: boolean;
  offlineRetentionSeconds: number;
  adminKey: string | undefined;
  maxConnections: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxLongPolls: number;
  maxLongPollsPerInbox: number;
  inboxMaxMessages: number;
  inboxMaxBytes: number;
  sendRatePerMinute: number;
  sendBurst: number;
}

const onOff = (flag: string, value: string | undefined, fallback: boolean): boolean => {
  if (value === undefined) return fallback;
  if (value === "on" || value === "true") return true;
  if (value === "off" || value === "false") return false;
  throw new CliUsageError(`--${flag} takes on or off, not '${value}'`);
};

const integer = (
  flag: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number => {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw new CliUsageError(`--${flag} takes a whole number from ${min} to ${max}, not '${value}'`);
  }
  return n;
};

export function parseServeArgs(args: string[], env: NodeJS.ProcessEnv = process.env): ServeOptions {
  const [command, ...rest] = args;
  if (command !== "serve")
    throw new CliUsageError(command ? `unknown command '${command}'` : "missing command");
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: "string" },
        port: { type: "string" },
        db: { type: "string" },
        "api-key": { type: "string" },
        ttl: { type: "string" },
        "agent-tokens": { type: "string" },
        "require-trust": { type: "string" },
        "release-after": { type: "string" },
        "admin-key": { type: "string" },
        "max-connections": { type: "string" },
        "headers-timeout": { type: "string" },
        "request-timeout": { type: "string" },
        "max-long-polls": { type: "string" },
        "max-long-polls-per-inbox": { type: "string" },
        "inbox-max-messages": { type: "string" },
        "inbox-max-bytes": { type: "string" },
        "send-rate": { type: "string" },
        "send-burst": { type: "string" },
      },
    }));
  } catch (error) {
    throw new CliUsageError((error as Error).message);
  }
  const get = (name: string) => values[name] as string | undefined;
  return {
    host: get("host") ?? "127.0.0.1",
    port: integer("port", get("port"), 8001, 0, 65535),
    db: get("db") ?? (env.DATABASE_URL || "agent-registry.db"),
    apiKey: get("api-key") ?? (env.AGENT_REGISTRY_API_KEY || undefined),
    ttlSeconds: integer("ttl", get("ttl"), 180, 1, 7 * 24 * 3600),
    agentTokens: onOff("agent-tokens", get("agent-tokens"), true),
    requireTrust: onOff("require-trust", get("require-trust"), false),
    offlineRetentionSeconds: integer(
      "release-after",
      get("release-after"),
      7 * 24 * 3600,
      0,
      365 * 24 * 3600,
    ),
    adminKey: get("admin-key") ?? (env.AGENT_REGISTRY_ADMIN_KEY || undefined),
    maxConnections: integer("max-connections", get("max-connections"), DEFAULT_MAX_CONNECTIONS, 1, 1_000_000),
    headersTimeoutMs:
      integer("headers-timeout", get("headers-timeout"), DEFAULT_HEADERS_TIMEOUT_MS / 1000, 1, 3600) * 1000,
    requestTimeoutMs:
      integer("request-timeout", get("request-timeout"), DEFAULT_REQUEST_TIMEOUT_MS / 1000, 1, 3600) * 1000,
    maxLongPolls: integer("max-long-polls", get("max-long-polls"), 1000, 1, 1_000_000),
    maxLongPollsPerInbox: integer("max-long-polls-per-inbox", get("max-long-polls-per-inbox"), 4, 1, 1000),
    inboxMaxMessages: integer("inbox-max-messages", get("inbox-max-messages"), 1000, 0, 10_000_000),
    inboxMaxBytes: integer("inbox-max-bytes", get("inbox-max-bytes"), 32 * 1024 * 1024, 0, 2 ** 42),
    sendRatePerMinute: integer("send-rate", get("send-rate"), 120, 0, 1_000_000),
    sendBurst: integer("send-burst", get("send-burst"), 60, 1, 1_000_000),
  };
}

export interface ReleaseOptions {
  url: string;
  hostname: string;
  adminKey: string;
  apiKey: string | undefined;
}

export function parseReleaseArgs(args: string[], env: NodeJS.ProcessEnv = process.env): ReleaseOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: args.slice(1),
      strict: true,
      allowPositionals: false,
      options: { url: { type: "string" }, hostname: { type: "string" } },
    }));
  } catch (error) {
    throw new CliUsageError((error as Error).message);
  }
  const url = values.url as string | undefined;
  const hostname = values.hostname as string | undefined;
  if (!url || !hostname) throw new CliUsageError("release needs --url and --hostname");
  const adminKey = env.AGENT_REGISTRY_ADMIN_KEY;
  // Not an argument: command lines are visible to every user of the machine (ps) and kept in shell history.
  if (!adminKey) throw new CliUsageError("set AGENT_REGISTRY_ADMIN_KEY to the registry's admin key");
  return { url, hostname, adminKey, apiKey: env.AGENT_REGISTRY_API_KEY || undefined };
}

/** Asks the registry to drop the ownership of a hostname; returns the exit code. */
async function runRelease(options: ReleaseOptions): Promise<number> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-registry-admin-key": options.adminKey,
  };
  if (options.apiKey) headers["x-registry-key"] = options.apiKey;
  const endpoint = `${options.url.replace(/\/+$/, "")}/api/v1/admin/release`;
  let res: Response;
  try {
    res = await fetch(endpoint, {
      method: "POST",
      headers,
      body: JSON.stringify({ hostname: options.hostname }),
      redirect: "manual",
    });
  } catch (error) {
    process.stderr.write(
      `agent-registry: cannot reach ${options.url}: ${(error as Error).message}; check --url\n`,
    );
    return 1;
  }
  const text = await res.text();
  let detail = text;
  try {
    const parsed = JSON.parse(text) as { detail?: unknown };
    if (parsed.detail !== undefined) detail = String(parsed.detail);
  } catch {
    // Why safe: a non-JSON reply (a proxy's error page) is shown as it came.
  }
  if (!res.ok) {
    process.stderr.write(`agent-registry: release failed (${res.status}): ${detail}\n`);
    return 1;
  }
  process.stdout.write(
    `released ${options.hostname}: its key is unbound and its token void; its next registration gets a fresh agent_token and may bind a new key\n`,
  );
  return 0;
}

/** The db setting as it may be shown: a PostgreSQL URL without its password. */
const describeDb = (db: string) => (isPostgresUrl(db) ? redactConnectionString(db) : db);

async function migrate(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let db: string | undefined;
  try {
    const { values } = parseArgs({
      args: args.slice(1),
      strict: true,
      allowPositionals: false,
      options: { db: { type: "string" } },
    });
    db = values.db ?? (env.DATABASE_URL || undefined);
    if (!db || !isPostgresUrl(db)) {
      throw new CliUsageError(
        "migrate needs --db postgres://... (or env DATABASE_URL); SQLite files migrate on open",
      );
    }
  } catch (error) {
    process.stderr.write(`agent-registry: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  try {
    const applied = await runMigrate(db);
    process.stdout.write(
      applied.length
        ? `applied migrations ${applied.join(", ")} to ${describeDb(db)}\n`
        : `${describeDb(db)} is up to date\n`,
    );
    return 0;
  } catch (error) {
    process.stderr.write(`agent-registry: cannot migrate ${describeDb(db)}: ${(error as Error).message}\n`);
    return 1;
  }
}

/** Runs the CLI; resolves with the exit code once the server has stopped (or at once on a usage error). */
export async function runCli(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args[0] === "migrate") return migrate(args);
  if (args[0] === "release") {
    let release: ReleaseOptions;
    try {
      release = parseReleaseArgs(args);
    } catch (error) {
      if (!(error instanceof CliUsageError)) throw error;
      process.stderr.write(`agent-registry: ${error.message}\n${USAGE}\n`);
      return 2;
    }
    return runRelease(release);
  }
  let options: ServeOptions;
  try {
    options = parseServeArgs(args);
  } catch (error) {
    if (!(error instanceof CliUsageError)) throw error;
    process.stderr.write(`agent-registry: ${error.message}\n${USAGE}\n`);
    return 2;
  }
  let server: Awaited<ReturnType<typeof startRegistryServer>>;
  try {
    server = await startRegistryServer({ ...options, apiKey: options.apiKey });
  } catch (error) {
    process.stderr.write(
      `agent-registry: cannot start on ${options.host}:${options.port} with db ${describeDb(options.db)}: ${(error as Error).message}; pick another --port or --db\n`,
    );
    return 1;
  }
  if (!options.agentTokens) process.stderr.write(INSECURE_WARNING);
  process.stdout.write(`agent-registry listening on ${server.url}\n`);
  return await new Promise<number>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
      server.close().then(
        () => resolve(0),
        (error: unknown) => {
          process.stderr.write(
            `agent-registry: error while stopping on ${signal}: ${(error as Error).message}\n`,
          );
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}
