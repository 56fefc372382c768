// Plain (JSON-serializable) types shared by the machines: what an agent tells the registry about itself,
// and the error shape actors reject with. Adapters produce these; machines only read them.

/** What the registry stores about this assistant (the registration fields, camel-cased). */
export interface AgentMetadata {
  hostname: string;
  installationId: string;
  pilotNodeId: number | null;
  pilotAddress: string | null;
  displayName: string | null;
  description: string | null;
  capabilities: string[];
}

export const PLAIN_ERROR_KINDS = [
  "not_found",
  "unauthorized",
  "forbidden",
  "conflict",
  "invalid",
  "too_large",
  "unreachable",
  "timeout",
  "bad_response",
  "http",
] as const;

export type PlainErrorKind = (typeof PLAIN_ERROR_KINDS)[number];

/**
 * A failure as data. Actors reject with this (not an Error instance) so that it survives snapshots, graph
 * traversal and logging unchanged.
 */
export interface PlainError {
  kind: PlainErrorKind;
  operation: string;
  message: string;
  status?: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function isKind(value: unknown): value is PlainErrorKind {
  return typeof value === "string" && (PLAIN_ERROR_KINDS as readonly string[]).includes(value);
}

/**
 * Normalizes whatever an actor rejected with into a PlainError. Real adapters reject with PlainError; anything
 * else (a thrown Error, a string) is a bug or an unexpected library failure, reported as kind "http" so the
 * machine still takes its generic failure path instead of crashing.
 */
export function toPlainError(reason: unknown, operation: string): PlainError {
  if (isRecord(reason) && isKind(reason.kind) && typeof reason.message === "string") {
    const error: PlainError = {
      kind: reason.kind,
      operation: typeof reason.operation === "string" ? reason.operation : operation,
      message: reason.message,
    };
    if (typeof reason.status === "number") error.status = reason.status;
    return error;
  }
  const message =
    reason instanceof Error
      ? reason.message
      : isRecord(reason) && typeof reason.message === "string"
        ? reason.message
        : String(reason);
  return { kind: "http", operation, message: message || "unknown failure" };
}

/** Structural equality of two metadata records (capabilities compared in order). */
export function sameMetadata(a: AgentMetadata, b: AgentMetadata): boolean {
  return (
    a.hostname === b.hostname &&
    a.installationId === b.installationId &&
    a.pilotNodeId === b.pilotNodeId &&
    a.pilotAddress === b.pilotAddress &&
    a.displayName === b.displayName &&
    a.description === b.description &&
    a.capabilities.length === b.capabilities.length &&
    a.capabilities.every((capability, index) => capability === b.capabilities[index])
  );
}

/**
 * What is known about a peer; each transport fills what it has (Pilot: node id; relay: its relay id). The one
 * peer reference of the plugin: machines, transports and the runtime all use it.
 */
export interface PeerRef {
  hostname: string | null;
  nodeId: number | null;
  /**
   * The peer's relay id: its public peer id on registries that have one, its installation id on the original
   * registry (which published them). The name is kept for peers.json; it never holds another agent's secret
   * installation id from a registry with peer ids.
   */
  installationId: string | null;
}

/**
 * The one key of a peer (its handshake actor is `handshake:<key>`): the hostname, else `node-<id>` (the name
 * given to a Pilot peer the registry does not know), else `peer-<relay id>`.
 */
export function peerKey(ref: PeerRef): string {
  if (ref.hostname) return ref.hostname;
  if (ref.nodeId !== null) return `node-${ref.nodeId}`;
  return `peer-${ref.installationId ?? "unknown"}`;
}

/** An incoming handshake request as a reconciliation read it (text written by the other agent: untrusted). */
export interface PendingPeer {
  peer: PeerRef;
  justification: string;
  /** ms since the epoch. */
  receivedAt: number;
  assistantName: string | null;
  humanName: string | null;
}

/** One reading of the transport's pending requests and trust list, taken at `at` (ms since the epoch). */
export interface PeersObservation {
  pending: PendingPeer[];
  /** Peers in our trust list, or null when it could not be read. */
  trusted: PeerRef[] | null;
  /** Keys offered by requesters' verified registry records (approving pins them). */
  keys?: Array<{ peer: PeerRef; key: string }>;
  at: number;
}
