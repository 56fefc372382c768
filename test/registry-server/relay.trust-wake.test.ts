// The relay inbox tells its reader about trust changes: with `trust_after` (a trust-list cursor) the answer says
// whether the reader's trust records changed since, and a long-poll ends as soon as one does, so a client learns
// of a request or a decision at once instead of polling its trust list.
import { describe, expect, it } from "vitest";
import { type AgentWithToken, startTestRegistry, type TestRegistry } from "./helpers.js";

type Inbox = { messages: unknown[]; next_cursor: string | null; trust_changed?: boolean };

const inbox = (r: TestRegistry, who: AgentWithToken, query = "") =>
  r.call<Inbox>("GET", `/api/v1/agents/messages/inbox/${who.installation_id}${query}`, {
    token: who.agent_token,
  });

const trust = (r: TestRegistry, path: string, as: AgentWithToken, body: Record<string, unknown>) =>
  r.call("POST", `/api/v1/trust/${path}`, { token: as.agent_token, body });

const cursorOf = async (r: TestRegistry, who: AgentWithToken) =>
  (
    await r.call<{ next_cursor: string }>("GET", `/api/v1/trust/list/${who.installation_id}`, {
      token: who.agent_token,
    })
  ).body.next_cursor;

async function pair() {
  const r = await startTestRegistry();
  const alice = await r.register({ hostname: "alice", installation_id: "inst-alice" });
  const bob = await r.register({ hostname: "bob", installation_id: "inst-bob" });
  return { r, alice, bob };
}

describe("relay inbox and trust changes", () => {
  it("says whether trust changed after the cursor, and only when asked", async () => {
    const { r, alice, bob } = await pair();
    expect((await inbox(r, alice)).body).not.toHaveProperty("trust_changed");
    expect((await inbox(r, alice, "?trust_after=0")).body.trust_changed).toBe(false);
    await trust(r, "request", bob, { from_id: bob.installation_id, to_id: alice.peer_id });
    expect((await inbox(r, alice, "?trust_after=0")).body.trust_changed).toBe(true);
    expect((await inbox(r, bob, "?trust_after=0")).body.trust_changed).toBe(true);
    const cursor = await cursorOf(r, alice);
    expect((await inbox(r, alice, `?trust_after=${cursor}`)).body.trust_changed).toBe(false);
    expect((await inbox(r, alice, "?trust_after=x")).status).toBe(422);
  });

  it("ends a long-poll when a peer asks for trust, and when the request is decided", async () => {
    const { r, alice, bob } = await pair();
    const started = Date.now();
    const asked = inbox(r, alice, "?wait=10&trust_after=0");
    await new Promise((resolve) => setTimeout(resolve, 200));
    await trust(r, "request", bob, { from_id: bob.installation_id, to_id: alice.peer_id });
    const woken = await asked;
    expect(woken.body).toMatchObject({ messages: [], trust_changed: true });
    expect(Date.now() - started).toBeLessThan(5_000);

    // Bob waits from his own cursor; alice's approval wakes him.
    const waiting = inbox(r, bob, `?wait=10&trust_after=${await cursorOf(r, bob)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const approvedAt = Date.now();
    await trust(r, "approve", alice, { from_id: bob.peer_id, to_id: alice.installation_id });
    expect((await waiting).body.trust_changed).toBe(true);
    expect(Date.now() - approvedAt).toBeLessThan(5_000);
  });

  it("answers at once when trust already changed, and waits its time when nothing does", async () => {
    const { r, alice, bob } = await pair();
    await trust(r, "request", bob, { from_id: bob.installation_id, to_id: alice.peer_id });
    const started = Date.now();
    expect((await inbox(r, alice, "?wait=10&trust_after=0")).body.trust_changed).toBe(true);
    expect(Date.now() - started).toBeLessThan(5_000);
    const quiet = Date.now();
    const box = await inbox(r, alice, `?wait=0.3&trust_after=${await cursorOf(r, alice)}`);
    expect(box.body.trust_changed).toBe(false);
    expect(Date.now() - quiet).toBeGreaterThanOrEqual(280);
  });
});
