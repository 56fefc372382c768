// Scenario tests of the poll loop, each named after what it proves; time is simulated, runCycle is a fake.
import { describe, expect, it } from "vitest";
import { assign, createActor, fromCallback, SimulatedClock, setup } from "xstate";
import {
  type PollNext,
  type PollParentEvent,
  type PollSummary,
  pollMachine,
} from "../../src/machines/poll.machine.js";
import { createFakeActors, createHarness, flushMicrotasks } from "./support/index.js";

const summary = (
  trigger: PollSummary["trigger"],
  next: PollNext = "idle",
  pauseMs?: number,
): PollSummary => ({
  trigger,
  dispatched: 0,
  refused: 0,
  deferred: 0,
  peers: null,
  next,
  ...(pauseMs === undefined ? {} : { pauseMs }),
});
const failure = { kind: "timeout", operation: "pilot.inbox", message: "pilotctl inbox timed out" };

const input = {
  name: "inbox",
  pollIntervalMs: 15_000,
  errorBackoff: { initialMs: 1_000, maxMs: 8_000, factor: 2 },
  retryBackoff: { initialMs: 500, maxMs: 2_000, factor: 2 },
  waitSeconds: 25,
};

function harness(machine = pollMachine) {
  return createHarness({
    machine,
    input,
    actors: ["runCycle"],
    actions: ["reportCycleDone", "reportCycleFailed"],
  });
}

describe("poll loop", () => {
  it("runs a first cycle at start, then reconciles every pollIntervalMs exactly", async () => {
    const h = harness();
    await h.start();
    expect(h.fakes.pending("runCycle").input).toEqual({ trigger: "start", wait: 25, rescan: false });
    h.fakes.resolve("runCycle", summary("start"));
    await h.flush();
    await h.advance(14_999);
    expect(h.fakes.inFlight()).toEqual([]);
    await h.advance(1);
    expect(h.fakes.pending("runCycle").input).toEqual({ trigger: "timer", wait: 25, rescan: false });
    h.stop();
  });

  it("an inbox event wakes the loop within wakeDelayMs, and the rest of its burst runs no extra cycle", async () => {
    const h = harness();
    await h.start();
    h.fakes.resolve("runCycle", summary("start"));
    await h.flush();
    await h.advance(3_000);
    for (let event = 0; event < 3; event++) await h.send({ type: "INBOX.WAKE" });
    expect(h.snapshot().value).toBe("waking");
    expect(h.timer("xstate.after.wakeDelay.poll.waking")?.delay).toBe(1);
    await h.advance(1);
    expect(h.fakes.pending("runCycle").input).toMatchObject({ trigger: "wake" });
    h.fakes.resolve("runCycle", summary("wake"));
    await h.flush();
    expect(h.snapshot().value).toBe("waiting");
    expect(h.fakes.callsOf("runCycle")).toHaveLength(2);
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
    expect(h.fakes.pending("runCycle").input).toMatchObject({ trigger: "wake" });
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
      expect(h.fakes.pending("runCycle").input).toEqual({ trigger: "retry", wait: 0, rescan: true });
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

describe("poll loop driving a relay long-poll", () => {
  it("runs the next long-poll at once while the registry answers, busy during each and never settled", async () => {
    const h = harness();
    await h.start();
    for (let cycle = 0; cycle < 3; cycle++) {
      expect(h.snapshot().hasTag("busy")).toBe(true);
      h.fakes.resolve("runCycle", summary(cycle === 0 ? "start" : "again", "again"));
      await h.flush();
    }
    expect(h.fakes.callsOf("runCycle")).toHaveLength(4);
    expect(h.fakes.pending("runCycle").input).toEqual({ trigger: "again", wait: 25, rescan: false });
    expect(h.timers()).toEqual([]);
    h.stop();
  });

  it("after a failure the next read does not wait and reads from the start; then long-polls from the cursor again", async () => {
    const h = harness();
    await h.start();
    h.fakes.reject("runCycle", failure);
    await h.flush();
    expect(h.snapshot().hasTag("settled")).toBe(true);
    await h.advance(1_000);
    expect(h.fakes.pending("runCycle").input).toEqual({ trigger: "retry", wait: 0, rescan: true });
    h.fakes.resolve("runCycle", summary("retry", "again"));
    await h.flush();
    expect(h.fakes.pending("runCycle").input).toEqual({ trigger: "again", wait: 25, rescan: false });
    h.stop();
  });

  it("an early empty answer pauses for pauseMs, ignoring wake-ups, then reads from the start", async () => {
    const h = harness();
    await h.start();
    h.fakes.resolve("runCycle", summary("start", "pause", 700));
    await h.flush();
    expect(h.snapshot().value).toBe("paused");
    expect(h.timer("xstate.after.emptyPause.poll.paused")?.delay).toBe(700);
    await h.send({ type: "INBOX.WAKE" });
    await h.advance(699);
    expect(h.fakes.inFlight()).toEqual([]);
    await h.advance(1);
    expect(h.fakes.pending("runCycle").input).toEqual({ trigger: "again", wait: 25, rescan: true });
    h.stop();
  });

  it("a message the sink asked to retry is read again after the retry backoff, growing while it keeps failing", async () => {
    const h = harness();
    await h.start();
    const delays: number[] = [];
    for (let attempt = 0; attempt < 4; attempt++) {
      h.fakes.resolve("runCycle", summary(attempt === 0 ? "start" : "deferred", "retry"));
      await h.flush();
      const timer = h.timer("xstate.after.retryBackoff.poll.retrying");
      delays.push(timer!.delay);
      await h.advance(timer!.delay);
      expect(h.fakes.pending("runCycle").input).toEqual({ trigger: "deferred", wait: 25, rescan: false });
    }
    expect(delays).toEqual([500, 1_000, 2_000, 2_000]);
    // A final outcome resets the retry backoff.
    h.fakes.resolve("runCycle", summary("deferred", "again"));
    await h.flush();
    h.fakes.resolve("runCycle", summary("again", "retry"));
    await h.flush();
    expect(h.timer("xstate.after.retryBackoff.poll.retrying")?.delay).toBe(500);
    h.stop();
  });

  it("jitters the error backoff with a seed, never above the policy", async () => {
    const h = createHarness({
      machine: pollMachine,
      input: { ...input, jitterSeed: "c0ffee" },
      actors: ["runCycle"],
    });
    await h.start();
    h.fakes.reject("runCycle", failure);
    await h.flush();
    const delay = h.timer("xstate.after.errorBackoff.poll.backoff")!.delay;
    expect(delay).toBeLessThanOrEqual(1_000);
    expect(delay).toBeGreaterThanOrEqual(800);
    h.stop();
  });
});

describe("poll loop driving a Pilot inbox scan", () => {
  it("the watcher's wake-ups run a cycle at once, even while files wait for their retry", async () => {
    let wake: () => void = () => undefined;
    let watching = 0;
    const machine = pollMachine.provide({
      actors: {
        watchInbox: fromCallback(({ sendBack, input }) => {
          expect(input).toEqual({ name: "inbox" });
          watching++;
          wake = () => sendBack({ type: "INBOX.WAKE" });
          return () => {
            watching--;
          };
        }),
      },
    });
    const h = harness(machine);
    await h.start();
    expect(watching).toBe(1);
    h.fakes.resolve("runCycle", summary("start", "retry"));
    await h.flush();
    expect(h.snapshot().value).toBe("retrying");
    wake();
    await h.advance(1);
    expect(h.fakes.pending("runCycle").input).toMatchObject({ trigger: "wake" });
    h.fakes.resolve("runCycle", summary("wake"));
    await h.flush();
    expect(h.snapshot().value).toBe("waiting");
    wake();
    await h.advance(1);
    expect(h.fakes.inFlight()).toHaveLength(1);
    await h.send({ type: "STOP" });
    // The watcher lives exactly as long as the loop.
    expect(watching).toBe(0);
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
      invoke: { id: "poll", src: "poll", input: { name: "peers", pollIntervalMs: 15_000 } },
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
      peers: { pending: [], trusted: null, at: 1 },
    };
    // The clock is the system's: the invoked poll actor's backoff timer runs on it.
    clock.increment(1_000);
    await flushMicrotasks();
    fakes.resolve("runCycle", withPending);
    await flushMicrotasks();
    expect(actor.getSnapshot().context.heard).toEqual([
      { type: "POLL.CYCLE.FAILED", name: "peers", error: failure, retryInMs: 1_000 },
      { type: "POLL.CYCLE.DONE", name: "peers", summary: withPending },
    ]);
    actor.stop();
  });
});
