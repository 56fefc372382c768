// Trust handshake in relay mode: request, pending, approve, reject, block, list; mutual requests approve both.
import { describe, expect, it } from "vitest";
import { type AgentWithToken, startTestRegistry, type TestRegistry } from "./helpers.js";

type Peers = {
  peers: Array<{ requester_id: string; target_id: string; status: string; approved_at?: string }>;
  next_cursor: string;
};

async function trio() {
  const r = await startTestRegistry();
  const a = await r.register({ hostname: "alice", installation_id: "A" });
  const b = await r.register({ hostname: "bob", installation_id: "B" });
  const c = await r.register({ hostname: "carol", installation_id: "C" });
  return { r, a, b, c };
}

const post = (r: TestRegistry, path: string, as: AgentWithToken, body: Record<string, unknown>) =>
  r.call("POST", `/api/v1/trust/${path}`, { token: as.agent_token, body });

/** Trust reads need the agent's own token; lists name both sides by peer id. */
const read = <T = Record<string, unknown>>(r: TestRegistry, what: "pending" | "list", as: AgentWithToken) =>
  r.call<T>("GET", `/api/v1/trust/${what}/${as.installation_id}`, { token: as.agent_token });

describe("trust", () => {
  it("creates a pending request that the target sees with the introduction", async () => {
    const { r, a, b } = await trio();
    const res = await post(r, "request", a, {
      from_id: "A",
      to_id: "B",
      introduction: "Hi, I translate",
      assistant_name: "Alice",
      human_name: "Ann",
    });
    expect(res).toMatchObject({ status: 201, body: { status: "pending" } });
    const pending = await read(r, "pending", b);
    expect(pending.body.requests).toEqual([
      {
        from_id: a.peer_id,
        requester_id: a.peer_id,
        to_id: b.peer_id,
        from_assistant_name: "Alice",
        from_human_name: "Ann",
        introduction: "Hi, I translate",
        created_at: "2026-01-01T00:00:00.000Z",
      },
    ]);
    expect(pending.body.relationships).toEqual(pending.body.requests);
    expect((await post(r, "request", a, { from_id: "A", to_id: "B" })).body).toEqual({ status: "pending" });
  });

  it("approves both sides when both request each other", async () => {
    const { r, a, b } = await trio();
    await post(r, "request", a, { from_id: "A", to_id: "B" });
    const mutual = await post(r, "request", b, { from_id: "B", to_id: "A" });
    expect(mutual.body).toEqual({ status: "approved" });
    for (const who of [a, b]) {
      const list = await read<Peers>(r, "list", who);
      // Same created_at: ordered by requester peer id.
      expect(list.body.peers.map((p) => [p.requester_id, p.target_id, p.status])).toEqual(
        [
          [a.peer_id, b.peer_id, "approved"],
          [b.peer_id, a.peer_id, "approved"],
        ].sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
      );
    }
    expect((await read(r, "pending", a)).body.requests).toEqual([]);
  });

  it("approve makes the request approved, with approved_at, listed on both sides", async () => {
    const { r, a, b } = await trio();
    await post(r, "request", a, { from_id: "A", to_id: "B" });
    r.clock.advance(10);
    expect((await post(r, "approve", b, { from_id: "A", to_id: "B" })).body).toEqual({ status: "approved" });
    const list = await read<Peers>(r, "list", a);
    expect(list.body.peers).toEqual([
      {
        requester_id: a.peer_id,
        target_id: b.peer_id,
        status: "approved",
        created_at: "2026-01-01T00:00:00.000Z",
        approved_at: "2026-01-01T00:00:10.000Z",
        updated_at: "2026-01-01T00:00:10.000Z",
        peer_hostname: "bob",
      },
    ]);
    expect(list.body.next_cursor).toBe("2");
    expect((await post(r, "request", a, { from_id: "A", to_id: "B" })).body).toEqual({ status: "approved" });
  });

  it("reject marks the request rejected; a new request makes it pending again", async () => {
    const { r, a, b } = await trio();
    await post(r, "request", a, { from_id: "A", to_id: "B" });
    expect((await post(r, "reject", b, { from_id: "A", to_id: "B" })).body).toEqual({ status: "rejected" });
    expect((await read<Peers>(r, "list", b)).body.peers[0]!.status).toBe("rejected");
    expect((await post(r, "request", a, { from_id: "A", to_id: "B" })).body).toEqual({ status: "pending" });
  });

  it("rejecting an approved peer revokes trust both ways", async () => {
    const { r, a, b } = await trio();
    await post(r, "request", a, { from_id: "A", to_id: "B" });
    await post(r, "request", b, { from_id: "B", to_id: "A" });
    await post(r, "reject", a, { from_id: "B", to_id: "A" });
    const statuses = (await read<Peers>(r, "list", a)).body.peers.map((p) => p.status);
    expect(statuses).toEqual(["rejected", "rejected"]);
  });

  it("block stops further requests from that peer with 403, even without a prior request", async () => {
    const { r, b, c } = await trio();
    expect((await post(r, "block", b, { from_id: "C", to_id: "B" })).body).toEqual({ status: "blocked" });
    const again = await post(r, "request", c, { from_id: "C", to_id: "B" });
    expect(again.status).toBe(403);
  });

  it("answers 404 when approving or rejecting a request that does not exist, or asking an unknown target", async () => {
    const { r, a, b } = await trio();
    expect((await post(r, "approve", b, { from_id: "C", to_id: "B" })).status).toBe(404);
    expect((await post(r, "reject", b, { from_id: "C", to_id: "B" })).status).toBe(404);
    expect((await post(r, "request", a, { from_id: "A", to_id: "Z" })).status).toBe(404);
  });

  it("refuses a request to oneself with 422", async () => {
    const { r, a } = await trio();
    const res = await post(r, "request", a, { from_id: "A", to_id: "A" });
    expect(res.status).toBe(422);
    expect(res.body.detail).toEqual([expect.objectContaining({ loc: ["body", "to_id"] })]);
  });
});
