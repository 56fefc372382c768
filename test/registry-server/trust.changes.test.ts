// The trust list read by change: pages of a caller's records after a cursor (change sequence order), the whole
// list's cursor, what each entry shows to which side, and refused parameters.
import { describe, expect, it } from "vitest";
import type { TrustPeer } from "../../src/registry-server/service.js";
import { type AgentWithToken, startTestRegistry, type TestRegistry } from "./helpers.js";

/** A trust-list entry as the server sends it. */
type Entry = TrustPeer;
interface Changes {
  peers: Entry[];
  next_cursor: string;
  has_more?: boolean;
}

const post = (r: TestRegistry, path: string, as: AgentWithToken, body: Record<string, unknown>) =>
  r.call("POST", `/api/v1/trust/${path}`, { token: as.agent_token, body });

const list = (r: TestRegistry, as: AgentWithToken, query = "") =>
  r.call<Changes>("GET", `/api/v1/trust/list/${as.installation_id}${query}`, { token: as.agent_token });

/** Reads the caller's changes after `after` (one page); fails the test on anything but 200. */
async function changes(r: TestRegistry, as: AgentWithToken, after: string, limit?: number): Promise<Changes> {
  const res = await list(r, as, `?after=${after}${limit === undefined ? "" : `&limit=${limit}`}`);
  expect(res.status).toBe(200);
  return res.body;
}

/** Alice and `n` peers, each of which asked alice for trust (pending, oldest first). */
async function aliceAndAskers(n: number) {
  const r = await startTestRegistry();
  const alice = await r.register({ hostname: "alice", installation_id: "A" });
  const askers: AgentWithToken[] = [];
  for (let i = 0; i < n; i++) {
    const peer = await r.register({ hostname: `peer-${i}`, installation_id: `P${i}` });
    await post(r, "request", peer, { from_id: `P${i}`, to_id: alice.peer_id, introduction: `hi ${i}` });
    askers.push(peer);
  }
  return { r, alice, askers };
}

const others = (page: Changes) => page.peers.map((p) => p.peer_hostname);

describe("trust list by change", () => {
  it("pages through the caller's records in change order, with has_more and next_cursor", async () => {
    const { r, alice } = await aliceAndAskers(5);
    const first = await changes(r, alice, "0", 2);
    expect(others(first)).toEqual(["peer-0", "peer-1"]);
    expect(first.has_more).toBe(true);
    const second = await changes(r, alice, first.next_cursor, 2);
    expect(others(second)).toEqual(["peer-2", "peer-3"]);
    const third = await changes(r, alice, second.next_cursor, 2);
    expect(others(third)).toEqual(["peer-4"]);
    expect(third.has_more).toBe(false);
    // Cursors are the change sequence of the last record returned.
    expect([first, second, third].map((p) => p.next_cursor)).toEqual(["2", "4", "5"]);
  });

  it("takes a limit of 500 when only after is given, and from the start when only limit is", async () => {
    const { r, alice } = await aliceAndAskers(3);
    expect(others(await changes(r, alice, "0"))).toEqual(["peer-0", "peer-1", "peer-2"]);
    const onlyLimit = await list(r, alice, "?limit=1");
    expect(onlyLimit.body).toMatchObject({ next_cursor: "1", has_more: true });
  });

  it("continues from a cursor with only what changed since: nothing when idle, each change once", async () => {
    const { r, alice, askers } = await aliceAndAskers(3);
    const all = await changes(r, alice, "0");
    const idle = await changes(r, alice, all.next_cursor);
    expect(idle).toEqual({ peers: [], next_cursor: all.next_cursor, has_more: false });

    r.clock.advance(5);
    await post(r, "approve", alice, { from_id: askers[1]!.peer_id, to_id: "A" });
    const approved = await changes(r, alice, all.next_cursor);
    expect(approved.peers).toEqual([
      expect.objectContaining({
        requester_id: askers[1]!.peer_id,
        status: "approved",
        approved_at: "2026-01-01T00:00:05.000Z",
        updated_at: "2026-01-01T00:00:05.000Z",
      }),
    ]);

    await post(r, "revoke", askers[1]!, { from_id: askers[1]!.peer_id, to_id: alice.peer_id });
    const revoked = await changes(r, alice, approved.next_cursor);
    expect(revoked.peers.map((p) => [p.peer_hostname, p.status])).toEqual([["peer-1", "rejected"]]);
    expect(await changes(r, alice, revoked.next_cursor)).toMatchObject({ peers: [] });
  });

  it("misses no change made in the same millisecond as the read before it", async () => {
    // The clock never moves: only the change sequence tells the records apart.
    const { r, alice, askers } = await aliceAndAskers(2);
    const before = await changes(r, alice, "0");
    await post(r, "approve", alice, { from_id: askers[0]!.peer_id, to_id: "A" });
    await post(r, "reject", alice, { from_id: askers[1]!.peer_id, to_id: "A" });
    const after = await changes(r, alice, before.next_cursor);
    expect(after.peers.map((p) => [p.peer_hostname, p.status])).toEqual([
      ["peer-0", "approved"],
      ["peer-1", "rejected"],
    ]);
  });

  it("lists both directions and none of other pairs' records", async () => {
    const { r, alice, askers } = await aliceAndAskers(1);
    const carol = await r.register({ hostname: "carol", installation_id: "C" });
    await post(r, "request", alice, { from_id: "A", to_id: carol.peer_id });
    await post(r, "request", askers[0]!, { from_id: "P0", to_id: carol.peer_id });
    const page = await changes(r, alice, "0");
    expect(page.peers.map((p) => [p.requester_id, p.target_id, p.peer_hostname])).toEqual([
      [askers[0]!.peer_id, alice.peer_id, "peer-0"],
      [alice.peer_id, carol.peer_id, "carol"],
    ]);
  });

  it("shows a pending request's text to its target only", async () => {
    const r = await startTestRegistry();
    const alice = await r.register({ hostname: "alice", installation_id: "A" });
    const bob = await r.register({ hostname: "bob", installation_id: "B" });
    await post(r, "request", alice, {
      from_id: "A",
      to_id: bob.peer_id,
      introduction: "I translate",
      assistant_name: "Alice",
      human_name: "Ann",
    });
    const [toBob] = (await changes(r, bob, "0")).peers;
    expect(toBob).toEqual({
      requester_id: alice.peer_id,
      target_id: bob.peer_id,
      status: "pending",
      created_at: "2026-01-01T00:00:00.000Z",
      updated_at: "2026-01-01T00:00:00.000Z",
      peer_hostname: "alice",
      introduction: "I translate",
      assistant_name: "Alice",
      human_name: "Ann",
    });
    const [fromAlice] = (await changes(r, alice, "0")).peers;
    expect(fromAlice).not.toHaveProperty("introduction");
    expect(fromAlice).toMatchObject({ peer_hostname: "bob", status: "pending" });
    // Once decided, the request's text is no longer shown, to either side.
    await post(r, "approve", bob, { from_id: alice.peer_id, to_id: "B" });
    expect((await changes(r, bob, "0")).peers[0]).not.toHaveProperty("introduction");
  });

  it("names a peer whose agent is gone with a null hostname", async () => {
    const { r, alice } = await aliceAndAskers(1);
    r.clock.advance(365 * 24 * 3600);
    // Alice comes back (re-registers with her token); her peer, gone as long, is purged.
    const back = await r.register({ hostname: "alice", installation_id: "A" }, alice.agent_token);
    expect((await r.server.sweep()).agents).toBe(1);
    expect((await changes(r, back, "0")).peers[0]?.peer_hostname).toBeNull();
  });

  it("gives the whole list a cursor to continue from by change", async () => {
    const { r, alice, askers } = await aliceAndAskers(2);
    const empty = await r.register({ hostname: "nobody", installation_id: "N" });
    expect((await list(r, empty)).body).toEqual({ peers: [], next_cursor: "0" });

    const whole = await list(r, alice);
    expect(whole.body.peers).toHaveLength(2);
    expect(whole.body.next_cursor).toBe("2");
    expect(whole.body).not.toHaveProperty("has_more");
    await post(r, "approve", alice, { from_id: askers[0]!.peer_id, to_id: "A" });
    expect(others(await changes(r, alice, whole.body.next_cursor))).toEqual(["peer-0"]);
  });

  it("refuses bad parameters with 422 naming them", async () => {
    const { r, alice } = await aliceAndAskers(1);
    for (const [query, field] of [
      ["?after=abc", "after"],
      ["?after=-1", "after"],
      ["?after=", "after"],
      ["?after=1.5", "after"],
      ["?limit=0", "limit"],
      ["?limit=1001", "limit"],
      ["?limit=ten", "limit"],
      ["?after=0&limit=-5", "limit"],
    ] as const) {
      const res = await r.call<{ detail: Array<{ loc: unknown[]; msg: string }> }>(
        "GET",
        `/api/v1/trust/list/A${query}`,
        { token: alice.agent_token },
      );
      expect(res.status, query).toBe(422);
      expect(res.body.detail[0]?.loc, query).toEqual(["query", field]);
    }
    expect((await changes(r, alice, "0", 1000)).peers).toHaveLength(1);
  });

  it("refuses a cursor ahead of the registry's changes with 409 (a registry restored from a backup)", async () => {
    const { r, alice } = await aliceAndAskers(1);
    const res = await list(r, alice, "?after=99");
    expect(res.status).toBe(409);
    expect(JSON.stringify(res.body)).toMatch(/read the whole list again, without after/);
  });

  it("needs the caller's own token, as the whole list does", async () => {
    const { r, alice, askers } = await aliceAndAskers(1);
    const res = await r.call("GET", "/api/v1/trust/list/A?after=0", { token: askers[0]!.agent_token });
    expect(res.status).toBe(403);
    expect((await r.call("GET", "/api/v1/trust/list/A?after=0")).status).toBe(401);
    expect(alice.peer_id).not.toBeNull();
  });
});
