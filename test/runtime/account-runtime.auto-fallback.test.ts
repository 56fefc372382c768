import { describe, expect, it } from "vitest";
import { createRelayTransport } from "../../src/adapters/relay/relay-transport.js";
import type { AdmittedMessage } from "../../src/adapters/transport/transport.js";
import type { AccountRuntime } from "../../src/runtime/account-runtime.js";
import { usePilotWorld } from "./support/pilot-world.js";
import { until } from "./support/until.js";

describe('transport "auto": Pilot first, the relay when Pilot to the peer fails', () => {
  // A restarted daemon breaks the pair; sends across it fail after half a second instead of ~39 s.
  const world = usePilotWorld("auto", { brokenDialMs: 500 });

  async function start(name: string, received: AdmittedMessage[]) {
    const node = world.pilot.addNode(name, { start: false });
    const runtime = await world.startAccount(name, node, {
      transport: "auto",
      pilot: { manageDaemon: true, pollIntervalSeconds: 30 },
      runtime: {
        createDispatcher: () => async (message) => {
          received.push(message);
        },
      },
    });
    await until(
      () => runtime.status().lifecycle === "online" && runtime.status().messaging.daemon?.messagingAvailable,
      `${name} online with its daemon`,
      30_000,
    );
    await until(
      async () => (await runtime.registry.byHostname(name))?.pilotNodeId,
      `${name}'s node registered`,
    );
    return { runtime, node };
  }

  const delivered = (runtime: AccountRuntime) => runtime.network.counters().outbox?.delivered ?? 0;

  it("delivers over Pilot, then over the relay once the pair breaks, and never dispatches a resent copy twice", async () => {
    const toAlice: AdmittedMessage[] = [];
    const toBob: AdmittedMessage[] = [];
    const alice = await start("alice", toAlice);
    const bob = await start("bob", toBob);
    // Both inbox loops and the daemon in each tree.
    expect(Object.keys(alice.runtime.actor.getSnapshot().children).sort()).toEqual([
      "daemon",
      "inbox",
      "outbox",
      "peers",
      "relayInbox",
    ]);

    // The handshake and the approval go over both transports; the peer shows once, with both its ids.
    await bob.runtime.network.handshake("alice", "Hello from bob");
    await until(
      async () => (await alice.runtime.network.pending()).find((p) => p.hostname === "bob"),
      "alice sees bob's request",
      20_000,
    );
    expect((await alice.runtime.network.pending()).filter((p) => p.hostname === "bob")).toHaveLength(1);
    await alice.runtime.network.approve("bob");

    // 1. Over Pilot (the send reads bob's trust lists first: alice approved a moment ago).
    await bob.runtime.network.send("alice", "over pilot");
    await until(() => toAlice.length === 1, "alice gets the first message", 15_000);
    expect(toAlice[0]).toMatchObject({ transport: "pilot", text: "over pilot", peer: { hostname: "bob" } });
    await until(() => delivered(bob.runtime) === 1, "bob's first message shows delivered", 15_000);

    // 2. Alice's daemon restarts: the pair is broken both ways until both restart. The next message falls back to
    // the relay, and alice's receipt comes back the same way.
    world.pilot.restartDaemon(alice.node);
    await bob.runtime.network.send("alice", "over the relay");
    await until(() => toAlice.length === 2, "alice gets the second message", 30_000);
    expect(toAlice[1]).toMatchObject({
      transport: "relay",
      text: "over the relay",
      peer: { hostname: "bob" },
    });
    await until(() => delivered(bob.runtime) === 2, "bob's second message shows delivered", 30_000);
    expect(bob.runtime.network.outbox()).toEqual([]);
    expect(bob.runtime.network.counters().paths).toMatchObject({ pilot: 1, relay: 1, fallbacks: 1 });

    // 3. The first message again, same envelope id, over the other path (as a resend after a lost receipt would
    // be): alice's one pipeline knows its key, answers it and does not dispatch it again.
    const duplicatesBefore = alice.runtime.network.counters().duplicates;
    const bobOverRelay = createRelayTransport({
      client: bob.runtime.registry,
      self: {
        installationId: bob.runtime.state.identity().installationId!,
        peerId: () => bob.runtime.state.identity().peerId,
        hostname: "bob",
        agentToken: () => bob.runtime.state.identity().agentToken,
      },
    });
    await bobOverRelay.send({ hostname: "alice", nodeId: null, installationId: null }, toAlice[0]!.envelope!);
    await until(
      () => alice.runtime.network.counters().duplicates > duplicatesBefore,
      "alice recognises the copy",
      30_000,
    );
    expect(toAlice.map((m) => m.text)).toEqual(["over pilot", "over the relay"]);
    // The peer is one entry with both ids, whichever path's list named it.
    const bobSeenByAlice = alice.runtime.network.peers().find((p) => p.hostname === "bob");
    expect(bobSeenByAlice).toMatchObject({ state: "trusted" });
    expect(bobSeenByAlice?.nodeId).not.toBeNull();
    expect(bobSeenByAlice?.installationId).not.toBeNull();
  }, 150_000);
});
