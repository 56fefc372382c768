// Records bound to a key: a registration with public_key and signed_record binds the record to the key; every
// public answer carries both; the key holder re-registers, updates and deregisters with X-Agent-Proof instead of
// its token (and so recovers a lost token), rotates its key with the old key's signature; the operator's release
// unbinds a lost key. Records without a key behave as they always did.
import { describe, expect, it } from "vitest";
import { generateIdentity } from "../../src/identity/keys.js";
import { verifyRecord } from "../../src/identity/signed-record.js";
import { type AgentWithToken, startTestRegistry, type TestRegistry } from "./helpers.js";
import { detailOf, keyedBody, registerKeyed, signedCall } from "./keys.support.js";

type Page = { agents: Array<Record<string, unknown>>; total: number };

const ALICE = {
  hostname: "alice",
  installation_id: "inst-alice",
  display_name: "Alice",
  description: "Books meetings",
  capabilities: ["calendar", "email"],
  pilot_node_id: 4242,
  pilot_address: "0:0000.0000.1092",
};

const setup = (options: Parameters<typeof startTestRegistry>[0] = {}) =>
  startTestRegistry({ ttlSeconds: 180, offlineRetentionSeconds: 3600, ...options });

/** Every public view of one agent: GET by id, by-hostname, list, search, lookup by node id and by peer id. */
async function publicViews(r: TestRegistry, id: string, hostname: string, peerId: string) {
  const lookup = (body: unknown) =>
    r.call<{ agents: Page["agents"] }>("POST", "/api/v1/agents/lookup", { body });
  return [
    (await r.call("GET", `/api/v1/agents/${id}`)).body,
    (await r.call("GET", `/api/v1/agents/by-hostname/${hostname}`)).body,
    ...(await r.call<Page>("GET", `/api/v1/agents/?hostname=${hostname}`)).body.agents,
    ...(await r.call<Page>("GET", `/api/v1/agents/search?q=${hostname}`)).body.agents,
    ...(await lookup({ pilot_node_ids: [4242] })).body.agents,
    ...(await lookup({ peer_ids: [peerId] })).body.agents,
  ];
}

describe("a record bound to a key", () => {
  it("is registered with its key and signed record, and every public answer carries both", async () => {
    const r = await setup();
    const alice = await registerKeyed(r, ALICE);
    expect(alice.record).toMatchObject({ public_key: alice.identity.publicKey, status: "online" });
    const signed = await verifyRecord(alice.record.signed_record);
    expect(signed).toMatchObject({
      hostname: "alice",
      public_key: alice.identity.publicKey,
      pilot_node_id: "4242",
    });
    const views = await publicViews(r, alice.id, "alice", String(alice.record.peer_id));
    expect(views).toHaveLength(6);
    for (const view of views) {
      expect(view).toMatchObject({
        id: alice.id,
        public_key: alice.identity.publicKey,
        signed_record: alice.record.signed_record,
        installation_id: null,
      });
    }
  });

  it("signs capabilities as the registry stores them: lowercase, each once", async () => {
    const r = await setup();
    const id = generateIdentity();
    const body = await keyedBody(id, { hostname: "caps", capabilities: ["Search", "search", "Code"] });
    const res = await signedCall(r, "POST", "/api/v1/agents/", { signer: id, body });
    expect(res.status).toBe(201);
    expect(res.body.capabilities).toEqual(["search", "code"]);
  });

  it("carries null key fields on records without a key", async () => {
    const r = await setup();
    const plain = await r.register({ hostname: "plain", installation_id: "inst-plain" });
    expect(plain).toMatchObject({ public_key: null, signed_record: null });
    const view = await r.call("GET", "/api/v1/agents/by-hostname/plain");
    expect(view.body).toMatchObject({ public_key: null, signed_record: null });
  });

  it("is re-registered, updated and deregistered by requests signed with its key, without the token", async () => {
    const r = await setup();
    const alice = await registerKeyed(r, ALICE);
    const again = await signedCall<AgentWithToken>(r, "POST", "/api/v1/agents/", {
      signer: alice.identity,
      token: alice.token,
      body: await keyedBody(alice.identity, ALICE),
    });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(alice.id);
    // With its valid token, the owner keeps it (a lost reply must not lock it out).
    expect(again.body.agent_token).toBe(alice.token);

    const changed = { ...ALICE, display_name: "Alice B." };
    const patch = await signedCall(r, "PATCH", `/api/v1/agents/${alice.id}`, {
      signer: alice.identity,
      body: await keyedBody(alice.identity, changed),
    });
    expect(patch.status).toBe(200);
    expect(patch.body).toMatchObject({ display_name: "Alice B.", public_key: alice.identity.publicKey });
    expect(await verifyRecord(patch.body.signed_record)).toMatchObject({ display_name: "Alice B." });

    const gone = await signedCall(r, "DELETE", `/api/v1/agents/${alice.id}`, { signer: alice.identity });
    expect(gone.status).toBe(204);
    expect((await r.call("GET", "/api/v1/agents/by-hostname/alice")).status).toBe(404);
  });

  it("keeps heartbeats on the agent token alone", async () => {
    const r = await setup();
    const alice = await registerKeyed(r, ALICE);
    const hb = `/api/v1/agents/${alice.id}/heartbeat`;
    expect((await r.call("POST", hb, { token: alice.token })).status).toBe(200);
    expect((await r.call("POST", hb)).status).toBe(401);
  });

  it("takes a PATCH that changes nothing signed without a new signed record", async () => {
    const r = await setup();
    const alice = await registerKeyed(r, ALICE);
    const path = `/api/v1/agents/${alice.id}`;
    const same = await signedCall(r, "PATCH", path, {
      signer: alice.identity,
      body: { display_name: "Alice", capabilities: ["Calendar", "email"] },
    });
    expect(same.status).toBe(200);
    expect(same.body.signed_record).toBe(alice.record.signed_record);
  });

  it("refuses a PATCH that changes a signed field without a matching signed record, saying which field", async () => {
    const r = await setup();
    const alice = await registerKeyed(r, ALICE);
    const path = `/api/v1/agents/${alice.id}`;
    const unsigned = await signedCall(r, "PATCH", path, {
      signer: alice.identity,
      body: { description: "Sells crypto" },
    });
    expect(unsigned.status).toBe(400);
    expect(detailOf(unsigned)).toMatch(/changes description, which the record's signature covers/);
    expect(detailOf(unsigned)).toMatch(/send a new signed_record/);
    // A signed record for other fields than the result: refused, naming the field.
    const stale = await keyedBody(alice.identity, { ...ALICE, description: "Books trips" });
    const mismatched = await signedCall(r, "PATCH", path, {
      signer: alice.identity,
      body: { description: "Sells crypto", signed_record: stale.signed_record },
    });
    expect(mismatched.status).toBe(400);
    expect(detailOf(mismatched)).toMatch(
      /signed_record does not match the record: field description differs/,
    );
    const view = await r.call("GET", path);
    expect(view.body).toMatchObject({
      description: "Books meetings",
      signed_record: alice.record.signed_record,
    });
  });

  it("gives the key holder a new token when it lost its own (recovery by proof)", async () => {
    const r = await setup();
    const alice = await registerKeyed(r, ALICE);
    const body = await keyedBody(alice.identity, ALICE);
    const recovered = await signedCall<AgentWithToken>(r, "POST", "/api/v1/agents/", {
      signer: alice.identity,
      body,
    });
    expect(recovered.status).toBe(200);
    expect(recovered.body.id).toBe(alice.id);
    expect(recovered.body.agent_token).toMatch(/^art_/);
    expect(recovered.body.agent_token).not.toBe(alice.token);
    // The new token works, the old one is void.
    const hb = `/api/v1/agents/${alice.id}/heartbeat`;
    expect((await r.call("POST", hb, { token: recovered.body.agent_token })).status).toBe(200);
    expect((await r.call("POST", hb, { token: alice.token })).status).toBe(403);
    // A stale token beside a valid proof is no obstacle either.
    const withStale = await signedCall<AgentWithToken>(r, "POST", "/api/v1/agents/", {
      signer: alice.identity,
      token: alice.token,
      body,
    });
    expect(withStale.status).toBe(200);
    expect(withStale.body.agent_token).not.toBe(alice.token);
  });

  it("moves to a new key when the registration is signed with the old one", async () => {
    const r = await setup();
    const alice = await registerKeyed(r, ALICE);
    const next = generateIdentity();
    const rotated = await signedCall(r, "POST", "/api/v1/agents/", {
      signer: alice.identity,
      token: alice.token,
      body: await keyedBody(next, ALICE),
    });
    expect(rotated.status).toBe(200);
    expect(rotated.body).toMatchObject({ id: alice.id, public_key: next.publicKey });
    const path = `/api/v1/agents/${alice.id}`;
    const change = { display_name: "New key" };
    const withOld = await signedCall(r, "PATCH", path, { signer: alice.identity, body: { ...change } });
    expect(withOld.status).toBe(401);
    const body = await keyedBody(next, { ...ALICE, ...change });
    expect((await signedCall(r, "PATCH", path, { signer: next, body })).status).toBe(200);
  });

  it("moves to a new key by PATCH signed with the old one, with the new key's signed record", async () => {
    const r = await setup();
    const alice = await registerKeyed(r, ALICE);
    const next = generateIdentity();
    const path = `/api/v1/agents/${alice.id}`;
    const rotated = await signedCall(r, "PATCH", path, {
      signer: alice.identity,
      body: await keyedBody(next, ALICE),
    });
    expect(rotated.status).toBe(200);
    expect(rotated.body.public_key).toBe(next.publicKey);
    // Without the new signed record, the key does not change.
    const other = generateIdentity();
    const bare = await signedCall(r, "PATCH", path, { signer: next, body: { public_key: other.publicKey } });
    expect(bare.status).toBe(400);
    expect(detailOf(bare)).toMatch(/changes public_key/);
    // A PATCH cannot remove the key.
    const unbind = await signedCall(r, "PATCH", path, {
      signer: next,
      body: { public_key: null, signed_record: null },
    });
    expect(unbind.status).toBe(400);
    expect(detailOf(unbind)).toMatch(/cannot unbind/);
  });

  it("binds a key to a record that had none, from its token holder signing with the new key", async () => {
    const r = await setup();
    const old = await r.register({ hostname: "alice", installation_id: "inst-alice" });
    const id = generateIdentity();
    const upgraded = await signedCall(r, "POST", "/api/v1/agents/", {
      signer: id,
      token: old.agent_token,
      body: await keyedBody(id, { hostname: "alice", installation_id: "inst-alice" }),
    });
    expect(upgraded.status).toBe(200);
    expect(upgraded.body).toMatchObject({
      id: old.id,
      public_key: id.publicKey,
      agent_token: old.agent_token,
    });
    // From now on the token alone is not enough.
    const tokenOnly = await r.call("DELETE", `/api/v1/agents/${old.id}`, { token: old.agent_token });
    expect(tokenOnly.status).toBe(401);
  });

  it("binds a key by PATCH too, with the token and a proof of the new key", async () => {
    const r = await setup();
    const old = await r.register({ hostname: "alice", installation_id: "inst-alice" });
    const id = generateIdentity();
    const res = await signedCall(r, "PATCH", `/api/v1/agents/${old.id}`, {
      signer: id,
      token: old.agent_token,
      body: await keyedBody(id, { hostname: "alice" }),
    });
    expect(res.status).toBe(200);
    expect(res.body.public_key).toBe(id.publicKey);
  });

  it("is unbound by the operator's release, so its owner can register a new key", async () => {
    const r = await setup({ adminKey: "admin-key-for-tests" });
    const alice = await registerKeyed(r, ALICE);
    const release = await r.call("POST", "/api/v1/admin/release", {
      body: { hostname: "alice" },
      headers: { "x-registry-admin-key": "admin-key-for-tests" },
    });
    expect(release.status).toBe(200);
    const released = await r.call("GET", `/api/v1/agents/${alice.id}`);
    expect(released.body).toMatchObject({ public_key: null, signed_record: null, status: "offline" });
    const fresh = generateIdentity();
    const back = await signedCall<AgentWithToken>(r, "POST", "/api/v1/agents/", {
      signer: fresh,
      body: await keyedBody(fresh, ALICE),
    });
    expect(back.status).toBe(200);
    expect(back.body).toMatchObject({ id: alice.id, public_key: fresh.publicKey });
    expect(back.body.agent_token).not.toBe(alice.token);
  });

  it("keeps records without a key as they were: the token rules, a proof header is ignored", async () => {
    const r = await setup();
    const plain = await r.register({ hostname: "plain", installation_id: "inst-plain" });
    const path = `/api/v1/agents/${plain.id}`;
    const stranger = generateIdentity();
    const patch = await signedCall(r, "PATCH", path, {
      signer: stranger,
      token: plain.agent_token,
      body: { display_name: "Plain" },
    });
    expect(patch.status).toBe(200);
    expect(patch.body).toMatchObject({ display_name: "Plain", public_key: null, signed_record: null });
    expect((await signedCall(r, "PATCH", path, { signer: stranger, body: {} })).status).toBe(401);
    const again = await r.register({ hostname: "plain", installation_id: "inst-plain" }, plain.agent_token);
    expect(again.agent_token).toBe(plain.agent_token);
    expect((await r.call("DELETE", path, { token: plain.agent_token })).status).toBe(204);
  });

  it("holds a keyed record's hostname like an owned one, also without tokens", async () => {
    const r = await setup({ agentTokens: false });
    const alice = await registerKeyed(r, ALICE);
    r.clock.advance(600); // offline, within the release period
    const other = generateIdentity();
    const taken = await signedCall(r, "POST", "/api/v1/agents/", {
      signer: other,
      body: await keyedBody(other, { hostname: "alice", installation_id: "inst-other" }),
    });
    expect(taken.status).toBe(409);
    expect((await r.call("GET", `/api/v1/agents/${alice.id}`)).body.public_key).toBe(
      alice.identity.publicKey,
    );
  });
});
