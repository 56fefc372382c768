// Model-based tests of the poll machine: shortest paths (full context) and simple paths (behavioural projection)
// from its graph, replayed with a fake runCycle and a simulated clock; invariants checked after every step.
import { describe, expect, it } from "vitest";
import type { AnyMachineSnapshot } from "xstate";
import { getShortestPaths, getSimplePaths } from "xstate/graph";
import { type PollSummary, pollMachine } from "../../src/machines/poll.machine.js";
import {
  eventsWithPayloads,
  graphSize,
  type Harness,
  randomWalks,
  replayEach,
  replayPath,
} from "./support/index.js";

const GRAPH_LIMIT = 5_000;
const input = { pollIntervalMs: 15_000, errorBackoff: { initialMs: 1_000, maxMs: 2_000, factor: 2 } };
const summary: PollSummary = {
  trigger: "start",
  dispatched: 1,
  refused: 0,
  deferred: 0,
  pending: [{ nodeId: 3, justification: "hello", receivedAt: 1_000 }],
  trusted: [4],
};

const payloads = eventsWithPayloads([
  { type: "xstate.done.actor.runCycle", output: summary },
  {
    type: "xstate.error.actor.runCycle",
    error: { kind: "timeout", operation: "poll", message: "inbox read timed out" },
  },
]);

const behaviour = (snapshot: AnyMachineSnapshot) => ({
  value: snapshot.value,
  status: snapshot.status,
  wakePending: snapshot.context.wakePending,
  consecutiveErrors: snapshot.context.consecutiveErrors,
});

type PollHarness = Harness<typeof pollMachine>;

/** Failed cycles since the last successful one, read from what the fake saw (not from the machine). */
function trailingFailures(h: PollHarness): number {
  let failures = 0;
  for (const call of [...h.fakes.callsOf("runCycle")].reverse()) {
    if (call.status === "rejected") failures++;
    else if (call.status === "resolved") break;
  }
  return failures;
}

function expectedDelay(h: () => PollHarness) {
  return (eventType: string): number | undefined => {
    const delay = eventType.split(".")[2];
    if (delay === "pollInterval") return input.pollIntervalMs;
    if (delay === "errorBackoff") {
      const { initialMs, maxMs, factor } = input.errorBackoff;
      return Math.min(maxMs, initialMs * factor ** (trailingFailures(h()) - 1));
    }
    return undefined;
  };
}

function invariants() {
  let callsAtLastWake = -1;
  let callsBeforeStep = 0;
  return (h: PollHarness, step: { event: { type: string } }) => {
    const snapshot = h.snapshot();
    const calls = h.fakes.callsOf("runCycle");
    const inFlight = h.fakes.inFlight();
    const timers = h.timers().map((timer) => timer.eventType.split(".")[2]);

    // Never two cycles at once; exactly one while polling.
    expect(inFlight.length).toBe(snapshot.matches("polling") ? 1 : 0);
    // One timer of the right kind per state, none while a cycle runs or after stop.
    if (snapshot.matches("waiting")) expect(timers).toEqual(["pollInterval"]);
    else if (snapshot.matches("backoff")) expect(timers).toEqual(["errorBackoff"]);
    else expect(timers).toEqual([]);

    // A wake-up is never lost: by the time the loop waits again, a cycle started after the last wake-up.
    if (step.event.type === "INBOX.WAKE") callsAtLastWake = callsBeforeStep;
    if (snapshot.matches("waiting")) expect(calls.length).toBeGreaterThan(callsAtLastWake);
    callsBeforeStep = calls.length;

    // The parent hears about every finished cycle exactly once.
    const done = h.effects.filter((effect) => effect.name === "reportCycleDone").length;
    const failed = h.effects.filter((effect) => effect.name === "reportCycleFailed").length;
    expect(done).toBe(calls.filter((call) => call.status === "resolved").length);
    expect(failed).toBe(calls.filter((call) => call.status === "rejected").length);

    if (snapshot.status === "done") expect(inFlight).toEqual([]);
  };
}

async function replay(path: Parameters<typeof replayPath>[0], project?: typeof behaviour) {
  let harness: PollHarness | undefined;
  const check = invariants();
  const result = await replayPath(path, {
    machine: pollMachine,
    input,
    actors: ["runCycle"],
    actions: ["reportCycleDone", "reportCycleFailed"],
    invariants: (h, step) => {
      harness = h;
      check(h, step);
    },
    expectDelay: expectedDelay(() => harness!),
    ...(project ? { project } : {}),
  });
  result.stop();
}

describe("poll machine: shortest paths", () => {
  const traversal = { input, events: payloads, limit: GRAPH_LIMIT };
  const paths = getShortestPaths(pollMachine, traversal as never);
  it("reaches waiting, polling, backoff and stopped, one path per state of the graph", () => {
    const values = new Set(paths.map((path) => JSON.stringify(path.state.value)));
    for (const value of ["waiting", "polling", "backoff", "stopped"])
      expect(values).toContain(JSON.stringify(value));
    expect(paths).toHaveLength(graphSize(pollMachine, traversal as never).states);
  });
  it(`replays the shortest path to each of the ${paths.length} states`, async () => {
    const report = await replayEach(paths, (path) => replay(path));
    expect(report).toEqual({ replayed: paths.length, skipped: [] });
  });
});

describe("poll machine: simple paths", () => {
  const paths = getSimplePaths(pollMachine, {
    input,
    events: payloads,
    limit: GRAPH_LIMIT,
    serializeState: (snapshot: AnyMachineSnapshot) => JSON.stringify(behaviour(snapshot)),
  } as never);
  it(`replays all ${paths.length} simple paths with the invariants holding at every step`, async () => {
    const report = await replayEach(paths, (path) => replay(path, behaviour));
    expect(report).toEqual({ replayed: paths.length, skipped: [] });
  });
});

describe("poll machine: random walks (self-loops included)", () => {
  const walks = randomWalks(pollMachine, { input, events: payloads, limit: GRAPH_LIMIT } as never, {
    count: 150,
    length: 25,
    seed: 20_261_125,
  });
  it("takes wake-ups during cycles and backoff", () => {
    const types = walks.flatMap((walk) =>
      walk.steps
        .slice(1)
        .map((step, index) => `${JSON.stringify(walk.steps[index]!.state.value)}:${step.event.type}`),
    );
    expect(types).toContain('"polling":INBOX.WAKE');
    expect(types).toContain('"backoff":INBOX.WAKE');
  });
  it(`replays ${walks.length} walks with the invariants holding at every step`, async () => {
    const report = await replayEach(walks, (walk) => replay(walk));
    expect(report).toEqual({ replayed: walks.length, skipped: [] });
  });
});
