// TEMPORARY: removed when the runtime uses the account tree. The old `startPilotReceiver` entry point, kept so
// src/runtime (rewritten in parallel) still builds: the Pilot inbox adapter driven by the poll machine.
import { createActor, fromCallback, fromPromise, waitFor } from "xstate";
import { pollMachine } from "../../machines/poll.machine.js";
import {
  createPilotInbox,
  PILOT_RETRY_BACKOFF,
  type PilotInboxOptions,
  type ScanSummary,
} from "./pilot-inbox.js";

export * from "./pilot-inbox.js";

/** @deprecated TEMPORARY: removed when the runtime uses the account tree. */
export interface PilotReceiver {
  readonly inbox: string;
  wake(): void;
  /** Wakes the loop and resolves once it settled after a cycle started after this call (with the totals' growth). */
  scan(): Promise<ScanSummary>;
  totals(): ScanSummary;
  close(): Promise<void>;
}

/** @deprecated TEMPORARY: removed when the runtime uses the account tree. */
export function startPilotReceiver(options: PilotInboxOptions): PilotReceiver {
  const inbox = createPilotInbox(options);
  let started = 0;
  let finished = 0;
  const actor = createActor(
    pollMachine.provide({
      actors: {
        runCycle: fromPromise(({ input, signal }) => {
          started++;
          return inbox.runCycle(input, signal).finally(() => {
            finished++;
          });
        }),
        watchInbox: fromCallback(({ sendBack }) => inbox.watch(() => sendBack({ type: "INBOX.WAKE" }))),
      },
    }),
    { input: { name: "inbox", retryBackoff: PILOT_RETRY_BACKOFF } },
  );
  actor.start();
  return {
    inbox: inbox.inbox,
    wake: () => actor.send({ type: "INBOX.WAKE" }),
    async scan() {
      const requested = started;
      const before = inbox.totals();
      actor.send({ type: "INBOX.WAKE" });
      await waitFor(actor, (s) => s.status !== "active" || (s.hasTag("settled") && finished > requested), {
        timeout: Number.POSITIVE_INFINITY,
      });
      const after = inbox.totals();
      for (const k of Object.keys(after) as Array<keyof ScanSummary>) after[k] -= before[k];
      return after;
    },
    totals: () => inbox.totals(),
    async close() {
      if (actor.getSnapshot().status === "active") actor.send({ type: "STOP" });
      await inbox.close();
    },
  };
}
