// The registry relay as an account's transport: outbound through the relay routes, inbound from this
// installation's relay inbox (read by the root's `inbox` loop, one long-poll per cycle) into the pipeline.
import { join } from "node:path";
import { isMissingRoute, type RegistryClient } from "../adapters/registry/client.js";
import { RegistryError } from "../adapters/registry/errors.js";
import { createRelayInbox } from "../adapters/relay/relay-inbox.js";
import { createRelayTransport } from "../adapters/relay/relay-transport.js";
import type { PlainError } from "../machines/types.js";
import { createPipeline, type InboundDeps, inboundCounters } from "./inbound.js";
import { idleSummary, type TransportLink } from "./transport-link.js";

export interface RelayLinkDeps extends InboundDeps {
  installationId: string;
  /** The inbox loop's last failure (the root's `loopErrors.inbox`), null while it reads fine. */
  inboxError(): PlainError | null;
  /** Read the inbox only once registered: it is read with the token the registration returns. */
  registered(): boolean;
  /** The registry said this account's trust changed (through the inbox long-poll): read the trust list now. */
  onTrustChanged?: () => void;
}

type RelayRoute =
  | "readInbox"
  | "ack"
  | "sendMessage"
  | "requestTrust"
  | "pendingTrust"
  | "listTrust"
  | "listTrustChanges";

const RELAY_ROUTE_NAMES: Record<RelayRoute, string> = {
  readInbox: "relay inbox",
  ack: "relay ack",
  sendMessage: "relay send",
  requestTrust: "trust request",
  pendingTrust: "trust pending",
  listTrust: "trust list",
  listTrustChanges: "trust list",
};

/**
 * The client, watched for relay and trust routes the registry does not have (the original registry has
 * none: 404 "Not Found" or 405). The inbox loop only sees failures and backs off; without this the
 * account would say its transport is "starting" or "unreachable" for ever. A later success clears it,
 * for a registry that gains the routes.
 */
function watchRelayRoutes(
  registry: RegistryClient,
  onChange: (missing: { route: string; status: number } | null) => void,
): RegistryClient {
  const watched = { ...registry };
  // The URL in use changes on failover: read through, not copied.
  Object.defineProperty(watched, "url", { get: () => registry.url, enumerable: true });
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

export function createRelayLink(deps: RelayLinkDeps): TransportLink {
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
  // Bound below: the inbox is made after the transport whose trust copy it has the registry watch.
  let onTrustCursor = () => {};
  const transport = createRelayTransport({
    onTrustCursor: () => onTrustCursor(),
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
  const pipeline = deps.pipeline ?? createPipeline({ ...deps, registry });
  const inbox = createRelayInbox({
    client: registry,
    installationId: deps.installationId,
    label: account.accountId,
    agentToken: () => state.identity().agentToken,
    sink: pipeline,
    cursorStore: state.db.cursor("relay"),
    deadLetterDir: join(state.dir, "relay-dead-letter"),
    log,
    trustWatch: transport.trustWatch,
    ...(deps.onTrustChanged ? { onTrustChanged: deps.onTrustChanged } : {}),
  });
  onTrustCursor = () => inbox.trustMoved();
  /**
   * The relay is used with the agent token a registration returns: before the first one (a fresh install) there is
   * none, and a call would only be refused. A registry that issues no tokens is usable once registered.
   */
  const linked = () => deps.registered() || state.identity().agentToken !== null;
  return {
    // A registry without relay routes, or no registration yet, gives no usable transport; unavailableReason() says
    // why. The peers loop reads nothing until then; the registration wakes it (and the inbox loop).
    transport: () => (missingRoute || !linked() ? null : transport),
    unavailableReason: () => {
      if (missingRoute) {
        return `The registry at ${deps.registry.url} has no relay (its ${missingRoute.route} route answered ${missingRoute.status}), so transport "relay" cannot work there; point registryUrl at a registry with relay support (e.g. \`npx agent-registry serve\`) or set transport to "pilot"`;
      }
      if (!linked()) {
        return `This account has not registered with the registry at ${deps.registry.url} yet, and the relay is used with the agent token a registration returns: messaging starts once it has registered (it registers while discoverable)`;
      }
      const error = deps.inboxError();
      return error
        ? `The registry relay is unreachable (${error.message}); messages will be delivered when it is back`
        : null;
    },
    inbox: {
      // Before the first registration there is no token to read the inbox with: the root wakes the loop when
      // the registration succeeds. A registry that issues no tokens is read then as well, so the link finds out
      // (and says) what that registry supports instead of "starting" for ever.
      runCycle: (input, signal) =>
        linked() ? inbox.runCycle(input, signal) : Promise.resolve(idleSummary(input.trigger)),
      close: () => inbox.close(),
    },
    report: () => {
      // The message the inbox is retrying right now (it holds back later ones until this one is final).
      const { retrying, lastError, recentUnreadable } = inbox.status();
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
      const { counts, unreadable } = inbox.status();
      return { ...counters, deadLettered: counters.deadLettered + counts.unreadable, unreadable };
    },
    async close() {
      await inbox.close();
      if (!deps.pipeline) pipeline.close();
    },
  };
}
