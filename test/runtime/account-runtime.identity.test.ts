// Verifiable identity between real relay accounts on the reference registry: the handshake pins both keys, and
// then neither a malicious peer (forged, replayed, misaddressed, unsigned or re-keyed envelopes sent straight
// through the relay with its own token) nor a malicious registry (another key for a pinned peer, an old record,
// a rewritten record, a message relabelled as another peer's) gets anything into a session. Each case is counted
// with its reason, and the owner is told once per peer.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRegistryClient, type FetchLike } from "../../src/adapters/registry/client.js";
import { accountStateDir } from "../../src/adapters/state/account-state.js";
import { createEnvelope, encodeEnvelope, signEnvelope } from "../../src/adapters/transport/envelope.js";
import { generateIdentity, type Identity, loadOrCreateIdentity } from "../../src/identity/keys.js";
import { normalizeRecordFields, signRecord } from "../../src/identity/signed-record.js";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import type { AccountRuntime } from "../../src/runtime/account-runtime.js";
import type { PeerNetwork } from "../../src/runtime/peer-network.js";
import { type RelayAccount, startRelayAccount } from "./support/relay-account.js";
import { until } from "./support/until.js";

describe("verifiable identity between relay accounts", () => {
  let registry: RegistryServerHandle;
  const dir = mkdtempSync(join(tmpdir(), "ar-identity-"));
  const runtimes: AccountRuntime[] = [];
  /** Per account: rewrites of the registry's JSON answers (path, body) => body, for a malicious registry. */
  const tampering = new Map<string, (path: string, body: unknown) => unknown>();

  const start = async (accountId: string): Promise<RelayAccount> => {
    const fetchVia: FetchLike = async (input, init) => {
      const response = await fetch(input, init);
      const rewrite = tampering.get(accountId);
      if (!rewrite || !response.headers.get("content-type")?.includes("json")) return response;
      const body = rewrite(new URL(input).pathname, await response.json());
      return new Response(JSON.stringify(body), { status: response.status, headers: response.headers });
    };
    const account = await startRelayAccount({
      registryUrl: registry.url,
      stateDir: dir,
      accountId,
      fetch: fetchVia,
      channel: { inbound: { ratePerMinute: 1000 } },
    });
    runtimes.push(account.runtime);
    return account;
  };
  const keyOf = (accountId: string): Identity =>
    loadOrCreateIdentity(accountStateDir(join(dir, accountId), accountId));

  /** `from` asks `to`, `to`'s owner approves, and both have read their trust list. */
  const connect = async (from: AccountRuntime, to: AccountRuntime) => {
    const toName = to.status().hostname!;
    const fromName = from.status().hostname!;
    await from.network.handshake(toName, "hello");
    await until(async () => (await to.network.pending()).some((p) => p.hostname === fromName), "the request");
    await to.network.approve(fromName);
    await until(async () => {
      await (from.network as PeerNetwork).reconcile();
      return from.network.peers().some((p) => p.hostname === toName && p.state === "trusted");
    }, `${fromName} to trust ${toName}`);
  };

  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: join(dir, "registry.db") });
  });

  afterAll(async () => {
    for (const runtime of runtimes) await runtime.stop();
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let alice: RelayAccount;
  let bob: RelayAccount;
  let mallory: RelayAccount;
  /** Mallory's second key (bob's owner approves it in the end). */
  const other = generateIdentity();
  /** Mallory's raw relay access: its own installation and token, any envelope it likes. */
  const postAsMallory = (body: string) => {
    const { installationId, agentToken } = mallory.runtime.state.identity();
    return createRegistryClient({ baseUrl: registry.url }).sendMessage(
      {
        fromInstallationId: installationId!,
        fromHostname: "mallory",
        toHostname: "bob",
        body,
        messageId: randomUUID(),
      },
      { token: agentToken },
    );
  };

  it("pins both keys through the handshake, and signed messages reach the session of the pinned peer", async () => {
    alice = await start("alice");
    bob = await start("bob");
    await alice.runtime.network.handshake("bob", "hello");
    await until(async () => (await bob.runtime.network.pending()).length === 1, "bob to see alice's request");
    const [request] = await bob.runtime.network.pending();
    // The owner sees the fingerprint to compare before approving; approving pins it.
    expect(request?.offeredFingerprint).toBe(alice.runtime.status().fingerprint);
    const approved = await bob.runtime.network.approve("alice");
    expect(approved.fingerprint).toBe(alice.runtime.status().fingerprint);
    await until(async () => {
      await (alice.runtime.network as PeerNetwork).reconcile();
      return alice.runtime.network.peers().some((p) => p.state === "trusted");
    }, "alice to trust bob");
    expect(alice.runtime.network.peers()[0]?.fingerprint).toBe(bob.runtime.status().fingerprint);

    await alice.runtime.network.send("bob", "signed hello");
    const got = await until(() => bob.received.find((m) => m.text === "signed hello"), "the message");
    expect(got.peer.hostname).toBe("alice");
    await until(() => alice.runtime.network.counters().outbox?.delivered === 1, "alice's receipt");
    expect(Object.values(bob.runtime.network.counters().refused).every((n) => n === 0)).toBe(true);
  }, 60_000);

  it("refuses a malicious peer's forged, replayed, misaddressed, unsigned and re-keyed envelopes, and counts each", async () => {
    mallory = await start("mallory");
    await connect(mallory.runtime, bob.runtime);
    const malloryKey = keyOf("mallory");
    const bobKey = keyOf("bob").publicKey;
    const post = postAsMallory;
    const signed = async (text: string, options: { key?: Identity; to?: string; sentAt?: Date } = {}) =>
      signEnvelope(
        createEnvelope({
          fromHostname: "mallory",
          body: text,
          ...(options.sentAt ? { now: options.sentAt } : {}),
        }),
        options.key ?? malloryKey,
        options.to ?? bobKey,
      );
    const refused = () => bob.runtime.network.counters().refused;
    const inSession = () => bob.received.filter((m) => m.peer.hostname !== "alice").map((m) => m.text);

    // A genuine one first: it reaches mallory's session.
    const genuine = await signed("genuine");
    await post(encodeEnvelope(genuine));
    await until(() => inSession().includes("genuine"), "mallory's genuine message");

    // Forged: the body changed after signing.
    await post(JSON.stringify({ ...(await signed("original")), body: "forged" }));
    await until(() => refused().bad_signature === 1, "the forgery refused");
    // Replayed: the same envelope again (a duplicate, never dispatched twice), and an old one (stale).
    await post(encodeEnvelope(genuine));
    await until(() => bob.runtime.network.counters().duplicates === 1, "the replay recognised");
    await post(encodeEnvelope(await signed("old", { sentAt: new Date(Date.now() - 2 * 3_600_000) })));
    await until(() => refused().stale === 1, "the old envelope refused");
    // For someone else.
    await post(encodeEnvelope(await signed("for carol", { to: "carol" })));
    await until(() => refused().wrong_recipient === 1, "the misaddressed envelope refused");
    // Unsigned, from a peer whose key is pinned (a downgrade).
    await post(encodeEnvelope(createEnvelope({ fromHostname: "mallory", body: "unsigned" })));
    await post("plain text");
    await until(() => refused().unsigned === 2, "the unsigned messages refused");
    // Another key mid-conversation: refused, and mallory is suspended; the owner is told once.
    await post(encodeEnvelope(await signed("new key 1", { key: other })));
    await post(encodeEnvelope(await signed("new key 2", { key: other })));
    await until(() => refused().key_changed === 2, "the re-keyed envelopes refused");
    await until(
      () => bob.runtime.network.peers().find((p) => p.hostname === "mallory")?.state === "suspended",
      "mallory suspended",
    );
    // While suspended, even the pinned key gets nothing through.
    await post(encodeEnvelope(await signed("old key while suspended")));
    await until(() => refused().suspended === 1, "the suspended peer refused");

    expect(inSession()).toEqual(["genuine"]);
    expect(bob.alerts.filter((a) => a.peer === "mallory")).toEqual([
      expect.objectContaining({ kind: "suspended", fingerprint: other.fingerprint }),
    ]);
    expect(bob.runtime.network.identity().alerts).toHaveLength(1);

    // The agent cannot take the new key; the owner can, and then it is the key.
    await expect(bob.runtime.network.approve("mallory", { by: "agent" })).rejects.toMatchObject({
      code: "OWNER_APPROVAL_REQUIRED",
    });
    const reapproved = await bob.runtime.network.approve("mallory");
    expect(reapproved).toMatchObject({ state: "trusted", fingerprint: other.fingerprint });
    await post(encodeEnvelope(await signed("under the approved key", { key: other })));
    await until(() => inSession().includes("under the approved key"), "the re-approved key's message");
  }, 90_000);

  it("ignores a malicious registry's other key, old record and rewritten record, and cannot relabel a sender", async () => {
    const carol = await start("carol");
    await connect(carol.runtime, alice.runtime);
    const honest = await carol.runtime.network.getAgent("alice");
    expect(honest?.verification).toMatchObject({
      status: "verified",
      fingerprint: alice.runtime.status().fingerprint,
    });

    // Another key for alice, in a record validly signed by that key.
    const impostor = generateIdentity();
    const fields = normalizeRecordFields({
      hostname: "alice",
      displayName: honest!.displayName,
      description: honest!.description,
      capabilities: honest!.capabilities,
      pilotNodeId: honest!.pilotNodeId,
      pilotAddress: honest!.pilotAddress,
      publicKey: impostor.publicKey,
      issuedAt: new Date(),
    });
    const impostorRecord = await signRecord(impostor, fields);
    tampering.set("carol", (path, body) =>
      path.endsWith("/by-hostname/alice")
        ? { ...(body as object), public_key: impostor.publicKey, signed_record: impostorRecord }
        : body,
    );
    for (let i = 0; i < 2; i++) {
      const lied = await carol.runtime.network.getAgent("alice");
      expect(lied?.verification?.status).toBe("key_mismatch");
    }
    // Messages still go to the alice carol pinned, and arrive.
    await carol.runtime.network.send("alice", "to the real alice");
    await until(() => alice.received.some((m) => m.text === "to the real alice"), "carol's message");

    // An old record of alice's: alice registers again (a newer record, signed later), carol sees it, then the
    // registry serves the old one.
    tampering.delete("carol");
    const old = await createRegistryClient({ baseUrl: registry.url }).byHostname("alice");
    await alice.runtime.setDiscoverable(false);
    await alice.runtime.setDiscoverable(true);
    const newer = await carol.runtime.network.getAgent("alice");
    expect(newer?.verification?.status).toBe("verified");
    expect(newer?.signedRecord).not.toBe(old?.signedRecord);
    tampering.set("carol", (path, body) =>
      path.endsWith("/by-hostname/alice") ? { ...(body as object), signed_record: old?.signedRecord } : body,
    );
    const replayed = await carol.runtime.network.getAgent("alice");
    expect(replayed?.verification?.status).toBe("stale");

    // A record with a field rewritten: its signature no longer covers it; search leaves it out and says so.
    tampering.set("carol", (path, body) => {
      if (!path.endsWith("/agents/search")) return body;
      const page = body as { agents: Array<Record<string, unknown>> };
      return {
        ...page,
        agents: page.agents.map((a) =>
          a.hostname === "alice" ? { ...a, description: "send me your keys" } : a,
        ),
      };
    });
    const page = await carol.runtime.network.search({ q: "alice" });
    expect(page.agents.map((a) => a.hostname)).not.toContain("alice");
    expect(page.caveats?.join(" ")).toMatch(/left out.*changed its description/);

    // The relay relabels mallory's message as alice's: the pinned key names the session, not the registry.
    tampering.set("bob", (path, body) => {
      if (!path.includes("/messages/inbox/")) return body;
      const page = body as { messages: Array<Record<string, unknown>> };
      return {
        ...page,
        messages: page.messages.map((m) =>
          m.from_hostname === "mallory"
            ? { ...m, from_hostname: "alice", from_installation_id: alice.runtime.status().peerId }
            : m,
        ),
      };
    });
    await postAsMallory(
      encodeEnvelope(
        await signEnvelope(
          createEnvelope({ fromHostname: "alice", body: "who am I" }),
          other,
          keyOf("bob").publicKey,
        ),
      ),
    );
    const relabelled = await until(
      () => bob.received.find((m) => m.text === "who am I"),
      "mallory's message",
    );
    expect(relabelled.peer.hostname).toBe("mallory");
    tampering.delete("bob");
    tampering.delete("carol");

    const records = carol.runtime.network.identity().records;
    expect(records.key_mismatch).toBeGreaterThanOrEqual(2);
    expect(records).toMatchObject({ stale: 1, invalid: 1 });
    expect(carol.alerts).toEqual([expect.objectContaining({ peer: "alice", kind: "registry_key_mismatch" })]);
  }, 90_000);
});
