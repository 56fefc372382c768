// Model-based tests of the daemon machine: the shortest path to every state and a path through every edge of the
// machine's own graph, replayed against the real machine with fake actors and a simulated clock, with invariants
// written independently of the machine checked after every step.
import { describe, expect, it } from "vitest";
import type { AnyMachineSnapshot } from "xstate";
import { getShortestPaths } from "xstate/graph";
import { type DaemonInput, type DaemonStatus, daemonMachine } from "../../src/machines/daemon.machine.js";
import {
  type AnyPath,
  eventsWithPayloads,
  getTransitionPaths,
  graphSize,
  type Harness,
  type ReplayReport,
  replayEach,
  replayPath,
} from "./support/index.js";

const ACTORS = ["checkBinary", "startDaemon", "readStatus", "stopDaemon"] as const;
const REPORTS = ["reportReady", "reportLost", "reportUnavailable"] as const;
// The graph is finite (budget and backoff are bounded); an unbounded counter fails fast instead of hanging.
const GRAPH_LIMIT = 5_000;
const backoff = { initialMs: 1_000, maxMs: 4_000, factor: 2 };
// A fixed hold of 4 s, before the first status read: a growing hold would make most paths to an armed daemon
// impossible in time (its growth is checked in daemon.scenarios.test.ts).
const suspectBackoff = { initialMs: 4_000, maxMs: 4_000, factor: 1 };
// The every-edge paths use a projection without suspectArmed (see `behaviour`), so there the hold never ends within
// a path: suspicion is a no-op edge, and its restarts are covered by the shortest paths over full snapshots.
const longHold = { initialMs: 3_600_000, maxMs: 3_600_000, factor: 1 };

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
  { type: "xstate.done.actor.readStatus", output: { running: true, responsive: false, ...identity } },
  { type: "xstate.error.actor.readStatus", error: err("not_running") },
  { type: "xstate.done.actor.stopDaemon", output: { pid: 42 } },
  { type: "xstate.error.actor.stopDaemon", error: err("not_running") },
  // `daemon stop` on a daemon pilotctl did not start: it keeps running.
  { type: "xstate.error.actor.stopDaemon", error: err("conflict") },
  { type: "DAEMON.SUSPECT", reason: "sends to trusted peers keep failing" },
]);

// Reason and error texts vary by path but no guard reads them: the lossy projection keeps simple paths finite.
const behaviour = (snapshot: AnyMachineSnapshot) => ({
  value: snapshot.value,
  status: snapshot.status,
  restartsLeft: snapshot.context.restartsLeft,
  restartAttempt: snapshot.context.restartAttempt,
  nodeId: snapshot.context.nodeId,
  unreadableStatuses: snapshot.context.unreadableStatuses,
  suspectRestarts: snapshot.context.suspectRestarts,
  // Not suspectArmed: the hold ends before the first status read, so nearly every path through running would need
  // it fired first; the shortest paths (full snapshots) cover the armed daemon and its restart for suspicion.
});

type Timing = Required<
  Pick<
    DaemonInput,
    | "stableAfterMs"
    | "watchIntervalMs"
    | "statusIntervalMs"
    | "stopTimeoutMs"
    | "absentRecheckMs"
    | "failedRetryMs"
  >
>;

function expectedDelay(input: Timing & { manageDaemon: boolean; suspectBackoff: typeof suspectBackoff }) {
  return (eventType: string, before: AnyMachineSnapshot): number | undefined => {
    const delay = eventType.split(".")[2];
    if (delay === "restartBackoff") {
      return Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** before.context.restartAttempt);
    }
    if (delay === "stableAfter") return input.stableAfterMs;
    if (delay === "statusInterval") return input.statusIntervalMs;
    // A daemon we run is read often; one we only observe at its own heartbeat.
    if (delay === "watchInterval") return input.manageDaemon ? input.watchIntervalMs : input.statusIntervalMs;
    if (delay === "stopDeadline") return input.stopTimeoutMs * 2;
    if (delay === "absentRecheck") return input.absentRecheckMs;
    if (delay === "failedRetry") return input.failedRetryMs;
    if (delay === "suspectHold") {
      return Math.min(
        input.suspectBackoff.maxMs,
        input.suspectBackoff.initialMs * input.suspectBackoff.factor ** before.context.suspectRestarts,
      );
    }
    return undefined;
  };
}

type DaemonHarness = Harness<typeof daemonMachine>;

function invariants(input: DaemonInput & { restartBudget: number; unreadableStatusLimit: number }) {
  let startsAtLastRefill = 0;
  let wasRunning = false;
  let armedBefore = false;
  let lastSuspectRestartAt: number | null = null;
  let restartsForSuspicion = 0;
  return (h: DaemonHarness, step: { event: { type: string } }) => {
    const snapshot = h.snapshot();
    // Suspicion restarts a daemon we run only once it has run its hold; otherwise it changes nothing.
    if (step.event.type === "DAEMON.SUSPECT" && wasRunning) {
      if (input.manageDaemon && armedBefore) {
        expect(snapshot.value).toBe("recycling");
        const now = h.clock.now();
        // Never two restarts for suspicion closer than the first hold.
        if (lastSuspectRestartAt !== null) {
          expect(now - lastSuspectRestartAt).toBeGreaterThanOrEqual(suspectBackoff.initialMs);
        }
        lastSuspectRestartAt = now;
        restartsForSuspicion++;
        expect(h.fakes.callsOf("stopDaemon").at(-1)).toBeDefined();
      } else {
        expect(snapshot.matches("running")).toBe(true);
      }
    }
    // A daemon that was just (re)started is never restarted for suspicion before its hold.
    if (snapshot.matches("running") && !wasRunning) expect(snapshot.context.suspectArmed).toBe(false);
    armedBefore = snapshot.matches("running") && snapshot.context.suspectArmed;
    if (!input.manageDaemon) expect(restartsForSuspicion).toBe(0);
    const readWhileRunning = wasRunning && step.event.type === "xstate.done.actor.readStatus";
    const readFailedWhileRunning = wasRunning && step.event.type === "xstate.error.actor.readStatus";
    const isRunning = snapshot.matches("running");

    // What a status read of a running daemon leads to, from the status alone.
    if (readWhileRunning) {
      const status = (step.event as unknown as { output: DaemonStatus }).output;
      const usable = status.running && status.responsive;
      if (usable) expect(isRunning).toBe(true);
      else if (!input.manageDaemon) expect(snapshot.matches("detached")).toBe(true);
      else if (!status.running) expect(["crashed", "failed"]).toContain(snapshot.value);
      else expect(snapshot.value).toBe("recycling");
    }
    // A failed read: observe-only gives up on the daemon; managed tolerates it until the limit.
    if (readFailedWhileRunning) {
      if (!input.manageDaemon) expect(snapshot.matches("detached")).toBe(true);
      else expect(isRunning || snapshot.matches("recycling")).toBe(true);
    }
    // A (re)started or re-attached daemon starts with a clean slate of failed reads.
    if (isRunning && !wasRunning) expect(snapshot.context.unreadableStatuses).toBe(0);
    wasRunning = isRunning;

    const context = snapshot.context;
    const inFlight = h.fakes.inFlight();
    const timers = h.timers().map((timer) => timer.eventType.split(".")[2]);
    const starts = h.fakes.callsOf("startDaemon").length;

    // One pilotctl call at a time.
    expect(inFlight.length).toBeLessThanOrEqual(1);
    expect(context.restartsLeft).toBeGreaterThanOrEqual(0);
    expect(context.restartsLeft).toBeLessThanOrEqual(input.restartBudget);

    // A running daemon is always being watched: either the next status read is scheduled or one is in flight;
    // the watch timer never outlives running.
    const watchTimers = timers.filter((delay) => delay === "watchInterval");
    if (snapshot.matches({ running: "watching" })) expect(watchTimers).toHaveLength(1);
    else expect(watchTimers).toHaveLength(0);
    if (snapshot.matches({ running: "reading" })) {
      expect(inFlight.map((call) => call.src)).toEqual(["readStatus"]);
    }
    // Failed reads of a daemon we run are tolerated only up to the limit, then it is recycled.
    expect(context.unreadableStatuses).toBeLessThan(input.unreadableStatusLimit);
    if (!input.manageDaemon) expect(context.unreadableStatuses).toBe(0);

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

    // A stop that met a daemon pilotctl did not start leaves it running: status says why, in plain words.
    if (step.event.type === "xstate.error.actor.stopDaemon" && snapshot.matches("crashed")) {
      const error = (step.event as unknown as { error: { kind: string } }).error;
      if (error.kind === "conflict") expect(snapshot.context.reason).toBe("conflict from the fake");
    }

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
    input: {
      manageDaemon: true,
      hostname: "alice",
      restartBudget: 2,
      restartBackoff: backoff,
      suspectBackoff,
      unreadableStatusLimit: 2,
    },
    // The refill falls between the first and the second status read, so paths cover a read before and after it.
    timing: {
      stableAfterMs: 6_000,
      watchIntervalMs: 5_000,
      statusIntervalMs: 30_000,
      stopTimeoutMs: 5_000,
      absentRecheckMs: 45_000,
      failedRetryMs: 300_000,
    },
  },
  {
    // stableAfter < statusInterval: while running, the (no-op) refill fires before the status read, never between.
    name: "observe-only",
    input: {
      manageDaemon: false,
      hostname: "alice",
      restartBudget: 2,
      restartBackoff: backoff,
      suspectBackoff,
      unreadableStatusLimit: 2,
    },
    timing: {
      stableAfterMs: 20_000,
      watchIntervalMs: 5_000,
      statusIntervalMs: 30_000,
      stopTimeoutMs: 5_000,
      absentRecheckMs: 45_000,
      failedRetryMs: 300_000,
    },
  },
] as const;

/** Timer orders the graph offers but time rules out (see TimerOrderError); anything else skipped is a bug. */
const IMPOSSIBLE_ORDERS = new Set([
  // Managed: the next status read (5 s) always comes before the budget refill (6 s) of a daemon just started.
  "stableAfter before watchInterval",
  // Observe-only: the refill (20 s) always comes before the first status read (30 s).
  "watchInterval before stableAfter",
  // A refill with a full budget changes nothing: it already fired while the path waited for a later timer.
  "stableAfter already fired",
]);
/** Orders of the suspicion hold (4 s after every start) that time rules out. */
const IMPOSSIBLE_HOLD_ORDERS: Record<string, readonly string[]> = {
  // Managed: the hold ends before the first status read (5 s) and the refill (6 s); a path that waited longer
  // finds it already fired.
  managed: [
    "suspectHold before watchInterval",
    "suspectHold before stableAfter",
    "suspectHold already fired",
  ],
  // Observe-only: the same, and the hold arms nothing there, so a path may find it already fired.
  "observe-only": [
    "suspectHold before watchInterval",
    "suspectHold before stableAfter",
    "suspectHold already fired",
  ],
  // The long hold of the every-edge paths: anything else running schedules comes first.
  long: ["watchInterval before suspectHold", "stableAfter before suspectHold"],
};

const delayName = (eventType: string) => eventType.split(".")[2];

function expectOnlyImpossibleOrders(report: ReplayReport, hold: string) {
  const impossible = new Set([...IMPOSSIBLE_ORDERS, ...(IMPOSSIBLE_HOLD_ORDERS[hold] ?? [])]);
  const orders = new Set(
    report.skipped.map((s) =>
      s.blockedBy === null
        ? `${delayName(s.fired)} already fired`
        : `${delayName(s.blockedBy)} before ${delayName(s.fired)}`,
    ),
  );
  for (const order of orders) expect(impossible, `skipped paths: ${order}`).toContain(order);
}

for (const mode of modes) {
  const input = { ...mode.input, ...mode.timing };
  const edgeInput = { ...input, suspectBackoff: longHold };
  const traversal = { input, events: payloads, limit: GRAPH_LIMIT };

  const replayWith =
    (options: { input: typeof input; project?: typeof behaviour }) => async (path: AnyPath) => {
      const harness = await replayPath(path, {
        machine: daemonMachine,
        input: options.input,
        actors: ACTORS,
        actions: REPORTS,
        invariants: invariants(options.input),
        expectDelay: expectedDelay(options.input),
        ...(options.project ? { project: options.project } : {}),
      });
      harness.stop();
    };

  describe(`daemon machine (${mode.name}): shortest paths`, () => {
    const paths = getShortestPaths(daemonMachine, traversal as never);
    it("covers every reachable state", () => {
      const values = new Set(paths.map((path) => JSON.stringify(path.state.value)));
      const expected = mode.input.manageDaemon
        ? ["checking", "absent", "crashed", "recycling", "failed", "stopping", "stopped"]
        : ["checking", "absent", "stopped"];
      for (const value of expected) expect(values).toContain(JSON.stringify(value));
      expect([...values].some((value) => value.includes("running"))).toBe(true);
      expect(paths).toHaveLength(graphSize(daemonMachine, traversal as never).states);
    });
    it("reaches a restart for suspicion only when managed, and only from a daemon past its hold", () => {
      const bySuspicion = paths.filter((path) => path.steps.at(-1)?.event.type === "DAEMON.SUSPECT");
      const restarted = bySuspicion.filter((path) => path.state.matches("recycling"));
      if (mode.input.manageDaemon) expect(restarted.length).toBeGreaterThan(0);
      else expect(restarted).toEqual([]);
      for (const path of restarted) expect(path.steps.at(-2)?.state.context.suspectArmed).toBe(true);
    });
    it(`replays the shortest path to each of the ${paths.length} states`, async () => {
      const report = await replayEach(paths, replayWith({ input }));
      expectOnlyImpossibleOrders(report, mode.name);
      expect(report.replayed + report.skipped.length).toBe(paths.length);
    });
  });

  // Shortest paths reach every state but not every transition: e.g. the retry edges out of absent and failed, whose
  // targets (checking, starting) are reached sooner from the start. One path per edge of the graph (shortest path
  // to its source, then the edge), over the behaviour projection so the graph stays small.
  describe(`daemon machine (${mode.name}): every edge`, () => {
    const edges = {
      ...traversal,
      input: edgeInput,
      serializeState: (snapshot: AnyMachineSnapshot) => JSON.stringify(behaviour(snapshot)),
    };
    const paths = getTransitionPaths(daemonMachine, edges as never);
    it("has one path per edge, including the timed and the operator's retries", () => {
      expect(paths).toHaveLength(graphSize(daemonMachine, edges as never).edges);
      const retries = new Set(
        paths
          .filter((path) => {
            const before = path.steps.at(-2)?.state;
            return before !== undefined && (before.matches("absent") || before.matches("failed"));
          })
          .map((path) => path.steps.at(-1)!.event.type),
      );
      expect(retries).toContain("xstate.after.absentRecheck.daemon.absent");
      expect(retries).toContain("DAEMON.RETRY");
      if (mode.input.manageDaemon) expect(retries).toContain("xstate.after.failedRetry.daemon.failed");
    });
    it(`replays a path through each of the ${paths.length} edges with the invariants holding at every step`, async () => {
      const report = await replayEach(paths, replayWith({ input: edgeInput, project: behaviour }));
      expectOnlyImpossibleOrders(report, "long");
      expect(report.replayed + report.skipped.length).toBe(paths.length);
      // Most edges are possible in time; a drop here means the timers changed, not the behaviour. The long hold's
      // own edges are impossible by construction (see longHold) and do not count.
      const otherSkips = report.skipped.filter((s) => delayName(s.fired) !== "suspectHold").length;
      expect(report.replayed).toBeGreaterThan(otherSkips * 4);
    });
  });
}
