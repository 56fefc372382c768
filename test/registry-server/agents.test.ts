// Agents endpoints: upsert without id churn, 409 on a held hostname, PATCH, DELETE, heartbeat and liveness,
// get, list with filters and pagination, by-hostname.
import { describe, expect, it } from "vitest";
import { type AgentWithToken, startTestRegistry } from "./helpers.js";

describe("registration upsert", () => {
  it("creates a record with 201 and returns an agent token", async () => {
    const r = await startTestRegistry();
    const res = await r.call<AgentWithToken>("POST", "/api/v1/agents/", {
      body: {
        hostname: "alpha",
        installation_id: "inst-a",
        capabilities: ["Translate", "translate", "Code"],
      },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      hostname: "alpha",
      installation_id: "inst-a",
      capabilities: ["translate", "code"],
      status: "online",
      pilot_node_id: null,
      display_name: null,
      last_seen: "2026-01-01T00:00:00.000Z",
    });
    expect(res.body.agent_token).toMatch(/^art_/);
  });

  it("keeps the same id and token when the owner re-registers with its token, with 200", async () => {
    const r = await startTestRegistry();
    const first = await r.register({ hostname: "alpha", installation_id: "inst-a" });
    r.clock.advance(30);
    const again = await r.call<AgentWithToken>("POST", "/api/v1/agents", {
      token: first.agent_token,
      body: { hostname: "alpha", installation_id: "inst-a", display_name: "Alpha", pilot_node_id: 42 },
    });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.id);
    // Not rotated: a reply lost in transit must not leave the owner with a void token.
    expect(again.body.agent_token).toBe(first.agent_token);
    expect(again.body).toMatchObject({
      display_name: "Alpha",
      pilot_node_id: 42,
      created_at: first.created_at,
      installation_id: "inst-a",
      peer_id: first.peer_id,
    });
    const hb = await r.call("POST", `/api/v1/agents/${first.id}/heartbeat`, { token: first.agent_token });
    expect(hb.status).toBe(200);
  });

  it("gives the same id back when an installation registers again after deregistering (plugin reload)", async () => {
    const r = await startTestRegistry();
    const first = await r.register({ hostname: "alpha", installation_id: "inst-a" });
    const removed = await r.call("DELETE", `/api/v1/agents/${first.id}`, { token: first.agent_token });
    expect(removed.status).toBe(204);
    const again = await r.register({ hostname: "alpha", installation_id: "inst-a" }, first.agent_token);
    expect(again.id).toBe(first.id);
    const other = await r.register({ hostname: "beta", installation_id: "inst-b" });
    expect(other.id).not.toBe(first.id);
  });

  it("keeps the id when the installation changes its hostname", async () => {
    const r = await startTestRegistry();
    const first = await r.register({ hostname: "alpha", installation_id: "inst-a" });
    const renamed = await r.register({ hostname: "alpha-two", installation_id: "inst-a" }, first.agent_token);
    expect(renamed.id).toBe(first.id);
    expect((await r.call("GET", "/api/v1/agents/by-hostname/alpha")).status).toBe(404);
  });

  it("answers 409 when another online installation holds the hostname", async () => {
    const r = await startTestRegistry();
    await r.register({ hostname: "alpha", installation_id: "inst-a" });
    const res = await r.call("POST", "/api/v1/agents/", {
      body: { hostname: "alpha", installation_id: "inst-b" },
    });
    expect(res.status).toBe(409);
    expect(String(res.body.detail)).toMatch(
      /held by another registration \(online\) until at least 2026-01-08T00:03:00.000Z/,
    );
  });

  it("lets another installation take a hostname once its holder's release period is over", async () => {
    const r = await startTestRegistry({ ttlSeconds: 180, offlineRetentionSeconds: 3600 });
    const old = await r.register({ hostname: "alpha", installation_id: "inst-a" });
    r.clock.advance(181);
    const early = await r.call("POST", "/api/v1/agents/", {
      body: { hostname: "alpha", installation_id: "inst-b" },
    });
    expect(early.status).toBe(409);
    r.clock.advance(3600);
    const res = await r.call<AgentWithToken>("POST", "/api/v1/agents/", {
      body: { hostname: "alpha", installation_id: "inst-b" },
    });
    expect(res.status).toBe(201);
    expect(res.body.id).not.toBe(old.id);
    expect((await r.call("GET", `/api/v1/agents/${old.id}`)).status).toBe(404);
  });

  it("stores exactly one record when 100 registrations of one hostname race", async () => {
    const r = await startTestRegistry();
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        r.call<AgentWithToken>("POST", "/api/v1/agents/", {
          body: { hostname: "racer", installation_id: i % 2 === 0 ? "inst-even" : `inst-${i}` },
        }),
      ),
    );
    const ok = results.filter((x) => x.status === 200 || x.status === 201);
    // 401: the winner's installation again without its token; 409: other installations.
    expect(results.every((x) => [201, 401, 409].includes(x.status))).toBe(true);
    expect(results.filter((x) => x.status === 201)).toHaveLength(1);
    expect(new Set(ok.map((x) => x.body.id)).size).toBe(1);
    const list = await r.call<{ total: number }>("GET", "/api/v1/agents/?hostname=racer");
    expect(list.body.total).toBe(1);
  });
});

describe("heartbeat and liveness", () => {
  it("answers 200 with last_seen and ttl_seconds", async () => {
    const r = await startTestRegistry({ ttlSeconds: 180 });
    const a = await r.register({ hostname: "alpha", installation_id: "inst-a" });
    r.clock.advance(60);
    const hb = await r.call("POST", `/api/v1/agents/${a.id}/heartbeat`, { token: a.agent_token });
    expect(hb.status).toBe(200);
    expect(hb.body).toEqual({ ok: true, last_seen: "2026-01-01T00:01:00.000Z", ttl_seconds: 180 });
  });

  it("keeps an agent online while it heartbeats within the ttl", async () => {
    const r = await startTestRegistry({ ttlSeconds: 180 });
    const a = await r.register({ hostname: "alpha", installation_id: "inst-a" });
    for (let i = 0; i < 5; i++) {
      r.clock.advance(170);
      expect(
        (await r.call("POST", `/api/v1/agents/${a.id}/heartbeat`, { token: a.agent_token })).status,
      ).toBe(200);
    }
    expect((await r.call("GET", `/api/v1/agents/${a.id}`)).body.status).toBe("online");
  });

  it("answers 404 once the agent expired, and the record shows offline", async () => {
    const r = await startTestRegistry({ ttlSeconds: 180 });
    const a = await r.register({ hostname: "alpha", installation_id: "inst-a" });
    r.clock.advance(180);
    expect((await r.call("POST", `/api/v1/agents/${a.id}/heartbeat`, { token: a.agent_token })).status).toBe(
      200,
    );
    r.clock.advance(181);
    const hb = await r.call("POST", `/api/v1/agents/${a.id}/heartbeat`, { token: a.agent_token });
    expect(hb.status).toBe(404);
    expect(String(hb.body.detail)).toMatch(/register again/);
    expect((await r.call("GET", `/api/v1/agents/${a.id}`)).body.status).toBe("offline");
  });

  it("answers 404 for an unknown id", async () => {
    const r = await startTestRegistry();
    expect((await r.call("POST", "/api/v1/agents/nope/heartbeat")).status).toBe(404);
  });

  it("re-registering after expiry brings back the same id", async () => {
    const r = await startTestRegistry();
    const a = await r.register({ hostname: "alpha", installation_id: "inst-a" });
    r.clock.advance(1000);
    const again = await r.register({ hostname: "alpha", installation_id: "inst-a" }, a.agent_token);
    expect(again.id).toBe(a.id);
    expect(again.status).toBe("online");
  });

  it("purges agents offline past the retention period", async () => {
    const r = await startTestRegistry({ ttlSeconds: 180, offlineRetentionSeconds: 3600 });
    const a = await r.register({ hostname: "alpha", installation_id: "inst-a" });
    r.clock.advance(180 + 3599);
    expect((await r.server.sweep()).agents).toBe(0);
    r.clock.advance(2);
    expect((await r.server.sweep()).agents).toBe(1);
    expect((await r.call("GET", `/api/v1/agents/${a.id}`)).status).toBe(404);
  });
});

describe("get, patch, delete", () => {
  it("gets a record by id and 404s an unknown one", async () => {
    const r = await startTestRegistry();
    const a = await r.register({ hostname: "alpha" });
    const got = await r.call("GET", `/api/v1/agents/${a.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ id: a.id, hostname: "alpha" });
    expect(got.body).not.toHaveProperty("agent_token");
    expect((await r.call("GET", "/api/v1/agents/unknown-id")).status).toBe(404);
  });

  it("patches a subset of fields and keeps the rest", async () => {
    const r = await startTestRegistry();
    const a = await r.register({
      hostname: "alpha",
      installation_id: "i",
      description: "d",
      capabilities: ["x"],
    });
    r.clock.advance(5);
    const res = await r.call("PATCH", `/api/v1/agents/${a.id}`, {
      token: a.agent_token,
      body: { display_name: "Alpha", capabilities: ["Y", "z"] },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      id: a.id,
      description: "d",
      display_name: "Alpha",
      capabilities: ["y", "z"],
      updated_at: "2026-01-01T00:00:05.000Z",
      created_at: "2026-01-01T00:00:00.000Z",
    });
    const cleared = await r.call("PATCH", `/api/v1/agents/${a.id}`, {
      token: a.agent_token,
      body: { description: null },
    });
    expect(cleared.body.description).toBeNull();
  });

  it("refuses a PATCH to a hostname another online agent holds (409) and 404s unknown ids", async () => {
    const r = await startTestRegistry();
    const a = await r.register({ hostname: "alpha", installation_id: "a" });
    await r.register({ hostname: "beta", installation_id: "b" });
    const res = await r.call("PATCH", `/api/v1/agents/${a.id}`, {
      token: a.agent_token,
      body: { hostname: "beta" },
    });
    expect(res.status).toBe(409);
    expect((await r.call("PATCH", "/api/v1/agents/nope", { token: a.agent_token, body: {} })).status).toBe(
      404,
    );
  });

  it("deletes with 204: the record stays offline, holding its hostname, hidden from by-hostname", async () => {
    const r = await startTestRegistry();
    const a = await r.register({ hostname: "alpha", installation_id: "a" });
    const del = await r.call("DELETE", `/api/v1/agents/${a.id}`, { token: a.agent_token });
    expect(del.status).toBe(204);
    expect((await r.call("GET", `/api/v1/agents/${a.id}`)).body.status).toBe("offline");
    expect((await r.call("GET", "/api/v1/agents/by-hostname/alpha")).status).toBe(404);
    expect((await r.call("POST", `/api/v1/agents/${a.id}/heartbeat`, { token: a.agent_token })).status).toBe(
      404,
    );
    expect((await r.call("DELETE", `/api/v1/agents/${a.id}`, { token: a.agent_token })).status).toBe(204);
  });

  it("deletes the record at once with agent tokens off (the original, insecure behaviour)", async () => {
    const r = await startTestRegistry({ agentTokens: false });
    const a = await r.register({ hostname: "alpha", installation_id: "a" });
    expect((await r.call("DELETE", `/api/v1/agents/${a.id}`)).status).toBe(204);
    expect((await r.call("GET", `/api/v1/agents/${a.id}`)).status).toBe(404);
    expect((await r.call("DELETE", `/api/v1/agents/${a.id}`)).status).toBe(404);
  });
});

describe("list and by-hostname", () => {
  it("lists online agents with filters, pagination and a correct total", async () => {
    const r = await startTestRegistry();
    for (let i = 0; i < 7; i++) {
      await r.register({ hostname: `agent-${i}`, installation_id: `inst-${i}`, pilot_node_id: 100 + i });
      r.clock.advance(1);
    }
    const page1 = await r.call<{ agents: AgentWithToken[]; total: number }>("GET", "/api/v1/agents/?limit=3");
    expect(page1.body.total).toBe(7);
    expect(page1.body.agents.map((a) => a.hostname)).toEqual(["agent-0", "agent-1", "agent-2"]);
    const page3 = await r.call<{ agents: AgentWithToken[]; total: number }>(
      "GET",
      "/api/v1/agents/?limit=3&offset=6",
    );
    expect(page3.body.agents.map((a) => a.hostname)).toEqual(["agent-6"]);
    const byNode = await r.call<{ agents: AgentWithToken[]; total: number }>(
      "GET",
      "/api/v1/agents/?pilot_node_id=103",
    );
    expect(byNode.body.agents.map((a) => a.hostname)).toEqual(["agent-3"]);
    const byInst = await r.call<{ agents: AgentWithToken[]; total: number }>(
      "GET",
      "/api/v1/agents/?installation_id=inst-5",
    );
    expect(byInst.body.agents.map((a) => a.hostname)).toEqual(["agent-5"]);
    r.clock.advance(176); // now t=183 s: agent-0..2 (seen at 0-2 s) are past the 180 s ttl
    const online = await r.call<{ total: number }>("GET", "/api/v1/agents/");
    expect(online.body.total).toBe(4);
    const all = await r.call<{ total: number }>("GET", "/api/v1/agents/?include_offline=true");
    expect(all.body.total).toBe(7);
  });

  it("finds by hostname, hides offline unless include_offline, 404s unknown", async () => {
    const r = await startTestRegistry();
    const a = await r.register({ hostname: "alpha", installation_id: "a" });
    expect((await r.call("GET", "/api/v1/agents/by-hostname/alpha")).body.id).toBe(a.id);
    r.clock.advance(500);
    expect((await r.call("GET", "/api/v1/agents/by-hostname/alpha")).status).toBe(404);
    const off = await r.call("GET", "/api/v1/agents/by-hostname/alpha?include_offline=true");
    expect(off.status).toBe(200);
    expect(off.body.status).toBe("offline");
    expect((await r.call("GET", "/api/v1/agents/by-hostname/nobody")).status).toBe(404);
  });

  it("never routes /search, /messages or /by-hostname to an agent id", async () => {
    const r = await startTestRegistry();
    expect((await r.call("GET", "/api/v1/agents/search")).status).toBe(200);
    expect((await r.call("GET", "/api/v1/agents/search/")).status).toBe(200);
    expect((await r.call("GET", "/api/v1/agents/messages")).status).toBe(404);
    expect((await r.call("GET", "/api/v1/agents/by-hostname")).status).toBe(404);
    expect((await r.call("DELETE", "/api/v1/agents/search")).status).toBe(405);
    expect((await r.call("POST", "/api/v1/agents/messages/heartbeat")).status).toBe(404);
  });
});
