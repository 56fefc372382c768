// The client against a real server shaped like the original registry: proves each tolerance the contract asks
// for (bare arrays, no tokens, no PATCH, new ids on every POST, no status, ignored search offset and match,
// missing relay and trust routes, HTML 502, slow answers, base path).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createRegistryClient,
  isMissingRoute,
  type RegistryClient,
} from "../../../src/adapters/registry/client.js";
import { RegistryError } from "../../../src/adapters/registry/errors.js";
import type { AgentMetadata } from "../../../src/adapters/registry/types.js";
import { toPlain } from "../../../src/runtime/plain-error.js";
import {
  type LegacyRegistryServer,
  startLegacyRegistryServer,
} from "../../fixtures/legacy-registry-server.js";
import { caught as caughtAs } from "../../support/caught.js";

const KEY = "legacy-deployment-key-123";

const alice: AgentMetadata = {
  hostname: "alice",
  installationId: "inst-alice",
  pilotNodeId: "4242",
  pilotAddress: "0:0000.0000.1092",
  displayName: "Alice",
  description: "Books meetings",
  capabilities: ["Calendar", "email", "calendar"],
};

let server: LegacyRegistryServer;
let client: RegistryClient;

beforeEach(async () => {
  server = await startLegacyRegistryServer({ basePath: "/registry", apiKey: KEY });
  client = createRegistryClient({ baseUrl: `${server.url}/`, apiKey: KEY, timeoutMs: 2_000 });
});

afterEach(async () => {
  await server.close();
});

/** A variant with the relay and trust routes the original never had, for the client's shape tolerance. */
async function unofficial(): Promise<{ server: LegacyRegistryServer; client: RegistryClient }> {
  const extra = await startLegacyRegistryServer({ apiKey: KEY, unofficialRelayAndTrust: true });
  extraServers.push(extra);
  return {
    server: extra,
    client: createRegistryClient({ baseUrl: extra.url, apiKey: KEY, timeoutMs: 2_000 }),
  };
}

const extraServers: LegacyRegistryServer[] = [];
afterEach(async () => {
  await Promise.all(extraServers.splice(0).map((s) => s.close()));
});

const caught = (promise: Promise<unknown>) => caughtAs(promise, RegistryError);

describe("registry client against the original server", () => {
  it("registers without a token, keeps the base path and sends the deployment key", async () => {
    const result = await client.register(alice);
    expect(result.agentToken).toBeNull();
    expect(result.created).toBe(false);
    expect(result.record).toMatchObject({
      id: "1",
      hostname: "alice",
      installationId: "inst-alice",
      pilotNodeId: "4242",
      capabilities: ["calendar", "email"],
      // The original sends no status: the client does not claim the agent online.
      status: "unknown",
      lastSeen: null,
      updatedAt: null,
    });
    expect(result.record).not.toHaveProperty("p2p_endpoint");
    const req = server.requests.at(-1)!;
    expect(req.path).toBe("/api/v1/agents/");
    expect(req.headers["x-registry-key"]).toBe(KEY);
    expect(req.headers.authorization).toBeUndefined();
    expect(req.body).toMatchObject({
      hostname: "alice",
      installation_id: "inst-alice",
      display_name: "Alice",
    });
  });

  it("tolerates a baseUrl that already ends in /api/v1", async () => {
    const c = createRegistryClient({ baseUrl: `${server.url}/api/v1/`, apiKey: KEY });
    await c.register(alice);
    expect(server.requests.at(-1)!.path).toBe("/api/v1/agents/");
  });

  it("heartbeats when the server answers without last_seen or ttl", async () => {
    const { record } = await client.register(alice);
    await expect(client.heartbeat(record.id, null)).resolves.toEqual({ lastSeen: null, ttlSeconds: null });
  });

  it("reports an unknown agent's heartbeat as not_found so the caller re-registers", async () => {
    const err = await caught(client.heartbeat("999", null));
    expect(err.kind).toBe("not_found");
    expect(err.status).toBe(404);
    expect(err.operation).toBe("heartbeat");
    expect(err.message).toMatch(/register again/);
  });

  it("falls back to a POST upsert when PATCH answers 405; the original then issues a new id", async () => {
    const { record } = await client.register(alice);
    const result = await client.patch(
      record.id,
      null,
      { description: "Books meetings and dinners" },
      { fallback: alice },
    );
    expect(result.via).toBe("upsert");
    // The original makes a new record on every POST and deletes the old holder of the hostname.
    expect(result.record.id).not.toBe(record.id);
    expect(result.record.description).toBe("Books meetings and dinners");
    expect(result.agentToken).toBeNull();
    expect(server.requests.map((r) => r.method)).toEqual(["POST", "PATCH", "POST"]);
    await expect(client.get(record.id)).resolves.toBeNull();
  });

  it("builds the upsert from the current record when no fallback metadata is given", async () => {
    const { record } = await client.register(alice);
    const result = await client.patch(record.id, null, { capabilities: ["travel"] });
    expect(result.via).toBe("upsert");
    expect(result.record).toMatchObject({ capabilities: ["travel"], displayName: "Alice" });
    expect(result.record.id).not.toBe(record.id);
  });

  it("lists a bare array as {agents, total}", async () => {
    await client.register(alice);
    await client.register({ ...alice, hostname: "bob", installationId: "inst-bob", pilotNodeId: "7" });
    const page = await client.list();
    expect(page.total).toBe(2);
    expect(page.agents.map((a) => a.hostname)).toEqual(["alice", "bob"]);
  });

  it("finds an agent by Pilot node id even though the server ignores the filter, confirmed online", async () => {
    await client.register(alice);
    await client.register({ ...alice, hostname: "bob", installationId: "inst-bob", pilotNodeId: "7" });
    const bob = await client.byNodeId("7");
    expect(bob).toMatchObject({ hostname: "bob", status: "online" });
    const listed = server.requests.find((r) => r.method === "GET" && r.path === "/api/v1/agents/");
    expect(listed?.query.get("pilot_node_id")).toBe("7");
    // Confirmed through by-hostname, which the original answers for online agents only.
    expect(server.requests.at(-1)!.path).toBe("/api/v1/agents/by-hostname/bob");
    await expect(client.byNodeId("8")).resolves.toBeNull();
  });

  it("answers a hostname through by-hostname, taking 'Agent not found or offline' as null", async () => {
    await client.register(alice);
    await expect(client.byHostname("alice")).resolves.toMatchObject({
      hostname: "alice",
      id: "1",
      status: "online",
    });
    await expect(client.byHostname("nobody")).resolves.toBeNull();
    expect(server.requests.at(-1)!.path).toBe("/api/v1/agents/by-hostname/nobody");
  });

  it("returns null for an unknown agent id", async () => {
    await expect(client.get("77")).resolves.toBeNull();
  });

  it("searches with clamped limit and at most 20 capabilities, reading a bare array", async () => {
    await client.register(alice);
    const caps = Array.from({ length: 30 }, (_, i) => `cap-${i}`);
    const page = await client.search({ q: "  meetings ", capabilities: [...caps, "calendar"], limit: 500 });
    const req = server.requests.at(-1)!;
    expect(req.query.get("limit")).toBe("50");
    expect(req.query.getAll("capabilities")).toHaveLength(20);
    expect(req.query.get("q")).toBe("meetings");
    expect(req.path).toBe("/api/v1/agents/search/");
    // The first search learned that this server only answers "/search/": one request from now on.
    expect(server.requests.slice(-2).map((r) => r.path)).toEqual([
      "/api/v1/agents/search",
      "/api/v1/agents/search/",
    ]);
    const before = server.requests.length;
    await client.search({ q: "x" });
    expect(server.requests.length).toBe(before + 1);
    await client.search({ q: Array.from({ length: 40 }, (_, i) => `w${i}`).join("  ") });
    expect(server.requests.at(-1)!.query.get("q")?.split(" ")).toHaveLength(32);
    expect(page).toEqual({ agents: [], total: 0 });
    const hit = await client.search({ q: "meetings", limit: 0 });
    expect(server.requests.at(-1)!.query.get("limit")).toBe("1");
    expect(hit.agents.map((a) => a.hostname)).toEqual(["alice"]);
  });

  it("deregisters, and reports an already-gone agent as not removed", async () => {
    const { record } = await client.register(alice);
    await expect(client.deregister(record.id, null)).resolves.toEqual({ removed: true });
    await expect(client.deregister(record.id, null)).resolves.toEqual({ removed: false });
  });

  it("sends a relay message when the server returns no message_id", async () => {
    const { client, server } = await unofficial();
    const result = await client.sendMessage({
      fromInstallationId: "inst-alice",
      fromHostname: "alice",
      toHostname: "bob",
      body: "hi",
      messageId: "m-1",
    });
    expect(result).toEqual({ messageId: "m-1" });
    expect(server.requests.at(-1)!.body).toMatchObject({ to_hostname: "bob", message_id: "m-1" });
  });

  it("treats 200 with ok:false from a relay send as a refusal", async () => {
    const { client } = await unofficial();
    const err = await caught(
      client.sendMessage({
        fromInstallationId: "inst-alice",
        fromHostname: "alice",
        toHostname: "nobody",
        body: "hi",
      }),
    );
    expect(err.operation).toBe("relay.send");
    expect(err.message).toContain("recipient not found");
  });

  it("reports the missing relay and trust routes as not_found, recognisably a missing route", async () => {
    for (const call of [
      () => client.readInbox({ installationId: "inst-alice" }),
      () =>
        client.sendMessage({ fromInstallationId: "a", fromHostname: "alice", toHostname: "bob", body: "hi" }),
      () => client.listTrust("inst-alice"),
      () => client.requestTrust({ fromId: "a", toId: "b" }),
    ]) {
      const err = await caught(call());
      expect(err.kind).toBe("not_found");
      expect(isMissingRoute(err)).toBe(true);
    }
  });

  it("reads pending trust from `relationships`/`requester_id` and the list likewise", async () => {
    const { client } = await unofficial();
    await expect(
      client.requestTrust({
        fromId: "inst-bob",
        toId: "inst-alice",
        introduction: "hello",
        assistantName: "Bob",
      }),
    ).resolves.toEqual({ status: "pending" });
    const { requests } = await client.pendingTrust("inst-alice");
    expect(requests).toEqual([
      {
        fromId: "inst-bob",
        fromAssistantName: "Bob",
        fromHumanName: null,
        introduction: "hello",
        createdAt: expect.any(String),
      },
    ]);
    await expect(client.approveTrust({ fromId: "inst-bob", toId: "inst-alice" })).resolves.toEqual({
      status: "approved",
    });
    const { peers } = await client.listTrust("inst-alice");
    expect(peers).toEqual([
      {
        requesterId: "inst-bob",
        targetId: "inst-alice",
        status: "approved",
        createdAt: expect.any(String),
        approvedAt: null,
        updatedAt: null,
        peerHostname: null,
        introduction: "hello",
        assistantName: "Bob",
        humanName: null,
      },
    ]);
    // It ignores the paging parameters and answers the whole list: no cursor to continue from.
    await expect(client.listTrustChanges("inst-alice", { after: null, limit: 1 })).resolves.toEqual({
      peers,
      nextCursor: null,
      hasMore: false,
    });
  });

  it("sends the deployment key as bearer on trust calls when it holds no agent token", async () => {
    const { client, server } = await unofficial();
    await client.listTrust("inst-alice");
    expect(server.requests.at(-1)!.headers.authorization).toBe(`Bearer ${KEY}`);
    await client.listTrust("inst-alice", { token: "agent-token-xyz" });
    expect(server.requests.at(-1)!.headers.authorization).toBe("Bearer agent-token-xyz");
  });

  it("turns an HTML 502 into a clear http error, not a JSON crash, and works between them", async () => {
    server.setMode({ kind: "html502", every: 2 });
    await expect(client.register(alice)).resolves.toMatchObject({ record: { hostname: "alice" } });
    const err = await caught(client.register(alice));
    expect(err.kind).toBe("http");
    expect(err.status).toBe(502);
    expect(err.operation).toBe("register");
    expect(err.message).toContain("502 Bad Gateway");
    expect(err.message).toContain("non-JSON text/html");
    expect(err.message).toMatch(/retry later/);
    expect(err.message).not.toContain("<html>");
  });

  it("reports an HTML page with status 200 as a bad response naming the endpoint", async () => {
    server.setMode({ kind: "html200" });
    const err = await caught(client.search({ q: "x" }));
    expect(err.kind).toBe("bad_response");
    expect(err.message).toContain("GET /api/v1/agents/search");
    expect(err.status).toBe(200);
    expect(err.message).toContain("non-JSON text/html");
    expect(err.message).toMatch(/registryUrl/);
  });

  it("refuses a runaway answer larger than the response cap", async () => {
    server.setMode({ kind: "huge", bytes: 1024 * 1024 });
    const capped = createRegistryClient({ baseUrl: server.url, apiKey: KEY, maxResponseBytes: 256 * 1024 });
    const err = await caught(capped.list());
    expect(err.kind).toBe("bad_response");
    expect(err.message).toMatch(/more than \d+ bytes/);
  });

  it("reports a record of the wrong shape as a bad response naming the field", async () => {
    server.agents.set(9, { id: 9 } as never);
    const err = await caught(client.get("9"));
    expect(err.kind).toBe("bad_response");
    expect(err.operation).toBe("get");
    expect(err.message).toContain("hostname");
  });

  it("does not follow a redirect (the key would go along) and says which address to configure", async () => {
    server.setMode({
      kind: "redirect",
      location: "https://registry.example.org/registry/api/v1/agents/?x=1",
    });
    const err = await caught(client.list());
    expect(err.kind).toBe("http");
    expect(err.status).toBe(307);
    expect(err.message).toContain("https://registry.example.org/registry/api/v1/agents/");
    expect(err.message).not.toContain("x=1");
    expect(err.message).toMatch(/set registryUrl/);
  });

  it("times out a slow answer with a timeout error", async () => {
    server.setMode({ kind: "slow", delayMs: 3_000 });
    const quick = createRegistryClient({ baseUrl: server.url, apiKey: KEY, timeoutMs: 200 });
    const started = Date.now();
    const err = await caught(quick.list());
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(err.kind).toBe("timeout");
    expect(err.message).toMatch(/within 200 ms/);
  });

  it("distinguishes a caller's abort from a timeout", async () => {
    server.setMode({ kind: "slow", delayMs: 3_000 });
    const controller = new AbortController();
    const pending = caught(client.list({}, { signal: controller.signal }));
    setTimeout(() => controller.abort(), 50);
    const err = await pending;
    expect(err.kind).toBe("aborted");
  });

  it("says unauthorized and what to set when the key is wrong, without echoing the key", async () => {
    const wrong = createRegistryClient({ baseUrl: server.url, apiKey: "wrong-key-456" });
    const err = await caught(wrong.list());
    expect(err.kind).toBe("unauthorized");
    expect(err.message).toMatch(/registryApiKey/);
    expect(err.message).not.toContain("wrong-key-456");
    expect(JSON.parse(JSON.stringify(toPlain(err, "list")))).toEqual({
      kind: "unauthorized",
      operation: "list",
      message: err.message,
      status: 401,
    });
  });

  it("deletes the record and answers 204 without a body; heartbeat is {ok:true}", async () => {
    const { record } = await client.register(alice);
    await expect(client.heartbeat(record.id, null)).resolves.toEqual({ lastSeen: null, ttlSeconds: null });
    await expect(client.deregister(record.id, null)).resolves.toEqual({ removed: true });
    await expect(client.heartbeat(record.id, null)).rejects.toMatchObject({ kind: "not_found" });
  });

  it("keeps agents without a status as unknown in the list, and hides expired ones wherever it can tell", async () => {
    const clock = { t: Date.parse("2026-01-01T00:00:00Z") };
    const aged = await startLegacyRegistryServer({ ttlSeconds: 180, now: () => clock.t });
    try {
      const c = createRegistryClient({ baseUrl: aged.url, timeoutMs: 2_000 });
      await c.register({ ...alice, pilotNodeId: "4242" });
      clock.t += 181_000;
      await c.register({ ...alice, hostname: "bob", installationId: "inst-bob", pilotNodeId: "7" });
      // The original still lists alice after her ttl and says nothing about liveness.
      const page = await c.list();
      expect(page.agents.map((a) => [a.hostname, a.status])).toEqual([
        ["alice", "unknown"],
        ["bob", "unknown"],
      ]);
      // Where it matters, the client asks by-hostname, which does know.
      await expect(c.byNodeId("4242")).resolves.toBeNull();
      await expect(c.byNodeId("7")).resolves.toMatchObject({ hostname: "bob", status: "online" });
      await expect(c.byHostname("alice")).resolves.toBeNull();
      expect((await c.search({ q: "meetings" })).agents.map((a) => a.hostname)).toEqual(["bob"]);
    } finally {
      await aged.close();
    }
  });

  it("detects an ignored search offset and cuts the page from the first results, saying so", async () => {
    for (let i = 0; i < 5; i++) {
      await client.register({ ...alice, hostname: `agent-${i}`, installationId: `inst-${i}` });
    }
    const first = await client.search({ q: "agent", limit: 2 });
    expect(first.agents.map((a) => a.hostname)).toEqual(["agent-0", "agent-1"]);
    expect(first.caveats).toBeUndefined();
    const second = await client.search({ q: "agent", limit: 2, offset: 2 });
    expect(second.agents.map((a) => a.hostname)).toEqual(["agent-2", "agent-3"]);
    expect(second.caveats?.join(" ")).toMatch(/ignores search offsets/);
    const beyond = await client.search({ q: "agent", limit: 2, offset: 60 });
    expect(beyond.agents).toEqual([]);
    expect(beyond.caveats?.join(" ")).toMatch(/cannot be reached/);
  });

  it('filters match "all" itself when the registry returns any-capability hits, saying so', async () => {
    await client.register({ ...alice, capabilities: ["calendar", "email"] });
    await client.register({ ...alice, hostname: "bob", installationId: "inst-bob", capabilities: ["email"] });
    const page = await client.search({ capabilities: ["calendar", "email"], match: "all" });
    expect(page.agents.map((a) => a.hostname)).toEqual(["alice"]);
    expect(page.total).toBe(1);
    expect(page.caveats?.join(" ")).toMatch(/does not support match "all"/);
    const any = await client.search({ capabilities: ["calendar", "email"], match: "any" });
    expect(any.agents.map((a) => a.hostname)).toEqual(["alice", "bob"]);
    expect(any.caveats).toBeUndefined();
  });

  it("reports a 422 as invalid with the server's detail", async () => {
    const err = await caught(client.register({ ...alice, hostname: "Not_Valid" }));
    expect(err.kind).toBe("invalid");
    expect(err.message).toContain("invalid hostname");
  });
});

describe("registry client without a server", () => {
  it("reports an unreachable registry with the next step", async () => {
    const gone = await startLegacyRegistryServer();
    const url = gone.url;
    await gone.close();
    const c = createRegistryClient({ baseUrl: url, apiKey: "secret-key-789" });
    const err = await caught(c.heartbeat("1", "secret-token-000"));
    expect(err.kind).toBe("unreachable");
    expect(err.message).toContain(`Agent Registry at ${url} is unreachable (ECONNREFUSED)`);
    expect(err.message).toContain("npx agent-registry serve");
    expect(err.message).not.toMatch(/secret/);
  });

  it("rejects a non-http registryUrl at construction", () => {
    expect(() => createRegistryClient({ baseUrl: "file:///etc/passwd" })).toThrow(RegistryError);
  });

  it("rejects a deployment key that cannot be a header value, without repeating it", () => {
    let err: unknown;
    try {
      createRegistryClient({ baseUrl: "http://127.0.0.1:8001", apiKey: "secret key\n" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).kind).toBe("invalid");
    expect((err as RegistryError).message).not.toContain("secret");
  });

  it("maps a non-RegistryError to a generic plain error with the caller's operation", () => {
    expect(toPlain(new Error("boom"), "list")).toEqual({
      kind: "http",
      operation: "list",
      message: "boom",
    });
  });
});
