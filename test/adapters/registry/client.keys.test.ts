// The client with an identity: registration, update and deregistration carry X-Agent-Proof over exactly what is
// sent (the base path of registryUrl included), and the metadata's key and signed record go on the wire. Against
// the reference registry a keyed record lives its whole life on proofs (a lost token comes back); against the
// original registry, which knows no keys, nothing changes.
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createRegistryClient } from "../../../src/adapters/registry/client.js";
import { RegistryError } from "../../../src/adapters/registry/errors.js";
import type { AgentMetadata } from "../../../src/adapters/registry/types.js";
import { generateIdentity, type Identity } from "../../../src/identity/keys.js";
import { PROOF_HEADER, verifyRequestProof } from "../../../src/identity/request-proof.js";
import { normalizeRecordFields, signRecord, verifyRecord } from "../../../src/identity/signed-record.js";
import { type RegistryServerHandle, startRegistryServer } from "../../../src/registry-server/server.js";
import { startLegacyRegistryServer } from "../../fixtures/legacy-registry-server.js";
import { caught as caughtAs } from "../../support/caught.js";

const caught = (promise: Promise<unknown>) => caughtAs(promise, RegistryError);

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

const ALICE = {
  hostname: "alice",
  installationId: "inst-alice",
  pilotNodeId: "4242",
  displayName: "Alice",
  description: "Books meetings",
  capabilities: ["Calendar", "email"],
};

/** The metadata with the identity's key and a record signed over the fields the registry will store. */
async function signed(identity: Identity, meta: Omit<AgentMetadata, "publicKey" | "signedRecord">) {
  const fields = normalizeRecordFields({ ...meta, publicKey: identity.publicKey, issuedAt: new Date() });
  return { ...meta, publicKey: identity.publicKey, signedRecord: await signRecord(identity, fields) };
}

interface Seen {
  method: string;
  url: string;
  body: Buffer;
  proof: string | undefined;
}

/** A registry stand-in that records each request as it arrived (target, raw body, proof) and answers plausibly. */
async function startRecorder(): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const record = { id: "a1", hostname: "alice", capabilities: [], status: "online" };
  const server = createServer(async (req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const proof = req.headers[PROOF_HEADER];
    seen.push({
      method: req.method ?? "",
      url: req.url ?? "",
      body: Buffer.concat(chunks),
      proof: Array.isArray(proof) ? proof[0] : proof,
    });
    if (req.method === "DELETE") return void res.writeHead(204).end();
    const status = req.method === "POST" ? 201 : 200;
    const body = req.method === "POST" ? { ...record, agent_token: "art_x" } : record;
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

describe("registry client with an identity", () => {
  it("signs register, patch and deregister over the bytes and path the registry receives, base path included", async () => {
    const recorder = await startRecorder();
    const identity = generateIdentity();
    const client = createRegistryClient({ baseUrl: `${recorder.url}/prefix/`, identity, timeoutMs: 5_000 });
    const meta = await signed(identity, ALICE);
    await client.register(meta, { token: "art_saved" });
    await client.patch("a/1 é", "art_saved", { displayName: "Alice B." });
    await client.deregister("a1", "art_saved");
    await client.heartbeat("a1", "art_saved");
    await client.get("a1");

    const [register, patch, remove, heartbeat, get] = recorder.seen as [Seen, Seen, Seen, Seen, Seen];
    expect([register.url, patch.url, remove.url]).toEqual([
      "/prefix/api/v1/agents/",
      "/prefix/api/v1/agents/a%2F1%20%C3%A9",
      "/prefix/api/v1/agents/a1",
    ]);
    for (const request of [register, patch, remove]) {
      const target = { method: request.method, path: request.url, body: request.body };
      const check = await verifyRequestProof(request.proof, identity.publicKey, target, {
        nonceSeen: () => false,
      });
      expect(check.ok, `${request.method} ${request.url}`).toBe(true);
    }
    // Calls that take no proof carry none.
    expect([heartbeat.proof, get.proof]).toEqual([undefined, undefined]);
    // The key and the signed record travel as the wire fields, the capabilities as the record signed them.
    const wire = JSON.parse(register.body.toString());
    expect(wire).toMatchObject({
      public_key: identity.publicKey,
      signed_record: meta.signedRecord,
      capabilities: ["calendar", "email"],
    });
    expect(await verifyRecord(wire.signed_record)).toMatchObject({ capabilities: wire.capabilities });
  });

  it("sends no proof without an identity", async () => {
    const recorder = await startRecorder();
    const client = createRegistryClient({ baseUrl: recorder.url, timeoutMs: 5_000 });
    await client.register(ALICE);
    await client.deregister("a1", null);
    expect(recorder.seen.map((s) => s.proof)).toEqual([undefined, undefined]);
  });
});

describe("a keyed record through the client, against the reference registry", () => {
  let server: RegistryServerHandle;

  async function start() {
    server = await startRegistryServer({ port: 0, db: ":memory:", sweepIntervalMs: 0 });
    closers.push(() => server.close());
  }

  it("lives on proofs: register, recover a lost token, update with a new signed record, deregister", async () => {
    await start();
    const identity = generateIdentity();
    const client = createRegistryClient({ baseUrl: server.url, identity, timeoutMs: 5_000 });
    const first = await client.register(await signed(identity, ALICE));
    expect(first.created).toBe(true);
    expect(first.record.publicKey).toBe(identity.publicKey);
    expect(await verifyRecord(first.record.signedRecord)).toMatchObject({ hostname: "alice" });

    // The token is lost: the key alone gets a new one.
    const recovered = await client.register(await signed(identity, ALICE));
    expect(recovered.record.id).toBe(first.record.id);
    expect(recovered.agentToken).not.toBe(first.agentToken);

    const changed = await signed(identity, { ...ALICE, description: "Books meetings and dinners" });
    const patched = await client.patch(first.record.id, recovered.agentToken, changed);
    expect(patched.via).toBe("patch");
    expect(patched.record.description).toBe("Books meetings and dinners");

    // A client holding only the token (no key) is refused, with the registry's reason.
    const tokenOnly = createRegistryClient({ baseUrl: server.url, timeoutMs: 5_000 });
    const refused = await caught(tokenOnly.deregister(first.record.id, recovered.agentToken));
    expect(refused.kind).toBe("unauthorized");
    expect(refused.detail).toMatch(/bound to a key: sign the request with that key/);
    expect(refused.message).not.toContain(String(recovered.agentToken));

    expect(await client.deregister(first.record.id, null)).toEqual({ removed: true });
  });

  it("is refused a change of a signed field without a new signed record, and says so", async () => {
    await start();
    const identity = generateIdentity();
    const client = createRegistryClient({ baseUrl: server.url, identity, timeoutMs: 5_000 });
    const { record, agentToken } = await client.register(await signed(identity, ALICE));
    const err = await caught(client.patch(record.id, agentToken, { description: "unsigned" }));
    expect(err.status).toBe(400);
    expect(err.detail).toMatch(/changes description, which the record's signature covers/);
  });
});

describe("an identity against the original registry", () => {
  it("registers, updates through the POST fallback and deregisters as before: the extra fields are ignored", async () => {
    const legacy = await startLegacyRegistryServer({ basePath: "/registry" });
    closers.push(() => legacy.close());
    const identity = generateIdentity();
    const client = createRegistryClient({ baseUrl: legacy.url, identity, timeoutMs: 5_000 });
    const meta = await signed(identity, ALICE);
    const { record } = await client.register(meta);
    expect(record.publicKey).toBeNull();
    const changed = await signed(identity, { ...ALICE, description: "Books dinners" });
    const patched = await client.patch(record.id, null, changed, { fallback: changed });
    expect(patched.via).toBe("upsert");
    expect(patched.record.description).toBe("Books dinners");
    expect(await client.deregister(patched.record.id, null)).toEqual({ removed: true });
    expect(legacy.requests.every((r) => r.headers[PROOF_HEADER] !== undefined)).toBe(true);
  });
});
