// The inbox bench's sections: real files, a real watcher, the real pipeline and receiver, and a dispatcher that
// only records when each message arrived. The baseline replays the original plugin's inbox handling (a poll
// every 15 s that reads every file with `pilotctl inbox`, dispatches, then `pilotctl inbox --clear`) against
// the fake pilotctl, with messages arriving throughout, to count what that approach loses.
import { type ChildProcess, fork } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import {
  createInboundPipeline,
  type InboundIdentity,
  type InboundPipeline,
} from "../../src/adapters/inbound/pipeline.js";
import { inboxDir } from "../../src/adapters/pilot/inbox.js";
import { createPilotctl } from "../../src/adapters/pilot/pilotctl.js";
import { openAccountDb } from "../../src/adapters/state/account-db.js";
import { decodeMessage, isEnvelope } from "../../src/adapters/transport/envelope.js";
import { generateIdentity, type Identity } from "../../src/identity/keys.js";
import { fakePilotctlPath } from "../../test/fixtures/fake-pilot/network.js";
import { inboxFileJson, inboxFileName, senderKey, type WriterJob } from "./inbox-writer.js";
import { type PilotReceiver, startPilotReceiver } from "./receivers.js";
import { type BenchResult, type BenchSection, percentile, round } from "./section.js";

const here = dirname(fileURLToPath(import.meta.url));
const writerScript = join(here, "inbox-writer.ts");

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${raw}`);
  return value;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`bench: ${what} did not happen within ${timeoutMs} ms`);
    // Coarse on purpose: latencies are stamped by the dispatcher; this loop only costs CPU the receiver needs.
    await sleep(20);
  }
}

function msSince(sentAtNs: string): number {
  return Number(process.hrtime.bigint() - BigInt(sentAtNs)) / 1e6;
}

interface Harness {
  root: string;
  inbox: string;
  pipeline: InboundPipeline;
  receiver: PilotReceiver;
  latencies: number[];
  keys: Set<string>;
  close(): Promise<void>;
}

/** Message authentication as an account runs it: each sender's key pinned to its node (bench "signed"). */
interface SignedSetup {
  keysDir: string;
  self: Identity;
  peers: number;
}

function startHarness(name: string, signed?: SignedSetup): Harness {
  const root = mkdtempSync(join(tmpdir(), `bench-inbox-${name}-`));
  const home = join(root, "home");
  const inbox = inboxDir(home);
  mkdirSync(inbox, { recursive: true });
  const latencies: number[] = [];
  const keys = new Set<string>();
  const db = openAccountDb(join(root, "state"));
  const pipeline = createInboundPipeline({
    processedKeys: db.processedKeys(),
    policy: { allowFrom: [], blockFrom: [], maxMessageBytes: 65_536, ratePerMinute: 10_000 },
    isTrusted: () => true,
    lookupHostname: async () => null,
    dispatch: async (message) => {
      latencies.push(msSince(message.text));
      keys.add(message.key);
    },
    ...(signed ? { identity: pinnedIdentity(signed) } : {}),
  });
  const receiver = startPilotReceiver({ home, sink: pipeline });
  return {
    root,
    inbox,
    pipeline,
    receiver,
    latencies,
    keys,
    async close() {
      await receiver.close();
      pipeline.close();
      db.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** The pipeline's identity dep over a fixed table: sender n is node n, its key pinned. */
function pinnedIdentity(setup: SignedSetup): InboundIdentity {
  const pinned = new Map<number, string>();
  const byKey = new Map<string, string>();
  for (let n = 1; n <= setup.peers; n++) {
    const key = senderKey(setup.keysDir, n).publicKey;
    pinned.set(n, key);
    byKey.set(key, `peer-${n}`);
  }
  return {
    publicKey: setup.self.publicKey,
    hostname: "bench",
    lookup: (from, key) => {
      const hostname = key ? byKey.get(key) : undefined;
      return {
        pinnedTo: hostname ? { hostname, suspended: false } : null,
        transportPeer: { key: pinned.get(from.nodeId ?? -1) ?? null, suspended: false },
      };
    },
    keyChanged: () => undefined,
    offered: () => undefined,
  };
}

function startWriter(job: WriterJob): { child: ChildProcess; done: Promise<void> } {
  const child = fork(writerScript, [JSON.stringify(job)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const done = new Promise<void>((resolve, reject) => {
    child.once("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`inbox writer exited with ${code}`)),
    );
  });
  return { child, done };
}

/** The unsigned run's p50, for the signed run to report what signing adds (same process, same pace). */
let unsignedP50: number | null = null;

/**
 * File written (non-atomically, by another process) -> dispatched, at a steady pace. `signed`: each envelope is
 * signed by its sender (clock started before signing) and checked against the pinned key before dispatch.
 */
function latencyRun(signed: boolean): BenchSection {
  const name = signed ? "signed" : "latency";
  const prefix = signed ? "signed_" : "";
  return {
    name,
    async run(): Promise<BenchResult> {
      const count = envNumber("BENCH_LATENCY_MESSAGES", 1_000);
      const intervalMs = envNumber("BENCH_LATENCY_INTERVAL_MS", 2);
      const peers = 10;
      const keysDir = mkdtempSync(join(tmpdir(), "bench-inbox-keys-"));
      const self = generateIdentity();
      const h = startHarness(name, signed ? { keysDir, self, peers } : undefined);
      try {
        await h.receiver.scan();
        const cpu0 = process.cpuUsage();
        const loopDelay = monitorEventLoopDelay({ resolution: 5 });
        loopDelay.enable();
        const writer = startWriter({
          dir: h.inbox,
          count,
          intervalMs,
          prefix: "lat",
          peers,
          ...(signed ? { signed: { keysDir, to: self.publicKey } } : {}),
        });
        await writer.done;
        await until(() => h.keys.size >= count, 30_000, `dispatch of ${count} messages`);
        const cpu = process.cpuUsage(cpu0);
        loopDelay.disable();
        const cpuPerMessageMs = (cpu.user + cpu.system) / 1000 / count;
        const totals = h.receiver.totals();
        const sorted = [...h.latencies].sort((a, b) => a - b);
        const p50 = percentile(sorted, 50);
        const p99 = percentile(sorted, 99);
        const left = readdirSync(h.inbox).length;
        if (!signed) unsignedP50 = p50;
        const overhead = signed && unsignedP50 !== null ? p50 - unsignedP50 : null;
        return {
          rows: [
            ...(overhead === null
              ? []
              : [
                  {
                    metric: "signing + verification added to p50 (vs the unsigned run)",
                    value: `${round(overhead)} ms`,
                    target: "< 1 ms",
                    ok: overhead < 1,
                  },
                ]),
            {
              metric: `${signed ? "signed " : ""}latency p50 (${count} msgs, 1 per ${intervalMs} ms)`,
              value: `${round(p50)} ms`,
              target: "< 20 ms",
              ok: p50 < 20,
            },
            { metric: "latency p99", value: `${round(p99)} ms`, target: "< 100 ms", ok: p99 < 100 },
            { metric: "latency max", value: `${round(sorted.at(-1) ?? Number.NaN)} ms` },
            {
              metric: "receiver CPU per message (watcher, read, pipeline, delete)",
              value: `${round(cpuPerMessageMs, 3)} ms (${Math.round((cpu.system / Math.max(1, cpu.user + cpu.system)) * 100)} % in the kernel)`,
            },
            {
              // A long stall here is this process (GC, a blocking syscall); stalls beyond it are the host's scheduler.
              metric: "event loop delay p99 / max (this process)",
              value: `${round(loopDelay.percentile(99) / 1e6)} / ${round(loopDelay.max / 1e6)} ms`,
            },
            {
              metric: "scans / file reads per message",
              value: `${round(totals.passes / count)} / ${round(totals.files / count)}`,
            },
            {
              metric: "dispatched exactly once / files left",
              value: `${h.latencies.length === count && h.keys.size === count ? "yes" : "NO"} / ${left}`,
              ok: h.latencies.length === count && left === 0,
            },
          ],
          json: {
            [`${prefix}latency_p50_ms`]: round(p50),
            [`${prefix}latency_p99_ms`]: round(p99),
            ...(overhead === null ? {} : { signing_overhead_p50_ms: round(overhead) }),
          },
        };
      } finally {
        await h.close();
        rmSync(keysDir, { recursive: true, force: true });
      }
    },
  };
}

export const latencySection = latencyRun(false);
export const signedLatencySection = latencyRun(true);

/** A backlog already present when the receiver starts. */
export const backlogSection: BenchSection = {
  name: "backlog",
  async run(): Promise<BenchResult> {
    const count = envNumber("BENCH_BACKLOG_MESSAGES", 10_000);
    const root = mkdtempSync(join(tmpdir(), "bench-inbox-backlog-files-"));
    const job = { prefix: "backlog", peers: 100 };
    // Written before the receiver exists (by this process: it is idle meanwhile, nothing to measure).
    const staging = inboxDir(join(root, "home"));
    mkdirSync(staging, { recursive: true });
    const h = startHarnessLater();
    try {
      const sentAt = process.hrtime.bigint();
      for (let i = 0; i < count; i++)
        writeFileSync(join(staging, inboxFileName(i)), inboxFileJson(job, i, sentAt));
      const started = performance.now();
      const harness = h.start(join(root, "home"));
      await until(() => harness.keys.size >= count, 120_000, `dispatch of a ${count}-file backlog`);
      const seconds = (performance.now() - started) / 1000;
      const rate = count / seconds;
      await until(() => readdirSync(staging).length === 0, 10_000, "deletion of the backlog");
      return {
        rows: [
          {
            metric: `backlog throughput (${count} files at start)`,
            value: `${Math.round(rate)} msgs/s (${round(seconds, 1)} s)`,
            target: ">= 1000 msgs/s",
            ok: rate >= 1000,
          },
          {
            metric: "backlog dispatched exactly once",
            value: harness.latencies.length === count ? "yes" : `NO (${harness.latencies.length})`,
            ok: harness.latencies.length === count,
          },
        ],
        json: { backlog_msgs_per_s: Math.round(rate) },
      };
    } finally {
      await h.close();
      rmSync(root, { recursive: true, force: true });
    }
  },
};

/** A harness whose receiver starts on an existing home (the backlog must be in place first). */
function startHarnessLater(): { start(home: string): Harness; close(): Promise<void> } {
  let harness: Harness | undefined;
  let state: string | undefined;
  return {
    start(home) {
      state = mkdtempSync(join(tmpdir(), "bench-inbox-backlog-state-"));
      const latencies: number[] = [];
      const keys = new Set<string>();
      const db = openAccountDb(state);
      const pipeline = createInboundPipeline({
        processedKeys: db.processedKeys(),
        policy: { allowFrom: [], blockFrom: [], maxMessageBytes: 65_536, ratePerMinute: 10_000 },
        isTrusted: () => true,
        lookupHostname: async () => null,
        dispatch: async (message) => {
          latencies.push(0);
          keys.add(message.key);
        },
      });
      const receiver = startPilotReceiver({ home, sink: pipeline });
      harness = {
        root: state,
        inbox: inboxDir(home),
        pipeline,
        receiver,
        latencies,
        keys,
        async close() {
          await receiver.close();
          pipeline.close();
          db.close();
        },
      };
      return harness;
    },
    async close() {
      await harness?.close();
      if (state) rmSync(state, { recursive: true, force: true });
    },
  };
}

/** CPU of a receiver with nothing to do: its watcher plus the poll machine's own 15 s interval cycle. */
export const idleSection: BenchSection = {
  name: "idle",
  async run(): Promise<BenchResult> {
    const seconds = envNumber("BENCH_IDLE_SECONDS", 60);
    const h = startHarness("idle");
    try {
      await h.receiver.scan();
      await sleep(500);
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await sleep(seconds * 1000);
      const cpu = process.cpuUsage(cpu0);
      const wallMs = performance.now() - t0;
      const pct = ((cpu.user + cpu.system) / 1000 / wallMs) * 100;
      return {
        rows: [
          {
            metric: `idle CPU over ${seconds} s (whole bench process)`,
            value: `${round(pct, 3)} % of a core`,
            target: "< 0.5 %",
            ok: pct < 0.5,
          },
        ],
        json: { idle_cpu_pct: round(pct, 3) },
      };
    } finally {
      await h.close();
    }
  },
};

/**
 * The original plugin: every 15 s `pilotctl inbox` (read everything), dispatch each message, then
 * `pilotctl inbox --clear`, which also deletes whatever arrived after the read. Real time, a smaller sample:
 * 200 messages at a steady pace over 30 s, polls at 15, 30 and 45 s.
 */
export const baselineSection: BenchSection = {
  name: "baseline",
  async run(): Promise<BenchResult> {
    const count = envNumber("BENCH_BASELINE_MESSAGES", 200);
    const spanMs = envNumber("BENCH_BASELINE_SECONDS", 30) * 1000;
    const pollMs = envNumber("BENCH_BASELINE_POLL_SECONDS", 15) * 1000;
    const dispatchMs = Number(process.env.BENCH_BASELINE_DISPATCH_MS ?? "25");
    const root = mkdtempSync(join(tmpdir(), "bench-inbox-baseline-"));
    const home = join(root, "home");
    const state = join(root, "fake-state");
    mkdirSync(state, { recursive: true });
    const inbox = inboxDir(home);
    mkdirSync(inbox, { recursive: true });
    const env = { FAKE_PILOT_STATE: state, FAKE_PILOT_SHAPE: "old" };
    const ctl = createPilotctl({ binary: fakePilotctlPath, home, timeoutMs: 30_000, env });
    const latencies: number[] = [];
    const seen = new Set<string>();
    let windows = 0;
    let windowMs = 0;
    try {
      const writer = startWriter({
        dir: inbox,
        count,
        intervalMs: spanMs / count,
        prefix: "base",
        peers: 10,
      });
      let writerDone = false;
      void writer.done.then(() => {
        writerDone = true;
      });
      const start = performance.now();
      for (let poll = 1; poll <= 100; poll++) {
        const wait = start + poll * pollMs - performance.now();
        if (wait > 0) await sleep(wait);
        const readAt = performance.now();
        const messages = await ctl.listInbox();
        for (const m of messages) {
          const decoded = decodeMessage(m.data);
          if (!isEnvelope(decoded)) continue;
          latencies.push(msSince(decoded.envelope.body));
          seen.add(decoded.envelope.id);
          if (dispatchMs > 0) await sleep(dispatchMs);
        }
        await execa(fakePilotctlPath, ["--json", "inbox", "--clear"], {
          env: { ...env, HOME: home },
          reject: false,
        });
        windows++;
        windowMs += performance.now() - readAt;
        if (writerDone) break;
      }
      await writer.done;
      const lost = count - seen.size;
      const sorted = latencies.sort((a, b) => a - b);
      const p50 = percentile(sorted, 50);
      return {
        rows: [
          {
            metric: `baseline (15 s poll, read then clear): lost of ${count}`,
            value: String(lost),
            target: "our receiver: 0",
          },
          { metric: "baseline latency p50", value: `${round(p50)} ms` },
          {
            metric: `baseline read->clear window (mean of ${windows}, ${dispatchMs} ms per dispatch)`,
            value: `${round(windowMs / Math.max(1, windows))} ms`,
          },
        ],
        json: { baseline_latency_p50_ms: round(p50), baseline_lost: lost },
      };
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  },
};

export const inboxSections: BenchSection[] = [
  latencySection,
  signedLatencySection,
  backlogSection,
  idleSection,
  baselineSection,
];
