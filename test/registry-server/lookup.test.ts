// The batched lookup, POST /api/v1/agents/lookup: agents by Pilot node id and by public peer id in one request,
// offline ones too, each once; installation ids never match; the id and body limits; the deployment key.
import { describe, expect, it } from "vitest";
import { type AgentWithToken, startTestRegistry, type TestRegistry } from "./helpers.js";

const LOOKUP = "/api/v1/agents/lookup";

type Detail = { detail: Array<{ loc: Array<string | number>; msg: string; type: string }> };
type Agents = { agents: Array<Record<string, unknown>> };

async function lookup(r: TestRegistry, body: unknown) {
  return r.call<Agents>("POST", LOOKUP, { body });
}

const hostnames = (body: Agents) => body.agents.map((a) => a.hostname);

/** alpha (node 42), beta (node 7), gamma (no node id), registered in that order (answers are in that order). */
async function seed(r: TestRegistry): Promise<Record<"alpha" | "beta" | "gamma", AgentWithToken>> {
  const alpha = await r.register({ hostname: "alpha", installation_id: "inst-a", pilot_node_id: 42 });
  r.clock.advance(1);
  const beta = await r.register({ hostname: "beta", installation_id: "inst-b", pilot_node_id: "7" });
  r.clock.advance(1);
  const gamma = await r.register({ hostname: "gamma", installation_id: "inst-c" });
  return { alpha, beta, gamma };
}

describe("lookup by ids", () => {
  it("finds agents by node id, given as integers or decimal strings", async () => {
    const r = await startTestRegistry();
    await seed(r);
    const res = await lookup(r, { pilot_node_ids: [42, "7"] });
    expect(res.status).toBe(200);
    expect(hostnames(res.body)).toEqual(["alpha", "beta"]);
  });

  it("answers the public records the list route answers, without installation ids or tokens", async () => {
    const r = await startTestRegistry();
    const { alpha, beta } = await seed(r);
    const res = await lookup(r, { pilot_node_ids: [42], peer_ids: [beta.peer_id] });
    const listed = await r.call<Agents>("GET", "/api/v1/agents?include_offline=true");
    expect(res.body.agents).toEqual(listed.body.agents.filter((a) => a.hostname !== "gamma"));
    expect(res.body.agents[0]).toMatchObject({ installation_id: null, peer_id: alpha.peer_id });
    const text = JSON.stringify(res.body);
    for (const secret of ["inst-a", "inst-b", alpha.agent_token, beta.agent_token]) {
      expect(text).not.toContain(secret);
    }
  });

  it("finds agents by public peer id", async () => {
    const r = await startTestRegistry();
    const { beta, gamma } = await seed(r);
    const res = await lookup(r, { peer_ids: [gamma.peer_id, beta.peer_id] });
    expect(res.status).toBe(200);
    expect(hostnames(res.body)).toEqual(["beta", "gamma"]);
  });

  it("takes node ids and peer ids together, and lists an agent matched by both once", async () => {
    const r = await startTestRegistry();
    const { alpha, gamma } = await seed(r);
    const res = await lookup(r, { pilot_node_ids: ["42", 7], peer_ids: [alpha.peer_id, gamma.peer_id] });
    expect(hostnames(res.body)).toEqual(["alpha", "beta", "gamma"]);
  });

  it("collapses repeated ids", async () => {
    const r = await startTestRegistry();
    const { beta } = await seed(r);
    const res = await lookup(r, { pilot_node_ids: [42, "42", 42], peer_ids: [beta.peer_id, beta.peer_id] });
    expect(hostnames(res.body)).toEqual(["alpha", "beta"]);
  });

  it("leaves out ids that match nothing, and never matches an installation id", async () => {
    const r = await startTestRegistry();
    await seed(r);
    const res = await lookup(r, {
      pilot_node_ids: [999, 0],
      // Installation ids are secrets: a batched probe of them must find nothing, the owner's included.
      peer_ids: ["inst-a", "inst-b", `p_${"0".repeat(32)}`, "x"],
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ agents: [] });
  });

  it("answers an empty lookup with no agents", async () => {
    const r = await startTestRegistry();
    await seed(r);
    expect((await lookup(r, {})).body).toEqual({ agents: [] });
    expect((await lookup(r, { pilot_node_ids: [], peer_ids: [] })).body).toEqual({ agents: [] });
  });

  it("includes offline and deregistered agents, with their status", async () => {
    const r = await startTestRegistry();
    const { alpha, beta } = await seed(r);
    expect((await r.call("DELETE", `/api/v1/agents/${alpha.id}`, { token: alpha.agent_token })).status).toBe(
      204,
    );
    r.clock.advance(100);
    await r.call("POST", `/api/v1/agents/${beta.id}/heartbeat`, { token: beta.agent_token });
    r.clock.advance(100);
    const res = await lookup(r, { pilot_node_ids: [42, 7], peer_ids: [] });
    expect(res.body.agents.map((a) => [a.hostname, a.status])).toEqual([
      ["alpha", "offline"],
      ["beta", "online"],
    ]);
    r.clock.advance(200);
    const later = await lookup(r, { pilot_node_ids: [42, 7] });
    expect(later.body.agents.map((a) => a.status)).toEqual(["offline", "offline"]);
  });

  it("answers every agent announcing a node id, at most the 10 seen most recently", async () => {
    const r = await startTestRegistry();
    const agents: AgentWithToken[] = [];
    for (let i = 0; i < 12; i++) {
      agents.push(
        await r.register({ hostname: `claim-${i}`, installation_id: `claim-${i}`, pilot_node_id: 5 }),
      );
      r.clock.advance(1);
    }
    await r.register({ hostname: "other", installation_id: "other", pilot_node_id: 6 });
    // claim-0 heartbeats last: it is among the freshest even though it registered first.
    await r.call("POST", `/api/v1/agents/${agents[0]!.id}/heartbeat`, { token: agents[0]!.agent_token });
    const res = await lookup(r, { pilot_node_ids: [5, 6] });
    expect(hostnames(res.body)).toEqual([
      "claim-0",
      ...Array.from({ length: 9 }, (_, i) => `claim-${i + 3}`),
      "other",
    ]);
    // A peer id always finds its agent, whatever claims its node id.
    const byPeer = await lookup(r, { pilot_node_ids: [5], peer_ids: [agents[1]!.peer_id] });
    expect(hostnames(byPeer.body)).toContain("claim-1");
  });

  it("is not taken for an agent id: other methods get 405 naming POST", async () => {
    const r = await startTestRegistry();
    const res = await r.call("GET", LOOKUP);
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
  });
});

describe("lookup limits and bad input", () => {
  const peer = (i: number) => `p_${i.toString(16).padStart(32, "0")}`;

  it("takes 1,000 ids in one request", async () => {
    const r = await startTestRegistry();
    await seed(r);
    const res = await lookup(r, {
      pilot_node_ids: Array.from({ length: 500 }, (_, i) => i + 1),
      peer_ids: Array.from({ length: 500 }, (_, i) => peer(i)),
    });
    expect(res.status).toBe(200);
    expect(hostnames(res.body)).toEqual(["alpha", "beta"]);
  });

  it("refuses more than 1,000 ids in one list with 422 naming it", async () => {
    const r = await startTestRegistry();
    const res = await r.call<Detail>("POST", LOOKUP, {
      body: { pilot_node_ids: Array.from({ length: 1001 }, (_, i) => i) },
    });
    expect(res.status).toBe(422);
    expect(res.body.detail).toEqual([
      {
        loc: ["body", "pilot_node_ids"],
        msg: "send at most 1000 ids per lookup; split the ids into several requests",
        type: "too_long",
      },
    ]);
  });

  it("refuses more than 1,000 ids in both lists together with 422", async () => {
    const r = await startTestRegistry();
    const res = await r.call<Detail>("POST", LOOKUP, {
      body: {
        pilot_node_ids: Array.from({ length: 600 }, (_, i) => i),
        peer_ids: Array.from({ length: 401 }, (_, i) => peer(i)),
      },
    });
    expect(res.status).toBe(422);
    expect(res.body.detail).toHaveLength(1);
    expect(res.body.detail[0]).toMatchObject({ loc: ["body"], type: "too_long" });
    expect(res.body.detail[0]!.msg).toMatch(/1001 ids together; send at most 1000 per lookup/);
  });

  it("answers 422 naming the entry for a bad id, and for a body of the wrong shape", async () => {
    const r = await startTestRegistry();
    const cases: Array<[unknown, Array<string | number>]> = [
      [{ pilot_node_ids: [1, "abc"] }, ["body", "pilot_node_ids", 1]],
      [{ pilot_node_ids: [-1] }, ["body", "pilot_node_ids", 0]],
      [{ pilot_node_ids: [4294967296] }, ["body", "pilot_node_ids", 0]],
      [{ pilot_node_ids: ["4294967296"] }, ["body", "pilot_node_ids", 0]],
      [{ pilot_node_ids: [1.5] }, ["body", "pilot_node_ids", 0]],
      [{ pilot_node_ids: [null] }, ["body", "pilot_node_ids", 0]],
      [{ pilot_node_ids: "42" }, ["body", "pilot_node_ids"]],
      [{ peer_ids: [42] }, ["body", "peer_ids", 0]],
      [{ peer_ids: [""] }, ["body", "peer_ids", 0]],
      [{ peer_ids: ["x".repeat(201)] }, ["body", "peer_ids", 0]],
      [{ peer_ids: ["p_\u0000"] }, ["body", "peer_ids", 0]],
      [[42], ["body"]],
    ];
    for (const [body, loc] of cases) {
      const res = await r.call<Detail>("POST", LOOKUP, { body });
      const label = JSON.stringify(body).slice(0, 60);
      expect(res.status, label).toBe(422);
      expect(
        res.body.detail.map((d) => d.loc),
        label,
      ).toContainEqual(loc);
    }
  });

  it("refuses an unknown field (a misspelt list would otherwise read as 'no such agents')", async () => {
    const r = await startTestRegistry();
    const res = await r.call<Detail>("POST", LOOKUP, { body: { node_ids: [42] } });
    expect(res.status).toBe(422);
    expect(res.body.detail[0]).toMatchObject({ type: "extra_forbidden" });
  });

  it("answers 422 without a body, 400 for malformed JSON, 415 for another content type", async () => {
    const r = await startTestRegistry();
    const empty = await r.call<Detail>("POST", LOOKUP, { raw: "" });
    expect(empty.status).toBe(422);
    expect(empty.body.detail).toEqual([{ loc: ["body"], msg: "Field required", type: "missing" }]);
    expect((await r.call("POST", LOOKUP, { raw: "{pilot_node_ids:" })).status).toBe(400);
    expect(
      (
        await r.call("POST", LOOKUP, {
          raw: JSON.stringify({ pilot_node_ids: [42] }),
          headers: { "content-type": "text/plain" },
        })
      ).status,
    ).toBe(415);
  });

  it("refuses a body over 256 KiB with 413", async () => {
    const r = await startTestRegistry();
    const res = await r.call("POST", LOOKUP, {
      raw: JSON.stringify({ peer_ids: ["x".repeat(260 * 1024)] }),
    });
    expect(res.status).toBe(413);
    expect(String(res.body.detail)).toMatch(/larger than 262144 bytes/);
  });
});

describe("lookup and the deployment key", () => {
  it("answers 401 without the key and 200 with it", async () => {
    const r = await startTestRegistry({ apiKey: "lookup-key" });
    await r.call("POST", "/api/v1/agents/", {
      body: { hostname: "alpha", installation_id: "inst-a", pilot_node_id: 42 },
      headers: { "x-registry-key": "lookup-key" },
    });
    const none = await lookup(r, { pilot_node_ids: [42] });
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toBe("X-Registry-Key");
    const wrong = await r.call("POST", LOOKUP, {
      body: { pilot_node_ids: [42] },
      headers: { "x-registry-key": "wrong" },
    });
    expect(wrong.status).toBe(401);
    const ok = await r.call<Agents>("POST", LOOKUP, {
      body: { pilot_node_ids: [42] },
      headers: { "x-registry-key": "lookup-key" },
    });
    expect(ok.status).toBe(200);
    expect(hostnames(ok.body)).toEqual(["alpha"]);
  });
});
