// Minimal HTTP plumbing on node:http: a route table (literal segments win over parameters, 404 vs 405),
// bounded JSON body reading (413 stops reading early, 400 on malformed JSON) and JSON replies.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { z } from "zod";
import { badRequest, payloadTooLarge, type RegistryHttpError, unprocessable } from "./errors.js";
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
const RESERVED = new Set(["search", "messages", "by-hostname"]);

export class Router {
  readonly #routes: Route[] = [];

  add(method: string, pattern: string, operation: string, handler: Handler): this {
    this.#routes.push({ method, segments: pattern.split("/").filter(Boolean), operation, handler });
    return this;
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

/** Reads the request body up to `maxBytes`; over the cap -> 413 without reading the rest. */
export async function readBody(req: IncomingMessage, operation: string, maxBytes: number): Promise<Buffer> {
  const tooLarge = () =>
    payloadTooLarge(operation, `request body is larger than ${maxBytes} bytes; send a smaller request`);
  const length = req.headers["content-length"];
  const declared = Number(length);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();
  // No Content-Length (or 0) and no Transfer-Encoding: HTTP/1.1 says there is no body, so skip the stream
  // (node:http discards anything unread when the response ends). Most calls of heartbeat/DELETE are so.
  if ((length === undefined || declared === 0) && req.headers["transfer-encoding"] === undefined) {
    return EMPTY;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      req.pause();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON body: empty -> undefined (the schema then reports what is missing), malformed -> 400. */
export function parseJson(raw: Buffer, operation: string): unknown {
  if (raw.length === 0) return undefined;
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
async function pump(res: ServerResponse, chunks: Iterator<string>): Promise<void> {
  try {
    for (let next = chunks.next(); !next.done; next = chunks.next()) {
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
    chunks.return?.();
  }
}

export function errorReply(error: RegistryHttpError): {
  status: number;
  body: unknown;
  headers: Record<string, string>;
} {
  return { status: error.status, body: { detail: error.detail }, headers: error.headers };
}
