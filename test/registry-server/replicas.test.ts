// Stateless replicas: several registry servers on one PostgreSQL database serve one registry. A client moves
// between them from call to call; tokens, keys, trust and proofs hold everywhere; a long-poll on one wakes on a
// send through another (LISTEN/NOTIFY); the sweep runs once per interval between them; heartbeats share writes.
// Always on a real PostgreSQL (test/support/postgres.ts), whatever store the project runs the rest on.
import { type ChildProcess, spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { PostgresRegistryStore } from "../../src/registry-server/postgres-store.js";
import {
  type AgentWithToken,
  startTestRegistry,
  type TestRegistry,
  testClock,
  testPostgres,
} from "./helpers.js";
import { detailOf, keyedBody, proofFor, registerKeyed, signedCall } from "./keys.support.js";
import { storedAgent } from "./records.js";

interface Inbox {
  messages: Array<{ body: unknown; message_id: string }>;
  next_cursor: string | null;
}

/** `n` servers on one fresh database, all on one hand-driven clock. */
async function replicas(n: number, options: Parameters<typeof startTestRegistry>[0] = {}) {
  const db = await (await testPostgres()).freshDatabase();
  const clock = testClock();
  const servers: TestRegistry[] = [];
  for (let i = 0; i < n; i++) servers.push(await startTestRegistry({ db, now: clock.now, ...options }));
  return { db, clock, servers };
}

const send = (r: TestRegistry, from: AgentWithToken, body: Record<string, unknown>) =>
  r.call("POST", "/api/v1/agents/messages/send", {
    token: from.agent_token,
    body: { from_installation_id: from.installation_id, from_hostname: from.hostname, ...body },
  });

const inbox = (r: TestRegistry, who: AgentWithToken, query = "") =>
  r.call<Inbox>("GET", `/api/v1/agents/messages/inbox/${who.installation_id}${query}`, {
    token: who.agent_token,
  });

/** A promise and when it resolved (performance.now()). */
function r<T>(promise: Promise<T>): { result: Promise<T>; at: number } {
  const timed = { at: 0, result: promise };
  timed.result = promise.then((value) => {
    timed.at = performance.now();
    return value;
  });
  return timed;
}

const BIN = fileURLToPath(new URL("../../bin/agent-registry.mjs", import.meta.url));

/** `agent-registry serve` in a process of its own, on an ephemeral loopback port; resolves once it listens. */
function serveProcess(db: string): Promise<{ proc: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, "serve", "--db", db, "--port", "0", "--host", "127.0.0.1"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, DATABASE_URL: "", AGENT_REGISTRY_API_KEY: "", AGENT_REGISTRY_ADMIN_KEY: "" },
    });
    let out = "";
    let err = "";
    proc.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      if (url) resolve({ proc, url });
    });
    proc.stderr!.on("data", (chunk: Buffer) => {
      err += chunk.toString();
    });
    proc.once("exit", (code) => reject(new Error(`serve exited (${code}) before listening: ${err}`)));
  });
}

async function http<T = Record<string, unknown>>(
  url: string,
  method: string,
  path: string,
  options: { body?: unknown; token?: string } = {},
): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = {};
  if (options.body !== undefined) headers["content-type"] = "application/json";
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const res = await fetch(`${url}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

describe("replicas on one PostgreSQL database", () => {
  it("registers on A, takes heartbeats on B and finds the agent online on C", async () => {
    const { clock, servers } = await replicas(3);
    const [a, b, c] = servers as [TestRegistry, TestRegistry, TestRegistry];
    const agent = await a.register({
      hostname: "roamer",
      installation_id: "inst-roamer",
      capabilities: ["maps"],
    });
    clock.advance(100);
    const beat = await b.call("POST", `/api/v1/agents/${agent.id}/heartbeat`, { token: agent.agent_token });
    expect(beat.status).toBe(200);
    // 200 s after registering (past the 180 s ttl) but 100 s after the heartbeat on B: online everywhere.
    clock.advance(100);
    const found = await c.call<{ agents: Array<{ hostname: string; status: string }> }>(
      "GET",
      "/api/v1/agents/search?q=roamer",
    );
    expect(found.body.agents).toEqual([expect.objectContaining({ hostname: "roamer", status: "online" })]);
    expect(
      (await a.call("POST", `/api/v1/agents/${agent.id}/heartbeat`, { token: agent.agent_token })).status,
    ).toBe(200);
    // The token is checked against the shared row: a wrong one is refused on any replica.
    const wrong = await c.call("POST", `/api/v1/agents/${agent.id}/heartbeat`, { token: "not-the-token" });
    expect(wrong.status).toBe(403);
    // Deregistered on C: expired for heartbeats on A at once.
    expect((await c.call("DELETE", `/api/v1/agents/${agent.id}`, { token: agent.agent_token })).status).toBe(
      204,
    );
    const late = await a.call("POST", `/api/v1/agents/${agent.id}/heartbeat`, { token: agent.agent_token });
    expect(late.status).toBe(404);
    expect(detailOf(late)).toMatch(/expired/);
  });

  it("honours a key bound on A for a PATCH on B, and refuses the same proof replayed at C", async () => {
    const { servers } = await replicas(3);
    const [a, b, c] = servers as [TestRegistry, TestRegistry, TestRegistry];
    const keyed = await registerKeyed(a, { hostname: "keyed", installation_id: "inst-keyed" });
    const path = `/api/v1/agents/${keyed.id}`;
    const body = await keyedBody(keyed.identity, { hostname: "keyed", description: "moved" });
    const raw = JSON.stringify(body);
    const proof = await proofFor(b, keyed.identity, "PATCH", path, raw);
    const patched = await signedCall(b, "PATCH", path, { body, proof });
    expect(patched.status).toBe(200);
    const replayed = await signedCall(c, "PATCH", path, { body, proof });
    expect(replayed.status).toBe(401);
    expect(detailOf(replayed)).toMatch(/used before/);
    // The token alone does not change a keyed record on any replica either.
    const tokenOnly = await c.call("PATCH", path, { token: keyed.token, body: { description: "stolen" } });
    expect(tokenOnly.status).toBe(401);
  });

  it("takes a trust request on A, its approval on B, and relays under required trust on C", async () => {
    const { servers } = await replicas(3, { requireTrust: true });
    const [a, b, c] = servers as [TestRegistry, TestRegistry, TestRegistry];
    const alice = await a.register({ hostname: "alice", installation_id: "inst-alice" });
    const bob = await b.register({ hostname: "bob", installation_id: "inst-bob" });
    const asked = await a.call("POST", "/api/v1/trust/request", {
      token: alice.agent_token,
      body: { from_id: alice.peer_id, to_id: bob.peer_id },
    });
    expect(asked.status).toBe(201);
    const approved = await b.call("POST", "/api/v1/trust/approve", {
      token: bob.agent_token,
      body: { from_id: alice.peer_id, to_id: bob.installation_id },
    });
    expect(approved).toMatchObject({ status: 200, body: { status: "approved" } });
    expect((await send(c, alice, { to_peer_id: bob.peer_id, body: "trusted" })).status).toBe(200);
    expect((await inbox(a, bob)).body.messages.map((m) => m.body)).toEqual(["trusted"]);
  });

  it("wakes a long-poll on B when a message is sent through A", async () => {
    const { servers } = await replicas(2);
    const [a, b] = servers as [TestRegistry, TestRegistry];
    const alice = await a.register({ hostname: "alice", installation_id: "inst-alice" });
    const bob = await a.register({ hostname: "bob", installation_id: "inst-bob" });
    const latencies: number[] = [];
    let cursor: string | null = null;
    for (let round = 0; round < 20; round++) {
      const polling = inbox(b, bob, `?wait=10${cursor ? `&after=${cursor}` : ""}`);
      let answeredAt = 0;
      const answered = polling.then((box) => {
        answeredAt = performance.now();
        return box;
      });
      // The long-poll is parked on B before the send (B's waiters count it).
      while (b.server.stats().longPolls === 0) await sleep(5);
      await sleep(20);
      const sent = await send(a, alice, { to_hostname: "bob", body: `wake ${round}` });
      const ackedAt = performance.now(); // the send's 2xx: committed, so NOTIFY is on its way
      expect(sent.status).toBe(200);
      const box = await answered;
      expect(box.body.messages.map((m) => m.body)).toEqual([`wake ${round}`]);
      cursor = box.body.next_cursor;
      latencies.push(answeredAt - ackedAt);
    }
    latencies.sort((x, y) => x - y);
    const at = (q: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!.toFixed(1);
    console.info(
      `cross-replica wake latency over ${latencies.length} sends (ms after the send's answer): p50 ${at(0.5)}, p95 ${at(0.95)}, max ${at(1)}`,
    );
    // Generous for a loaded 2-core machine; the poll had 10 s left, so anything this quick was a wake-up.
    expect(latencies.at(-1)!).toBeLessThan(1000);
  });

  it("wakes a long-poll watching trust on B when a trust request is made through A", async () => {
    const { servers } = await replicas(2);
    const [a, b] = servers as [TestRegistry, TestRegistry];
    const alice = await a.register({ hostname: "alice", installation_id: "inst-alice" });
    const bob = await a.register({ hostname: "bob", installation_id: "inst-bob" });
    const watching = r(inbox(b, bob, "?wait=10&trust_after=0"));
    while (b.server.stats().longPolls === 0) await sleep(5);
    await sleep(20);
    const asked = await a.call("POST", "/api/v1/trust/request", {
      token: alice.agent_token,
      body: { from_id: alice.peer_id, to_id: bob.peer_id },
    });
    const askedAt = performance.now();
    expect(asked.status).toBe(201);
    const box = await watching.result;
    expect(box.body).toMatchObject({ messages: [], trust_changed: true });
    expect(watching.at - askedAt).toBeLessThan(1000);
  });

  it("sweeps once per interval between replicas, not once per replica", async () => {
    const ticks = { ran: 0, skipped: 0 };
    const { db, servers } = await replicas(3, {
      sweepIntervalMs: 150,
      onSweepTick: (ran) => {
        if (ran) ticks.ran++;
        else ticks.skipped++;
      },
    });
    const started = performance.now();
    await sleep(1600);
    // Closing waits for a sweep under way, so the count below is final.
    await Promise.all(servers.map((s) => s.server.close()));
    const elapsed = performance.now() - started;
    const client = new pg.Client({ connectionString: db });
    await client.connect();
    const runs = Number(
      (await client.query("SELECT runs FROM registry_sweeps WHERE name = 'purge'")).rows[0].runs,
    );
    await client.end();
    expect(runs).toBe(ticks.ran);
    // At most one sweep per 0.8 interval between the three (each alone would sweep every interval: about three
    // times as many), and the others' ticks found it done.
    expect(ticks.ran).toBeGreaterThanOrEqual(2);
    expect(ticks.ran).toBeLessThanOrEqual(Math.floor(elapsed / 120) + 1);
    expect(ticks.skipped).toBeGreaterThan(0);
    console.info(
      `sweep ticks of 3 replicas in ${(elapsed / 1000).toFixed(1)} s at 150 ms: ${ticks.ran} swept, ${ticks.skipped} skipped`,
    );
  });

  it("purges spent proof nonces in the sweep once they expire", async () => {
    const { db, clock, servers } = await replicas(2);
    const [a, b] = servers as [TestRegistry, TestRegistry];
    await registerKeyed(a, { hostname: "keyed", installation_id: "inst-keyed" });
    const client = new pg.Client({ connectionString: db });
    await client.connect();
    try {
      const count = async () =>
        Number((await client.query("SELECT COUNT(*) AS n FROM proof_nonces")).rows[0].n);
      expect(await count()).toBe(1);
      await b.server.sweep();
      expect(await count()).toBe(1);
      clock.advance(11 * 60);
      await b.server.sweep();
      expect(await count()).toBe(0);
    } finally {
      await client.end();
    }
  });

  it("batches concurrent heartbeats into few reads and writes and answers every one correctly", async () => {
    const db = await (await testPostgres()).freshDatabase();
    const batches: number[] = [];
    const store = await PostgresRegistryStore.open({
      connectionString: db,
      // Longer than the default (2 ms), so the count does not depend on how fast this machine is right now.
      heartbeatLingerMs: 10,
      onHeartbeatBatch: (rows) => batches.push(rows),
    });
    const clock = testClock();
    const r = await startTestRegistry({ store, now: clock.now });
    const agents: AgentWithToken[] = [];
    for (let i = 0; i < 60; i++)
      agents.push(await r.register({ hostname: `beat-${i}`, installation_id: `inst-${i}` }));
    clock.advance(30);
    const answers = await Promise.all(
      agents.flatMap((agent) => [
        r.call("POST", `/api/v1/agents/${agent.id}/heartbeat`, { token: agent.agent_token }),
        r.call("POST", `/api/v1/agents/${agent.id}/heartbeat`, { token: agent.agent_token }),
        // A wrong token writes nothing: its write matches no row, and the record read afterwards says why.
        r.call("POST", `/api/v1/agents/${agent.id}/heartbeat`, { token: "wrong-token" }),
      ]),
    );
    expect(answers.filter((x) => x.status === 200)).toHaveLength(120);
    expect(answers.filter((x) => x.status === 403)).toHaveLength(60);
    // Every answered heartbeat is in the database already (another replica reading now sees it).
    const listed = await r.call<{ agents: Array<{ last_seen: string }> }>("GET", "/api/v1/agents?limit=100");
    expect(new Set(listed.body.agents.map((x) => x.last_seen))).toEqual(
      new Set([new Date(clock.now()).toISOString()]),
    );
    expect(batches.reduce((sum, n) => sum + n, 0)).toBeLessThanOrEqual(180);
    expect(batches.length).toBeLessThan(60);
    // Only the refused ones read the record (token and last seen), through the read batcher; how many share a
    // statement depends on how the requests interleave over HTTP.
    const reads = store.livenessReadStats;
    expect(reads.reads).toBeGreaterThan(0);
    expect(reads.reads).toBeLessThanOrEqual(60);
    // An accepted heartbeat is one shared write and no read.
    const written = batches.length;
    clock.advance(30);
    const again = await Promise.all(
      agents.map((agent) =>
        r.call("POST", `/api/v1/agents/${agent.id}/heartbeat`, { token: agent.agent_token }),
      ),
    );
    expect(again.every((x) => x.status === 200)).toBe(true);
    expect(store.livenessReadStats).toEqual(reads);
    expect(batches.slice(written).reduce((sum, n) => sum + n, 0)).toBe(60);
    // Reads asked in one turn share exactly one statement.
    const rows = await Promise.all([
      ...agents.map((a) => store.getAgentLiveness(a.id)),
      store.getAgentLiveness("ghost"),
    ]);
    expect(rows.slice(0, -1).every((row) => row?.lastSeen === clock.now())).toBe(true);
    expect(rows.at(-1)).toBeUndefined();
    expect(store.livenessReadStats.batches).toBe(reads.batches + 1);
    expect(store.livenessReadStats.reads).toBe(reads.reads + 61);
    console.info(
      `180 heartbeats of 60 agents: ${reads.batches} SELECT statements for ${reads.reads} liveness reads, ` +
        `${batches.length} UPDATE statements, rows ${batches.join(" ")}`,
    );
  });

  it("never revives a record deregistered between a heartbeat's check and its batched write", async () => {
    const db = await (await testPostgres()).freshDatabase();
    const store = await PostgresRegistryStore.open({ connectionString: db, heartbeatLingerMs: 200 });
    try {
      const agent = storedAgent(1, {
        id: "agent-1",
        hostname: "racer",
        installationId: "inst-racer",
        tokenHash: "00",
      });
      await store.insertAgent(agent);
      // The heartbeat read lastSeen 1000 and waits in its batch; another replica deregisters meanwhile.
      const beat = store.touchAgent(agent.id, 2000, 1000);
      await store.updateAgent({ ...agent, lastSeen: 500, updatedAt: 1500 });
      expect(await beat).toBe(false);
      expect((await store.getAgentLiveness(agent.id))?.lastSeen).toBe(500);
      // A heartbeat that read the new value goes through; an older time never moves lastSeen back.
      expect(await store.touchAgent(agent.id, 3000, 500)).toBe(true);
      expect(await store.touchAgent(agent.id, 2500, 500)).toBe(true);
      expect((await store.getAgentLiveness(agent.id))?.lastSeen).toBe(3000);
      expect(await store.touchAgent("agent-unknown", 3000)).toBe(false);
    } finally {
      await store.close();
    }
  });

  it("reconnects its wake-up connection after the database cuts it, and answers long-polls parked meanwhile", async () => {
    const logged: string[] = [];
    const logger = { info: () => {}, error: (message: string) => void logged.push(message) };
    const { db, servers } = await replicas(2, { logger });
    const [a, b] = servers as [TestRegistry, TestRegistry];
    const alice = await a.register({ hostname: "alice", installation_id: "inst-alice" });
    const bob = await a.register({ hostname: "bob", installation_id: "inst-bob" });
    const polling = inbox(b, bob, "?wait=20");
    while (b.server.stats().longPolls === 0) await sleep(5);
    const admin = new pg.Client({ connectionString: db });
    await admin.connect();
    try {
      // Both replicas' LISTEN connections go, as in a database restart or a network fault.
      const cut = await admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity " +
          "WHERE datname = current_database() AND query = 'LISTEN agent_registry_inbox'",
      );
      expect(cut.rowCount).toBe(2);
      expect((await send(a, alice, { to_hostname: "bob", body: "while cut" })).status).toBe(200);
      const started = performance.now();
      const box = await polling;
      expect(box.body.messages.map((m) => m.body)).toEqual(["while cut"]);
      expect(performance.now() - started).toBeLessThan(10_000);
      // Wake-ups flow again through the new connections.
      const again = inbox(b, bob, `?wait=20&after=${box.body.next_cursor}`);
      while (b.server.stats().longPolls === 0) await sleep(5);
      await sleep(20);
      await send(a, alice, { to_hostname: "bob", body: "after" });
      const ackedAt = performance.now();
      expect((await again).body.messages.map((m) => m.body)).toEqual(["after"]);
      expect(performance.now() - ackedAt).toBeLessThan(1000);
      const listening = await admin.query(
        "SELECT COUNT(*) AS n FROM pg_stat_activity " +
          "WHERE datname = current_database() AND query = 'LISTEN agent_registry_inbox'",
      );
      expect(Number(listening.rows[0].n)).toBe(2);
      expect(logged).toContain("the inbox wake-up connection to PostgreSQL broke (reconnecting)");
      expect(b.server.stats().replicaBus).toEqual({ connected: true, reconnects: 1 });
    } finally {
      await admin.end();
    }
  });

  it("keeps serving from one process when another is killed with SIGKILL", { timeout: 60_000 }, async () => {
    const db = await (await testPostgres()).freshDatabase();
    const procs: ChildProcess[] = [];
    try {
      const [one, two] = await Promise.all([serveProcess(db), serveProcess(db)]);
      procs.push(one.proc, two.proc);
      const alice = (
        await http<AgentWithToken>(one.url, "POST", "/api/v1/agents/", {
          body: { hostname: "alice", installation_id: "inst-alice" },
        })
      ).body;
      const bob = (
        await http<AgentWithToken>(two.url, "POST", "/api/v1/agents/", {
          body: { hostname: "bob", installation_id: "inst-bob" },
        })
      ).body;
      // A long-poll on process two, woken by a send through process one.
      const polling = http<Inbox>(two.url, "GET", `/api/v1/agents/messages/inbox/inst-bob?wait=20`, {
        token: bob.agent_token,
      });
      await sleep(300);
      const sent = await http(one.url, "POST", "/api/v1/agents/messages/send", {
        token: alice.agent_token,
        body: { from_installation_id: "inst-alice", from_hostname: "alice", to_hostname: "bob", body: "hi" },
      });
      const ackedAt = performance.now();
      expect(sent.status).toBe(200);
      expect((await polling).body.messages.map((m) => m.body)).toEqual(["hi"]);
      expect(performance.now() - ackedAt).toBeLessThan(1000);
      one.proc.kill("SIGKILL");
      await new Promise((resolve) => one.proc.once("exit", resolve));
      // Everything acknowledged by the killed process is served by the survivor.
      const beat = await http(two.url, "POST", `/api/v1/agents/${alice.id}/heartbeat`, {
        token: alice.agent_token,
      });
      expect(beat.status).toBe(200);
      const found = await http<{ agents: Array<{ hostname: string }> }>(
        two.url,
        "GET",
        "/api/v1/agents/search?q=alice",
      );
      expect(found.body.agents.map((x) => x.hostname)).toEqual(["alice"]);
      const box = await http<Inbox>(two.url, "GET", "/api/v1/agents/messages/inbox/inst-bob", {
        token: bob.agent_token,
      });
      expect(box.body.messages.map((m) => m.body)).toEqual(["hi"]);
    } finally {
      for (const proc of procs) {
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill("SIGTERM");
          await new Promise((resolve) => proc.once("exit", resolve));
        }
      }
    }
  });
});
