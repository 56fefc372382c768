// Self-test of the replay kit on a small fetch-with-retry machine, so the kit's own behaviour (settling fakes,
// exact delays, invariant hook) is pinned before other machines rely on it.
import { describe, expect, it } from "vitest";
import { assign, fromPromise, setup } from "xstate";
import { getShortestPaths } from "xstate/graph";
import { createHarness, describePath, eventsWithPayloads, replayPath, TestClock } from "./index.js";

const retryMachine = setup({
  types: {
    context: {} as { attempts: number; value: string | null },
    events: {} as { type: "FETCH" },
  },
  actors: {
    fetchThing: fromPromise<{ value: string }, { attempt: number }>(async () => ({ value: "real" })),
  },
  delays: { retryDelay: ({ context }) => 100 * 2 ** context.attempts },
  guards: { canRetry: ({ context }) => context.attempts < 2 },
}).createMachine({
  id: "retry",
  context: { attempts: 0, value: null },
  initial: "idle",
  states: {
    idle: { on: { FETCH: "fetching" } },
    fetching: {
      invoke: {
        id: "fetchThing",
        src: "fetchThing",
        input: ({ context }) => ({ attempt: context.attempts }),
        onDone: { target: "done", actions: assign({ value: ({ event }) => event.output.value }) },
        onError: [
          {
            guard: "canRetry",
            target: "waiting",
            actions: assign({ attempts: ({ context }) => context.attempts + 1 }),
          },
          { target: "failed" },
        ],
      },
    },
    waiting: { after: { retryDelay: "fetching" } },
    done: { type: "final" },
    failed: { type: "final" },
  },
});

const paths = getShortestPaths(retryMachine, {
  events: eventsWithPayloads([
    { type: "xstate.done.actor.fetchThing", output: { value: "v" } },
    { type: "xstate.error.actor.fetchThing", error: { kind: "unreachable" } },
  ]),
});

describe("replay kit on a retry machine", () => {
  it("generates paths that reach both final states", () => {
    const finals = paths.filter((path) => path.state.status === "done").map((path) => path.state.value);
    expect(finals).toEqual(expect.arrayContaining(["done", "failed"]));
  });

  for (const path of paths) {
    it(`replays ${describePath(path)}`, async () => {
      const harness = await replayPath(path, {
        machine: retryMachine,
        actors: ["fetchThing"],
        expectDelay: (_type, before) => 100 * 2 ** before.context.attempts,
        invariants: (h) => {
          expect(h.fakes.inFlight().length).toBeLessThanOrEqual(1);
          if (h.snapshot().matches("waiting")) expect(h.timers()).toHaveLength(1);
        },
      });
      harness.stop();
    });
  }

  it("reports the remaining time of a pending timer and fires it exactly when due", async () => {
    const harness = createHarness({ machine: retryMachine, actors: ["fetchThing"] });
    await harness.start();
    await harness.send({ type: "FETCH" });
    harness.fakes.reject("fetchThing", { kind: "timeout" });
    await harness.flush();
    expect(harness.timers()).toEqual([
      { eventType: "xstate.after.retryDelay.retry.waiting", delay: 200, remainingMs: 200 },
    ]);
    await harness.advance(199);
    expect(harness.snapshot().value).toBe("waiting");
    expect(harness.timers()[0]?.remainingMs).toBe(1);
    await harness.advance(1);
    expect(harness.snapshot().value).toBe("fetching");
    expect(harness.fakes.callsOf("fetchThing").map((call) => call.input)).toEqual([
      { attempt: 0 },
      { attempt: 1 },
    ]);
  });

  it("fails a replay when the machine's delay differs from the expected one", async () => {
    const path = paths.find((p) => p.steps.some((s) => s.event.type.startsWith("xstate.after.")));
    expect(path).toBeDefined();
    await expect(
      replayPath(path!, { machine: retryMachine, actors: ["fetchThing"], expectDelay: () => 199 }),
    ).rejects.toThrow(/delay of xstate.after/);
  });

  it("names each pending timer by its delayed event, also when two share a delay", async () => {
    const twoTimers = setup({ delays: { short: 50, alsoShort: 50 } }).createMachine({
      id: "two",
      type: "parallel",
      states: {
        a: { initial: "idle", states: { idle: { after: { short: "done" } }, done: {} } },
        b: { initial: "idle", states: { idle: { after: { alsoShort: "done" } }, done: {} } },
      },
    });
    const harness = createHarness({ machine: twoTimers, actors: [] });
    await harness.start();
    expect(harness.timers()).toEqual([
      { eventType: "xstate.after.short.two.a.idle", delay: 50, remainingMs: 50 },
      { eventType: "xstate.after.alsoShort.two.b.idle", delay: 50, remainingMs: 50 },
    ]);
    await harness.advance(50);
    expect(harness.snapshot().value).toEqual({ a: "done", b: "done" });
    expect(harness.timers()).toEqual([]);
  });
});

describe("TestClock", () => {
  it("fires what falls due during one advance in due order, each at its own time", () => {
    const clock = new TestClock();
    const fired: Array<[string, number]> = [];
    clock.setTimeout(() => fired.push(["late", clock.now()]), 300);
    clock.setTimeout(() => {
      fired.push(["early", clock.now()]);
      // Scheduled while firing and still due within the same advance.
      clock.setTimeout(() => fired.push(["chained", clock.now()]), 100);
    }, 100);
    const cancelled = clock.setTimeout(() => fired.push(["cancelled", clock.now()]), 150);
    clock.clearTimeout(cancelled);
    clock.advance(299);
    expect(fired).toEqual([
      ["early", 100],
      ["chained", 200],
    ]);
    expect(clock.now()).toBe(299);
    expect(clock.pending()).toEqual([{ id: 1, eventType: undefined, delay: 300, dueAt: 300 }]);
    clock.advance(1);
    expect(fired.at(-1)).toEqual(["late", 300]);
  });
});
