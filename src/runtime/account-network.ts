// What one account can do on the agent network, whatever transport carries it: the surface the agent_network
// tool and the operator's gateway methods call. Implemented by the account runtime (Pilot, relay or none).
import type { AgentPage, AgentRecord, SearchQuery } from "../adapters/registry/types.js";
import type { TransportKind } from "../adapters/transport/transport.js";
import { PEER_STATES, type PeerTrustState } from "../machines/handshake.machine.js";

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
}

export interface InboxReport {
  /** Messages received but not dispatched yet (waiting for a retry). */
  undelivered: Array<{ ref: string; from: string | null; attempts: number; lastError: string | null }>;
  /** Messages given up on after repeated dispatch failures, kept for inspection. */
  deadLettered: Array<{ ref: string; from: string | null; reason: string; at: string | null }>;
}

export interface NetworkCounters {
  dispatched: number;
  refused: Record<string, number>;
  deadLettered: number;
  /** Relay only: messages the client could not read, per reason (those with an id are also in deadLettered). */
  unreadable?: Record<string, number>;
  duplicates: number;
  sent: number;
  lastInboundAt: number | null;
  lastOutboundAt: number | null;
}

export type NetworkErrorCode =
  | "NO_TRANSPORT"
  | "TRANSPORT_UNAVAILABLE"
  | "NOT_FOUND"
  | "NOT_TRUSTED"
  | "NOT_PENDING"
  | "OWNER_APPROVAL_REQUIRED"
  | "INVALID"
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
  readonly transport: TransportKind | "none";
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
  /** `ref`: hostname, node id or assistant name (case-insensitive). */
  approve(ref: string): Promise<PeerView>;
  reject(ref: string, reason?: string): Promise<PeerView>;
  untrust(ref: string): Promise<PeerView>;
  /** Really sends a message to a trusted peer; NOT_TRUSTED when no handshake completed. */
  send(hostname: string, text: string): Promise<{ messageId: string }>;
  inbox(): InboxReport;
  counters(): NetworkCounters;
}
