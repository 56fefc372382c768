// Naming peers the transport knows only by id: one batched registry request for all the unknown ones of a
// reading, then nothing until the names expire. Real reference registry on 127.0.0.1, requests counted at the wire.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRegistryClient } from "../../src/adapters/registry/client.js";
import { startRegistryServer } from "../../src/registry-server/server.js";
import { createPeerNames, PEER_NAME_MISS_TTL_MS, PEER_NAME_TTL_MS } from "../../src/runtime/peer-names.js";
import { startLegacyRegistryServer } from "../fixtures/legacy-registry-server.js";
import { type CountingProxy, startCountingProxy } from "../support/counting-proxy.js";

const N = 40;
const byNode = (nodeId: number) => ({ hostname: null, nodeId, installationId: null });

describe("peer names", () => {
  let close: Array<() => Promise<void>> = [];
  let proxy: CountingProxy;

  beforeAll(async () => {
    const registry = await startRegistryServer({ port: 0, db: ":memory:" });
    close.push(() => registry.close());
    const client = createRegistryClient({ baseUrl: registry.url });
    for (let i = 0; i < N; i++) {
      await client.register({
        hostname: `node-host-${i}`,
        installationId: `inst-${i}`,
        pilotNodeId: String(1_000 + i),
        capabilities: [],
      });
    }
    proxy = await startCountingProxy(registry.url);
    close.push(() => proxy.close());
  });

  afterAll(async () => {
    for (const fn of close.reverse()) await fn();
    close = [];
  });

  it("names every unknown peer of a reading with one request, then asks nothing until the names expire", async () => {
    let clock = 0;
    const names = createPeerNames({
      registry: createRegistryClient({ baseUrl: proxy.url }),
      now: () => clock,
    });
    const refs = [...Array.from({ length: N }, (_, i) => byNode(1_000 + i)), byNode(999_999)];
    proxy.take();
    const named = await names.name(refs);
    expect(proxy.take()).toEqual(["POST /api/v1/agents/lookup"]);
    expect(named.slice(0, N).map((ref) => ref.hostname)).toEqual(
      Array.from({ length: N }, (_, i) => `node-host-${i}`),
    );
    expect(named[N]?.hostname).toBeNull();

    // Idle: the same reading again costs nothing.
    await names.name(refs);
    expect(proxy.take()).toEqual([]);
    // A miss is asked again sooner than a name (the agent may be registering right now), then less and less often.
    clock += PEER_NAME_MISS_TTL_MS + 1;
    await names.name(refs);
    expect(proxy.take()).toEqual(["POST /api/v1/agents/lookup"]);
    clock += PEER_NAME_MISS_TTL_MS + 1;
    await names.name(refs);
    expect(proxy.take()).toEqual([]);
    clock += PEER_NAME_MISS_TTL_MS;
    await names.name(refs);
    expect(proxy.take()).toEqual(["POST /api/v1/agents/lookup"]);
    clock += PEER_NAME_TTL_MS;
    await names.name(refs);
    expect(proxy.take()).toHaveLength(1);
    // Peers with a hostname are never looked up.
    await names.name([{ hostname: "known", nodeId: 5, installationId: null }]);
    expect(proxy.take()).toEqual([]);
  });

  it("falls back to one request per id (a few at a time) on a registry without the batched route", async () => {
    const legacy = await startLegacyRegistryServer();
    close.push(() => legacy.close());
    const legacyProxy = await startCountingProxy(legacy.url);
    close.push(() => legacyProxy.close());
    const names = createPeerNames({ registry: createRegistryClient({ baseUrl: legacyProxy.url }) });
    await names.name([byNode(1), byNode(2)]);
    const first = legacyProxy.take();
    expect(first[0]).toBe("POST /api/v1/agents/lookup");
    expect(first.slice(1)).toHaveLength(2);
    // It does not try the batched route again.
    await names.name([byNode(3)]);
    expect(legacyProxy.take()).toHaveLength(1);
  });
});
