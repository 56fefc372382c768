// An in-memory agent network for tests of the real runtime: each account gets a TransportLink (the
// `startAccountRuntime({ link })` seam) whose Transport and inbox talk to the other accounts of the same network.
// Trust follows Pilot and the relay: a request waits in the peer's pending list until it approves (or asks back),
// trust is mutual, messages need it both ways. Faults can be injected per operation. `join` adds a remote agent
// without a runtime (a test acts as it through its Transport), `messages` reads what reached such an agent.
import { randomUUID } from "node:crypto";
import {
  decodeMessage,
  type Envelope,
  encodeEnvelope,
  isEnvelope,
} from "../../src/adapters/transport/envelope.js";
import {
  type PendingTrustRequest,
  type RawInbound,
  type Transport,
  TransportError,
  type TrustedPeer,
} from "../../src/adapters/transport/transport.js";
import type { PeerRef } from "../../src/machines/types.js";
import type { InboundDeps } from "../../src/runtime/inbound.js";
import { createPipeline, inboundCounters } from "../../src/runtime/inbound.js";
import { idleSummary, type TransportLink } from "../../src/runtime/transport-link.js";

type Operation =
  | "send"
  | "requestTrust"
  | "approve"
  | "reject"
  | "untrust"
  | "listPending"
  | "listTrusted"
  | "read";

/** How a node shows to the others: a Pilot node id, the names it sends with its requests, no hostname at all. */
export interface MemoryPeerProfile {
  nodeId?: number;
  assistantName?: string;
  humanName?: string;
  /** Its refs carry no hostname (a Pilot node the registry does not know), only the node id and relay id. */
  anonymous?: boolean;
}

interface Node {
  hostname: string;
  profile: MemoryPeerProfile;
  pending: Map<string, PendingTrustRequest>;
  trusted: Set<string>;
  inbox: RawInbound[];
  wake: (() => void) | null;
}

export interface MemoryNetwork {
  /** The `link` option for startAccountRuntime: the account joins this network under its hostname. */
  link(deps: InboundDeps): TransportLink;
  /** Makes `operation` of `hostname` fail with this message until cleared (null). */
  fail(hostname: string, operation: Operation, message: string | null): void;
  /** Who trusts whom, for assertions. */
  trusts(hostname: string, peer: string): boolean;
  pending(hostname: string): string[];
  /** A remote agent on this network without a runtime; the test acts as it through the Transport returned. */
  join(hostname: string, profile?: MemoryPeerProfile): Transport;
  /** Envelopes waiting in `hostname`'s inbox (a joined agent's inbox is never read), oldest first. */
  messages(hostname: string): Envelope[];
}

export function createMemoryNetwork(): MemoryNetwork {
  const nodes = new Map<string, Node>();
  const faults = new Map<string, string>();
  const node = (hostname: string): Node => {
    let found = nodes.get(hostname);
    if (!found) {
      found = { hostname, profile: {}, pending: new Map(), trusted: new Set(), inbox: [], wake: null };
      nodes.set(hostname, found);
    }
    return found;
  };
  const refOf = (hostname: string): PeerRef => {
    const { profile } = node(hostname);
    return {
      hostname: profile.anonymous ? null : hostname,
      nodeId: profile.nodeId ?? null,
      installationId: `peer-${hostname}`,
    };
  };
  const nameOf = (peer: PeerRef): string => {
    const name = peer.hostname ?? peer.installationId?.replace(/^peer-/, "");
    if (!name || !nodes.has(name)) throw new TransportError("peer", "peer_unknown", "unknown peer");
    return name;
  };
  const check = (hostname: string, operation: Operation) => {
    const message = faults.get(`${hostname}:${operation}`);
    if (message) throw new TransportError(operation, "unavailable", message);
  };
  const trustBoth = (a: string, b: string) => {
    node(a).trusted.add(b);
    node(b).trusted.add(a);
    node(a).pending.delete(b);
    node(b).pending.delete(a);
  };

  const transportOf = (self: string): Transport => ({
    kind: "relay",
    async send(to, envelope) {
      check(self, "send");
      const peer = nameOf(to);
      if (!node(self).trusted.has(peer) || !node(peer).trusted.has(self)) {
        throw new TransportError("send", "not_trusted", `"${peer}" has not approved a handshake with you`);
      }
      const id = randomUUID();
      node(peer).inbox.push({
        transport: "relay",
        ref: id,
        name: id,
        data: encodeEnvelope(envelope),
        from: refOf(self),
        receivedAt: Date.now(),
      });
      node(peer).wake?.();
      return { messageId: envelope.id };
    },
    async requestTrust(to, introduction) {
      check(self, "requestTrust");
      const peer = nameOf(to);
      if (node(self).pending.has(peer)) return trustBoth(self, peer);
      node(peer).pending.set(self, {
        peer: refOf(self),
        introduction,
        assistantName: node(self).profile.assistantName ?? null,
        humanName: node(self).profile.humanName ?? null,
        receivedAt: new Date().toISOString(),
      });
    },
    async listPending() {
      check(self, "listPending");
      return [...node(self).pending.values()];
    },
    async listTrusted(): Promise<TrustedPeer[]> {
      check(self, "listTrusted");
      return [...node(self).trusted].map((peer) => ({ peer: refOf(peer), since: null }));
    },
    async approve(peer) {
      check(self, "approve");
      trustBoth(self, nameOf(peer));
    },
    async reject(peer) {
      check(self, "reject");
      node(self).pending.delete(nameOf(peer));
    },
    async untrust(peer) {
      check(self, "untrust");
      const name = nameOf(peer);
      node(self).trusted.delete(name);
      node(name).trusted.delete(self);
    },
  });

  return {
    link(deps) {
      const self = deps.account.hostname;
      const me = node(self);
      const transport = transportOf(self);
      const pipeline = createPipeline(deps);
      return {
        transport: () => transport,
        unavailableReason: () => null,
        inbox: {
          async runCycle(input) {
            check(self, "read");
            const summary = idleSummary(input.trigger);
            while (me.inbox.length > 0) {
              const outcome = await pipeline.process(me.inbox[0]!);
              if (outcome === "retry") return { ...summary, deferred: summary.deferred + 1, next: "retry" };
              me.inbox.shift();
              if (outcome === "dispatched") summary.dispatched += 1;
              if (outcome === "refused") summary.refused += 1;
            }
            return summary;
          },
          watch(onWake) {
            me.wake = onWake;
            return () => {
              me.wake = null;
            };
          },
          close: async () => {},
        },
        report: () => ({ undelivered: [], deadLettered: [] }),
        counters: () => inboundCounters(pipeline),
        async close() {
          pipeline.close();
        },
      };
    },
    fail(hostname, operation, message) {
      if (message === null) faults.delete(`${hostname}:${operation}`);
      else faults.set(`${hostname}:${operation}`, message);
    },
    join(hostname, profile) {
      const joined = node(hostname);
      if (profile) joined.profile = profile;
      return transportOf(hostname);
    },
    messages: (hostname) =>
      node(hostname).inbox.flatMap((raw) => {
        const decoded = decodeMessage(raw.data);
        return isEnvelope(decoded) ? [decoded.envelope] : [];
      }),
    trusts: (hostname, peer) => node(hostname).trusted.has(peer),
    pending: (hostname) => [...node(hostname).pending.keys()],
  };
}
