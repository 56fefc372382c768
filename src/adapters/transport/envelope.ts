// Our message envelope, shared by the Pilot and relay transports: a small versioned JSON object carried as the
// message payload, so a receiver gets a sender-chosen id (for exactly-once dispatch) and the sender's hostname
// (Pilot inbox files carry neither). Plain text from bare pilotctl users is accepted as is.
import { createHash, randomUUID } from "node:crypto";
import { z } from "zod";

export const EnvelopeSchema = z.object({
  v: z.literal(1),
  id: z.string().min(1).max(128),
  from_hostname: z.string().min(1).max(253),
  body: z.string(),
  reply_to: z.string().min(1).max(128).optional(),
  sent_at: z.string().min(1).max(64),
});

export type Envelope = z.infer<typeof EnvelopeSchema>;

export function createEnvelope(input: {
  fromHostname: string;
  body: string;
  replyTo?: string;
  id?: string;
  now?: Date;
}): Envelope {
  return EnvelopeSchema.parse({
    v: 1,
    id: input.id ?? randomUUID(),
    from_hostname: input.fromHostname,
    body: input.body,
    ...(input.replyTo === undefined ? {} : { reply_to: input.replyTo }),
    sent_at: (input.now ?? new Date()).toISOString(),
  });
}

/** The wire form (a JSON string), validated so we never send an envelope a peer would reject. */
export function encodeEnvelope(envelope: Envelope): string {
  return JSON.stringify(EnvelopeSchema.parse(envelope));
}

export type DecodedMessage = { envelope: Envelope } | { plain: string };

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
    if (envelope.success) return { envelope: envelope.data };
  }
  return { plain: data };
}

export function isEnvelope(decoded: DecodedMessage): decoded is { envelope: Envelope } {
  return "envelope" in decoded;
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
