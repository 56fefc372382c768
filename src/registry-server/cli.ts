// Command line of the reference registry: `agent-registry serve [options]`. Prints one line with the URL when
// ready; SIGTERM/SIGINT finish in-flight requests, close storage and exit 0.
import { parseArgs } from "node:util";
import { startRegistryServer } from "./server.js";

const USAGE = `usage: agent-registry serve [--host 127.0.0.1] [--port 8001] [--db PATH|:memory:] [--api-key KEY]
                            [--ttl SECONDS] [--agent-tokens on|off] [--require-trust on|off]
                            [--inbox-max-messages N] [--inbox-max-bytes BYTES] [--send-rate PER_MINUTE]
                            [--send-burst N]
  --host            interface to bind (default 127.0.0.1)
  --port            TCP port, 0 = ephemeral (default 8001)
  --db              SQLite file, or :memory: (default agent-registry.db)
  --api-key         deployment key required as X-Registry-Key (or env AGENT_REGISTRY_API_KEY)
  --ttl             seconds without heartbeat before an agent is offline (default 180)
  --agent-tokens    issue agent tokens and require them to act as an agent (default on)
  --require-trust   relay messages need approved trust (default off)
  --inbox-max-messages  unacknowledged messages one relay inbox may hold, 0 = no limit (default 1000)
  --inbox-max-bytes     stored body bytes one relay inbox may hold, 0 = no limit (default 33554432 = 32 MiB)
  --send-rate       relay sends a minute per sender installation, 0 = no limit (default 120)
  --send-burst      relay sends a sender may make at once (default 60)`;

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
    db: get("db") ?? "agent-registry.db",
    apiKey: get("api-key") ?? (env.AGENT_REGISTRY_API_KEY || undefined),
    ttlSeconds: integer("ttl", get("ttl"), 180, 1, 7 * 24 * 3600),
    agentTokens: onOff("agent-tokens", get("agent-tokens"), true),
    requireTrust: onOff("require-trust", get("require-trust"), false),
    inboxMaxMessages: integer("inbox-max-messages", get("inbox-max-messages"), 1000, 0, 10_000_000),
    inboxMaxBytes: integer("inbox-max-bytes", get("inbox-max-bytes"), 32 * 1024 * 1024, 0, 2 ** 42),
    sendRatePerMinute: integer("send-rate", get("send-rate"), 120, 0, 1_000_000),
    sendBurst: integer("send-burst", get("send-burst"), 60, 1, 1_000_000),
  };
}

/** Runs the CLI; resolves with the exit code once the server has stopped (or at once on a usage error). */
export async function runCli(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
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
      `agent-registry: cannot start on ${options.host}:${options.port} with db ${options.db}: ${(error as Error).message}; pick another --port or --db\n`,
    );
    return 1;
  }
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
