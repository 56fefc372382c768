// Model-based tests of the poll machine: shortest paths (full context) and simple paths (behavioural projection)
// from its graph, replayed with a fake runCycle and a simulated clock; invariants checked after every step,
// written from what the cycles answered (not from the machine's context).
import { describe, expect, it } from "vitest";
import type { AnyMachineSnapshot } from "xstate";
import { getShortestPaths, getSimplePaths } from "xstate/graph";
import { type PollNext, type PollSummary, pollMachine } from "../../src/machines/poll.machine.js";
import {
  eventsWithPayloads,
  getTransitionPaths,
  type Harness,
  randomWalks,
  replayPath,
} from "./support/index.js";

const GRAPH_LIMIT = 5_000;
const input = {
  name: "inbox",
  pollIntervalMs: 15_000,
  wakeDelayMs: 5,
  errorBackoff: { initialMs: 1_000, maxMs: 2_000, factor: 2 },
  retryBackoff: { initialMs: 500, maxMs: 1_000, factor: 2 },
  waitSeconds: 25,
};
const PAUSE_MS = 300;
const LATER_MS = 700;
const summary = (next: PollNext): PollSummary => ({
  trigger: "start",
  dispatched: 1,
  refused: 0,
  deferred: next === "retry" ? 1 : 0,
  peers: { pending: [], trusted: [{ hostname: "bob", nodeId: 4, installationId: null }], at: 1_000 },
  next,
  ...(next === "pause" ? { pauseMs: PAUSE_MS } : {}),
  ...(next === "later" ? { laterMs: LATER_MS } : {}),
});

const payloads = eventsWithPayloads([
  ...(["again", "idle", "retry", "pause", "later"] as const).map((next) => ({
    type: "xstate.done.actor.runCycle",
    output: summary(next),
  })),
  {
    type: "xstate.error.actor.runCycle",
    error: { kind: "timeout", operation: "poll", message: "inbox read timed out" },
  },
]);

// What the loop does next depends on the state and a remembered wake-up; counters and flags only shape delays and
// cycle inputs, which the shortest paths (full context) and the invariants cover.
const behaviour = (snapshot: AnyMachineSnapshot) => ({
  value: snapshot.value,
  status: snapshot.status,
  wakePending: snapshot.context.wakePending,
});

type PollHarness = Harness<typeof pollMachine>;
type Answer = PollNext | "error";

/** What the cycles answered, in order, read from the replayed events (not from the machine). */
function answersOf(steps: Array<{ event: { type: string; output?: unknown } }>): Answer[] {
  return steps.flatMap(({ event }) => {
    if (event.type === "xstate.error.actor.runCycle") return ["error" as const];
    if (event.type === "xstate.done.actor.runCycle") return [(event.output as PollSummary).next];
    return [];
  });
}

/**
 * How many answers of `kind` end the list (the streak a backoff is computed from), looking through `through`:
 * a failed cycle does not reset the retry backoff of a message that still has no final outcome.
 */
function trailing(answers: Answer[], kind: Answer, through?: Answer): number {
  let count = 0;
  for (const answer of [...answers].reverse()) {
    if (answer === through) continue;
    if (answer !== kind) break;
    count++;
  }
  return count;
}

function backoff(policy: { initialMs: number; maxMs: number; factor: number }, attempts: number): number {
  return Math.min(policy.maxMs, policy.initialMs * policy.factor ** (attempts - 1));
}

function invariants(seen: Array<{ type: string; output?: unknown }>) {
  let callsAtLastWake = -1;
  let callsBeforeStep = 0;
  return (h: PollHarness, step: { event: { type: string; output?: unknown } }) => {
    seen.push(step.event);
    const snapshot = h.snapshot();
    const calls = h.fakes.callsOf("runCycle");
    const inFlight = h.fakes.inFlight();
    const timers = h.timers().map((timer) => timer.eventType.split(".")[2]);
    const answers = answersOf(seen.map((event) => ({ event })));

    // Never two cycles at once; exactly one while busy; settled whenever none runs (until stopped).
    expect(inFlight.length).toBe(snapshot.matches("polling") ? 1 : 0);
    expect(snapshot.hasTag("busy")).toBe(snapshot.matches("polling"));
    expect(snapshot.hasTag("settled")).toBe(snapshot.status === "active" && !snapshot.matches("polling"));
    // One timer of the right kind per state, none while a cycle runs or after stop.
    const expectedTimers: Record<string, string[]> = {
      waiting: ["pollInterval"],
      waking: ["wakeDelay"],
      backoff: ["errorBackoff"],
      retrying: ["retryBackoff"],
      paused: ["emptyPause"],
      scheduled: ["nextDue"],
    };
    expect(timers).toEqual(expectedTimers[String(snapshot.value)] ?? []);

    // The loop waits (for the interval or a retry) only after the answer asked for it, and never skips a wake-up:
    // by then a cycle started after the last one.
    const last = answers.at(-1);
    if (snapshot.matches("waiting")) expect(last).toBe("idle");
    if (snapshot.matches("retrying")) expect(last).toBe("retry");
    if (snapshot.matches("paused")) expect(last).toBe("pause");
    if (snapshot.matches("scheduled")) expect(last).toBe("later");
    if (snapshot.matches("backoff")) expect(last).toBe("error");
    if (snapshot.matches("waking")) expect(["idle", "retry", "later"]).toContain(last);
    if (step.event.type === "INBOX.WAKE") callsAtLastWake = callsBeforeStep;
    if (snapshot.matches("waiting") || snapshot.matches("retrying") || snapshot.matches("scheduled")) {
      expect(calls.length).toBeGreaterThan(callsAtLastWake);
    }

    // A new cycle is told to read quickly after a failure, and from the start after a failure or a pause.
    if (calls.length > callsBeforeStep) {
      const cycle = calls.at(-1)!.input as { trigger: string; wait: number; rescan: boolean };
      expect(cycle.wait).toBe(last === "error" ? 0 : input.waitSeconds);
      expect(cycle.rescan).toBe(last === "error" || last === "pause");
      if (last === "again" || last === "pause") expect(cycle.trigger).toBe("again");
      if (last === "error") expect(cycle.trigger).toBe("retry");
      if (step.event.type.startsWith("xstate.after.wakeDelay")) expect(cycle.trigger).toBe("wake");
    }
    callsBeforeStep = calls.length;

    // The parent hears about every finished cycle exactly once.
    const done = h.effects.filter((effect) => effect.name === "reportCycleDone").length;
    const failed = h.effects.filter((effect) => effect.name === "reportCycleFailed").length;
    expect(done).toBe(calls.filter((call) => call.status === "resolved").length);
    expect(failed).toBe(calls.filter((call) => call.status === "rejected").length);

    if (snapshot.status === "done") expect(inFlight).toEqual([]);
  };
}

function expectedDelay(seen: Array<{ type: string; output?: unknown }>) {
  return (eventType: string): number | undefined => {
    const answers = answersOf(seen.map((event) => ({ event })));
    const delay = eventType.split(".")[2];
    if (delay === "pollInterval") return input.pollIntervalMs;
    if (delay === "emptyPause") return PAUSE_MS;
    if (delay === "nextDue") return LATER_MS;
    if (delay === "wakeDelay") return input.wakeDelayMs;
    if (delay === "errorBackoff") return backoff(input.errorBackoff, trailing(answers, "error"));
    if (delay === "retryBackoff") return backoff(input.retryBackoff, trailing(answers, "retry", "error"));
    return undefined;
  };
}

async function replay(path: Parameters<typeof replayPath>[0], project?: typeof behaviour) {
  const seen: Array<{ type: string; output?: unknown }> = [];
  const result = await replayPath(path, {
    machine: pollMachine,
    input,
    actors: ["runCycle"],
    actions: ["reportCycleDone", "reportCycleFailed"],
    invariants: invariants(seen),
    expectDelay: expectedDelay(seen),
    ...(project ? { project } : {}),
  });
  result.stop();
}

describe("poll machine: shortest paths", () => {
  const paths = getShortestPaths(pollMachine, { input, events: payloads, limit: GRAPH_LIMIT } as never);
  it("reaches every state", () => {
    const values = new Set(paths.map((path) => JSON.stringify(path.state.value)));
    for (const value of [
      "waiting",
      "waking",
      "polling",
      "paused",
      "scheduled",
      "retrying",
      "backoff",
      "stopped",
    ])
      expect(values).toContain(JSON.stringify(value));
  });
  it(`replays all ${paths.length} shortest paths with the invariants holding at every step`, async () => {
    for (const path of paths) await replay(path);
  }, 120_000);
});

describe("poll machine: simple paths", () => {
  const paths = getSimplePaths(pollMachine, {
    input,
    events: payloads,
    limit: GRAPH_LIMIT,
    serializeState: (snapshot: AnyMachineSnapshot) => JSON.stringify(behaviour(snapshot)),
  } as never);
  it(`replays all ${paths.length} simple paths with the invariants holding at every step`, async () => {
    for (const path of paths) await replay(path, behaviour);
  }, 120_000);
});

describe("poll machine: every transition", () => {
  const paths = getTransitionPaths(pollMachine, {
    input,
    events: payloads,
    serializeState: (snapshot: AnyMachineSnapshot) => JSON.stringify([snapshot.value, snapshot.context]),
  } as never);
  it(`replays all ${paths.length} transitions (shortest path to the source, then the edge)`, async () => {
    for (const path of paths) await replay(path);
  }, 120_000);
});

describe("poll machine: random walks (self-loops included)", () => {
  const walks = randomWalks(pollMachine, { input, events: payloads, limit: GRAPH_LIMIT } as never, {
    count: 150,
    length: 25,
    seed: 20_261_125,
  });
  it("takes wake-ups during cycles, pauses, scheduled runs, retries and backoff", () => {
    const types = walks.flatMap((walk) =>
      walk.steps
        .slice(1)
        .map((step, index) => `${JSON.stringify(walk.steps[index]!.state.value)}:${step.event.type}`),
    );
    for (const state of ["polling", "paused", "scheduled", "retrying", "backoff"]) {
      expect(types).toContain(`"${state}":INBOX.WAKE`);
    }
  });
  it(`replays ${walks.length} walks with the invariants holding at every step`, async () => {
    for (const walk of walks) await replay(walk);
  }, 120_000);
});
