// Scenario tests of the poll loop, each named after what it proves; time is simulated, runCycle is a fake.
import { describe, expect, it } from "vitest";
import { assign, createActor, SimulatedClock, setup } from "xstate";
import { type PollParentEvent, type PollSummary, pollMachine } from "../../src/machines/poll.machine.js";
import { createFakeActors, createHarness, flushMicrotasks } from "./support/index.js";

const summary = (trigger: PollSummary["trigger"]): PollSummary => ({
  trigger,
  dispatched: 0,
  refused: 0,
  deferred: 0,
  pending: [],
  trusted: [],
});
const failure = { kind: "timeout", operation: "pilot.inbox", message: "pilotctl inbox timed out" };

function harness() {
  return createHarness({
    machine: pollMachine,
    input: { pollIntervalMs: 15_000, errorBackoff: { initialMs: 1_000, maxMs: 8_000, factor: 2 } },
    actors: ["runCycle"],
    actions: ["reportCycleDone", "reportCycleFailed"],
  });
}

describe("poll loop", () => {
  it("runs a first cycle at start, then reconciles every pollIntervalMs exactly", async () => {
    const h = harness();
    await h.start();
    expect(h.fakes.pending("runCycle").input).toEqual({ trigger: "start" });
    h.fakes.resolve("runCycle", summary("start"));
    await h.flush();
    await h.advance(14_999);
    expect(h.fakes.inFlight()).toEqual([]);
    await h.advance(1);
    expect(h.fakes.pending("runCycle").input).toEqual({ trigger: "timer" });
    h.stop();
  });

  it("an inbox event wakes the loop at once", async () => {
    const h = harness();
    await h.start();
    h.fakes.resolve("runCycle", summary("start"));
    await h.flush();
    await h.advance(3_000);
    await h.send({ type: "INBOX.WAKE" });
    expect(h.fakes.pending("runCycle").input).toEqual({ trigger: "wake" });
    h.stop();
  });

  it("wake-ups during a cycle run exactly one more cycle right after, never two at once", async () => {
    const h = harness();
    await h.start();
    for (let wake = 0; wake < 5; wake++) await h.send({ type: "INBOX.WAKE" });
    expect(h.fakes.inFlight()).toHaveLength(1);
    h.fakes.resolve("runCycle", summary("start"));
    await h.flush();
    // One follow-up cycle, started at once, for all five wake-ups.
    expect(h.fakes.callsOf("runCycle")).toHaveLength(2);
    expect(h.fakes.pending("runCycle").input).toEqual({ trigger: "wake" });
    h.fakes.resolve("runCycle", summary("wake"));
    await h.flush();
    expect(h.snapshot().value).toBe("waiting");
    expect(h.fakes.callsOf("runCycle")).toHaveLength(2);
    h.stop();
  });

  it("failing cycles back off exponentially up to maxMs, then the interval resumes", async () => {
    const h = harness();
    await h.start();
    const delays: number[] = [];
    for (let attempt = 0; attempt < 6; attempt++) {
      h.fakes.reject("runCycle", failure);
      await h.flush();
      const timer = h.timer("xstate.after.errorBackoff.poll.backoff");
      delays.push(timer!.delay);
      await h.advance(timer!.delay - 1);
      expect(h.fakes.inFlight()).toEqual([]);
      await h.advance(1);
      expect(h.fakes.pending("runCycle").input).toEqual({ trigger: "retry" });
    }
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
    h.fakes.resolve("runCycle", summary("retry"));
    await h.flush();
    expect(h.snapshot().context.consecutiveErrors).toBe(0);
    expect(h.timer("xstate.after.pollInterval.poll.waiting")?.delay).toBe(15_000);
    h.stop();
  });

  it("a burst of inbox events does not defeat the backoff", async () => {
    const h = harness();
    await h.start();
    h.fakes.reject("runCycle", failure);
    await h.flush();
    for (let wake = 0; wake < 20; wake++) await h.send({ type: "INBOX.WAKE" });
    expect(h.fakes.callsOf("runCycle")).toHaveLength(1);
    await h.advance(1_000);
    expect(h.fakes.callsOf("runCycle")).toHaveLength(2);
    h.fakes.resolve("runCycle", summary("retry"));
    await h.flush();
    // The retry served the wake-ups: no extra cycle.
    expect(h.snapshot().value).toBe("waiting");
    h.stop();
  });

  it("STOP aborts the cycle in flight and ends the loop", async () => {
    const h = harness();
    await h.start();
    await h.send({ type: "STOP" });
    expect(h.snapshot().status).toBe("done");
    expect(h.fakes.callsOf("runCycle")[0]!.status).toBe("aborted");
    expect(h.timers()).toEqual([]);
  });
});

describe("poll machine inside a parent", () => {
  it("the parent receives each cycle's summary and each failure with its retry delay", async () => {
    const fakes = createFakeActors(["runCycle"]);
    const parent = setup({
      types: { context: {} as { heard: PollParentEvent[] }, events: {} as PollParentEvent },
      actors: { poll: pollMachine.provide({ actors: fakes.logic }) },
    }).createMachine({
      context: { heard: [] },
      invoke: { id: "poll", src: "poll", input: { pollIntervalMs: 15_000 } },
      on: { "POLL.*": { actions: assign({ heard: ({ context, event }) => [...context.heard, event] }) } },
    });
    const clock = new SimulatedClock();
    const actor = createActor(parent, { clock });
    actor.subscribe({ error: (error) => expect.fail(String(error)) });
    actor.start();
    fakes.reject("runCycle", failure);
    await flushMicrotasks();
    const withPending: PollSummary = {
      ...summary("retry"),
      pending: [{ nodeId: 3, justification: "hi", receivedAt: 1 }],
    };
    // The clock is the system's: the invoked poll actor's backoff timer runs on it.
    clock.increment(1_000);
    await flushMicrotasks();
    fakes.resolve("runCycle", withPending);
    await flushMicrotasks();
    expect(actor.getSnapshot().context.heard).toEqual([
      { type: "POLL.CYCLE.FAILED", error: failure, retryInMs: 1_000 },
      { type: "POLL.CYCLE.DONE", summary: withPending },
    ]);
    actor.stop();
  });
});
