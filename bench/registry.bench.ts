// Benchmark of the reference Agent Registry: seeds 1,000,000 agents (--agents N) straight through the store
// (file db in a temp dir, 10,000 per transaction), starts the registry's CLI as a child process from a fresh
// JavaScript build of src/registry-server/ (as bin/agent-registry.mjs runs dist/ in a deployment; see
// support/registry-build.ts) and times it from spawn to listening (startup_s) and to its first answered search
// (index_ready_s), then measures over loopback with keep-alive node:http clients: search p50/p99 with 8
// concurrent clients (text, capability, both), by-hostname p50/p99, heartbeats/s with 50 concurrent clients,
// and the server's RSS; then fills one relay inbox to its quota with worst-case bodies (control characters,
// escaped 6x) and samples the server's RSS while 8 clients read it with maximal pages at once. Last line: one
// JSON object with the figures. The store and the number of server processes are parameters (--store,
// --replicas): `--store postgres --replicas N` (N >= 2) starts a PostgreSQL server of its own, seeds it with SQL
// batches, starts N server processes on it and spreads the clients over them, then measures relay wake-ups
// across replicas and a kill -9 of one replica under mixed load (see mainPostgres and docs/registry-server.md).

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { Agent, request } from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { parseArgs, promisify } from "node:util";
import pg from "pg";
import { issueToken } from "../src/registry-server/auth.js";
import { peerIdOf } from "../src/registry-server/peer-id.js";
import { SqliteDatabaseStore } from "../src/registry-server/sqlite-store.js";
import type { StoredAgent } from "../src/registry-server/store.js";
import { ownCpuMs, processCpuMs, processTreeCpuMs } from "./support/process-cpu.js";
import { buildRegistryServer } from "./support/registry-build.js";
import {
  type BenchPostgres,
  databaseSizeMiB,
  PostgresSeeder,
  searchRowOf,
  startBenchPostgres,
} from "./support/registry-postgres.js";

const execFileAsync = promisify(execFile);

/** What one run measures: which store, how many server processes, how much data and load. */
export interface BenchConfig {
  store: "sqlite" | "postgres";
  replicas: number;
  agents: number;
  searchesPerKind: number;
  searchClients: number;
  heartbeatSeconds: number;
}

const USAGE =
  "usage: npm run bench:registry -- [--agents N] [--store sqlite|postgres] [--replicas N] [--searches N] " +
  "[--search-clients N] [--heartbeat-seconds N]";

/** The command line (environment variables BENCH_AGENTS, BENCH_SEARCHES, BENCH_HEARTBEAT_SECONDS as defaults). */
export function parseBenchArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): BenchConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      agents: { type: "string" },
      store: { type: "string", default: "sqlite" },
      replicas: { type: "string", default: "1" },
      searches: { type: "string" },
      "search-clients": { type: "string", default: "8" },
      "heartbeat-seconds": { type: "string" },
    },
    strict: true,
  });
  const count = (name: string, text: string | undefined, fallback: number, min: number): number => {
    const n = text === undefined ? fallback : Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}; ${USAGE}`);
    return n;
  };
  const store = values.store;
  if (store !== "sqlite" && store !== "postgres")
    throw new Error(`--store must be sqlite or postgres; ${USAGE}`);
  const config: BenchConfig = {
    store,
    replicas: count("replicas", values.replicas, 1, 1),
    agents: count("agents", values.agents ?? env.BENCH_AGENTS, 1_000_000, 1_000),
    searchesPerKind: count("searches", values.searches ?? env.BENCH_SEARCHES, 800, 10),
    searchClients: count("search-clients", values["search-clients"], 8, 1),
    heartbeatSeconds: count(
      "heartbeat-seconds",
      values["heartbeat-seconds"] ?? env.BENCH_HEARTBEAT_SECONDS,
      10,
      1,
    ),
  };
  if (config.store === "sqlite" && config.replicas !== 1) {
    throw new Error(
      "--replicas: the SQLite store serves from one process; use --replicas 1 (or --store postgres for replicas)",
    );
  }
  if (config.store === "postgres" && config.replicas < 2) {
    throw new Error(
      "--store postgres needs --replicas 2 or more: its wake-up and fault phases send through one replica and read or kill another",
    );
  }
  return config;
}

const HEARTBEAT_CLIENTS = 50;
/** PostgreSQL run: closed-loop heartbeat clients per replica (the batcher answers once its batch commits). */
const HEARTBEAT_CLIENTS_PER_REPLICA = 40;
/** PostgreSQL run: long-poll wake-ups measured across replicas. */
const RELAY_WAKE_ROUNDS = 200;
const TOKENED_AGENTS = 2_000;
/** Agents per seeding transaction. */
const SEED_BATCH = 10_000;

// A small deterministic PRNG so every run seeds the same data.
let state = 0x9e3779b9;
const rand = () => {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) / 0x1_0000_0000;
};
const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;

const DOMAINS = [
  "translation",
  "code",
  "review",
  "legal",
  "medical",
  "finance",
  "travel",
  "music",
  "weather",
  "sports",
  "math",
  "physics",
  "chemistry",
  "biology",
  "history",
  "poetry",
  "writing",
  "editing",
  "research",
  "search",
  "support",
  "sales",
  "marketing",
  "design",
  "video",
  "audio",
  "image",
  "security",
  "devops",
  "database",
  "cloud",
  "mobile",
  "web",
  "gaming",
  "education",
  "tutoring",
  "cooking",
  "fitness",
  "gardening",
  "shopping",
];
const VERBS = [
  "assist",
  "analyze",
  "generate",
  "summarize",
  "translate",
  "schedule",
  "monitor",
  "plan",
  "audit",
];
const CAPABILITIES = DOMAINS.flatMap((d) => [d, ...VERBS.slice(0, 4).map((v) => `${d}-${v}`)]); // 200 names
const ADJECTIVES = [
  "quick",
  "calm",
  "bright",
  "silent",
  "brave",
  "clever",
  "gentle",
  "lucky",
  "mighty",
  "noble",
];
const NOUNS = [
  "otter",
  "falcon",
  "maple",
  "comet",
  "harbor",
  "lantern",
  "meadow",
  "pixel",
  "quartz",
  "river",
];
const WORDS = [
  ...DOMAINS,
  ...VERBS,
  ...ADJECTIVES,
  ...NOUNS,
  "helps",
  "with",
  "and",
  "for",
  "teams",
  "people",
  "documents",
  "questions",
  "reports",
  "projects",
  "daily",
  "fast",
  "accurate",
  "friendly",
  "multilingual",
  "experienced",
  "automated",
  "secure",
  "private",
  "open",
  "french",
  "german",
  "spanish",
  "japanese",
  "chinese",
  "arabic",
  "python",
  "rust",
  "typescript",
  "kotlin",
];

export interface Seeded {
  heartbeatAgents: Array<{ id: string; token: string; installationId: string; hostname: string }>;
  hostnames: string[];
  /** Microseconds per agent of the first and the last transaction: registration cost as the table grows. */
  firstBatchUs: number;
  lastBatchUs: number;
}

/** The i-th agent of the seeding (deterministic but for its random id): words drawn from the lists above. */
export function benchAgent(i: number, now: number, tokenHash: string | null = null): StoredAgent {
  const hostname = `${pick(ADJECTIVES)}-${pick(NOUNS)}-${i}`;
  const capabilities = [
    ...new Set(Array.from({ length: 2 + Math.floor(rand() * 5) }, () => pick(CAPABILITIES))),
  ];
  const description = Array.from({ length: 10 + Math.floor(rand() * 16) }, () => pick(WORDS)).join(" ");
  return {
    id: randomUUID(),
    hostname,
    installationId: `inst-${i}`,
    peerId: peerIdOf(`inst-${i}`),
    pilotNodeId: 1000 + i,
    pilotAddress: null,
    displayName: `${pick(ADJECTIVES)} ${pick(NOUNS)}`,
    description,
    capabilities,
    tokenHash,
    publicKey: null,
    signedRecord: null,
    lastSeen: now,
    createdAt: now,
    updatedAt: now,
  };
}

/** Search paths of each kind the bench measures, drawn from the seeding's word lists. */
export function searchPaths(n: number): { text: string[]; caps: string[]; both: string[] } {
  return {
    text: Array.from({ length: n }, () => `/api/v1/agents/search?q=${pick(WORDS)}`),
    caps: Array.from(
      { length: n },
      () => `/api/v1/agents/search?capabilities=${pick(CAPABILITIES)}&capabilities=${pick(CAPABILITIES)}`,
    ),
    both: Array.from(
      { length: n },
      () => `/api/v1/agents/search?q=${pick(WORDS)}&capabilities=${pick(DOMAINS)}`,
    ),
  };
}

export function seed(path: string, agents: number): Seeded {
  // A page cache the size of the table: the unique indexes (random ids, peer ids) are written at random
  // places, and with the default 16 MiB every insert past a few hundred thousand agents read pages from disk.
  const store = new SqliteDatabaseStore({ path, cacheMiB: 1024 });
  const now = Date.now();
  const heartbeatAgents: Array<{ id: string; token: string; installationId: string; hostname: string }> = [];
  const hostnames: string[] = [];
  let firstBatchUs = 0;
  let lastBatchUs = 0;
  for (let start = 0; start < agents; start += SEED_BATCH) {
    const end = Math.min(start + SEED_BATCH, agents);
    const t0 = performance.now();
    store.transaction(() => {
      for (let i = start; i < end; i++) {
        const token = i < TOKENED_AGENTS ? issueToken() : undefined;
        const agent = benchAgent(i, now, token?.hash ?? null);
        const hostname = agent.hostname;
        store.insertAgent(agent);
        if (token)
          heartbeatAgents.push({ id: agent.id, token: token.token, installationId: `inst-${i}`, hostname });
        if (i % 50 === 0 && hostnames.length < 20_000) hostnames.push(hostname);
      }
    });
    lastBatchUs = ((performance.now() - t0) * 1000) / (end - start);
    if (start === 0) firstBatchUs = lastBatchUs;
  }
  store.close();
  return { heartbeatAgents, hostnames, firstBatchUs, lastBatchUs };
}

interface Replica {
  proc: ChildProcess;
  url: string;
  /** Seconds from spawn to the "listening" line. */
  startupSeconds: number;
}

/** Server processes this run started and that have not exited: killed by PID if the run is interrupted. */
const children = new Set<ChildProcess>();

/**
 * The registry's server processes for `config` on the seeded database (one for SQLite), started one after
 * another so that each one's spawn-to-listening time is its own.
 */
async function startReplicas(
  config: BenchConfig,
  entry: string,
  db: string,
  flags: readonly string[] = [],
): Promise<Replica[]> {
  const replicas: Replica[] = [];
  for (let i = 0; i < config.replicas; i++) {
    const t0 = performance.now();
    const child = await startChild(entry, db, flags);
    replicas.push({ ...child, startupSeconds: (performance.now() - t0) / 1000 });
  }
  return replicas;
}

/** Seconds until a search is answered 200 (searches answer 503 while the index loads after a restart). */
async function untilSearchable(base: URL, deadlineMs = 600_000): Promise<void> {
  const deadline = performance.now() + deadlineMs;
  while (performance.now() < deadline) {
    if ((await call(base, "GET", "/api/v1/agents/search?q=zz&limit=1")) === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("the registry did not answer a search within 10 minutes of starting");
}

async function startChild(
  entry: string,
  db: string,
  flags: readonly string[] = [],
): Promise<{ proc: ChildProcess; url: string }> {
  // A day's ttl: seeding 1,000,000 agents takes minutes, and with the default 180 s they would all be
  // offline by the time they are searched.
  const proc = spawn(
    process.execPath,
    [entry, "serve", "--port", "0", "--db", db, "--ttl", "86400", ...flags],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  children.add(proc);
  proc.once("exit", () => children.delete(proc));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL"); // never leave a half-started server behind
      reject(new Error("registry did not start within 120 s"));
    }, 120_000);
    createInterface({ input: proc.stdout! }).once("line", (line) => {
      clearTimeout(timer);
      const url = /listening on (\S+)/.exec(line)?.[1];
      if (url) resolve(url);
      else reject(new Error(`unexpected line: ${line}`));
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`registry exited with ${code} before listening (its stderr is above)`));
    });
  });
  return { proc, url };
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: HEARTBEAT_CLIENTS });

function call(
  base: URL,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: base.hostname, port: base.port, method, path, headers, agent: keepAlive },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

/** Latency of each GET with `clients` clients at once, each sending its share of `paths` one after another. */
async function latencies(
  base: URL,
  paths: string[],
  clients: number,
): Promise<{ p50: number; p99: number; statuses: Set<number> }> {
  const times: number[] = [];
  const statuses = new Set<number>();
  for (const path of paths.slice(0, 20)) await call(base, "GET", path); // warm-up
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < paths.length) {
        const path = paths[next++]!;
        const t0 = performance.now();
        statuses.add(await call(base, "GET", path));
        times.push(performance.now() - t0);
      }
    }),
  );
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99), statuses };
}

async function heartbeats(
  base: URL,
  agents: Array<{ id: string; token: string }>,
  seconds: number,
): Promise<{ perSecond: number; errors: number }> {
  const deadline = performance.now() + seconds * 1000;
  let ok = 0;
  let errors = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: HEARTBEAT_CLIENTS }, async (_, client) => {
      for (let n = client; performance.now() < deadline; n += HEARTBEAT_CLIENTS) {
        const agent = agents[n % agents.length]!;
        const status = await call(base, "POST", `/api/v1/agents/${agent.id}/heartbeat`, {
          authorization: `Bearer ${agent.token}`,
        });
        if (status === 200) ok++;
        else errors++;
      }
    }),
  );
  return { perSecond: ok / ((performance.now() - t0) / 1000), errors };
}

/** The default quota of the registry (--inbox-max-bytes) and the largest body of control characters. */
const INBOX_QUOTA_BYTES = 32 * 1024 * 1024;
const INBOX_READERS = Number(process.env.BENCH_INBOX_READERS ?? 8);
const INBOX_MAX_BYTES = Number(process.env.BENCH_INBOX_MAX_BYTES ?? 4 * 1024 * 1024);

/**
 * Fills `installationId`'s relay inbox to its byte quota straight through the store (the rate limit would make
 * the HTTP way take minutes): bodies of 10,900 control characters and a little text, about 64 KiB as stored,
 * which is the worst case of escaping, then one body that takes the last bytes, so no send fits any more.
 * Returns how many messages it stored.
 */
function fillInbox(path: string, installationId: string): number {
  const store = new SqliteDatabaseStore({ path });
  const body = `${"\u0001".repeat(10_900)}${"x".repeat(130)}`;
  const bodyJson = JSON.stringify(body);
  let stored = 0;
  store.transaction(() => {
    while (store.inboxUsage(installationId).bytes + Buffer.byteLength(bodyJson) <= INBOX_QUOTA_BYTES) {
      store.insertMessage({
        messageId: `fill-${stored}`,
        toInstallationId: installationId,
        fromInstallationId: "inst-filler",
        fromHostname: "filler",
        bodyJson,
        createdAt: Date.now(),
      });
      stored++;
    }
    const left = INBOX_QUOTA_BYTES - store.inboxUsage(installationId).bytes;
    store.insertMessage({
      messageId: `fill-${stored++}`,
      toInstallationId: installationId,
      fromInstallationId: "inst-filler",
      fromHostname: "filler",
      bodyJson: JSON.stringify("x".repeat(left - 2)),
      createdAt: Date.now(),
    });
  });
  store.close();
  return stored;
}

/** GET that counts the response bytes; fresh connections, as 8 separate receivers would have. */
function getBytes(
  base: URL,
  path: string,
  token: string,
): Promise<{ status: number; bytes: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: base.hostname,
        port: base.port,
        method: "GET",
        path,
        headers: { authorization: `Bearer ${token}` },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const buffer = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, bytes: buffer.length, text: buffer.toString("utf8") });
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/**
 * 8 readers page through the full inbox at once (limit 100, max_bytes 4 MiB, following next_cursor), twice
 * over, while the server's RSS is sampled every 5 ms. Returns the peak, the largest page and the pages read.
 */
async function inboxReads(
  base: URL,
  pid: number,
  recipient: { installationId: string; token: string },
): Promise<{
  rssBefore: number;
  peakRss: number;
  largestPage: number;
  pages: number;
  messagesPerRead: number;
  statuses: Set<number>;
}> {
  const before = rssMiB(pid);
  let peakRss = before.rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, rssMiB(pid).rss);
  }, 5);
  let largestPage = 0;
  let pages = 0;
  let messages = 0;
  const statuses = new Set<number>();
  try {
    await Promise.all(
      Array.from({ length: INBOX_READERS }, async () => {
        for (let round = 0; round < 2; round++) {
          let after = "";
          for (;;) {
            const page = await getBytes(
              base,
              `/api/v1/agents/messages/inbox/${recipient.installationId}?limit=100&max_bytes=${INBOX_MAX_BYTES}${after ? `&after=${after}` : ""}`,
              recipient.token,
            );
            statuses.add(page.status);
            if (page.status !== 200) return;
            const body = JSON.parse(page.text) as { messages: unknown[]; next_cursor: string | null };
            if (body.messages.length === 0) break;
            largestPage = Math.max(largestPage, page.bytes);
            pages++;
            messages += body.messages.length;
            after = body.next_cursor ?? "";
          }
        }
      }),
    );
  } finally {
    clearInterval(sampler);
  }
  const after = rssMiB(pid);
  // VmHWM is the process's lifetime peak (loading included): it counts only if the reads raised it.
  if (after.hwm > before.hwm) peakRss = Math.max(peakRss, after.hwm);
  return {
    rssBefore: before.rss,
    peakRss,
    largestPage,
    pages,
    messagesPerRead: messages / (INBOX_READERS * 2),
    statuses,
  };
}

/** p50 of sends to the full inbox, each from its own sender (so the rate limit is not what answers): 507s. */
async function sendsToFullInbox(
  base: URL,
  senders: Array<{ installationId: string; hostname: string; token: string }>,
  toInstallationId: string,
): Promise<{ p50: number; statuses: Set<number> }> {
  const times: number[] = [];
  const statuses = new Set<number>();
  for (const sender of senders) {
    const body = JSON.stringify({
      from_installation_id: sender.installationId,
      from_hostname: sender.hostname,
      to_installation_id: toInstallationId,
      body: "one more",
    });
    const t0 = performance.now();
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: base.hostname,
          port: base.port,
          method: "POST",
          path: "/api/v1/agents/messages/send",
          agent: keepAlive,
          headers: {
            authorization: `Bearer ${sender.token}`,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    times.push(performance.now() - t0);
    statuses.add(status);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), statuses };
}

function rssMiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

/** A fixed CPU loop (10M comparisons, ~10 ms on an idle core) so figures from a busy machine can be read. */
function calibrationMs(): number {
  const values = new Float64Array(100_000);
  const t0 = performance.now();
  let n = 0;
  for (let k = 0; k < 100; k++) for (let i = 0; i < values.length; i++) if (values[i]! >= 0) n++;
  return n > 0 ? performance.now() - t0 : 0;
}

/** Size of the database file and its WAL, in MiB. */
function dbSizeMiB(db: string): number {
  let bytes = 0;
  for (const path of [db, `${db}-wal`]) {
    try {
      bytes += statSync(path).size;
    } catch {
      // No WAL file (checkpointed at close): nothing to add.
    }
  }
  return bytes / (1024 * 1024);
}

async function main(config: BenchConfig) {
  const dir = mkdtempSync(join(tmpdir(), "agent-registry-bench-"));
  let child: ChildProcess | undefined;
  try {
    const db = join(dir, "registry.db");
    // Built first, so the server measured is the source as it was when the run started.
    const entry = buildRegistryServer();
    const s0 = performance.now();
    const seeded = seed(db, config.agents);
    const { heartbeatAgents, hostnames } = seeded;
    const seedSeconds = (performance.now() - s0) / 1000;
    const dbSize = dbSizeMiB(db);
    const recipient = heartbeatAgents[0]!;
    const inboxMessages = fillInbox(db, recipient.installationId);
    const [replica] = await startReplicas(config, entry, db);
    child = replica!.proc;
    const base = new URL(replica!.url);
    const r0 = performance.now();
    await untilSearchable(base);
    const indexReadySeconds = replica!.startupSeconds + (performance.now() - r0) / 1000;

    const n = config.searchesPerKind;
    const { text, caps, both } = searchPaths(n);
    const byHost = Array.from({ length: n }, () => `/api/v1/agents/by-hostname/${pick(hostnames)}`);

    const clients = config.searchClients;
    // Warm-up, not measured: the first seconds after the load are spent collecting its garbage, and the
    // figures are meant for a server in its steady state (startup is measured above).
    const warmUp = searchPaths(100);
    await latencies(base, [...warmUp.text, ...warmUp.caps, ...warmUp.both], clients);
    const searchCalibration = calibrationMs();
    const rText = await latencies(base, text, clients);
    const rCaps = await latencies(base, caps, clients);
    const rBoth = await latencies(base, both, clients);
    const rHost = await latencies(base, byHost, clients);
    const hb = await heartbeats(base, heartbeatAgents, config.heartbeatSeconds);
    const mem = rssMiB(child.pid!);
    const full = await sendsToFullInbox(base, heartbeatAgents.slice(1, 201), recipient.installationId);
    const reads = await inboxReads(base, child.pid!, recipient);
    const calibration = calibrationMs();
    const load = loadavg()[0]!;

    const allSearch = [rText, rCaps, rBoth];
    const searchP50 = Math.max(...allSearch.map((r) => r.p50));
    const searchP99 = Math.max(...allSearch.map((r) => r.p99));
    const row = (name: string, r: { p50: number; p99: number; statuses: Set<number> }) =>
      `${name.padEnd(28)} ${r.p50.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)}   ${[...r.statuses].join(",")}`;
    console.log(
      `agents seeded: ${config.agents} in ${seedSeconds.toFixed(1)} s (file db, WAL; ${seeded.firstBatchUs.toFixed(1)} us/agent in the first transaction, ${seeded.lastBatchUs.toFixed(1)} in the last); db ${dbSize.toFixed(0)} MiB`,
    );
    console.log(
      `restart: listening after ${replica!.startupSeconds.toFixed(2)} s, searches answered after ${indexReadySeconds.toFixed(2)} s`,
    );
    console.log(
      `${"measure".padEnd(28)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)}   statuses (${clients} clients at once)`,
    );
    console.log(row("search q (1 word)", rText));
    console.log(row("search capabilities (2, any)", rCaps));
    console.log(row("search q + capability", rBoth));
    console.log(row("by-hostname", rHost));
    console.log(`heartbeats/s (50 clients)    ${hb.perSecond.toFixed(0)}   errors ${hb.errors}`);
    console.log(`server RSS                   ${mem.rss.toFixed(0)} MiB (peak ${mem.hwm.toFixed(0)} MiB)`);
    console.log(
      `relay inbox at quota          ${inboxMessages} messages of ~64 KiB escaped; sends to it: p50 ${full.p50.toFixed(2)} ms, statuses ${[...full.statuses].join(",")}`,
    );
    console.log(
      `inbox reads (${INBOX_READERS} at once)       server RSS ${reads.rssBefore.toFixed(0)} MiB before, peak ${reads.peakRss.toFixed(0)} MiB; ${reads.pages} pages, largest ${reads.largestPage} bytes, ${reads.messagesPerRead} messages per full read, statuses ${[...reads.statuses].join(",")}`,
    );
    console.log(
      `machine: load average ${load.toFixed(1)}, CPU calibration ${searchCalibration.toFixed(0)} ms before the searches, ${calibration.toFixed(0)} ms at the end (idle ~10 ms)`,
    );
    const round = (n: number) => Math.round(n * 100) / 100;
    console.log(
      JSON.stringify({
        store: config.store,
        replicas: config.replicas,
        agents: config.agents,
        search_clients: clients,
        search_p50_ms: round(searchP50),
        search_p99_ms: round(searchP99),
        search_text_p50_ms: round(rText.p50),
        search_text_p99_ms: round(rText.p99),
        search_caps_p50_ms: round(rCaps.p50),
        search_caps_p99_ms: round(rCaps.p99),
        search_both_p50_ms: round(rBoth.p50),
        search_both_p99_ms: round(rBoth.p99),
        by_hostname_p50_ms: round(rHost.p50),
        by_hostname_p99_ms: round(rHost.p99),
        heartbeats_per_s: Math.round(hb.perSecond),
        heartbeat_errors: hb.errors,
        rss_mb: Math.round(mem.rss),
        replica_rss_mb: Math.round(mem.rss),
        rss_peak_mb: Math.round(mem.hwm),
        inbox_read_peak_rss_mb: Math.round(reads.peakRss),
        inbox_read_largest_page_bytes: reads.largestPage,
        inbox_messages_at_quota: inboxMessages,
        send_to_full_inbox_p50_ms: round(full.p50),
        seed_s: round(seedSeconds),
        seed_first_batch_us_per_agent: round(seeded.firstBatchUs),
        seed_last_batch_us_per_agent: round(seeded.lastBatchUs),
        db_size_mb: Math.round(dbSize),
        startup_s: round(replica!.startupSeconds),
        index_ready_s: round(indexReadySeconds),
        load_avg_1m: round(load),
        cpu_calibration_ms: round(calibration),
        search_cpu_calibration_ms: round(searchCalibration),
      }),
    );
  } finally {
    keepAlive.destroy();
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Replica traffic: keep-alive sockets per replica, enough for every closed-loop client of a phase. */
const replicaAgent = new Agent({ keepAlive: true, maxSockets: 100 });

interface Answer {
  status: number;
  text: string;
}

/** One request with an optional JSON body; connection errors reject. */
function exchange(
  base: URL,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: unknown,
  agent: Agent = replicaAgent,
): Promise<Answer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path,
        agent,
        headers: payload
          ? { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(payload) }
          : headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

type TokenedAgent = Seeded["heartbeatAgents"][number];

/** Seeds `agents` through SQL batches (see support/registry-postgres.ts), with probes to check searches by. */
async function seedPostgres(
  url: string,
  agents: number,
): Promise<
  Seeded & { probes: { capability: string; capabilityCount: number; word: string; wordCount: number } }
> {
  const seeder = await PostgresSeeder.connect(url);
  const now = Date.now();
  const heartbeatAgents: TokenedAgent[] = [];
  const hostnames: string[] = [];
  const probes = { capability: "code-assist", capabilityCount: 0, word: "otter", wordCount: 0 };
  let firstBatchUs = 0;
  let lastBatchUs = 0;
  try {
    for (let start = 0; start < agents; start += SEED_BATCH) {
      const end = Math.min(start + SEED_BATCH, agents);
      const t0 = performance.now();
      const batch: StoredAgent[] = [];
      for (let i = start; i < end; i++) {
        const token = i < TOKENED_AGENTS ? issueToken() : undefined;
        const agent = benchAgent(i, now, token?.hash ?? null);
        batch.push(agent);
        if (token)
          heartbeatAgents.push({
            id: agent.id,
            token: token.token,
            installationId: agent.installationId!,
            hostname: agent.hostname,
          });
        if (i % 50 === 0 && hostnames.length < 20_000) hostnames.push(agent.hostname);
        if (agent.capabilities.includes(probes.capability)) probes.capabilityCount++;
        if (searchRowOf(agent).words.some((w) => w.startsWith(probes.word))) probes.wordCount++;
      }
      await seeder.insert(batch);
      lastBatchUs = ((performance.now() - t0) * 1000) / (end - start);
      if (start === 0) firstBatchUs = lastBatchUs;
    }
  } finally {
    await seeder.finish();
  }
  return { heartbeatAgents, hostnames, firstBatchUs, lastBatchUs, probes };
}

/**
 * Checks that the seeded rows are what the store would have written: a search through a replica finds a seeded
 * agent by its hostname, and counts as many agents for a capability and a word as the seeding made.
 */
async function checkSeededSearch(
  base: URL,
  probes: { capability: string; capabilityCount: number; word: string; wordCount: number },
  hostname: string,
): Promise<void> {
  const search = async (query: string) => {
    const answer = await exchange(base, "GET", `/api/v1/agents/search?${query}&limit=5`);
    if (answer.status !== 200) throw new Error(`seed check: search ${query} answered ${answer.status}`);
    return JSON.parse(answer.text) as {
      agents: Array<{ hostname: string }>;
      total: number;
      total_exact?: boolean;
    };
  };
  const byHost = await search(`q=${encodeURIComponent(hostname)}`);
  if (byHost.agents[0]?.hostname !== hostname)
    throw new Error(`seed check: searching ${hostname} did not find it first`);
  for (const [query, expected] of [
    [`capabilities=${probes.capability}`, probes.capabilityCount],
    [`q=${probes.word}`, probes.wordCount],
  ] as const) {
    const page = await search(query);
    // An estimated total (a sampled broad search) only has to be near.
    const ok =
      page.total_exact === false
        ? Math.abs(page.total - expected) <= expected * 0.2
        : page.total === expected;
    if (!ok) throw new Error(`seed check: ${query} counted ${page.total}, the seeding made ${expected}`);
  }
}

/** Latency of GETs spread over replicas: client k sends its share of `paths` to replica k mod R. */
async function replicaLatencies(
  bases: URL[],
  paths: string[],
  clients: number,
): Promise<{ p50: number; p99: number; statuses: Set<number> }> {
  const times: number[] = [];
  const statuses = new Set<number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, k) => {
      const base = bases[k % bases.length]!;
      while (next < paths.length) {
        const path = paths[next++]!;
        const t0 = performance.now();
        statuses.add((await exchange(base, "GET", path)).status);
        times.push(performance.now() - t0);
      }
    }),
  );
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99), statuses };
}

/** Closed-loop heartbeats from `clients` clients spread over the replicas; the aggregate rate of 200s. */
async function replicaHeartbeats(
  bases: URL[],
  agents: TokenedAgent[],
  clients: number,
  seconds: number,
): Promise<{ perSecond: number; errors: number }> {
  const deadline = performance.now() + seconds * 1000;
  let ok = 0;
  let errors = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      const base = bases[client % bases.length]!;
      for (let n = client; performance.now() < deadline; n += clients) {
        const agent = agents[n % agents.length]!;
        const answer = await exchange(base, "POST", `/api/v1/agents/${agent.id}/heartbeat`, {
          authorization: `Bearer ${agent.token}`,
        });
        if (answer.status === 200) ok++;
        else errors++;
      }
    }),
  );
  return { perSecond: ok / ((performance.now() - t0) / 1000), errors };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Heartbeat writes and the rows they carried so far, summed over the replicas' /metrics. */
async function heartbeatBatches(bases: URL[]): Promise<{ batches: number; rows: number }> {
  let batches = 0;
  let rows = 0;
  for (const base of bases) {
    const answer = await exchange(base, "GET", "/metrics");
    const value = (name: string) =>
      Number(
        new RegExp(`^agent_registry_heartbeat_batch_size_${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(
          answer.text,
        )?.[1] ?? 0,
      );
    batches += value("count");
    rows += value("sum");
  }
  return { batches, rows };
}

/**
 * Cross-replica wake-ups: `rounds` times, the recipient long-polls its inbox on `pollOn` and, once the poll is
 * parked, the sender sends through `sendOn`; the wake time runs from the send's answer to the poll's answer.
 */
async function relayWakes(
  pollOn: URL,
  sendOn: URL,
  sender: TokenedAgent,
  recipient: TokenedAgent,
  rounds: number,
): Promise<{ p50: number; p99: number; missed: number }> {
  const times: number[] = [];
  let missed = 0;
  let after = "";
  for (let round = 0; round < rounds; round++) {
    const poll = exchange(
      pollOn,
      "GET",
      `/api/v1/agents/messages/inbox/${recipient.installationId}?wait=10${after ? `&after=${after}` : ""}`,
      { authorization: `Bearer ${recipient.token}` },
    );
    await sleep(25); // the poll parks (the inbox is read empty, then the replica waits for a notification)
    const sent = await exchange(
      sendOn,
      "POST",
      "/api/v1/agents/messages/send",
      { authorization: `Bearer ${sender.token}` },
      {
        from_installation_id: sender.installationId,
        from_hostname: sender.hostname,
        to_installation_id: recipient.installationId,
        body: `wake ${round}`,
        message_id: `wake-${round}`,
      },
    );
    const t1 = performance.now();
    if (sent.status !== 200) throw new Error(`relay wake: send answered ${sent.status}: ${sent.text}`);
    const answer = await poll;
    const t2 = performance.now();
    const page = JSON.parse(answer.text) as { messages: unknown[]; next_cursor: string | null };
    if (answer.status !== 200 || page.messages.length === 0) missed++;
    else times.push(Math.max(0, t2 - t1));
    after = page.next_cursor ?? after;
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99), missed };
}

/** What the fault phase counted. */
interface FaultResult {
  ackedWrites: number;
  lostAckedWrites: number;
  errorsOnSurvivors: number;
  survivorRequests: number;
  killedReplicaFailedRequests: number;
  victimErrorsBeforeKill: number;
  firstSurvivorError: string | undefined;
}

/**
 * Mixed load on every replica (registrations and relay sends that are acknowledged, searches, heartbeats), kill -9
 * of the last replica after `beforeMs`, more load on the survivors for `afterMs`; then every write acknowledged 2xx
 * (by any replica, the killed one included) is looked up in the database.
 */
async function faultPhase(
  replicas: Replica[],
  dbUrl: string,
  agents: TokenedAgent[],
  beforeMs: number,
  afterMs: number,
): Promise<FaultResult> {
  const victim = replicas.at(-1)!;
  const faultAgent = new Agent({ keepAlive: true, maxSockets: 100 });
  const ackedHostnames: string[] = [];
  const ackedMessages: string[] = [];
  let killed = false;
  let stopping = false;
  const result: FaultResult = {
    ackedWrites: 0,
    lostAckedWrites: 0,
    errorsOnSurvivors: 0,
    survivorRequests: 0,
    killedReplicaFailedRequests: 0,
    victimErrorsBeforeKill: 0,
    firstSurvivorError: undefined,
  };
  let n = 0;
  const { text } = searchPaths(2000);
  type Op = () => {
    method: string;
    path: string;
    headers: Record<string, string>;
    body?: unknown;
    onOk?: () => void;
  };
  const kinds: Array<(worker: number) => Op> = [
    // registrations of new agents
    () => () => {
      // Spread over the hostname index as real names are (not one run of adjacent keys).
      const hostname = `${pick(ADJECTIVES)}-${pick(NOUNS)}-fault-${n++}`;
      return {
        method: "POST",
        path: "/api/v1/agents",
        headers: {},
        body: {
          hostname,
          installation_id: `inst-${hostname}`,
          capabilities: ["code"],
          description: "fault phase",
        },
        onOk: () => ackedHostnames.push(hostname),
      };
    },
    // relay sends between seeded agents
    (worker) => () => {
      const sender = agents[100 + ((worker * 7 + n) % 800)]!;
      const to = agents[1000 + (n % 800)]!;
      const messageId = `fault-msg-${n++}`;
      return {
        method: "POST",
        path: "/api/v1/agents/messages/send",
        headers: { authorization: `Bearer ${sender.token}` },
        body: {
          from_installation_id: sender.installationId,
          from_hostname: sender.hostname,
          to_installation_id: to.installationId,
          body: "fault phase",
          message_id: messageId,
        },
        onOk: () => ackedMessages.push(`${to.installationId}\u0000${messageId}`),
      };
    },
    () => () => ({ method: "GET", path: text[n++ % text.length]!, headers: {} }),
    (worker) => () => {
      const agent = agents[1800 + ((worker + n++) % 200)]!;
      return {
        method: "POST",
        path: `/api/v1/agents/${agent.id}/heartbeat`,
        headers: { authorization: `Bearer ${agent.token}` },
      };
    },
  ];
  const workers: Array<Promise<void>> = [];
  let worker = 0;
  for (const replica of replicas) {
    const base = new URL(replica.url);
    const onVictim = replica === victim;
    for (const kind of kinds) {
      for (let copy = 0; copy < 3; copy++) {
        const op = kind(worker++);
        workers.push(
          (async () => {
            while (!stopping) {
              const { method, path, headers, body, onOk } = op();
              let status = 0;
              let detail = "";
              const sentBeforeKill = !killed;
              try {
                const answer = await exchange(base, method, path, headers, body, faultAgent);
                status = answer.status;
                detail = answer.text.slice(0, 200);
              } catch (error) {
                detail = (error as Error).message;
              }
              const ok = status >= 200 && status < 300;
              if (ok) onOk?.();
              if (onVictim) {
                if (!ok && sentBeforeKill && !killed) result.victimErrorsBeforeKill++;
                else if (!ok) {
                  result.killedReplicaFailedRequests++;
                  return; // the replica is gone: this client stops
                }
              } else {
                result.survivorRequests++;
                if (!ok) {
                  result.errorsOnSurvivors++;
                  result.firstSurvivorError ??= `${method} ${path.split("?")[0]}: ${status || "connection error"} ${detail}`;
                }
              }
            }
          })(),
        );
      }
    }
  }
  await sleep(beforeMs);
  killed = true;
  process.kill(victim.proc.pid!, "SIGKILL");
  await sleep(afterMs);
  stopping = true;
  await Promise.all(workers);
  faultAgent.destroy();
  // Every acknowledged write, whoever acknowledged it, must be in the database.
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  try {
    const hosts = await client.query(
      "SELECT count(*)::int AS n FROM agents WHERE hostname = ANY($1::text[])",
      [ackedHostnames],
    );
    const pairs = ackedMessages.map((m) => m.split("\u0000"));
    const messages = await client.query(
      "SELECT count(*)::int AS n FROM messages m JOIN unnest($1::text[], $2::text[]) AS v(inbox, id) " +
        "ON m.to_installation_id = v.inbox AND m.message_id = v.id",
      [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
    );
    result.ackedWrites = ackedHostnames.length + ackedMessages.length;
    result.lostAckedWrites = result.ackedWrites - Number(hosts.rows[0]?.n) - Number(messages.rows[0]?.n);
  } finally {
    await client.end();
  }
  return result;
}

/** The PostgreSQL run: its own server, seeded by SQL, `config.replicas` server processes, a fault phase. */
async function mainPostgres(config: BenchConfig) {
  let postgres: BenchPostgres | undefined;
  let replicas: Replica[] = [];
  const killAll = () => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    postgres?.stopSync();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    killAll();
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.once("exit", killAll);
  try {
    const entry = buildRegistryServer();
    postgres = await startBenchPostgres();
    const dbUrl = postgres.url;
    await execFileAsync(process.execPath, [entry, "migrate", "--db", dbUrl]);
    const s0 = performance.now();
    const seeded = await seedPostgres(dbUrl, config.agents);
    const seedSeconds = (performance.now() - s0) / 1000;
    const dbSize = await databaseSizeMiB(dbUrl);
    const { heartbeatAgents, hostnames } = seeded;

    replicas = await startReplicas(config, entry, dbUrl, [
      "--send-rate",
      "0",
      "--inbox-max-messages",
      "0",
      "--log-level",
      "warn",
    ]);
    const bases = replicas.map((r) => new URL(r.url));
    await checkSeededSearch(bases[0]!, seeded.probes, hostnames[7]!);

    const n = config.searchesPerKind;
    const { text, caps, both } = searchPaths(n);
    const byHost = Array.from({ length: n }, () => `/api/v1/agents/by-hostname/${pick(hostnames)}`);
    const clients = config.searchClients;
    const warmUp = searchPaths(100);
    await replicaLatencies(bases, [...warmUp.text, ...warmUp.caps, ...warmUp.both], clients);
    // CPU of each party over a phase, per operation: the replicas, PostgreSQL (postmaster and backends), and
    // this process (the bench's clients).
    const database = postgres;
    const cpu = () => ({
      replicas: replicas.reduce((sum, r) => sum + processCpuMs(r.proc.pid!), 0),
      postgres: processTreeCpuMs(database.pid()),
      client: ownCpuMs(),
    });
    const cpuPer = (from: ReturnType<typeof cpu>, operations: number, unit: number) => {
      const to = cpu();
      const per = (k: keyof typeof to) => Math.round(((to[k] - from[k]) / operations) * unit * 100) / 100;
      return { replicas: per("replicas"), postgres: per("postgres"), client: per("client") };
    };
    const searchCalibration = calibrationMs();
    const searchCpu = cpu();
    const rText = await replicaLatencies(bases, text, clients);
    const rCaps = await replicaLatencies(bases, caps, clients);
    const rBoth = await replicaLatencies(bases, both, clients);
    const searchCpuMs = cpuPer(searchCpu, 3 * n, 1);
    const rHost = await replicaLatencies(bases, byHost, clients);
    const heartbeatClients = HEARTBEAT_CLIENTS_PER_REPLICA * replicas.length;
    const batchesBefore = await heartbeatBatches(bases);
    const heartbeatCpu = cpu();
    const hb = await replicaHeartbeats(bases, heartbeatAgents, heartbeatClients, config.heartbeatSeconds);
    const heartbeatCpuUs = cpuPer(heartbeatCpu, Math.max(1, hb.perSecond * config.heartbeatSeconds), 1000);
    const batchesAfter = await heartbeatBatches(bases);
    const batchRows =
      (batchesAfter.rows - batchesBefore.rows) / Math.max(1, batchesAfter.batches - batchesBefore.batches);
    const wake = await relayWakes(
      bases[0]!,
      bases[1]!,
      heartbeatAgents[1]!,
      heartbeatAgents[0]!,
      RELAY_WAKE_ROUNDS,
    );
    const rss = replicas.map((r) => rssMiB(r.proc.pid!));
    const replicaRss = Math.max(...rss.map((m) => m.rss));
    const fault = await faultPhase(replicas, dbUrl, heartbeatAgents, 3_000, 4_000);
    const calibration = calibrationMs();
    const load = loadavg()[0]!;

    const allSearch = [rText, rCaps, rBoth];
    const round = (v: number) => Math.round(v * 100) / 100;
    const row = (name: string, r: { p50: number; p99: number; statuses: Set<number> }) =>
      `${name.padEnd(28)} ${r.p50.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)}   ${[...r.statuses].join(",")}`;
    console.log(
      `agents seeded: ${config.agents} in ${seedSeconds.toFixed(1)} s (PostgreSQL, ${SEED_BATCH} per statement; ${seeded.firstBatchUs.toFixed(1)} us/agent in the first batch, ${seeded.lastBatchUs.toFixed(1)} in the last); database ${dbSize.toFixed(0)} MiB`,
    );
    console.log(
      `replicas: ${replicas.length}, listening after ${replicas.map((r) => r.startupSeconds.toFixed(2)).join(" / ")} s`,
    );
    console.log(
      `${"measure".padEnd(28)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)}   statuses (${clients} clients at once, spread over the replicas)`,
    );
    console.log(row("search q (1 word)", rText));
    console.log(row("search capabilities (2, any)", rCaps));
    console.log(row("search q + capability", rBoth));
    console.log(row("by-hostname", rHost));
    console.log(
      `CPU per search               replicas ${searchCpuMs.replicas} ms, PostgreSQL ${searchCpuMs.postgres} ms, bench clients ${searchCpuMs.client} ms`,
    );
    console.log(
      `heartbeats/s (${heartbeatClients} clients)    ${hb.perSecond.toFixed(0)}   errors ${hb.errors}, ${batchRows.toFixed(1)} heartbeats per database write`,
    );
    console.log(
      `CPU per heartbeat            replicas ${heartbeatCpuUs.replicas} us, PostgreSQL ${heartbeatCpuUs.postgres} us, bench clients ${heartbeatCpuUs.client} us`,
    );
    console.log(
      `relay wake across replicas   p50 ${wake.p50.toFixed(2)} ms, p99 ${wake.p99.toFixed(2)} ms (${RELAY_WAKE_ROUNDS} rounds, ${wake.missed} missed)`,
    );
    console.log(`replica RSS                  ${rss.map((m) => m.rss.toFixed(0)).join(" / ")} MiB`);
    console.log(
      `fault phase: kill -9 of replica ${replicas.length}: ${fault.ackedWrites} writes acknowledged, ${fault.lostAckedWrites} lost; survivors answered ${fault.survivorRequests} requests, ${fault.errorsOnSurvivors} errors${fault.firstSurvivorError ? ` (first: ${fault.firstSurvivorError})` : ""}; ${fault.killedReplicaFailedRequests} requests in flight to the killed replica failed`,
    );
    console.log(
      `machine: load average ${load.toFixed(1)}, CPU calibration ${searchCalibration.toFixed(0)} ms before the searches, ${calibration.toFixed(0)} ms at the end (idle ~10 ms)`,
    );
    console.log(
      JSON.stringify({
        store: config.store,
        replicas: config.replicas,
        agents: config.agents,
        search_clients: clients,
        search_p50_ms: round(Math.max(...allSearch.map((r) => r.p50))),
        search_p99_ms: round(Math.max(...allSearch.map((r) => r.p99))),
        search_text_p50_ms: round(rText.p50),
        search_text_p99_ms: round(rText.p99),
        search_caps_p50_ms: round(rCaps.p50),
        search_caps_p99_ms: round(rCaps.p99),
        search_both_p50_ms: round(rBoth.p50),
        search_both_p99_ms: round(rBoth.p99),
        by_hostname_p50_ms: round(rHost.p50),
        by_hostname_p99_ms: round(rHost.p99),
        searches_per_kind: n,
        search_statuses: [...new Set(allSearch.flatMap((r) => [...r.statuses]))],
        search_cpu_ms: searchCpuMs,
        heartbeats_per_s: Math.round(hb.perSecond),
        heartbeat_cpu_us: heartbeatCpuUs,
        heartbeat_clients: heartbeatClients,
        heartbeat_errors: hb.errors,
        heartbeat_batch_rows_mean: round(batchRows),
        relay_wake_p50_ms: round(wake.p50),
        relay_wake_p99_ms: round(wake.p99),
        relay_wake_missed: wake.missed,
        replica_rss_mb: Math.round(replicaRss),
        seed_s: round(seedSeconds),
        seed_first_batch_us_per_agent: round(seeded.firstBatchUs),
        seed_last_batch_us_per_agent: round(seeded.lastBatchUs),
        db_size_mb: Math.round(dbSize),
        startup_s: round(Math.max(...replicas.map((r) => r.startupSeconds))),
        fault_acked_writes: fault.ackedWrites,
        killed_replica_lost_acked_writes: fault.lostAckedWrites,
        errors_on_survivors: fault.errorsOnSurvivors,
        survivor_requests: fault.survivorRequests,
        killed_replica_failed_requests: fault.killedReplicaFailedRequests,
        killed_replica_errors_before_kill: fault.victimErrorsBeforeKill,
        load_avg_1m: round(load),
        cpu_calibration_ms: round(calibration),
        search_cpu_calibration_ms: round(searchCalibration),
      }),
    );
  } finally {
    replicaAgent.destroy();
    keepAlive.destroy();
    await Promise.all(
      replicas.map(async (replica) => {
        const child = replica.proc;
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(force);
      }),
    );
    await postgres?.stop();
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    process.removeListener("exit", killAll);
  }
}

// Run only when executed directly (the seeding is importable for profiling scripts).
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  let config: BenchConfig | undefined;
  try {
    config = parseBenchArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`bench:registry: ${(error as Error).message}`);
    process.exitCode = 2;
  }
  if (config?.store === "postgres") await mainPostgres(config);
  else if (config) await main(config);
}
