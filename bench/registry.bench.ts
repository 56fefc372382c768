// Benchmark of the reference Agent Registry: seeds 100,000 agents straight through the store (file db in a temp
// dir), starts the registry's CLI as a child process from a fresh JavaScript build of src/registry-server/ (as
// bin/agent-registry.mjs runs dist/ in a deployment; see support/registry-build.ts), and measures over loopback
// with keep-alive node:http clients: search p50/p99 (text, capability, both), by-hostname p50/p99,
// heartbeats/s with 50 concurrent clients, and the server's RSS; then fills one relay inbox to its quota with
// worst-case bodies (control characters, escaped 6x) and samples the server's RSS while 8 clients read it with
// maximal pages at once. Last line: one JSON object with the figures.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { issueToken } from "../src/registry-server/auth.js";
import { peerIdOf } from "../src/registry-server/peer-id.js";
import { SqliteDatabaseStore } from "../src/registry-server/sqlite-store.js";
import type { StoredAgent } from "../src/registry-server/store.js";
import { buildRegistryServer } from "./support/registry-build.js";

const AGENTS = Number(process.env.BENCH_AGENTS ?? 100_000);
const SEARCHES_PER_KIND = Number(process.env.BENCH_SEARCHES ?? 400);
const HEARTBEAT_SECONDS = Number(process.env.BENCH_HEARTBEAT_SECONDS ?? 10);
const HEARTBEAT_CLIENTS = 50;
const TOKENED_AGENTS = 2_000;

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

export function seed(path: string): {
  heartbeatAgents: Array<{ id: string; token: string; installationId: string; hostname: string }>;
  hostnames: string[];
} {
  const store = new SqliteDatabaseStore({ path });
  const now = Date.now();
  const heartbeatAgents: Array<{ id: string; token: string; installationId: string; hostname: string }> = [];
  const hostnames: string[] = [];
  const batch = 5_000;
  for (let start = 0; start < AGENTS; start += batch) {
    store.transaction(() => {
      for (let i = start; i < Math.min(start + batch, AGENTS); i++) {
        const hostname = `${pick(ADJECTIVES)}-${pick(NOUNS)}-${i}`;
        const capabilities = [
          ...new Set(Array.from({ length: 2 + Math.floor(rand() * 5) }, () => pick(CAPABILITIES))),
        ];
        const description = Array.from({ length: 10 + Math.floor(rand() * 16) }, () => pick(WORDS)).join(" ");
        const token = i < TOKENED_AGENTS ? issueToken() : undefined;
        const agent: StoredAgent = {
          id: randomUUID(),
          hostname,
          installationId: `inst-${i}`,
          peerId: peerIdOf(`inst-${i}`),
          pilotNodeId: 1000 + i,
          pilotAddress: null,
          displayName: `${pick(ADJECTIVES)} ${pick(NOUNS)}`,
          description,
          capabilities,
          tokenHash: token?.hash ?? null,
          publicKey: null,
          signedRecord: null,
          lastSeen: now,
          createdAt: now,
          updatedAt: now,
        };
        store.insertAgent(agent);
        if (token)
          heartbeatAgents.push({ id: agent.id, token: token.token, installationId: `inst-${i}`, hostname });
        if (i % 50 === 0) hostnames.push(hostname);
      }
    });
  }
  store.close();
  return { heartbeatAgents, hostnames };
}

async function startChild(entry: string, db: string): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [entry, "serve", "--port", "0", "--db", db], {
    stdio: ["ignore", "pipe", "inherit"],
  });
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

async function latencies(
  base: URL,
  paths: string[],
): Promise<{ p50: number; p99: number; statuses: Set<number> }> {
  const times: number[] = [];
  const statuses = new Set<number>();
  for (const path of paths.slice(0, 20)) await call(base, "GET", path); // warm-up
  for (const path of paths) {
    const t0 = performance.now();
    statuses.add(await call(base, "GET", path));
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99), statuses };
}

async function heartbeats(
  base: URL,
  agents: Array<{ id: string; token: string }>,
): Promise<{ perSecond: number; errors: number }> {
  const deadline = performance.now() + HEARTBEAT_SECONDS * 1000;
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

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "agent-registry-bench-"));
  let child: ChildProcess | undefined;
  try {
    const db = join(dir, "registry.db");
    const s0 = performance.now();
    const { heartbeatAgents, hostnames } = seed(db);
    const seedSeconds = (performance.now() - s0) / 1000;
    const recipient = heartbeatAgents[0]!;
    const inboxMessages = fillInbox(db, recipient.installationId);
    const started = await startChild(buildRegistryServer(), db);
    child = started.proc;
    const base = new URL(started.url);

    const text = Array.from({ length: SEARCHES_PER_KIND }, () => `/api/v1/agents/search?q=${pick(WORDS)}`);
    const caps = Array.from(
      { length: SEARCHES_PER_KIND },
      () => `/api/v1/agents/search?capabilities=${pick(CAPABILITIES)}&capabilities=${pick(CAPABILITIES)}`,
    );
    const both = Array.from(
      { length: SEARCHES_PER_KIND },
      () => `/api/v1/agents/search?q=${pick(WORDS)}&capabilities=${pick(DOMAINS)}`,
    );
    const byHost = Array.from(
      { length: SEARCHES_PER_KIND },
      () => `/api/v1/agents/by-hostname/${pick(hostnames)}`,
    );

    const rText = await latencies(base, text);
    const rCaps = await latencies(base, caps);
    const rBoth = await latencies(base, both);
    const rHost = await latencies(base, byHost);
    const hb = await heartbeats(base, heartbeatAgents);
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
    console.log(`agents seeded: ${AGENTS} in ${seedSeconds.toFixed(1)} s (file db, WAL)`);
    console.log(`${"measure".padEnd(28)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)}   statuses`);
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
      `machine: load average ${load.toFixed(1)}, CPU calibration ${calibration.toFixed(0)} ms (idle ~10 ms)`,
    );
    const round = (n: number) => Math.round(n * 100) / 100;
    console.log(
      JSON.stringify({
        agents: AGENTS,
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
        rss_peak_mb: Math.round(mem.hwm),
        inbox_read_peak_rss_mb: Math.round(reads.peakRss),
        inbox_read_largest_page_bytes: reads.largestPage,
        inbox_messages_at_quota: inboxMessages,
        send_to_full_inbox_p50_ms: round(full.p50),
        seed_s: round(seedSeconds),
        load_avg_1m: round(load),
        cpu_calibration_ms: round(calibration),
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

// Run only when executed directly (the seeding is importable for profiling scripts).
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main();
