// Pilot daemon supervision: find pilotctl, start (or attach to) the daemon, watch it by reading its status on the
// machine's own timer, and restart it with backoff and a budget that refills only after the daemon stayed up, so
// a crashing daemon cannot cause a storm. A daemon that looks up but whose sends to trusted peers keep failing
// (a restarted peer breaks the pair until both ends restart: docs/pilot.md) is restarted on DAEMON.SUSPECT, at
// most once per hold that grows with each such restart, so suspicion cannot flap.
import { assign, enqueueActions, fromPromise, setup } from "xstate";
import { type BackoffPolicy, baseDelay } from "./backoff.js";
import { type PlainError, toPlainError } from "./types.js";

export interface DaemonInput {
  /** true: this plugin starts, restarts and stops the daemon. false: observe only, never start or stop it. */
  manageDaemon: boolean;
  hostname: string;
  /** Restarts allowed before giving up; refilled after the daemon stayed up `stableAfterMs`. Default 5. */
  restartBudget?: number;
  restartBackoff?: Partial<BackoffPolicy>;
  /** How long the daemon must stay up before the restart budget is refilled. Default 60000. */
  stableAfterMs?: number;
  /** Grace between SIGTERM and SIGKILL given to `stopDaemon`; the machine waits twice this. Default 5000. */
  stopTimeoutMs?: number;
  /** Managed mode: how often `daemon status` is read while the daemon runs. Default 5000. */
  watchIntervalMs?: number;
  /** Observe-only mode: how often `daemon status` is read. Default 30000 (the daemon's heartbeat). */
  statusIntervalMs?: number;
  /** Managed mode: status reads failing this many times in a row count as an unhealthy daemon. Default 3. */
  unreadableStatusLimit?: number;
  /** pilotctl missing or unusable: how long until it is looked for again. Default 60000. */
  absentRecheckMs?: number;
  /** Restart budget exhausted: how long until one more round of starts is tried. Default 300000. */
  failedRetryMs?: number;
  /**
   * How long a (re)started daemon must run before DAEMON.SUSPECT may restart it: `initialMs` at first, times
   * `factor` after each restart for suspicion, up to `maxMs`. Default 60 s, x2, 30 min.
   */
  suspectBackoff?: Partial<BackoffPolicy>;
}

export interface BinaryCheck {
  present: boolean;
  /** Why pilotctl cannot be used (shown to the model and the owner). */
  reason?: string;
}

export interface DaemonIdentity {
  nodeId: number;
  address: string;
}

export interface DaemonStatus {
  running: boolean;
  responsive: boolean;
  nodeId: number | null;
  address: string | null;
}

export interface StartDaemonInput {
  hostname: string;
}

export interface StopDaemonInput {
  /** SIGTERM, wait this long, then SIGKILL: the actor's job. */
  graceMs: number;
}

export type DaemonEvent =
  | { type: "STOP" }
  | { type: "DAEMON.RETRY" }
  /** Sends to trusted, online peers keep failing although the daemon answers: restart it (managed only). */
  | { type: "DAEMON.SUSPECT"; reason: string };

/** What the daemon machine tells its parent. */
export type DaemonParentEvent =
  | { type: "DAEMON.READY"; nodeId: number; address: string }
  | { type: "DAEMON.LOST"; reason: string }
  | { type: "DAEMON.UNAVAILABLE"; reason: string };

export interface DaemonContext {
  manageDaemon: boolean;
  hostname: string;
  restartBudget: number;
  restartsLeft: number;
  /** Restarts since the daemon was last stable: drives the backoff delay. */
  restartAttempt: number;
  restartBackoff: BackoffPolicy;
  stableAfterMs: number;
  stopTimeoutMs: number;
  watchIntervalMs: number;
  statusIntervalMs: number;
  unreadableStatusLimit: number;
  /** Status reads of the running daemon that failed in a row. */
  unreadableStatuses: number;
  absentRecheckMs: number;
  failedRetryMs: number;
  suspectBackoff: BackoffPolicy;
  /** Restarts for suspicion so far (stops growing once the hold reached its maximum): drives the hold. */
  suspectRestarts: number;
  /** The running daemon has run its hold: DAEMON.SUSPECT may restart it. */
  suspectArmed: boolean;
  nodeId: number | null;
  address: string | null;
  /** Why the daemon is not usable right now (absent, crashed, failed, detached). */
  reason: string | null;
  lastError: PlainError | null;
}

export interface DaemonOutput {
  reason: string | null;
}

export const DAEMON_DEFAULTS = {
  restartBudget: 5,
  restartBackoff: { initialMs: 1_000, maxMs: 60_000, factor: 2 },
  stableAfterMs: 60_000,
  stopTimeoutMs: 5_000,
  // A daemon this plugin runs is checked often: messaging depends on it and a restart is ours to do.
  watchIntervalMs: 5_000,
  statusIntervalMs: 30_000,
  // One failed read is usually a slow answer; three in a row (15 s) is a daemon that does not answer.
  unreadableStatusLimit: 3,
  // Installing Pilot is an operator action: a minute keeps up with it without polling PATH all the time.
  absentRecheckMs: 60_000,
  // A daemon that used its whole budget is broken for a reason (config, port, disk): try again rarely, so a
  // cause that goes away (a reboot of the peer, a freed port) heals without restarting the gateway.
  failedRetryMs: 300_000,
  // Longer than the registry heartbeat (30 s) a fresh daemon needs to be reachable, and long enough that one
  // restart per peer outage is all suspicion can cause.
  suspectBackoff: { initialMs: 60_000, maxMs: 1_800_000, factor: 2 },
} as const;

/** The hold before DAEMON.SUSPECT may restart a daemon that was restarted for suspicion `restarts` times. */
export function suspectHoldMs(policy: BackoffPolicy, restarts: number): number {
  return baseDelay(policy, restarts + 1);
}

/** Delay before restart number `attempt` (1-based). No jitter: the daemon is local, there is no herd to spread. */
export function restartDelayMs(policy: BackoffPolicy, attempt: number): number {
  return baseDelay(policy, attempt);
}

/** A delay as the owner reads it in a reason: "45 s", "5 min". */
export function spokenDelay(ms: number): string {
  return ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.max(1, Math.round(ms / 1000))} s`;
}

function notProvided(name: string): never {
  throw new Error(
    `daemon machine: actor "${name}" was not provided; wire the Pilot adapter with machine.provide()`,
  );
}

export const daemonMachine = setup({
  types: {
    input: {} as DaemonInput,
    context: {} as DaemonContext,
    events: {} as DaemonEvent,
    output: {} as DaemonOutput,
  },
  actors: {
    checkBinary: fromPromise<BinaryCheck, Record<string, never>>(async () => notProvided("checkBinary")),
    startDaemon: fromPromise<DaemonIdentity, StartDaemonInput>(async () => notProvided("startDaemon")),
    readStatus: fromPromise<DaemonStatus, Record<string, never>>(async () => notProvided("readStatus")),
    stopDaemon: fromPromise<unknown, StopDaemonInput>(async () => notProvided("stopDaemon")),
  },
  actions: {
    // Standalone (graph traversal, a test without a parent) there is nobody to tell: skip instead of throwing.
    reportReady: enqueueActions(({ context, self, enqueue }) => {
      if (!self._parent || context.nodeId === null) return;
      enqueue.sendParent({
        type: "DAEMON.READY",
        nodeId: context.nodeId,
        address: context.address ?? "",
      } satisfies DaemonParentEvent);
    }),
    reportLost: enqueueActions(({ context, self, enqueue }) => {
      if (!self._parent) return;
      enqueue.sendParent({
        type: "DAEMON.LOST",
        reason: context.reason ?? "Pilot daemon lost",
      } satisfies DaemonParentEvent);
    }),
    reportUnavailable: enqueueActions(({ context, self, enqueue }) => {
      if (!self._parent) return;
      enqueue.sendParent({
        type: "DAEMON.UNAVAILABLE",
        reason: context.reason ?? "Pilot daemon unavailable",
      } satisfies DaemonParentEvent);
    }),
    refillBudget: assign({
      restartsLeft: ({ context }) => context.restartBudget,
      restartAttempt: 0,
    }),
    consumeRestart: assign({
      restartsLeft: ({ context }) => Math.max(0, context.restartsLeft - 1),
      restartAttempt: ({ context }) => context.restartAttempt + 1,
    }),
    forgetUnreadableStatuses: assign({ unreadableStatuses: 0 }),
    disarmSuspicion: assign({ suspectArmed: false }),
    // Observe-only: suspicion never restarts a daemon we do not run.
    armSuspicion: assign({ suspectArmed: ({ context }) => context.manageDaemon }),
    // Bounded: once the hold reached its maximum the count stops, so the context (and the graph) stays finite.
    countSuspectRestart: assign({
      suspectRestarts: ({ context }) =>
        suspectHoldMs(context.suspectBackoff, context.suspectRestarts) >= context.suspectBackoff.maxMs
          ? context.suspectRestarts
          : context.suspectRestarts + 1,
    }),
    forgetSuspectRestarts: assign({ suspectRestarts: 0 }),
  },
  // Guards that read an actor's output take it as params, so each stays named (and typed) in the diagram.
  guards: {
    managed: ({ context }) => context.manageDaemon,
    observeOnly: ({ context }) => !context.manageDaemon,
    hasBudget: ({ context }) => context.restartsLeft > 0,
    /** A daemon we run, past its hold: suspicion restarts it. */
    suspicionActs: ({ context }) => context.suspectArmed,
    /** `daemon stop` found a daemon pilotctl did not start (no PID file): it keeps running whatever we do. */
    foreignDaemon: (_, params: { error: unknown }) =>
      toPlainError(params.error, "pilot.daemon.stop").kind === "conflict",
    budgetExhausted: ({ context }) => context.restartsLeft <= 0,
    binaryPresent: (_, params: { check: BinaryCheck }) => params.check.present,
    /** Up, answering, and with a node id: usable for messaging. */
    daemonUsable: (_, params: { status: DaemonStatus }) =>
      params.status.running && params.status.responsive && params.status.nodeId !== null,
    /** A daemon we run is gone: restart it. */
    managedDaemonExited: ({ context }, params: { status: DaemonStatus }) =>
      context.manageDaemon && !params.status.running,
    /** A daemon we run is up but does not answer (e.g. spinning): stop it, then restart it. */
    managedDaemonUnresponsive: ({ context }, params: { status: DaemonStatus }) =>
      context.manageDaemon && params.status.running && !params.status.responsive,
    /** A daemon we only observe is down or does not answer: wait for whoever runs it. */
    observedDaemonGone: ({ context }, params: { status: DaemonStatus }) =>
      !context.manageDaemon && !(params.status.running && params.status.responsive),
    /** This failed read makes `unreadableStatusLimit` in a row: treat the daemon as unhealthy. */
    statusUnreadableTooOften: ({ context }) =>
      context.unreadableStatuses + 1 >= context.unreadableStatusLimit,
    /** The daemon we observe came back as another node (restarted with a new identity): re-register it. */
    identityChanged: ({ context }, params: { status: DaemonStatus }) =>
      params.status.nodeId !== null &&
      (params.status.nodeId !== context.nodeId || params.status.address !== context.address),
  },
  delays: {
    restartBackoff: ({ context }) => restartDelayMs(context.restartBackoff, context.restartAttempt + 1),
    stableAfter: ({ context }) => context.stableAfterMs,
    statusInterval: ({ context }) => context.statusIntervalMs,
    // Between status reads of a running daemon: often for one we run, at the daemon's heartbeat for one we observe.
    watchInterval: ({ context }) =>
      context.manageDaemon ? context.watchIntervalMs : context.statusIntervalMs,
    // The actor escalates SIGTERM to SIGKILL after stopTimeoutMs; give it as long again before giving up on it.
    stopDeadline: ({ context }) => context.stopTimeoutMs * 2,
    absentRecheck: ({ context }) => context.absentRecheckMs,
    failedRetry: ({ context }) => context.failedRetryMs,
    suspectHold: ({ context }) => suspectHoldMs(context.suspectBackoff, context.suspectRestarts),
  },
}).createMachine({
  id: "daemon",
  context: ({ input }) => ({
    manageDaemon: input.manageDaemon,
    hostname: input.hostname,
    restartBudget: input.restartBudget ?? DAEMON_DEFAULTS.restartBudget,
    restartsLeft: input.restartBudget ?? DAEMON_DEFAULTS.restartBudget,
    restartAttempt: 0,
    restartBackoff: { ...DAEMON_DEFAULTS.restartBackoff, ...input.restartBackoff },
    stableAfterMs: input.stableAfterMs ?? DAEMON_DEFAULTS.stableAfterMs,
    stopTimeoutMs: input.stopTimeoutMs ?? DAEMON_DEFAULTS.stopTimeoutMs,
    watchIntervalMs: input.watchIntervalMs ?? DAEMON_DEFAULTS.watchIntervalMs,
    statusIntervalMs: input.statusIntervalMs ?? DAEMON_DEFAULTS.statusIntervalMs,
    unreadableStatusLimit: input.unreadableStatusLimit ?? DAEMON_DEFAULTS.unreadableStatusLimit,
    unreadableStatuses: 0,
    absentRecheckMs: input.absentRecheckMs ?? DAEMON_DEFAULTS.absentRecheckMs,
    failedRetryMs: input.failedRetryMs ?? DAEMON_DEFAULTS.failedRetryMs,
    suspectBackoff: { ...DAEMON_DEFAULTS.suspectBackoff, ...input.suspectBackoff },
    suspectRestarts: 0,
    suspectArmed: false,
    nodeId: null,
    address: null,
    reason: null,
    lastError: null,
  }),
  initial: "checking",
  output: ({ context }) => ({ reason: context.reason }),
  states: {
    checking: {
      invoke: {
        id: "checkBinary",
        src: "checkBinary",
        input: {},
        onDone: [
          {
            guard: { type: "binaryPresent", params: ({ event }) => ({ check: event.output }) },
            target: "starting",
          },
          {
            target: "absent",
            actions: assign({
              reason: ({ event }) =>
                event.output.reason ??
                "pilotctl was not found: install Pilot Protocol or set pilot.pilotctl; running discovery-only",
            }),
          },
        ],
        onError: {
          target: "absent",
          actions: assign(({ event }) => {
            const lastError = toPlainError(event.error, "pilotctl.check");
            return {
              lastError,
              reason: `pilotctl could not be run (${lastError.message}): check pilot.pilotctl; running discovery-only`,
            };
          }),
        },
      },
      on: { STOP: "stopped" },
    },

    // Discovery-only: the registry still works, messaging tells the model why not. Looked for again on a timer
    // (someone may install Pilot meanwhile) or at once on DAEMON.RETRY (the operator's refresh).
    absent: {
      entry: "reportUnavailable",
      after: { absentRecheck: { target: "checking", actions: "refillBudget" } },
      on: {
        "DAEMON.RETRY": { target: "checking", actions: "refillBudget" },
        STOP: "stopped",
      },
    },

    starting: {
      initial: "choosing",
      states: {
        choosing: {
          always: [{ guard: "managed", target: "launching" }, { target: "attaching" }],
        },
        launching: {
          invoke: {
            id: "startDaemon",
            src: "startDaemon",
            input: ({ context }) => ({ hostname: context.hostname }),
            onDone: {
              target: "#daemon.running",
              actions: assign({
                nodeId: ({ event }) => event.output.nodeId,
                address: ({ event }) => event.output.address,
                reason: null,
              }),
            },
            onError: {
              target: "#daemon.crashed",
              actions: assign(({ event }) => {
                const lastError = toPlainError(event.error, "pilot.daemon.start");
                return { lastError, reason: `Pilot daemon failed to start: ${lastError.message}` };
              }),
            },
          },
        },
        attaching: {
          invoke: {
            id: "readStatus",
            src: "readStatus",
            input: {},
            onDone: [
              {
                guard: { type: "daemonUsable", params: ({ event }) => ({ status: event.output }) },
                target: "#daemon.running",
                actions: assign({
                  nodeId: ({ event }) => event.output.nodeId,
                  address: ({ event }) => event.output.address,
                  reason: null,
                }),
              },
              {
                target: "#daemon.detached",
                actions: assign({
                  reason:
                    "Pilot daemon is not running and this plugin does not manage it: start it with `pilotctl daemon start` or set pilot.manageDaemon",
                }),
              },
            ],
            onError: {
              target: "#daemon.detached",
              actions: assign(({ event }) => {
                const lastError = toPlainError(event.error, "pilot.daemon.status");
                return { lastError, reason: `Pilot daemon status could not be read: ${lastError.message}` };
              }),
            },
          },
        },
      },
      on: {
        STOP: [{ guard: "managed", target: "stopping" }, { target: "stopped" }],
      },
    },

    // Liveness by `daemon status` on the machine's own timer: the daemon runs detached, so there is no child process
    // to wait on, and a timer here is visible in the graph, the diagram and the tests.
    running: {
      entry: ["forgetUnreadableStatuses", "disarmSuspicion", "reportReady"],
      after: {
        // Refill only after the daemon stayed up: refilling on "ready" would restart a crashing daemon forever.
        stableAfter: { actions: "refillBudget" },
        suspectHold: { actions: "armSuspicion" },
      },
      initial: "watching",
      states: {
        watching: {
          after: { watchInterval: { target: "reading" } },
        },
        reading: {
          invoke: {
            id: "readStatus",
            src: "readStatus",
            input: {},
            onDone: [
              {
                guard: { type: "managedDaemonExited", params: ({ event }) => ({ status: event.output }) },
                target: "#daemon.crashed",
                actions: [assign({ reason: "Pilot daemon exited" }), "reportLost"],
              },
              {
                guard: {
                  type: "managedDaemonUnresponsive",
                  params: ({ event }) => ({ status: event.output }),
                },
                target: "#daemon.recycling",
                actions: [
                  assign({ reason: "Pilot daemon is running but not responding; restarting it" }),
                  "reportLost",
                ],
              },
              {
                guard: { type: "observedDaemonGone", params: ({ event }) => ({ status: event.output }) },
                target: "#daemon.detached",
                actions: [
                  assign({
                    reason: "Pilot daemon stopped responding (observed via `pilotctl daemon status`)",
                  }),
                  "reportLost",
                ],
              },
              {
                guard: { type: "identityChanged", params: ({ event }) => ({ status: event.output }) },
                target: "watching",
                actions: [
                  assign({
                    nodeId: ({ event }) => event.output.nodeId,
                    address: ({ event }) => event.output.address,
                  }),
                  "forgetUnreadableStatuses",
                  "reportReady",
                ],
              },
              { target: "watching", actions: "forgetUnreadableStatuses" },
            ],
            onError: [
              // Observe-only: a status we cannot read is a daemon we cannot use, and not ours to fix.
              {
                guard: "observeOnly",
                target: "#daemon.detached",
                actions: [
                  assign(({ event }) => {
                    const lastError = toPlainError(event.error, "pilot.daemon.status");
                    return {
                      lastError,
                      reason: `Pilot daemon status could not be read: ${lastError.message}`,
                    };
                  }),
                  "reportLost",
                ],
              },
              {
                guard: "statusUnreadableTooOften",
                target: "#daemon.recycling",
                actions: [
                  assign(({ context, event }) => {
                    const lastError = toPlainError(event.error, "pilot.daemon.status");
                    return {
                      lastError,
                      reason: `Pilot daemon status could not be read ${context.unreadableStatusLimit} times in a row (${lastError.message}); restarting it`,
                    };
                  }),
                  "reportLost",
                ],
              },
              // Managed: one failed read is a slow or busy daemon, not a dead one; keep it and read again.
              {
                target: "watching",
                actions: assign({
                  lastError: ({ event }) => toPlainError(event.error, "pilot.daemon.status"),
                  unreadableStatuses: ({ context }) => context.unreadableStatuses + 1,
                }),
              },
            ],
          },
        },
      },
      on: {
        STOP: [{ guard: "managed", target: "stopping" }, { target: "stopped" }],
        // Within the hold (or observe-only) suspicion changes nothing: the sender reports its failure itself.
        "DAEMON.SUSPECT": {
          guard: "suspicionActs",
          target: "#daemon.recycling",
          actions: [
            assign({ reason: ({ event }) => `${event.reason}; restarting the Pilot daemon` }),
            "countSuspectRestart",
            "reportLost",
          ],
        },
      },
    },

    // Managed and unhealthy (e.g. spinning): stop it before restarting, else the start fails with already_exists.
    recycling: {
      invoke: {
        id: "stopDaemon",
        src: "stopDaemon",
        input: ({ context }) => ({ graceMs: context.stopTimeoutMs }),
        onDone: { target: "crashed" },
        onError: [
          {
            // Not stopped: the start that follows attaches to it again (never a second daemon), and the reason
            // says what the owner can do; the restart budget bounds the attempts.
            guard: { type: "foreignDaemon", params: ({ event }) => ({ error: event.error }) },
            target: "crashed",
            actions: assign(({ event }) => {
              const lastError = toPlainError(event.error, "pilot.daemon.stop");
              return { lastError, reason: lastError.message };
            }),
          },
          {
            target: "crashed",
            actions: assign({ lastError: ({ event }) => toPlainError(event.error, "pilot.daemon.stop") }),
          },
        ],
      },
      after: { stopDeadline: { target: "crashed" } },
      on: { STOP: "stopping" },
    },

    // Managed only: wait (backoff), then restart while budget remains.
    crashed: {
      always: { guard: "budgetExhausted", target: "failed" },
      after: {
        restartBackoff: { guard: "hasBudget", target: "starting", actions: "consumeRestart" },
      },
      on: { STOP: "stopping" },
    },

    // Budget exhausted: no quick restarts any more. One more round (a fresh budget) after failedRetry, or at once on
    // DAEMON.RETRY, so a cause that was fixed heals without a gateway restart.
    failed: {
      entry: [
        assign({
          reason: ({ context }) =>
            `Pilot daemon kept failing (${context.restartBudget} restart${context.restartBudget === 1 ? "" : "s"} used): ` +
            `${context.reason ?? "unknown cause"}. ` +
            `Check the daemon log; it is tried again in ${spokenDelay(context.failedRetryMs)}, or now with agent-registry.refresh.`,
        }),
        "reportUnavailable",
      ],
      after: { failedRetry: { target: "starting", actions: "refillBudget" } },
      on: {
        "DAEMON.RETRY": { target: "starting", actions: ["refillBudget", "forgetSuspectRestarts"] },
        STOP: "stopping",
      },
    },

    // Observe-only: the daemon is not running (or unhealthy); re-read its status on a timer, never start it.
    detached: {
      entry: "reportUnavailable",
      initial: "waiting",
      states: {
        waiting: {
          after: { statusInterval: { target: "reading" } },
          on: { "DAEMON.RETRY": { target: "reading" } },
        },
        reading: {
          invoke: {
            id: "readStatus",
            src: "readStatus",
            input: {},
            onDone: [
              {
                guard: { type: "daemonUsable", params: ({ event }) => ({ status: event.output }) },
                target: "#daemon.running",
                actions: assign({
                  nodeId: ({ event }) => event.output.nodeId,
                  address: ({ event }) => event.output.address,
                  reason: null,
                }),
              },
              { target: "waiting" },
            ],
            onError: {
              target: "waiting",
              actions: assign({ lastError: ({ event }) => toPlainError(event.error, "pilot.daemon.status") }),
            },
          },
        },
      },
      on: { STOP: "stopped" },
    },

    stopping: {
      invoke: {
        id: "stopDaemon",
        src: "stopDaemon",
        input: ({ context }) => ({ graceMs: context.stopTimeoutMs }),
        onDone: { target: "stopped" },
        // A daemon that is already gone (not_running) is stopped too; keep the error for status.
        onError: {
          target: "stopped",
          actions: assign({ lastError: ({ event }) => toPlainError(event.error, "pilot.daemon.stop") }),
        },
      },
      after: {
        stopDeadline: {
          target: "stopped",
          actions: assign({
            lastError: {
              kind: "timeout",
              operation: "pilot.daemon.stop",
              message: "Pilot daemon did not stop in time: check for a leftover pilot daemon process",
            },
          }),
        },
      },
    },

    stopped: { type: "final" },
  },
});

export type DaemonMachine = typeof daemonMachine;
