// The peer table: bucketed so one change copies one bucket, diffed by bucket for the store, indexed for
// look-ups in bulk.
import { describe, expect, it } from "vitest";
import type { PeerState } from "../../src/machines/handshake.machine.js";
import {
  EMPTY_PEERS,
  findPeerKey,
  getPeer,
  indexPeers,
  newPeerRecord,
  peerChanges,
  peerRecords,
  peerTableOf,
  withPeers,
} from "../../src/machines/peers.js";

const rec = (i: number, state: PeerState["state"] = "trusted"): PeerState => ({
  ...newPeerRecord({ hostname: `peer-${i}`, nodeId: i, installationId: `p_${i}` }),
  state,
});

describe("peer table", () => {
  const table = peerTableOf(Array.from({ length: 1_000 }, (_, i) => [`peer-${i}`, rec(i)] as const));

  it("holds every record by key and counts them", () => {
    expect(table.size).toBe(1_000);
    expect(getPeer(table, "peer-7")?.nodeId).toBe(7);
    expect(getPeer(table, "nobody")).toBeUndefined();
    expect(peerRecords(table)).toHaveLength(1_000);
  });

  it("a change copies one bucket and leaves every other bucket shared", () => {
    const next = withPeers(table, [["peer-7", rec(7, "revoked")]]);
    expect(next.size).toBe(1_000);
    expect(getPeer(table, "peer-7")?.state).toBe("trusted");
    expect(getPeer(next, "peer-7")?.state).toBe("revoked");
    const shared = Object.keys(table.buckets).filter((id) => table.buckets[id] === next.buckets[id]);
    expect(shared).toHaveLength(Object.keys(table.buckets).length - 1);
  });

  it("lists what changed between two tables: changed, added and removed records", () => {
    const next = withPeers(table, [
      ["peer-7", rec(7, "revoked")],
      ["peer-new", rec(5_000)],
    ]);
    expect(peerChanges(table, next)).toEqual(
      expect.arrayContaining([
        { key: "peer-7", record: expect.objectContaining({ state: "revoked" }) },
        { key: "peer-new", record: expect.objectContaining({ nodeId: 5_000 }) },
      ]),
    );
    expect(peerChanges(table, next)).toHaveLength(2);
    expect(peerChanges(next, EMPTY_PEERS)).toHaveLength(1_001);
    expect(peerChanges(next, EMPTY_PEERS).every((change) => change.record === null)).toBe(true);
    expect(peerChanges(table, table)).toEqual([]);
  });

  it("finds a peer by its key, hostname, node name, node id or relay id, with or without an index", () => {
    const keyed = withPeers(EMPTY_PEERS, [["node-42", { ...rec(42), hostname: "answer" }]]);
    const index = indexPeers(keyed);
    for (const ref of [
      { hostname: "answer", nodeId: null, installationId: null },
      { hostname: "node-42", nodeId: null, installationId: null },
      { hostname: null, nodeId: 42, installationId: null },
      { hostname: null, nodeId: null, installationId: "p_42" },
    ]) {
      expect(findPeerKey(keyed, ref)).toBe("node-42");
      expect(index.find(ref)).toBe("node-42");
    }
    expect(index.find({ hostname: "stranger", nodeId: null, installationId: null })).toBeNull();
    index.add("stranger", rec(99));
    expect(index.find({ hostname: "stranger", nodeId: null, installationId: null })).toBe("stranger");
  });
});
