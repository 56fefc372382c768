// The inbound side shared by both transports: the pipeline (dedupe, admission, dispatch) a transport's inbox
// feeds, with trust as the handshake actors know it.
import {
  createInboundPipeline,
  type InboundIdentity,
  type InboundPipeline,
  type InboundPipelineDeps,
} from "../adapters/inbound/pipeline.js";
import type { RegistryClient } from "../adapters/registry/client.js";
import type { AccountStateStore } from "../adapters/state/account-state.js";
import type { AdmittedMessage, PeerRef } from "../adapters/transport/transport.js";
import type { ResolvedAccount } from "../config.js";
import type { Log } from "../log.js";
import type { NetworkCounters } from "./account-network.js";

/** What an inbound pipeline needs from the rest of the account. */
export interface InboundDeps {
  account: ResolvedAccount & { hostname: string };
  registry: RegistryClient;
  state: AccountStateStore;
  log: Log;
  /** Peer trust as the handshake actors know it. */
  isTrusted(peer: PeerRef): boolean;
  knownHostname(peer: PeerRef): string | null;
  /** Reads the trust list now (a message sent right after approval must not meet a stale list). */
  reconcile(): Promise<void>;
  /** Into the peer's OpenClaw session. */
  dispatch(message: AdmittedMessage): Promise<void>;
  /** End-to-end receipts: answering peers' messages, and taking receipts for ours (the outbox). */
  receipts?: InboundPipelineDeps["receipts"];
  /** Message authentication against the account's key and its peers' pinned keys. */
  identity?: InboundIdentity;
  /**
   * A pipeline shared with another link (transport "auto": both inboxes feed one, so both see the same processed
   * keys). Its owner closes it; without it a link builds and closes its own.
   */
  pipeline?: InboundPipeline;
}

/**
 * Admission trusts the handshake actors; a sender not (yet) known as trusted has the peers loop read the trust
 * list before the message is refused, so a message sent right after approval is not lost to a stale list. Many
 * unknown senders at once share one reading: the loop runs one cycle at a time and folds wake-ups into the next.
 */
export function trustCheck(deps: InboundDeps): (peer: PeerRef) => Promise<boolean> {
  return async (peer) => {
    if (deps.isTrusted(peer)) return true;
    await deps
      .reconcile()
      .catch((error: unknown) => deps.log.debug?.(`agent-registry: reconcile: ${String(error)}`));
    return deps.isTrusted(peer);
  };
}

export function createPipeline(deps: InboundDeps): InboundPipeline {
  const { account } = deps;
  return createInboundPipeline({
    processedKeys: deps.state.db.processedKeys(),
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
    ...(deps.receipts ? { receipts: deps.receipts } : {}),
    ...(deps.identity ? { identity: deps.identity } : {}),
  });
}

/** The pipeline's counters as the account network reports them. */
export function inboundCounters(pipeline: InboundPipeline): Omit<NetworkCounters, "sent" | "lastOutboundAt"> {
  const c = pipeline.counters();
  return {
    dispatched: c.dispatched,
    refused: { ...c.refused },
    deadLettered: c.deadLettered,
    duplicates: c.duplicates,
    verified: c.verified,
    lastInboundAt: c.lastInboundAt,
  };
}
