// The Pilot Protocol transport: sends our envelope with `pilotctl send-message` to a peer's node id (resolved by
// the registry first, then `pilotctl find`), and maps trust operations to handshake/pending/trust/approve/
// reject/untrust. Every pilotctl failure becomes a TransportError whose message tells the agent what to do next.
// A failed send is classified the way real daemons need (docs/pilot.md): a peer that untrusted us makes the send
// hang ~39 s and an offline peer by node id ~30 s, so a timeout alone says little. The trust list (a peer no longer
// mutual) and `find` (an offline peer's hostname is a fast not_found) tell them apart; what remains, failures to a
// trusted peer that is online, is reported as suspicion of our own daemon once it repeats.

import type { Log } from "../../log.js";
import { encodeEnvelope } from "../transport/envelope.js";
import {
  type PeerRef,
  type PendingTrustRequest,
  type Transport,
  TransportError,
  type TransportErrorCode,
  type TrustedPeer,
} from "../transport/transport.js";
import { type Pilotctl, PilotError } from "./pilotctl.js";

export type PilotTransportPilotctl = Pick<
  Pilotctl,
  "sendMessage" | "find" | "handshake" | "pending" | "trust" | "approve" | "reject" | "untrust"
>;

export interface PilotTransportOptions {
  pilotctl: PilotTransportPilotctl;
  /** The registry's node id for a hostname (cache, then `?hostname=`); null when unknown. May throw. */
  resolveNodeId?: (hostname: string) => Promise<number | null>;
  /** Per-send timeout (a send to a trusted peer that is down blocks ~30 s in pilotctl). Default 20 s. */
  sendTimeoutMs?: number;
  /**
   * Told when sends to trusted, online peers failed `after` times in a row (no success between) within `windowMs`:
   * the daemon's tunnels are likely broken (a restarted peer breaks the pair until both ends restart).
   */
  suspicion?: { after: number; windowMs: number; report: (reason: string) => void };
  /** Clock for the suspicion window and the memory of failed peers (tests). */
  now?: () => number;
  log?: Pick<Log, "warn" | "debug">;
}

/** How long a peer that failed is probed with `find` before the next send (so an offline one fails fast). */
const PROBE_AFTER_FAILURE_MS = 10 * 60_000;
const PROBE_TIMEOUT_MS = 5_000;

export const HANDSHAKE_FIRST =
  "handshake first (agent_network action handshake) and wait for the peer to approve, then send again";
export const PEER_OFFLINE = "the peer is not on the Pilot network right now (offline): try again later";
export const PEER_LEFT =
  "the peer no longer trusts us (it removed the trust, our side still lists it): ask its owner, or handshake again";
export const DAEMON_NOT_RUNNING =
  "Pilot daemon not running: start it with `pilotctl daemon start` or set pilot.manageDaemon";

function describePeer(peer: PeerRef): string {
  if (peer.hostname) return peer.hostname;
  if (peer.nodeId !== null) return `node ${peer.nodeId}`;
  return "the peer";
}

function unixToIso(seconds: number | undefined): string | null {
  return seconds === undefined ? null : new Date(seconds * 1000).toISOString();
}

/** Maps a pilotctl failure to a transport error with next-step guidance. `trusted` refines connection_failed. */
export function toTransportError(
  operation: string,
  peer: PeerRef | null,
  err: unknown,
  extra: { trusted?: boolean | null; timeoutMs?: number } = {},
): TransportError {
  if (err instanceof TransportError) return err;
  const who = peer ? describePeer(peer) : "the peer";
  if (!(err instanceof PilotError)) {
    return new TransportError(
      operation,
      "failed",
      `${operation} to ${who} failed: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const fail = (code: TransportErrorCode, message: string) =>
    new TransportError(operation, code, message, { cause: err });
  switch (err.code) {
    case "trust_required":
      return fail("not_trusted", `${who} has not approved us yet: ${HANDSHAKE_FIRST}`);
    case "connection_failed":
      // The old pilotctl says connection_failed both for "not trusted" (fast) and "peer offline" (after ~30 s).
      if (extra.trusted === false)
        return fail("not_trusted", `${who} is not in our trust list: ${HANDSHAKE_FIRST}`);
      if (extra.trusted === true) {
        return fail("unavailable", `could not reach ${who}: the peer seems offline; try again later`);
      }
      return fail(
        "not_trusted",
        `could not reach ${who}: either it has not approved us yet (${HANDSHAKE_FIRST}) or it is offline (try again later)`,
      );
    case "not_running":
      return fail("unavailable", DAEMON_NOT_RUNNING);
    case "binary_missing":
      return fail("unavailable", err.message);
    case "timeout":
      return fail(
        "timeout",
        `no answer from ${who}${extra.timeoutMs === undefined ? "" : ` within ${extra.timeoutMs} ms`}: the peer may be offline or slow; try again later`,
      );
    case "ack_error":
      return fail(
        "failed",
        `${who} received the message but could not store it (ERR ack${err.detail ? `: ${err.detail}` : ""}); try again later`,
      );
    case "not_found":
      return fail(
        "peer_unknown",
        `${who} is not known to the Pilot network: check the hostname (agent_network action search) or ask the peer to start its daemon`,
      );
    case "invalid_argument":
    case "usage":
      return fail("invalid", err.message);
    case "aborted":
      return fail("failed", `${operation} to ${who} was cancelled`);
    default:
      return fail("failed", err.message);
  }
}

export function createPilotTransport(options: PilotTransportOptions): Transport {
  const ctl = options.pilotctl;
  const sendTimeoutMs = options.sendTimeoutMs ?? 20_000;
  const log = options.log;
  const now = options.now ?? Date.now;
  /** Peers whose trust entry was seen mutual: a later non-mutual entry means the peer removed its trust. */
  const seenMutual = new Set<number>();
  /** Peers whose last send failed, and when: probed with `find` before the next send. */
  const failedAt = new Map<number, number>();
  /** Failed sends to trusted, online peers since the last success: their times. */
  let faults: number[] = [];

  const noteTrust = (trusted: readonly { nodeId: number; mutual?: boolean }[]) => {
    for (const t of trusted) if (t.mutual === true) seenMutual.add(t.nodeId);
  };

  /** Our trust entry for the node: absent, listed, or listed but no longer mutual; null when unreadable. */
  async function trustOf(nodeId: number): Promise<"absent" | "listed" | "left" | null> {
    try {
      const trusted = await ctl.trust({ timeoutMs: PROBE_TIMEOUT_MS });
      const entry = trusted.find((t) => t.nodeId === nodeId);
      // Read before noting: an entry that stopped being mutual since we last saw it is the peer leaving.
      const left = entry !== undefined && entry.mutual === false && seenMutual.has(nodeId);
      noteTrust(trusted);
      if (!entry) return "absent";
      return left ? "left" : "listed";
    } catch (err) {
      log?.debug?.(`pilot transport: could not read the trust list: ${(err as Error).message}`);
      return null;
    }
  }

  /** Whether the registry lists the hostname now: false = offline (fast not_found), null = unknown. */
  async function online(hostname: string | null): Promise<boolean | null> {
    if (!hostname) return null;
    try {
      await ctl.find(hostname, { timeoutMs: PROBE_TIMEOUT_MS });
      return true;
    } catch (err) {
      if (err instanceof PilotError && err.code === "not_found") return false;
      return null;
    }
  }

  function recordFault(peer: PeerRef, code: string): void {
    const t = now();
    const window = options.suspicion?.windowMs ?? 0;
    faults = [...faults.filter((at) => t - at <= window), t];
    const suspicion = options.suspicion;
    if (suspicion && faults.length >= suspicion.after) {
      faults = [];
      suspicion.report(
        `${suspicion.after} sends in a row to trusted peers that are online failed (last: ${describePeer(peer)}, ${code})`,
      );
    }
  }

  /** A send that failed in a way the error alone does not explain: ask the trust list, then the registry. */
  async function classify(to: PeerRef, nodeId: number, err: PilotError): Promise<TransportError> {
    const peer = { ...to, nodeId };
    const who = describePeer(peer);
    const trust = await trustOf(nodeId);
    if (trust === "absent") {
      return new TransportError(
        "send",
        "not_trusted",
        `${who} is not in our trust list: ${HANDSHAKE_FIRST}`,
        {
          cause: err,
        },
      );
    }
    if (trust === "left") {
      return new TransportError("send", "not_trusted", `${who}: ${PEER_LEFT}`, { cause: err });
    }
    if ((await online(to.hostname)) === false) {
      return new TransportError("send", "unavailable", `could not reach ${who}: ${PEER_OFFLINE}`, {
        cause: err,
      });
    }
    if (trust === "listed") recordFault(peer, err.code);
    return toTransportError("send", peer, err, {
      trusted: trust === "listed" ? true : null,
      timeoutMs: sendTimeoutMs,
    });
  }

  /** The peer's node id: given, the registry's, or `pilotctl find`. */
  async function nodeIdOf(operation: string, peer: PeerRef): Promise<number> {
    if (peer.nodeId !== null) return peer.nodeId;
    const hostname = peer.hostname;
    if (!hostname) {
      throw new TransportError(
        operation,
        "invalid",
        "no hostname or node id given: say which agent to contact",
      );
    }
    if (options.resolveNodeId) {
      try {
        const id = await options.resolveNodeId(hostname);
        if (id !== null) return id;
      } catch (err) {
        // The registry is only the first source: pilotctl find may still know the peer.
        log?.debug?.(
          `pilot transport: registry lookup of ${hostname} failed (${(err as Error).message}); trying pilotctl find`,
        );
      }
    }
    try {
      return (await ctl.find(hostname)).nodeId;
    } catch (err) {
      throw toTransportError(operation, peer, err);
    }
  }

  /** Whether our trust list holds the node, or null when it cannot be read (used to explain a failed send). */
  async function trustedNow(nodeId: number): Promise<boolean | null> {
    try {
      return (await ctl.trust({ timeoutMs: 5_000 })).some((t) => t.nodeId === nodeId);
    } catch (err) {
      log?.debug?.(`pilot transport: could not read the trust list: ${(err as Error).message}`);
      return null;
    }
  }

  return {
    kind: "pilot",

    async send(to, envelope, signal) {
      const nodeId = await nodeIdOf("send", to);
      const payload = encodeEnvelope(envelope);
      // A peer that failed lately is looked up first: offline by node id the send would hang ~30 s.
      const lastFailure = failedAt.get(nodeId);
      if (lastFailure !== undefined && now() - lastFailure < PROBE_AFTER_FAILURE_MS) {
        if ((await online(to.hostname)) === false) {
          throw new TransportError(
            "send",
            "unavailable",
            `could not reach ${describePeer({ ...to, nodeId })}: ${PEER_OFFLINE}`,
          );
        }
      }
      try {
        await ctl.sendMessage(nodeId, payload, { timeoutMs: sendTimeoutMs, ...(signal ? { signal } : {}) });
      } catch (err) {
        failedAt.set(nodeId, now());
        if (err instanceof PilotError && (err.code === "connection_failed" || err.code === "timeout")) {
          throw await classify(to, nodeId, err);
        }
        throw toTransportError("send", { ...to, nodeId }, err, { timeoutMs: sendTimeoutMs });
      }
      failedAt.delete(nodeId);
      faults = [];
      return { messageId: envelope.id };
    },

    async requestTrust(peer, introduction) {
      const nodeId = await nodeIdOf("requestTrust", peer);
      try {
        await ctl.handshake(nodeId, introduction);
      } catch (err) {
        throw toTransportError("requestTrust", peer, err);
      }
    },

    async listPending(): Promise<PendingTrustRequest[]> {
      try {
        const pending = await ctl.pending();
        return pending.map((p) => ({
          peer: { hostname: null, nodeId: p.nodeId, installationId: null },
          introduction: p.justification === "" ? null : p.justification,
          assistantName: null,
          humanName: null,
          receivedAt: unixToIso(p.receivedAt) ?? new Date().toISOString(),
        }));
      } catch (err) {
        throw toTransportError("listPending", null, err);
      }
    },

    async listTrusted(): Promise<TrustedPeer[]> {
      try {
        const trusted = await ctl.trust();
        noteTrust(trusted);
        return trusted.map((t) => ({
          peer: { hostname: null, nodeId: t.nodeId, installationId: null },
          since: unixToIso(t.approvedAt),
        }));
      } catch (err) {
        throw toTransportError("listTrusted", null, err);
      }
    },

    async approve(peer) {
      const nodeId = await nodeIdOf("approve", peer);
      try {
        await ctl.approve(nodeId);
      } catch (err) {
        throw toTransportError("approve", peer, err);
      }
    },

    async reject(peer, reason) {
      const nodeId = await nodeIdOf("reject", peer);
      try {
        await ctl.reject(nodeId, reason);
      } catch (err) {
        throw toTransportError("reject", peer, err);
      }
    },

    async untrust(peer) {
      const nodeId = await nodeIdOf("untrust", peer);
      try {
        await ctl.untrust(nodeId);
      } catch (err) {
        // pilotctl reports "not in the trust list" as connection_failed: untrusting twice is not an error.
        if (
          err instanceof PilotError &&
          err.code === "connection_failed" &&
          (await trustedNow(nodeId)) === false
        ) {
          return;
        }
        throw toTransportError("untrust", peer, err);
      }
    },
  };
}
