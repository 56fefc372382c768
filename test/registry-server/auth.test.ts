// Authentication: the deployment key (X-Registry-Key) and agent tokens (Authorization: Bearer) for every call
// that acts as an agent; another agent's token is refused with 403; tokens off restores the original API.
import { describe, expect, it } from "vitest";
import { startTestRegistry } from "./helpers.js";

describe("deployment key", () => {
  it("answers 401 without the key or with a wrong one, 2xx with it", async () => {
    const r = await startTestRegistry({ apiKey: "s3cret-key" });
    const body = { hostname: "alpha", installation_id: "a" };
    const none = await r.call("POST", "/api/v1/agents/", { body });
    expect(none.status).toBe(401);
    expect(String(none.body.detail)).toMatch(/X-Registry-Key/);
    expect(JSON.stringify(none.body)).not.toContain("s3cret-key");
    expect(
      (await r.call("GET", "/api/v1/agents/search", { headers: { "x-registry-key": "wrong" } })).status,
    ).toBe(401);
    const ok = await r.call("POST", "/api/v1/agents/", { body, headers: { "x-registry-key": "s3cret-key" } });
    expect(ok.status).toBe(201);
  });

  it("accepts the key as a bearer token on trust calls (original plugin) but not elsewhere", async () => {
    const r = await startTestRegistry({ apiKey: "k", agentTokens: false });
    const headers = { authorization: "Bearer k" };
    expect((await r.call("GET", "/api/v1/trust/list/A", { headers })).status).toBe(200);
    expect((await r.call("GET", "/api/v1/agents/", { headers })).status).toBe(401);
  });

  it("leaves /healthz open", async () => {
    const r = await startTestRegistry({ apiKey: "k" });
    expect((await r.call("GET", "/healthz")).status).toBe(200);
  });
});

describe("agent tokens", () => {
  it("requires the agent's own token for heartbeat, PATCH and DELETE", async () => {
    const r = await startTestRegistry();
    const a = await r.register({ hostname: "alpha", installation_id: "A" });
    const b = await r.register({ hostname: "beta", installation_id: "B" });
    const calls: Array<[string, string, unknown]> = [
      ["POST", `/api/v1/agents/${a.id}/heartbeat`, undefined],
      ["PATCH", `/api/v1/agents/${a.id}`, { display_name: "x" }],
      ["DELETE", `/api/v1/agents/${a.id}`, undefined],
    ];
    for (const [method, path, body] of calls) {
      expect((await r.call(method, path, { body })).status, `${method} no token`).toBe(401);
      expect((await r.call(method, path, { body, token: b.agent_token })).status, `${method} other`).toBe(
        403,
      );
      expect((await r.call(method, path, { body, token: "art_forged" })).status, `${method} forged`).toBe(
        403,
      );
    }
    expect((await r.call("POST", `/api/v1/agents/${a.id}/heartbeat`, { token: a.agent_token })).status).toBe(
      200,
    );
  });

  it("requires the sender's token for relay send, and the owner's for inbox read and ack", async () => {
    const r = await startTestRegistry();
    const a = await r.register({ hostname: "alpha", installation_id: "A" });
    const b = await r.register({ hostname: "beta", installation_id: "B" });
    const msg = { from_installation_id: "A", from_hostname: "alpha", to_hostname: "beta", body: "hi" };
    expect((await r.call("POST", "/api/v1/agents/messages/send", { body: msg })).status).toBe(401);
    expect(
      (await r.call("POST", "/api/v1/agents/messages/send", { body: msg, token: b.agent_token })).status,
    ).toBe(403);
    const spoofed = { ...msg, from_hostname: "beta" };
    expect(
      (await r.call("POST", "/api/v1/agents/messages/send", { body: spoofed, token: a.agent_token })).status,
    ).toBe(403);
    expect(
      (await r.call("POST", "/api/v1/agents/messages/send", { body: msg, token: a.agent_token })).status,
    ).toBe(200);
    expect((await r.call("GET", "/api/v1/agents/messages/inbox/B")).status).toBe(401);
    expect(
      (await r.call("GET", "/api/v1/agents/messages/inbox/B?wait=5", { token: a.agent_token })).status,
    ).toBe(403);
    const ack = { installation_id: "B", message_ids: ["x"] };
    expect(
      (await r.call("POST", "/api/v1/agents/messages/ack", { body: ack, token: a.agent_token })).status,
    ).toBe(403);
    expect((await r.call("GET", "/api/v1/agents/messages/inbox/B", { token: b.agent_token })).status).toBe(
      200,
    );
  });

  it("requires the requester's token to request trust and the target's to decide", async () => {
    const r = await startTestRegistry();
    const a = await r.register({ hostname: "alpha", installation_id: "A" });
    const b = await r.register({ hostname: "beta", installation_id: "B" });
    const pair = { from_id: "A", to_id: "B" };
    expect((await r.call("POST", "/api/v1/trust/request", { body: pair })).status).toBe(401);
    expect((await r.call("POST", "/api/v1/trust/request", { body: pair, token: b.agent_token })).status).toBe(
      403,
    );
    expect((await r.call("POST", "/api/v1/trust/request", { body: pair, token: a.agent_token })).status).toBe(
      201,
    );
    for (const decision of ["approve", "reject", "block"]) {
      expect(
        (await r.call("POST", `/api/v1/trust/${decision}`, { body: pair, token: a.agent_token })).status,
      ).toBe(403);
    }
    expect((await r.call("POST", "/api/v1/trust/approve", { body: pair, token: b.agent_token })).status).toBe(
      200,
    );
  });

  it("refuses re-registration without the owner's token, online or not", async () => {
    const r = await startTestRegistry();
    const a = await r.register({ hostname: "alpha", installation_id: "A" });
    const b = await r.register({ hostname: "beta", installation_id: "B" });
    const body = { hostname: "alpha", installation_id: "A" };
    expect((await r.call("POST", "/api/v1/agents/", { body, token: b.agent_token })).status).toBe(403);
    expect((await r.call("POST", "/api/v1/agents/", { body, token: a.agent_token })).status).toBe(200);
    // No token is no proof: the installation id alone was public in older registries (see
    // ownership.hostile.test.ts); a client that lost its token recovers through the operator's release.
    expect((await r.call("POST", "/api/v1/agents/", { body })).status).toBe(401);
    r.clock.advance(3600);
    expect((await r.call("POST", "/api/v1/agents/", { body })).status).toBe(401);
  });

  it("with tokens off, issues none and lets calls act without a bearer (the original API)", async () => {
    const r = await startTestRegistry({ agentTokens: false });
    const res = await r.call("POST", "/api/v1/agents/", {
      body: { hostname: "alpha", installation_id: "A" },
    });
    expect(res.body).not.toHaveProperty("agent_token");
    expect((await r.call("POST", `/api/v1/agents/${res.body.id}/heartbeat`)).status).toBe(200);
    expect((await r.call("GET", "/api/v1/agents/messages/inbox/A")).status).toBe(200);
  });
});
