// Test world for the relay transport: the reference registry on 127.0.0.1 (real HTTP, port 0, SQLite file in a
// temp dir), two registered installations with their tokens, and a recording inbound sink.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRegistryClient, type RegistryClient } from "../../../src/adapters/registry/client.js";
import { createMemoryCursorStore } from "../../../src/adapters/relay/relay-inbox.js";
import type { InboundOutcome, InboundSink, RawInbound } from "../../../src/adapters/transport/transport.js";
import {
  type RegistryServerHandle,
  type RegistryServerOptions,
  startRegistryServer,
} from "../../../src/registry-server/server.js";
import {
  type RelayReceiver,
  type RelayReceiverOptions,
  startRelayReceiver,
} from "../../support/inbox-loops.js";

export { type RelayReceiver, type RelayReceiverOptions, startRelayReceiver };

export interface Installation {
  /** Secret: only this installation uses it (as itself, with its token). */
  installationId: string;
  /** What other agents address it by (records, messages and trust lists show this). */
  peerId: string;
  hostname: string;
  token: string | null;
  client: RegistryClient;
}

export interface RelayWorld {
  dir: string;
  dbPath: string;
  server: RegistryServerHandle;
  url: string;
  alpha: Installation;
  beta: Installation;
  /** Stops the registry (same port and db file kept for restart()). */
  stop(): Promise<void>;
  /** Starts the registry again on the same port with the same db file. */
  restart(): Promise<void>;
  cleanup(): Promise<void>;
}

const quietLogger = { info: () => {}, error: () => {} };

export async function startRelayWorld(
  options: { requireTrust?: boolean; trusted?: boolean; server?: RegistryServerOptions } = {},
): Promise<RelayWorld> {
  const dir = mkdtempSync(join(tmpdir(), "relay-test-"));
  const dbPath = join(dir, "registry.db");
  const serverOptions = {
    host: "127.0.0.1",
    db: dbPath,
    requireTrust: options.requireTrust ?? true,
    sweepIntervalMs: 0,
    logger: quietLogger,
    ...options.server,
  };
  let server = await startRegistryServer({ ...serverOptions, port: 0 });
  const port = server.port;
  let running = true;
  const url = server.url;

  async function register(hostname: string, installationId: string): Promise<Installation> {
    // Short timeouts: tests stop the registry and must see failures quickly.
    const client = createRegistryClient({ baseUrl: url, timeoutMs: 2_000 });
    const { agentToken, record } = await client.register({ hostname, installationId, capabilities: [] });
    return { installationId, peerId: record.peerId ?? installationId, hostname, token: agentToken, client };
  }
  const alpha = await register("alpha", "inst-alpha");
  const beta = await register("beta", "inst-beta");
  if (options.trusted) {
    await alpha.client.requestTrust(
      { fromId: alpha.installationId, toId: beta.peerId, introduction: "hi" },
      { token: alpha.token },
    );
    await beta.client.approveTrust(
      { fromId: alpha.peerId, toId: beta.installationId },
      { token: beta.token },
    );
  }

  const world: RelayWorld = {
    dir,
    dbPath,
    get server() {
      return server;
    },
    url,
    alpha,
    beta,
    async stop() {
      if (!running) return;
      running = false;
      await server.close();
    },
    async restart() {
      if (running) return;
      server = await startRegistryServer({ ...serverOptions, port });
      running = true;
    },
    async cleanup() {
      await world.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return world;
}

/** Records every message it is given; dedupes by message id like the real pipeline; outcomes scriptable. */
export class RecordingSink implements InboundSink {
  readonly seen: RawInbound[] = [];
  readonly dispatched: RawInbound[] = [];
  readonly keys = new Set<string>();
  /** Next outcomes to return, first to last; when empty, `dispatched` (or `duplicate` for a known id). */
  readonly script: InboundOutcome[] = [];
  #waiters: Array<{ count: number; resolve: () => void }> = [];

  async process(raw: RawInbound): Promise<InboundOutcome> {
    this.seen.push(raw);
    const scripted = this.script.shift();
    let outcome: InboundOutcome;
    if (scripted !== undefined) outcome = scripted;
    else if (this.keys.has(raw.ref)) outcome = "duplicate";
    else outcome = "dispatched";
    if (outcome === "dispatched") {
      this.keys.add(raw.ref);
      this.dispatched.push(raw);
    }
    this.#wake();
    return outcome;
  }

  /** Resolves once `count` messages were dispatched; rejects after `ms`. */
  waitForDispatched(count: number, ms = 5_000): Promise<void> {
    if (this.dispatched.length >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${this.dispatched.length}/${count} dispatched after ${ms} ms`)),
        ms,
      );
      this.#waiters.push({
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Resolves once `count` messages were seen (any outcome); rejects after `ms`. */
  async waitForSeen(count: number, ms = 5_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.seen.length < count) {
      if (Date.now() > deadline) throw new Error(`only ${this.seen.length}/${count} seen after ${ms} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  #wake(): void {
    const n = this.dispatched.length;
    this.#waiters = this.#waiters.filter((w) => {
      if (n >= w.count) {
        w.resolve();
        return false;
      }
      return true;
    });
  }
}

/** Backoffs short enough for tests. */
export const FAST_BACKOFF = { initialMs: 20, maxMs: 200, factor: 2 };

const receivers: RelayReceiver[] = [];

/** A receiver of beta's inbox (memory cursor, fast backoffs); `closeReceivers()` stops every one started. */
export function betaReceiver(
  w: RelayWorld,
  sink: RecordingSink,
  extra: Partial<RelayReceiverOptions> = {},
): RelayReceiver {
  const receiver = startRelayReceiver({
    client: w.beta.client,
    installationId: w.beta.installationId,
    agentToken: () => w.beta.token,
    sink,
    cursorStore: createMemoryCursorStore(),
    waitSeconds: 25,
    backoff: FAST_BACKOFF,
    retryBackoff: FAST_BACKOFF,
    ...extra,
  });
  receivers.push(receiver);
  return receiver;
}

export async function closeReceivers(): Promise<void> {
  for (const r of receivers.splice(0)) await r.close();
}
