// The one interface the rest of the plugin uses to talk to peers, whichever transport is configured:
// Pilot Protocol (pilotctl) or the registry's HTTP relay. Outbound sends and trust decisions go through
// `Transport`; inbound messages flow from a transport's receiver into an `InboundSink` (the inbound pipeline).

import type { Envelope } from "./envelope.js";

export type TransportKind = "pilot" | "relay";

/** What is known about a peer: the plugin's one peer reference (see src/machines/types.ts). */
export type { PeerRef } from "../../machines/types.js";

import type { PeerRef } from "../../machines/types.js";

export interface PendingTrustRequest {
  peer: PeerRef;
  /** Text written by the other agent: untrusted, never to be treated as instructions. */
  introduction: string | null;
  assistantName: string | null;
  humanName: string | null;
  receivedAt: string;
}

export interface TrustedPeer {
  peer: PeerRef;
  since: string | null;
}

export type TransportErrorCode =
  | "not_trusted"
  | "peer_unknown"
  | "unavailable"
  | "timeout"
  | "rejected"
  | "invalid"
  /** The peer's relay inbox is at its quota (registry 507): try later. */
  | "inbox_full"
  /** This agent sends faster than the registry allows (429): retry after the given time. */
  | "rate_limited"
  | "failed";

/** A failed transport operation; `message` says what to do next. */
export class TransportError extends Error {
  override name = "TransportError";
  constructor(
    readonly operation: string,
    readonly code: TransportErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface Transport {
  /** "auto": Pilot first, the relay as fallback (fallback-transport.ts). */
  readonly kind: TransportKind | "auto";
  /**
   * Sends one envelope; resolves with the message id once the transport (or peer) acknowledged it, and (transport
   * "auto") the path that carried it.
   */
  send(
    to: PeerRef,
    envelope: Envelope,
    signal?: AbortSignal,
  ): Promise<{ messageId: string; via?: TransportKind }>;
  /** Asks the peer for mutual trust (asynchronous: the peer approves later). */
  requestTrust(peer: PeerRef, introduction: string): Promise<void>;
  listPending(): Promise<PendingTrustRequest[]>;
  listTrusted(): Promise<TrustedPeer[]>;
  approve(peer: PeerRef): Promise<void>;
  reject(peer: PeerRef, reason?: string): Promise<void>;
  untrust(peer: PeerRef): Promise<void>;
}

/** One received message as the transport saw it, before parsing and admission. */
export interface RawInbound {
  transport: TransportKind;
  /** Inbox file path (Pilot) or relay message id: what completing the message acts on. */
  ref: string;
  /** File name or relay message id: part of the dedup key of plain-text messages. */
  name: string;
  data: string;
  from: PeerRef;
  receivedAt: number;
}

/**
 * What happened to a raw message. `dispatched`, `duplicate`, `receipt` (a receipt for one of our messages, taken
 * by the outbox) and `refused` are final (the source deletes or acks it); `retry` keeps it for a later attempt;
 * `dead-lettered` means the source must move it aside.
 */
export type InboundOutcome = "dispatched" | "duplicate" | "receipt" | "refused" | "retry" | "dead-lettered";

export interface InboundSink {
  process(raw: RawInbound): Promise<InboundOutcome>;
}

/** A message that passed admission, ready to enter the peer's OpenClaw session. */
export interface AdmittedMessage {
  key: string;
  transport: TransportKind;
  peer: PeerRef & { hostname: string };
  text: string;
  envelope: Envelope | null;
  receivedAt: number;
}
