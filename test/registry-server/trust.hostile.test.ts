// Hostile clients against trust: reading someone else's introductions, deciding for another agent, blocking
// made-up ids; and revoke, which either side can use to end a relationship that then stops relay traffic.
import { describe, expect, it } from "vitest";
import { type AgentWithToken, startTestRegistry, type TestRegistry } from "./helpers.js";

type Peers = { peers: Array<{ requester_id: string; target_id: string; status: string }> };

async function trio(options: Parameters<typeof startTestRegistry>[0] = {}) {
  const r = await startTestRegistry(options);
  const a = await r.register({ hostname: "alice", installation_id: "inst-alice" });
  const b = await r.register({ hostname: "bob", installation_id: "inst-bob" });
  const c = await r.register({ hostname: "carol", installation_id: "inst-carol" });
  return { r, a, b, c };
}

const post = (r: TestRegistry, path: string, as: AgentWithToken | null, body: Record<string, unknown>) =>
  r.call("POST", `/api/v1/trust/${path}`, { ...(as ? { token: as.agent_token } : {}), body });

const send = (r: TestRegistry, from: AgentWithToken, to: AgentWithToken) =>
  r.call("POST", "/api/v1/agents/messages/send", {
    token: from.agent_token,
    body: {
      from_installation_id: from.installation_id,
      from_hostname: from.hostname,
      to_peer_id: to.peer_id,
      body: "hi",
    },
  });

/** alice asked bob (by peer id, as a client that only saw bob's public record), bob approved. */
async function approvedPair(r: TestRegistry, a: AgentWithToken, b: AgentWithToken) {
  expect(
    (await post(r, "request", a, { from_id: a.installation_id, to_id: b.peer_id, introduction: "hello" }))
      .status,
  ).toBe(201);
  expect((await post(r, "approve", b, { from_id: a.peer_id, to_id: b.installation_id })).body).toEqual({
    status: "approved",
  });
}

describe("trust reads need the agent's token", () => {
  it("refuses pending and list without a token (401) or with another agent's (403)", async () => {
    const { r, a, b, c } = await trio();
    await post(r, "request", a, {
      from_id: a.installation_id,
      to_id: b.peer_id,
      introduction: "secret intro",
    });
    for (const what of ["pending", "list"]) {
      for (const id of [b.installation_id, b.peer_id]) {
        const none = await r.call("GET", `/api/v1/trust/${what}/${id}`);
        expect(none.status).toBe(401);
        expect(JSON.stringify(none.body)).not.toContain("secret intro");
        expect((await r.call("GET", `/api/v1/trust/${what}/${id}`, { token: c.agent_token })).status).toBe(
          403,
        );
      }
    }
    // By own peer id with own token works too, and shows the other party by peer id only.
    const own = await r.call<{ requests: Array<{ from_id: string }> }>(
      "GET",
      `/api/v1/trust/pending/${b.peer_id}`,
      {
        token: b.agent_token,
      },
    );
    expect(own.body.requests.map((q) => q.from_id)).toEqual([a.peer_id]);
    expect(JSON.stringify(own.body)).not.toContain("inst-alice");
  });

  it("refuses deciding or requesting for another agent", async () => {
    const { r, a, b, c } = await trio();
    await post(r, "request", a, { from_id: a.installation_id, to_id: b.peer_id });
    expect((await post(r, "approve", c, { from_id: a.peer_id, to_id: b.peer_id })).status).toBe(403);
    expect((await post(r, "approve", null, { from_id: a.peer_id, to_id: b.peer_id })).status).toBe(401);
    expect((await post(r, "request", c, { from_id: a.peer_id, to_id: b.peer_id })).status).toBe(403);
  });
});

describe("block", () => {
  it("answers 404 for an id nobody registered, and stores nothing", async () => {
    const { r, b } = await trio();
    for (const id of ["never-registered", "p_0123456789abcdef0123456789abcdef"]) {
      const res = await post(r, "block", b, { from_id: id, to_id: b.installation_id });
      expect(res.status).toBe(404);
    }
    const list = await r.call<Peers>("GET", `/api/v1/trust/list/${b.installation_id}`, {
      token: b.agent_token,
    });
    expect(list.body.peers).toEqual([]);
  });

  it("blocks a registered peer by its peer id", async () => {
    const { r, b, c } = await trio();
    expect((await post(r, "block", b, { from_id: c.peer_id, to_id: b.installation_id })).body).toEqual({
      status: "blocked",
    });
    expect((await post(r, "request", c, { from_id: c.installation_id, to_id: b.peer_id })).status).toBe(403);
  });
});

describe("revoke", () => {
  for (const side of ["requester", "target"] as const) {
    it(`lets the ${side} revoke an approved trust both ways; relay sends then fail under require-trust`, async () => {
      const { r, a, b } = await trio({ requireTrust: true });
      await approvedPair(r, a, b);
      expect((await send(r, a, b)).status).toBe(200);
      expect((await send(r, b, a)).status).toBe(200);
      const [self, other] = side === "requester" ? [a, b] : [b, a];
      const revoked = await post(r, "revoke", self, { from_id: self.installation_id, to_id: other.peer_id });
      expect(revoked).toMatchObject({ status: 200, body: { status: "revoked", changed: 1 } });
      expect((await send(r, a, b)).status).toBe(403);
      expect((await send(r, b, a)).status).toBe(403);
      const list = await r.call<Peers>("GET", `/api/v1/trust/list/${a.installation_id}`, {
        token: a.agent_token,
      });
      expect(list.body.peers.map((p) => p.status)).toEqual(["rejected"]);
      // A new request and approval re-establish it.
      await approvedPair(r, a, b);
      expect((await send(r, a, b)).status).toBe(200);
    });
  }

  it("withdraws a pending request", async () => {
    const { r, a, b } = await trio();
    await post(r, "request", a, { from_id: a.installation_id, to_id: b.peer_id });
    expect((await post(r, "revoke", a, { from_id: a.peer_id, to_id: b.peer_id })).status).toBe(200);
    const pending = await r.call<{ requests: unknown[] }>("GET", `/api/v1/trust/pending/${b.peer_id}`, {
      token: b.agent_token,
    });
    expect(pending.body.requests).toEqual([]);
  });

  it("refuses a third party (403) and a caller without a token (401)", async () => {
    const { r, a, b, c } = await trio({ requireTrust: true });
    await approvedPair(r, a, b);
    expect((await post(r, "revoke", c, { from_id: a.peer_id, to_id: b.peer_id })).status).toBe(403);
    expect((await post(r, "revoke", null, { from_id: a.peer_id, to_id: b.peer_id })).status).toBe(401);
    expect((await send(r, a, b)).status).toBe(200);
  });

  it("leaves a block in place", async () => {
    const { r, b, c } = await trio();
    await post(r, "block", b, { from_id: c.peer_id, to_id: b.installation_id });
    await post(r, "revoke", c, { from_id: c.installation_id, to_id: b.peer_id });
    const list = await r.call<Peers>("GET", `/api/v1/trust/list/${b.installation_id}`, {
      token: b.agent_token,
    });
    expect(list.body.peers.map((p) => p.status)).toEqual(["blocked"]);
  });
});
