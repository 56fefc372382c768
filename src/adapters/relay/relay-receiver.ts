// TEMPORARY: removed when the runtime uses the account tree. The old `startRelayReceiver` entry point, kept so
// src/runtime (rewritten in parallel) still builds: the relay inbox adapter driven by the poll machine.
import { createActor, fromPromise } from "xstate";
import { type BackoffPolicy, fnv1a32 } from "../../machines/backoff.js";
import { pollMachine } from "../../machines/poll.machine.js";
import {
  createRelayInbox,
  DEFAULT_RELAY_BACKOFF,
  DEFAULT_RELAY_RETRY_BACKOFF,
  DEFAULT_RELAY_WAIT_SECONDS,
  type RelayInboxOptions,
  type RelayReceiverStatus,
} from "./relay-inbox.js";

export * from "./relay-inbox.js";

/** @deprecated TEMPORARY: removed when the runtime uses the account tree. */
export interface RelayReceiverOptions extends RelayInboxOptions {
  waitSeconds?: number;
  backoff?: BackoffPolicy;
  retryBackoff?: BackoffPolicy;
}

/** @deprecated TEMPORARY: removed when the runtime uses the account tree. */
export interface RelayReceiver {
  close(): Promise<void>;
  status(): RelayReceiverStatus;
}

/** @deprecated TEMPORARY: removed when the runtime uses the account tree. */
export function startRelayReceiver(options: RelayReceiverOptions): RelayReceiver {
  const inbox = createRelayInbox(options);
  const actor = createActor(
    pollMachine.provide({
      actors: { runCycle: fromPromise(({ input, signal }) => inbox.runCycle(input, signal)) },
    }),
    {
      input: {
        name: "inbox",
        waitSeconds: Math.min(30, Math.max(0, options.waitSeconds ?? DEFAULT_RELAY_WAIT_SECONDS)),
        errorBackoff: options.backoff ?? DEFAULT_RELAY_BACKOFF,
        retryBackoff: options.retryBackoff ?? DEFAULT_RELAY_RETRY_BACKOFF,
        jitterSeed: fnv1a32(options.installationId).toString(16),
      },
    },
  );
  actor.start();
  return {
    async close() {
      if (actor.getSnapshot().status === "active") actor.send({ type: "STOP" });
      await inbox.close();
    },
    status: () => inbox.status(),
  };
}
