// The relay transport against a server shaped like the ORIGINAL registry, which has no relay and no trust
// routes: every call fails with an error saying so, never a silent success. Then against a variant that has
// them in the shapes the original plugin read (no tokens, bare arrays, trust under `relationships`, refusals
// as `200 {ok:false}`), which the original server never had.
import { afterEach, describe, expect, it } from "vitest";
import { createRegistryClient } from "../../../src/adapters/registry/client.js";
import { createRelayTransport } from "../../../src/adapters/relay/relay-transport.js";
import { createEnvelope } from "../../../src/adapters/transport/envelope.js";
import { type Transport, TransportError } from "../../../src/adapters/transport/transport.js";
import {
  type LegacyRegistryServer,
  startLegacyRegistryServer,
} from "../../fixtures/legacy-registry-server.js";

let legacy: LegacyRegistryServer | undefined;
afterEach(async () => {
  await legacy?.close();
  legacy = undefined;
});

async function setup(
  unofficialRelayAndTrust = true,
): Promise<{ alpha: Transport; beta: Transport; server: LegacyRegistryServer }> {
  const server = await startLegacyRegistryServer({ unofficialRelayAndTrust });
  legacy = server;
  const client = createRegistryClient({ baseUrl: server.url });
  await client.register({ hostname: "alpha", installationId: "inst-alpha", capabilities: [] });
  await client.register({ hostname: "beta", installationId: "inst-beta", capabilities: [] });
  const transport = (installationId: string, hostname: string) =>
    createRelayTransport({ client, self: { installationId, hostname, agentToken: () => null } });
  return { alpha: transport("inst-alpha", "alpha"), beta: transport("inst-beta", "beta"), server };
}

describe("relay transport against the original registry (no relay routes)", () => {
  it("fails sending, trust requests and trust lists with errors that name the missing route", async () => {
    const { alpha } = await setup(false);
    const peer = { hostname: "beta", nodeId: null, installationId: null };
    for (const call of [
      () => alpha.send(peer, createEnvelope({ fromHostname: "alpha", body: "hi" })),
      () => alpha.requestTrust(peer, "hello"),
      () => alpha.listPending(),
    ]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransportError);
      expect((err as TransportError).code).toBe("unavailable");
      expect((err as TransportError).message).toMatch(/has no relay .*answered 404.*transport to "pilot"/);
    }
  });
});

describe("relay transport against a registry with the original plugin's relay shapes", () => {
  it("sends with the installation id found through the unfiltered agent list", async () => {
    const { alpha, server } = await setup();
    const envelope = createEnvelope({ fromHostname: "alpha", body: "hi" });
    expect(await alpha.send({ hostname: "beta", nodeId: null, installationId: null }, envelope)).toEqual({
      messageId: envelope.id,
    });
    const sent = server.requests.find((r) => r.path === "/api/v1/agents/messages/send");
    expect(sent?.body).toMatchObject({
      from_installation_id: "inst-alpha",
      from_hostname: "alpha",
      to_installation_id: "inst-beta",
      to_hostname: "beta",
      message_id: envelope.id,
      body: JSON.stringify(envelope),
    });
  });

  it("a 200 {ok:false} refusal is rejected, not an outage to retry", async () => {
    const { alpha } = await setup();
    const err = await alpha
      .send(
        { hostname: "nobody", nodeId: null, installationId: "inst-nobody" },
        createEnvelope({ fromHostname: "alpha", body: "hi" }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).code).toBe("rejected");
  });

  it("reads pending requests from `relationships` and approves them", async () => {
    const { alpha, beta } = await setup();
    await alpha.requestTrust({ hostname: "beta", nodeId: null, installationId: null }, "hello");
    const pending = await beta.listPending();
    expect(pending).toHaveLength(1);
    expect(pending[0]?.peer).toEqual({ hostname: "alpha", nodeId: null, installationId: "inst-alpha" });
    expect(pending[0]?.introduction).toBe("hello");
    await beta.approve(pending[0]?.peer ?? { hostname: null, nodeId: null, installationId: null });
    expect((await alpha.listTrusted()).map((t) => t.peer.installationId)).toEqual(["inst-beta"]);
  });

  it("names trusted peers from a cache: one lookup per peer per TTL, not per poll", async () => {
    const { alpha, beta } = await setup();
    await alpha.requestTrust({ hostname: "beta", nodeId: null, installationId: null }, "hello");
    const [request] = await beta.listPending();
    await beta.approve(request!.peer);

    const server = legacy!;
    const client = createRegistryClient({ baseUrl: server.url });
    let clock = 1_000_000;
    const cached = createRelayTransport({
      client,
      self: { installationId: "inst-alpha", hostname: "alpha", agentToken: () => null },
      hostnameTtlMs: 60_000,
      now: () => clock,
    });
    const lookups = () => server.requests.filter((r) => r.path === "/api/v1/agents/").length;
    const before = lookups();
    const named = [{ hostname: "beta", nodeId: null, installationId: "inst-beta" }];
    for (let poll = 0; poll < 5; poll++)
      expect((await cached.listTrusted()).map((t) => t.peer)).toEqual(named);
    expect(lookups() - before).toBe(1);
    // Past the TTL the name is asked for again, once.
    clock += 60_001;
    expect((await cached.listTrusted()).map((t) => t.peer)).toEqual(named);
    await cached.listTrusted();
    expect(lookups() - before).toBe(2);
  });

  it("untrust falls back to reject when the registry has no revoke route (404)", async () => {
    const { alpha, beta, server } = await setup();
    await alpha.requestTrust({ hostname: "beta", nodeId: null, installationId: null }, "hello");
    const [request] = await beta.listPending();
    await beta.approve(request!.peer);
    await beta.untrust(request!.peer);
    expect(server.requests.some((r) => r.path === "/api/v1/trust/revoke")).toBe(true);
    expect(server.requests.some((r) => r.path === "/api/v1/trust/reject")).toBe(true);
    expect(await alpha.listTrusted()).toEqual([]);
  });
});
