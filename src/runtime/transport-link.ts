// Binds one account to its transport: the inbound pipeline (dedupe, admission, dispatch), the transport's
// receiver, and the poll actor (src/machines/poll.machine.ts) that reconciles pending handshakes and trust.
// `relay` needs only the registry; `pilot` lives in pilot-link.ts; `none` is discovery only.
import { join } from "node:path";
import { type Actor, createActor, fromPromise, type InspectionEvent } from "xstate";
import { createInboundPipeline, type InboundPipeline } from "../adapters/inbound/pipeline.js";
import { isMissingRoute, type RegistryClient } from "../adapters/registry/client.js";
import { RegistryError } from "../adapters/registry/errors.js";
import { createFileCursorStore, startRelayReceiver } from "../adapters/relay/relay-receiver.js";
import { createRelayTransport } from "../adapters/relay/relay-transport.js";
import type { AccountStateStore } from "../adapters/state/account-state.js";
import type { AdmittedMessage, PeerRef, Transport } from "../adapters/transport/transport.js";
import type { ResolvedAccount } from "../config.js";
import type { DaemonInput } from "../machines/daemon.machine.js";
import { type PollSummary, pollMachine } from "../machines/poll.machine.js";
import type { InboxReport, NetworkCounters } from "./account-network.js";
import type { RuntimeLog } from "./account-runtime.js";

export interface TransportLink {
  transport(): Transport | null;
  unavailableReason(): string | null;
  inbox(): InboxReport;
  counters(): Omit<NetworkCounters, "sent" | "lastOutboundAt">;
  /** Pilot node id/address once the daemon is up (registered with the agent); null otherwise. */
  nodeInfo(): { pilotNodeId: number | null; pilotAddress: string | null };
  /**
   * Try again now instead of at the next timer: an operator who just installed or fixed Pilot should not wait
   * (Pilot: look for pilotctl again, restart a failed daemon). A no-op where nothing waits for a retry.
   */
  retry(): void;
  stop(): Promise<void>;
}

/** What a link needs from the rest of the account. */
export interface LinkDeps {
  account: ResolvedAccount & { hostname: string };
  installationId: string;
  registry: RegistryClient;
  state: AccountStateStore;
  log: RuntimeLog;
  inspect?: (event: InspectionEvent) => void;
  /** Peer trust as the handshake actors know it; `reconcile` refreshes it from the transport. */
  isTrusted(peer: PeerRef): boolean;
  knownHostname(peer: PeerRef): string | null;
  reconcile(): Promise<void>;
  /** Into the peer's OpenClaw session. */
  dispatch(message: AdmittedMessage): Promise<void>;
  /** The daemon's node id/address changed (Pilot): register them. */
  onNodeInfo?(info: { pilotNodeId: number | null; pilotAddress: string | null }): void;
  /** Pilot: how soon the daemon actor retries by itself (DAEMON_DEFAULTS when absent). */
  pilotDaemon?: PilotDaemonTiming;
}

export type PilotDaemonTiming = Pick<DaemonInput, "absentRecheckMs" | "failedRetryMs">;

export function noneLink(account: ResolvedAccount): TransportLink {
  return {
    transport: () => null,
    unavailableReason: () =>
      account.transport === "none"
        ? 'Messaging is off for this account (transport "none"); set transport to "pilot" or "relay"'
        : null,
    inbox: () => ({ undelivered: [], deadLettered: [] }),
    counters: () => ({ dispatched: 0, refused: {}, deadLettered: 0, duplicates: 0, lastInboundAt: null }),
    nodeInfo: () => ({ pilotNodeId: null, pilotAddress: null }),
    retry: () => {},
    stop: async () => {},
  };
}

/**
 * Admission trusts the handshake actors; a sender not (yet) known as trusted triggers one reconciliation before
 * the message is refused, so a message sent right after approval is not lost to a stale trust list.
 */
export function trustCheck(deps: LinkDeps): (peer: PeerRef) => Promise<boolean> {
  let lastReconcile = 0;
  return async (peer) => {
    if (deps.isTrusted(peer)) return true;
    if (Date.now() - lastReconcile > 1_000) {
      lastReconcile = Date.now();
      await deps
        .reconcile()
        .catch((error: unknown) => deps.log.debug?.(`agent-registry: reconcile: ${String(error)}`));
    }
    return deps.isTrusted(peer);
  };
}

export function createPipeline(deps: LinkDeps): InboundPipeline {
  const { account } = deps;
  return createInboundPipeline({
    stateDir: join(deps.state.dir, "inbound"),
    policy: {
      allowFrom: account.inbound.allowFrom,
      blockFrom: account.inbound.blockFrom,
      maxMessageBytes: account.inbound.maxMessageBytes,
      ratePerMinute: account.inbound.ratePerMinute,
    },
    isTrusted: trustCheck(deps),
    lookupHostname: async (peer) => {
      const known = deps.knownHostname(peer);
      if (known) return known;
      if (peer.nodeId !== null) return (await deps.registry.byNodeId(String(peer.nodeId)))?.hostname ?? null;
      if (peer.installationId) {
        const page = await deps.registry.list({ installationId: peer.installationId, includeOffline: true });
        return page.agents[0]?.hostname ?? null;
      }
      return null;
    },
    dispatch: deps.dispatch,
    log: deps.log,
  });
}

/** The pipeline's counters as the account network reports them. */
export function inboundCounters(pipeline: InboundPipeline): ReturnType<TransportLink["counters"]> {
  const c = pipeline.counters();
  return {
    dispatched: c.dispatched,
    refused: { ...c.refused },
    deadLettered: c.deadLettered,
    duplicates: c.duplicates,
    lastInboundAt: c.lastInboundAt,
  };
}

/** The reconciliation loop as an actor: one cycle at a time, on a timer, woken early by inbox events. */
export function startPollActor(
  deps: LinkDeps,
  runCycle: (trigger: string) => Promise<Partial<PollSummary>>,
): Actor<typeof pollMachine> {
  const machine = pollMachine.provide({
    actors: {
      runCycle: fromPromise(async ({ input }) => {
        const partial = await runCycle(input.trigger);
        return {
          trigger: input.trigger,
          dispatched: 0,
          refused: 0,
          deferred: 0,
          pending: [],
          trusted: null,
          ...partial,
        } satisfies PollSummary;
      }),
    },
  });
  const actor = createActor(machine, {
    id: `poll:${deps.account.accountId}`,
    systemId: `poll:${deps.account.accountId}`,
    input: { pollIntervalMs: deps.account.pilot.pollIntervalSeconds * 1000 },
    ...(deps.inspect ? { inspect: deps.inspect } : {}),
  });
  actor.subscribe({
    error: (error) => deps.log.error(`agent-registry: poll actor failed: ${String(error)}`),
  });
  actor.start();
  return actor;
}

type RelayRoute = "readInbox" | "ack" | "sendMessage" | "requestTrust" | "pendingTrust" | "listTrust";

const RELAY_ROUTE_NAMES: Record<RelayRoute, string> = {
  readInbox: "relay inbox",
  ack: "relay ack",
  sendMessage: "relay send",
  requestTrust: "trust request",
  pendingTrust: "trust pending",
  listTrust: "trust list",
};

/**
 * The client, watched for relay and trust routes the registry does not have (the original registry has
 * none: 404 "Not Found" or 405). The relay receiver only sees failures and backs off; without this the
 * account would say its transport is "starting" or "unreachable" for ever. A later success clears it,
 * for a registry that gains the routes.
 */
function watchRelayRoutes(
  registry: RegistryClient,
  onChange: (missing: { route: string; status: number } | null) => void,
): RegistryClient {
  const watched = { ...registry };
  for (const name of Object.keys(RELAY_ROUTE_NAMES) as RelayRoute[]) {
    const call = registry[name] as (...args: unknown[]) => Promise<unknown>;
    (watched as Record<RelayRoute, unknown>)[name] = async (...args: unknown[]) => {
      try {
        const result = await call(...args);
        onChange(null);
        return result;
      } catch (err) {
        if (err instanceof RegistryError && isMissingRoute(err)) {
          onChange({ route: RELAY_ROUTE_NAMES[name], status: err.status ?? 404 });
        }
        throw err;
      }
    };
  }
  return watched;
}

export function startRelayLink(deps: LinkDeps): TransportLink {
  const { account, state, log } = deps;
  let missingRoute: { route: string; status: number } | null = null;
  const registry = watchRelayRoutes(deps.registry, (missing) => {
    if (missing && !missingRoute) {
      log.warn(
        `agent-registry: ${account.accountId}: the registry at ${deps.registry.url} has no relay (its ${missing.route} route answered ${missing.status}); use a registry with relay support or transport "pilot"`,
      );
    }
    missingRoute = missing;
  });
  const transport = createRelayTransport({
    client: registry,
    self: {
      installationId: deps.installationId,
      peerId: () => state.identity().peerId,
      hostname: account.hostname,
      agentToken: () => state.identity().agentToken,
      ...(account.displayName ? { assistantName: account.displayName } : {}),
      ...(account.ownerName ? { humanName: account.ownerName } : {}),
    },
  });
  const pipeline = createPipeline(deps);
  const deadLetterDir = join(state.dir, "relay-dead-letter");
  const receiver = startRelayReceiver({
    client: registry,
    installationId: deps.installationId,
    label: deps.account.accountId,
    agentToken: () => state.identity().agentToken,
    sink: pipeline,
    cursorStore: createFileCursorStore(join(state.dir, "relay-cursor.json")),
    deadLetterDir,
    log,
  });
  const poll = startPollActor(deps, async () => {
    await deps.reconcile();
    return {};
  });
  return {
    // A registry without relay routes gives no usable transport; unavailableReason() says why.
    transport: () => (missingRoute ? null : transport),
    unavailableReason: () => {
      if (missingRoute) {
        return `The registry at ${deps.registry.url} has no relay (its ${missingRoute.route} route answered ${missingRoute.status}), so transport "relay" cannot work there; point registryUrl at a registry with relay support (e.g. \`npx agent-registry serve\`) or set transport to "pilot"`;
      }
      const status = receiver.status();
      return status.state === "backoff" && status.lastError
        ? `The registry relay is unreachable (${status.lastError}); messages will be delivered when it is back`
        : null;
    },
    inbox: () => {
      // The message the receiver is retrying right now (it holds back later ones until this one is final).
      const { retrying, lastError, recentUnreadable } = receiver.status();
      return {
        undelivered: retrying
          ? [{ ref: retrying.messageId, from: retrying.fromHostname, attempts: retrying.attempts, lastError }]
          : [],
        // Messages the client could not read, given up on at once (copies in relay-dead-letter/).
        deadLettered: recentUnreadable.map((u) => ({
          ref: u.ref ?? "(no message id)",
          from: u.from,
          reason: u.reason,
          at: new Date(u.at).toISOString(),
        })),
      };
    },
    counters: () => {
      const counters = inboundCounters(pipeline);
      const { counts, unreadable } = receiver.status();
      return { ...counters, deadLettered: counters.deadLettered + counts.unreadable, unreadable };
    },
    nodeInfo: () => ({ pilotNodeId: null, pilotAddress: null }),
    // The relay receiver retries on its own backoff; an early poke would only add load on a struggling registry.
    retry: () => {},
    async stop() {
      poll.send({ type: "STOP" });
      poll.stop();
      await receiver.close();
      pipeline.close();
    },
  };
}
