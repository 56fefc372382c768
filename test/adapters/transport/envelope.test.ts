import { describe, expect, it } from "vitest";
import {
  createEnvelope,
  decodeMessage,
  ENVELOPE_TYP,
  encodeEnvelope,
  isEnvelope,
  messageKey,
  signEnvelope,
  verifyEnvelope,
} from "../../../src/adapters/transport/envelope.js";
import { signDetached } from "../../../src/identity/jws.js";
import { generateIdentity } from "../../../src/identity/keys.js";

describe("envelope", () => {
  const env = createEnvelope({
    fromHostname: "alpha",
    body: 'hi "there"\n--help',
    replyTo: "m-1",
    id: "m-2",
    now: new Date("2026-11-25T10:00:00Z"),
  });

  it("encodes and decodes back to the same envelope", () => {
    expect(env).toEqual({
      v: 1,
      id: "m-2",
      from_hostname: "alpha",
      body: 'hi "there"\n--help',
      reply_to: "m-1",
      sent_at: "2026-11-25T10:00:00.000Z",
    });
    expect(decodeMessage(encodeEnvelope(env))).toEqual({ envelope: env, received: env });
  });

  it("gives each new envelope its own id", () => {
    const a = createEnvelope({ fromHostname: "a", body: "x" });
    const b = createEnvelope({ fromHostname: "a", body: "x" });
    expect(a.id).not.toBe(b.id);
  });

  it("accepts plain text, JSON that is not an envelope, and broken JSON as plain", () => {
    for (const text of ["hello", "{not json", '{"v":2,"id":"x"}', '{"text":"hi"}', "42", ""]) {
      expect(decodeMessage(text)).toEqual({ plain: text });
    }
  });

  it("ignores unknown keys of a newer sender", () => {
    const decoded = decodeMessage(JSON.stringify({ ...env, extra: true }));
    // What it says is read as this version knows it; what it was is kept, for its signature.
    expect(decoded).toEqual({ envelope: env, received: { ...env, extra: true } });
  });

  it("refuses to encode an invalid envelope", () => {
    expect(() => encodeEnvelope({ ...env, from_hostname: "" })).toThrow();
  });

  it("keys an envelope by its id, wherever it was read from", () => {
    const decoded = decodeMessage(encodeEnvelope(env));
    expect(messageKey({ name: "TEXT-1.json", data: "a" }, decoded)).toBe("env:m-2");
    expect(messageKey({ name: "TEXT-2.json", data: "b" }, decoded)).toBe("env:m-2");
  });

  it("keys plain text by source name and content hash", () => {
    const k1 = messageKey({ name: "TEXT-1.json", data: "hi" }, decodeMessage("hi"));
    const k2 = messageKey({ name: "TEXT-1.json", data: "ho" }, decodeMessage("ho"));
    const k3 = messageKey({ name: "TEXT-2.json", data: "hi" }, decodeMessage("hi"));
    expect(k1).toMatch(/^plain:TEXT-1\.json:[0-9a-f]{64}$/);
    expect(new Set([k1, k2, k3]).size).toBe(3);
    expect(messageKey({ name: "TEXT-1.json", data: "hi" }, decodeMessage("hi"))).toBe(k1);
  });
});

describe("signed envelopes", () => {
  const alice = generateIdentity();

  it("verify over what was received, fields this version does not know included", async () => {
    const signed = await signEnvelope(createEnvelope({ fromHostname: "alice", body: "hi" }), alice, "bob");
    expect(signed).toMatchObject({ from_key: alice.publicKey, to: "bob", sig: expect.any(String) });
    const decoded = decodeMessage(encodeEnvelope(signed));
    expect(isEnvelope(decoded) && (await verifyEnvelope(decoded.received))).toBe(true);
    // A newer sender signs a field we drop: still verifies, since the object as received is what was signed.
    const { sig: _sig, ...unsigned } = signed;
    const newer = { ...unsigned, extra: "x" };
    const sig = await signDetached(alice, newer, ENVELOPE_TYP);
    expect(await verifyEnvelope({ ...newer, sig })).toBe(true);
  });

  it("fail when any signed field changes, or the key is not the signer's", async () => {
    const signed = await signEnvelope(createEnvelope({ fromHostname: "alice", body: "hi" }), alice, "bob");
    for (const change of [
      { body: "pay me" },
      { to: "carol" },
      { sent_at: new Date(0).toISOString() },
      { id: "x" },
    ]) {
      expect(await verifyEnvelope({ ...signed, ...change })).toBe(false);
    }
    expect(await verifyEnvelope({ ...signed, from_key: generateIdentity().publicKey })).toBe(false);
    expect(await verifyEnvelope({ ...signed, sig: undefined })).toBe(false);
  });

  it("re-signing replaces an old signature (a resend is signed afresh)", async () => {
    const first = await signEnvelope(
      createEnvelope({ fromHostname: "alice", body: "hi", id: "m" }),
      alice,
      "bob",
    );
    const again = await signEnvelope(
      { ...first, sent_at: new Date(Date.now() + 1_000).toISOString() },
      alice,
      "bob",
    );
    expect(again.sig).not.toBe(first.sig);
    expect(await verifyEnvelope(again)).toBe(true);
  });
});
