// A daemon this plugin manages, over the fake Pilot network with what real daemons do (docs/pilot.md): started
// with the same identity file and the configured registry and beacon every time, restarted when sends to a trusted
// peer keep failing (a peer's restart broke the pair), and left alone when pilotctl cannot stop it.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { AccountRuntime } from "../../src/runtime/account-runtime.js";
import type { FakePilotNode } from "../fixtures/fake-pilot/network.js";
import { usePilotWorld } from "./support/pilot-world.js";
import { until } from "./support/until.js";

describe("a managed Pilot daemon", () => {
  // A send across a pair broken by a restart fails after 200 ms here (real: ~39 s).
  const world = usePilotWorld("pilot-daemon", { brokenDialMs: 200 });

  const start = (
    name: string,
    node: FakePilotNode,
    pilot: Record<string, unknown>,
    warnings: string[] = [],
  ): Promise<AccountRuntime> =>
    world.startAccount(name, node, {
      pilot: { pollIntervalSeconds: 1, sendTimeoutMs: 5_000, ...pilot },
      runtime: {
        log: { info: () => {}, warn: (m) => warnings.push(m), error: () => {}, debug: () => {} },
        createDispatcher: () => async () => {},
        pilotDaemon: {
          watchIntervalMs: 200,
          restartBackoff: { initialMs: 100, maxMs: 100, factor: 1 },
          suspectBackoff: { initialMs: 300, maxMs: 300, factor: 1 },
        },
      },
    });

  const daemonOf = (runtime: AccountRuntime) => runtime.status().messaging.daemon;
  const runningNode = (runtime: AccountRuntime) =>
    until(
      () => (daemonOf(runtime)?.phase === "running" ? daemonOf(runtime) : null),
      "the daemon running",
      20_000,
    );
  const pidOf = (node: FakePilotNode) => (world.pilot.run(node, ["daemon", "status"]) as { pid: number }).pid;

  it("is started with the identity file, registry and beacon of the config, and keeps its node id when restarted", async () => {
    const node = world.pilot.addNode("ida", { start: false });
    const runtime = await start("ida", node, {
      manageDaemon: true,
      registry: "127.0.0.1:9000",
      beacon: "127.0.0.1:9001",
    });
    const first = await runningNode(runtime);
    expect(world.pilot.startFlags(node)).toMatchObject({
      hostname: "ida",
      identity: join(node.home, ".pilot", "identity.key"),
      registry: "127.0.0.1:9000",
      beacon: "127.0.0.1:9001",
    });
    // A crash: the daemon child starts it again, with the same identity file, as the same node.
    process.kill(pidOf(node), "SIGKILL");
    await until(() => daemonOf(runtime)?.phase !== "running", "the crash seen");
    const again = await runningNode(runtime);
    expect(again.nodeId).toBe(first.nodeId);
    expect(world.pilot.startFlags(node)?.identity).toBe(join(node.home, ".pilot", "identity.key"));
  }, 60_000);

  it("is restarted when sends to a trusted peer keep failing after the peer's daemon restarted, and the pair works again", async () => {
    const aliceNode = world.pilot.addNode("alice", { start: false });
    const bobNode = world.pilot.addNode("bob");
    const warnings: string[] = [];
    const alice = await start("alice", aliceNode, { manageDaemon: true }, warnings);
    await start("bob", bobNode, { manageDaemon: false });
    await runningNode(alice);
    world.pilot.run(aliceNode, ["handshake", "bob", "test"]);
    world.pilot.run(bobNode, ["handshake", "alice", "test"]);
    await until(
      () => alice.network.peers().some((p) => p.hostname === "bob" && p.state === "trusted"),
      "alice to trust bob",
      20_000,
    );
    await alice.network.send("bob", "before bob's restart");
    // Its receipt comes back before the pair breaks (else it is resent only after the receipt timeout).
    await until(
      () => alice.network.counters().outbox?.delivered === 1,
      "the first message delivered",
      10_000,
    );
    const alicePid = pidOf(aliceNode);

    // Bob's daemon restarts (not by this plugin): the pair is broken both ways until alice's restarts too.
    world.pilot.restartDaemon(bobNode);
    // Each send fails at the transport; the message waits in the outbox.
    for (let i = 0; i < 3; i++) {
      expect(await alice.network.send("bob", `after bob's restart ${i}`)).toMatchObject({ state: "queued" });
    }
    expect(warnings.some((w) => /3 sends in a row to trusted peers that are online failed/.test(w))).toBe(
      true,
    );
    await until(
      () => pidOf(aliceNode) !== alicePid && daemonOf(alice)?.phase === "running",
      "alice's daemon restarted",
      20_000,
    );
    expect(daemonOf(alice)?.restartsLeft).toBeLessThan(daemonOf(alice)!.restartBudget);
    // The outbox sends the three again once the pair works; bob's receipts come back.
    await until(
      () => alice.network.outbox().length === 0 && alice.network.counters().outbox?.delivered === 4,
      "every message to bob delivered",
      60_000,
    );
  }, 90_000);

  it("left running, and said so, when pilotctl did not start it and so cannot stop it", async () => {
    const node = world.pilot.addNode("foreign");
    // As if started by a service manager: no PID file.
    world.pilot.forgetPidFile(node);
    const pid = pidOf(node);
    const warnings: string[] = [];
    const runtime = await start("foreign", node, { manageDaemon: true }, warnings);
    await runningNode(runtime);
    await runtime.stop();
    expect(daemonOf(runtime)?.lastError).toMatchObject({ kind: "conflict", operation: "pilot.daemon.stop" });
    expect(daemonOf(runtime)?.lastError?.message).toMatch(/not started by pilotctl.*service manager/);
    expect(warnings.some((w) => /not started by pilotctl/.test(w))).toBe(true);
    // Still the same daemon: not stopped, and no second one started over it.
    expect(world.pilot.run(node, ["daemon", "status"])).toMatchObject({ running: true, pid });
  }, 60_000);
});
