// The relay transport's trust lists read by change, against the reference registry with many peers: requests
// are counted at the wire (a proxy on 127.0.0.1 in front of the registry). The first observation pages through;
// an idle one costs one request; approvals, revocations and new requests show up in the next; the original
// registry still gets the whole list and its pending route.
import { afterEach, describe, expect, it } from "vitest";
import { createRegistryClient } from "../../../src/adapters/registry/client.js";
import { createRelayTransport } from "../../../src/adapters/relay/relay-transport.js";
import { type Transport, TransportError } from "../../../src/adapters/transport/transport.js";
import { startLegacyRegistryServer } from "../../fixtures/legacy-registry-server.js";
import { type CountingProxy, startCountingProxy } from "../../support/counting-proxy.js";
import { type Installation, type RelayWorld, startRelayWorld } from "./helpers.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const PEERS = 50;
const PAGE = 20;
const LIST = "GET /api/v1/trust/list/inst-alpha";

interface Scene {
  world: RelayWorld;
  proxy: CountingProxy;
  /** Alpha's transport, talking to the registry through the proxy. */
  alpha: Transport;
  peers: Installation[];
  clock: { now: number };
  /** Registers a peer (directly, not through the proxy). */
  addPeer(i: number): Promise<Installation>;
}

/** The registry, alpha, and PEERS peers whose trust requests alpha approved; alpha's transport is counted. */
async function scene(options: { maxTrustRecords?: number } = {}): Promise<Scene> {
  const world = await startRelayWorld();
  cleanups.push(() => world.cleanup());
  const proxy = await startCountingProxy(world.url);
  cleanups.push(() => proxy.close());
  const { alpha: self } = world;
  async function addPeer(i: number): Promise<Installation> {
    const client = createRegistryClient({ baseUrl: world.url });
    const installationId = `inst-peer-${i}`;
    const hostname = `peer-${i}`;
    const { agentToken, record } = await client.register({ hostname, installationId, capabilities: [] });
    return { installationId, peerId: record.peerId ?? installationId, hostname, token: agentToken, client };
  }
  const peers: Installation[] = [];
  for (let i = 0; i < PEERS; i++) {
    const peer = await addPeer(i);
    await requestFrom(peer, self);
    await approveBy(self, peer);
    peers.push(peer);
  }
  const clock = { now: 1_000_000 };
  const alpha = createRelayTransport({
    client: createRegistryClient({ baseUrl: proxy.url }),
    self: {
      installationId: self.installationId,
      peerId: () => self.peerId,
      hostname: self.hostname,
      agentToken: () => self.token,
    },
    trustPageSize: PAGE,
    trustResyncMs: 60_000,
    now: () => clock.now,
    ...options,
  });
  return { world, proxy, alpha, peers, clock, addPeer };
}

const requestFrom = (from: Installation, to: Installation, introduction = `hello from ${from.hostname}`) =>
  from.client.requestTrust(
    { fromId: from.installationId, toId: to.peerId, introduction, assistantName: `${from.hostname} bot` },
    { token: from.token },
  );
const approveBy = (self: Installation, requester: Installation) =>
  self.client.approveTrust({ fromId: requester.peerId, toId: self.installationId }, { token: self.token });

/** What the account's peers loop does each poll: both lists, together. */
async function observe(t: Transport) {
  const [pending, trusted] = await Promise.all([t.listPending(), t.listTrusted()]);
  return { pending, trusted };
}

const hostnames = (trusted: Awaited<ReturnType<typeof observe>>["trusted"]) =>
  trusted.map((t) => t.peer.hostname).sort();

describe("relay trust lists read by change", () => {
  it("pages through on the first observation, then costs one request a poll while idle", async () => {
    const s = await scene();
    const first = await observe(s.alpha);
    expect(first.pending).toEqual([]);
    expect(hostnames(first.trusted)).toEqual(s.peers.map((p) => p.hostname).sort());
    expect(first.trusted.every((t) => t.since !== null && t.peer.installationId?.startsWith("p_"))).toBe(
      true,
    );
    const paged = s.proxy.take();
    expect(paged).toHaveLength(Math.ceil(PEERS / PAGE));
    expect(paged.every((r) => r.startsWith(`${LIST}?`))).toBe(true);

    for (let poll = 0; poll < 3; poll++) {
      const idle = await observe(s.alpha);
      expect(hostnames(idle.trusted)).toEqual(hostnames(first.trusted));
      // Nothing changed: the same lists come back, so a reader can tell without comparing them.
      expect(idle.trusted).toBe(first.trusted);
      expect(idle.pending).toBe(first.pending);
      expect(s.proxy.take()).toEqual([
        expect.stringMatching(new RegExp(`^${LIST}\\?after=\\d+&limit=${PAGE}$`)),
      ]);
    }
  });

  it("shows a new approval, a revocation and a new request in the next observation, one request each", async () => {
    const s = await scene();
    await observe(s.alpha);
    s.proxy.take();

    const newcomer = await s.addPeer(PEERS);
    await requestFrom(newcomer, s.world.alpha, "may I?");
    const asked = await observe(s.alpha);
    expect(asked.pending).toEqual([
      {
        peer: { hostname: newcomer.hostname, nodeId: null, installationId: newcomer.peerId },
        introduction: "may I?",
        assistantName: `${newcomer.hostname} bot`,
        humanName: null,
        receivedAt: expect.any(String),
      },
    ]);
    expect(asked.trusted).toHaveLength(PEERS);
    expect(s.proxy.take()).toHaveLength(1);

    await approveBy(s.world.alpha, newcomer);
    const approved = await observe(s.alpha);
    expect(approved.pending).toEqual([]);
    expect(hostnames(approved.trusted)).toContain(newcomer.hostname);
    expect(s.proxy.take()).toHaveLength(1);

    const leaver = s.peers[7]!;
    await leaver.client.revokeTrust(
      { fromId: leaver.installationId, toId: s.world.alpha.peerId },
      { token: leaver.token },
    );
    const revoked = await observe(s.alpha);
    expect(hostnames(revoked.trusted)).not.toContain(leaver.hostname);
    expect(revoked.trusted).toHaveLength(PEERS);
    expect(s.proxy.take()).toHaveLength(1);
  });

  it("reads from the start again once the resync period has passed", async () => {
    const s = await scene();
    await observe(s.alpha);
    s.proxy.take();
    s.clock.now += 60_001;
    const again = await observe(s.alpha);
    expect(again.trusted).toHaveLength(PEERS);
    const requests = s.proxy.take();
    expect(requests).toHaveLength(Math.ceil(PEERS / PAGE));
    expect(requests[0]).toBe(`${LIST}?limit=${PAGE}`);
    await observe(s.alpha);
    expect(s.proxy.take()).toHaveLength(1);
  });

  it("refuses to keep more trust records than its bound, with an error saying what to do", async () => {
    const s = await scene({ maxTrustRecords: 30 });
    const err = await s.alpha.listTrusted().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).message).toMatch(/more than 30 live trust records.*revoke trust/);
  });
});

describe("relay trust lists on a registry that does not read by change", () => {
  it("reads the whole list and the pending route on every observation, as before", async () => {
    const server = await startLegacyRegistryServer({ unofficialRelayAndTrust: true });
    cleanups.push(() => server.close());
    const client = createRegistryClient({ baseUrl: server.url });
    await client.register({ hostname: "alpha", installationId: "inst-alpha", capabilities: [] });
    await client.register({ hostname: "beta", installationId: "inst-beta", capabilities: [] });
    await client.register({ hostname: "gamma", installationId: "inst-gamma", capabilities: [] });
    await client.requestTrust({ fromId: "inst-beta", toId: "inst-alpha", introduction: "hi" });
    await client.approveTrust({ fromId: "inst-beta", toId: "inst-alpha" });
    await client.requestTrust({ fromId: "inst-gamma", toId: "inst-alpha", introduction: "me too" });
    const alpha = createRelayTransport({
      client,
      self: { installationId: "inst-alpha", hostname: "alpha", agentToken: () => null },
    });
    const trustReads = () =>
      server.requests.filter((r) => r.path.startsWith("/api/v1/trust/")).map((r) => r.path);

    for (let poll = 0; poll < 2; poll++) {
      const before = trustReads().length;
      const { pending, trusted } = await observe(alpha);
      expect(trusted.map((t) => t.peer)).toEqual([
        { hostname: "beta", nodeId: null, installationId: "inst-beta" },
      ]);
      expect(pending.map((p) => [p.peer.hostname, p.introduction])).toEqual([["gamma", "me too"]]);
      expect(trustReads().slice(before).sort()).toEqual([
        "/api/v1/trust/list/inst-alpha",
        "/api/v1/trust/pending/inst-alpha",
      ]);
    }
  });
});
