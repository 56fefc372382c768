// The inbox loops the way tests and benches start them, outside src (where only the account root is created):
// the poll machine with one inbox adapter provided as its `runCycle` (and, for Pilot, its directory watcher as
// `watchInbox`), started, behind the small handles the adapter tests and benches were written against.
import { type Actor, createActor, fromCallback, fromPromise, type SnapshotFrom, waitFor } from "xstate";
import {
  createPilotInbox,
  emptyScanSummary,
  PILOT_RETRY_BACKOFF,
  type PilotInboxOptions,
  type ScanSummary,
} from "../../src/adapters/pilot/pilot-inbox.js";
import {
  createRelayInbox,
  DEFAULT_RELAY_BACKOFF,
  DEFAULT_RELAY_RETRY_BACKOFF,
  DEFAULT_RELAY_WAIT_SECONDS,
  type RelayInboxOptions,
  type RelayReceiverStatus,
} from "../../src/adapters/relay/relay-inbox.js";
import { type BackoffPolicy, fnv1a32 } from "../../src/machines/backoff.js";
import { type PollInput, type PollMachine, pollMachine } from "../../src/machines/poll.machine.js";

export interface RelayReceiverOptions extends RelayInboxOptions {
  /** Long-poll seconds per inbox read (0-30, default 25). */
  waitSeconds?: number;
  /** Backoff after a failed cycle (read, ack, dead-letter copy). */
  backoff?: BackoffPolicy;
  /** Backoff after the sink asked to retry a message. */
  retryBackoff?: BackoffPolicy;
}

export interface RelayReceiver {
  readonly actor: Actor<PollMachine>;
  /** Stops the loop: the in-flight long-poll is aborted at once; a message being processed finishes first. */
  close(): Promise<void>;
  status(): RelayReceiverStatus;
}

export function relayPollInput(options: RelayReceiverOptions): PollInput {
  return {
    name: "inbox",
    waitSeconds: Math.min(30, Math.max(0, options.waitSeconds ?? DEFAULT_RELAY_WAIT_SECONDS)),
    errorBackoff: options.backoff ?? DEFAULT_RELAY_BACKOFF,
    retryBackoff: options.retryBackoff ?? DEFAULT_RELAY_RETRY_BACKOFF,
    // A hash: the installation id is a secret and the snapshot is not.
    jitterSeed: fnv1a32(options.installationId).toString(16),
  };
}

export function startRelayReceiver(options: RelayReceiverOptions): RelayReceiver {
  const inbox = createRelayInbox(options);
  const machine = pollMachine.provide({
    actors: { runCycle: fromPromise(({ input, signal }) => inbox.runCycle(input, signal)) },
  });
  const actor = createActor(machine, { input: relayPollInput(options) });
  actor.start();
  return {
    actor,
    async close() {
      if (actor.getSnapshot().status === "active") actor.send({ type: "STOP" });
      await inbox.close();
    },
    status: () => inbox.status(),
  };
}

export interface PilotReceiverOptions extends PilotInboxOptions {
  /** Start the directory watcher (default true). When false only `wake()`/`scan()` run cycles early. */
  watch?: boolean;
  /** Called on every watcher wake-up (other than our own deletions). */
  onWake?: () => void;
  pollIntervalMs?: number;
  retryBackoff?: BackoffPolicy;
}

export interface PilotReceiver {
  readonly inbox: string;
  readonly actor: Actor<PollMachine>;
  /** Sends INBOX.WAKE: a cycle now, or one more right after the one in flight. */
  wake(): void;
  /**
   * Wakes the loop and resolves once it settled after a cycle that started after this call (so files written
   * before the call were seen), with what the cycles did that finished since the call (the one in flight
   * included: at start, the loop's first cycle).
   */
  scan(): Promise<ScanSummary>;
  totals(): ScanSummary;
  close(): Promise<void>;
}

function addScan(into: ScanSummary, from: ScanSummary, minus?: ScanSummary): void {
  for (const k of Object.keys(into) as Array<keyof ScanSummary>) into[k] += from[k] - (minus?.[k] ?? 0);
}

export function startPilotReceiver(options: PilotReceiverOptions): PilotReceiver {
  const inbox = createPilotInbox(options);
  // Per cycle, what it did (from the inbox's totals), so that scan() can report the cycles it waited for.
  const cycles: ScanSummary[] = [];
  let started = 0;
  const machine = pollMachine.provide({
    actors: {
      runCycle: fromPromise(async ({ input, signal }) => {
        const index = started++;
        const before = inbox.totals();
        try {
          return await inbox.runCycle(input, signal);
        } finally {
          const delta = emptyScanSummary();
          addScan(delta, inbox.totals(), before);
          cycles[index] = delta;
        }
      }),
      watchInbox: fromCallback(({ sendBack }) => {
        if (options.watch === false) return undefined;
        return inbox.watch(() => {
          options.onWake?.();
          sendBack({ type: "INBOX.WAKE" });
        });
      }),
    },
  });
  const input: PollInput = { name: "inbox", retryBackoff: options.retryBackoff ?? PILOT_RETRY_BACKOFF };
  if (options.pollIntervalMs !== undefined) input.pollIntervalMs = options.pollIntervalMs;
  const actor = createActor(machine, { input });
  actor.start();

  const settledAfter = (requested: number) => (snapshot: SnapshotFrom<PollMachine>) =>
    snapshot.status !== "active" || (snapshot.hasTag("settled") && cycles.length > requested);

  return {
    inbox: inbox.inbox,
    actor,
    wake: () => actor.send({ type: "INBOX.WAKE" }),
    async scan() {
      const requested = started;
      // The first cycle not finished yet: the one in flight, if any, also handles files the test wrote.
      const from = cycles.length;
      actor.send({ type: "INBOX.WAKE" });
      await waitFor(actor, settledAfter(requested), { timeout: Number.POSITIVE_INFINITY });
      const summary = emptyScanSummary();
      for (const cycle of cycles.slice(from)) if (cycle) addScan(summary, cycle);
      return summary;
    },
    totals: () => inbox.totals(),
    async close() {
      if (actor.getSnapshot().status === "active") actor.send({ type: "STOP" });
      await inbox.close();
    },
  };
}
