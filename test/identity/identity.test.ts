import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { signDetached, verifyDetached } from "../../src/identity/jws.js";
import {
  fingerprint,
  generateIdentity,
  IDENTITY_FILE,
  loadOrCreateIdentity,
} from "../../src/identity/keys.js";
import { createRequestProof, verifyRequestProof } from "../../src/identity/request-proof.js";
import {
  normalizeRecordFields,
  rewrittenField,
  signRecord,
  verifyRecord,
} from "../../src/identity/signed-record.js";
import { testTempDir } from "../support/temp-dir.js";

const tempDir = () => testTempDir("identity-");

describe("identity keys", () => {
  it("makes a key on first start, keeps it 0600 and reads the same key back", () => {
    const dir = tempDir();
    const first = loadOrCreateIdentity(dir);
    const again = loadOrCreateIdentity(dir);
    expect(again.publicKey).toBe(first.publicKey);
    expect(statSync(join(dir, IDENTITY_FILE)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, IDENTITY_FILE), "utf8")).toContain("PRIVATE KEY");
  });

  it("never shows the private key in JSON or inspect", () => {
    const id = generateIdentity();
    expect(JSON.stringify(id)).not.toMatch(/PRIVATE|"d"/);
    expect(Object.keys(id)).toEqual(["publicKey", "fingerprint"]);
    expect(inspect(id)).toBe(`Identity(${id.fingerprint})`);
  });

  it("says what to do with an unreadable key instead of making a new one", async () => {
    const dir = tempDir();
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(dir, IDENTITY_FILE), "garbage");
    expect(() => loadOrCreateIdentity(dir)).toThrow(/Restore it from a backup/);
  });

  it("fingerprints are six groups of five digits, stable per key", () => {
    const id = generateIdentity();
    expect(id.fingerprint).toMatch(/^\d{5}( \d{5}){5}$/);
    expect(fingerprint(id.publicKey)).toBe(id.fingerprint);
    expect(generateIdentity().fingerprint).not.toBe(id.fingerprint);
  });
});

describe("signed records", () => {
  const fields = (id: ReturnType<typeof generateIdentity>, issuedAt = new Date("2026-11-30T00:00:00Z")) =>
    normalizeRecordFields({
      hostname: "Alice",
      displayName: "Alice",
      capabilities: ["Search", "search", "code"],
      pilotNodeId: 42,
      publicKey: id.publicKey,
      issuedAt,
    });

  it("verifies against the key it names and exposes the canonical fields", async () => {
    const id = generateIdentity();
    const jws = await signRecord(id, fields(id));
    const read = await verifyRecord(jws);
    expect(read).toMatchObject({ hostname: "alice", capabilities: ["search", "code"], pilot_node_id: "42" });
  });

  it("refuses a forged signature, a rewritten payload and junk", async () => {
    const id = generateIdentity();
    const jws = await signRecord(id, fields(id));
    const [h, p, s] = jws.split(".") as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, "base64url").toString());
    payload.hostname = "mallory";
    const rewritten = `${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${s}`;
    expect(await verifyRecord(rewritten)).toBeNull();
    const other = generateIdentity();
    payload.public_key = other.publicKey;
    expect(
      await verifyRecord(`${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${s}`),
    ).toBeNull();
    expect(await verifyRecord("a.b.c")).toBeNull();
    expect(await verifyRecord(42)).toBeNull();
    expect(await verifyRecord("x".repeat(100_000))).toBeNull();
  });

  it("finds the field a registry rewrote", async () => {
    const id = generateIdentity();
    const signed = fields(id);
    const served = {
      hostname: "alice",
      displayName: "Alice",
      description: null,
      capabilities: ["search", "code"],
      pilotNodeId: "42",
      pilotAddress: null,
      publicKey: id.publicKey,
    };
    expect(rewrittenField(signed, served)).toBeNull();
    expect(rewrittenField(signed, { ...served, description: "pay me" })).toBe("description");
    expect(rewrittenField(signed, { ...served, pilotNodeId: "7" })).toBe("pilot_node_id");
  });
});

describe("request proofs", () => {
  const target = { method: "PATCH", path: "/api/v1/agents/1", body: '{"display_name":"x"}' };

  it("accepts the key holder's proof once, within the window", async () => {
    const id = generateIdentity();
    const proof = await createRequestProof(id, target);
    const seen = new Set<string>();
    const check = await verifyRequestProof(proof, id.publicKey, target, { nonceSeen: (n) => seen.has(n) });
    expect(check.ok).toBe(true);
    if (check.ok) seen.add(check.nonce);
    const replay = await verifyRequestProof(proof, id.publicKey, target, { nonceSeen: (n) => seen.has(n) });
    expect(replay).toEqual({ ok: false, reason: "the proof was used before" });
  });

  it("refuses another key, another request and an old proof", async () => {
    const id = generateIdentity();
    const proof = await createRequestProof(id, target, Date.now() - 10 * 60_000);
    const none = { nonceSeen: () => false };
    expect((await verifyRequestProof(proof, generateIdentity().publicKey, target, none)).ok).toBe(false);
    expect(await verifyRequestProof(proof, id.publicKey, { ...target, body: "{}" }, none)).toMatchObject({
      reason: "the proof is for another request",
    });
    expect(await verifyRequestProof(proof, id.publicKey, target, none)).toMatchObject({
      reason: expect.stringMatching(/5 minutes/),
    });
  });
});

describe("detached signatures", () => {
  it("verify over the canonical form, whatever the key order", async () => {
    const id = generateIdentity();
    const sig = await signDetached(id, { b: 1, a: "x" }, "t");
    expect(sig).toMatch(/^[\w-]+\.\.[\w-]+$/);
    expect(await verifyDetached(sig, { a: "x", b: 1 }, "t", id.publicKey)).toBe(true);
    expect(await verifyDetached(sig, { a: "y", b: 1 }, "t", id.publicKey)).toBe(false);
    expect(await verifyDetached(sig, { a: "x", b: 1 }, "other", id.publicKey)).toBe(false);
    expect(await verifyDetached(sig, { a: "x", b: 1 }, "t", generateIdentity().publicKey)).toBe(false);
  });
});
