// What the registry actors send: without an identity the metadata as before; with one, its public key and a
// record signed now over exactly the fields the client puts on the wire, so the registry's comparison holds
// even for capabilities the client trims, lowercases and de-duplicates.
import { describe, expect, it } from "vitest";
import { generateIdentity } from "../../src/identity/keys.js";
import { rewrittenField, verifyRecord } from "../../src/identity/signed-record.js";
import type { AgentMetadata } from "../../src/machines/types.js";
import { toWire } from "../../src/runtime/registry-actors.js";

const META: AgentMetadata = {
  hostname: "alice",
  installationId: "inst-alice",
  pilotNodeId: 42,
  pilotAddress: null,
  displayName: "Alice",
  description: null,
  capabilities: [" Calendar ", "calendar", "EMAIL", ""],
};

describe("registry actors' wire metadata", () => {
  it("carries no key without an identity", async () => {
    const wire = await toWire(META);
    expect(wire).not.toHaveProperty("publicKey");
    expect(wire).not.toHaveProperty("signedRecord");
    expect(wire).toMatchObject({ pilotNodeId: "42", capabilities: ["calendar", "email"] });
  });

  it("signs, at the time of sending, the fields as they go on the wire", async () => {
    const identity = generateIdentity();
    const before = Date.now();
    const wire = await toWire(META, identity);
    expect(wire.publicKey).toBe(identity.publicKey);
    const signed = await verifyRecord(wire.signedRecord);
    expect(signed).not.toBeNull();
    expect(Date.parse(signed!.issued_at)).toBeGreaterThanOrEqual(before - 1);
    const served = {
      hostname: wire.hostname,
      displayName: wire.displayName ?? null,
      description: wire.description ?? null,
      capabilities: wire.capabilities,
      pilotNodeId: wire.pilotNodeId ?? null,
      pilotAddress: wire.pilotAddress ?? null,
      publicKey: identity.publicKey,
    };
    expect(rewrittenField(signed!, served)).toBeNull();
  });
});
