// The hub's process for bench:peers: one relay account runtime that reports when every peer shows trusted, then
// answers the orchestrator's requests (idle CPU window, read latencies, RSS, stop) over IPC. Run as plain
// JavaScript built by hub-build.ts, so what it measures is the plugin's code, not a TypeScript loader's.
import { readFileSync } from "node:fs";
import { resolveAccounts } from "../../src/config.js";
import { startAccountRuntime } from "../../src/runtime/account-runtime.js";

export const HUB = "hub";

export type ToHub = { type: "idle-start" } | { type: "idle-end" } | { type: "measure" } | { type: "stop" };
export type FromHub =
  | { type: "settled"; seconds: number }
  | { type: "idle"; cpuSeconds: number; wakeUps: number }
  | { type: "measured"; statusMs: number; peersMs: number; rssMb: number }
  | { type: "stopped" }
  | { type: "failed"; message: string };

/** How often this process's main thread (its event loop) has gone to sleep and been woken: voluntary switches. */
export function wakeUpsSoFar(): number {
  try {
    const status = readFileSync("/proc/thread-self/status", "utf8");
    return Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? Number.NaN);
  } catch {
    return Number.NaN;
  }
}

function p50(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN;
}

export async function runHub(): Promise<void> {
  const { registryUrl, stateRoot, expected } = JSON.parse(process.env.BENCH_HUB ?? "{}") as {
    registryUrl: string;
    stateRoot: string;
    expected: number;
  };
  const send = (message: FromHub) => process.send?.(message);
  const [account] = resolveAccounts(
    { registryUrl, transport: "relay", accounts: { [HUB]: { hostname: HUB } } },
    {},
  );
  const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };
  const started = performance.now();
  const runtime = await startAccountRuntime({ account: account!, stateRoot, log: quiet });
  const deadline = started + 600_000;
  while (runtime.status().messaging.peers.trusted < expected) {
    if (performance.now() > deadline) {
      send({
        type: "failed",
        message: `only ${runtime.status().messaging.peers.trusted} of ${expected} trusted`,
      });
      process.exit(1);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  send({ type: "settled", seconds: (performance.now() - started) / 1000 });

  let idleFrom = process.cpuUsage();
  let wakeUpsFrom = wakeUpsSoFar();
  process.on("message", async (message: ToHub) => {
    if (message.type === "idle-start") {
      idleFrom = process.cpuUsage();
      wakeUpsFrom = wakeUpsSoFar();
    }
    if (message.type === "idle-end") {
      const used = process.cpuUsage(idleFrom);
      send({
        type: "idle",
        cpuSeconds: (used.user + used.system) / 1e6,
        wakeUps: wakeUpsSoFar() - wakeUpsFrom,
      });
    }
    if (message.type === "measure") {
      const timed = (read: () => unknown) =>
        p50(
          Array.from({ length: 51 }, () => {
            const t = performance.now();
            read();
            return performance.now() - t;
          }),
        );
      const statusMs = timed(() => runtime.status());
      const peersMs = timed(() => runtime.network.peers());
      // After GC: twice, a moment apart, so the heap V8 no longer needs is handed back before RSS is read.
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      gc?.();
      send({ type: "measured", statusMs, peersMs, rssMb: process.memoryUsage().rss / 2 ** 20 });
    }
    if (message.type === "stop") {
      await runtime.stop();
      send({ type: "stopped" });
      process.disconnect();
    }
  });
}

if (process.argv.includes("--hub")) await runHub();
