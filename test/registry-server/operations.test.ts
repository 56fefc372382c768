// Operations endpoints on a real server: /livez and /readyz (store answers, store closed or hanging, draining),
// /metrics (route patterns never raw ids, long-poll waiters, held messages, heartbeat batches, pool use, its
// optional token) and their independence from the deployment key and from the request figures.
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { SqliteRegistryStore } from "../../src/registry-server/index.js";
import { StoreNotReadyError } from "../../src/registry-server/store-hooks.js";
import { type AgentWithToken, startTestRegistry, type TestRegistry } from "./helpers.js";

const ON_POSTGRES = process.env.REGISTRY_TEST_STORE === "postgres";

const get = async (r: TestRegistry, path: string, headers: Record<string, string> = {}) => {
  const res = await fetch(`${r.url}${path}`, { headers });
  return { status: res.status, text: await res.text(), headers: res.headers };
};

const metricsOf = async (r: TestRegistry, headers: Record<string, string> = {}) => {
  const res = await get(r, "/metrics", headers);
  expect(res.status).toBe(200);
  return res.text;
};

/** The value of one sample line (`name{labels} value`), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const send = (r: TestRegistry, from: AgentWithToken, to: string, id: string) =>
  r.call("POST", "/api/v1/agents/messages/send", {
    token: from.agent_token,
    body: {
      from_installation_id: from.installation_id,
      from_hostname: from.hostname,
      to_hostname: to,
      body: "hi",
      message_id: id,
    },
  });

/** A SQLite store whose readiness check is replaced (hanging, failing). */
class CheckedStore extends SqliteRegistryStore {
  constructor(readonly check: () => Promise<void> | void) {
    super({ path: ":memory:" });
  }
  override ready(): Promise<void> | void {
    return this.check();
  }
}

describe("probes", () => {
  it("answer without the deployment key: /livez 200, /readyz 200 while the store answers", async () => {
    const r = await startTestRegistry({ apiKey: "deploy-key" });
    expect(await get(r, "/livez")).toMatchObject({ status: 200, text: '{"ok":true}' });
    const ready = await get(r, "/readyz");
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toEqual({ ready: true });
    // The API itself still wants the key.
    expect((await r.call("GET", "/api/v1/agents/")).status).toBe(401);
  });

  it("/readyz is 503 with a reason once the store is closed; /livez stays 200", async () => {
    const store = new SqliteRegistryStore({ path: ":memory:" });
    const r = await startTestRegistry({ store });
    store.close();
    const ready = await get(r, "/readyz");
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.text)).toEqual({
      ready: false,
      detail: "store not ready: the database is closed",
    });
    expect(ready.headers.get("retry-after")).toBe("5");
    expect((await get(r, "/livez")).status).toBe(200);
  });

  it("/readyz is 503 when the store's check hangs past the timeout", async () => {
    const r = await startTestRegistry({
      store: new CheckedStore(() => new Promise(() => {})),
      readyTimeoutMs: 100,
    });
    const ready = await get(r, "/readyz");
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.text).detail).toBe("store did not answer within 100 ms");
  });

  it("/readyz does not show a failing check's own message (it may name hosts or credentials)", async () => {
    const warnings: string[] = [];
    const r = await startTestRegistry({
      store: new CheckedStore(() => {
        throw new Error("connect ECONNREFUSED postgres://registry:hunter2@db.internal:5432/registry");
      }),
      logger: { info: () => {}, error: () => {}, warn: (m, f) => warnings.push(`${m} ${JSON.stringify(f)}`) },
    });
    const ready = await get(r, "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.text).not.toContain("db.internal");
    expect(JSON.parse(ready.text).detail).toBe("store not ready: its check failed (see the server log)");
    expect(warnings.join("\n")).toContain("ECONNREFUSED");
  });

  it("/readyz shows a StoreNotReadyError's reason", async () => {
    const r = await startTestRegistry({
      store: new CheckedStore(() => {
        throw new StoreNotReadyError("schema at version 2, this server needs 3; run agent-registry migrate");
      }),
    });
    const ready = await get(r, "/readyz");
    expect(JSON.parse(ready.text).detail).toBe(
      "store not ready: schema at version 2, this server needs 3; run agent-registry migrate",
    );
  });

  it("runs one store check for many concurrent probes", async () => {
    let checks = 0;
    let release = () => {};
    const r = await startTestRegistry({
      store: new CheckedStore(() => {
        checks++;
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      }),
    });
    const probes = Array.from({ length: 8 }, () => get(r, "/readyz"));
    const deadline = Date.now() + 5000;
    while (checks === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    // Let all eight arrive while the first check is still running.
    await new Promise((res) => setTimeout(res, 300));
    release();
    expect((await Promise.all(probes)).map((p) => p.status)).toEqual(Array(8).fill(200));
    expect(checks).toBe(1);
  });

  it("refuses other methods than GET and HEAD with 405", async () => {
    const r = await startTestRegistry();
    const res = await fetch(`${r.url}/readyz`, { method: "POST" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD");
  });

  it("/readyz turns 503 as soon as the drain starts, while the drain delay still serves the API", async () => {
    const r = await startTestRegistry({ drainDelayMs: 400 });
    const bob = await r.register({ hostname: "bob", installation_id: "inst-bob" });
    const closed = r.server.close();
    const ready = await get(r, "/readyz");
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.text).detail).toMatch(/^draining/);
    expect(ready.headers.get("connection")).toBe("close");
    expect((await get(r, "/livez")).status).toBe(200);
    expect((await r.call("GET", `/api/v1/agents/${bob.id}`)).status).toBe(200);
    expect(sample(await metricsOf(r), "agent_registry_draining")).toBe(1);
    await closed;
    await expect(fetch(`${r.url}/livez`)).rejects.toThrow();
  });
});

describe("metrics", () => {
  it("counts requests by route pattern and status, never by raw path with ids", async () => {
    const r = await startTestRegistry();
    const alice = await r.register({ hostname: "alice", installation_id: "inst-alice-secret" });
    expect(
      (await r.call("POST", `/api/v1/agents/${alice.id}/heartbeat`, { token: alice.agent_token })).status,
    ).toBe(200);
    expect((await r.call("GET", `/api/v1/agents/${alice.id}`)).status).toBe(200);
    expect((await r.call("GET", "/api/v1/agents/no-such-id")).status).toBe(404);
    expect((await r.call("GET", "/no/such/route/inst-alice-secret")).status).toBe(404);
    await get(r, "/livez");
    await get(r, "/readyz");
    const text = await metricsOf(r);
    expect(
      sample(text, 'agent_registry_http_requests_total{method="POST",route="/api/v1/agents",status="201"}'),
    ).toBe(1);
    expect(
      sample(
        text,
        'agent_registry_http_requests_total{method="POST",route="/api/v1/agents/:id/heartbeat",status="200"}',
      ),
    ).toBe(1);
    expect(
      sample(
        text,
        'agent_registry_http_requests_total{method="GET",route="/api/v1/agents/:id",status="200"}',
      ),
    ).toBe(1);
    expect(
      sample(
        text,
        'agent_registry_http_requests_total{method="GET",route="/api/v1/agents/:id",status="404"}',
      ),
    ).toBe(1);
    expect(
      sample(text, 'agent_registry_http_requests_total{method="GET",route="(unmatched)",status="404"}'),
    ).toBe(1);
    expect(
      sample(
        text,
        'agent_registry_http_request_duration_seconds_count{method="POST",route="/api/v1/agents/:id/heartbeat",status="200"}',
      ),
    ).toBe(1);
    // No id, installation id or probe path in any series.
    expect(text).not.toContain(alice.id);
    expect(text).not.toContain("inst-alice-secret");
    expect(text).not.toContain("no-such-id");
    expect(text).not.toMatch(/route="\/(livez|readyz|metrics)"/);
  });

  it("keeps the series bounded whatever paths clients send", async () => {
    const r = await startTestRegistry();
    for (let i = 0; i < 40; i++) {
      await fetch(`${r.url}/api/v1/${i}/x${"y".repeat(i)}?q=${i}`, { method: i % 2 ? "GET" : "DELETE" });
    }
    const series = (await metricsOf(r))
      .split("\n")
      .filter((l) => l.startsWith("agent_registry_http_requests_total{"));
    expect(series).toEqual([
      'agent_registry_http_requests_total{method="DELETE",route="(unmatched)",status="404"} 20',
      'agent_registry_http_requests_total{method="GET",route="(unmatched)",status="404"} 20',
    ]);
  });

  it("labels a request refused for a missing key under its route", async () => {
    const r = await startTestRegistry({ apiKey: "deploy-key" });
    await r.call("GET", "/api/v1/agents/search?q=x");
    const text = await metricsOf(r);
    expect(
      sample(
        text,
        'agent_registry_http_requests_total{method="GET",route="/api/v1/agents/search",status="401"}',
      ),
    ).toBe(1);
  });

  it("reports parked long-polls, held relay messages and heartbeat write batches", async () => {
    const r = await startTestRegistry();
    const alice = await r.register({ hostname: "alice", installation_id: "inst-alice" });
    const bob = await r.register({ hostname: "bob", installation_id: "inst-bob" });
    const carol = await r.register({ hostname: "carol", installation_id: "inst-carol" });
    const polling = r.call("GET", "/api/v1/agents/messages/inbox/inst-carol?wait=10", {
      token: carol.agent_token,
    });
    const deadline = Date.now() + 5000;
    while (r.server.stats().longPolls === 0 && Date.now() < deadline)
      await new Promise((res) => setTimeout(res, 10));
    expect(sample(await metricsOf(r), "agent_registry_relay_inbox_waiters")).toBe(1);
    expect((await send(r, alice, "bob", "m1")).status).toBe(200);
    expect((await send(r, alice, "bob", "m2")).status).toBe(200);
    expect((await send(r, alice, "carol", "m3")).status).toBe(200);
    expect((await polling).status).toBe(200);
    for (const agent of [alice, bob]) {
      await r.call("POST", `/api/v1/agents/${agent.id}/heartbeat`, { token: agent.agent_token });
    }
    // SQLite: a read that sees last_seen writes the pending heartbeats first, one write-behind batch of both.
    // PostgreSQL: each heartbeat is answered once its batch is written, and these came one after the other.
    await r.call("GET", "/api/v1/agents/by-hostname/alice");
    const text = await metricsOf(r);
    expect(sample(text, "agent_registry_relay_inbox_waiters")).toBe(0);
    expect(sample(text, "agent_registry_relay_inbox_messages")).toBe(3);
    expect(sample(text, "agent_registry_heartbeat_batch_size_count")).toBe(ON_POSTGRES ? 2 : 1);
    expect(sample(text, "agent_registry_heartbeat_batch_size_sum")).toBe(2);
    expect(sample(text, "agent_registry_draining")).toBe(0);
  });

  it("shows database pool use only once a store reports it", async () => {
    const r = await startTestRegistry();
    // SQLite has no pool; the PostgreSQL store reports its pool from the start.
    if (ON_POSTGRES) expect(await metricsOf(r)).toMatch(/^agent_registry_db_pool_connections\{/m);
    else expect(await metricsOf(r)).not.toMatch(/^agent_registry_db_pool_connections\{/m);
    r.server.metrics.poolUsage({ total: 10, idle: 7, waiting: 2 });
    const text = await metricsOf(r);
    expect(sample(text, 'agent_registry_db_pool_connections{state="total"}')).toBe(10);
    expect(sample(text, 'agent_registry_db_pool_connections{state="idle"}')).toBe(7);
    expect(sample(text, 'agent_registry_db_pool_connections{state="waiting"}')).toBe(2);
  });

  it("keeps each server's figures apart (a registry per server, not the global one)", async () => {
    const one = await startTestRegistry();
    const two = await startTestRegistry();
    await one.register({ hostname: "alice", installation_id: "inst-alice" });
    const series = 'agent_registry_http_requests_total{method="POST",route="/api/v1/agents",status="201"}';
    expect(sample(await metricsOf(one), series)).toBe(1);
    expect(sample(await metricsOf(two), series)).toBeUndefined();
  });

  it("wants the metrics token when one is set; the probes never do", async () => {
    const r = await startTestRegistry({ metricsToken: "scrape-secret", apiKey: "deploy-key" });
    expect((await get(r, "/metrics")).status).toBe(401);
    expect((await get(r, "/metrics", { authorization: "Bearer wrong" })).status).toBe(401);
    expect((await get(r, "/metrics", { "x-registry-key": "deploy-key" })).status).toBe(401);
    const ok = await get(r, "/metrics", { authorization: "Bearer scrape-secret" });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect((await get(r, "/livez")).status).toBe(200);
    expect((await get(r, "/readyz")).status).toBe(200);
  });

  it("exports process figures when asked", async () => {
    const r = await startTestRegistry({ processMetrics: true });
    const text = await metricsOf(r);
    expect(text).toMatch(/^agent_registry_process_resident_memory_bytes \d/m);
    expect(text).toMatch(/^agent_registry_nodejs_eventloop_lag_seconds /m);
  });
});

describe("the operations port", () => {
  it("serves the probes and metrics apart from the API, and only them", async () => {
    const r = await startTestRegistry({ opsPort: 0 });
    const ops = r.server.opsUrl!;
    expect(ops).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await r.register({ hostname: "alice", installation_id: "inst-alice" });
    expect((await fetch(`${ops}/livez`)).status).toBe(200);
    expect((await fetch(`${ops}/readyz`)).status).toBe(200);
    const text = await (await fetch(`${ops}/metrics`)).text();
    expect(
      sample(text, 'agent_registry_http_requests_total{method="POST",route="/api/v1/agents",status="201"}'),
    ).toBe(1);
    expect((await fetch(`${ops}/api/v1/agents/`)).status).toBe(404);
    // The API's port no longer answers them: /metrics is not public there.
    for (const path of ["/livez", "/readyz", "/metrics"]) expect((await get(r, path)).status).toBe(404);
  });

  it("answers probes while the API is at its connection cap", async () => {
    const r = await startTestRegistry({ opsPort: 0, maxConnections: 2 });
    const held = [connect(r.server.port, "127.0.0.1"), connect(r.server.port, "127.0.0.1")];
    await Promise.all(held.map((s) => new Promise((resolve) => s.once("connect", resolve))));
    const deadline = Date.now() + 5000;
    while (r.server.stats().connections < 2 && Date.now() < deadline)
      await new Promise((res) => setTimeout(res, 10));
    expect((await get(r, "/api/v1/agents/")).status).toBe(503);
    expect((await fetch(`${r.server.opsUrl}/livez`)).status).toBe(200);
    expect((await fetch(`${r.server.opsUrl}/readyz`)).status).toBe(200);
    for (const socket of held) socket.destroy();
  });

  it("reports not ready for the whole drain and closes last", async () => {
    const r = await startTestRegistry({ opsPort: 0, drainDelayMs: 300 });
    const closed = r.server.close();
    const ready = await fetch(`${r.server.opsUrl}/readyz`);
    expect(ready.status).toBe(503);
    await closed;
    await expect(fetch(`${r.server.opsUrl}/livez`)).rejects.toThrow();
  });
});
