// Transport "auto": Pilot Protocol first, the registry's HTTP relay when Pilot to that peer is failing (or the peer
// has no Pilot node). One envelope keeps its id whichever path carries it, so the receiver's dedupe (by envelope id,
// one pipeline for both inboxes) makes a resend over the other path safe. Trust decisions go to both transports,
// and their lists are merged by hostname. Pure composition: no timers (a "failing" mark is a time compared on use).
import type { Envelope } from "./envelope.js";
import {
  type PeerRef,
  type PendingTrustRequest,
  type Transport,
  TransportError,
  type TransportErrorCode,
  type TransportKind,
  type TrustedPeer,
} from "./transport.js";

/** How long Pilot is passed over for a peer after a send to it failed there; then Pilot is tried first again. */
export const PILOT_HOLD_MS = 3 * 60_000;

/**
 * Pilot failures the relay may get past: the peer unreachable or slow over Pilot, a broken pair, no Pilot node for
 * the peer, and Pilot's "not trusted" (over Pilot it also means "offline"; the relay answers for itself). Not
 * `invalid` or `rejected`: the same request fails the same way on either path.
 */
const FALLBACK_CODES: ReadonlySet<TransportErrorCode> = new Set([
  "unavailable",
  "timeout",
  "failed",
  "peer_unknown",
  "not_trusted",
]);

export interface PathCounters {
  /** Sends that went over Pilot. */
  pilot: number;
  /** Sends that went over the relay (first choice or fallback). */
  relay: number;
  /** Sends that failed over Pilot and then went over the relay. */
  fallbacks: number;
}

export interface FallbackTransport extends Transport {
  /** Which path each send took, since start. */
  counters(): PathCounters;
  /** Peers Pilot is passed over for now (their keys), for status. */
  pilotFailing(): string[];
}

export interface FallbackTransportOptions {
  /** The Pilot transport while its daemon runs, else null. */
  pilot: () => Transport | null;
  /** The relay transport once linked to the registry, else null. */
  relay: () => Transport | null;
  holdMs?: number;
  now?: () => number;
  log?: { debug?(message: string): void };
}

function peerName(peer: PeerRef): string {
  return (
    peer.hostname ?? (peer.nodeId !== null ? `node-${peer.nodeId}` : `peer-${peer.installationId ?? "?"}`)
  );
}

function asTransportError(operation: string, err: unknown): TransportError {
  if (err instanceof TransportError) return err;
  return new TransportError(operation, "failed", `${operation} failed: ${(err as Error).message}`, {
    cause: err,
  });
}

/** Merges entries naming the same hostname (one from each transport): one entry that carries both ids. */
export function mergeByHostname<T extends { peer: PeerRef }>(lists: ReadonlyArray<readonly T[]>): T[] {
  const out: T[] = [];
  const byHostname = new Map<string, number>();
  for (const list of lists) {
    for (const entry of list) {
      const hostname = entry.peer.hostname;
      const at = hostname === null ? undefined : byHostname.get(hostname);
      if (at === undefined) {
        if (hostname !== null) byHostname.set(hostname, out.length);
        out.push(entry);
        continue;
      }
      const first = out[at]!;
      out[at] = {
        ...first,
        peer: {
          hostname,
          nodeId: first.peer.nodeId ?? entry.peer.nodeId,
          installationId: first.peer.installationId ?? entry.peer.installationId,
        },
      };
    }
  }
  return out;
}

export function createFallbackTransport(options: FallbackTransportOptions): FallbackTransport {
  const holdMs = options.holdMs ?? PILOT_HOLD_MS;
  const now = options.now ?? Date.now;
  /** Peer key -> until when Pilot is passed over for it. */
  const failingUntil = new Map<string, number>();
  const counts: PathCounters = { pilot: 0, relay: 0, fallbacks: 0 };

  const pilotHeld = (peer: PeerRef): boolean => {
    const key = peerName(peer);
    const until = failingUntil.get(key);
    if (until === undefined) return false;
    if (until > now()) return true;
    failingUntil.delete(key);
    return false;
  };

  const unavailable = (operation: string) =>
    new TransportError(
      operation,
      "unavailable",
      "neither Pilot (daemon not running) nor the registry relay (not linked yet) is usable now; try again in a few seconds",
    );

  /**
   * A trust operation on both transports: the second is best effort. Fails only when every usable transport
   * failed (with the Pilot error first, the relay's as its cause).
   */
  async function both(operation: string, call: (transport: Transport) => Promise<void>): Promise<void> {
    const usable = [options.pilot(), options.relay()].filter((t): t is Transport => t !== null);
    if (usable.length === 0) throw unavailable(operation);
    const results = await Promise.allSettled(usable.map((transport) => call(transport)));
    if (results.some((r) => r.status === "fulfilled")) {
      for (const r of results) {
        if (r.status === "rejected") {
          options.log?.debug?.(`auto transport: ${operation} on one path failed: ${String(r.reason)}`);
        }
      }
      return;
    }
    const [first, second] = results.map((r) =>
      asTransportError(operation, (r as PromiseRejectedResult).reason),
    );
    if (!second) throw first!;
    throw new TransportError(operation, first!.code, `${first!.message}; over the relay: ${second.message}`, {
      cause: second,
    });
  }

  /** Each path's last list, by operation: what a path that is down or failing contributes meanwhile. */
  const lastLists = new Map<string, [unknown[] | null, unknown[] | null]>();

  /**
   * Lists from both transports, merged by hostname. A path that is down (daemon stopped) or fails now contributes
   * its last list: a half reading would look like every peer trusted only over that path had left (and the
   * account would mark them revoked). Fails only when neither path answers now.
   */
  async function listBoth<T extends { peer: PeerRef }>(
    operation: string,
    call: (transport: Transport) => Promise<T[]>,
  ): Promise<T[]> {
    const paths = [options.pilot(), options.relay()] as const;
    if (!paths[0] && !paths[1]) throw unavailable(operation);
    const results = await Promise.allSettled(
      paths.map((transport) => (transport ? call(transport) : Promise.resolve(null))),
    );
    const last = (lastLists.get(operation) ?? [null, null]) as [T[] | null, T[] | null];
    const lists: T[][] = [];
    let answered = false;
    let failure: unknown = null;
    results.forEach((result, i) => {
      if (result.status === "fulfilled" && result.value !== null) {
        last[i] = result.value;
        answered = true;
      } else if (result.status === "rejected") {
        failure = result.reason;
        options.log?.debug?.(`auto transport: ${operation}: one path failed, its last list stands in`);
      }
      const list = last[i];
      if (list) lists.push(list);
    });
    lastLists.set(operation, last);
    if (!answered) throw asTransportError(operation, failure);
    return mergeByHostname(lists);
  }

  return {
    kind: "auto",

    async send(to: PeerRef, envelope: Envelope, signal?: AbortSignal) {
      const pilot = options.pilot();
      const relay = options.relay();
      let pilotError: TransportError | null = null;
      if (pilot && !pilotHeld(to)) {
        try {
          const sent = await pilot.send(to, envelope, signal);
          counts.pilot += 1;
          return { ...sent, via: "pilot" as TransportKind };
        } catch (err) {
          pilotError = asTransportError("send", err);
          if (!relay || !FALLBACK_CODES.has(pilotError.code) || signal?.aborted) throw pilotError;
          // Not for a peer without a Pilot node: that is no fault of Pilot's, and the registry may list one later.
          if (pilotError.code !== "peer_unknown") failingUntil.set(peerName(to), now() + holdMs);
          options.log?.debug?.(
            `auto transport: ${envelope.id} to ${peerName(to)} over the relay (Pilot: ${pilotError.message})`,
          );
        }
      }
      if (!relay) {
        // Pilot is held for this peer but the relay is not usable: Pilot is still better than nothing.
        if (pilot && !pilotError) {
          const sent = await pilot.send(to, envelope, signal);
          counts.pilot += 1;
          return { ...sent, via: "pilot" as TransportKind };
        }
        throw pilotError ?? unavailable("send");
      }
      try {
        const sent = await relay.send(to, envelope, signal);
        counts.relay += 1;
        if (pilotError) counts.fallbacks += 1;
        return { ...sent, via: "relay" as TransportKind };
      } catch (err) {
        const relayError = asTransportError("send", err);
        // The relay does not know the peer (no relay identity): Pilot's reason says more.
        if (pilotError && (relayError.code === "peer_unknown" || relayError.code === "invalid"))
          throw pilotError;
        throw relayError;
      }
    },

    requestTrust: (peer, introduction) => both("requestTrust", (t) => t.requestTrust(peer, introduction)),
    approve: (peer) => both("approve", (t) => t.approve(peer)),
    reject: (peer, reason) => both("reject", (t) => t.reject(peer, reason)),
    untrust: (peer) => both("untrust", (t) => t.untrust(peer)),
    listPending: (): Promise<PendingTrustRequest[]> => listBoth("listPending", (t) => t.listPending()),
    listTrusted: (): Promise<TrustedPeer[]> => listBoth("listTrusted", (t) => t.listTrusted()),

    counters: () => ({ ...counts }),
    pilotFailing: () => [...failingUntil].filter(([, until]) => until > now()).map(([key]) => key),
  };
}
