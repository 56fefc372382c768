// Inbox and handshake reconciliation loop: one cycle at a time, woken at once by inbox events, reconciled on a
// timer, backing off exponentially while cycles fail. A state machine instead of a flag, so cycles never overlap.
import { assign, enqueueActions, fromPromise, setup } from "xstate";
import { type BackoffPolicy, baseDelay } from "./backoff.js";
import { type PlainError, toPlainError } from "./types.js";

export interface PollInput {
  /** Reconciliation period when nothing wakes the loop. Default 15000. */
  pollIntervalMs?: number;
  errorBackoff?: Partial<BackoffPolicy>;
}

/** Why a cycle runs (for logs and status). */
export type PollTrigger = "start" | "timer" | "wake" | "retry";

export interface RunCycleInput {
  trigger: PollTrigger;
}

/** An incoming handshake request seen in `pilotctl pending`. */
export interface PendingRequest {
  nodeId: number;
  justification: string;
  /** ms since the epoch. */
  receivedAt: number;
}

/** The plain result of one cycle; the parent routes `pending` and `trusted` to the per-peer handshake actors. */
export interface PollSummary {
  trigger: PollTrigger;
  /** Inbound messages: dispatched to sessions, refused by admission, left for a retry. */
  dispatched: number;
  refused: number;
  deferred: number;
  pending: PendingRequest[];
  /** Node ids in our trust list, or null when the trust list could not be read this cycle. */
  trusted: number[] | null;
}

export type PollEvent = { type: "INBOX.WAKE" } | { type: "STOP" };

/** What the poll machine tells its parent. */
export type PollParentEvent =
  | { type: "POLL.CYCLE.DONE"; summary: PollSummary }
  | { type: "POLL.CYCLE.FAILED"; error: PlainError; retryInMs: number };

export interface PollContext {
  pollIntervalMs: number;
  errorBackoff: BackoffPolicy;
  /** The trigger of the cycle in flight (or of the next one). */
  trigger: PollTrigger;
  /** A wake-up arrived while a cycle was in flight or backing off: run one more cycle right after. */
  wakePending: boolean;
  /** Consecutive failed cycles, capped where the backoff delay reaches maxMs (keeps the state space finite). */
  consecutiveErrors: number;
  lastSummary: PollSummary | null;
  lastError: PlainError | null;
}

export const POLL_DEFAULTS = {
  pollIntervalMs: 15_000,
  errorBackoff: { initialMs: 1_000, maxMs: 60_000, factor: 2 },
} as const;

/** Delay after `errors` consecutive failures (1-based). No jitter: the loop is local to this gateway. */
export function pollRetryDelayMs(policy: BackoffPolicy, errors: number): number {
  return baseDelay(policy, errors);
}

/** Smallest error count whose delay is already maxMs: counting further changes nothing. */
export function errorCountCap(policy: BackoffPolicy): number {
  let errors = 1;
  while (errors < 64 && pollRetryDelayMs(policy, errors) < policy.maxMs) errors++;
  return errors;
}

export const pollMachine = setup({
  types: {
    input: {} as PollInput,
    context: {} as PollContext,
    events: {} as PollEvent,
  },
  actors: {
    runCycle: fromPromise<PollSummary, RunCycleInput>(async () => {
      throw new Error(
        'poll machine: actor "runCycle" was not provided; wire the inbox adapter with machine.provide()',
      );
    }),
  },
  actions: {
    // Standalone (graph traversal, a test without a parent) there is nobody to tell: skip instead of throwing.
    reportCycleDone: enqueueActions(({ context, self, enqueue }) => {
      if (!self._parent || context.lastSummary === null) return;
      enqueue.sendParent({ type: "POLL.CYCLE.DONE", summary: context.lastSummary } satisfies PollParentEvent);
    }),
    reportCycleFailed: enqueueActions(({ context, self, enqueue }) => {
      if (!self._parent || context.lastError === null) return;
      enqueue.sendParent({
        type: "POLL.CYCLE.FAILED",
        error: context.lastError,
        retryInMs: pollRetryDelayMs(context.errorBackoff, context.consecutiveErrors),
      } satisfies PollParentEvent);
    }),
  },
  guards: {
    wakePending: ({ context }) => context.wakePending,
  },
  delays: {
    pollInterval: ({ context }) => context.pollIntervalMs,
    errorBackoff: ({ context }) => pollRetryDelayMs(context.errorBackoff, context.consecutiveErrors),
  },
}).createMachine({
  id: "poll",
  context: ({ input }) => ({
    pollIntervalMs: input.pollIntervalMs ?? POLL_DEFAULTS.pollIntervalMs,
    errorBackoff: { ...POLL_DEFAULTS.errorBackoff, ...input.errorBackoff },
    trigger: "start",
    wakePending: false,
    consecutiveErrors: 0,
    lastSummary: null,
    lastError: null,
  }),
  // Catch up on anything that arrived while the gateway was down before waiting.
  initial: "polling",
  states: {
    waiting: {
      after: { pollInterval: { target: "polling", actions: assign({ trigger: "timer" }) } },
      on: { "INBOX.WAKE": { target: "polling", actions: assign({ trigger: "wake" }) } },
    },

    polling: {
      invoke: {
        id: "runCycle",
        src: "runCycle",
        input: ({ context }) => ({ trigger: context.trigger }),
        onDone: [
          {
            guard: "wakePending",
            // Re-enter: a fresh cycle for the wake-up that arrived during this one.
            target: "polling",
            reenter: true,
            actions: [
              assign({
                lastSummary: ({ event }) => event.output,
                consecutiveErrors: 0,
                wakePending: false,
                trigger: "wake",
              }),
              "reportCycleDone",
            ],
          },
          {
            target: "waiting",
            actions: [
              assign({ lastSummary: ({ event }) => event.output, consecutiveErrors: 0 }),
              "reportCycleDone",
            ],
          },
        ],
        onError: {
          target: "backoff",
          actions: [
            assign({
              lastError: ({ event }) => toPlainError(event.error, "poll.cycle"),
              consecutiveErrors: ({ context }) =>
                Math.min(context.consecutiveErrors + 1, errorCountCap(context.errorBackoff)),
            }),
            "reportCycleFailed",
          ],
        },
      },
      // Never a second cycle in flight: remember the wake-up instead.
      on: { "INBOX.WAKE": { actions: assign({ wakePending: true }) } },
    },

    // A burst of inbox events must not defeat the backoff: a wake-up here is remembered, not run at once.
    backoff: {
      after: {
        errorBackoff: { target: "polling", actions: assign({ trigger: "retry", wakePending: false }) },
      },
      on: { "INBOX.WAKE": { actions: assign({ wakePending: true }) } },
    },

    stopped: { type: "final" },
  },
  on: { STOP: ".stopped" },
});

export type PollMachine = typeof pollMachine;
