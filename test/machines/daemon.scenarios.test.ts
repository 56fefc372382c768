// Scenario tests of daemon supervision, each named after what it proves; time is simulated, actors are fakes.
import { describe, expect, it } from "vitest";
import { assign, createActor, setup } from "xstate";
import {
  DAEMON_DEFAULTS,
  type DaemonInput,
  type DaemonParentEvent,
  daemonMachine,
} from "../../src/machines/daemon.machine.js";
import { createFakeActors, createHarness, flushMicrotasks, TestClock } from "./support/index.js";

const ACTORS = ["checkBinary", "startDaemon", "readStatus", "stopDaemon"] as const;
const REPORTS = ["reportReady", "reportLost", "reportUnavailable"] as const;
const identity = { nodeId: 7, address: "0:0000.0000.0007" };
const up = { running: true, responsive: true, ...identity };
const down = { running: false, responsive: false, nodeId: null, address: null };
const spinning = { running: true, responsive: false, ...identity };
const unreadable = { kind: "timeout", operation: "pilot.daemon.status", message: "no answer in 20 s" };

function harness(input: Partial<DaemonInput> = {}) {
  return createHarness({
    machine: daemonMachine,
    input: {
      manageDaemon: true,
      hostname: "alice",
      restartBudget: 5,
      restartBackoff: { initialMs: 1_000, maxMs: 60_000, factor: 2 },
      stableAfterMs: 60_000,
      stopTimeoutMs: 5_000,
      watchIntervalMs: 5_000,
      ...input,
    },
    actors: ACTORS,
    actions: REPORTS,
  });
}

/** A managed daemon with a restart budget of 1 whose start times out twice: it ends in `failed`. */
async function driveToFailed(h: ReturnType<typeof harness>): Promise<void> {
  await h.start();
  h.fakes.resolve("checkBinary", { present: true });
  await h.flush();
  const timeout = { kind: "timeout", operation: "pilot.daemon.start", message: "no answer" };
  h.fakes.reject("startDaemon", timeout);
  await h.flush();
  await h.advance(1_000);
  h.fakes.reject("startDaemon", timeout);
  await h.flush();
  expect(h.snapshot().value).toBe("failed");
}

describe("daemon supervision", () => {
  it("a daemon that keeps crashing does not cause a restart storm", async () => {
    const h = harness();
    await h.start();
    h.fakes.resolve("checkBinary", { present: true });
    await h.flush();
    const startTimes: number[] = [];
    for (let crash = 0; crash < 10 && h.snapshot().matches("starting"); crash++) {
      startTimes.push(h.clock.now());
      h.fakes.resolve("startDaemon", identity);
      await h.flush();
      // The daemon dies at once; the next status read (5 s later) finds it gone.
      await h.advance(5_000);
      h.fakes.resolve("readStatus", down);
      await h.flush();
      const restart = h.timer("xstate.after.restartBackoff.daemon.crashed");
      if (restart) await h.advance(restart.remainingMs);
    }
    expect(h.snapshot().value).toBe("failed");
    // The first start and exactly `restartBudget` restarts, each 5 s (the read) plus 1, 2, 4, 8, 16 s after the last.
    expect(startTimes).toEqual([0, 6_000, 13_000, 22_000, 35_000, 56_000]);
    expect(h.snapshot().context.reason).toMatch(/kept failing/);
    // Then quiet until the one scheduled retry: nothing started in the 5 minutes before it.
    expect(h.timers().map((timer) => timer.eventType)).toEqual(["xstate.after.failedRetry.daemon.failed"]);
    await h.advance(300_000 - 1);
    expect(h.snapshot().value).toBe("failed");
    expect(h.fakes.callsOf("startDaemon")).toHaveLength(6);
    expect(h.effects.at(-1)?.name).toBe("reportUnavailable");
    h.stop();
  });

  it("a failed daemon gets a fresh round after failedRetry, exactly then, and comes back", async () => {
    const h = harness({ restartBudget: 1, failedRetryMs: 300_000 });
    await driveToFailed(h);
    expect(h.snapshot().context.reason).toMatch(/tried again in 5 min, or now with agent-registry\.refresh/);
    const failedAt = h.clock.now();

    await h.advance(299_999);
    expect(h.fakes.callsOf("startDaemon")).toHaveLength(2);
    await h.advance(1);
    expect(h.fakes.callsOf("startDaemon")).toHaveLength(3);
    expect(h.clock.now() - failedAt).toBe(300_000);
    // A fresh budget: the backoff starts again at 1 s, and the daemon that starts now is reported ready.
    expect(h.snapshot().context).toMatchObject({ restartsLeft: 1, restartAttempt: 0 });
    h.fakes.resolve("startDaemon", identity);
    await h.flush();
    expect(h.snapshot().matches("running")).toBe(true);
    expect(h.snapshot().context.reason).toBeNull();
    expect(h.effects.at(-1)?.name).toBe("reportReady");
    expect(h.timers().map((timer) => timer.eventType)).not.toContain(
      "xstate.after.failedRetry.daemon.failed",
    );
    h.stop();
  });

  it("DAEMON.RETRY restarts a failed daemon at once and cancels the scheduled retry", async () => {
    const h = harness({ restartBudget: 1 });
    await driveToFailed(h);
    await h.send({ type: "DAEMON.RETRY" });
    expect(h.fakes.callsOf("startDaemon")).toHaveLength(3);
    h.fakes.resolve("startDaemon", identity);
    await h.flush();
    expect(h.snapshot().matches("running")).toBe(true);
    // The 5-minute retry went with the failed state: nothing restarts the running daemon later.
    await h.advance(300_000);
    expect(h.fakes.callsOf("startDaemon")).toHaveLength(3);
    h.stop();
  });

  it("pilotctl installed later is found at the next absentRecheck, exactly then", async () => {
    const h = harness({ absentRecheckMs: 60_000 });
    await h.start();
    h.fakes.resolve("checkBinary", { present: false, reason: "pilotctl not found" });
    await h.flush();
    expect(h.snapshot().value).toBe("absent");
    // Not found again: absent again, and the next look is one full delay later.
    await h.advance(60_000);
    expect(h.fakes.callsOf("checkBinary")).toHaveLength(2);
    h.fakes.resolve("checkBinary", { present: false, reason: "pilotctl not found" });
    await h.flush();
    expect(h.snapshot().value).toBe("absent");
    await h.advance(59_999);
    expect(h.fakes.callsOf("checkBinary")).toHaveLength(2);
    await h.advance(1);
    expect(h.fakes.callsOf("checkBinary")).toHaveLength(3);
    h.fakes.resolve("checkBinary", { present: true });
    await h.flush();
    h.fakes.resolve("startDaemon", identity);
    await h.flush();
    expect(h.snapshot().matches("running")).toBe(true);
    expect(h.effects.map((effect) => effect.name)).toEqual([
      "reportUnavailable",
      "reportUnavailable",
      "reportReady",
    ]);
    h.stop();
  });

  it("DAEMON.RETRY looks for pilotctl at once instead of waiting for absentRecheck", async () => {
    const h = harness({ absentRecheckMs: 60_000 });
    await h.start();
    h.fakes.resolve("checkBinary", { present: false, reason: "pilotctl not found" });
    await h.flush();
    await h.advance(10_000);
    await h.send({ type: "DAEMON.RETRY" });
    expect(h.fakes.callsOf("checkBinary")).toHaveLength(2);
    h.fakes.resolve("checkBinary", { present: true });
    await h.flush();
    h.fakes.resolve("startDaemon", identity);
    await h.flush();
    expect(h.snapshot().matches("running")).toBe(true);
    expect(h.timers().map((timer) => timer.eventType)).not.toContain(
      "xstate.after.absentRecheck.daemon.absent",
    );
    h.stop();
  });

  it("the restart budget refills only after the daemon stayed up stableAfterMs", async () => {
    // The status read that starts at 5 s is answered only at upMs: "down".
    const crashAfter = async (h: ReturnType<typeof harness>, upMs: number) => {
      h.fakes.resolve("startDaemon", identity);
      await h.flush();
      await h.advance(upMs);
      h.fakes.resolve("readStatus", down);
      await h.flush();
    };
    // Up for 59.999 s each time: never stable, so two restarts exhaust a budget of 2.
    const flaky = harness({ restartBudget: 2 });
    await flaky.start();
    flaky.fakes.resolve("checkBinary", { present: true });
    await flaky.flush();
    await crashAfter(flaky, 59_999);
    await flaky.advance(1_000);
    await crashAfter(flaky, 59_999);
    await flaky.advance(2_000);
    await crashAfter(flaky, 59_999);
    expect(flaky.snapshot().value).toBe("failed");

    // Up for 60 s each time: the budget refills and the backoff starts again at 1 s.
    const stable = harness({ restartBudget: 2 });
    await stable.start();
    stable.fakes.resolve("checkBinary", { present: true });
    await stable.flush();
    for (let crash = 0; crash < 5; crash++) {
      await crashAfter(stable, 60_000);
      expect(stable.snapshot().value).toBe("crashed");
      expect(stable.timer("xstate.after.restartBackoff.daemon.crashed")?.delay).toBe(1_000);
      await stable.advance(1_000);
    }
    expect(stable.fakes.callsOf("startDaemon")).toHaveLength(6);
    flaky.stop();
    stable.stop();
  });

  it("restarts exactly when the backoff expires, not a millisecond earlier", async () => {
    const h = harness();
    await h.start();
    h.fakes.resolve("checkBinary", { present: true });
    await h.flush();
    h.fakes.reject("startDaemon", {
      kind: "timeout",
      operation: "pilot.daemon.start",
      message: "no answer in 15 s",
    });
    await h.flush();
    expect(h.snapshot().value).toBe("crashed");
    await h.advance(999);
    expect(h.fakes.callsOf("startDaemon")).toHaveLength(1);
    await h.advance(1);
    expect(h.fakes.callsOf("startDaemon")).toHaveLength(2);
    h.stop();
  });

  it("an unhealthy managed daemon is stopped before it is restarted", async () => {
    const h = harness();
    await h.start();
    h.fakes.resolve("checkBinary", { present: true });
    await h.flush();
    h.fakes.resolve("startDaemon", identity);
    await h.flush();
    await h.advance(5_000);
    h.fakes.resolve("readStatus", spinning);
    await h.flush();
    expect(h.snapshot().value).toBe("recycling");
    expect(h.snapshot().context.reason).toMatch(/not responding/);
    expect(h.fakes.pending("stopDaemon").input).toEqual({ graceMs: 5_000 });
    h.fakes.resolve("stopDaemon", { pid: 42, forced: true });
    await h.flush();
    await h.advance(1_000);
    const [stop] = h.fakes.callsOf("stopDaemon");
    const [, restart] = h.fakes.callsOf("startDaemon");
    expect(stop!.seq).toBeLessThan(restart!.seq);
    h.stop();
  });

  it("stop waits twice the grace for a hung stopDaemon, then gives up with a clear error", async () => {
    const h = harness({ stopTimeoutMs: 5_000 });
    await h.start();
    h.fakes.resolve("checkBinary", { present: true });
    await h.flush();
    h.fakes.resolve("startDaemon", identity);
    await h.flush();
    await h.send({ type: "STOP" });
    await h.advance(9_999);
    expect(h.snapshot().value).toBe("stopping");
    await h.advance(1);
    expect(h.snapshot().status).toBe("done");
    expect(h.snapshot().context.lastError).toMatchObject({ kind: "timeout", operation: "pilot.daemon.stop" });
    expect(h.fakes.callsOf("stopDaemon")[0]!.status).toBe("aborted");
  });

  it("a managed daemon's status is read every watchIntervalMs; one unreadable status is not a crash", async () => {
    const h = harness({ watchIntervalMs: 5_000, unreadableStatusLimit: 3 });
    await h.start();
    h.fakes.resolve("checkBinary", { present: true });
    await h.flush();
    h.fakes.resolve("startDaemon", identity);
    await h.flush();
    await h.advance(4_999);
    expect(h.fakes.callsOf("readStatus")).toHaveLength(0);
    await h.advance(1);
    h.fakes.reject("readStatus", unreadable);
    await h.flush();
    // Still running and still believed ready: the failure is kept for status, the next read comes 5 s later.
    expect(h.snapshot().matches({ running: "watching" })).toBe(true);
    expect(h.snapshot().context.lastError).toMatchObject({
      kind: "timeout",
      operation: "pilot.daemon.status",
    });
    expect(h.effects.at(-1)?.name).toBe("reportReady");
    await h.advance(5_000);
    h.fakes.resolve("readStatus", up);
    await h.flush();
    expect(h.snapshot().context.unreadableStatuses).toBe(0);
    expect(h.fakes.callsOf("readStatus")).toHaveLength(2);
    h.stop();
  });

  it("a managed daemon whose status cannot be read unreadableStatusLimit times in a row is recycled", async () => {
    const h = harness({ watchIntervalMs: 5_000, unreadableStatusLimit: 3 });
    await h.start();
    h.fakes.resolve("checkBinary", { present: true });
    await h.flush();
    h.fakes.resolve("startDaemon", identity);
    await h.flush();
    for (let read = 1; read <= 3; read++) {
      expect(h.snapshot().matches("running")).toBe(true);
      await h.advance(5_000);
      h.fakes.reject("readStatus", unreadable);
      await h.flush();
    }
    expect(h.snapshot().value).toBe("recycling");
    expect(h.snapshot().context.reason).toMatch(/could not be read 3 times in a row/);
    expect(h.effects.at(-1)?.name).toBe("reportLost");
    h.stop();
  });

  it("a daemon this plugin does not manage is never started or stopped", async () => {
    const h = harness({ manageDaemon: false, statusIntervalMs: 30_000 });
    await h.start();
    h.fakes.resolve("checkBinary", { present: true });
    await h.flush();
    h.fakes.resolve("readStatus", up);
    await h.flush();
    expect(h.snapshot().matches("running")).toBe(true);
    // It goes away: noticed at the next status read, then re-attached when it is back.
    await h.advance(30_000);
    h.fakes.resolve("readStatus", down);
    await h.flush();
    expect(h.snapshot().matches("detached")).toBe(true);
    await h.advance(30_000);
    h.fakes.resolve("readStatus", up);
    await h.flush();
    expect(h.snapshot().matches("running")).toBe(true);
    await h.send({ type: "STOP" });
    expect(h.snapshot().status).toBe("done");
    expect(h.fakes.callsOf("startDaemon")).toEqual([]);
    expect(h.fakes.callsOf("stopDaemon")).toEqual([]);
  });
});

describe("daemon machine inside a parent", () => {
  /** A tiny parent that records what the daemon tells it: proves sendParent reaches a real parent. */
  function parentWith(input: DaemonInput, clock = new TestClock()) {
    const fakes = createFakeActors(ACTORS);
    const parent = setup({
      types: { context: {} as { heard: DaemonParentEvent[] }, events: {} as DaemonParentEvent },
      actors: { daemon: daemonMachine.provide({ actors: fakes.logic }) },
    }).createMachine({
      context: { heard: [] },
      invoke: { id: "daemon", src: "daemon", input },
      on: { "DAEMON.*": { actions: assign({ heard: ({ context, event }) => [...context.heard, event] }) } },
    });
    const actor = createActor(parent, { clock, inspect: clock.inspect });
    const errors: unknown[] = [];
    actor.subscribe({ error: (error) => errors.push(error) });
    actor.start();
    return { actor, fakes, errors, clock };
  }

  it("pilotctl missing means discovery-only, and the parent is told why", async () => {
    const { actor, fakes, errors } = parentWith({ manageDaemon: true, hostname: "alice" });
    fakes.resolve("checkBinary", {
      present: false,
      reason: "pilotctl not found on PATH: install Pilot Protocol",
    });
    await flushMicrotasks();
    expect(actor.getSnapshot().context.heard).toEqual([
      { type: "DAEMON.UNAVAILABLE", reason: "pilotctl not found on PATH: install Pilot Protocol" },
    ]);
    expect(errors).toEqual([]);
    actor.stop();
  });

  it("the parent hears READY with the node id, then LOST when the daemon exits", async () => {
    const { actor, fakes, clock } = parentWith({ manageDaemon: true, hostname: "alice" });
    fakes.resolve("checkBinary", { present: true });
    await flushMicrotasks();
    expect(fakes.pending("startDaemon").input).toEqual({ hostname: "alice" });
    fakes.resolve("startDaemon", identity);
    await flushMicrotasks();
    clock.advance(DAEMON_DEFAULTS.watchIntervalMs);
    fakes.resolve("readStatus", down);
    await flushMicrotasks();
    expect(actor.getSnapshot().context.heard).toEqual([
      { type: "DAEMON.READY", ...identity },
      { type: "DAEMON.LOST", reason: "Pilot daemon exited" },
    ]);
    actor.stop();
  });
});

describe("daemon supervision: sends that keep failing (DAEMON.SUSPECT)", () => {
  const suspect = { type: "DAEMON.SUSPECT", reason: "3 sends to trusted peers failed" } as const;
  const suspectBackoff = { initialMs: 60_000, maxMs: 240_000, factor: 2 };

  async function running(h: ReturnType<typeof harness>) {
    await h.start();
    h.fakes.resolve("checkBinary", { present: true });
    await h.flush();
    h.fakes.resolve("startDaemon", identity);
    await h.flush();
    expect(h.snapshot().matches("running")).toBe(true);
  }

  /** Answers every status read with `up` while time passes, so the daemon stays running. */
  async function keepUp(h: ReturnType<typeof harness>, ms: number) {
    const end = h.clock.now() + ms;
    while (h.clock.now() < end) {
      const next = Math.min(5_000, end - h.clock.now());
      await h.advance(next);
      if (h.fakes.inFlight().some((call) => call.src === "readStatus")) {
        h.fakes.resolve("readStatus", up);
        await h.flush();
      }
    }
  }

  it("a managed daemon past its hold is restarted: stopped, then started again after the backoff", async () => {
    const h = harness({ suspectBackoff });
    await running(h);
    await keepUp(h, 60_000);
    await h.send(suspect);
    expect(h.snapshot().value).toBe("recycling");
    expect(h.snapshot().context.reason).toMatch(/3 sends to trusted peers failed; restarting/);
    expect(h.effects.at(-1)?.name).toBe("reportLost");
    h.fakes.resolve("stopDaemon", { pid: 42 });
    await h.flush();
    await h.advance(1_000);
    expect(h.fakes.callsOf("startDaemon")).toHaveLength(2);
    h.stop();
  });

  it("suspicion within the hold changes nothing, and the hold doubles after each restart for suspicion", async () => {
    const h = harness({ suspectBackoff });
    await running(h);
    await keepUp(h, 59_000);
    await h.send(suspect);
    expect(h.snapshot().matches("running")).toBe(true);
    await keepUp(h, 1_000);
    await h.send(suspect);
    expect(h.snapshot().value).toBe("recycling");
    h.fakes.resolve("stopDaemon", { pid: 42 });
    await h.flush();
    await h.advance(1_000);
    h.fakes.resolve("startDaemon", identity);
    await h.flush();
    // The second hold is 120 s: at 119 s suspicion is still ignored.
    await keepUp(h, 119_000);
    await h.send(suspect);
    expect(h.snapshot().matches("running")).toBe(true);
    await keepUp(h, 1_000);
    await h.send(suspect);
    expect(h.snapshot().value).toBe("recycling");
    expect(h.snapshot().context.suspectRestarts).toBe(2);
    h.stop();
  });

  it("a daemon this plugin only observes is never restarted for suspicion", async () => {
    const h = harness({ manageDaemon: false, suspectBackoff, statusIntervalMs: 30_000 });
    await h.start();
    h.fakes.resolve("checkBinary", { present: true });
    await h.flush();
    h.fakes.resolve("readStatus", up);
    await h.flush();
    await keepUp(h, 600_000);
    await h.send(suspect);
    expect(h.snapshot().matches("running")).toBe(true);
    expect(h.fakes.callsOf("stopDaemon")).toHaveLength(0);
    h.stop();
  });

  it("a daemon pilotctl did not start cannot be stopped: status says so, and no second daemon is started", async () => {
    const h = harness({ suspectBackoff, restartBudget: 1 });
    await running(h);
    await keepUp(h, 60_000);
    await h.send(suspect);
    const foreign = {
      kind: "conflict",
      operation: "pilot.daemon.stop",
      message: "Pilot daemon is running but was not started by pilotctl",
    };
    h.fakes.reject("stopDaemon", foreign);
    await h.flush();
    expect(h.snapshot().value).toBe("crashed");
    expect(h.snapshot().context.reason).toBe(foreign.message);
    expect(h.snapshot().context.lastError).toEqual(foreign);
    h.stop();
  });
});
