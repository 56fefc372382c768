// How discoverable the account should be, read again on its own clock: a remote source (Convex) every refresh
// interval, a schedule exactly when its window flips. Each reading goes to the parent (the account root) as
// VISIBILITY.READ; a failed read keeps the last known value (the adapter's job) and tries again later.
import { assign, enqueueActions, fromPromise, setup } from "xstate";
import { type AgentMetadata, type PlainError, toPlainError } from "./types.js";

export interface VisibilityInput {
  /** When the source names no moment of change, read again after this long. */
  refreshMs: number;
  /** The runtime read the source before the account started: the first read here comes this much later. */
  firstReadInMs?: number;
}

export interface VisibilityReading {
  discoverable: boolean;
  /** The metadata to publish, built from the reading and the account's configuration. */
  metadata: AgentMetadata;
  /** ms until the source's next change (a schedule's next window), or null to use refreshMs. */
  nextChangeInMs: number | null;
}

export type VisibilityEvent = { type: "VISIBILITY.REFRESH" } | { type: "STOP" };

/** What the visibility machine tells its parent. */
export type VisibilityParentEvent = {
  type: "VISIBILITY.READ";
  discoverable: boolean;
  metadata: AgentMetadata;
};

export interface VisibilityContext {
  refreshMs: number;
  nextReadInMs: number;
  lastError: PlainError | null;
}

/** A schedule's flip is read half a second late (never early), at least a second apart. */
export function nextReadDelayMs(refreshMs: number, nextChangeInMs: number | null): number {
  if (nextChangeInMs === null) return refreshMs;
  return Math.max(1_000, Math.min(nextChangeInMs + 500, 2 ** 31 - 1));
}

export const visibilityMachine = setup({
  types: {
    input: {} as VisibilityInput,
    context: {} as VisibilityContext,
    events: {} as VisibilityEvent,
  },
  actors: {
    readVisibility: fromPromise<VisibilityReading, Record<string, never>>(async () => {
      throw new Error('visibility machine: actor "readVisibility" was not provided');
    }),
  },
  actions: {
    reportReading: enqueueActions(({ self, enqueue }, params: { reading: VisibilityReading }) => {
      if (!self._parent) return;
      enqueue.sendParent({
        type: "VISIBILITY.READ",
        discoverable: params.reading.discoverable,
        metadata: params.reading.metadata,
      } satisfies VisibilityParentEvent);
    }),
    scheduleNext: assign({
      nextReadInMs: ({ context }, params: { nextChangeInMs: number | null }) =>
        nextReadDelayMs(context.refreshMs, params.nextChangeInMs),
      lastError: null,
    }),
    recordReadError: assign({
      nextReadInMs: ({ context }) => context.refreshMs,
      lastError: ({ event }) => toPlainError("error" in event ? event.error : event, "visibility.read"),
    }),
  },
  delays: {
    nextRead: ({ context }) => context.nextReadInMs,
  },
}).createMachine({
  id: "visibility",
  context: ({ input }) => ({
    refreshMs: input.refreshMs,
    nextReadInMs: input.firstReadInMs ?? input.refreshMs,
    lastError: null,
  }),
  initial: "waiting",
  states: {
    waiting: {
      tags: ["settled"],
      after: { nextRead: { target: "reading" } },
      on: { "VISIBILITY.REFRESH": { target: "reading" } },
    },
    reading: {
      tags: ["busy"],
      invoke: {
        id: "readVisibility",
        src: "readVisibility",
        input: {},
        onDone: {
          target: "waiting",
          actions: [
            {
              type: "scheduleNext",
              params: ({ event }) => ({ nextChangeInMs: event.output.nextChangeInMs }),
            },
            { type: "reportReading", params: ({ event }) => ({ reading: event.output }) },
          ],
        },
        onError: { target: "waiting", actions: "recordReadError" },
      },
    },
    stopped: { type: "final" },
  },
  on: { STOP: ".stopped" },
});

export type VisibilityMachine = typeof visibilityMachine;
