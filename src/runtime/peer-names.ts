// Hostnames of peers the transport names only by id: Pilot's trust list and requests give node ids, an original
// registry's trust list gives relay ids. All the unknown ones of a reading are looked up in the registry with one
// batched request (POST /api/v1/agents/lookup), and every answer is kept for a while (a miss for less), so an idle
// account asks the registry nothing however many peers it has. A registry without the batched route is asked per
// id, a few at a time, with the same cache.
import { isMissingRoute, type RegistryClient } from "../adapters/registry/client.js";
import { RegistryError } from "../adapters/registry/errors.js";
import type { AgentRecord } from "../adapters/registry/types.js";
import type { Log } from "../log.js";
import type { PeerRef } from "../machines/types.js";

export const PEER_NAME_TTL_MS = 10 * 60_000;
/**
 * An id the registry did not know is asked again sooner: the agent may be registering right now (a peer's node id
 * reaches the registry only once its daemon is up). 5 s after the first miss, doubling with each miss after it,
 * up to the hit TTL: a node that never registers costs a few requests, then one each 10 minutes.
 */
export const PEER_NAME_MISS_TTL_MS = 5_000;
/** Entries kept at most; beyond it the cache starts over (it only saves requests). */
const MAX_NAMES = 100_000;
/** Concurrent per-id requests against a registry without the batched route. */
const PER_ID_CONCURRENCY = 8;

export interface PeerNamesOptions {
  registry: Pick<RegistryClient, "lookupAgents" | "byNodeId" | "list">;
  log?: Pick<Log, "debug">;
  now?: () => number;
  ttlMs?: number;
  missTtlMs?: number;
}

export interface PeerNames {
  /** The refs with their hostnames filled in where the registry (or the cache) knows them. */
  name(refs: readonly PeerRef[]): Promise<PeerRef[]>;
}

/** The cache key of a ref that needs a name: by node id, else by relay id; null when it has a name or no id. */
function idOf(ref: PeerRef): string | null {
  if (ref.hostname) return null;
  if (ref.nodeId !== null) return `node:${ref.nodeId}`;
  return ref.installationId ? `relay:${ref.installationId}` : null;
}

export function createPeerNames(options: PeerNamesOptions): PeerNames {
  const { registry } = options;
  const now = options.now ?? Date.now;
  const ttlMs = options.ttlMs ?? PEER_NAME_TTL_MS;
  const missTtlMs = options.missTtlMs ?? PEER_NAME_MISS_TTL_MS;
  const names = new Map<string, { hostname: string | null; until: number; misses: number }>();
  let batched = true;

  const remember = (id: string, hostname: string | null) => {
    if (names.size >= MAX_NAMES) names.clear();
    const misses = hostname ? 0 : (names.get(id)?.misses ?? 0) + 1;
    const ttl = hostname ? ttlMs : Math.min(ttlMs, missTtlMs * 2 ** Math.min(misses - 1, 20));
    names.set(id, { hostname, until: now() + ttl, misses });
  };

  const lookUpBatched = async (ids: string[]): Promise<Map<string, string>> => {
    const pilotNodeIds = ids.filter((id) => id.startsWith("node:")).map((id) => id.slice(5));
    const peerIds = ids.filter((id) => id.startsWith("relay:")).map((id) => id.slice(6));
    const found = new Map<string, string>();
    for (const agent of await registry.lookupAgents({ pilotNodeIds, peerIds })) {
      if (agent.pilotNodeId !== null) found.set(`node:${Number(agent.pilotNodeId)}`, agent.hostname);
      if (agent.peerId !== null) found.set(`relay:${agent.peerId}`, agent.hostname);
    }
    return found;
  };

  const lookUpOne = async (id: string): Promise<AgentRecord | null> => {
    if (id.startsWith("node:")) return registry.byNodeId(id.slice(5));
    const page = await registry.list({ installationId: id.slice(6), includeOffline: true, limit: 1 });
    return page.agents[0] ?? null;
  };

  const lookUpEach = async (ids: string[]): Promise<Map<string, string>> => {
    const found = new Map<string, string>();
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(PER_ID_CONCURRENCY, ids.length) }, async () => {
        while (next < ids.length) {
          const id = ids[next++]!;
          const agent = await lookUpOne(id);
          if (agent) found.set(id, agent.hostname);
        }
      }),
    );
    return found;
  };

  const lookUp = async (ids: string[]): Promise<Map<string, string>> => {
    if (batched) {
      try {
        return await lookUpBatched(ids);
      } catch (error) {
        if (!(error instanceof RegistryError && isMissingRoute(error))) throw error;
        batched = false;
      }
    }
    return lookUpEach(ids);
  };

  return {
    async name(refs) {
      const wanted = new Set<string>();
      for (const ref of refs) {
        const id = idOf(ref);
        const cached = id ? names.get(id) : undefined;
        if (id && !(cached && cached.until > now())) wanted.add(id);
      }
      if (wanted.size > 0) {
        try {
          const found = await lookUp([...wanted]);
          for (const id of wanted) remember(id, found.get(id) ?? null);
        } catch (error) {
          // Why safe: a name is for display and routing; the id still names the peer, and the next reading asks again.
          options.log?.debug?.(`agent-registry: hostname lookup failed: ${(error as Error).message}`);
        }
      }
      return refs.map((ref) => {
        const id = idOf(ref);
        const hostname = id ? (names.get(id)?.hostname ?? null) : ref.hostname;
        return hostname === ref.hostname ? ref : { ...ref, hostname };
      });
    },
  };
}
