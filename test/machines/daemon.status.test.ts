// The daemon status record: what channel status and the agent tool show in each phase.
import { describe, expect, it } from "vitest";
import { daemonMachine } from "../../src/machines/daemon.machine.js";
import { toDaemonStatus } from "../../src/machines/daemon.status.js";
import { createHarness } from "./support/index.js";

function harness() {
  return createHarness({
    machine: daemonMachine,
    input: { manageDaemon: true, hostname: "alice", restartBudget: 1 },
    actors: ["checkBinary", "startDaemon", "readStatus", "stopDaemon"],
    actions: ["reportReady", "reportLost", "reportUnavailable"],
  });
}

describe("daemon status record", () => {
  it("says messaging works only while the daemon runs, with its node id and address", async () => {
    const h = harness();
    await h.start();
    expect(toDaemonStatus(h.snapshot())).toMatchObject({ phase: "checking", messagingAvailable: false });
    h.fakes.resolve("checkBinary", { present: true });
    await h.flush();
    h.fakes.resolve("startDaemon", { nodeId: 7, address: "0:0000.0000.0007" });
    await h.flush();
    expect(toDaemonStatus(h.snapshot())).toEqual({
      phase: "running",
      managed: true,
      messagingAvailable: true,
      nodeId: 7,
      address: "0:0000.0000.0007",
      reason: null,
      restartsLeft: 1,
      restartBudget: 1,
      lastError: null,
    });
    h.stop();
  });

  it("explains discovery-only mode when pilotctl is missing", async () => {
    const h = harness();
    await h.start();
    h.fakes.resolve("checkBinary", { present: false });
    await h.flush();
    const status = toDaemonStatus(h.snapshot());
    expect(status.phase).toBe("absent");
    expect(status.messagingAvailable).toBe(false);
    expect(status.reason).toMatch(/install Pilot Protocol/);
    h.stop();
  });

  it("explains a failed daemon with what to do next", async () => {
    const h = harness();
    await h.start();
    h.fakes.resolve("checkBinary", { present: true });
    await h.flush();
    h.fakes.reject("startDaemon", { kind: "timeout", operation: "pilot.daemon.start", message: "no answer" });
    await h.flush();
    await h.advance(1_000);
    h.fakes.reject("startDaemon", { kind: "timeout", operation: "pilot.daemon.start", message: "no answer" });
    await h.flush();
    const status = toDaemonStatus(h.snapshot());
    expect(status).toMatchObject({ phase: "failed", restartsLeft: 0, messagingAvailable: false });
    expect(status.reason).toMatch(/kept failing.*Check the daemon log/);
    expect(status.lastError).toMatchObject({ kind: "timeout", operation: "pilot.daemon.start" });
    h.stop();
  });
});
