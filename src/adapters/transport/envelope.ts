// Our message envelope, shared by the Pilot and relay transports: a small versioned JSON object carried as the
// message payload, so a receiver gets a sender-chosen id (for exactly-once dispatch) and the sender's hostname
// (Pilot inbox files carry neither). Plain text from bare pilotctl users is accepted as is.
//
// Receipts (same version, optional fields, so an older plugin still reads our messages: zod drops what it does not
// know). A sender that keeps an outbox sets `ack: true`; the receiver answers such a message with a receipt
// envelope (`receipts: [{for, status}, ...]`, up to 100 at once) once the message is in the peer's session, or
// refused. Receipts carry no
// body, never reach a session and are never receipted. An older plugin never asks for one, so never gets one.
//
// Signatures (same version, optional fields): the sender adds its public key (`from_key`), the recipient (`to`:
// the recipient's pinned key, else its hostname) and `sig`, a detached JWS by that key over the canonical JSON of
// every other field of the envelope as sent. The receiver verifies it over the object it received (not over what
// its own schema kept, so fields added later still verify), then holds the key against the one it pinned.
import { createHash, randomUUID } from "node:crypto";
import { z } from "zod";
import { signDetached, verifyDetached } from "../../identity/jws.js";
import { type Identity, PUBLIC_KEY_PATTERN } from "../../identity/keys.js";

/** The JWS `typ` of an envelope signature (a signature made for something else never verifies as one). */
export const ENVELOPE_TYP = "agent-envelope+jws";

/** What the receiver did with a message: in the session, or refused by admission (with the reason). */
export const ReceiptSchema = z.object({
  for: z.string().min(1).max(128),
  status: z.enum(["delivered", "refused"]),
  reason: z.string().max(64).optional(),
});

export type Receipt = z.infer<typeof ReceiptSchema>;

/** Receipts one envelope carries at most (a burst is answered in a few envelopes, not one per message). */
export const MAX_RECEIPTS = 100;

export const EnvelopeSchema = z.object({
  v: z.literal(1),
  id: z.string().min(1).max(128),
  from_hostname: z.string().min(1).max(253),
  body: z.string(),
  reply_to: z.string().min(1).max(128).optional(),
  sent_at: z.string().min(1).max(64),
  /** The sender asks for a receipt. */
  ack: z.literal(true).optional(),
  /** This envelope carries receipts for messages of ours (body empty). */
  receipts: z.array(ReceiptSchema).min(1).max(MAX_RECEIPTS).optional(),
  /** The sender's public key (base64url Ed25519). */
  from_key: z.string().regex(PUBLIC_KEY_PATTERN).optional(),
  /** Whom it is for: the recipient's public key, or its hostname when the sender has no key pinned for it. */
  to: z.string().min(1).max(253).optional(),
  /** Detached JWS by `from_key` over the rest of the envelope. */
  sig: z.string().min(1).max(1024).optional(),
});

export type Envelope = z.infer<typeof EnvelopeSchema>;

/** An envelope of receipts: no body, no `ack` (receipts are never receipted). */
export function createReceipts(input: {
  fromHostname: string;
  receipts: readonly Receipt[];
  now?: Date;
}): Envelope {
  return EnvelopeSchema.parse({
    v: 1,
    id: randomUUID(),
    from_hostname: input.fromHostname,
    body: "",
    sent_at: (input.now ?? new Date()).toISOString(),
    receipts: input.receipts,
  });
}

export function createEnvelope(input: {
  fromHostname: string;
  body: string;
  replyTo?: string;
  id?: string;
  now?: Date;
  /** Ask the receiver for a receipt (the sender keeps an outbox). */
  ack?: boolean;
}): Envelope {
  return EnvelopeSchema.parse({
    v: 1,
    id: input.id ?? randomUUID(),
    from_hostname: input.fromHostname,
    body: input.body,
    ...(input.replyTo === undefined ? {} : { reply_to: input.replyTo }),
    sent_at: (input.now ?? new Date()).toISOString(),
    ...(input.ack ? { ack: true } : {}),
  });
}

/** The wire form (a JSON string), validated so we never send an envelope a peer would reject. */
export function encodeEnvelope(envelope: Envelope): string {
  return JSON.stringify(EnvelopeSchema.parse(envelope));
}

/** A decoded envelope keeps the object as received: its signature covers fields this version may not know. */
export type DecodedMessage = { envelope: Envelope; received: Record<string, unknown> } | { plain: string };

/** Our envelope when the payload is one, else the payload as plain text (never throws). */
export function decodeMessage(data: string): DecodedMessage {
  const trimmed = data.trimStart();
  if (trimmed.startsWith("{")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      // Not JSON: someone typed text starting with "{"; it is plain text.
      return { plain: data };
    }
    const envelope = EnvelopeSchema.safeParse(parsed);
    if (envelope.success) return { envelope: envelope.data, received: parsed as Record<string, unknown> };
  }
  return { plain: data };
}

export function isEnvelope(
  decoded: DecodedMessage,
): decoded is { envelope: Envelope; received: Record<string, unknown> } {
  return "envelope" in decoded;
}

/** The envelope signed by `identity` for `to` (the recipient's pinned key, else its hostname). */
export async function signEnvelope(envelope: Envelope, identity: Identity, to: string): Promise<Envelope> {
  const { sig: _old, ...unsigned } = envelope;
  const payload = EnvelopeSchema.parse({ ...unsigned, from_key: identity.publicKey, to });
  return { ...payload, sig: await signDetached(identity, payload, ENVELOPE_TYP) };
}

/** Whether the received envelope's `sig` is its `from_key`'s signature over the rest of it (never throws). */
export async function verifyEnvelope(received: Record<string, unknown>): Promise<boolean> {
  const { sig, ...signed } = received;
  const key = signed.from_key;
  if (typeof key !== "string" || typeof sig !== "string") return false;
  return verifyDetached(sig, signed, ENVELOPE_TYP, key);
}

/** Where a message came from: the inbox file name (or relay message id) and its payload. */
export interface MessageSource {
  name: string;
  data: string;
}

/**
 * The dedup key of a message: the envelope id when there is one (stable across retries and re-reads),
 * else the source name plus a hash of the payload (two plain messages in one file name still differ).
 */
export function messageKey(source: MessageSource, decoded: DecodedMessage): string {
  if (isEnvelope(decoded)) return `env:${decoded.envelope.id}`;
  const hash = createHash("sha256").update(source.data).digest("hex");
  return `plain:${source.name}:${hash}`;
}
