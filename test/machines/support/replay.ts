// Replays a path generated from a machine's graph (xstate/graph) against the real machine: `xstate.init` starts
// it, done/error events settle the matching fake actor, `xstate.after.*` advances the clock (checking the exact
// delay: nothing at ms-1, the transition at ms), anything else is sent. After every step the replayed snapshot is
// compared with the path's and the caller's invariants run.

import { isDeepStrictEqual } from "node:util";
import { expect } from "vitest";
import type { AnyStateMachine, EventObject, SnapshotFrom } from "xstate";
import type { StatePath } from "xstate/graph";
import { createHarness, type Harness, type HarnessOptions } from "./harness.js";

export type AnyPath = StatePath<SnapshotFrom<AnyStateMachine>, EventObject>;

export interface StepInfo {
  index: number;
  event: EventObject;
}

export interface ReplayOptions<TMachine extends AnyStateMachine> extends HarnessOptions<TMachine> {
  /**
   * What of a snapshot must match the path. Defaults to value + context. When the traversal used a lossy
   * serializeState (to keep the graph finite), pass the same projection: the path's intermediate snapshots are
   * representatives of their class, equal to the replayed ones only up to that projection.
   */
  project?: (snapshot: SnapshotFrom<TMachine>) => unknown;
  /** Checked after every step, against the real actor, fakes and clock. Throw (or `expect`) to fail. */
  invariants?: (harness: Harness<TMachine>, step: StepInfo) => void;
  /**
   * The delay an `xstate.after.*` step must have been scheduled with, computed independently of the machine
   * from the snapshot before the step. Return undefined to skip the check for that step.
   */
  expectDelay?: (eventType: string, before: SnapshotFrom<TMachine>) => number | undefined;
  /** Check that nothing happens 1 ms before a timer is due (default true). */
  exactDelays?: boolean;
}

const defaultProject = (snapshot: SnapshotFrom<AnyStateMachine>) => ({
  value: snapshot.value,
  context: snapshot.context,
});

/**
 * The path fires a timer in an order time rules out: another one, due earlier, would change the state first
 * (`blockedBy`), or this one already fired on the way, changing nothing visible (`blockedBy` null). A machine graph
 * has no notion of time, so with two timers pending it offers both orders. Callers may skip such paths, but
 * should check that each case is one they expect: an unexpected blocker is a timer the machine should not have.
 */
export class TimerOrderError extends Error {
  constructor(
    readonly fired: string,
    readonly blockedBy: string | null,
  ) {
    super(
      blockedBy === null
        ? `${fired} already fired, changing nothing visible`
        : `${fired} cannot fire first: ${blockedBy} is due earlier`,
    );
    this.name = "TimerOrderError";
  }
}

function settleKind(type: string): { kind: "done" | "error"; actorId: string } | undefined {
  if (type.startsWith("xstate.done.actor.")) return { kind: "done", actorId: type.slice(18) };
  if (type.startsWith("xstate.error.actor.")) return { kind: "error", actorId: type.slice(19) };
  return undefined;
}

function payloadOf(event: EventObject, key: "output" | "error"): unknown {
  return (event as unknown as Record<string, unknown>)[key];
}

/** Performs one step's event on the harness. */
export async function applyStep<TMachine extends AnyStateMachine>(
  harness: Harness<TMachine>,
  event: EventObject,
  options: Pick<ReplayOptions<TMachine>, "expectDelay" | "exactDelays" | "project"> = {},
): Promise<void> {
  if (event.type === "xstate.init") {
    await harness.start();
    return;
  }
  const settle = settleKind(event.type);
  if (settle) {
    if (settle.kind === "done") harness.fakes.resolve(settle.actorId, payloadOf(event, "output"));
    else harness.fakes.reject(settle.actorId, payloadOf(event, "error"));
    await harness.flush();
    return;
  }
  if (event.type.startsWith("xstate.after.")) {
    const timer = harness.timer(event.type);
    if (!timer) {
      if (harness.clock.fired.some((fired) => fired.eventType === event.type)) {
        throw new TimerOrderError(event.type, null);
      }
      const pending = harness.timers().map((t) => t.eventType);
      throw new Error(`no pending timer for ${event.type}; pending: [${pending.join(", ")}]`);
    }
    const earlier = harness
      .timers()
      .filter((other) => other.eventType !== event.type && other.remainingMs < timer.remainingMs)
      .sort((a, b) => a.remainingMs - b.remainingMs);
    const before = harness.snapshot();
    const expected = options.expectDelay?.(event.type, before);
    if (expected !== undefined) {
      expect(timer.delay, `delay of ${event.type}`).toBe(expected);
    }
    if (options.exactDelays !== false && timer.remainingMs > 0) {
      const project = options.project ?? defaultProject;
      await harness.advance(timer.remainingMs - 1);
      // An earlier timer that fired on the way and changed nothing visible is harmless (e.g. a no-op refill).
      if (earlier[0] && !isDeepStrictEqual(project(harness.snapshot()), project(before))) {
        throw new TimerOrderError(event.type, earlier[0].eventType);
      }
      expect(project(harness.snapshot()), `nothing may happen 1 ms before ${event.type}`).toEqual(
        project(before),
      );
      expect(harness.timer(event.type), `${event.type} still pending 1 ms before`).toBeDefined();
      await harness.advance(1);
    } else {
      if (earlier[0]) throw new TimerOrderError(event.type, earlier[0].eventType);
      await harness.advance(Math.max(0, timer.remainingMs));
    }
    return;
  }
  await harness.send(event as Parameters<Harness<TMachine>["send"]>[0]);
}

/** Replays a whole path; returns the harness so the caller can assert more about the end state. */
export async function replayPath<TMachine extends AnyStateMachine>(
  path: AnyPath,
  options: ReplayOptions<TMachine>,
): Promise<Harness<TMachine>> {
  const harness = createHarness(options);
  const project = (options.project ?? defaultProject) as (snapshot: unknown) => unknown;
  try {
    for (const [index, step] of path.steps.entries()) {
      await applyStep(harness, step.event, options);
      expect(harness.errors, `actor errors after step ${index} (${step.event.type})`).toEqual([]);
      expect(project(harness.snapshot()), `snapshot after step ${index} (${step.event.type})`).toEqual(
        project(step.state),
      );
      options.invariants?.(harness, { index, event: step.event });
    }
    return harness;
  } catch (error) {
    harness.stop();
    throw error;
  }
}

/** A readable, stable test name for a path: event types with their interesting payload. */
export function describePath(path: AnyPath, label: (event: EventObject) => string = defaultLabel): string {
  const events = path.steps.slice(1).map((step) => label(step.event));
  return events.length ? events.join(" → ") : "(initial state)";
}

function defaultLabel(event: EventObject): string {
  const type = event.type
    .replace(/^xstate\.done\.actor\./, "done:")
    .replace(/^xstate\.error\.actor\./, "error:")
    .replace(/^xstate\.after\.([^.]+)\..*$/, "after:$1");
  const error = payloadOf(event, "error");
  if (error && typeof error === "object" && "kind" in error) return `${type}(${String(error.kind)})`;
  const rest = Object.entries(event).filter(([key]) => key !== "type" && key !== "output");
  const scalars = rest.filter(([, value]) => typeof value !== "object" || value === null);
  if (scalars.length) return `${type}(${scalars.map(([k, v]) => `${k}=${String(v)}`).join(",")})`;
  return type;
}

export interface ReplayReport {
  replayed: number;
  /** Paths that fire a timer before an earlier one (see TimerOrderError): not replayable, listed for checking. */
  skipped: Array<{ path: string; fired: string; blockedBy: string | null }>;
}

/**
 * Replays many paths inside one test (per-test runner overhead dominated suites of hundreds of short paths).
 * Stops at the first failing path and names it, so the failure reads like a failed per-path test would.
 */
export async function replayEach(
  paths: readonly AnyPath[],
  replayOne: (path: AnyPath) => Promise<void>,
): Promise<ReplayReport> {
  const report: ReplayReport = { replayed: 0, skipped: [] };
  for (const [index, path] of paths.entries()) {
    try {
      await replayOne(path);
      report.replayed++;
    } catch (error) {
      if (error instanceof TimerOrderError) {
        report.skipped.push({ path: describePath(path), fired: error.fired, blockedBy: error.blockedBy });
        continue;
      }
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`path ${index + 1} of ${paths.length} failed: ${describePath(path)}\n${message}`, {
        cause: error,
      });
    }
  }
  return report;
}
