// What one account can do on the agent network, whatever transport carries it: the surface the agent_network
// tool and the operator's gateway methods call. Implemented by the account runtime (Pilot, relay or none).
import type { AgentPage, AgentRecord, SearchQuery } from "../adapters/registry/types.js";
import type { OutboxState } from "../adapters/state/outbox-table.js";
import type { PathCounters } from "../adapters/transport/fallback-transport.js";
import { TransportError, type TransportKind } from "../adapters/transport/transport.js";
import { type Decider, PEER_STATES, type PeerTrustState } from "../machines/handshake.machine.js";
import type { OutboxView } from "./outbox.js";

/** A peer's trust state, as the handshake machine names it. */
export type PeerState = PeerTrustState;
export { PEER_STATES };

export interface PeerView {
  hostname: string | null;
  nodeId: number | null;
  installationId: string | null;
  state: PeerState;
  /** Their introduction (incoming) or ours (outgoing). Text written by an agent: untrusted. */
  introduction: string | null;
  assistantName: string | null;
  humanName: string | null;
  updatedAt: string | null;
  /** The pinned key's fingerprint (what the owners compare); null: unverified (no key pinned). */
  fingerprint: string | null;
  /** A key on offer, not pinned: the requester's (approving pins it) or a suspended peer's new one. */
  offeredFingerprint: string | null;
}

export interface InboxReport {
  /** Messages received but not dispatched yet (waiting for a retry). */
  undelivered: Array<{ ref: string; from: string | null; attempts: number; lastError: string | null }>;
  /** Messages given up on after repeated dispatch failures, kept for inspection. */
  deadLettered: Array<{ ref: string; from: string | null; reason: string; at: string | null }>;
}

export interface SendOptions {
  /** Who writes: the agent's tool ("contact") or an operator ("send", the default). */
  origin?: "contact" | "send";
  /** The session that writes (told once if the message stays undelivered). */
  sessionKey?: string | null;
}

export interface SendResult {
  messageId: string;
  state: OutboxState;
  /** Why it is still queued, when it is. */
  reason: string | null;
}

export interface NetworkCounters {
  dispatched: number;
  refused: Record<string, number>;
  deadLettered: number;
  /** Relay only: messages the client could not read, per reason (those with an id are also in deadLettered). */
  unreadable?: Record<string, number>;
  duplicates: number;
  /** Messages dispatched under the sender's pinned key (signature verified); the others came from unverified peers. */
  verified?: number;
  sent: number;
  lastInboundAt: number | null;
  lastOutboundAt: number | null;
  /** Outgoing messages by state. */
  outbox?: Record<OutboxState, number>;
  /** Transport "auto": which path the sends took (a fallback is a send that failed over Pilot, then went by relay). */
  paths?: PathCounters;
}

export type NetworkErrorCode =
  | "NO_TRANSPORT"
  | "TRANSPORT_UNAVAILABLE"
  | "NOT_FOUND"
  | "NOT_TRUSTED"
  | "NOT_PENDING"
  | "OWNER_APPROVAL_REQUIRED"
  /** The registry's record of the peer was ignored (forged, rewritten, older, or another key than pinned). */
  | "UNVERIFIED"
  | "INVALID"
  /** The outbox is at its bound (per peer or in all): wait until messages are delivered. */
  | "OUTBOX_FULL"
  | "FAILED";

/** A failed network action; `message` tells the agent or operator what to do next. */
export class NetworkError extends Error {
  override name = "NetworkError";
  constructor(
    readonly code: NetworkErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface AccountNetwork {
  readonly transport: TransportKind | "auto" | "none";
  /** Why messaging is unavailable (pilotctl missing, daemon down, transport none), or null when it works. */
  unavailableReason(): string | null;
  /** Registry search; the limit is clamped 1-50 and capabilities to 20 by the registry client. */
  search(query: SearchQuery): Promise<AgentPage>;
  /** null when the agent is unknown or offline. */
  getAgent(hostname: string): Promise<AgentRecord | null>;
  /** Known peers with their handshake state. */
  peers(): PeerView[];
  /** Incoming handshake requests waiting for a decision. */
  pending(): Promise<PeerView[]>;
  /** Sends a handshake request; `introduction` defaults to one built from the account's names. */
  handshake(hostname: string, introduction?: string): Promise<PeerView>;
  /**
   * `ref`: hostname, node id or assistant name (case-insensitive). Approving pins the peer's offered key; for a
   * trusted peer it pins its key (verifying it), for a suspended one its new key. A key change needs the owner:
   * `by: "agent"` gets OWNER_APPROVAL_REQUIRED for it.
   */
  approve(ref: string, options?: { by?: Decider }): Promise<PeerView>;
  reject(ref: string, reason?: string): Promise<PeerView>;
  untrust(ref: string): Promise<PeerView>;
  /**
   * Writes a message to a trusted peer into the outbox and tries the transport once: `sent` (waiting for the
   * peer's receipt) or `queued` (retried; `reason` says why). NOT_TRUSTED when no handshake completed,
   * OUTBOX_FULL when too many messages are still undelivered.
   */
  send(hostname: string, text: string, options?: SendOptions): Promise<SendResult>;
  /** Undelivered messages (queued, sent), oldest first; with `finished`, that many of the latest finished too. */
  outbox(options?: { peer?: string; finished?: number }): OutboxView[];
  inbox(): InboxReport;
  counters(): NetworkCounters;
  /** This installation's key fingerprint, and what was made of registry records and peers' keys. */
  identity(): IdentityReport;
}

export interface IdentityReport {
  fingerprint: string;
  /** Registry records seen per verdict (verified, unsigned, invalid, stale, key_mismatch). */
  records: Record<string, number>;
  /** Peers that need the owner: suspended (a new key signs their messages) or offered another key by the registry. */
  alerts: Array<{
    peer: string;
    kind: "suspended" | "registry_key_mismatch";
    fingerprint: string;
    at: string;
  }>;
}

/** Any failure as the network reports it: a transport's code mapped, anything else FAILED with what failed. */
export function toNetworkError(error: unknown, operation: string): NetworkError {
  if (error instanceof NetworkError) return error;
  if (error instanceof TransportError) {
    const code =
      error.code === "not_trusted" ? "NOT_TRUSTED" : error.code === "peer_unknown" ? "NOT_FOUND" : "FAILED";
    return new NetworkError(code, error.message, { cause: error });
  }
  return new NetworkError("FAILED", `${operation} failed: ${(error as Error)?.message ?? String(error)}`, {
    cause: error,
  });
}
