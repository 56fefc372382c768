// An in-memory agent network for tests of the real runtime: each account gets a TransportLink (the
// `startAccountRuntime({ link })` seam) whose Transport and inbox talk to the other accounts of the same network.
// Trust follows Pilot and the relay: a request waits in the peer's pending list until it approves (or asks back),
// trust is mutual, messages need it both ways. Faults can be injected per operation.
import { randomUUID } from "node:crypto";
import { encodeEnvelope } from "../../src/adapters/transport/envelope.js";
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

interface Node {
  hostname: string;
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
}

export function createMemoryNetwork(): MemoryNetwork {
  const nodes = new Map<string, Node>();
  const faults = new Map<string, string>();
  const node = (hostname: string): Node => {
    let found = nodes.get(hostname);
    if (!found) {
      found = { hostname, pending: new Map(), trusted: new Set(), inbox: [], wake: null };
      nodes.set(hostname, found);
    }
    return found;
  };
  const refOf = (hostname: string): PeerRef => ({
    hostname,
    nodeId: null,
    installationId: `peer-${hostname}`,
  });
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
        assistantName: null,
        humanName: null,
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
    trusts: (hostname, peer) => node(hostname).trusted.has(peer),
    pending: (hostname) => [...node(hostname).pending.keys()],
  };
}
