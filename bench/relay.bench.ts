// Relay latency bench: the reference registry on 127.0.0.1 (its own process, SQLite file in a temp dir), two installations with
// approved trust, a relay receiver whose sink records arrival times, and 500 envelopes sent at a steady pace.
// Reports send -> sink latency (p50, p99). Run alone: `npx tsx bench/relay.bench.ts` (prints one JSON line).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createRegistryClient } from "../src/adapters/registry/client.js";
import { createMemoryCursorStore } from "../src/adapters/relay/relay-inbox.js";
import { createRelayTransport } from "../src/adapters/relay/relay-transport.js";
import { createEnvelope } from "../src/adapters/transport/envelope.js";
import type { InboundOutcome, RawInbound } from "../src/adapters/transport/transport.js";
import { startRegistryServer } from "../src/registry-server/server.js";
import { startRelayReceiver } from "./support/receivers.js";
import { startRegistryProcess } from "./support/registry-process.js";

export interface RelayBenchResult {
  relay_latency_p50_ms: number;
  relay_latency_p99_ms: number;
  relay_msgs: number;
}

export interface RelayBenchOptions {
  messages?: number;
  /** Gap between send starts (steady pace, default 20 ms = 50 msg/s; a slower registry lowers the rate). */
  intervalMs?: number;
  /** Run the registry as its own process (default) or inside this one. */
  registryProcess?: boolean;
  /** Extra lines for a human (achieved send rate); the result keeps only the merged keys. */
  report?: (line: string) => void;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

const round = (ms: number) => Math.round(ms * 100) / 100;

export async function runRelayBench(options: RelayBenchOptions = {}): Promise<RelayBenchResult> {
  const total = options.messages ?? 500;
  const intervalMs = options.intervalMs ?? 20;
  const dir = mkdtempSync(join(tmpdir(), "relay-bench-"));
  const db = join(dir, "registry.db");
  const server =
    (options.registryProcess ?? true)
      ? // No send rate limit: the bench sends 50 a second from one sender, far above the default 120 a minute.
        await startRegistryProcess(db, ["--require-trust", "on", "--send-rate", "0"])
      : await startRegistryServer({
          host: "127.0.0.1",
          port: 0,
          db,
          requireTrust: true,
          sendRatePerMinute: 0,
          sweepIntervalMs: 0,
          logger: { info: () => {}, error: () => {} },
        });
  const senderClient = createRegistryClient({ baseUrl: server.url });
  const receiverClient = createRegistryClient({ baseUrl: server.url });
  let stopReceiver: (() => Promise<void>) | null = null;
  try {
    const alpha = await senderClient.register({
      hostname: "alpha",
      installationId: "bench-alpha",
      capabilities: [],
    });
    const beta = await receiverClient.register({
      hostname: "beta",
      installationId: "bench-beta",
      capabilities: [],
    });
    await senderClient.requestTrust(
      { fromId: "bench-alpha", toId: "bench-beta", introduction: "bench" },
      { token: alpha.agentToken },
    );
    await receiverClient.approveTrust(
      { fromId: "bench-alpha", toId: "bench-beta" },
      { token: beta.agentToken },
    );

    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    // How long the registry took to store each message (the send's round trip): the floor of the latency.
    const sendMs: number[] = [];
    let resolveAll: () => void = () => {};
    const allArrived = new Promise<void>((resolve) => {
      resolveAll = resolve;
    });
    const sink = {
      async process(raw: RawInbound): Promise<InboundOutcome> {
        const started = sentAt.get(raw.ref);
        if (started === undefined) return "duplicate";
        sentAt.delete(raw.ref);
        latencies.push(performance.now() - started);
        if (latencies.length >= total) resolveAll();
        return "dispatched";
      },
    };
    const running = startRelayReceiver({
      client: receiverClient,
      installationId: "bench-beta",
      agentToken: () => beta.agentToken,
      sink,
      cursorStore: createMemoryCursorStore(),
    });
    stopReceiver = () => running.close();
    // Let the receiver park in its first long-poll.
    await new Promise((r) => setTimeout(r, 100));

    const transport = createRelayTransport({
      client: senderClient,
      self: { installationId: "bench-alpha", hostname: "alpha", agentToken: () => alpha.agentToken },
    });
    const to = { hostname: "beta", nodeId: null, installationId: "bench-beta" };
    const paceStart = performance.now();
    for (let i = 0; i < total; i++) {
      // Steady pace against a fixed schedule (a slow send is not followed by a burst).
      const due = paceStart + i * intervalMs;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const envelope = createEnvelope({ fromHostname: "alpha", body: `bench message ${i}` });
      const started = performance.now();
      sentAt.set(envelope.id, started);
      await transport.send(to, envelope);
      sendMs.push(performance.now() - started);
    }
    const sendSeconds = (performance.now() - paceStart) / 1000;
    const sendSorted = [...sendMs].sort((a, b) => a - b);
    options.report?.(
      `relay bench: ${total} sends in ${sendSeconds.toFixed(1)} s (${(total / sendSeconds).toFixed(1)} msg/s, target ${(1000 / intervalMs).toFixed(0)} msg/s); send round trip p50 ${round(percentile(sendSorted, 50))} ms, p99 ${round(percentile(sendSorted, 99))} ms`,
    );
    const timeout = new Promise<void>((_, reject) =>
      setTimeout(
        () => reject(new Error(`relay bench: only ${latencies.length}/${total} arrived in 30 s`)),
        30_000,
      ).unref(),
    );
    await Promise.race([allArrived, timeout]);

    const sorted = [...latencies].sort((a, b) => a - b);
    return {
      relay_latency_p50_ms: round(percentile(sorted, 50)),
      relay_latency_p99_ms: round(percentile(sorted, 99)),
      relay_msgs: latencies.length,
    };
  } finally {
    if (stopReceiver) await stopReceiver();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runRelayBench({ report: (line) => process.stderr.write(`${line}\n`) }).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`relay bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
