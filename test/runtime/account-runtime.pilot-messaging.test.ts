import { describe, expect, it } from "vitest";
import type { AdmittedMessage } from "../../src/adapters/transport/transport.js";
import { usePilotWorld } from "./support/pilot-world.js";
import { until } from "./support/until.js";

describe("two Pilot accounts talk through their actor trees", () => {
  const world = usePilotWorld("pilot-msg");

  async function start(name: string, received: AdmittedMessage[]) {
    const node = world.pilot.addNode(name, { start: false });
    const runtime = await world.startAccount(name, node, {
      pilot: { manageDaemon: true, pollIntervalSeconds: 30 },
      runtime: {
        createDispatcher: () => async (message) => {
          received.push(message);
        },
      },
    });
    await until(
      () => runtime.status().lifecycle === "online" && runtime.status().messaging.ready,
      `${name} online with its daemon`,
      30_000,
    );
    await until(
      async () => (await runtime.registry.byHostname(name))?.pilotNodeId,
      `${name}'s node registered`,
    );
    return runtime;
  }

  it("handshake, approval, a message into the peer's session well before the poll interval", async () => {
    const toAlice: AdmittedMessage[] = [];
    const toBob: AdmittedMessage[] = [];
    const alice = await start("alice", toAlice);
    const bob = await start("bob", toBob);

    await bob.network.handshake("alice", "Hello from bob");
    const pending = await until(
      async () => (await alice.network.pending())[0],
      "alice sees bob's request",
      20_000,
    );
    expect(pending).toMatchObject({
      hostname: "bob",
      state: "pendingApproval",
      introduction: "Hello from bob",
    });
    await alice.network.approve("bob");

    const sentAt = Date.now();
    await bob.network.send("alice", "ping over pilot");
    // The watcher wakes alice's inbox loop: far sooner than its 30 s poll interval.
    await until(() => toAlice.length > 0, "alice's session gets the message", 10_000);
    expect(Date.now() - sentAt).toBeLessThan(10_000);
    expect(toAlice[0]).toMatchObject({
      transport: "pilot",
      text: "ping over pilot",
      peer: { hostname: "bob" },
    });

    await alice.network.send("bob", "pong");
    await until(() => toBob.length > 0, "bob's session gets the reply", 10_000);
    expect(toBob[0]?.text).toBe("pong");
    // Each side's receipt comes back over Pilot: both messages show delivered in the sender's outbox.
    for (const runtime of [alice, bob]) {
      await until(
        () => runtime.network.counters().outbox?.delivered === 1,
        `${runtime.accountId}'s message shows delivered`,
        10_000,
      );
      expect(runtime.network.outbox()).toEqual([]);
    }
    // Each account is one tree with its daemon and loops; the peer's handshake, settled, rests as its record.
    for (const [runtime, peer] of [
      [alice, "bob"],
      [bob, "alice"],
    ] as const) {
      expect(Object.keys(runtime.actor.getSnapshot().children).sort()).toEqual([
        "daemon",
        "inbox",
        "outbox",
        "peers",
      ]);
      expect(runtime.network.peers().find((p) => p.hostname === peer)?.state).toBe("trusted");
    }
  }, 90_000);
});
