// The Pilot Protocol transport: sends our envelope with `pilotctl send-message` to a peer's node id (resolved by
// the registry first, then `pilotctl find`), and maps trust operations to handshake/pending/trust/approve/
// reject/untrust. Every pilotctl failure becomes a TransportError whose message tells the agent what to do next.

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
  log?: Pick<Log, "warn" | "debug">;
}

export const HANDSHAKE_FIRST =
  "handshake first (agent_network action handshake) and wait for the peer to approve, then send again";
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
      try {
        await ctl.sendMessage(nodeId, payload, { timeoutMs: sendTimeoutMs, ...(signal ? { signal } : {}) });
      } catch (err) {
        const trusted =
          err instanceof PilotError && err.code === "connection_failed" ? await trustedNow(nodeId) : null;
        throw toTransportError("send", { ...to, nodeId }, err, { trusted, timeoutMs: sendTimeoutMs });
      }
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
