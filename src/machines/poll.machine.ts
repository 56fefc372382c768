// The inbox loop, for both transports: one cycle at a time (a relay long-poll read, or a pass over the Pilot inbox
// directory), then what the cycle asked for: another cycle at once, a short pause, a retry later, or a wait for the
// poll interval or a wake-up. Failed cycles back off exponentially. A state machine instead of flags beside a
// `while` loop, so cycles never overlap and every timer is visible in the snapshot.
import { assign, enqueueActions, fromCallback, fromPromise, setup } from "xstate";
import { type BackoffPolicy, backoffDelay, baseDelay } from "./backoff.js";
import { type PeersObservation, type PlainError, toPlainError } from "./types.js";

export interface PollInput {
  /** The child id in the account tree ("inbox" or "peers"); carried in every event to the parent. */
  name: string;
  /** Period of a cycle when nothing wakes the loop and the last cycle went idle. Default 15000. */
  pollIntervalMs?: number;
  /** After a failed cycle. */
  errorBackoff?: Partial<BackoffPolicy>;
  /** After a cycle that kept something for a retry (`next: "retry"`), by retries in a row. */
  retryBackoff?: Partial<BackoffPolicy>;
  /**
   * How long a wake-up waits before its cycle starts, so that the burst of events one file write produces
   * (create, change, change) runs one cycle instead of two. Default 1.
   */
  wakeDelayMs?: number;
  /** Long-poll seconds handed to each cycle (0: cycles do not wait for news). Default 0. */
  waitSeconds?: number;
  /**
   * Spreads backoff delays so that installations do not retry in lockstep after a shared registry outage. Not a
   * secret (it is in the snapshot): pass a hash. Without it delays are exact.
   */
  jitterSeed?: string | null;
}

/** Why a cycle runs (for logs and status). "retry": after a failed cycle; "deferred": after `next: "retry"`. */
export type PollTrigger = "start" | "timer" | "wake" | "again" | "retry" | "deferred";

export interface RunCycleInput {
  trigger: PollTrigger;
  /** Long-poll seconds the cycle may wait for news: 0 right after a failure, so recovery shows at once. */
  wait: number;
  /**
   * Read from the very beginning instead of the cursor: after a failure and after an early empty answer (how a
   * restarting or restored registry ends long-polls; a restored registry may number messages below our cursor).
   */
  rescan: boolean;
}

/**
 * What the cycle wants next.
 * - `again`: more may be waiting (or the cycle was a long-poll): run the next cycle at once.
 * - `idle`: nothing left; wait for the poll interval or a wake-up.
 * - `retry`: something was kept for a retry; run again after the retry backoff (a wake-up runs at once).
 * - `pause`: an answer came too early to be a real long-poll; wait `pauseMs`, then read from the start.
 * - `later`: nothing is due now, the next thing is due in `laterMs` (the outbox's next resend): run then, or at
 *   a wake-up if that comes first.
 */
export type PollNext = "again" | "idle" | "retry" | "pause" | "later";

/** The plain result of one cycle. */
export interface PollSummary {
  trigger: PollTrigger;
  /** Inbound messages: dispatched to sessions, refused by admission, left for a retry. */
  dispatched: number;
  refused: number;
  deferred: number;
  /** What a peers reconciliation saw (pending requests, trust list); null for an inbox cycle. */
  peers: PeersObservation | null;
  next: PollNext;
  /** With `next: "pause"`: how long. */
  pauseMs?: number;
  /** With `next: "later"`: when the next cycle is due. */
  laterMs?: number;
}

/** A cycle that did nothing and asks for nothing (the loop waits for its interval or a wake-up). */
export function idleSummary(trigger: PollTrigger, peers: PeersObservation | null = null): PollSummary {
  return { trigger, dispatched: 0, refused: 0, deferred: 0, peers, next: "idle" };
}

export type PollEvent = { type: "INBOX.WAKE" } | { type: "STOP" };

/** What the poll machine tells its parent. */
export type PollParentEvent =
  | { type: "POLL.CYCLE.DONE"; name: string; summary: PollSummary }
  | { type: "POLL.CYCLE.FAILED"; name: string; error: PlainError; retryInMs: number };

export interface PollContext {
  name: string;
  pollIntervalMs: number;
  wakeDelayMs: number;
  errorBackoff: BackoffPolicy;
  retryBackoff: BackoffPolicy;
  waitSeconds: number;
  jitterSeed: string | null;
  /** The trigger of the next cycle. */
  trigger: PollTrigger;
  /** What the cycle in flight (or the last one) was asked to do. */
  cycle: RunCycleInput | null;
  /** A wake-up arrived while a cycle was in flight or the loop was held back: serve it right after. */
  wakePending: boolean;
  /** The next cycle reads from the start (see RunCycleInput.rescan). */
  rescan: boolean;
  /** The next cycle does not long-poll (the last one failed). */
  quick: boolean;
  /** Consecutive failed cycles, capped where the backoff delay reaches maxMs (keeps the state space finite). */
  consecutiveErrors: number;
  /** Consecutive `next: "retry"` cycles, capped the same way. */
  retryAttempts: number;
  /** With `next: "pause"`: how long the current pause lasts. */
  pauseMs: number;
  /** With `next: "later"`: how long until the next cycle. */
  laterMs: number;
  lastSummary: PollSummary | null;
  lastError: PlainError | null;
}

export const POLL_DEFAULTS = {
  pollIntervalMs: 15_000,
  wakeDelayMs: 1,
  errorBackoff: { initialMs: 1_000, maxMs: 60_000, factor: 2 },
  retryBackoff: { initialMs: 1_000, maxMs: 60_000, factor: 2 },
  waitSeconds: 0,
} as const;

/** Delay after `attempts` consecutive failures or retries (1-based); jittered only with a seed. */
export function pollRetryDelayMs(
  policy: BackoffPolicy,
  attempts: number,
  seed: string | null = null,
): number {
  return seed === null ? baseDelay(policy, attempts) : backoffDelay(policy, attempts, seed);
}

/** Smallest count whose base delay is already maxMs: counting further changes nothing. */
export function errorCountCap(policy: BackoffPolicy): number {
  let errors = 1;
  while (errors < 64 && baseDelay(policy, errors) < policy.maxMs) errors++;
  return errors;
}

/** The summary a `runCycle` done event carries (guards and actions see events typed as PollEvent only). */
function cycleOutput(event: unknown): PollSummary | null {
  const output = (event as { output?: PollSummary }).output;
  return output && typeof output === "object" ? output : null;
}

/** Which `next` the finished cycle asked for; a summary without one (an older caller) counts as idle. */
function nextOf(event: unknown): PollNext {
  return cycleOutput(event)?.next ?? "idle";
}

export const pollMachine = setup({
  types: {
    input: {} as PollInput,
    context: {} as PollContext,
    events: {} as PollEvent,
    tags: {} as "busy" | "settled",
  },
  actors: {
    runCycle: fromPromise<PollSummary, RunCycleInput>(async () => {
      throw new Error(
        'poll machine: actor "runCycle" was not provided; wire the inbox adapter with machine.provide()',
      );
    }),
    // Nothing to watch by default (the peers loop, graph traversal): only the interval drives the loop.
    watchInbox: fromCallback<PollEvent, { name: string }>(() => undefined),
  },
  actions: {
    // What the next cycle is asked to do, fixed on entry so the snapshot shows the cycle in flight; a cycle serves
    // every wake-up that came before it.
    beginCycle: assign(({ context }) => ({
      cycle: {
        trigger: context.trigger,
        wait: context.quick ? 0 : context.waitSeconds,
        rescan: context.rescan,
      },
      rescan: false,
      wakePending: false,
    })),
    rememberWake: assign({ wakePending: true }),
    recordSummary: assign(({ context, event }) => {
      const summary = cycleOutput(event);
      return {
        lastSummary: summary ?? context.lastSummary,
        consecutiveErrors: 0,
        quick: false,
        retryAttempts:
          summary?.next === "retry"
            ? Math.min(context.retryAttempts + 1, errorCountCap(context.retryBackoff))
            : 0,
      };
    }),
    // An early empty answer is how a restarting registry ends long-polls: read from the start after the pause.
    startPause: assign(({ context }) => ({
      pauseMs: Math.max(0, context.lastSummary?.pauseMs ?? 0),
      rescan: true,
    })),
    scheduleLater: assign(({ context }) => ({
      laterMs: Math.max(0, context.lastSummary?.laterMs ?? context.pollIntervalMs),
    })),
    recordFailure: assign(({ context, event }) => ({
      lastError: toPlainError((event as unknown as { error: unknown }).error, "poll.cycle"),
      consecutiveErrors: Math.min(context.consecutiveErrors + 1, errorCountCap(context.errorBackoff)),
      // Read the next time without waiting, and from the start: the failure may have been a registry restart.
      quick: true,
      rescan: true,
    })),
    // Standalone (graph traversal, a test without a parent) there is nobody to tell: skip instead of throwing.
    reportCycleDone: enqueueActions(({ context, self, enqueue }) => {
      if (!self._parent || context.lastSummary === null) return;
      enqueue.sendParent({
        type: "POLL.CYCLE.DONE",
        name: context.name,
        summary: context.lastSummary,
      } satisfies PollParentEvent);
    }),
    reportCycleFailed: enqueueActions(({ context, self, enqueue }) => {
      if (!self._parent || context.lastError === null) return;
      enqueue.sendParent({
        type: "POLL.CYCLE.FAILED",
        name: context.name,
        error: context.lastError,
        retryInMs: pollRetryDelayMs(context.errorBackoff, context.consecutiveErrors, context.jitterSeed),
      } satisfies PollParentEvent);
    }),
  },
  guards: {
    // Guards run before the transition's actions: they read the finished cycle's summary from the event.
    cycleAskedToPause: ({ event }) => nextOf(event) === "pause",
    cycleAskedAgain: ({ event }) => nextOf(event) === "again",
    wakePending: ({ context }) => context.wakePending,
    cycleKeptForRetry: ({ event }) => nextOf(event) === "retry",
    cycleAskedLater: ({ event }) => nextOf(event) === "later",
  },
  delays: {
    pollInterval: ({ context }) => context.pollIntervalMs,
    wakeDelay: ({ context }) => context.wakeDelayMs,
    errorBackoff: ({ context }) =>
      pollRetryDelayMs(context.errorBackoff, context.consecutiveErrors, context.jitterSeed),
    retryBackoff: ({ context }) =>
      pollRetryDelayMs(context.retryBackoff, context.retryAttempts, context.jitterSeed),
    emptyPause: ({ context }) => context.pauseMs,
    nextDue: ({ context }) => context.laterMs,
  },
}).createMachine({
  id: "poll",
  context: ({ input }) => ({
    name: input.name,
    pollIntervalMs: input.pollIntervalMs ?? POLL_DEFAULTS.pollIntervalMs,
    wakeDelayMs: input.wakeDelayMs ?? POLL_DEFAULTS.wakeDelayMs,
    errorBackoff: { ...POLL_DEFAULTS.errorBackoff, ...input.errorBackoff },
    retryBackoff: { ...POLL_DEFAULTS.retryBackoff, ...input.retryBackoff },
    waitSeconds: input.waitSeconds ?? POLL_DEFAULTS.waitSeconds,
    jitterSeed: input.jitterSeed ?? null,
    trigger: "start",
    cycle: null,
    wakePending: false,
    rescan: false,
    quick: false,
    consecutiveErrors: 0,
    retryAttempts: 0,
    pauseMs: 0,
    laterMs: 0,
    lastSummary: null,
    lastError: null,
  }),
  // The watcher lives as long as the loop: its wake-ups are events like any other.
  invoke: { id: "watchInbox", src: "watchInbox", input: ({ context }) => ({ name: context.name }) },
  // Catch up on anything that arrived while the gateway was down before waiting.
  initial: "polling",
  states: {
    polling: {
      tags: ["busy"],
      entry: "beginCycle",
      invoke: {
        id: "runCycle",
        src: "runCycle",
        input: ({ context }) => context.cycle ?? { trigger: context.trigger, wait: 0, rescan: false },
        onDone: [
          // The pause is a throttle for a registry that cannot long-poll: a wake-up does not shorten it.
          { guard: "cycleAskedToPause", target: "paused", actions: ["recordSummary", "reportCycleDone"] },
          {
            guard: "cycleAskedAgain",
            // Re-enter: a fresh cycle (a relay long-poll continues while the registry answers).
            target: "polling",
            reenter: true,
            actions: ["recordSummary", "reportCycleDone", assign({ trigger: "again" })],
          },
          {
            guard: "wakePending",
            target: "polling",
            reenter: true,
            actions: ["recordSummary", "reportCycleDone", assign({ trigger: "wake" })],
          },
          { guard: "cycleKeptForRetry", target: "retrying", actions: ["recordSummary", "reportCycleDone"] },
          { guard: "cycleAskedLater", target: "scheduled", actions: ["recordSummary", "reportCycleDone"] },
          { target: "waiting", actions: ["recordSummary", "reportCycleDone"] },
        ],
        onError: { target: "backoff", actions: ["recordFailure", "reportCycleFailed"] },
      },
      // Never a second cycle in flight: remember the wake-up instead.
      on: { "INBOX.WAKE": { actions: "rememberWake" } },
    },

    waiting: {
      tags: ["settled"],
      after: { pollInterval: { target: "polling", actions: assign({ trigger: "timer" }) } },
      on: { "INBOX.WAKE": "waking" },
    },

    // The rest of the burst a wake-up belongs to is served by the cycle about to start.
    waking: {
      tags: ["settled"],
      after: { wakeDelay: { target: "polling", actions: assign({ trigger: "wake" }) } },
    },

    paused: {
      tags: ["settled"],
      entry: "startPause",
      after: { emptyPause: { target: "polling", actions: assign({ trigger: "again" }) } },
      on: { "INBOX.WAKE": { actions: "rememberWake" } },
    },

    // Nothing is due before `laterMs`; new work (a wake-up) runs at once.
    scheduled: {
      tags: ["settled"],
      entry: "scheduleLater",
      after: { nextDue: { target: "polling", actions: assign({ trigger: "timer" }) } },
      on: { "INBOX.WAKE": "waking" },
    },

    // Something was kept for a retry; new work (a wake-up) need not wait behind it.
    retrying: {
      tags: ["settled"],
      after: { retryBackoff: { target: "polling", actions: assign({ trigger: "deferred" }) } },
      on: { "INBOX.WAKE": "waking" },
    },

    // A burst of inbox events must not defeat the backoff: a wake-up here is remembered, not run at once.
    backoff: {
      tags: ["settled"],
      after: { errorBackoff: { target: "polling", actions: assign({ trigger: "retry" }) } },
      on: { "INBOX.WAKE": { actions: "rememberWake" } },
    },

    stopped: { type: "final" },
  },
  on: { STOP: ".stopped" },
});

export type PollMachine = typeof pollMachine;
