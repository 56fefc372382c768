// zod schemas of the registry API's requests (bodies and query strings), and the mapping of zod issues to
// FastAPI-style 422 details `{loc, msg, type}` so clients written for the original server read them unchanged.
import { z } from "zod";
import { MAX_JWS_LENGTH } from "../identity/jws.js";
import { PUBLIC_KEY_PATTERN } from "../identity/keys.js";
import type { ValidationIssue } from "./errors.js";

export const HOSTNAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const PILOT_ADDRESS_PATTERN = /^\d{1,10}:[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$/;
/**
 * Relay message bodies are strings of at most this many bytes AS STORED: the UTF-8 bytes of the JSON-escaped
 * text without its quotes, so a control character counts as the 6 bytes of its `\uXXXX` escape. Measuring the
 * stored form bounds what an inbox page carries; measuring the raw string let a body grow 6x in storage.
 */
export const MAX_MESSAGE_BODY_BYTES = 64 * 1024;
/** Most messages one inbox read returns (`limit`). */
export const INBOX_MAX_LIMIT = 100;
/** Default and largest `max_bytes` of an inbox read: the response body (JSON) stays within it. */
export const INBOX_DEFAULT_MAX_BYTES = 1024 * 1024;
export const INBOX_MAX_BYTES = 4 * 1024 * 1024;
export const INBOX_MIN_MAX_BYTES = 1024;

// C0 controls, DEL and the C1 controls (U+0080-U+009F: U+009B is a one-character CSI on some terminals).
// Names, descriptions and capabilities are shown in terminals and pasted into agents' prompts, where ESC
// sequences recolour, hide or rewrite text and BEL rings; nothing legitimate needs them.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to refuse control characters
const NO_CONTROL = /^[^\u0000-\u001f\u007f-\u009f]*$/;
/**
 * Prose may keep line feed and tab: they only start a line or indent, which a multi-line description needs
 * (CR LF too, as text edited on Windows has it). A lone CR stays refused: it returns the cursor and lets
 * later text overwrite what a terminal showed.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to refuse control characters
const NO_CONTROL_BUT_TAB_LF = /^(?:[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]|\r\n)*$/;
const CONTROL_MESSAGE = "must not contain control characters (ESC, BEL, CR, ...); send plain text";

/** An identifier chosen by clients (installation ids, message ids): printable, bounded. */
const clientId = (max: number) =>
  z.string().min(1).max(max).regex(NO_CONTROL, { message: "must not contain control characters" });

export const hostnameSchema = z.string().max(63).regex(HOSTNAME_PATTERN, {
  message: "hostname must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'",
});

const capabilitySchema = z
  .string()
  .min(1)
  .max(64)
  .regex(NO_CONTROL, { message: "must not contain control characters" });

const capabilitiesSchema = z
  .array(capabilitySchema)
  .max(50)
  .transform((caps) => [...new Set(caps.map((c) => c.toLowerCase()))]);

const pilotNodeIdSchema = z.union([
  z.number().int().min(0).max(0xffffffff),
  z
    .string()
    .regex(/^\d{1,10}$/, { message: "pilot_node_id must be a decimal node id" })
    .transform(Number)
    .pipe(z.number().max(0xffffffff)),
]);

const registrationFields = {
  hostname: hostnameSchema,
  installation_id: clientId(200).nullish(),
  pilot_node_id: pilotNodeIdSchema.nullish(),
  pilot_address: z
    .string()
    .regex(PILOT_ADDRESS_PATTERN, { message: "pilot_address must look like N:XXXX.XXXX.XXXX" })
    .nullish(),
  display_name: z.string().max(200).regex(NO_CONTROL, { message: CONTROL_MESSAGE }).nullish(),
  description: z
    .string()
    .max(2000)
    .regex(NO_CONTROL_BUT_TAB_LF, {
      message: "must not contain control characters other than newline and tab",
    })
    .nullish(),
  capabilities: capabilitiesSchema.nullish(),
  public_key: z
    .string()
    .regex(PUBLIC_KEY_PATTERN, {
      message: "public_key must be an Ed25519 public key: its 32 raw bytes in base64url (43 characters)",
    })
    .nullish(),
  // Only the shape here; the signature is checked by the route (verifyRecord) and the fields by the service.
  signed_record: z
    .string()
    .max(MAX_JWS_LENGTH)
    .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, {
      message: "signed_record must be a compact JWS (three base64url parts joined by '.')",
    })
    .nullish(),
};

export const registrationSchema = z.object(registrationFields);
export type RegistrationInput = z.infer<typeof registrationSchema>;

export const patchSchema = z.object({ ...registrationFields, hostname: hostnameSchema.optional() });
export type PatchInput = z.infer<typeof patchSchema>;

// Strings only: a JSON object body reached receivers that accept only text and stalled their inbox. Structured
// content travels as JSON text inside the string.
const messageBodySchema = z.string({
  message: "body must be a string; send structured content as JSON text inside the string",
});

export const sendMessageSchema = z
  .object({
    from_installation_id: clientId(200),
    from_hostname: hostnameSchema,
    to_installation_id: clientId(200).nullish(),
    to_peer_id: clientId(200).nullish(),
    to_hostname: hostnameSchema.nullish(),
    body: messageBodySchema,
    message_id: clientId(200).nullish(),
  })
  .refine((m) => m.to_installation_id || m.to_peer_id || m.to_hostname, {
    message: "give to_peer_id, to_hostname or to_installation_id",
    path: ["to_installation_id"],
  });
export type SendMessageInput = z.infer<typeof sendMessageSchema>;

export const ackSchema = z.object({
  installation_id: clientId(200),
  message_ids: z.array(clientId(200)).max(1000),
});

export const trustRequestSchema = z.object({
  from_id: clientId(200),
  to_id: clientId(200),
  // Shown to the other side's owner and agent, like a description: the same control-character rules.
  introduction: z.string().max(2000).regex(NO_CONTROL_BUT_TAB_LF, { message: CONTROL_MESSAGE }).nullish(),
  assistant_name: z.string().max(200).regex(NO_CONTROL, { message: CONTROL_MESSAGE }).nullish(),
  human_name: z.string().max(200).regex(NO_CONTROL, { message: CONTROL_MESSAGE }).nullish(),
});

export const trustDecisionSchema = z.object({ from_id: clientId(200), to_id: clientId(200) });

/** Most ids (node ids and peer ids together) one lookup may name; more is refused (422). */
export const LOOKUP_MAX_IDS = 1000;
/** Request cap of a lookup: 1,000 ids of up to 200 characters fit, with room for whitespace. */
export const LOOKUP_MAX_REQUEST_BYTES = 256 * 1024;
/**
 * Most agents one lookup returns per node id. Node ids are announced by registrants, not proven, so any number
 * of records may claim one; without a cap a few thousand of them would make every lookup of that id huge.
 */
export const LOOKUP_MAX_PER_NODE_ID = 10;

const tooManyIds = `send at most ${LOOKUP_MAX_IDS} ids per lookup; split the ids into several requests`;

// Strict: a misspelt field would otherwise be dropped and the lookup answer "no agents", which reads as
// "these peers are unknown".
export const lookupSchema = z.strictObject({
  pilot_node_ids: z.array(pilotNodeIdSchema).max(LOOKUP_MAX_IDS, { message: tooManyIds }).optional(),
  peer_ids: z.array(clientId(200)).max(LOOKUP_MAX_IDS, { message: tooManyIds }).optional(),
});

export const adminReleaseSchema = z.object({ hostname: hostnameSchema });

// Query strings: every value arrives as a string; repeated keys are arrays (only `capabilities` may repeat).
const booleanParam = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");
const intParam = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,9}$/, { message: "must be a whole number" })
    .transform(Number)
    .pipe(z.number().min(min).max(max));

export const listQuerySchema = z.object({
  hostname: z.string().max(63).optional(),
  installation_id: z.string().max(200).optional(),
  peer_id: z.string().max(200).optional(),
  pilot_node_id: z
    .string()
    .regex(/^\d{1,10}$/, { message: "pilot_node_id must be a decimal node id" })
    .transform(Number)
    .optional(),
  include_offline: booleanParam.optional(),
  limit: intParam(1, 100).optional(),
  offset: intParam(0, 100_000_000).optional(),
});

/** Longest accepted `q` in characters; longer input is a client mistake (422), not a reason to scan. */
export const MAX_QUERY_CHARS = 16 * 1024;
/** Most distinct words of `q` that are matched; beyond this the request is refused (422). */
export const MAX_QUERY_TERMS = 32;

export const searchQuerySchema = z.object({
  q: z.string().max(MAX_QUERY_CHARS).optional(),
  capabilities: z.array(z.string().min(1).max(64)).max(20).optional(),
  match: z.enum(["any", "all"]).optional(),
  limit: intParam(1, 50).optional(),
  offset: intParam(0, 100_000_000).optional(),
  include_offline: booleanParam.optional(),
});

export const byHostnameQuerySchema = z.object({ include_offline: booleanParam.optional() });

export const inboxQuerySchema = z.object({
  after: z
    .string()
    .regex(/^\d{0,15}$/, { message: "after must be a cursor returned as next_cursor" })
    .optional(),
  limit: intParam(1, INBOX_MAX_LIMIT).optional(),
  max_bytes: intParam(INBOX_MIN_MAX_BYTES, INBOX_MAX_BYTES).optional(),
  wait: z
    .string()
    .regex(/^\d{1,2}(?:\.\d{1,3})?$/, { message: "wait must be a number of seconds, 0-30" })
    .transform(Number)
    .pipe(z.number().max(30))
    .optional(),
  trust_after: z
    .string()
    .regex(/^\d{1,15}$/, {
      message: "trust_after must be a cursor returned as next_cursor by the trust list",
    })
    .optional(),
});

/** Most trust records one page of changes holds; without `limit` a page holds TRUST_PAGE_DEFAULT_LIMIT. */
export const TRUST_PAGE_MAX_LIMIT = 1000;
export const TRUST_PAGE_DEFAULT_LIMIT = 500;

export const trustListQuerySchema = z.object({
  after: z
    .string()
    .regex(/^\d{1,15}$/, { message: "after must be a cursor returned as next_cursor (a whole number)" })
    .transform(Number)
    .optional(),
  limit: intParam(1, TRUST_PAGE_MAX_LIMIT).optional(),
});

/** Maps a zod issue code to the `type` FastAPI/pydantic would report. */
function issueType(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return issue.input === undefined ? "missing" : `${issue.expected}_type`;
    case "too_big":
      return issue.origin === "string"
        ? "string_too_long"
        : issue.origin === "array"
          ? "too_long"
          : "less_than_equal";
    case "too_small":
      return issue.origin === "string"
        ? "string_too_short"
        : issue.origin === "array"
          ? "too_short"
          : "greater_than_equal";
    case "invalid_format":
      return "string_pattern_mismatch";
    case "invalid_value":
      return "enum";
    case "unrecognized_keys":
      return "extra_forbidden";
    default:
      return "value_error";
  }
}

export function toValidationIssues(where: "body" | "query" | "path", error: z.ZodError): ValidationIssue[] {
  return error.issues.map((issue) => {
    const missing = issue.code === "invalid_type" && issue.input === undefined;
    return {
      loc: [where, ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))],
      msg: missing ? "Field required" : issue.message,
      type: issueType(issue),
    };
  });
}
