// Parameters of the agent_network tool: one zod schema, discriminated by `action`, that validates every call and
// is the source of the JSON Schema the model sees. Limits the registry applies anyway are clamped here so the
// model gets what it asked for within bounds instead of an error.
import { z } from "zod";
import { HOSTNAME_PATTERN } from "../../config.js";

export const SEARCH_LIMIT_DEFAULT = 10;
export const SEARCH_LIMIT_MIN = 1;
export const SEARCH_LIMIT_MAX = 50;
export const SEARCH_CAPABILITIES_MAX = 20;
export const MESSAGE_MAX_CHARS = 32_000;
export const INTRODUCTION_MAX_CHARS = 2_000;

export const AGENT_NETWORK_ACTIONS = [
  "search",
  "get_agent",
  "handshake",
  "pending",
  "approve",
  "reject",
  "untrust",
  "contact",
  "peers",
  "inbox",
  "outbox",
] as const;
export type AgentNetworkAction = (typeof AGENT_NETWORK_ACTIONS)[number];

/** Clamps a requested search size into 1-50; absent or not a number gives the default. */
export function clampSearchLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return SEARCH_LIMIT_DEFAULT;
  return Math.min(SEARCH_LIMIT_MAX, Math.max(SEARCH_LIMIT_MIN, Math.trunc(limit)));
}

// Shared field definitions: one description per field name, so the flattened JSON Schema stays consistent.
const accountId = z
  .string()
  .trim()
  .min(1)
  .optional()
  .describe("Which agent-registry account acts; only needed when several run and the session does not say");
const hostname = z
  .string()
  .trim()
  .toLowerCase()
  .regex(
    HOSTNAME_PATTERN,
    "hostname: lowercase letters, digits and '-', 1-63 characters, e.g. \"alice-assistant\"",
  )
  .describe("The other agent's hostname, as shown by search (get_agent, handshake, contact)");
const peer = z
  .string()
  .trim()
  .min(1, "peer: pass the hostname, node id or assistant name of the peer")
  .max(200)
  .describe(
    "Hostname, Pilot node id or assistant name of the peer, case-insensitive (approve, reject, untrust)",
  );

const searchParams = z.object({
  action: z.literal("search"),
  accountId,
  query: z.string().trim().max(500).optional().describe("Free text to search for (search)"),
  capabilities: z
    .array(z.string().trim().min(1).max(64))
    .max(SEARCH_CAPABILITIES_MAX, `capabilities: at most ${SEARCH_CAPABILITIES_MAX} entries`)
    .optional()
    .describe(`Capabilities the agents must have, at most ${SEARCH_CAPABILITIES_MAX} (search)`),
  match: z
    .enum(["any", "all"])
    .optional()
    .describe('Whether agents need "any" (default) or "all" of the capabilities (search)'),
  limit: z.coerce
    .number()
    .optional()
    .describe(
      `How many results, ${SEARCH_LIMIT_MIN}-${SEARCH_LIMIT_MAX}, default ${SEARCH_LIMIT_DEFAULT}; clamped (search)`,
    ),
});

const peerAction = <A extends "approve" | "untrust">(action: A) =>
  z.object({ action: z.literal(action), accountId, peer });

export const agentNetworkParamsSchema = z.discriminatedUnion("action", [
  searchParams,
  z.object({ action: z.literal("get_agent"), accountId, hostname }),
  z.object({
    action: z.literal("handshake"),
    accountId,
    hostname,
    introduction: z
      .string()
      .trim()
      .min(1)
      .max(INTRODUCTION_MAX_CHARS)
      .optional()
      .describe("Who you are and why you want to connect (handshake); a default is used when omitted"),
  }),
  z.object({ action: z.literal("pending"), accountId }),
  peerAction("approve"),
  z.object({
    action: z.literal("reject"),
    accountId,
    peer,
    reason: z.string().trim().max(500).optional().describe("Why the request is rejected (reject)"),
  }),
  peerAction("untrust"),
  z.object({
    action: z.literal("contact"),
    accountId,
    hostname,
    message: z
      .string()
      .min(1, "message: pass the text to send")
      .max(MESSAGE_MAX_CHARS)
      .describe("The text to send to the other agent (contact)"),
  }),
  z.object({ action: z.literal("peers"), accountId }),
  z.object({ action: z.literal("inbox"), accountId }),
  z.object({
    action: z.literal("outbox"),
    accountId,
    hostname: hostname.optional(),
  }),
]);

export type AgentNetworkParams = z.infer<typeof agentNetworkParamsSchema>;

/** A call of each action, shown to the model when its input is invalid. */
export const ACTION_EXAMPLES: Record<AgentNetworkAction, Record<string, unknown>> = {
  search: { action: "search", query: "travel planning", capabilities: ["travel"], match: "any", limit: 10 },
  get_agent: { action: "get_agent", hostname: "alice-assistant" },
  handshake: {
    action: "handshake",
    hostname: "alice-assistant",
    introduction: "Hi, I am ... and I would like to ...",
  },
  pending: { action: "pending" },
  approve: { action: "approve", peer: "alice-assistant" },
  reject: { action: "reject", peer: "alice-assistant", reason: "not needed" },
  untrust: { action: "untrust", peer: "alice-assistant" },
  contact: { action: "contact", hostname: "alice-assistant", message: "Hello!" },
  peers: { action: "peers" },
  inbox: { action: "inbox" },
  outbox: { action: "outbox", hostname: "alice-assistant" },
};

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The JSON Schema the model sees. Derived from the zod union, then flattened into one object with an `action`
 * enum: several providers (OpenAI function calling among them) reject a top-level oneOf/anyOf. Validation still
 * uses the union, so per-action required fields are enforced at execution with a message saying what to pass.
 * OpenClaw validates arguments against this schema too, so it must not be stricter than the zod schema.
 */
export function agentNetworkParamsJsonSchema(): JsonObject {
  const union = z.toJSONSchema(agentNetworkParamsSchema, { io: "input" }) as JsonObject;
  const variants = (union.oneOf ?? union.anyOf) as unknown;
  if (!Array.isArray(variants)) throw new Error("agent_network: expected a union schema");
  const properties: JsonObject = {};
  const actions: string[] = [];
  for (const variant of variants) {
    if (!isObject(variant) || !isObject(variant.properties)) continue;
    for (const [name, schema] of Object.entries(variant.properties)) {
      if (name === "action") {
        if (isObject(schema) && typeof schema.const === "string") actions.push(schema.const);
        continue;
      }
      if (name in properties || !isObject(schema)) continue;
      // OpenClaw validates arguments against this schema before execute. A hostname is trimmed and lowercased
      // first ("Alice" is fine), so the pattern is checked by zod after normalizing, with a better message.
      const { pattern: _normalizedFirst, ...rest } = schema;
      properties[name] = rest;
    }
  }
  return {
    type: "object",
    properties: {
      action: {
        type: "string",
        enum: actions,
        description:
          "search: find agents; get_agent: one agent's details; handshake: ask an agent to connect; pending: incoming requests; approve/reject: decide one; untrust: disconnect; contact: send a message; peers: your connections; inbox: received messages not delivered to you yet; outbox: your messages the other agent has not received yet",
      },
      ...properties,
    },
    required: ["action"],
  };
}
