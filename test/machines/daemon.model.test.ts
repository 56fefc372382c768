// Model-based tests of the daemon machine: every shortest path (and every simple path of a small budget) from the
// machine's own graph, replayed against the real machine with fake actors and a simulated clock, with invariants
// written independently of the machine checked after every step.
import { describe, expect, it } from "vitest";
import { type AnyMachineSnapshot, fromCallback } from "xstate";
import { getShortestPaths, getSimplePaths } from "xstate/graph";
import {
  type DaemonEvent,
  type DaemonInput,
  daemonMachine,
  type WatchDaemonInput,
} from "../../src/machines/daemon.machine.js";
import {
  describePath,
  eventsWithPayloads,
  getTransitionPaths,
  type Harness,
  replayPath,
} from "./support/index.js";

const ACTORS = ["checkBinary", "startDaemon", "readStatus", "stopDaemon"] as const;
const REPORTS = ["reportReady", "reportLost", "reportUnavailable"] as const;
// The graph is finite (budget and backoff are bounded); an unbounded counter fails fast instead of hanging.
const GRAPH_LIMIT = 5_000;
const backoff = { initialMs: 1_000, maxMs: 4_000, factor: 2 };

const err = (kind: string) => ({ kind, operation: "pilot", message: `${kind} from the fake` });
const identity = { nodeId: 7, address: "0:0000.0000.0007" };

const payloads = eventsWithPayloads([
  { type: "xstate.done.actor.checkBinary", output: { present: true } },
  { type: "xstate.done.actor.checkBinary", output: { present: false, reason: "pilotctl not on PATH" } },
  { type: "xstate.error.actor.checkBinary", error: err("internal") },
  { type: "xstate.done.actor.startDaemon", output: identity },
  { type: "xstate.error.actor.startDaemon", error: err("timeout") },
  { type: "xstate.done.actor.readStatus", output: { running: true, responsive: true, ...identity } },
  {
    type: "xstate.done.actor.readStatus",
    output: { running: false, responsive: false, nodeId: null, address: null },
  },
  { type: "xstate.error.actor.readStatus", error: err("not_running") },
  { type: "xstate.done.actor.stopDaemon", output: { pid: 42 } },
  { type: "xstate.error.actor.stopDaemon", error: err("not_running") },
  { type: "DAEMON.EXITED", code: 1 },
  { type: "DAEMON.UNHEALTHY", reason: "cpu spin" },
]);

// Reason and error texts vary by path but no guard reads them: the lossy projection keeps simple paths finite.
const behaviour = (snapshot: AnyMachineSnapshot) => ({
  value: snapshot.value,
  status: snapshot.status,
  restartsLeft: snapshot.context.restartsLeft,
  restartAttempt: snapshot.context.restartAttempt,
  nodeId: snapshot.context.nodeId,
});

/** Counts live watchDaemon actors so an invariant can say "exactly one watcher while running". */
function watcher() {
  const state = { active: 0, started: 0 };
  const logic = fromCallback<DaemonEvent, WatchDaemonInput>(() => {
    state.active++;
    state.started++;
    return () => {
      state.active--;
    };
  });
  return { state, logic };
}

type Timing = Required<
  Pick<
    DaemonInput,
    "stableAfterMs" | "statusIntervalMs" | "stopTimeoutMs" | "absentRecheckMs" | "failedRetryMs"
  >
>;

function expectedDelay(input: Timing) {
  return (eventType: string, before: AnyMachineSnapshot): number | undefined => {
    const delay = eventType.split(".")[2];
    if (delay === "restartBackoff") {
      return Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** before.context.restartAttempt);
    }
    if (delay === "stableAfter") return input.stableAfterMs;
    if (delay === "statusInterval") return input.statusIntervalMs;
    if (delay === "stopDeadline") return input.stopTimeoutMs * 2;
    if (delay === "absentRecheck") return input.absentRecheckMs;
    if (delay === "failedRetry") return input.failedRetryMs;
    return undefined;
  };
}

type DaemonHarness = Harness<typeof daemonMachine>;

function invariants(
  input: DaemonInput & { restartBudget: number },
  watch: ReturnType<typeof watcher>["state"],
) {
  let startsAtLastRefill = 0;
  return (h: DaemonHarness, step: { event: { type: string } }) => {
    const snapshot = h.snapshot();
    const context = snapshot.context;
    const inFlight = h.fakes.inFlight();
    const timers = h.timers().map((timer) => timer.eventType.split(".")[2]);
    const starts = h.fakes.callsOf("startDaemon").length;

    // One pilotctl call at a time.
    expect(inFlight.length).toBeLessThanOrEqual(1);
    expect(context.restartsLeft).toBeGreaterThanOrEqual(0);
    expect(context.restartsLeft).toBeLessThanOrEqual(input.restartBudget);

    // Exactly one watcher while running, none otherwise.
    expect(watch.active).toBe(snapshot.matches("running") ? 1 : 0);

    // A restart is pending only in crashed, only one, and only with budget left.
    const restartTimers = timers.filter((delay) => delay === "restartBackoff");
    if (snapshot.matches("crashed")) {
      expect(restartTimers).toHaveLength(1);
      expect(context.restartsLeft).toBeGreaterThan(0);
    } else {
      expect(restartTimers).toHaveLength(0);
    }

    // absent and failed wait for exactly one thing, their own retry; stopped is quiet: nothing in flight or scheduled.
    if (snapshot.matches("absent")) expect(timers).toEqual(["absentRecheck"]);
    if (snapshot.matches("failed")) expect(timers).toEqual(["failedRetry"]);
    if (snapshot.matches("absent") || snapshot.matches("failed") || snapshot.status === "done") {
      expect(inFlight).toEqual([]);
    }
    if (snapshot.status === "done") expect(timers).toEqual([]);
    // A retry timer never outlives its state (a stale one would restart a daemon that is running or stopping).
    if (!snapshot.matches("absent")) expect(timers).not.toContain("absentRecheck");
    if (!snapshot.matches("failed")) expect(timers).not.toContain("failedRetry");

    // The timed retries: absent looks for pilotctl again (it may have been installed); failed starts again.
    if (step.event.type.includes(".absentRecheck.")) expect(snapshot.value).toBe("checking");
    if (step.event.type.includes(".failedRetry.")) expect(snapshot.matches("starting")).toBe(true);

    // A retry (operator or timed) is a fresh round: full budget, backoff from the start.
    if (/\.(absentRecheck|failedRetry)\./.test(step.event.type) || step.event.type === "DAEMON.RETRY") {
      if (snapshot.matches("checking") || snapshot.matches("starting")) {
        expect(context.restartsLeft).toBe(input.restartBudget);
        expect(context.restartAttempt).toBe(0);
      }
    }

    // No restart without budget: since the budget was last refilled, at most the first start plus `budget` restarts.
    // Refills: the daemon stayed up, an operator retry, or the timed retry out of absent or failed.
    if (
      /\.(stableAfter|absentRecheck|failedRetry)\./.test(step.event.type) ||
      step.event.type === "DAEMON.RETRY"
    ) {
      startsAtLastRefill = starts - (snapshot.matches("starting") ? 1 : 0);
    }
    expect(starts - startsAtLastRefill).toBeLessThanOrEqual(input.restartBudget + 1);

    // A daemon this plugin does not manage is never started or stopped.
    if (!input.manageDaemon) {
      expect(h.fakes.callsOf("startDaemon")).toHaveLength(0);
      expect(h.fakes.callsOf("stopDaemon")).toHaveLength(0);
    }

    // What the parent heard last matches where the machine is.
    const lastReport = h.effects.at(-1)?.name;
    if (snapshot.matches("running")) expect(lastReport).toBe("reportReady");
    if (snapshot.matches("absent") || snapshot.matches("failed") || snapshot.matches("detached")) {
      expect(lastReport).toBe("reportUnavailable");
    }
    // The parent never believes a daemon is ready while it is not (except while stopping: it asked for that).
    if (!snapshot.matches("running") && !snapshot.matches("stopping") && snapshot.status !== "done") {
      expect(lastReport).not.toBe("reportReady");
    }
  };
}

const modes = [
  {
    name: "managed",
    input: { manageDaemon: true, hostname: "alice", restartBudget: 2, restartBackoff: backoff },
    timing: {
      stableAfterMs: 60_000,
      statusIntervalMs: 30_000,
      stopTimeoutMs: 5_000,
      absentRecheckMs: 45_000,
      failedRetryMs: 300_000,
    },
  },
  {
    // stableAfter < statusInterval: while running, the (no-op) refill fires before the status read, never between.
    name: "observe-only",
    input: { manageDaemon: false, hostname: "alice", restartBudget: 2, restartBackoff: backoff },
    timing: {
      stableAfterMs: 20_000,
      statusIntervalMs: 30_000,
      stopTimeoutMs: 5_000,
      absentRecheckMs: 45_000,
      failedRetryMs: 300_000,
    },
  },
] as const;

for (const mode of modes) {
  const input = { ...mode.input, ...mode.timing };

  async function replay(path: Parameters<typeof replayPath>[0], project?: typeof behaviour) {
    const watch = watcher();
    const harness = await replayPath(path, {
      machine: daemonMachine.provide({ actors: { watchDaemon: watch.logic } }),
      input,
      actors: ACTORS,
      actions: REPORTS,
      invariants: invariants(input, watch.state),
      expectDelay: expectedDelay(mode.timing),
      ...(project ? { project } : {}),
    });
    harness.stop();
    expect(watch.state.active).toBe(0);
  }

  describe(`daemon machine (${mode.name}): shortest paths`, () => {
    const paths = getShortestPaths(daemonMachine, { input, events: payloads, limit: GRAPH_LIMIT } as never);
    it("covers every reachable state", () => {
      const values = new Set(paths.map((path) => JSON.stringify(path.state.value)));
      const expected = mode.input.manageDaemon
        ? ["checking", "absent", "crashed", "recycling", "failed", "stopping", "stopped"]
        : ["checking", "absent", "stopped"];
      for (const value of expected) expect(values).toContain(JSON.stringify(value));
      expect([...values].some((value) => value.includes("running"))).toBe(true);
    });
    for (const path of paths) {
      it(describePath(path), () => replay(path));
    }
  });

  // Shortest paths reach every state but skip the retry edges out of absent and failed: their targets (checking,
  // starting) are reached sooner from the start. These paths end with each of those edges. Not every edge of the
  // graph: the graph does not know which of two pending timers fires first, so some of its edges cannot happen.
  describe(`daemon machine (${mode.name}): every retry out of absent and failed`, () => {
    const paths = getTransitionPaths(daemonMachine, {
      input,
      events: payloads,
      limit: GRAPH_LIMIT,
      serializeState: (snapshot: AnyMachineSnapshot) =>
        JSON.stringify({ value: snapshot.value, context: snapshot.context }),
    } as never).filter((path) => {
      const before = path.steps.at(-2)?.state;
      return before !== undefined && (before.matches("absent") || before.matches("failed"));
    });
    it("includes the timed and the operator's retries", () => {
      const last = new Set(paths.map((path) => path.steps.at(-1)!.event.type));
      expect(last).toContain("xstate.after.absentRecheck.daemon.absent");
      expect(last).toContain("DAEMON.RETRY");
      if (mode.input.manageDaemon) expect(last).toContain("xstate.after.failedRetry.daemon.failed");
    });
    it(`replays all ${paths.length} paths with the invariants holding at every step`, async () => {
      for (const path of paths) await replay(path);
    }, 120_000);
  });

  describe(`daemon machine (${mode.name}, budget 1): simple paths`, () => {
    const small = { ...input, restartBudget: 1 };
    const paths = getSimplePaths(daemonMachine, {
      input: small,
      events: payloads,
      limit: GRAPH_LIMIT,
      serializeState: (snapshot: AnyMachineSnapshot) => JSON.stringify(behaviour(snapshot)),
    } as never);
    it(`replays all ${paths.length} simple paths with the invariants holding at every step`, async () => {
      for (const path of paths) {
        const watch = watcher();
        const harness = await replayPath(path, {
          machine: daemonMachine.provide({ actors: { watchDaemon: watch.logic } }),
          input: small,
          actors: ACTORS,
          actions: REPORTS,
          invariants: invariants(small, watch.state),
          expectDelay: expectedDelay(mode.timing),
          project: behaviour,
        });
        harness.stop();
      }
    }, 120_000);
  });
}
