// HTTP client of the Agent Registry (contracts/registry-api.md): fetch + zod, tolerant of the original
// server (bare arrays, no tokens, no PATCH, HTML error pages), every failure a RegistryError naming the
// operation. The base URL comes from config only; callers pass ids and filters, never URLs.
import { Agent, fetch as undiciFetch } from "undici";
import { z } from "zod";
import type { Identity } from "../../identity/keys.js";
import { createRequestProof, PROOF_HEADER } from "../../identity/request-proof.js";
import { RegistryError, type RegistryErrorKind, type RegistryErrorOptions } from "./errors.js";
import {
  ackResponseSchema,
  agentLookupResponseSchema,
  agentPageSchema,
  errorBodySchema,
  heartbeatResponseSchema,
  inboxResponseSchema,
  pendingTrustResponseSchema,
  registerResponseSchema,
  sendMessageResponseSchema,
  singleAgentSchema,
  trustChangesResponseSchema,
  trustListResponseSchema,
  trustStatusResponseSchema,
} from "./schemas.js";
import type {
  AckRequest,
  AckResult,
  AgentLookupQuery,
  AgentMetadata,
  AgentPage,
  AgentRecord,
  CallOptions,
  DeregisterResult,
  HeartbeatResult,
  InboxPage,
  InboxQuery,
  ListFilters,
  PatchResult,
  PendingTrustRequest,
  RegisterResult,
  RelayMessageToSend,
  SearchQuery,
  SendMessageResult,
  TrustChangesPage,
  TrustChangesQuery,
  TrustDecision,
  TrustPeer,
  TrustRequest,
  TrustRevocation,
  TrustStatusResult,
} from "./types.js";

export const DEFAULT_TIMEOUT_MS = 10_000;
export const SEARCH_LIMIT_MAX = 50;
export const SEARCH_CAPABILITIES_MAX = 20;
export const SEARCH_QUERY_MAX_WORDS = 32;
const SEARCH_PATH = "/api/v1/agents/search";
export const LIST_LIMIT_MAX = 100;
export const INBOX_WAIT_MAX_SECONDS = 30;
/** A registry answer larger than this is refused (a page of 100 records is far below it). */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
/** Most messages one inbox read asks for (the reference registry's cap). */
export const INBOX_LIMIT_MAX = 100;
/** The largest `max_bytes` the reference registry takes; the client asks for at most its own response limit. */
export const INBOX_MAX_BYTES_MAX = 4 * 1024 * 1024;
/** Most trust records one page of changes asks for (the reference registry's cap), and the default. */
export const TRUST_PAGE_LIMIT_MAX = 1000;
export const TRUST_PAGE_LIMIT_DEFAULT = 500;
/**
 * Most ids one lookup request names: half the reference registry's cap, so a chunk of ordinary records stays
 * far below the response limit.
 */
export const LOOKUP_CHUNK_MAX = 500;
/** Largest Pilot node id (32 bits); the reference registry refuses larger ones. */
const PILOT_NODE_ID_MAX = 0xffffffff;

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/**
 * One connection pool for every registry client, without undici's own header and body timers: each call is bounded
 * by its own AbortSignal already, and those timers tick twice a second while any request is open. An idle account
 * always has its inbox long-poll open, so they cost 120 wake-ups a minute for nothing (most of its idle CPU).
 */
// An idle connection is kept 1 s at most. undici runs a keep-alive over 1 s on its coarse timer, which ticks twice a
// second while any such timer runs: an idle account polling every 15 s woke 30-40 times a minute for it. The long-
// poll's next read follows at once and still reuses the connection; the rest reconnect (the reference registry
// closes idle connections after 5 s anyway).
// Its connect timeout is off for the same reason: it runs on that coarse timer too, which then ticks on after
// every connect (7 connects a minute when idle); each request's own AbortSignal bounds a connect that hangs.
const registryDispatcher = new Agent({
  headersTimeout: 0,
  bodyTimeout: 0,
  keepAliveTimeout: 1_000,
  keepAliveMaxTimeout: 1_000,
  connect: { timeout: 0 },
});
const registryFetch: FetchLike = (input, init) =>
  undiciFetch(input, { ...(init as object), dispatcher: registryDispatcher }) as unknown as Promise<Response>;

export interface RegistryClientOptions {
  /**
   * The registry's base URL, or the base URLs of replicas of one registry (one database) in failover order: the
   * first is preferred.
   */
  baseUrl: string | readonly string[];
  /** Deployment key, sent as `X-Registry-Key`. */
  apiKey?: string | null;
  fetch?: FetchLike;
  /** Per-request timeout (long-poll inbox reads get `wait` seconds on top). */
  timeoutMs?: number;
  /** Largest accepted response body (default MAX_RESPONSE_BYTES). */
  maxResponseBytes?: number;
  /**
   * The installation's key: registration, update and deregistration then carry `X-Agent-Proof`, which a registry
   * with key support requires once the record is bound to the key (and accepts instead of a lost agent token).
   * Registries without key support ignore the header.
   */
  identity?: Identity;
  /**
   * After a failover, how often the preferred (first) URL is probed to go back to it (default 5 min); 0: stay
   * on the URL that answered.
   */
  preferredRetryMs?: number;
  /** Told each time requests move to another URL (failover, or back to the preferred one). */
  onSwitch?: (change: RegistrySwitch) => void;
  /** Clock in epoch milliseconds (default Date.now). */
  now?: () => number;
}

/** Requests moved from one registry URL to another (URLs without credentials). */
export interface RegistrySwitch {
  /** `failover`: a request failed at `from` and `to` answered; `preferred`: the preferred URL answers again. */
  kind: "failover" | "preferred";
  from: string;
  to: string;
  /** ISO time of the move. */
  at: string;
  /** What failed at the URLs tried before (`<url>: unreachable`, `<url>: 503`), or why it went back. */
  reason: string;
}

/** The last failover of a client, as its status shows it. */
export interface RegistryFailover {
  at: string;
  from: string;
  to: string;
  reason: string;
}

/** Which registry URL a client uses, for status (URLs without credentials). */
export interface RegistryEndpointStatus {
  /** The URL requests go to now. */
  url: string;
  /** Its position in the configured list, 0 for the preferred one. */
  index: number;
  /** How many URLs are configured (1: no failover). */
  configured: number;
  lastFailover: RegistryFailover | null;
}

export interface PatchOptions extends CallOptions {
  /** Full metadata for the POST upsert fallback when the server has no PATCH (404/405). */
  fallback?: AgentMetadata;
}

export interface RegistryClient {
  /** The base URL in use, without credentials, for logs and status. */
  readonly url: string;
  /** The URL in use, how many are configured, and the last failover. */
  endpoints(): RegistryEndpointStatus;
  register(meta: AgentMetadata, opts?: CallOptions): Promise<RegisterResult>;
  heartbeat(agentId: string, token: string | null, opts?: CallOptions): Promise<HeartbeatResult>;
  patch(
    agentId: string,
    token: string | null,
    partialMeta: Partial<AgentMetadata>,
    opts?: PatchOptions,
  ): Promise<PatchResult>;
  deregister(agentId: string, token: string | null, opts?: CallOptions): Promise<DeregisterResult>;
  /** null when the registry does not know the agent. */
  get(agentId: string, opts?: CallOptions): Promise<AgentRecord | null>;
  list(filters?: ListFilters, opts?: CallOptions): Promise<AgentPage>;
  /** null when unknown or offline (unless includeOffline). */
  byHostname(
    hostname: string,
    opts?: CallOptions & { includeOffline?: boolean },
  ): Promise<AgentRecord | null>;
  /** The agent announcing this Pilot node id, or null. */
  byNodeId(pilotNodeId: string, opts?: CallOptions): Promise<AgentRecord | null>;
  /**
   * The agents announcing any of the node ids or holding any of the peer ids, offline ones too, each once, in
   * requests of at most LOOKUP_CHUNK_MAX ids (extension). Ids that match nothing are left out, as are ids that
   * cannot be node or peer ids. A registry without the route throws a RegistryError with status 404 or 405:
   * callers then fall back to byNodeId and list, one peer at a time.
   */
  lookupAgents(query: AgentLookupQuery, opts?: CallOptions): Promise<AgentRecord[]>;
  search(query: SearchQuery, opts?: CallOptions): Promise<AgentPage>;
  sendMessage(message: RelayMessageToSend, opts?: CallOptions): Promise<SendMessageResult>;
  readInbox(query: InboxQuery, opts?: CallOptions): Promise<InboxPage>;
  ack(request: AckRequest, opts?: CallOptions): Promise<AckResult>;
  requestTrust(request: TrustRequest, opts?: CallOptions): Promise<TrustStatusResult>;
  pendingTrust(installationId: string, opts?: CallOptions): Promise<{ requests: PendingTrustRequest[] }>;
  approveTrust(decision: TrustDecision, opts?: CallOptions): Promise<TrustStatusResult>;
  rejectTrust(decision: TrustDecision, opts?: CallOptions): Promise<TrustStatusResult>;
  blockTrust(decision: TrustDecision, opts?: CallOptions): Promise<TrustStatusResult>;
  /**
   * Ends trust (approved or pending) in both directions, callable by either side (extension). The original
   * registry answers 404/405: callers fall back to reject/block.
   */
  revokeTrust(revocation: TrustRevocation, opts?: CallOptions): Promise<TrustStatusResult>;
  listTrust(installationId: string, opts?: CallOptions): Promise<{ peers: TrustPeer[] }>;
  /**
   * The caller's trust records changed after `query.after` (from the start when null), one page (extension).
   * `nextCursor` null: the registry does not read by change and `peers` is its whole list.
   */
  listTrustChanges(
    installationId: string,
    query?: TrustChangesQuery,
    opts?: CallOptions,
  ): Promise<TrustChangesPage>;
}

type Method = "GET" | "POST" | "PATCH" | "DELETE";

interface RequestSpec<T> {
  operation: string;
  method: Method;
  path: string;
  query?: URLSearchParams;
  body?: unknown;
  token?: string | null | undefined;
  /** Trust endpoints of the original server expected `Authorization: Bearer <deployment key>`. */
  bearerFallbackToKey?: boolean;
  /** Sign the request with the client's identity (X-Agent-Proof), when it has one. */
  prove?: boolean;
  /**
   * false: repeating the request could do its effect twice, so after a failure that may have reached the
   * registry (timeout, lost connection, 5xx) it is not tried at the next URL; only a refused connection is.
   */
  repeatable?: boolean;
  signal?: AbortSignal | undefined;
  schema: z.ZodType<T, unknown>;
  /** Value for an empty 2xx body (204); without it an empty body is a bad response. */
  whenEmpty?: T;
  extraTimeoutMs?: number;
}

interface Reply<T> {
  status: number;
  data: T;
}

/**
 * One registry URL: `base` is what requests go to, `display` what messages and status show. The same string now
 * that URLs with credentials are refused; kept apart so that nothing shown can ever gain a secret.
 */
interface Endpoint {
  base: string;
  display: string;
}

/** A response read from one URL, before it is interpreted. */
interface Exchange {
  response: Response;
  text: string;
  /** The full request URL (redirect targets resolve against it). */
  url: string;
  /** The request's proof, to redact should the server echo it. */
  proof: string | undefined;
}

/** Answers that say this replica cannot serve now, not that the request is wrong: the next URL is tried. */
const FAILOVER_STATUSES: ReadonlySet<number> = new Set([500, 502, 503, 504]);
/** Connection failures before a byte of the request left: even a request that must not repeat is tried again. */
const NOT_SENT_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
]);
export const DEFAULT_PREFERRED_RETRY_MS = 5 * 60_000;
/** The probe of the preferred URL gets at most this long (or the client's timeout, when shorter). */
const PROBE_TIMEOUT_MS = 5_000;

/** `https://host/prefix/` -> `https://host/prefix`; a trailing `/api/v1` given by the user is tolerated. */
function normalizeBase(baseUrl: string): Endpoint {
  let parsed: URL;
  try {
    parsed = new URL(baseUrl);
  } catch (cause) {
    throw new RegistryError(
      `registryUrl "${baseUrl.slice(0, 200)}" is not a valid URL; set it to the registry's base URL, e.g. http://127.0.0.1:8001`,
      { operation: "configure", kind: "invalid", cause },
    );
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new RegistryError(`registryUrl must be http(s), got ${parsed.protocol}; fix registryUrl`, {
      operation: "configure",
      kind: "invalid",
    });
  }
  const path = parsed.pathname.replace(/\/+$/, "").replace(/\/api\/v1$/, "");
  const display = `${parsed.protocol}//${parsed.host}${path}`;
  if (parsed.username || parsed.password) {
    // fetch refuses such URLs outright, and its error would quote the password.
    throw new RegistryError(
      `registryUrl ${display} carries a user name or password, which requests cannot send; remove it and set registryApiKey to the registry's deployment key`,
      { operation: "configure", kind: "invalid" },
    );
  }
  return { base: display, display };
}

/** A 405, or a 404 that names no agent: the server lacks the route rather than the record. */
export function isMissingRoute(err: RegistryError): boolean {
  if (err.status === 405) return true;
  if (err.status !== 404) return false;
  const detail = err.detail?.trim().toLowerCase();
  return detail === undefined || detail === "not found" || detail.startsWith("no route");
}

function seg(value: string): string {
  return encodeURIComponent(value);
}

function clampInt(value: number | undefined, min: number, max: number, fallback: number): number {
  if (value === undefined || !Number.isFinite(value)) return fallback;
  return Math.min(max, Math.max(min, Math.trunc(value)));
}

/**
 * Capabilities as the client sends them (trimmed, lowercase, non-empty, each once, at most 50): what a signed
 * record must carry to match what the registry stores.
 */
export function wireCapabilities(list: readonly string[] | undefined): string[] {
  return normalizeCapabilities(list, 50);
}

function normalizeCapabilities(list: readonly string[] | undefined, max: number): string[] {
  const out: string[] = [];
  for (const raw of list ?? []) {
    const c = raw.trim().toLowerCase();
    if (c.length > 0 && !out.includes(c)) out.push(c);
    if (out.length >= max) break;
  }
  return out;
}

function metadataToWire(meta: Partial<AgentMetadata>): Record<string, unknown> {
  const wire: Record<string, unknown> = {};
  if (meta.hostname !== undefined) wire.hostname = meta.hostname;
  if (meta.installationId !== undefined) wire.installation_id = meta.installationId;
  if (meta.pilotNodeId !== undefined) wire.pilot_node_id = meta.pilotNodeId;
  if (meta.pilotAddress !== undefined) wire.pilot_address = meta.pilotAddress;
  if (meta.displayName !== undefined) wire.display_name = meta.displayName;
  if (meta.description !== undefined) wire.description = meta.description;
  if (meta.capabilities !== undefined) wire.capabilities = wireCapabilities(meta.capabilities);
  if (meta.publicKey !== undefined) wire.public_key = meta.publicKey;
  if (meta.signedRecord !== undefined) wire.signed_record = meta.signedRecord;
  return wire;
}

function recordToMetadata(record: AgentRecord): AgentMetadata {
  return {
    hostname: record.hostname,
    installationId: record.installationId ?? "",
    pilotNodeId: record.pilotNodeId,
    pilotAddress: record.pilotAddress,
    displayName: record.displayName,
    description: record.description,
    capabilities: record.capabilities,
  };
}

/** The cause of a RegistryError for an answer over the response-size limit (readInbox retries smaller). */
export class ResponseTooLarge extends Error {
  override readonly name = "ResponseTooLarge";
}

/** Reads a body as text, refusing more than `maxBytes` (a broken or hostile server cannot exhaust memory). */
async function readCapped(response: Response, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw new ResponseTooLarge();
  }
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new ResponseTooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** `Retry-After` in seconds (delta-seconds or an HTTP date), bounded to a day; undefined when absent or bad. */
function retryAfterSeconds(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = /^\d{1,9}$/.test(header.trim())
    ? Number(header.trim())
    : Math.ceil((Date.parse(header) - Date.now()) / 1000);
  if (!Number.isFinite(seconds)) return undefined;
  return Math.min(86_400, Math.max(0, seconds));
}

function networkCode(err: unknown): string {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current && typeof current === "object"; depth++) {
    const c = current as { code?: unknown; errors?: unknown[]; cause?: unknown };
    if (typeof c.code === "string") return c.code;
    if (Array.isArray(c.errors) && c.errors.length > 0) {
      const first = c.errors[0] as { code?: unknown };
      if (typeof first?.code === "string") return first.code;
    }
    current = c.cause;
  }
  return err instanceof Error ? err.message : "network error";
}

function describeDetail(detail: unknown): string | null {
  if (detail === undefined || detail === null) return null;
  const text = typeof detail === "string" ? detail : JSON.stringify(detail);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

function statusKind(status: number): RegistryErrorKind {
  switch (status) {
    case 400:
    case 422:
      return "invalid";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 409:
      return "conflict";
    case 413:
      return "too_large";
    case 429:
      return "rate_limited";
    case 507:
      return "inbox_full";
    default:
      return "http";
  }
}

function nextStep(kind: RegistryErrorKind, operation: string): string {
  switch (kind) {
    case "invalid":
      return "fix the request (hostname: lowercase letters, digits and '-'; capabilities 1-64 chars, at most 50)";
    case "unauthorized":
      return "set registryApiKey (or AGENT_REGISTRY_API_KEY) to the registry's deployment key, or register again to get a fresh agent token";
    case "forbidden":
      return operation.startsWith("relay.")
        ? "complete a trust handshake with that agent first"
        : "this installation may not do that; check the ids and the agent token";
    case "not_found":
      return operation === "heartbeat"
        ? "register again"
        : "check the id or hostname (the agent may be offline)";
    case "conflict":
      return "another registration holds this hostname (online, or offline until the registry releases it); choose a different hostname";
    case "too_large":
      return "shorten the message (the registry accepts at most 64 KiB)";
    case "rate_limited":
      return "slow down and retry after the time the registry gave";
    case "inbox_full":
      return "the recipient's relay inbox is full; try again later";
    default:
      return "retry later or check the registry's logs";
  }
}

export function createRegistryClient(options: RegistryClientOptions): RegistryClient {
  const baseUrls = typeof options.baseUrl === "string" ? [options.baseUrl] : [...options.baseUrl];
  if (baseUrls.length === 0) {
    throw new RegistryError("registryUrl lists no URL; give at least one, e.g. http://127.0.0.1:8001", {
      operation: "configure",
      kind: "invalid",
    });
  }
  const endpoints: readonly Endpoint[] = baseUrls.map(normalizeBase);
  const apiKey = options.apiKey ?? null;
  if (apiKey !== null && !/^[\x21-\x7e]+$/.test(apiKey)) {
    throw new RegistryError(
      "registryApiKey contains spaces, line breaks or non-ASCII characters and cannot be sent as a header; copy the key again",
      { operation: "configure", kind: "invalid" },
    );
  }
  const doFetch: FetchLike = options.fetch ?? registryFetch;
  const identity = options.identity;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxResponseBytes = options.maxResponseBytes ?? MAX_RESPONSE_BYTES;
  const preferredRetryMs = options.preferredRetryMs ?? DEFAULT_PREFERRED_RETRY_MS;
  const now = options.now ?? Date.now;
  /** The search route's spelling this server answers to (learned on first use, see search()). */
  let searchPath = SEARCH_PATH;
  /** Whether this server honours search `offset` (the original ignores it); learned on the first page > 1. */
  let searchOffset: "unknown" | "honoured" | "ignored" = "unknown";
  /**
   * Inbox reads ask for at most this many messages: lowered when a registry that ignores max_bytes sent a page
   * over the response limit, and lifted again once a page comes back short (the big messages are read).
   */
  let inboxLimitCap = INBOX_LIMIT_MAX;
  /** The same for pages of trust changes: a page of long introductions can pass the response limit. */
  let trustLimitCap = TRUST_PAGE_LIMIT_MAX;

  // Failover. The URLs are replicas of one registry (one database): a token, key proof or cursor from one is good
  // at every other, and the quirks learned above hold for all. Every request goes to the URL in use; it moves only
  // when a request fails there and another URL answers. `generation` counts moves: a request that started before
  // the latest move does not undo it (a long-poll parked on the old URL may finish long after the switch).
  let inUse = 0;
  let generation = 0;
  let lastFailover: RegistryFailover | null = null;
  /** When the preferred URL was last left or probed: the next probe is due preferredRetryMs after it. */
  let preferredCheckedAt = 0;
  let probing = false;
  const inUseDisplay = () => endpoints[inUse]!.display;

  function moveTo(index: number, startedAt: number, kind: RegistrySwitch["kind"], reason: string): void {
    if (generation !== startedAt || index === inUse) return;
    const change: RegistrySwitch = {
      kind,
      from: endpoints[inUse]!.display,
      to: endpoints[index]!.display,
      at: new Date(now()).toISOString(),
      reason,
    };
    if (inUse === 0) preferredCheckedAt = now();
    inUse = index;
    generation += 1;
    if (kind === "failover") lastFailover = { at: change.at, from: change.from, to: change.to, reason };
    try {
      options.onSwitch?.(change);
    } catch {
      // A listener that throws (a broken log sink) must not fail the request that was just answered.
    }
  }

  /**
   * While on a fallback URL, asks the preferred one every preferredRetryMs whether it answers again, beside the
   * requests (which stay on the fallback meanwhile): a preferred URL that still hangs costs no request its
   * timeout. Started by a request rather than a timer, so an idle client wakes nobody.
   */
  function maybeProbePreferred(): void {
    if (inUse === 0 || probing || preferredRetryMs <= 0 || now() - preferredCheckedAt < preferredRetryMs)
      return;
    probing = true;
    preferredCheckedAt = now();
    const startedAt = generation;
    void probe(endpoints[0]!)
      .then((answered) => {
        if (answered) moveTo(0, startedAt, "preferred", "the preferred registry URL answers again");
      })
      .finally(() => {
        probing = false;
      });
  }

  /** Any HTTP answer below 500 from `/readyz` (a registry without the route answers 404) means the URL is back. */
  async function probe(endpoint: Endpoint): Promise<boolean> {
    const deadline = AbortSignal.timeout(Math.min(timeoutMs, PROBE_TIMEOUT_MS));
    try {
      const response = await doFetch(`${endpoint.base}/readyz`, {
        method: "GET",
        headers: { accept: "application/json" },
        redirect: "manual",
        signal: deadline,
      });
      await response.body?.cancel();
      return response.status < 500;
    } catch {
      return false; // Unreachable or too slow: still down, asked again after the next interval.
    }
  }

  /** Belt and braces: a server may echo a header back in an error detail. */
  function redact(text: string, token: string | null | undefined, proof?: string): string {
    let out = text;
    for (const secret of [apiKey, token, proof]) {
      if (secret && secret.length >= 4) out = out.split(secret).join("***");
    }
    return out;
  }

  function fail(
    spec: RequestSpec<unknown>,
    kind: RegistryErrorKind,
    message: string,
    status?: number,
    cause?: unknown,
    detail?: string | null,
    proof?: string,
  ): RegistryError {
    const opts: RegistryErrorOptions = { operation: spec.operation, kind };
    if (status !== undefined) opts.status = status;
    if (cause !== undefined) opts.cause = cause;
    if (detail !== undefined && detail !== null) opts.detail = redact(detail, spec.token, proof);
    return new RegistryError(redact(message, spec.token, proof), opts);
  }

  /**
   * Whether a failure at one URL may be tried at the next. Timeouts and lost connections may have reached the
   * registry, so only requests that are safe to repeat go on after them; a refused connection never did.
   */
  function mayFailOver(spec: RequestSpec<unknown>, err: unknown): boolean {
    if (!(err instanceof RegistryError)) return false;
    if (err.kind !== "unreachable" && err.kind !== "timeout") return false;
    if (spec.repeatable !== false) return true;
    return err.kind === "unreachable" && NOT_SENT_CODES.has(networkCode(err.cause));
  }

  /** The last URL's error, saying what the URLs before it did (each already redacted). */
  function afterFailures(err: unknown, failures: readonly string[]): unknown {
    if (failures.length === 0 || !(err instanceof RegistryError)) return err;
    const opts: RegistryErrorOptions = { operation: err.operation, kind: err.kind, cause: err.cause };
    if (err.status !== undefined) opts.status = err.status;
    if (err.detail !== undefined) opts.detail = err.detail;
    const all = new RegistryError(`${err.message} (tried before: ${failures.join("; ")})`, opts);
    if (err.retryAfterSeconds !== undefined) all.retryAfterSeconds = err.retryAfterSeconds;
    return all;
  }

  async function request<T>(spec: RequestSpec<T>): Promise<Reply<T>> {
    maybeProbePreferred();
    const startedAt = generation;
    const first = inUse;
    // The URL in use, then the others in their configured order (the preferred first).
    const order = [first, ...[...endpoints.keys()].filter((i) => i !== first)];
    const failures: string[] = [];
    for (const [attempt, index] of order.entries()) {
      const endpoint = endpoints[index]!;
      const last = attempt === order.length - 1;
      let exchange: Exchange;
      try {
        exchange = await send(spec, endpoint);
      } catch (err) {
        if (!last && mayFailOver(spec as RequestSpec<unknown>, err)) {
          failures.push(`${endpoint.display}: ${(err as RegistryError).kind}`);
          continue;
        }
        throw afterFailures(err, failures);
      }
      const unavailable = FAILOVER_STATUSES.has(exchange.response.status);
      if (unavailable && !last && spec.repeatable !== false) {
        failures.push(`${endpoint.display}: ${exchange.response.status}`);
        continue;
      }
      if (!unavailable && index !== first) moveTo(index, startedAt, "failover", failures.join("; "));
      try {
        return interpret(spec, endpoint, exchange);
      } catch (err) {
        throw afterFailures(err, failures);
      }
    }
    // Unreachable: the last URL's outcome always returns or throws above.
    throw new Error("registry request without a URL");
  }

  /** One request to one URL: the response and its body, or a RegistryError (unreachable, timeout, aborted). */
  async function send<T>(spec: RequestSpec<T>, at: Endpoint): Promise<Exchange> {
    const endpoint = `${spec.method} ${spec.path}`;
    const query = spec.query && [...spec.query.keys()].length > 0 ? `?${spec.query.toString()}` : "";
    const url = `${at.base}${spec.path}${query}`;
    const headers: Record<string, string> = { accept: "application/json" };
    if (apiKey) headers["x-registry-key"] = apiKey;
    if (spec.token) headers.authorization = `Bearer ${spec.token}`;
    else if (spec.bearerFallbackToKey && apiKey) headers.authorization = `Bearer ${apiKey}`;
    // Redirects are not followed: the deployment key would travel to wherever the Location points.
    const init: RequestInit = { method: spec.method, headers, redirect: "manual" };
    const body = spec.body === undefined ? "" : JSON.stringify(spec.body);
    if (spec.body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = body;
    }
    if (spec.prove && identity) {
      // Over the exact bytes sent and the request target as the registry receives it: this URL's base path
      // included, with URL's own encoding of the path (what fetch puts on the request line). Signed afresh for
      // each URL tried, with a fresh nonce, so a failover is never refused as a replay.
      const target = new URL(url);
      headers[PROOF_HEADER] = await createRequestProof(identity, {
        method: spec.method,
        path: `${target.pathname}${target.search}`,
        body,
      });
    }
    const budget = timeoutMs + (spec.extraTimeoutMs ?? 0);
    // A deadline cleared once the answer is in: `AbortSignal.timeout` cannot be cleared, so each call would wake the
    // process again when its budget ran out (up to 35 s later for a long-poll) and build an error nobody reads.
    const deadline = new AbortController();
    const deadlineTimer = setTimeout(
      () => deadline.abort(new DOMException(`no answer within ${budget} ms`, "TimeoutError")),
      budget,
    );
    const timeout = deadline.signal;
    init.signal = spec.signal ? AbortSignal.any([spec.signal, timeout]) : timeout;

    const spec0 = spec as RequestSpec<unknown>;
    const failAborted = (cause: unknown): RegistryError => {
      if (spec.signal?.aborted) {
        return fail(
          spec0,
          "aborted",
          `${spec.operation} was cancelled before the registry answered`,
          undefined,
          cause,
        );
      }
      if (timeout.aborted) {
        return fail(
          spec0,
          "timeout",
          `Agent Registry at ${at.display} did not answer ${spec.operation} (${endpoint}) within ${budget} ms; it may be overloaded or a proxy stalled — retry later or raise the timeout`,
          undefined,
          cause,
        );
      }
      return fail(
        spec0,
        "unreachable",
        `Agent Registry at ${at.display} is unreachable (${networkCode(cause)}); check registryUrl or start one with \`npx agent-registry serve\``,
        undefined,
        cause,
      );
    };

    try {
      const response = await doFetch(url, init);
      const text = await readCapped(response, maxResponseBytes);
      return { response, text, url, proof: headers[PROOF_HEADER] };
    } catch (cause) {
      if (cause instanceof ResponseTooLarge) {
        throw fail(
          spec0,
          "bad_response",
          `Agent Registry at ${at.display} sent more than ${maxResponseBytes} bytes for ${spec.operation} (${endpoint}); is registryUrl pointing at an Agent Registry? Use a smaller limit`,
          undefined,
          cause,
        );
      }
      throw failAborted(cause);
    } finally {
      clearTimeout(deadlineTimer);
    }
  }

  /** One URL's answer read as the request's result, or as a RegistryError saying what to do. */
  function interpret<T>(spec: RequestSpec<T>, at: Endpoint, exchange: Exchange): Reply<T> {
    const { response, text, url } = exchange;
    const display = at.display;
    const endpoint = `${spec.method} ${spec.path}`;
    const spec0 = spec as RequestSpec<unknown>;

    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get("location");
      let target = "another address";
      if (location) {
        try {
          const u = new URL(location, url);
          target = `${u.protocol}//${u.host}${u.pathname}`;
        } catch {
          // An unparsable Location header: the message then just says "another address".
        }
      }
      throw fail(
        spec0,
        "http",
        `Agent Registry at ${display} redirected ${spec.operation} (${endpoint}) to ${target}; redirects are not followed (they would carry the registry key), set registryUrl to the final address (e.g. https:// instead of http://)`,
        response.status,
      );
    }

    const contentType = response.headers.get("content-type") ?? "";
    let json: unknown;
    let isJson = false;
    if (text.trim().length > 0) {
      try {
        json = JSON.parse(text);
        isJson = true;
      } catch {
        // Not JSON (an HTML error page from a proxy, plain text): handled below by status and content type.
        isJson = false;
      }
    }

    if (!response.ok) {
      const kind = statusKind(response.status);
      const detail = isJson ? describeDetail(errorBodySchema.safeParse(json).data ?? json) : null;
      const what = detail
        ? `: ${detail}`
        : text.trim().length > 0
          ? ` (non-JSON ${contentType.split(";")[0] || "body"})`
          : "";
      const statusText = response.statusText ? ` ${response.statusText}` : "";
      const error = fail(
        spec0,
        kind,
        `Agent Registry at ${display} answered ${response.status}${statusText} to ${spec.operation} (${endpoint})${what}; ${nextStep(kind, spec.operation)}`,
        response.status,
        undefined,
        detail,
        exchange.proof,
      );
      const retryAfter = retryAfterSeconds(response.headers.get("retry-after"));
      if (retryAfter !== undefined) error.retryAfterSeconds = retryAfter;
      throw error;
    }

    if (text.trim().length === 0) {
      if (spec.whenEmpty !== undefined) return { status: response.status, data: spec.whenEmpty };
      throw fail(
        spec0,
        "bad_response",
        `Agent Registry at ${display} sent an empty body for ${spec.operation} (${endpoint}); is registryUrl pointing at an Agent Registry?`,
        response.status,
      );
    }
    if (!isJson) {
      throw fail(
        spec0,
        "bad_response",
        `Agent Registry at ${display} sent a non-JSON ${contentType.split(";")[0] || "body"} for ${spec.operation} (${endpoint}); is registryUrl pointing at an Agent Registry?`,
        response.status,
      );
    }
    const parsed = spec.schema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
        .join("; ");
      throw fail(
        spec0,
        "bad_response",
        `Agent Registry at ${display} sent an unexpected response to ${spec.operation} (${endpoint}): ${issues}; is registryUrl pointing at a compatible Agent Registry?`,
        response.status,
        parsed.error,
      );
    }
    return { status: response.status, data: parsed.data };
  }

  async function list(filters: ListFilters = {}, opts: CallOptions = {}): Promise<AgentPage> {
    const query = new URLSearchParams();
    if (filters.hostname !== undefined) query.set("hostname", filters.hostname);
    if (filters.installationId !== undefined) query.set("installation_id", filters.installationId);
    if (filters.pilotNodeId !== undefined) query.set("pilot_node_id", filters.pilotNodeId);
    if (filters.includeOffline) query.set("include_offline", "true");
    if (filters.limit !== undefined)
      query.set("limit", String(clampInt(filters.limit, 1, LIST_LIMIT_MAX, 50)));
    if (filters.offset !== undefined) query.set("offset", String(clampInt(filters.offset, 0, 1_000_000, 0)));
    const { data } = await request({
      operation: "list",
      method: "GET",
      path: "/api/v1/agents/",
      query,
      signal: opts.signal,
      token: opts.token,
      schema: agentPageSchema,
    });
    // The original server may ignore filters: apply them again here so callers get what they asked for.
    // Records without a status stay ("unknown": the original never sends one); callers that need an
    // online agent confirm it (byNodeId) and nobody shows them as online.
    const kept = data.agents.filter(
      (a) =>
        (filters.hostname === undefined || a.hostname === filters.hostname) &&
        (filters.installationId === undefined || a.installationId === filters.installationId) &&
        (filters.pilotNodeId === undefined || a.pilotNodeId === filters.pilotNodeId) &&
        (filters.includeOffline === true || a.status !== "offline"),
    );
    return kept.length === data.agents.length ? data : { agents: kept, total: kept.length };
  }

  async function register(meta: AgentMetadata, opts: CallOptions = {}): Promise<RegisterResult> {
    const { status, data } = await request({
      operation: "register",
      method: "POST",
      path: "/api/v1/agents/",
      body: metadataToWire(meta),
      prove: true,
      // An upsert by hostname: a repeat with the owner's token keeps the record and the token (the registry does
      // not rotate a valid one), and a repeat signed by the record's key is accepted without it. A first
      // registration with neither would be refused as someone else's once the lost reply's attempt was stored.
      repeatable: Boolean(opts.token) || identity !== undefined,
      token: opts.token,
      signal: opts.signal,
      schema: registerResponseSchema,
    });
    return { record: data.record, agentToken: data.agentToken, created: status === 201 };
  }

  async function get(agentId: string, opts: CallOptions = {}): Promise<AgentRecord | null> {
    try {
      const { data } = await request({
        operation: "get",
        method: "GET",
        path: `/api/v1/agents/${seg(agentId)}`,
        token: opts.token,
        signal: opts.signal,
        schema: singleAgentSchema,
      });
      return data;
    } catch (err) {
      if (err instanceof RegistryError && err.kind === "not_found") return null;
      throw err;
    }
  }

  /**
   * The agent holding `hostname`, and whether the answer came from a route that hides offline agents (the
   * contract's by-hostname). Such a record is online even when the server sends no status, and says so.
   */
  async function lookupHostname(
    hostname: string,
    opts: CallOptions & { includeOffline?: boolean },
  ): Promise<{ record: AgentRecord | null; hidesOffline: boolean }> {
    const query = new URLSearchParams();
    if (opts.includeOffline) query.set("include_offline", "true");
    try {
      const { data } = await request({
        operation: "byHostname",
        method: "GET",
        path: `/api/v1/agents/by-hostname/${seg(hostname)}`,
        query,
        token: opts.token,
        signal: opts.signal,
        schema: singleAgentSchema,
      });
      const online = !opts.includeOffline && data.status === "unknown";
      return { record: online ? { ...data, status: "online" } : data, hidesOffline: true };
    } catch (err) {
      // A server without this route (FastAPI: 404 "Not Found", or 405) is asked through the list filtered
      // by hostname; a 404 with any other detail is the registry saying "unknown or offline".
      if (!(err instanceof RegistryError)) throw err;
      if (!isMissingRoute(err)) {
        if (err.kind === "not_found") return { record: null, hidesOffline: true };
        throw err;
      }
    }
    const page = await list(
      { hostname, includeOffline: opts.includeOffline === true },
      { signal: opts.signal, token: opts.token },
    );
    return { record: page.agents[0] ?? null, hidesOffline: false };
  }

  /** One lookup request; an answer over the response limit is asked again in halves, down to one id. */
  async function lookupChunk(
    nodeIds: readonly string[],
    peerIds: readonly string[],
    opts: CallOptions,
  ): Promise<AgentRecord[]> {
    const body: Record<string, string[]> = {};
    if (nodeIds.length > 0) body.pilot_node_ids = [...nodeIds];
    if (peerIds.length > 0) body.peer_ids = [...peerIds];
    try {
      const { data } = await request({
        operation: "lookup",
        method: "POST",
        path: "/api/v1/agents/lookup",
        body,
        token: opts.token,
        signal: opts.signal,
        schema: agentLookupResponseSchema,
      });
      return data;
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      if (err.status === 404 || err.status === 405) {
        // The route never answers 404 itself: the registry predates it. Same kind and status, plainer words.
        const missing: RegistryErrorOptions = {
          operation: "lookup",
          kind: err.kind,
          status: err.status,
          cause: err,
        };
        if (err.detail !== undefined) missing.detail = err.detail;
        throw new RegistryError(
          `Agent Registry at ${inUseDisplay()} has no batched lookup (POST /api/v1/agents/lookup answered ${err.status}); look agents up one at a time`,
          missing,
        );
      }
      const ids = nodeIds.length + peerIds.length;
      if (!(err.cause instanceof ResponseTooLarge) || ids <= 1) throw err;
      const half = Math.ceil(ids / 2);
      const first = await lookupChunk(
        nodeIds.slice(0, half),
        peerIds.slice(0, Math.max(0, half - nodeIds.length)),
        opts,
      );
      const rest = await lookupChunk(
        nodeIds.slice(half),
        peerIds.slice(Math.max(0, half - nodeIds.length)),
        opts,
      );
      return [...first, ...rest];
    }
  }

  async function lookupAgents(q: AgentLookupQuery, opts: CallOptions = {}): Promise<AgentRecord[]> {
    // Ids the registry would refuse (422) are dropped here: they name no agent, and one of them would sink the
    // lookup of every other id in its request. Node ids are compared as numbers ("007" is node 7).
    const nodeIds = new Set<string>();
    for (const raw of q.pilotNodeIds ?? []) {
      const id = raw.trim();
      if (/^\d{1,10}$/.test(id) && Number(id) <= PILOT_NODE_ID_MAX) nodeIds.add(String(Number(id)));
    }
    const peerIds = new Set<string>();
    for (const id of q.peerIds ?? []) {
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the registry refuses ids with control characters
      if (id.length > 0 && id.length <= 200 && !/[\u0000-\u001f\u007f-\u009f]/.test(id)) peerIds.add(id);
    }
    const nodes = [...nodeIds];
    const peers = [...peerIds];
    const found = new Map<string, AgentRecord>();
    // Sequential on purpose: a client with 10,000 peers should not put 20 requests on the registry at once.
    for (let start = 0; start < nodes.length + peers.length; start += LOOKUP_CHUNK_MAX) {
      const end = start + LOOKUP_CHUNK_MAX;
      const chunkNodes = nodes.slice(start, end);
      const chunkPeers = peers.slice(Math.max(0, start - nodes.length), Math.max(0, end - nodes.length));
      for (const record of await lookupChunk(chunkNodes, chunkPeers, opts)) {
        // Kept only when it answers an id asked for, and once: an agent may match by node id in one request
        // and by peer id in another, and a registry answering with other records must not name peers wrongly.
        const asked =
          (record.pilotNodeId !== null && nodeIds.has(String(Number(record.pilotNodeId)))) ||
          (record.peerId !== null && peerIds.has(record.peerId));
        if (asked && !found.has(record.id)) found.set(record.id, record);
      }
    }
    return [...found.values()];
  }

  function trustDecision(operation: "approve" | "reject" | "block") {
    return async (decision: TrustDecision, opts: CallOptions = {}): Promise<TrustStatusResult> => {
      const { data } = await request({
        operation: `trust.${operation}`,
        method: "POST",
        path: `/api/v1/trust/${operation}`,
        body: { from_id: decision.fromId, to_id: decision.toId },
        token: opts.token,
        bearerFallbackToKey: true,
        signal: opts.signal,
        schema: trustStatusResponseSchema,
      });
      return data;
    };
  }

  return {
    get url() {
      return inUseDisplay();
    },
    endpoints: () => ({
      url: inUseDisplay(),
      index: inUse,
      configured: endpoints.length,
      lastFailover,
    }),
    register,
    get,
    list,
    lookupAgents,

    async heartbeat(agentId, token, opts = {}) {
      const { data } = await request({
        operation: "heartbeat",
        method: "POST",
        path: `/api/v1/agents/${seg(agentId)}/heartbeat`,
        token,
        signal: opts.signal,
        schema: heartbeatResponseSchema,
        whenEmpty: { lastSeen: null, ttlSeconds: null },
      });
      return data;
    },

    async patch(agentId, token, partialMeta, opts = {}) {
      try {
        const { data } = await request({
          operation: "patch",
          method: "PATCH",
          path: `/api/v1/agents/${seg(agentId)}`,
          body: metadataToWire(partialMeta),
          prove: true,
          token,
          signal: opts.signal,
          schema: singleAgentSchema,
        });
        return { record: data, via: "patch", agentToken: null };
      } catch (err) {
        // 405: the original server has no PATCH; 404: no PATCH route or the record expired. Either way a
        // POST upsert with the full metadata brings the record up to date (same id for the same installation).
        if (!(err instanceof RegistryError) || (err.status !== 404 && err.status !== 405)) throw err;
      }
      let full: AgentMetadata | null = opts.fallback ? { ...opts.fallback, ...partialMeta } : null;
      if (!full && partialMeta.hostname && partialMeta.installationId && partialMeta.capabilities) {
        full = partialMeta as AgentMetadata;
      }
      if (!full) {
        const current = await get(agentId, { signal: opts.signal, token });
        if (!current) {
          throw new RegistryError(
            "The registry supports no PATCH and no longer knows this agent; register again with the full metadata",
            { operation: "patch", kind: "not_found", status: 404 },
          );
        }
        full = { ...recordToMetadata(current), ...partialMeta };
      }
      const upsert = await register(full, { signal: opts.signal, token });
      return { record: upsert.record, via: "upsert", agentToken: upsert.agentToken };
    },

    async deregister(agentId, token, opts = {}) {
      try {
        await request({
          operation: "deregister",
          method: "DELETE",
          path: `/api/v1/agents/${seg(agentId)}`,
          prove: true,
          token,
          signal: opts.signal,
          schema: z.unknown(),
          whenEmpty: null,
        });
        return { removed: true };
      } catch (err) {
        if (err instanceof RegistryError && err.kind === "not_found") return { removed: false };
        throw err;
      }
    },

    async byHostname(hostname, opts = {}) {
      return (await lookupHostname(hostname, opts)).record;
    },

    async byNodeId(pilotNodeId, opts = {}) {
      const page = await list({ pilotNodeId }, opts);
      const online = page.agents.find((a) => a.status === "online");
      if (online) return online;
      // Records without a status (the original registry) may belong to agents long gone: ask the by-hostname
      // route, which answers only for online agents, before naming anyone. Bounded: a node id has one or a
      // few records.
      for (const candidate of page.agents.filter((a) => a.status === "unknown").slice(0, 3)) {
        const { record, hidesOffline } = await lookupHostname(candidate.hostname, opts);
        // Without that route nothing can tell; the record is returned as it is, still "unknown".
        if (!hidesOffline) return candidate;
        if (record?.id === candidate.id) return record;
      }
      return null;
    },

    async search(q, opts = {}) {
      const query = new URLSearchParams();
      // The reference server refuses more than 32 words; a longer query adds nothing to the ranking.
      const text = q.q?.trim().split(/\s+/).slice(0, SEARCH_QUERY_MAX_WORDS).join(" ").slice(0, 500);
      if (text) {
        query.set("q", text);
        // Some versions of the original server read the text as `query`; servers ignore the other name.
        query.set("query", text);
      }
      const capabilities = normalizeCapabilities(q.capabilities, SEARCH_CAPABILITIES_MAX);
      for (const c of capabilities) query.append("capabilities", c);
      if (q.match) query.set("match", q.match === "all" ? "all" : "any");
      const limit = clampInt(q.limit, 1, SEARCH_LIMIT_MAX, 10);
      const offset = q.offset === undefined ? 0 : clampInt(q.offset, 0, 1_000_000, 0);
      if (q.includeOffline) query.set("include_offline", "true");
      const attempt = (path: string, pageOffset: number, pageLimit: number) => {
        const pageQuery = new URLSearchParams(query);
        pageQuery.set("limit", String(pageLimit));
        if (q.offset !== undefined || pageOffset > 0) pageQuery.set("offset", String(pageOffset));
        return request({
          operation: "search",
          method: "GET",
          path,
          query: pageQuery,
          token: opts.token,
          signal: opts.signal,
          schema: agentPageSchema,
        });
      };
      const fetchPage = async (pageOffset: number, pageLimit: number): Promise<AgentPage> => {
        try {
          return (await attempt(searchPath, pageOffset, pageLimit)).data;
        } catch (err) {
          // FastAPI servers serve exactly one of "/search" and "/search/": the other answers 404 (taken for
          // an agent id) or a slash redirect. Try the other spelling once and keep whichever worked.
          const status = err instanceof RegistryError ? (err.status ?? 0) : 0;
          if (status !== 404 && (status < 300 || status >= 400)) throw err;
          const other = searchPath === SEARCH_PATH ? `${SEARCH_PATH}/` : SEARCH_PATH;
          const { data } = await attempt(other, pageOffset, pageLimit);
          searchPath = other;
          return data;
        }
      };

      const caveats: string[] = [];
      // `match: "all"` is checked here as well: the original registry returns agents with ANY of the
      // capabilities. Capabilities are stored lowercase, as normalizeCapabilities sends them.
      let droppedByAll = 0;
      const keep = (agents: AgentRecord[]) => {
        if (q.match !== "all" || capabilities.length < 2) return agents;
        const kept = agents.filter((a) => {
          const has = new Set(a.capabilities.map((c) => c.toLowerCase()));
          return capabilities.every((c) => has.has(c));
        });
        droppedByAll += agents.length - kept.length;
        return kept;
      };

      let page = await fetchPage(offset, limit);
      if (offset > 0 && searchOffset === "unknown" && page.agents.length > 0) {
        // A server that ignores `offset` answers page 1 again: compare with page 1 once and remember.
        const first = await fetchPage(0, limit);
        const same =
          first.agents.length === page.agents.length &&
          first.agents.every((a, i) => a.id === page.agents[i]?.id);
        searchOffset = same ? "ignored" : "honoured";
      }
      let agents: AgentRecord[];
      let total: number;
      if (offset > 0 && searchOffset === "ignored") {
        // Cut the page from the first results, which such a server does return in order.
        const window = Math.min(SEARCH_LIMIT_MAX, offset + limit);
        const head = offset < SEARCH_LIMIT_MAX ? keep((await fetchPage(0, window)).agents) : [];
        agents = head.slice(offset, offset + limit);
        total = head.length;
        caveats.push(
          `This registry ignores search offsets: pages are cut from its first ${SEARCH_LIMIT_MAX} results here, so later results cannot be reached and the total counts only those; narrow the query instead of paging further.`,
        );
      } else {
        agents = keep(page.agents);
        total = droppedByAll > 0 ? offset + agents.length : page.total;
      }
      if (droppedByAll > 0) {
        caveats.push(
          'This registry does not support match "all" (it returned agents with only some of the capabilities); those were filtered out here, so the total counts only this page.',
        );
      }
      page = { agents, total };
      return caveats.length > 0 ? { ...page, caveats } : page;
    },

    async sendMessage(message, opts = {}) {
      const body: Record<string, unknown> = {
        from_installation_id: message.fromInstallationId,
        from_hostname: message.fromHostname,
        body: message.body,
      };
      if (message.toInstallationId !== undefined) body.to_installation_id = message.toInstallationId;
      if (message.toHostname !== undefined) body.to_hostname = message.toHostname;
      if (message.messageId !== undefined) body.message_id = message.messageId;
      const { data } = await request({
        operation: "relay.send",
        method: "POST",
        path: "/api/v1/agents/messages/send",
        body,
        // The registry stores one message per message_id and inbox, so a repeat with the id is harmless; without
        // one the registry picks an id per request, and a repeat could deliver the message twice.
        repeatable: message.messageId !== undefined,
        token: opts.token,
        signal: opts.signal,
        schema: sendMessageResponseSchema,
        whenEmpty: { messageId: null, refused: null },
      });
      if (data.refused !== null) {
        throw new RegistryError(
          `Agent Registry at ${inUseDisplay()} refused the relay message (${data.refused}); check the recipient and that trust is approved`,
          { operation: "relay.send", kind: "http", status: 200 },
        );
      }
      return { messageId: data.messageId ?? message.messageId ?? null };
    },

    async readInbox(q, opts = {}) {
      const wanted = clampInt(q.limit, 1, INBOX_LIMIT_MAX, INBOX_LIMIT_MAX);
      let limit = Math.min(wanted, inboxLimitCap);
      let wait = q.wait === undefined ? 0 : clampInt(q.wait, 0, INBOX_WAIT_MAX_SECONDS, 0);
      // Ask for what this client can take: the reference registry stops a page before max_bytes.
      const maxBytes = clampInt(maxResponseBytes, 1024, INBOX_MAX_BYTES_MAX, INBOX_MAX_BYTES_MAX);
      for (;;) {
        const query = new URLSearchParams();
        if (q.after) query.set("after", q.after);
        query.set("limit", String(limit));
        query.set("max_bytes", String(maxBytes));
        if (wait > 0) query.set("wait", String(wait));
        if (q.trustAfter && /^\d{1,15}$/.test(q.trustAfter)) query.set("trust_after", q.trustAfter);
        try {
          const { data } = await request({
            operation: "relay.inbox",
            method: "GET",
            path: `/api/v1/agents/messages/inbox/${seg(q.installationId)}`,
            query,
            token: opts.token,
            signal: opts.signal,
            schema: inboxResponseSchema,
            extraTimeoutMs: wait * 1000,
          });
          if (data.messages.length + data.unreadable.length < limit) inboxLimitCap = INBOX_LIMIT_MAX;
          return data;
        } catch (err) {
          // A registry that ignores max_bytes (the original one) sent more than we take: ask for fewer
          // messages, down to one, instead of failing on the same page forever. The page exists, so no wait.
          if (!(err instanceof RegistryError && err.cause instanceof ResponseTooLarge) || limit <= 1)
            throw err;
          limit = Math.max(1, Math.floor(limit / 2));
          inboxLimitCap = limit;
          wait = 0;
        }
      }
    },

    async ack(req, opts = {}) {
      const { data } = await request({
        operation: "relay.ack",
        method: "POST",
        path: "/api/v1/agents/messages/ack",
        body: { installation_id: req.installationId, message_ids: req.messageIds },
        token: opts.token,
        signal: opts.signal,
        schema: ackResponseSchema,
        whenEmpty: { acked: 0 },
      });
      return data;
    },

    async requestTrust(req, opts = {}) {
      const body: Record<string, unknown> = { from_id: req.fromId, to_id: req.toId };
      if (req.introduction !== undefined) body.introduction = req.introduction;
      if (req.assistantName !== undefined) body.assistant_name = req.assistantName;
      if (req.humanName !== undefined) body.human_name = req.humanName;
      const { data } = await request({
        operation: "trust.request",
        method: "POST",
        path: "/api/v1/trust/request",
        body,
        token: opts.token,
        bearerFallbackToKey: true,
        signal: opts.signal,
        schema: trustStatusResponseSchema,
      });
      return data;
    },

    async pendingTrust(installationId, opts = {}) {
      const { data } = await request({
        operation: "trust.pending",
        method: "GET",
        path: `/api/v1/trust/pending/${seg(installationId)}`,
        token: opts.token,
        bearerFallbackToKey: true,
        signal: opts.signal,
        schema: pendingTrustResponseSchema,
      });
      return { requests: data };
    },

    approveTrust: trustDecision("approve"),
    rejectTrust: trustDecision("reject"),
    blockTrust: trustDecision("block"),

    async revokeTrust(revocation, opts = {}) {
      await request({
        operation: "trust.revoke",
        method: "POST",
        path: "/api/v1/trust/revoke",
        body: { from_id: revocation.fromId, to_id: revocation.toId },
        token: opts.token,
        signal: opts.signal,
        // The reply is `{status:"revoked", changed}`; what is left on both sides is a rejection.
        schema: z.unknown(),
      });
      return { status: "rejected" };
    },

    async listTrust(installationId, opts = {}) {
      const { data } = await request({
        operation: "trust.list",
        method: "GET",
        path: `/api/v1/trust/list/${seg(installationId)}`,
        token: opts.token,
        bearerFallbackToKey: true,
        signal: opts.signal,
        schema: trustListResponseSchema,
      });
      return { peers: data };
    },

    async listTrustChanges(installationId, q = {}, opts = {}) {
      const wanted = clampInt(q.limit, 1, TRUST_PAGE_LIMIT_MAX, TRUST_PAGE_LIMIT_DEFAULT);
      let limit = Math.min(wanted, trustLimitCap);
      for (;;) {
        const query = new URLSearchParams();
        if (q.after) query.set("after", q.after);
        query.set("limit", String(limit));
        try {
          const { data } = await request({
            operation: "trust.list",
            method: "GET",
            path: `/api/v1/trust/list/${seg(installationId)}`,
            query,
            token: opts.token,
            bearerFallbackToKey: true,
            signal: opts.signal,
            schema: trustChangesResponseSchema,
          });
          if (!data.hasMore) trustLimitCap = TRUST_PAGE_LIMIT_MAX;
          return data;
        } catch (err) {
          // Over the response limit: ask for fewer records, down to one, rather than fail on this page forever.
          if (!(err instanceof RegistryError && err.cause instanceof ResponseTooLarge) || limit <= 1)
            throw err;
          limit = Math.max(1, Math.floor(limit / 2));
          trustLimitCap = limit;
        }
      }
    },
  };
}
