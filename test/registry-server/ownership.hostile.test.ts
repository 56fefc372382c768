// Hostile clients against a registration: taking over an agent by its installation id or hostname, squatting
// a hostname after its owner went quiet or deregistered, and reading another agent's inbox. Every attack is
// refused and the victim keeps its id, token and inbox; the owner's recovery paths (its token, the release
// period, the operator's release) work.
import { describe, expect, it } from "vitest";
import { peerIdOf } from "../../src/registry-server/peer-id.js";
import { type AgentWithToken, startTestRegistry, type TestRegistry } from "./helpers.js";

type Inbox = { messages: Array<{ body: unknown; from_installation_id: string; from_peer_id: string }> };
type Page = { agents: AgentWithToken[]; total: number };

const VICTIM = { hostname: "victim", installation_id: "inst-victim-secret" };

async function setup(options: Parameters<typeof startTestRegistry>[0] = {}) {
  const r = await startTestRegistry({ ttlSeconds: 180, offlineRetentionSeconds: 3600, ...options });
  const victim = await r.register(VICTIM);
  const friend = await r.register({ hostname: "friend", installation_id: "inst-friend" });
  return { r, victim, friend };
}

const send = (r: TestRegistry, from: AgentWithToken, body: Record<string, unknown>) =>
  r.call("POST", "/api/v1/agents/messages/send", {
    token: from.agent_token,
    body: { from_installation_id: from.installation_id, from_hostname: from.hostname, ...body },
  });

const inboxOf = (r: TestRegistry, installationId: string, token?: string) =>
  r.call<Inbox>("GET", `/api/v1/agents/messages/inbox/${installationId}`, token ? { token } : {});

/** The victim still works: same id, its token heartbeats, its inbox is its own. */
async function expectVictimIntact(r: TestRegistry, victim: AgentWithToken) {
  const hb = await r.call("POST", `/api/v1/agents/${victim.id}/heartbeat`, { token: victim.agent_token });
  expect(hb.status).toBe(200);
  const record = await r.call<AgentWithToken>("GET", "/api/v1/agents/by-hostname/victim");
  expect(record.body.id).toBe(victim.id);
  expect((await inboxOf(r, VICTIM.installation_id, victim.agent_token)).status).toBe(200);
}

describe("identity takeover is refused", () => {
  it("does not publish installation ids: records carry a peer id instead", async () => {
    const { r, victim } = await setup();
    expect(victim.installation_id).toBe(VICTIM.installation_id); // the owner sees its own
    expect(victim.peer_id).toBe(peerIdOf(VICTIM.installation_id));
    const views = [
      (await r.call<AgentWithToken>("GET", `/api/v1/agents/${victim.id}`)).body,
      (await r.call<AgentWithToken>("GET", "/api/v1/agents/by-hostname/victim")).body,
      ...(await r.call<Page>("GET", "/api/v1/agents/search?q=victim")).body.agents,
      ...(await r.call<Page>("GET", "/api/v1/agents/?hostname=victim")).body.agents,
    ];
    expect(views).toHaveLength(4);
    for (const view of views) {
      expect(view.installation_id).toBeNull();
      expect(view.peer_id).toBe(victim.peer_id);
      expect(JSON.stringify(view)).not.toContain(VICTIM.installation_id);
    }
    const byPeer = await r.call<Page>("GET", `/api/v1/agents/?peer_id=${victim.peer_id}`);
    expect(byPeer.body.agents.map((a) => a.id)).toEqual([victim.id]);
  });

  it("refuses re-registration with the victim's installation id and hostname: 401 without a token", async () => {
    const { r, victim } = await setup();
    const attack = await r.call<AgentWithToken>("POST", "/api/v1/agents/", { body: VICTIM });
    expect(attack.status).toBe(401);
    expect(attack.body).not.toHaveProperty("agent_token");
    const detail = String((attack.body as unknown as { detail: string }).detail);
    expect(detail).toMatch(/agent_token/);
    expect(detail).toMatch(/agent-registry release/);
    expect(detail).toMatch(/2026-01-01T01:03:00\.000Z/); // last seen + ttl + release period
    expect(detail).toMatch(/another hostname/);
    await expectVictimIntact(r, victim);
  });

  it("refuses it with a wrong or foreign token: 403", async () => {
    const { r, victim, friend } = await setup();
    for (const token of [friend.agent_token, "art_forged", `${victim.agent_token}x`]) {
      const attack = await r.call("POST", "/api/v1/agents/", { body: VICTIM, token });
      expect(attack.status).toBe(403);
      expect(String(attack.body.detail)).toMatch(/agent-registry release/);
    }
    await expectVictimIntact(r, victim);
  });

  it("refuses moving the victim's record to a new hostname by its installation id", async () => {
    const { r, victim } = await setup();
    const attack = await r.call("POST", "/api/v1/agents/", {
      body: { hostname: "evil-host", installation_id: VICTIM.installation_id },
    });
    expect(attack.status).toBe(401);
    expect((await r.call("GET", "/api/v1/agents/by-hostname/evil-host")).status).toBe(404);
    await expectVictimIntact(r, victim);
  });

  it("refuses another installation under the victim's hostname, online or offline, with 409 and the release time", async () => {
    const { r, victim } = await setup();
    const online = await r.call("POST", "/api/v1/agents/", {
      body: { hostname: "victim", installation_id: "inst-evil" },
    });
    expect(online.status).toBe(409);
    expect(String(online.body.detail)).toMatch(/until at least 2026-01-01T01:03:00\.000Z/);
    r.clock.advance(181); // one second after the ttl ran out: the squatting from the findings
    const squat = await r.call("POST", "/api/v1/agents/", {
      body: { hostname: "victim", installation_id: "inst-evil" },
    });
    expect(squat.status).toBe(409);
    expect(String(squat.body.detail)).toMatch(/offline or deregistered/);
    // The owner comes back with its token: same id.
    const back = await r.register(VICTIM, victim.agent_token);
    expect(back.id).toBe(victim.id);
    await expectVictimIntact(r, victim);
  });

  it("refuses PATCH and DELETE of the victim without its token", async () => {
    const { r, victim, friend } = await setup();
    const path = `/api/v1/agents/${victim.id}`;
    expect((await r.call("PATCH", path, { body: { hostname: "evil-host" } })).status).toBe(401);
    expect((await r.call("PATCH", path, { body: { hostname: "x" }, token: friend.agent_token })).status).toBe(
      403,
    );
    expect((await r.call("DELETE", path)).status).toBe(401);
    expect((await r.call("DELETE", path, { token: friend.agent_token })).status).toBe(403);
    // PATCH of one's own record onto a held hostname is a conflict, not a takeover.
    const onto = await r.call("PATCH", `/api/v1/agents/${friend.id}`, {
      body: { hostname: "victim" },
      token: friend.agent_token,
    });
    expect(onto.status).toBe(409);
    await expectVictimIntact(r, victim);
  });

  it("keeps the victim's inbox its own: an attacker reads nothing and messages keep arriving", async () => {
    const { r, victim, friend } = await setup();
    await r.call("POST", "/api/v1/agents/", { body: VICTIM }); // refused (401)
    expect((await inboxOf(r, VICTIM.installation_id)).status).toBe(401);
    expect((await inboxOf(r, VICTIM.installation_id, friend.agent_token)).status).toBe(403);
    expect((await send(r, friend, { to_hostname: "victim", body: "for the victim" })).status).toBe(200);
    const box = await inboxOf(r, VICTIM.installation_id, victim.agent_token);
    expect(box.body.messages.map((m) => m.body)).toEqual(["for the victim"]);
    // The sender appears by peer id under both field names, never by its installation id.
    expect(box.body.messages[0]).toMatchObject({
      from_peer_id: friend.peer_id,
      from_installation_id: friend.peer_id,
    });
  });

  it("delivers relay messages by to_peer_id, and by a peer id in to_installation_id (older clients)", async () => {
    const { r, victim, friend } = await setup();
    expect((await send(r, friend, { to_peer_id: victim.peer_id, body: "one" })).status).toBe(200);
    expect((await send(r, friend, { to_installation_id: victim.peer_id, body: "two" })).status).toBe(200);
    const mismatch = await send(r, friend, { to_peer_id: victim.peer_id, to_hostname: "friend", body: "x" });
    expect(mismatch.status).toBe(422);
    const box = await inboxOf(r, VICTIM.installation_id, victim.agent_token);
    expect(box.body.messages.map((m) => m.body)).toEqual(["one", "two"]);
  });
});

describe("deregistration keeps the claim for the release period", () => {
  it("holds a deregistered hostname, hides it, keeps messages for the owner and revives the same id", async () => {
    const { r, victim, friend } = await setup();
    expect(
      (await r.call("DELETE", `/api/v1/agents/${victim.id}`, { token: victim.agent_token })).status,
    ).toBe(204);
    expect((await r.call("GET", "/api/v1/agents/by-hostname/victim")).status).toBe(404);
    expect((await r.call<Page>("GET", "/api/v1/agents/search?q=victim")).body.total).toBe(0);
    const newcomer = await r.call("POST", "/api/v1/agents/", {
      body: { hostname: "victim", installation_id: "inst-newcomer" },
    });
    expect(newcomer.status).toBe(409);
    // Relay traffic for the held hostname waits for its owner.
    expect((await send(r, friend, { to_hostname: "victim", body: "while away" })).status).toBe(200);
    r.clock.advance(600);
    const back = await r.register(VICTIM, victim.agent_token);
    expect(back.id).toBe(victim.id);
    expect(back.agent_token).toBe(victim.agent_token);
    const box = await inboxOf(r, VICTIM.installation_id, victim.agent_token);
    expect(box.body.messages.map((m) => m.body)).toEqual(["while away"]);
  });

  it("releases the hostname after the period: the sweep purges the record and its messages", async () => {
    const { r, victim, friend } = await setup();
    await r.call("DELETE", `/api/v1/agents/${victim.id}`, { token: victim.agent_token });
    await send(r, friend, { to_hostname: "victim", body: "never read" });
    r.clock.advance(3599);
    expect((await r.server.sweep()).agents).toBe(0);
    expect(
      (await r.call("POST", "/api/v1/agents/", { body: { hostname: "victim", installation_id: "inst-new" } }))
        .status,
    ).toBe(409);
    r.clock.advance(2);
    expect((await r.server.sweep()).agents).toBe(1);
    const taken = await r.register({ hostname: "victim", installation_id: "inst-new" });
    expect(taken.id).not.toBe(victim.id);
    expect((await inboxOf(r, "inst-new", taken.agent_token)).body.messages).toEqual([]);
    // The old owner's messages went with its record.
    expect((await inboxOf(r, VICTIM.installation_id, victim.agent_token)).status).toBe(403);
  });

  it("frees a lapsed hostname even before the sweep ran", async () => {
    const { r, victim } = await setup();
    r.clock.advance(180 + 3601);
    const taken = await r.call<AgentWithToken>("POST", "/api/v1/agents/", {
      body: { hostname: "victim", installation_id: "inst-new" },
    });
    expect(taken.status).toBe(201);
    expect(taken.body.id).not.toBe(victim.id);
  });
});

describe("operator release", () => {
  const ADMIN = "admin-key-for-tests";

  it("answers 403 saying how to enable it when no admin key is configured", async () => {
    const { r } = await setup();
    const res = await r.call("POST", "/api/v1/admin/release", {
      body: { hostname: "victim" },
      headers: { "x-registry-admin-key": "anything" },
    });
    expect(res.status).toBe(403);
    expect(String(res.body.detail)).toMatch(/--admin-key/);
  });

  it("needs the admin key: none 401, wrong 403; an agent token is no admin key", async () => {
    const { r, victim } = await setup({ adminKey: ADMIN });
    const path = "/api/v1/admin/release";
    expect((await r.call("POST", path, { body: { hostname: "victim" } })).status).toBe(401);
    expect(
      (
        await r.call("POST", path, {
          body: { hostname: "victim" },
          headers: { "x-registry-admin-key": "nope" },
        })
      ).status,
    ).toBe(403);
    expect(
      (await r.call("POST", path, { body: { hostname: "victim" }, token: victim.agent_token })).status,
    ).toBe(401);
    await expectVictimIntact(r, victim);
  });

  it("lets an owner that lost its state take its hostname back with a fresh token", async () => {
    const { r, victim } = await setup({ adminKey: ADMIN });
    const lost = { hostname: "victim", installation_id: "inst-after-lost-state" };
    expect((await r.call("POST", "/api/v1/agents/", { body: lost })).status).toBe(409);
    const released = await r.call("POST", "/api/v1/admin/release", {
      body: { hostname: "victim" },
      headers: { "x-registry-admin-key": ADMIN },
    });
    expect(released).toMatchObject({ status: 200, body: { released: true, id: victim.id } });
    const back = await r.register(lost);
    expect(back.agent_token).not.toBe(victim.agent_token);
    // The old token is void: the released record and its inbox are gone.
    const hb = await r.call("POST", `/api/v1/agents/${victim.id}/heartbeat`, { token: victim.agent_token });
    expect(hb.status).toBe(404);
    expect(
      (await r.call("POST", `/api/v1/agents/${back.id}/heartbeat`, { token: back.agent_token })).status,
    ).toBe(200);
  });

  it("lets the same installation re-register without a token after a release", async () => {
    const { r, victim } = await setup({ adminKey: ADMIN });
    await r.call("POST", "/api/v1/admin/release", {
      body: { hostname: "victim" },
      headers: { "x-registry-admin-key": ADMIN },
    });
    const back = await r.register(VICTIM);
    expect(back.id).toBe(victim.id);
    expect(back.agent_token).not.toBe(victim.agent_token);
    expect(
      (await r.call("POST", `/api/v1/agents/${victim.id}/heartbeat`, { token: victim.agent_token })).status,
    ).toBe(403);
  });
});

describe("agent tokens off", () => {
  it("keeps the original open behaviour (insecure): re-registration needs no token", async () => {
    const r = await startTestRegistry({ agentTokens: false });
    const a = await r.register(VICTIM);
    const again = await r.call<AgentWithToken>("POST", "/api/v1/agents/", { body: VICTIM });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(a.id);
  });
});

describe("relay to a released hostname", () => {
  it("answers 404 once the release period is over, even before the sweep", async () => {
    const { r, victim, friend } = await setup();
    await r.call("DELETE", `/api/v1/agents/${victim.id}`, { token: victim.agent_token });
    r.clock.advance(3601);
    // friend keeps heartbeating so it stays a valid sender.
    await r.register({ hostname: "friend", installation_id: "inst-friend" }, friend.agent_token);
    expect((await send(r, friend, { to_hostname: "victim", body: "too late" })).status).toBe(404);
  });
});
