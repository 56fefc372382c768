// Hostile clients against records bound to a key: forged or mismatched signed records, a stolen agent token
// without the key, replayed, redirected, altered and stale proofs, another key claiming a keyed hostname. Each
// is refused with a detail that says why, and the record keeps its key and fields.
import { describe, expect, it } from "vitest";
import { generateIdentity } from "../../src/identity/keys.js";
import { createRequestProof, PROOF_HEADER } from "../../src/identity/request-proof.js";
import { ProofChecker } from "../../src/registry-server/proofs.js";
import { startTestRegistry, type TestRegistry } from "./helpers.js";
import { detailOf, type KeyedAgent, keyedBody, proofFor, registerKeyed, signedCall } from "./keys.support.js";

const ALICE = {
  hostname: "alice",
  installation_id: "inst-alice",
  display_name: "Alice",
  capabilities: ["calendar"],
};

async function setup() {
  const r = await startTestRegistry({ ttlSeconds: 180, offlineRetentionSeconds: 3600 });
  const alice = await registerKeyed(r, ALICE);
  return { r, alice };
}

/** Alice's record is as she left it: same id, key and signed record. */
async function expectIntact(r: TestRegistry, alice: KeyedAgent) {
  const view = await r.call("GET", "/api/v1/agents/by-hostname/alice");
  expect(view.status).toBe(200);
  expect(view.body).toMatchObject({
    id: alice.id,
    public_key: alice.identity.publicKey,
    signed_record: alice.record.signed_record,
    display_name: "Alice",
  });
}

describe("signed records that do not hold", () => {
  it("refuses a forged signature, another key's record and junk, saying so", async () => {
    const r = await startTestRegistry();
    const id = generateIdentity();
    const good = await keyedBody(id, ALICE);
    const [h, p, s] = String(good.signed_record).split(".") as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, "base64url").toString());
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...payload, display_name: "Mallory" })).toString("base64url")}.${s}`;
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...good, display_name: "Mallory", signed_record: forged }, /signed_record does not verify/],
      [{ ...good, signed_record: "a.b.c" }, /signed_record does not verify/],
      [
        { ...good, signed_record: (await keyedBody(generateIdentity(), ALICE)).signed_record },
        /signed_record names another key than public_key/,
      ],
      [{ ...good, display_name: "Mallory" }, /field display_name differs/],
      [{ ...good, capabilities: ["calendar", "payments"] }, /field capabilities differs/],
      [{ ...good, pilot_node_id: 7 }, /field pilot_node_id differs/],
      [{ ...good, hostname: "alicia" }, /field hostname differs/],
      [{ ...good, signed_record: undefined }, /public_key and signed_record go together/],
      [{ ...good, public_key: undefined }, /public_key and signed_record go together/],
    ];
    for (const [body, detail] of cases) {
      const res = await signedCall(r, "POST", "/api/v1/agents/", { signer: id, body });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(detailOf(res)).toMatch(detail);
    }
    expect((await r.call("GET", "/api/v1/agents/by-hostname/alice")).status).toBe(404);
  });

  it("refuses a malformed key or signed record with 422 before reading them", async () => {
    const r = await startTestRegistry();
    const bad = await r.call("POST", "/api/v1/agents/", {
      body: { hostname: "x", public_key: "not a key", signed_record: "x".repeat(20_000) },
    });
    expect(bad.status).toBe(422);
    const fields = (bad.body.detail as Array<{ loc: string[] }>).map((i) => i.loc.join("."));
    expect(fields).toEqual(expect.arrayContaining(["body.public_key", "body.signed_record"]));
  });

  it("binds no key without a proof signed by it: a copied signed record is not enough", async () => {
    const r = await startTestRegistry();
    const victim = generateIdentity();
    const body = await keyedBody(victim, ALICE);
    const unsigned = await signedCall(r, "POST", "/api/v1/agents/", { body });
    expect(unsigned.status).toBe(401);
    expect(detailOf(unsigned)).toMatch(
      /binding public_key to a record needs the request signed with that key/,
    );
    const mallory = await signedCall(r, "POST", "/api/v1/agents/", { signer: generateIdentity(), body });
    expect(mallory.status).toBe(401);
  });
});

describe("a stolen token without the key", () => {
  it("cannot re-register, update or delete the record: 401 saying it is bound to a key", async () => {
    const { r, alice } = await setup();
    const path = `/api/v1/agents/${alice.id}`;
    const attempts = [
      await r.call("POST", "/api/v1/agents/", {
        body: await keyedBody(alice.identity, ALICE),
        token: alice.token,
      }),
      await r.call("POST", "/api/v1/agents/", { body: ALICE, token: alice.token }),
      await r.call("PATCH", path, { body: { display_name: "Mallory" }, token: alice.token }),
      await r.call("DELETE", path, { token: alice.token }),
    ];
    for (const res of attempts) {
      expect(res.status).toBe(401);
      expect(detailOf(res)).toMatch(
        /hostname 'alice' is bound to a key: sign the request with that key \(header X-Agent-Proof\)/,
      );
      expect(detailOf(res)).toMatch(/agent-registry release/);
      expect(res.headers.get("www-authenticate")).toBe("Agent-Proof");
    }
    await expectIntact(r, alice);
  });

  it("cannot put another key on the hostname: 409, with or without the token", async () => {
    const { r, alice } = await setup();
    const mallory = generateIdentity();
    for (const installation of ["inst-alice", "inst-mallory"]) {
      const body = await keyedBody(mallory, { ...ALICE, installation_id: installation });
      for (const token of [alice.token, undefined]) {
        const res = await signedCall(r, "POST", "/api/v1/agents/", {
          signer: mallory,
          body,
          ...(token ? { token } : {}),
        });
        expect(res.status).toBe(409);
        expect(detailOf(res)).toMatch(/bound to another key|held by another registration/);
      }
    }
    const byPatch = await signedCall(r, "PATCH", `/api/v1/agents/${alice.id}`, {
      signer: mallory,
      token: alice.token,
      body: await keyedBody(mallory, ALICE),
    });
    expect(byPatch.status).toBe(401);
    await expectIntact(r, alice);
  });

  it("cannot drop the key by registering without one", async () => {
    const { r, alice } = await setup();
    const res = await signedCall(r, "POST", "/api/v1/agents/", { signer: alice.identity, body: ALICE });
    expect(res.status).toBe(400);
    expect(detailOf(res)).toMatch(/a registration must carry public_key and signed_record/);
    await expectIntact(r, alice);
  });
});

describe("proofs that do not hold", () => {
  it("refuses a replayed proof", async () => {
    const { r, alice } = await setup();
    const body = await keyedBody(alice.identity, ALICE);
    const first = await signedCall(r, "POST", "/api/v1/agents/", { signer: alice.identity, body });
    expect(first.status).toBe(200);
    const replay = await signedCall(r, "POST", "/api/v1/agents/", { proof: first.proof!, body });
    expect(replay.status).toBe(401);
    expect(detailOf(replay)).toMatch(/X-Agent-Proof refused: the proof was used before/);
  });

  it("accepts one of two concurrent requests carrying the same proof", async () => {
    const { r, alice } = await setup();
    const path = `/api/v1/agents/${alice.id}`;
    const proof = await proofFor(r, alice.identity, "PATCH", path, "{}");
    const send = () => r.call("PATCH", path, { raw: "{}", headers: { [PROOF_HEADER]: proof } });
    const statuses = (await Promise.all([send(), send(), send()])).map((res) => res.status).sort();
    expect(statuses).toEqual([200, 401, 401]);
  });

  it("refuses a proof made for another path, method, body or record", async () => {
    const { r, alice } = await setup();
    const bob = await registerKeyed(r, { hostname: "bob", installation_id: "inst-bob" }, alice.identity);
    const path = `/api/v1/agents/${alice.id}`;
    const body = { display_name: "Alice" };
    const others = [
      { path: `/api/v1/agents/${bob.id}` },
      { path: `${path}?x=1` },
      { path: `${path}/` },
      { method: "DELETE" },
      { body: JSON.stringify({ display_name: "Alice " }) },
    ];
    for (const signedAs of others) {
      const res = await signedCall(r, "PATCH", path, { signer: alice.identity, body, signedAs });
      expect(res.status).toBe(401);
      expect(detailOf(res)).toMatch(/X-Agent-Proof refused: the proof is for another request/);
    }
    const del = await signedCall(r, "DELETE", path, {
      signer: alice.identity,
      signedAs: { method: "PATCH" },
    });
    expect(del.status).toBe(401);
    await expectIntact(r, alice);
  });

  it("refuses a proof signed by another key", async () => {
    const { r, alice } = await setup();
    const res = await signedCall(r, "DELETE", `/api/v1/agents/${alice.id}`, { signer: generateIdentity() });
    expect(res.status).toBe(401);
    expect(detailOf(res)).toMatch(/X-Agent-Proof refused: the proof is not signed by this agent's key/);
    await expectIntact(r, alice);
  });

  it("refuses a proof more than 5 minutes from the registry's clock, either way", async () => {
    const { r, alice } = await setup();
    const path = `/api/v1/agents/${alice.id}`;
    for (const at of [r.clock.now() - 6 * 60_000, r.clock.now() + 6 * 60_000]) {
      const res = await signedCall(r, "DELETE", path, { signer: alice.identity, at });
      expect(res.status).toBe(401);
      expect(detailOf(res)).toMatch(/X-Agent-Proof refused: the proof's time is more than 5 minutes/);
    }
    const early = await signedCall(r, "DELETE", path, {
      signer: alice.identity,
      at: r.clock.now() - 4 * 60_000,
    });
    expect(early.status).toBe(204);
  });

  it("refuses junk in the header without a server error", async () => {
    const { r, alice } = await setup();
    for (const junk of ["x", "a.b.c", "x".repeat(20_000), "eyJhbGciOiJub25lIn0.e30."]) {
      const res = await r.call("DELETE", `/api/v1/agents/${alice.id}`, { headers: { [PROOF_HEADER]: junk } });
      expect(res.status).toBe(401);
    }
    await expectIntact(r, alice);
  });
});

describe("the nonce memory", () => {
  it("forgets nonces after the window and stays within its bound", async () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    const checker = new ProofChecker({ now: () => now, maxNonces: 3 });
    const id = generateIdentity();
    const target = { method: "DELETE", path: "/api/v1/agents/1", body: "" };
    const req = (proof: string) =>
      ({ method: "DELETE", url: "/api/v1/agents/1", headers: { [PROOF_HEADER]: proof } }) as never;
    const proofs = await Promise.all([1, 2, 3, 4].map(() => createRequestProof(id, target, now)));
    for (const proof of proofs) {
      expect(await checker.check(req(proof), new Uint8Array(), () => [id.publicKey])).toEqual({
        kind: "valid",
        publicKey: id.publicKey,
      });
    }
    expect(checker.size).toBe(3);
    expect((await checker.check(req(proofs[3]!), new Uint8Array(), () => [id.publicKey])).kind).toBe(
      "invalid",
    );
    now += 10 * 60_000 + 1;
    const later = await createRequestProof(id, target, now);
    expect((await checker.check(req(later), new Uint8Array(), () => [id.publicKey])).kind).toBe("valid");
    expect(checker.size).toBe(1);
  });
});
