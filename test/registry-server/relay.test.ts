// Relay messages: send with dedupe and the 64 KiB cap, inbox with cursor and long-poll, ack, retention,
// and trust enforcement when the server requires it.
import { describe, expect, it } from "vitest";
import { type AgentWithToken, startTestRegistry, type TestRegistry } from "./helpers.js";

type Inbox = {
  messages: Array<{
    message_id: string;
    from_installation_id: string;
    from_hostname: string;
    body: unknown;
    cursor: string;
    created_at: string;
  }>;
  next_cursor: string | null;
};

async function pair(options: Parameters<typeof startTestRegistry>[0] = {}) {
  const r = await startTestRegistry(options);
  const alice = await r.register({ hostname: "alice", installation_id: "inst-alice" });
  const bob = await r.register({ hostname: "bob", installation_id: "inst-bob" });
  return { r, alice, bob };
}

const send = (r: TestRegistry, from: AgentWithToken, body: Record<string, unknown>) =>
  r.call("POST", "/api/v1/agents/messages/send", {
    token: from.agent_token,
    body: { from_installation_id: from.installation_id, from_hostname: from.hostname, ...body },
  });

const inbox = (r: TestRegistry, who: AgentWithToken, query = "") =>
  r.call<Inbox>("GET", `/api/v1/agents/messages/inbox/${who.installation_id}${query}`, {
    token: who.agent_token,
  });

describe("relay messages", () => {
  it("delivers a message by hostname or installation id, with cursors in order", async () => {
    const { r, alice, bob } = await pair();
    const first = await send(r, alice, { to_hostname: "bob", body: "hello", message_id: "m1" });
    expect(first).toMatchObject({ status: 200, body: { ok: true, message_id: "m1" } });
    const second = await send(r, alice, {
      to_installation_id: "inst-bob",
      body: JSON.stringify({ v: 1, text: "structured" }),
    });
    expect(second.status).toBe(200);
    expect(typeof second.body.message_id).toBe("string");
    const box = await inbox(r, bob);
    expect(box.status).toBe(200);
    expect(box.body.messages.map((m) => m.body)).toEqual(["hello", '{"v":1,"text":"structured"}']);
    expect(box.body.messages[0]).toMatchObject({
      message_id: "m1",
      // The sender's peer id under both names: the installation id is alice's secret.
      from_installation_id: alice.peer_id,
      from_peer_id: alice.peer_id,
      from_hostname: "alice",
      created_at: "2026-01-01T00:00:00.000Z",
    });
    expect(box.body.next_cursor).toBe(box.body.messages[1]!.cursor);
    const after = await inbox(r, bob, `?after=${box.body.next_cursor}`);
    expect(after.body).toEqual({ messages: [], next_cursor: box.body.next_cursor });
  });

  it("stores the same message_id once", async () => {
    const { r, alice, bob } = await pair();
    for (let i = 0; i < 3; i++)
      expect((await send(r, alice, { to_hostname: "bob", body: "hi", message_id: "dup" })).status).toBe(200);
    expect((await inbox(r, bob)).body.messages).toHaveLength(1);
  });

  it("refuses a body over 64 KiB with 413 and accepts exactly 64 KiB", async () => {
    const { r, alice } = await pair();
    expect((await send(r, alice, { to_hostname: "bob", body: "x".repeat(64 * 1024) })).status).toBe(200);
    const big = await send(r, alice, { to_hostname: "bob", body: "é".repeat(32 * 1024 + 1) });
    expect(big.status).toBe(413);
    expect(String(big.body.detail)).toMatch(/at most 65536 bytes/);
    const huge = await r.call("POST", "/api/v1/agents/messages/send", { raw: "x".repeat(2 * 1024 * 1024) });
    expect(huge.status).toBe(413);
  });

  it("answers 404 for an unknown recipient", async () => {
    const { r, alice } = await pair();
    expect((await send(r, alice, { to_hostname: "nobody", body: "hi" })).status).toBe(404);
    expect((await send(r, alice, { to_installation_id: "inst-nobody", body: "hi" })).status).toBe(404);
  });

  it("keeps unacked messages and removes acked ones", async () => {
    const { r, alice, bob } = await pair();
    await send(r, alice, { to_hostname: "bob", body: "one", message_id: "m1" });
    await send(r, alice, { to_hostname: "bob", body: "two", message_id: "m2" });
    const ack = await r.call("POST", "/api/v1/agents/messages/ack", {
      token: bob.agent_token,
      body: { installation_id: "inst-bob", message_ids: ["m1", "m1", "unknown"] },
    });
    expect(ack).toMatchObject({ status: 200, body: { acked: 1 } });
    expect((await inbox(r, bob)).body.messages.map((m) => m.message_id)).toEqual(["m2"]);
  });

  it("keeps unacked messages for 7 days, then drops them", async () => {
    const { r, alice, bob } = await pair();
    await send(r, alice, { to_hostname: "bob", body: "old" });
    r.clock.advance(7 * 24 * 3600 - 1);
    const keeper = await r.register({ hostname: "bob", installation_id: "inst-bob" }, bob.agent_token);
    expect((await inbox(r, keeper)).body.messages).toHaveLength(1);
    r.clock.advance(2);
    expect((await inbox(r, keeper)).body.messages).toHaveLength(0);
    expect((await r.server.sweep()).messages).toBe(1);
  });

  it("answers a long-poll within 100 ms of a send", async () => {
    const { r, alice, bob } = await pair();
    const started = Date.now();
    const polling = inbox(r, bob, "?wait=10");
    await new Promise((resolve) => setTimeout(resolve, 300));
    const sentAt = Date.now();
    let answeredAt = 0;
    const answered = polling.then((box) => {
      answeredAt = Date.now();
      return box;
    });
    await send(r, alice, { to_hostname: "bob", body: "wake up" });
    const storedAt = Date.now(); // the send's 2xx: the message is committed
    const box = await answered;
    expect(box.body.messages.map((m) => m.body)).toEqual(["wake up"]);
    expect(sentAt - started).toBeGreaterThanOrEqual(250);
    // Measured from the send's acknowledgement (the send round trip itself is not the registry's wake-up
    // latency); the poll had 10 s left, so anything this quick was woken by the message.
    expect(answeredAt - storedAt).toBeLessThan(100);
    expect(answeredAt - sentAt).toBeLessThan(1000);
  });

  it("ends a long-poll after `wait` seconds with no messages", async () => {
    const { r, bob } = await pair();
    const started = Date.now();
    const box = await inbox(r, bob, "?wait=0.3");
    expect(box.body.messages).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
  });

  it("refuses wait over 30 s and a malformed cursor with 422", async () => {
    const { r, bob } = await pair();
    expect((await inbox(r, bob, "?wait=31")).status).toBe(422);
    expect((await inbox(r, bob, "?after=abc")).status).toBe(422);
    expect((await inbox(r, bob, "?limit=0")).status).toBe(422);
  });

  it("with require-trust, refuses sends without approved trust (403) and allows them after", async () => {
    const { r, alice, bob } = await pair({ requireTrust: true });
    expect((await send(r, alice, { to_hostname: "bob", body: "hi" })).status).toBe(403);
    await r.call("POST", "/api/v1/trust/request", {
      token: alice.agent_token,
      body: { from_id: "inst-alice", to_id: "inst-bob" },
    });
    await r.call("POST", "/api/v1/trust/approve", {
      token: bob.agent_token,
      body: { from_id: "inst-alice", to_id: "inst-bob" },
    });
    expect((await send(r, alice, { to_hostname: "bob", body: "hi" })).status).toBe(200);
    // Trust is symmetric once approved.
    expect((await send(r, bob, { to_hostname: "alice", body: "hi back" })).status).toBe(200);
  });
});
