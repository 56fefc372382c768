// The client against the project's reference registry server (strict, with agent tokens and extensions):
// the full lifecycle, relay and trust, end to end over real HTTP on 127.0.0.1.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createRegistryClient, type RegistryClient } from "../../../src/adapters/registry/client.js";
import { RegistryError } from "../../../src/adapters/registry/errors.js";
import type { AgentMetadata } from "../../../src/adapters/registry/types.js";
import { type RegistryServerHandle, startRegistryServer } from "../../../src/registry-server/server.js";
import { caught as caughtAs } from "../../support/caught.js";

const KEY = "reference-deployment-key";

const alice: AgentMetadata = {
  hostname: "alice",
  installationId: "inst-alice",
  pilotNodeId: "4242",
  pilotAddress: "0:0000.0000.1092",
  displayName: "Alice",
  description: "Books meetings",
  capabilities: ["calendar", "email"],
};
const bob: AgentMetadata = {
  hostname: "bob",
  installationId: "inst-bob",
  pilotNodeId: "7",
  displayName: "Bob",
  description: "Plans trips",
  capabilities: ["travel"],
};

let server: RegistryServerHandle;
let client: RegistryClient;

beforeEach(async () => {
  server = await startRegistryServer({ port: 0, db: ":memory:", apiKey: KEY, sweepIntervalMs: 0 });
  client = createRegistryClient({ baseUrl: server.url, apiKey: KEY, timeoutMs: 5_000 });
});

afterEach(async () => {
  await server.close();
});

const caught = (promise: Promise<unknown>) => caughtAs(promise, RegistryError);

describe("registry client against the reference server", () => {
  it("registers with a token, and re-registering with it keeps the id and the token", async () => {
    const first = await client.register(alice);
    expect(first.created).toBe(true);
    expect(first.agentToken).toEqual(expect.any(String));
    // installationId holds the public peer id, as for every record (the secret is not needed by peers).
    expect(first.record).toMatchObject({ hostname: "alice", status: "online" });
    expect(first.record.peerId).toMatch(/^p_[0-9a-f]{32}$/);
    expect(first.record.installationId).toBe(first.record.peerId);
    const again = await client.register(alice, { token: first.agentToken });
    expect(again.created).toBe(false);
    expect(again.record.id).toBe(first.record.id);
    expect(again.agentToken).toBe(first.agentToken);
  });

  it("is refused re-registration without the owner's token (unauthorized, with the release hint)", async () => {
    await client.register(alice);
    const err = await caught(client.register(alice));
    expect(err.kind).toBe("unauthorized");
    expect(err.detail).toMatch(/agent-registry release/);
  });

  it("heartbeats with the token and gets last_seen and ttl", async () => {
    const { record, agentToken } = await client.register(alice);
    const hb = await client.heartbeat(record.id, agentToken);
    expect(hb.ttlSeconds).toBe(180);
    expect(Date.parse(hb.lastSeen ?? "")).not.toBeNaN();
  });

  it("refuses a heartbeat without the token as unauthorized", async () => {
    const { record } = await client.register(alice);
    const err = await caught(client.heartbeat(record.id, null));
    expect(err.kind).toBe("unauthorized");
    expect(err.status).toBe(401);
  });

  it("reports an unknown agent's heartbeat as not_found", async () => {
    const err = await caught(client.heartbeat("no-such-agent", "whatever-token"));
    expect(err.kind).toBe("not_found");
  });

  it("updates metadata with PATCH when the server supports it", async () => {
    const { record, agentToken } = await client.register(alice);
    const result = await client.patch(record.id, agentToken, { description: "Books meetings and dinners" });
    expect(result.via).toBe("patch");
    expect(result.agentToken).toBeNull();
    expect(result.record).toMatchObject({ id: record.id, description: "Books meetings and dinners" });
  });

  it("finds agents by id, hostname, node id, list and search", async () => {
    const a = await client.register(alice);
    await client.register(bob);
    await expect(client.get(a.record.id)).resolves.toMatchObject({ hostname: "alice" });
    await expect(client.get("missing")).resolves.toBeNull();
    const b = await client.byHostname("bob");
    expect(b?.installationId).toMatch(/^p_/);
    expect(b?.installationId).toBe(b?.peerId);
    await expect(client.byHostname("carol")).resolves.toBeNull();
    await expect(client.byNodeId("4242")).resolves.toMatchObject({ hostname: "alice" });
    await expect(client.byNodeId("1")).resolves.toBeNull();
    const page = await client.list();
    expect(page.total).toBe(2);
    const found = await client.search({ q: "trips", limit: 500, capabilities: ["TRAVEL"], match: "all" });
    expect(found.agents.map((x) => x.hostname)).toEqual(["bob"]);
    expect(found.total).toBe(1);
  });

  it("answers an unknown hostname with one request (no list fallback: the route exists)", async () => {
    const urls: string[] = [];
    const counting = createRegistryClient({
      baseUrl: server.url,
      apiKey: KEY,
      fetch: (input, init) => {
        urls.push(input);
        return fetch(input, init);
      },
    });
    await expect(counting.byHostname("carol")).resolves.toBeNull();
    expect(urls).toHaveLength(1);
    expect(urls[0]).toContain("/api/v1/agents/by-hostname/carol");
  });

  it("keeps the server's detail on the error", async () => {
    const err = await caught(client.heartbeat("no-such-agent", "whatever-token"));
    expect(err.detail).toEqual(expect.any(String));
    expect(err.message).toContain(err.detail!);
  });

  it("maps a hostname held by another online installation to conflict", async () => {
    await client.register(alice);
    const err = await caught(client.register({ ...alice, installationId: "inst-mallory" }));
    expect(err.kind).toBe("conflict");
    expect(err.message).toMatch(/choose a different hostname/);
  });

  it("maps an invalid registration to invalid", async () => {
    const err = await caught(client.register({ ...alice, hostname: "-bad-" }));
    expect(err.kind).toBe("invalid");
    expect(err.status).toBe(422);
  });

  it("deregisters with the token", async () => {
    const { record, agentToken } = await client.register(alice);
    await expect(client.deregister(record.id, agentToken)).resolves.toEqual({ removed: true });
    // The registry holds the record (offline) for its owner during the release period.
    await expect(client.get(record.id)).resolves.toMatchObject({ status: "offline" });
    await expect(client.byHostname("alice")).resolves.toBeNull();
    const back = await client.register(alice, { token: agentToken });
    expect(back.record.id).toBe(record.id);
  });

  it("relays a message: long-poll wakes on arrival, then ack", async () => {
    const a = await client.register(alice);
    const b = await client.register(bob);
    const started = Date.now();
    const waiting = client.readInbox({ installationId: "inst-bob", wait: 5 }, { token: b.agentToken });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const sent = await client.sendMessage(
      {
        fromInstallationId: "inst-alice",
        fromHostname: "alice",
        toHostname: "bob",
        body: "hello bob",
        messageId: "m-1",
      },
      { token: a.agentToken },
    );
    expect(sent).toEqual({ messageId: "m-1" });
    const page = await waiting;
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(page.messages).toEqual([
      {
        messageId: "m-1",
        fromInstallationId: a.record.peerId,
        fromHostname: "alice",
        body: "hello bob",
        createdAt: expect.any(String),
        cursor: expect.any(String),
      },
    ]);
    expect(page.nextCursor).toEqual(expect.any(String));
    await expect(
      client.ack({ installationId: "inst-bob", messageIds: ["m-1"] }, { token: b.agentToken }),
    ).resolves.toEqual({ acked: 1 });
    const after = await client.readInbox(
      { installationId: "inst-bob", after: page.nextCursor },
      { token: b.agentToken },
    );
    expect(after.messages).toEqual([]);
  });

  it("runs a trust handshake: request, pending, approve, list", async () => {
    const a = await client.register(alice);
    const b = await client.register(bob);
    await expect(
      client.requestTrust(
        { fromId: "inst-alice", toId: "inst-bob", introduction: "Alice here", assistantName: "Alice" },
        { token: a.agentToken },
      ),
    ).resolves.toEqual({ status: "pending" });
    const { requests } = await client.pendingTrust("inst-bob", { token: b.agentToken });
    expect(requests).toEqual([
      expect.objectContaining({
        fromId: a.record.peerId,
        fromAssistantName: "Alice",
        introduction: "Alice here",
      }),
    ]);
    await expect(
      client.approveTrust({ fromId: "inst-alice", toId: "inst-bob" }, { token: b.agentToken }),
    ).resolves.toEqual({ status: "approved" });
    const { peers } = await client.listTrust("inst-alice", { token: a.agentToken });
    expect(peers).toContainEqual(
      expect.objectContaining({
        requesterId: a.record.peerId,
        targetId: b.record.peerId,
        status: "approved",
        peerHostname: "bob",
      }),
    );
  });

  it("reads trust by change: pages from the start, then only what changed after the cursor", async () => {
    const a = await client.register(alice);
    const b = await client.register(bob);
    const carol = await client.register({ ...bob, hostname: "carol", installationId: "inst-carol" });
    for (const [from, token] of [
      ["inst-bob", b.agentToken],
      ["inst-carol", carol.agentToken],
    ] as const) {
      await client.requestTrust(
        { fromId: from, toId: a.record.peerId!, introduction: `from ${from}` },
        { token },
      );
    }
    const first = await client.listTrustChanges(
      "inst-alice",
      { after: null, limit: 1 },
      { token: a.agentToken },
    );
    expect(first).toMatchObject({
      hasMore: true,
      peers: [{ peerHostname: "bob", introduction: "from inst-bob" }],
    });
    const second = await client.listTrustChanges(
      "inst-alice",
      { after: first.nextCursor },
      { token: a.agentToken },
    );
    expect(second).toMatchObject({ hasMore: false, peers: [{ peerHostname: "carol", status: "pending" }] });
    const idle = await client.listTrustChanges(
      "inst-alice",
      { after: second.nextCursor },
      { token: a.agentToken },
    );
    expect(idle).toEqual({ peers: [], nextCursor: second.nextCursor, hasMore: false });
    await client.approveTrust({ fromId: b.record.peerId!, toId: "inst-alice" }, { token: a.agentToken });
    const changed = await client.listTrustChanges(
      "inst-alice",
      { after: idle.nextCursor },
      { token: a.agentToken },
    );
    expect(changed.peers).toEqual([expect.objectContaining({ peerHostname: "bob", status: "approved" })]);
  });

  it("asks for smaller pages of trust changes when one is over its response limit", async () => {
    const a = await client.register(alice);
    const long = "x".repeat(1500);
    for (const i of [1, 2, 3]) {
      const peer = await client.register({ ...bob, hostname: `peer-${i}`, installationId: `inst-${i}` });
      await client.requestTrust(
        { fromId: `inst-${i}`, toId: a.record.peerId!, introduction: long },
        { token: peer.agentToken },
      );
    }
    const small = createRegistryClient({ baseUrl: server.url, apiKey: KEY, maxResponseBytes: 2500 });
    const seen: string[] = [];
    let after: string | null = null;
    for (let more = true; more; ) {
      const page = await small.listTrustChanges("inst-alice", { after }, { token: a.agentToken });
      seen.push(...page.peers.map((p) => p.peerHostname ?? "?"));
      ({ nextCursor: after, hasMore: more } = page);
    }
    expect(seen).toEqual(["peer-1", "peer-2", "peer-3"]);
  });

  it("refuses a trust decision made with someone else's token as forbidden", async () => {
    const a = await client.register(alice);
    await client.register(bob);
    await client.requestTrust({ fromId: "inst-alice", toId: "inst-bob" }, { token: a.agentToken });
    const err = await caught(
      client.approveTrust({ fromId: "inst-alice", toId: "inst-bob" }, { token: a.agentToken }),
    );
    expect(err.kind).toBe("forbidden");
  });

  it("says unauthorized without echoing a wrong deployment key", async () => {
    const wrong = createRegistryClient({ baseUrl: server.url, apiKey: "not-the-key-42" });
    const err = await caught(wrong.list());
    expect(err.kind).toBe("unauthorized");
    expect(err.message).not.toContain("not-the-key-42");
  });
});
