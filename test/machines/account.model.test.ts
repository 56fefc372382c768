// Model-based tests of the account machine: paths generated from its graph (every transition, reached by a
// shortest path, and bounded simple paths to `stopped`), each replayed against the real machine with fake
// registry actors and a simulated clock. Invariants are written from the contract, independently of the machine.
import { describe, expect, it } from "vitest";
import { getSimplePaths } from "xstate/graph";
import { accountMachine } from "../../src/machines/account.machine.js";
import { backoffDelay } from "../../src/machines/backoff.js";
import {
  ACCOUNT_ACTIONS,
  ACCOUNT_ACTORS,
  type AccountSnapshot,
  accountEvents,
  INPUT,
  projectAccount,
  serializeAccount,
} from "./support/account-model.js";
import {
  type AnyPath,
  describePath,
  getTransitionPaths,
  graphSize,
  type Harness,
  replayEach,
  replayPath,
} from "./support/index.js";

type AccountHarness = Harness<typeof accountMachine>;

/** The contract's invariants, checked on every state a replay passes through. */
function checkInvariants(h: AccountHarness): void {
  const snapshot = h.snapshot();
  const { context } = snapshot;
  const inFlight = h.fakes.inFlight();
  const timers = h.timers();
  const where = `in ${JSON.stringify(snapshot.value)}`;

  expect(inFlight.length, `at most one registry request in flight ${where}`).toBeLessThanOrEqual(1);
  expect(JSON.parse(JSON.stringify(context)), "context is JSON-serializable").toEqual(context);
  expect(context.heartbeatFailures).toBeLessThanOrEqual(context.maxHeartbeatFailures);

  if (snapshot.matches("online")) {
    expect(context.agentId, "online => agent id known").toEqual(expect.any(String));
    expect(context.discoverable, "online => discoverable").toBe(true);
    expect(context.heartbeatFailures, "online => below the failure budget").toBeLessThan(
      context.maxHeartbeatFailures,
    );
  }
  if (snapshot.matches("private")) {
    expect(timers, "private => no timer pending").toEqual([]);
    expect(inFlight, "private => no registry request in flight").toEqual([]);
    expect(context.discoverable).toBe(false);
  }
  if (snapshot.status === "done") {
    expect(snapshot.value).toBe("stopped");
    expect(timers, "stopped => no timer pending").toEqual([]);
    expect(inFlight, "stopped => nothing in flight").toEqual([]);
  }
  if (snapshot.matches("idle")) {
    expect(inFlight, "idle => nothing in flight").toEqual([]);
    expect(timers.map((t) => t.eventType)).toEqual(["xstate.after.registerRetry.account.idle"]);
    const attempts = context.registerAttempts;
    const base = Math.min(
      INPUT.registerBackoff!.maxMs,
      INPUT.registerBackoff!.initialMs * 2 ** (attempts - 1),
    );
    expect(attempts, "idle only after a failed registration").toBeGreaterThan(0);
    expect(context.nextRetryDelayMs).toBeGreaterThanOrEqual(Math.round(base * 0.8));
    expect(context.nextRetryDelayMs).toBeLessThanOrEqual(base);
    expect(context.lastError, "idle => the failure is reported").not.toBeNull();
  }
  if (snapshot.matches("registering") || snapshot.matches("reregistering")) {
    expect(inFlight.map((call) => call.src)).toEqual(["registerAgent"]);
    if (!context.metadataDirty) {
      expect(inFlight[0]?.input, "registration sends the full metadata and known id").toEqual({
        metadata: context.metadata,
        agentId: context.agentId,
      });
    }
    expect(timers).toEqual([]);
  }
  if (snapshot.matches({ online: "waiting" }) || snapshot.matches({ online: "retryingUpdate" })) {
    expect(inFlight).toEqual([]);
    expect(
      timers.map((t) => t.delay),
      "exactly one heartbeat timer",
    ).toEqual([context.heartbeatIntervalMs]);
  }
  if (snapshot.matches({ online: "beating" })) {
    expect(inFlight.map((call) => [call.src, call.input])).toEqual([
      ["sendHeartbeat", { agentId: context.agentId }],
    ]);
    expect(timers, "no heartbeat timer while one is in flight").toEqual([]);
  }
  if (snapshot.matches({ online: "updating" })) {
    expect(inFlight.map((call) => call.src)).toEqual(["updateAgent"]);
    if (!context.metadataDirty) {
      expect(inFlight[0]?.input).toEqual({ agentId: context.agentId, metadata: context.metadata });
    }
  }
  if (snapshot.matches("deregistering")) {
    expect(inFlight.map((call) => call.src)).toEqual(["deregisterAgent"]);
    expect(
      timers.map((t) => t.delay),
      "deregistration is bounded",
    ).toEqual([context.deregisterTimeoutMs]);
  }
  // No redundant PATCH: an update always carries metadata the registry has not yet received.
  let received: unknown = null;
  for (const call of h.fakes.calls) {
    const sent = (call.input as { metadata?: unknown }).metadata;
    if (call.src === "updateAgent")
      expect(sent, "update repeats metadata already sent").not.toEqual(received);
    if ((call.src === "registerAgent" || call.src === "updateAgent") && call.status === "resolved") {
      received = sent;
    }
  }
  for (const effect of h.effects) {
    expect(effect.params).toEqual({ accountId: INPUT.accountId, agentId: expect.stringMatching(/.+/) });
  }
}

/** Delays derived from the input and the contract, not read back from the machine. */
function expectDelay(eventType: string, before: AccountSnapshot): number | undefined {
  if (eventType.startsWith("xstate.after.heartbeatInterval.")) return INPUT.heartbeatIntervalMs;
  if (eventType.startsWith("xstate.after.deregisterTimeout.")) return INPUT.deregisterTimeoutMs;
  if (eventType.startsWith("xstate.after.registerRetry.")) {
    return backoffDelay(
      INPUT.registerBackoff!,
      before.context.registerAttempts,
      INPUT.metadata.installationId,
    );
  }
  throw new Error(`unexpected timer ${eventType}`);
}

async function replay(path: AnyPath, project: (snapshot: AccountSnapshot) => unknown) {
  const harness = await replayPath(path, {
    machine: accountMachine,
    input: INPUT,
    actors: ACCOUNT_ACTORS,
    actions: ACCOUNT_ACTIONS,
    project,
    expectDelay,
    invariants: checkInvariants,
  });
  harness.stop();
}

/**
 * Thousands of paths as thousands of `it`s cost more in runner overhead than in replay, so paths are grouped by
 * their last transition (source state and event); a failure names the exact path.
 */
function groupByLastTransition(paths: AnyPath[]): Map<string, AnyPath[]> {
  const groups = new Map<string, AnyPath[]>();
  for (const path of paths) {
    const last = path.steps.at(-1);
    const source = path.steps.at(-2)?.state.value;
    const key = last && source !== undefined ? `${JSON.stringify(source)} on ${describeLast(path)}` : "start";
    groups.set(key, [...(groups.get(key) ?? []), path]);
  }
  return groups;
}

function describeLast(path: AnyPath): string {
  const description = describePath(path);
  return description.slice(description.lastIndexOf(" → ") + 1).replace(/^→ /, "");
}

async function replayAll(paths: AnyPath[], project: (snapshot: AccountSnapshot) => unknown) {
  const report = await replayEach(paths, (path) => replay(path, project));
  expect(report).toEqual({ replayed: paths.length, skipped: [] });
}

const transitionPaths = getTransitionPaths(accountMachine, {
  input: INPUT,
  events: accountEvents,
  serializeState: serializeAccount,
});

describe("account machine: every transition of the graph, reached by a shortest path", () => {
  it("has one path per edge of the graph", () => {
    const size = graphSize(accountMachine, {
      input: INPUT,
      events: accountEvents,
      serializeState: serializeAccount,
    });
    expect(transitionPaths).toHaveLength(size.edges);
  });

  it("reaches every lifecycle state", () => {
    const reached = new Set(transitionPaths.map((path) => JSON.stringify(path.state.value)));
    for (const value of [
      "private",
      "idle",
      "registering",
      "reregistering",
      "deregistering",
      "stopped",
      { online: "waiting" },
      { online: "beating" },
      { online: "updating" },
      { online: "retryingUpdate" },
    ]) {
      expect(reached, JSON.stringify(value)).toContain(JSON.stringify(value));
    }
  });

  for (const [transition, paths] of groupByLastTransition(transitionPaths)) {
    it(`${transition} (${paths.length} paths)`, () => replayAll(paths, projectAccount));
  }
});

// Coarser state identity (no metadata variants) so that all simple paths stay enumerable; bounded by length.
const projectShape = (snapshot: AccountSnapshot) => ({
  value: snapshot.value,
  discoverable: snapshot.context.discoverable,
  registered: snapshot.context.agentId !== null,
  stopRequested: snapshot.context.stopRequested,
  heartbeatFailures: snapshot.context.heartbeatFailures,
});
const MAX_SIMPLE_PATH_STEPS = 8;
const simplePaths = getSimplePaths(accountMachine, {
  input: INPUT,
  events: (snapshot) =>
    accountEvents(snapshot).filter((event: { type: string }) => event.type !== "METADATA.CHANGED"),
  serializeState: (snapshot) => JSON.stringify(projectShape(snapshot)),
  toState: (snapshot) => snapshot.status === "done",
}).filter((path) => path.steps.length <= MAX_SIMPLE_PATH_STEPS);

describe(`account machine: simple paths to stopped (up to ${MAX_SIMPLE_PATH_STEPS - 1} events)`, () => {
  it("covers STOP from every lifecycle state", () => {
    const stoppedFrom = new Set(
      simplePaths.flatMap((path) =>
        path.steps.flatMap((step, index) =>
          step.event.type === "STOP" ? [JSON.stringify(path.steps[index - 1]?.state.value)] : [],
        ),
      ),
    );
    for (const value of ["private", "idle", "registering", "reregistering", "deregistering"]) {
      expect(stoppedFrom, value).toContain(JSON.stringify(value));
    }
    expect(stoppedFrom).toContain(JSON.stringify({ online: "waiting" }));
    expect(stoppedFrom).toContain(JSON.stringify({ online: "beating" }));
  });

  for (const [transition, paths] of groupByLastTransition(simplePaths)) {
    it(`${transition} (${paths.length} paths)`, () => replayAll(paths, projectShape));
  }
});
