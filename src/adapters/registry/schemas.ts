// zod schemas of the registry's wire format (snake_case), tolerant of the original server: unknown fields are
// dropped, optional fields may be missing or null, lists may be bare arrays, ids may be numbers. Each schema
// outputs the camelCase domain type from types.ts.
import { z } from "zod";
import type {
  AckResult,
  AgentPage,
  AgentRecord,
  AgentStatus,
  HeartbeatResult,
  InboxPage,
  PendingTrustRequest,
  RelayMessage,
  SendMessageResult,
  TrustChangesPage,
  TrustPeer,
  TrustStatus,
  TrustStatusResult,
  UnreadableReason,
  UnreadableRelayMessage,
} from "./types.js";

const idLike = z.union([z.string(), z.number()]).transform((v) => String(v));
const optionalId = z
  .union([z.string(), z.number()])
  .nullish()
  .transform((v) => (v === null || v === undefined || v === "" ? null : String(v)));
const optionalText = z
  .string()
  .nullish()
  .transform((v) => v ?? null);
/** Timestamps: ISO strings on the contract; epoch seconds or milliseconds are converted. */
const optionalTime = z
  .union([z.string(), z.number()])
  .nullish()
  .transform((v) => {
    if (v === null || v === undefined) return null;
    if (typeof v === "string") return v;
    return new Date(v < 1e12 ? v * 1000 : v).toISOString();
  });
const capabilities = z
  .union([z.array(z.string()), z.string()])
  .nullish()
  .transform((v) => {
    if (v === null || v === undefined) return [];
    const list = typeof v === "string" ? v.split(",") : v;
    return list.map((c) => c.trim()).filter((c) => c.length > 0);
  });
const agentStatus = z
  .string()
  .nullish()
  .transform((v): AgentStatus => {
    const s = v?.toLowerCase();
    return s === "online" || s === "offline" ? s : "unknown";
  });

const wireAgentRecord = z.object({
  id: idLike,
  hostname: z.string().min(1),
  installation_id: optionalId,
  peer_id: optionalId,
  pilot_node_id: optionalId,
  pilot_address: optionalText,
  display_name: optionalText,
  description: optionalText,
  capabilities,
  status: agentStatus,
  last_seen: optionalTime,
  created_at: optionalTime,
  updated_at: optionalTime,
  public_key: optionalText,
  signed_record: optionalText,
});

function toAgentRecord(w: z.output<typeof wireAgentRecord>): AgentRecord {
  return {
    id: w.id,
    hostname: w.hostname,
    // Registries with peer ids publish no installation ids (they are secrets); the original one has only those.
    installationId: w.peer_id ?? w.installation_id,
    peerId: w.peer_id,
    pilotNodeId: w.pilot_node_id,
    pilotAddress: w.pilot_address,
    displayName: w.display_name,
    description: w.description,
    capabilities: w.capabilities,
    status: w.status,
    lastSeen: w.last_seen,
    createdAt: w.created_at,
    updatedAt: w.updated_at,
    publicKey: w.public_key,
    signedRecord: w.signed_record,
  };
}

export const agentRecordSchema: z.ZodType<AgentRecord, unknown> = wireAgentRecord.transform(toAgentRecord);

/**
 * The batched lookup's `{agents}`. Records are read one by one and an unreadable one is left out: it names no
 * peer usefully, and failing the answer would leave hundreds of others unresolved with it.
 */
export const agentLookupResponseSchema: z.ZodType<AgentRecord[], unknown> = z
  .object({ agents: z.array(z.unknown()) })
  .transform((p) =>
    p.agents.flatMap((raw) => {
      const read = agentRecordSchema.safeParse(raw);
      return read.success ? [read.data] : [];
    }),
  );

/** Some servers wrap the record as `{agent: {...}}`; unwrap it before validating. */
function unwrapAgent(value: unknown): unknown {
  if (value && typeof value === "object" && !Array.isArray(value) && !("hostname" in value)) {
    const inner = (value as { agent?: unknown }).agent;
    if (inner && typeof inner === "object") return { ...inner, ...value, agent: undefined };
  }
  return value;
}

export const registerResponseSchema: z.ZodType<{ record: AgentRecord; agentToken: string | null }, unknown> =
  z.preprocess(
    unwrapAgent,
    wireAgentRecord
      .extend({ agent_token: optionalText })
      .transform((w) => ({ record: toAgentRecord(w), agentToken: w.agent_token })),
  );

export const singleAgentSchema: z.ZodType<AgentRecord, unknown> = z.preprocess(
  unwrapAgent,
  agentRecordSchema,
);

/** `{agents, total}` or, from the original server, a bare array (also `{items}` / `{results}`). */
export const agentPageSchema: z.ZodType<AgentPage, unknown> = z.preprocess(
  (value) => {
    if (Array.isArray(value)) return { agents: value };
    if (value && typeof value === "object" && !("agents" in value)) {
      const v = value as { items?: unknown; results?: unknown };
      if (Array.isArray(v.items)) return { ...value, agents: v.items };
      if (Array.isArray(v.results)) return { ...value, agents: v.results };
    }
    return value;
  },
  z
    .object({ agents: z.array(agentRecordSchema), total: z.number().int().nonnegative().nullish() })
    .transform((p) => ({ agents: p.agents, total: p.total ?? p.agents.length })),
);

/** `{ok, last_seen, ttl_seconds}`; the original server may send less (or nothing: handled by the client). */
export const heartbeatResponseSchema: z.ZodType<HeartbeatResult, unknown> = z
  .object({
    last_seen: optionalTime,
    ttl_seconds: z.number().nonnegative().nullish(),
  })
  .transform((h) => ({ lastSeen: h.last_seen, ttlSeconds: h.ttl_seconds ?? null }));

/** `{ok, message_id}`; the original server may answer 200 with `{ok:false, detail|error}` (refused). */
export const sendMessageResponseSchema: z.ZodType<SendMessageResult & { refused: string | null }, unknown> = z
  .object({
    ok: z.boolean().nullish(),
    message_id: optionalId,
    id: optionalId,
    detail: z.unknown().optional(),
    error: z.unknown().optional(),
  })
  .transform((r) => ({
    messageId: r.message_id ?? r.id,
    refused:
      r.ok === false
        ? (() => {
            const why = r.detail ?? r.error;
            if (why === undefined || why === null) return "no reason given";
            return (typeof why === "string" ? why : JSON.stringify(why)).slice(0, 300);
          })()
        : null,
  }));

const wireRelayMessage = z
  .object({
    message_id: optionalId,
    id: optionalId,
    from_installation_id: optionalId,
    from_hostname: optionalText,
    body: z.string(),
    created_at: optionalTime,
    cursor: optionalId,
  })
  .refine((m) => (m.message_id ?? m.id) !== null, { message: "message without message_id" })
  .transform(
    (m): RelayMessage => ({
      messageId: (m.message_id ?? m.id) as string,
      fromInstallationId: m.from_installation_id,
      fromHostname: m.from_hostname,
      body: m.body,
      createdAt: m.created_at,
      cursor: m.cursor,
    }),
  );

/** Relay bodies are at most 64 KiB (the registry's limit); a larger one is not admitted. */
export const RELAY_BODY_MAX_BYTES = 64 * 1024;

/** Whatever identifying fields a message that failed validation still has. */
const unreadableFields = z.object({
  message_id: optionalId.catch(null),
  id: optionalId.catch(null),
  cursor: optionalId.catch(null),
  from_hostname: optionalText.catch(null),
  from_installation_id: optionalId.catch(null),
});

function unreadable(
  raw: unknown,
  position: number,
  reason: UnreadableReason,
  detail: string,
): UnreadableRelayMessage {
  const fields = unreadableFields.safeParse(raw);
  const f = fields.success ? fields.data : null;
  return {
    position,
    messageId: f?.message_id ?? f?.id ?? null,
    cursor: f?.cursor ?? null,
    fromHostname: f?.from_hostname ?? null,
    fromInstallationId: f?.from_installation_id ?? null,
    reason,
    detail,
    raw,
  };
}

/** One message, validated on its own so that a bad one never fails the page (and so the whole inbox). */
function readRelayMessage(raw: unknown, position: number): RelayMessage | UnreadableRelayMessage {
  const parsed = wireRelayMessage.safeParse(raw);
  if (!parsed.success) {
    const body = raw !== null && typeof raw === "object" ? (raw as { body?: unknown }).body : undefined;
    if (body !== undefined && typeof body !== "string") {
      return unreadable(
        raw,
        position,
        "body_not_string",
        `body is ${Array.isArray(body) ? "an array" : body === null ? "null" : typeof body === "object" ? "an object" : `a ${typeof body}`}, not a string`,
      );
    }
    const detail = parsed.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join(".") || "(message)"}: ${i.message}`)
      .join("; ");
    return unreadable(raw, position, "malformed", detail);
  }
  const bytes = Buffer.byteLength(parsed.data.body, "utf8");
  if (bytes > RELAY_BODY_MAX_BYTES) {
    return unreadable(
      raw,
      position,
      "too_large",
      `body is ${bytes} bytes, more than ${RELAY_BODY_MAX_BYTES}`,
    );
  }
  return parsed.data;
}

export const inboxResponseSchema: z.ZodType<InboxPage, unknown> = z.preprocess(
  (value) => (Array.isArray(value) ? { messages: value } : value),
  z
    .object({
      messages: z.array(z.unknown()),
      next_cursor: optionalId,
      // Anything but a boolean reads as absent: the registry does not watch trust for the client.
      trust_changed: z.boolean().optional().catch(undefined),
    })
    .transform((p): InboxPage => {
      const messages: RelayMessage[] = [];
      const bad: UnreadableRelayMessage[] = [];
      p.messages.forEach((raw, position) => {
        const read = readRelayMessage(raw, position);
        if ("reason" in read) bad.push(read);
        else messages.push(read);
      });
      const lastCursor =
        p.messages.length > 0 ? unreadableFields.safeParse(p.messages.at(-1)).data?.cursor : null;
      return {
        messages,
        unreadable: bad,
        nextCursor: p.next_cursor ?? lastCursor ?? null,
        ...(p.trust_changed === undefined ? {} : { trustChanged: p.trust_changed }),
      };
    }),
);

export const ackResponseSchema: z.ZodType<AckResult, unknown> = z
  .object({ acked: z.number().int().nonnegative().nullish() })
  .transform((a) => ({ acked: a.acked ?? 0 }));

const trustStatus = z
  .string()
  .nullish()
  .transform((v): TrustStatus => {
    const s = v?.toLowerCase();
    return s === "pending" || s === "approved" || s === "rejected" || s === "blocked" ? s : "unknown";
  });

export const trustStatusResponseSchema: z.ZodType<TrustStatusResult, unknown> = z
  .object({ status: trustStatus })
  .transform((r) => ({ status: r.status }));

/** Pending requests: `{requests:[{from_id,...}]}`; original servers: `{relationships:[{requester_id,...}]}`. */
const wirePendingRequest = z
  .object({
    from_id: optionalId,
    requester_id: optionalId,
    from_assistant_name: optionalText,
    assistant_name: optionalText,
    from_human_name: optionalText,
    human_name: optionalText,
    introduction: optionalText,
    created_at: optionalTime,
  })
  .refine((r) => (r.from_id ?? r.requester_id) !== null, { message: "request without from_id/requester_id" })
  .transform(
    (r): PendingTrustRequest => ({
      fromId: (r.from_id ?? r.requester_id) as string,
      fromAssistantName: r.from_assistant_name ?? r.assistant_name,
      fromHumanName: r.from_human_name ?? r.human_name,
      introduction: r.introduction,
      createdAt: r.created_at,
    }),
  );

export const pendingTrustResponseSchema: z.ZodType<PendingTrustRequest[], unknown> = z.preprocess((value) => {
  if (Array.isArray(value)) return value;
  if (value && typeof value === "object") {
    const v = value as { requests?: unknown; relationships?: unknown; pending?: unknown };
    return v.requests ?? v.relationships ?? v.pending ?? [];
  }
  return value;
}, z.array(wirePendingRequest));

const wireTrustPeer = z
  .object({
    requester_id: optionalId,
    from_id: optionalId,
    target_id: optionalId,
    to_id: optionalId,
    status: trustStatus,
    created_at: optionalTime,
    approved_at: optionalTime,
    updated_at: optionalTime,
    peer_hostname: optionalText,
    introduction: optionalText,
    assistant_name: optionalText,
    human_name: optionalText,
  })
  .refine((p) => (p.requester_id ?? p.from_id) !== null && (p.target_id ?? p.to_id) !== null, {
    message: "trust record without requester_id/target_id",
  })
  .transform(
    (p): TrustPeer => ({
      requesterId: (p.requester_id ?? p.from_id) as string,
      targetId: (p.target_id ?? p.to_id) as string,
      status: p.status,
      createdAt: p.created_at,
      approvedAt: p.approved_at,
      updatedAt: p.updated_at,
      peerHostname: p.peer_hostname,
      introduction: p.introduction,
      assistantName: p.assistant_name,
      humanName: p.human_name,
    }),
  );

const trustPeers = z.array(wireTrustPeer);

/** The entries of a trust list: `{peers}`; original servers: `{relationships}` or a bare array. */
function trustEntries(value: unknown): unknown {
  if (Array.isArray(value)) return value;
  if (value && typeof value === "object") {
    const v = value as { peers?: unknown; relationships?: unknown };
    return v.peers ?? v.relationships ?? [];
  }
  return value;
}

export const trustListResponseSchema: z.ZodType<TrustPeer[], unknown> = z.preprocess(
  trustEntries,
  trustPeers,
);

/**
 * A page of trust changes. A reply without `next_cursor` (a bare array, or an object without it) is from a
 * registry that does not read by change: its entries are the whole list.
 */
export const trustChangesResponseSchema: z.ZodType<TrustChangesPage, unknown> = z
  .preprocess(
    (value) => {
      const page =
        value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
      return { peers: trustEntries(value), next_cursor: page.next_cursor, has_more: page.has_more };
    },
    z.object({ peers: trustPeers, next_cursor: optionalId, has_more: z.boolean().nullish() }),
  )
  .transform((p) => ({
    peers: p.peers,
    nextCursor: p.next_cursor,
    hasMore: p.next_cursor !== null && p.has_more === true,
  }));

/** FastAPI-style error bodies: `{detail: string|object}`, also `{error: ...}` or `{message: ...}`. */
export const errorBodySchema = z
  .object({ detail: z.unknown().optional(), error: z.unknown().optional(), message: z.unknown().optional() })
  .transform((e) => e.detail ?? e.error ?? e.message);
