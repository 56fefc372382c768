// Registry lifecycle of one account (the root actor of an account): register when discoverable, heartbeat while
// online, re-register when the registry forgot us, back off when it is unreachable, deregister when going private
// or stopping. Pure: the registry calls are named promise actors and persisting the agent id is a named action,
// all provided by the composition root with `accountMachine.provide(...)`.
import { assign, fromPromise, setup } from "xstate";
import { type BackoffPolicy, backoffDelay } from "./backoff.js";
import { type AgentMetadata, type PlainError, sameMetadata, toPlainError } from "./types.js";

export interface AccountMachineInput {
  accountId: string;
  discoverable: boolean;
  metadata: AgentMetadata;
  /** The id the registry gave this installation before (persisted), or null. */
  agentId: string | null;
  heartbeatIntervalMs?: number;
  maxHeartbeatFailures?: number;
  registerBackoff?: BackoffPolicy;
  deregisterTimeoutMs?: number;
}

export interface AccountContext {
  accountId: string;
  discoverable: boolean;
  metadata: AgentMetadata;
  agentId: string | null;
  heartbeatIntervalMs: number;
  maxHeartbeatFailures: number;
  registerBackoff: BackoffPolicy;
  deregisterTimeoutMs: number;
  /** Metadata changed since the registry last received it (sent with the next PATCH or registration). */
  metadataDirty: boolean;
  /** STOP arrived while a request was in flight: finish (bounded) and stop. */
  stopRequested: boolean;
  lastError: PlainError | null;
  /** The registry's `last_seen` from the last successful heartbeat. */
  lastHeartbeatAt: string | null;
  /** Consecutive failed heartbeats (reset by a successful heartbeat or registration). */
  heartbeatFailures: number;
  /** Consecutive failed registrations (reset by a successful one); drives the backoff. */
  registerAttempts: number;
  /** Delay of the pending registration retry while idle after a failure, else null. */
  nextRetryDelayMs: number | null;
}

export type AccountEvent =
  | { type: "VISIBILITY.CHANGED"; discoverable: boolean }
  | { type: "METADATA.CHANGED"; metadata: AgentMetadata }
  | { type: "TRANSPORT.READY"; pilotNodeId: number | null; pilotAddress: string | null }
  | { type: "REGISTER.NOW" }
  | { type: "STOP" };

export interface RegisterAgentInput {
  metadata: AgentMetadata;
  agentId: string | null;
}
export interface RegisterAgentOutput {
  agentId: string;
}
export interface SendHeartbeatInput {
  agentId: string;
}
export interface SendHeartbeatOutput {
  lastSeen: string;
}
export interface UpdateAgentInput {
  agentId: string;
  metadata: AgentMetadata;
}
export interface UpdateAgentOutput {
  agentId: string;
}
export interface DeregisterAgentInput {
  agentId: string;
}
/** Params of the `persistAgentId` / `forgetAgentId` actions. */
export interface AgentIdParams {
  accountId: string;
  agentId: string;
}

export const ACCOUNT_DEFAULTS = {
  heartbeatIntervalMs: 60_000,
  maxHeartbeatFailures: 3,
  registerBackoff: { initialMs: 1_000, maxMs: 300_000, factor: 2 },
  deregisterTimeoutMs: 5_000,
} as const;

const notProvided = (name: string) => async (): Promise<never> => {
  throw {
    kind: "http",
    operation: name,
    message: `${name} is not wired: provide it with accountMachine.provide({ actors })`,
  } satisfies PlainError;
};

function mergeTransport(
  metadata: AgentMetadata,
  event: { pilotNodeId: number | null; pilotAddress: string | null },
): AgentMetadata {
  return { ...metadata, pilotNodeId: event.pilotNodeId, pilotAddress: event.pilotAddress };
}

/** The metadata an event proposes, or null when the event carries none. */
function proposedMetadata(context: AccountContext, event: AccountEvent): AgentMetadata | null {
  if (event.type === "METADATA.CHANGED") return event.metadata;
  if (event.type === "TRANSPORT.READY") return mergeTransport(context.metadata, event);
  return null;
}

export const accountMachine = setup({
  types: {
    context: {} as AccountContext,
    events: {} as AccountEvent,
    input: {} as AccountMachineInput,
  },
  actors: {
    registerAgent: fromPromise<RegisterAgentOutput, RegisterAgentInput>(notProvided("registerAgent")),
    sendHeartbeat: fromPromise<SendHeartbeatOutput, SendHeartbeatInput>(notProvided("sendHeartbeat")),
    updateAgent: fromPromise<UpdateAgentOutput, UpdateAgentInput>(notProvided("updateAgent")),
    deregisterAgent: fromPromise<void, DeregisterAgentInput>(notProvided("deregisterAgent")),
  },
  actions: {
    // Side effects owned by the composition root (persist the id in plugin state); no-ops until provided.
    persistAgentId: (_, _params: AgentIdParams) => {},
    forgetAgentId: (_, _params: AgentIdParams) => {},
    storeMetadata: assign({
      metadata: ({ context, event }) => proposedMetadata(context, event) ?? context.metadata,
    }),
    markDirty: assign({ metadataDirty: true }),
    recordHeartbeatError: assign({
      heartbeatFailures: ({ context }) => context.heartbeatFailures + 1,
      lastError: ({ event }) => toPlainError("error" in event ? event.error : event, "heartbeat"),
    }),
    recordRegistration: assign({
      agentId: ({ context, event }) =>
        ("output" in event ? outputAgentId(event.output) : null) ?? context.agentId,
      registerAttempts: 0,
      nextRetryDelayMs: null,
      heartbeatFailures: 0,
      lastError: null,
    }),
    recordRegisterError: assign(({ context, event }) => {
      const attempts = context.registerAttempts + 1;
      return {
        registerAttempts: attempts,
        nextRetryDelayMs: backoffDelay(context.registerBackoff, attempts, context.metadata.installationId),
        lastError: registerError(context, "error" in event ? event.error : event),
      };
    }),
  },
  delays: {
    heartbeatInterval: ({ context }) => context.heartbeatIntervalMs,
    registerRetry: ({ context }) => context.nextRetryDelayMs ?? 0,
    deregisterTimeout: ({ context }) => context.deregisterTimeoutMs,
  },
  guards: {
    isDiscoverable: ({ context }) => context.discoverable,
    isStopRequested: ({ context }) => context.stopRequested,
    hasAgentId: ({ context }) => context.agentId !== null,
    isMetadataDirty: ({ context }) => context.metadataDirty,
    /** The event proposes metadata different from what we hold ("patch only if it differs"). */
    metadataDiffers: ({ context, event }) => {
      const next = proposedMetadata(context, event);
      return next !== null && !sameMetadata(next, context.metadata);
    },
    becomesDiscoverable: ({ context, event }) =>
      event.type === "VISIBILITY.CHANGED" && event.discoverable && !context.discoverable,
    becomesPrivate: ({ context, event }) =>
      event.type === "VISIBILITY.CHANGED" && !event.discoverable && context.discoverable,
    /** The registry no longer knows our id: re-register at once. */
    isNotFound: ({ event }) => "error" in event && toPlainError(event.error, "registry").kind === "not_found",
    /** This failure is the last one tolerated in a row. */
    isLastHeartbeatFailure: ({ context }) => context.heartbeatFailures + 1 >= context.maxHeartbeatFailures,
  },
}).createMachine({
  id: "account",
  context: ({ input }) => ({
    accountId: input.accountId,
    discoverable: input.discoverable,
    metadata: input.metadata,
    agentId: input.agentId,
    heartbeatIntervalMs: input.heartbeatIntervalMs ?? ACCOUNT_DEFAULTS.heartbeatIntervalMs,
    maxHeartbeatFailures: input.maxHeartbeatFailures ?? ACCOUNT_DEFAULTS.maxHeartbeatFailures,
    registerBackoff: input.registerBackoff ?? { ...ACCOUNT_DEFAULTS.registerBackoff },
    deregisterTimeoutMs: input.deregisterTimeoutMs ?? ACCOUNT_DEFAULTS.deregisterTimeoutMs,
    metadataDirty: false,
    stopRequested: false,
    lastError: null,
    lastHeartbeatAt: null,
    heartbeatFailures: 0,
    registerAttempts: 0,
    nextRetryDelayMs: null,
  }),
  initial: "starting",
  states: {
    // Transient: decide where a fresh account begins.
    starting: {
      always: [{ guard: "isDiscoverable", target: "registering" }, { target: "private" }],
    },

    private: {
      on: {
        "VISIBILITY.CHANGED": [
          {
            guard: "becomesDiscoverable",
            target: "registering",
            actions: assign({ discoverable: true, registerAttempts: 0, nextRetryDelayMs: null }),
          },
        ],
        "METADATA.CHANGED": { guard: "metadataDiffers", actions: "storeMetadata" },
        "TRANSPORT.READY": { guard: "metadataDiffers", actions: "storeMetadata" },
        STOP: { target: "stopped" },
      },
    },

    // Discoverable, not registered: waiting out the backoff after a failed registration.
    idle: {
      after: { registerRetry: { target: "registering" } },
      on: {
        "REGISTER.NOW": { target: "registering" },
        "VISIBILITY.CHANGED": {
          guard: "becomesPrivate",
          target: "private",
          actions: assign({ discoverable: false, nextRetryDelayMs: null }),
        },
        "METADATA.CHANGED": { guard: "metadataDiffers", actions: "storeMetadata" },
        "TRANSPORT.READY": { guard: "metadataDiffers", actions: "storeMetadata" },
        STOP: { target: "stopped" },
      },
    },

    registering: {
      entry: assign({ metadataDirty: false, nextRetryDelayMs: null }),
      invoke: {
        id: "registerAgent",
        src: "registerAgent",
        input: ({ context }) => ({ metadata: context.metadata, agentId: context.agentId }),
        onDone: {
          target: "#account.registered",
          actions: [
            "recordRegistration",
            { type: "persistAgentId", params: ({ context }) => agentIdParams(context) },
          ],
        },
        onError: { target: "#account.registerFailed", actions: "recordRegisterError" },
      },
      on: {
        // Let the registration finish, then deregister: aborting could leave a record we do not know about.
        "VISIBILITY.CHANGED": { actions: assign({ discoverable: ({ event }) => event.discoverable }) },
        "METADATA.CHANGED": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
        "TRANSPORT.READY": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
        STOP: [
          { guard: "hasAgentId", target: "deregistering", actions: assign({ stopRequested: true }) },
          { target: "stopped" },
        ],
      },
    },

    // Same request as registering (full metadata, known id), entered because the registry lost us or
    // heartbeats kept failing; a separate state so status shows why.
    reregistering: {
      entry: assign({ metadataDirty: false, nextRetryDelayMs: null }),
      invoke: {
        id: "registerAgent",
        src: "registerAgent",
        input: ({ context }) => ({ metadata: context.metadata, agentId: context.agentId }),
        onDone: {
          target: "#account.registered",
          actions: [
            "recordRegistration",
            { type: "persistAgentId", params: ({ context }) => agentIdParams(context) },
          ],
        },
        onError: { target: "#account.registerFailed", actions: "recordRegisterError" },
      },
      on: {
        "VISIBILITY.CHANGED": { actions: assign({ discoverable: ({ event }) => event.discoverable }) },
        "METADATA.CHANGED": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
        "TRANSPORT.READY": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
        STOP: [
          { guard: "hasAgentId", target: "deregistering", actions: assign({ stopRequested: true }) },
          { target: "stopped" },
        ],
      },
    },

    // Transient: a registration succeeded (the id is in context and persisted); route by what happened meanwhile.
    registered: {
      always: [{ guard: "isDiscoverable", target: "online" }, { target: "deregistering" }],
    },

    // Transient: a registration failed (lastError set); back off unless we should not be registered anyway.
    registerFailed: {
      always: [
        { guard: "isDiscoverable", target: "idle" },
        { target: "private", actions: assign({ nextRetryDelayMs: null }) },
      ],
    },

    online: {
      initial: "waiting",
      on: {
        "VISIBILITY.CHANGED": {
          guard: "becomesPrivate",
          target: "deregistering",
          actions: assign({ discoverable: false }),
        },
        STOP: { target: "deregistering", actions: assign({ stopRequested: true }) },
      },
      states: {
        waiting: {
          always: { guard: "isMetadataDirty", target: "updating" },
          after: { heartbeatInterval: { target: "beating" } },
          on: {
            "METADATA.CHANGED": { guard: "metadataDiffers", target: "updating", actions: "storeMetadata" },
            "TRANSPORT.READY": { guard: "metadataDiffers", target: "updating", actions: "storeMetadata" },
          },
        },
        beating: {
          invoke: {
            id: "sendHeartbeat",
            src: "sendHeartbeat",
            input: ({ context }) => ({ agentId: context.agentId ?? "" }),
            onDone: {
              target: "waiting",
              actions: assign({
                lastHeartbeatAt: ({ event }) => event.output.lastSeen,
                heartbeatFailures: 0,
                lastError: null,
              }),
            },
            onError: [
              { guard: "isNotFound", target: "#account.reregistering", actions: "recordHeartbeatError" },
              {
                guard: "isLastHeartbeatFailure",
                target: "#account.reregistering",
                actions: "recordHeartbeatError",
              },
              { target: "waiting", actions: "recordHeartbeatError" },
            ],
          },
          on: {
            // Never a second request while the heartbeat is in flight: note it, PATCH after.
            "METADATA.CHANGED": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
            "TRANSPORT.READY": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
          },
        },
        updating: {
          entry: assign({ metadataDirty: false }),
          invoke: {
            id: "updateAgent",
            src: "updateAgent",
            input: ({ context }) => ({ agentId: context.agentId ?? "", metadata: context.metadata }),
            onDone: {
              target: "waiting",
              actions: [
                assign({
                  agentId: ({ context, event }) => outputAgentId(event.output) ?? context.agentId,
                  lastError: null,
                }),
                { type: "persistAgentId", params: ({ context }) => agentIdParams(context) },
              ],
            },
            onError: [
              {
                guard: "isNotFound",
                target: "#account.reregistering",
                actions: assign({ lastError: ({ event }) => toPlainError(event.error, "update") }),
              },
              {
                // Retry with the next heartbeat's slot, never in a tight loop.
                target: "retryingUpdate",
                actions: assign({ lastError: ({ event }) => toPlainError(event.error, "update") }),
              },
            ],
          },
          on: {
            "METADATA.CHANGED": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
            "TRANSPORT.READY": { guard: "metadataDiffers", actions: ["storeMetadata", "markDirty"] },
          },
        },
        // An update failed: heartbeat on schedule, then try the update again.
        retryingUpdate: {
          after: { heartbeatInterval: { target: "beating", actions: "markDirty" } },
          on: {
            "METADATA.CHANGED": { guard: "metadataDiffers", target: "updating", actions: "storeMetadata" },
            "TRANSPORT.READY": { guard: "metadataDiffers", target: "updating", actions: "storeMetadata" },
          },
        },
      },
    },

    // Entered only with a known agent id (every transition here comes from a registered state).
    deregistering: {
      invoke: {
        id: "deregisterAgent",
        src: "deregisterAgent",
        input: ({ context }) => ({ agentId: context.agentId ?? "" }),
        onDone: {
          target: "deregistered",
          actions: [
            { type: "forgetAgentId", params: ({ context }) => agentIdParams(context) },
            assign({ agentId: null }),
          ],
        },
        // A failed DELETE never blocks: the registry expires the record after its TTL.
        onError: {
          target: "deregistered",
          actions: assign({ lastError: ({ event }) => toPlainError(event.error, "deregister") }),
        },
      },
      after: {
        deregisterTimeout: {
          target: "deregistered",
          actions: assign({
            lastError: ({ context }) => ({
              kind: "timeout" as const,
              operation: "deregister",
              message: `the registry did not confirm deregistration within ${context.deregisterTimeoutMs} ms; it will drop the agent when its heartbeat expires`,
            }),
          }),
        },
      },
      on: {
        "VISIBILITY.CHANGED": { actions: assign({ discoverable: ({ event }) => event.discoverable }) },
        "METADATA.CHANGED": { guard: "metadataDiffers", actions: "storeMetadata" },
        "TRANSPORT.READY": { guard: "metadataDiffers", actions: "storeMetadata" },
        STOP: { actions: assign({ stopRequested: true }) },
      },
    },

    // Transient: the DELETE ended (or timed out); stop, or follow visibility.
    deregistered: {
      entry: assign({ heartbeatFailures: 0 }),
      always: [
        { guard: "isStopRequested", target: "stopped" },
        {
          guard: "isDiscoverable",
          target: "registering",
          actions: assign({ registerAttempts: 0 }),
        },
        { target: "private" },
      ],
    },

    stopped: { type: "final" },
  },
});

function outputAgentId(output: unknown): string | null {
  const value =
    typeof output === "object" && output !== null ? (output as { agentId?: unknown }).agentId : null;
  return typeof value === "string" && value.length > 0 ? value : null;
}

/** Registration failures as users should read them; a hostname conflict says what to change. */
function registerError(context: AccountContext, reason: unknown): PlainError {
  const error = toPlainError(reason, "register");
  // A message that already names our hostname was written for users by the composition root (it knows the
  // registry's release details); keep it.
  if (error.kind !== "conflict" || error.message.startsWith(`hostname "${context.metadata.hostname}"`))
    return error;
  return {
    ...error,
    message: `hostname "${context.metadata.hostname}" is held by another installation that is online; set a different hostname for account "${context.accountId}" or stop the other installation (retrying with backoff)`,
  };
}

function agentIdParams(context: AccountContext): AgentIdParams {
  return { accountId: context.accountId, agentId: context.agentId ?? "" };
}
