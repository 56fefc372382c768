// Minimal HTTP plumbing on node:http: a route table (literal segments win over parameters, 404 vs 405),
// bounded JSON body reading (413 stops reading early, 415 for anything but JSON, 400 on malformed or too
// deeply nested JSON, a typed error when the client leaves mid-upload) and JSON replies.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { z } from "zod";
import {
  badRequest,
  ClientGoneError,
  payloadTooLarge,
  RegistryHttpError,
  unprocessable,
  unsupportedMediaType,
} from "./errors.js";
import { JsonStream } from "./json-text.js";
import { toValidationIssues } from "./schemas.js";

export interface RequestContext {
  readonly req: IncomingMessage;
  readonly method: string;
  readonly path: string;
  readonly params: Readonly<Record<string, string>>;
  readonly url: URL;
  /** Aborted when the client goes away or the server shuts down (long-polls return early). */
  readonly signal: AbortSignal;
}

export interface Reply {
  status: number;
  body?: unknown;
}

export type Handler = (ctx: RequestContext) => Reply | Promise<Reply>;

interface Route {
  method: string;
  segments: string[];
  operation: string;
  handler: Handler;
}

export type RouteMatch =
  | { kind: "found"; route: Route; params: Record<string, string> }
  | { kind: "method-not-allowed"; allow: string[] }
  | { kind: "not-found" };

/** Segment names that are routes of their own under /agents/ and so can never be an agent id. */
const RESERVED = new Set(["search", "lookup", "messages", "by-hostname"]);

export class Router {
  readonly #routes: Route[] = [];

  add(method: string, pattern: string, operation: string, handler: Handler): this {
    this.#routes.push({ method, segments: pattern.split("/").filter(Boolean), operation, handler });
    return this;
  }

  /** Every route as `METHOD /pattern` (docs/registry-api.md is checked against this list). */
  list(): string[] {
    return this.#routes.map((r) => `${r.method} /${r.segments.join("/")}`);
  }

  match(method: string, path: string): RouteMatch {
    const segments = path.split("/").filter(Boolean);
    const allow = new Set<string>();
    let best: { route: Route; params: Record<string, string>; literals: number } | undefined;
    for (const route of this.#routes) {
      const matched = matchSegments(route.segments, segments);
      if (!matched) continue;
      if (route.method !== method) {
        allow.add(route.method);
        continue;
      }
      if (!best || matched.literals > best.literals) best = { route, ...matched };
    }
    if (best) return { kind: "found", route: best.route, params: best.params };
    if (allow.size) return { kind: "method-not-allowed", allow: [...allow].sort() };
    return { kind: "not-found" };
  }
}

function matchSegments(
  pattern: string[],
  segments: string[],
): { params: Record<string, string>; literals: number } | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  let literals = 0;
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const s = segments[i]!;
    if (p.startsWith(":")) {
      if (RESERVED.has(s) && pattern[i - 1] === "agents") return undefined;
      params[p.slice(1)] = s;
    } else if (p === s) {
      literals++;
    } else {
      return undefined;
    }
  }
  return { params, literals };
}

const EMPTY = Buffer.alloc(0);

/**
 * `application/json`, optionally with `charset=utf-8`. Anything else is refused before the body is read: the
 * three content types a web page may send cross-origin without a CORS preflight (text/plain, form
 * encodings) would otherwise let any page a user visits register agents or send messages on a registry it
 * can reach. A body sent with no Content-Type at all (a Blob in `fetch`) is refused for the same reason.
 */
const JSON_CONTENT_TYPE = /^application\/json\s*(?:;\s*charset\s*=\s*"?utf-?8"?\s*)?$/i;

function requireJson(req: IncomingMessage, operation: string, hasBody: boolean): void {
  const type = req.headers["content-type"];
  if (type === undefined ? !hasBody : JSON_CONTENT_TYPE.test(type)) return;
  throw unsupportedMediaType(
    operation,
    `request body must be sent with Content-Type: application/json (optionally ; charset=utf-8), got ${
      type === undefined ? "no Content-Type" : `'${type.slice(0, 100)}'`
    }; send the body as JSON with that header`,
  );
}

/**
 * Reads the request body up to `maxBytes`; over the cap -> 413 without reading the rest. A client that goes
 * away mid-upload is a ClientGoneError (not a server fault: the caller logs it at debug level).
 */
export async function readBody(req: IncomingMessage, operation: string, maxBytes: number): Promise<Buffer> {
  const tooLarge = () =>
    payloadTooLarge(operation, `request body is larger than ${maxBytes} bytes; send a smaller request`);
  const length = req.headers["content-length"];
  const declared = Number(length);
  // No Content-Length (or 0) and no Transfer-Encoding: HTTP/1.1 says there is no body, so skip the stream
  // (node:http discards anything unread when the response ends). Most calls of heartbeat/DELETE are so.
  const hasBody = !(
    (length === undefined || declared === 0) &&
    req.headers["transfer-encoding"] === undefined
  );
  requireJson(req, operation, hasBody);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();
  if (!hasBody) return EMPTY;
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) {
        req.pause();
        throw tooLarge();
      }
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof RegistryHttpError) throw error;
    // The request stream only fails when the connection does (reset, closed mid-body).
    throw new ClientGoneError(operation, error);
  }
  // Node ends the stream without an error when the connection closes early in some paths; a short body is
  // then the client's departure, not a request to answer.
  if (req.readableAborted || (Number.isFinite(declared) && size < declared)) {
    throw new ClientGoneError(operation);
  }
  return Buffer.concat(chunks);
}

/**
 * Deepest nesting of arrays and objects accepted in a JSON body. No request of this API needs more than a
 * few levels (a relay message body is the deepest caller-chosen value), while ~10^4 levels overflow the
 * stack of the recursive code that later walks the value (JSON.stringify, validation), turning a malformed
 * request into a 500.
 */
export const MAX_JSON_DEPTH = 64;

/** True when `raw` (UTF-8 JSON text) nests arrays/objects deeper than `max`. Bytes outside strings only. */
function nestsDeeperThan(raw: Buffer, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i]!;
    if (inString) {
      // UTF-8 continuation bytes are >= 0x80, so '"' and '\\' seen here are always the ASCII characters.
      if (b === 0x5c) i++;
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) inString = true;
    else if (b === 0x5b || b === 0x7b) {
      if (++depth > max) return true;
    } else if (b === 0x5d || b === 0x7d) depth--;
  }
  return false;
}

/** Parses a JSON body: empty -> undefined (the schema then reports what is missing), malformed -> 400. */
export function parseJson(raw: Buffer, operation: string): unknown {
  if (raw.length === 0) return undefined;
  if (nestsDeeperThan(raw, MAX_JSON_DEPTH)) {
    throw badRequest(
      operation,
      `request body nests arrays or objects more than ${MAX_JSON_DEPTH} levels deep; send a flatter JSON object`,
    );
  }
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch (error) {
    throw badRequest(
      operation,
      `request body is not valid JSON (${(error as Error).message}); send a JSON object with Content-Type: application/json`,
    );
  }
}

/** Validates `input` against `schema`; failures become a FastAPI-style 422 naming each field. */
export function validate<S extends z.ZodType>(
  schema: S,
  input: unknown,
  where: "body" | "query" | "path",
  operation: string,
): z.output<S> {
  const parsed = schema.safeParse(input === undefined && where === "body" ? undefined : input, {
    reportInput: true,
  });
  if (parsed.success) return parsed.data;
  if (where === "body" && input === undefined) {
    throw unprocessable(operation, [{ loc: ["body"], msg: "Field required", type: "missing" }]);
  }
  throw unprocessable(operation, toValidationIssues(where, parsed.error));
}

/** Query string as an object; keys in `arrays` are always arrays, other repeated keys keep the last value. */
export function queryObject(url: URL, arrays: readonly string[] = []): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const key of new Set(url.searchParams.keys())) {
    out[key] = arrays.includes(key)
      ? url.searchParams.getAll(key)
      : (url.searchParams.getAll(key).at(-1) ?? "");
  }
  return out;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  if (status === 204) {
    res.writeHead(204, headers).end();
    return;
  }
  if (body instanceof JsonStream) {
    // Chunked (no Content-Length): a piece may be left out while the page is written (see the producer).
    res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers });
    void pump(res, body.chunks());
    return;
  }
  const text = JSON.stringify(body);
  res
    .writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
      "cache-control": "no-store",
      ...headers,
    })
    .end(text);
}

/**
 * Writes the pieces as the socket takes them: the next piece is produced only after a drain, so a slow reader
 * costs about one piece of memory. A client that goes away stops the producer.
 */
async function pump(res: ServerResponse, chunks: Iterator<string> | AsyncIterator<string>): Promise<void> {
  try {
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
      if (res.destroyed) return;
      if (!res.write(next.value)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.on("drain", done);
          res.on("close", done);
        });
      }
    }
    res.end();
  } catch (error) {
    // The status line is sent, so no error reply is possible: cutting the connection tells the client the page
    // is incomplete (a chunked body without its end), and it reads again. A bug here must still be seen.
    res.destroy();
    process.emitWarning(`agent-registry: a streamed reply failed (${(error as Error)?.message ?? error})`);
  } finally {
    await chunks.return?.();
  }
}

export function errorReply(error: RegistryHttpError): {
  status: number;
  body: unknown;
  headers: Record<string, string>;
} {
  return { status: error.status, body: { detail: error.detail }, headers: error.headers };
}
