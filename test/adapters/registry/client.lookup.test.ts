// The client's batched lookup (lookupAgents) over real HTTP on 127.0.0.1: against the reference server (ids of
// both kinds, requests of at most 500 ids counted, answers over the response limit asked again in halves), and
// against registries without the route (the 404/405 that callers fall back on) or with odd answers.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createRegistryClient,
  type FetchLike,
  isMissingRoute,
  LOOKUP_CHUNK_MAX,
  type RegistryClient,
} from "../../../src/adapters/registry/client.js";
import { RegistryError } from "../../../src/adapters/registry/errors.js";
import type { AgentMetadata } from "../../../src/adapters/registry/types.js";
import { type RegistryServerHandle, startRegistryServer } from "../../../src/registry-server/server.js";
import { startLegacyRegistryServer } from "../../fixtures/legacy-registry-server.js";
import { caught as caughtAs } from "../../support/caught.js";

const KEY = "lookup-deployment-key";
const LOOKUP_PATH = "/api/v1/agents/lookup";

const agent = (hostname: string, pilotNodeId: string | null, extra: Partial<AgentMetadata> = {}) => ({
  hostname,
  installationId: `inst-${hostname}`,
  pilotNodeId,
  capabilities: [],
  ...extra,
});

let server: RegistryServerHandle;
let client: RegistryClient;
const closers: Array<() => Promise<void>> = [];

beforeEach(async () => {
  server = await startRegistryServer({ port: 0, db: ":memory:", apiKey: KEY, sweepIntervalMs: 0 });
  client = createRegistryClient({ baseUrl: server.url, apiKey: KEY, timeoutMs: 5_000 });
});

afterEach(async () => {
  await Promise.all([server.close(), ...closers.splice(0).map((close) => close())]);
});

/** A client that records the ids each lookup request named. */
function countingClient(options: { maxResponseBytes?: number } = {}) {
  const lookups: Array<{ nodeIds: string[]; peerIds: string[] }> = [];
  const counting: FetchLike = (input, init) => {
    if (input.endsWith(LOOKUP_PATH)) {
      const body = JSON.parse(String(init.body)) as { pilot_node_ids?: string[]; peer_ids?: string[] };
      lookups.push({ nodeIds: body.pilot_node_ids ?? [], peerIds: body.peer_ids ?? [] });
    }
    return fetch(input, init);
  };
  return {
    lookups,
    client: createRegistryClient({ baseUrl: server.url, apiKey: KEY, fetch: counting, ...options }),
  };
}

/** An HTTP server on 127.0.0.1 answering every request with this status and JSON body. */
async function answering(status: number, body: unknown): Promise<string> {
  const http: Server = createServer((_req, res) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  closers.push(() => new Promise<void>((resolve) => http.close(() => resolve())));
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
}

const caught = (promise: Promise<unknown>) => caughtAs(promise, RegistryError);

describe("lookupAgents against the reference server", () => {
  it("finds agents by node id and by peer id in one request, offline ones too, each once", async () => {
    const alice = await client.register(agent("alice", "4242"));
    const bob = await client.register(agent("bob", "7"));
    const carol = await client.register(agent("carol", null));
    await client.deregister(bob.record.id, bob.agentToken);
    const { client: counted, lookups } = countingClient();
    const found = await counted.lookupAgents({
      pilotNodeIds: ["4242", "7", "999"],
      peerIds: [alice.record.peerId!, carol.record.peerId!, `p_${"f".repeat(32)}`],
    });
    expect(lookups).toHaveLength(1);
    expect(found.map((a) => [a.hostname, a.status])).toEqual([
      ["alice", "online"],
      ["bob", "offline"],
      ["carol", "online"],
    ]);
    // Parsed like every record: the public peer id, no secret.
    expect(found[0]).toMatchObject({ id: alice.record.id, peerId: alice.record.peerId, pilotNodeId: "4242" });
    expect(found[0]!.installationId).toBe(alice.record.peerId);
  });

  it("sends 1,200 ids as three requests of at most 500, one after the other", async () => {
    await client.register(agent("first", "1"));
    await client.register(agent("late-node", "1000"));
    const late = await client.register(agent("late-peer", null));
    const { client: counted, lookups } = countingClient();
    const nodeIds = Array.from({ length: 1000 }, (_, i) => String(i + 1));
    const peerIds = [
      ...Array.from({ length: 199 }, (_, i) => `p_${i.toString(16).padStart(32, "0")}`),
      late.record.peerId!,
    ];
    const found = await counted.lookupAgents({ pilotNodeIds: nodeIds, peerIds });
    expect(lookups.map((l) => l.nodeIds.length + l.peerIds.length)).toEqual([500, 500, 200]);
    expect(LOOKUP_CHUNK_MAX).toBe(500);
    // Every id asked exactly once, in order: node ids first, then peer ids.
    expect(lookups.flatMap((l) => l.nodeIds)).toEqual(nodeIds);
    expect(lookups.flatMap((l) => l.peerIds)).toEqual(peerIds);
    expect(found.map((a) => a.hostname)).toEqual(["first", "late-node", "late-peer"]);
  });

  it("asks once per distinct id, and not at all for nothing", async () => {
    await client.register(agent("alice", "4242"));
    const { client: counted, lookups } = countingClient();
    await expect(counted.lookupAgents({})).resolves.toEqual([]);
    await expect(counted.lookupAgents({ pilotNodeIds: [], peerIds: [] })).resolves.toEqual([]);
    expect(lookups).toHaveLength(0);
    const found = await counted.lookupAgents({ pilotNodeIds: ["4242", "4242", "04242", " 4242 "] });
    expect(found.map((a) => a.hostname)).toEqual(["alice"]);
    expect(lookups).toEqual([{ nodeIds: ["4242"], peerIds: [] }]);
  });

  it("drops ids the registry would refuse instead of failing the lookup of the others", async () => {
    await client.register(agent("alice", "4242"));
    const { client: counted, lookups } = countingClient();
    const found = await counted.lookupAgents({
      pilotNodeIds: ["abc", "-1", "4294967296", "12345678901", "", "4242"],
      peerIds: ["", "x".repeat(201), "p_\u0000"],
    });
    expect(found.map((a) => a.hostname)).toEqual(["alice"]);
    expect(lookups).toEqual([{ nodeIds: ["4242"], peerIds: [] }]);
  });

  it("asks again in halves when an answer is over the response limit", async () => {
    const description = "d".repeat(1500);
    for (const [i, name] of ["one", "two", "three"].entries()) {
      await client.register(agent(name, String(i + 1), { description }));
    }
    const { client: small, lookups } = countingClient({ maxResponseBytes: 2500 });
    const found = await small.lookupAgents({ pilotNodeIds: ["1", "2", "3"] });
    expect(found.map((a) => a.hostname)).toEqual(["one", "two", "three"]);
    expect(lookups.map((l) => l.nodeIds)).toEqual([["1", "2", "3"], ["1", "2"], ["1"], ["2"], ["3"]]);
  });

  it("fails with the size error when one id alone is over the response limit", async () => {
    await client.register(agent("one", "1", { description: "d".repeat(2000) }));
    const small = createRegistryClient({ baseUrl: server.url, apiKey: KEY, maxResponseBytes: 1500 });
    const err = await caught(small.lookupAgents({ pilotNodeIds: ["1"] }));
    expect(err.kind).toBe("bad_response");
    expect(err.operation).toBe("lookup");
  });

  it("is refused without the deployment key", async () => {
    const keyless = createRegistryClient({ baseUrl: server.url });
    const err = await caught(keyless.lookupAgents({ pilotNodeIds: ["1"] }));
    expect(err.kind).toBe("unauthorized");
    expect(err.status).toBe(401);
  });
});

describe("lookupAgents against registries without the route", () => {
  it.each([
    [404, "not_found", "Not Found"],
    [405, "http", "Method Not Allowed"],
  ] as const)(
    "throws a RegistryError with status %i, so callers can fall back",
    async (status, kind, detail) => {
      const url = await answering(status, { detail });
      const err = await caught(createRegistryClient({ baseUrl: url }).lookupAgents({ pilotNodeIds: ["1"] }));
      expect(err).toMatchObject({ operation: "lookup", kind, status, detail });
      expect(isMissingRoute(err)).toBe(true);
      expect(err.message).toContain(`has no batched lookup (POST /api/v1/agents/lookup answered ${status})`);
    },
  );

  it("throws a RegistryError with status 404 from the original registry", async () => {
    const legacy = await startLegacyRegistryServer();
    closers.push(() => legacy.close());
    const err = await caught(
      createRegistryClient({ baseUrl: legacy.url }).lookupAgents({ peerIds: ["inst-alice"] }),
    );
    expect(err).toMatchObject({ operation: "lookup", status: 404 });
    expect(isMissingRoute(err)).toBe(true);
  });
});

describe("lookupAgents and odd answers", () => {
  const record = (id: string, hostname: string, pilotNodeId: number | null, peerId: string | null) => ({
    id,
    hostname,
    installation_id: null,
    peer_id: peerId,
    pilot_node_id: pilotNodeId,
    status: "online",
    capabilities: [],
  });

  it("leaves out unreadable records, records nobody asked for, and repeats", async () => {
    const url = await answering(200, {
      agents: [
        record("a1", "alice", 4242, "p_a"),
        { id: "broken", pilot_node_id: 7 },
        "not a record",
        record("m1", "mallory", 666, "p_m"),
        record("a1", "alice", 4242, "p_a"),
        record("b1", "bob", null, "p_b"),
      ],
    });
    const found = await createRegistryClient({ baseUrl: url }).lookupAgents({
      pilotNodeIds: ["4242", "7"],
      peerIds: ["p_b"],
    });
    expect(found.map((a) => a.id)).toEqual(["a1", "b1"]);
  });

  it("reports an answer without an agents list as a bad response", async () => {
    const url = await answering(200, [record("a1", "alice", 4242, null)]);
    const err = await caught(createRegistryClient({ baseUrl: url }).lookupAgents({ pilotNodeIds: ["4242"] }));
    expect(err.kind).toBe("bad_response");
  });
});
