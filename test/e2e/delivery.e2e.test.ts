// Delivery you can count on, end to end: a real OpenClaw gateway with accounts alice and bob on the fake Pilot
// network, which here behaves as real daemons were seen to: a burst lands in one "millisecond" and inbox files
// overwrite each other after the sender got its ACK, and a daemon restart breaks the pair both ways until the
// other end restarts too. Both daemons are managed by the plugin. alice's operator sends 200 messages to bob; in
// the middle of the burst bob's daemon is killed (the plugin restarts it). Every message must be in bob's session
// exactly once (read back with chat.history) and show delivered in alice's outbox, with nothing left undelivered.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import {
  createFakePilotNetwork,
  type FakePilotNetwork,
  type FakePilotNode,
} from "../fixtures/fake-pilot/network.js";
import { createGateway, type Gateway, waitUntil } from "./support/gateway.js";
import { type ModelServer, startModelServer } from "./support/model-server.js";
import { LEAN_AGENT, sessionMarkers } from "./support/turns.js";

const MESSAGES = Number(process.env.E2E_DELIVERY_MESSAGES ?? 200);
const MARKER = /\bdelivery-(\d+)\b/;

interface OutboxReply {
  accounts: Array<{
    accountId: string;
    counts: Record<"queued" | "sent" | "delivered" | "refused" | "failed", number>;
    messages: Array<{ id: string; state: string; attempts: number; reason: string | null }>;
  }>;
}

describe("Delivery over Pilot in a real OpenClaw gateway: outbox, receipts, recovery", () => {
  const dbDir = mkdtempSync(join(tmpdir(), "ar-delivery-e2e-"));
  let registry: RegistryServerHandle;
  let model: ModelServer;
  let pilot: FakePilotNetwork;
  let gateway: Gateway;
  const nodes: Record<string, FakePilotNode> = {};

  const outbox = async (accountId: string) =>
    (await gateway.call<OutboxReply>("agent-registry.outbox", { accountId })).accounts[0]!;
  const peers = async (accountId: string): Promise<string> =>
    JSON.stringify(await gateway.call("agent-registry.peers", { accountId }));

  /** How often each `delivery-<n>` is among the peer messages of bob's session with alice (chat.history). */
  const bobsSession = () => sessionMarkers(gateway, "agent:main:agent-registry:bob:direct:alice", MARKER);
  /** Peer-message turns bob's agent ran so far. */
  const bobsTurns = () =>
    model.requests.filter((r) => JSON.stringify(r.messages).includes("delivery-")).length;

  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: join(dbDir, "registry.db") });
    // No agent replies (autoReplyBudget 0 below): the traffic is alice's 200 messages and bob's receipts.
    model = await startModelServer(() => ({ text: "Noted." }));
    pilot = createFakePilotNetwork({
      shape: "old",
      unreachableMs: 2_000,
      extraEnv: {
        // Real daemons' faults, with their delays shortened: a burst collides; a restart breaks the pair.
        FAKE_PILOT_COLLIDE: "1",
        FAKE_PILOT_COLLIDE_MS: "20",
        FAKE_PILOT_RESTART_BREAKS_PAIR: "1",
        FAKE_PILOT_BROKEN_DIAL_MS: "500",
      },
    });
    for (const name of ["alice", "bob"]) nodes[name] = pilot.addNode(name);
    pilot.run(nodes.alice!, ["handshake", "bob", "e2e"]);
    pilot.run(nodes.bob!, ["handshake", "alice", "e2e"]);
    // The plugin starts and supervises the daemons from here on.
    for (const name of ["alice", "bob"]) pilot.run(nodes[name]!, ["daemon", "stop"]);

    const { HOME: _home, PILOT_SOCKET: _socket, ...shared } = pilot.env(dbDir);
    const accounts: Record<string, Record<string, unknown>> = {};
    for (const name of ["alice", "bob"] as const) {
      accounts[name] = {
        hostname: name,
        displayName: name,
        pilot: { pilotctl: pilot.pilotctlPath, home: nodes[name]!.home, socket: nodes[name]!.socket },
      };
    }
    gateway = await createGateway({
      modelBaseUrl: model.url,
      env: shared,
      extraConfig: LEAN_AGENT,
      channelConfig: {
        registryUrl: registry.url,
        transport: "pilot",
        heartbeatIntervalSeconds: 30,
        pilot: { pollIntervalSeconds: 2, manageDaemon: true },
        inbound: { autoReplyBudget: 0, ratePerMinute: 10_000 },
        // A lost message is resent after 20 s without its receipt (doubling), as often as it takes in this test.
        outbound: { receiptTimeoutSeconds: 20, maxResends: 20, maxQueuedPerPeer: 1_000 },
        accounts,
      },
    });
    await gateway.start();
    await waitUntil(
      async () =>
        /"bob"[^}]*"trusted"/.test(await peers("alice")) && /"alice"[^}]*"trusted"/.test(await peers("bob")),
      120_000,
      "alice and bob to trust each other",
      1_000,
    );
  }, 300_000);

  afterAll(async () => {
    await gateway?.stop();
    gateway?.cleanup();
    pilot?.close();
    await model?.close();
    await registry?.close();
    rmSync(dbDir, { recursive: true, force: true });
  });

  it(`${MESSAGES} messages through collisions and a daemon restart: each in bob's session once, all delivered`, async () => {
    const sending = gateway.callMany<{ messageId: string; state: string }>(
      "agent-registry.send",
      Array.from({ length: MESSAGES }, (_, i) => ({ accountId: "alice", to: "bob", text: `delivery-${i}` })),
      4,
    );
    // Mid-burst, bob's daemon dies; the plugin restarts it, and the pair is broken until alice's restarts too.
    await waitUntil(
      () => bobsTurns() >= MESSAGES / 4,
      300_000,
      "a quarter of the burst in bob's session",
      200,
    );
    const { pid } = pilot.run(nodes.bob!, ["daemon", "status"]) as { pid: number };
    process.kill(pid, "SIGKILL");

    const sent = await sending;
    expect(sent.filter((r) => !r.ok)).toEqual([]);
    const ids = sent.map((r) => (r.ok ? r.result.messageId : ""));
    expect(new Set(ids).size).toBe(MESSAGES);

    const final = await waitUntil(
      async () => {
        const box = await outbox("alice");
        return box.messages.length === 0 && box.counts.delivered >= MESSAGES ? box : false;
      },
      600_000,
      `alice's ${MESSAGES} messages to show delivered`,
      2_000,
    );
    expect(final.messages).toEqual([]);
    expect(final.counts).toMatchObject({ queued: 0, sent: 0, delivered: MESSAGES, refused: 0, failed: 0 });

    const seen = await bobsSession();
    const missing = Array.from({ length: MESSAGES }, (_, i) => i).filter((i) => !seen.has(i));
    const twice = [...seen].filter(([, count]) => count > 1).map(([n]) => n);
    expect({ missing, twice }).toEqual({ missing: [], twice: [] });
    // The faults happened: some messages needed more than one send (a file overwritten, a broken pair).
    const history = (
      await gateway.call<OutboxReply>("agent-registry.outbox", { accountId: "alice", finished: 200 })
    ).accounts[0]!.messages;
    const resent = history.filter((m) => m.attempts > 1).length;
    console.log(`delivery e2e: ${resent} of ${MESSAGES} messages needed more than one send`);
    expect(resent).toBeGreaterThan(0);
  }, 900_000);
});
