// The network page's HTTP surface in the gateway. Three routes under /plugins/agent-registry:
//   /plugins/agent-registry          the page (static HTML, no data)           auth "plugin": anyone who reaches
//   /plugins/agent-registry/assets/  its script and style sheet (static)        the gateway may load the shell
//   /plugins/agent-registry/api/     state, machine layouts, live events (read) auth "gateway": the gateway's
//                                    approve, reject (write)                    own credential, caller's scopes
// A browser cannot put the gateway token on a page navigation, so the shell holds nothing secret and asks the
// browser's script for the token (from the URL fragment, as the Control UI takes it, or typed in); every byte of
// account data goes through the gateway-authenticated API, whose caller scopes decide: operator.read (or more)
// to read, operator.write to act.
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AnyStateMachine } from "xstate";
import { accountMachine } from "../../../machines/account.machine.js";
import { daemonMachine } from "../../../machines/daemon.machine.js";
import { handshakeMachine } from "../../../machines/handshake.machine.js";
import { pollMachine } from "../../../machines/poll.machine.js";
import { visibilityMachine } from "../../../machines/visibility.machine.js";
import { NetworkError, type PeerView } from "../../../runtime/account-network.js";
import { NETWORK_ERROR_CODES } from "../gateway-methods.js";
import { layoutMachine, type MachineLayout } from "./diagram-layout.js";
import { type PageAccount, PEER_STATES, projectAccount } from "./projection.js";
import { openAccountStream, type StreamOptions } from "./stream.js";

export const PAGE_PATH = "/plugins/agent-registry";
export const ASSETS_PATH = `${PAGE_PATH}/assets`;
export const API_PATH = `${PAGE_PATH}/api`;

/** No inline script or style, nothing from another origin, no framing: the page's only code is app.js. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const MAX_BODY_BYTES = 4_096;
const MAX_STREAMS = 8;

/** An account the page can act on: the projection's view plus its network's owner decisions. */
export interface PageRuntime extends PageAccount {
  readonly network: (PageAccount["network"] & object) | undefined;
}

export interface NetworkPageDeps {
  accounts(): PageRuntime[];
  /** The caller's operator scopes (the gateway's request scope); undefined: not known, refuse. */
  callerScopes(): readonly string[] | undefined;
  stream?: StreamOptions;
}

export const PAGE_MACHINES: Record<string, AnyStateMachine> = {
  account: accountMachine,
  daemon: daemonMachine,
  poll: pollMachine,
  visibility: visibilityMachine,
  handshake: handshakeMachine,
};

let layoutsCache: Record<string, MachineLayout> | null = null;
export function machineLayouts(): Record<string, MachineLayout> {
  layoutsCache ??= Object.fromEntries(
    Object.entries(PAGE_MACHINES).map(([name, machine]) => [name, layoutMachine(machine)]),
  );
  return layoutsCache;
}

export function canRead(scopes: readonly string[] | undefined): boolean {
  return !!scopes?.some((s) => s === "operator.read" || s === "operator.write" || s === "operator.admin");
}

export function canWrite(scopes: readonly string[] | undefined): boolean {
  return !!scopes?.some((s) => s === "operator.write" || s === "operator.admin");
}

const ASSET_TYPES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
};

/** The assets sit beside this module: in src/, and in dist/ where the build copies them (scripts/build.mjs). */
function readAsset(name: string): Buffer {
  try {
    return readFileSync(new URL(`./assets/${name}`, import.meta.url));
  } catch {
    throw new Error(`network page asset ${name} is missing from the package; reinstall the plugin`);
  }
}

const assetCache = new Map<string, Buffer>();
function asset(name: string): Buffer {
  let body = assetCache.get(name);
  if (!body) {
    body = readAsset(name);
    assetCache.set(name, body);
  }
  return body;
}

function securityHeaders(res: ServerResponse): void {
  res.setHeader("Content-Security-Policy", CONTENT_SECURITY_POLICY);
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "no-referrer");
  res.setHeader("X-Frame-Options", "DENY");
  res.setHeader("Cross-Origin-Resource-Policy", "same-origin");
}

function sendJson(res: ServerResponse, status: number, body: unknown): true {
  securityHeaders(res);
  res.statusCode = status;
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Cache-Control", "no-store");
  res.end(JSON.stringify(body));
  return true;
}

function sendError(res: ServerResponse, status: number, code: string, message: string): true {
  return sendJson(res, status, { ok: false, error: { code, message } });
}

function pathOf(req: IncomingMessage): string {
  try {
    return new URL(req.url ?? "/", "http://gateway").pathname;
  } catch {
    return "/";
  }
}

function serveAsset(res: ServerResponse, name: string, method: string): true {
  const type = ASSET_TYPES[name];
  if (!type) return sendError(res, 404, "NOT_FOUND", "no such file");
  const body = asset(name);
  securityHeaders(res);
  res.statusCode = 200;
  res.setHeader("Content-Type", type);
  res.setHeader("Cache-Control", "no-cache");
  res.setHeader("Content-Length", body.length);
  res.end(method === "HEAD" ? undefined : body);
  return true;
}

/** GET /plugins/agent-registry[/]: the shell. Without the slash, relative asset URLs would miss; redirect. */
export function handlePage(req: IncomingMessage, res: ServerResponse): boolean {
  const method = req.method ?? "GET";
  if (method !== "GET" && method !== "HEAD") return sendError(res, 405, "METHOD", "use GET");
  if (!(req.url ?? "").split("?")[0]!.endsWith("/")) {
    res.statusCode = 308;
    res.setHeader("Location", `${PAGE_PATH}/`);
    res.end();
    return true;
  }
  return serveAsset(res, "index.html", method);
}

/** GET /plugins/agent-registry/assets/<file>. */
export function handleAsset(req: IncomingMessage, res: ServerResponse): boolean {
  const method = req.method ?? "GET";
  if (method !== "GET" && method !== "HEAD") return sendError(res, 405, "METHOD", "use GET");
  const name = pathOf(req).slice(ASSETS_PATH.length + 1);
  if (name === "index.html") return sendError(res, 404, "NOT_FOUND", "no such file");
  return serveAsset(res, name, method);
}

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new RangeError("body too large");
    chunks.push(chunk as Buffer);
  }
  const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new SyntaxError("not an object");
  return parsed as Record<string, unknown>;
}

/**
 * A write must come from the page itself: JSON (a cross-site form cannot send it without a preflight we never
 * answer), and, where the browser says where it comes from, from this origin. This matters when the gateway
 * authenticates by something a browser adds on its own (a trusted proxy's identity), not by a bearer token.
 */
function sameOriginJson(req: IncomingMessage): string | null {
  const type = String(req.headers["content-type"] ?? "").toLowerCase();
  if (!type.startsWith("application/json")) return "send the body as application/json";
  const site = req.headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none")
    return "cross-site requests are refused";
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== "null") {
    try {
      if (new URL(origin).host !== req.headers.host) return "cross-origin requests are refused";
    } catch {
      return "a malformed Origin is refused";
    }
  }
  return null;
}

/** A hostname, node id or name: printable, bounded (the network resolves it; nothing here trusts it). */
const isPeerRef = (text: string) => text.length > 0 && text.length <= 200 && ![...text].some((c) => c < " ");

export function createApiHandler(deps: NetworkPageDeps) {
  let streams = 0;
  const findAccount = (accountId: unknown): PageRuntime | string => {
    const all = deps.accounts();
    if (typeof accountId !== "string" || accountId.length === 0) {
      return all.length === 1 ? all[0]! : "accountId: pass the account to act for";
    }
    return all.find((a) => a.accountId === accountId) ?? `account "${accountId}" is not running`;
  };

  return async function handleApi(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const method = req.method ?? "GET";
    const route = pathOf(req).slice(API_PATH.length).replace(/\/+$/, "");
    const scopes = deps.callerScopes();
    if (!canRead(scopes)) {
      return sendError(res, 403, "FORBIDDEN", "the network page needs operator.read (or operator.write)");
    }
    if (method === "GET" || method === "HEAD") {
      if (route === "/state") {
        return sendJson(res, 200, {
          ok: true,
          canWrite: canWrite(scopes),
          peerStates: PEER_STATES,
          accounts: deps.accounts().map((account) => projectAccount(account)),
        });
      }
      if (route === "/machines") return sendJson(res, 200, { ok: true, machines: machineLayouts() });
      if (route === "/events") {
        if (streams >= MAX_STREAMS) {
          res.setHeader("Retry-After", "5");
          return sendError(res, 503, "BUSY", `at most ${MAX_STREAMS} live views at once; close one`);
        }
        streams += 1;
        res.once("close", () => {
          streams -= 1;
        });
        securityHeaders(res);
        openAccountStream(res, deps.accounts, deps.stream);
        return true;
      }
      return sendError(res, 404, "NOT_FOUND", "no such endpoint");
    }
    if (method !== "POST") return sendError(res, 405, "METHOD", "use GET or POST");
    if (route !== "/approve" && route !== "/reject")
      return sendError(res, 404, "NOT_FOUND", "no such action");
    if (!canWrite(scopes)) {
      return sendError(res, 403, "FORBIDDEN", "approving or rejecting needs operator.write");
    }
    const refused = sameOriginJson(req);
    if (refused) return sendError(res, 403, "FORBIDDEN", refused);
    let body: Record<string, unknown>;
    try {
      body = await readJsonBody(req);
    } catch (error) {
      return error instanceof RangeError
        ? sendError(res, 413, "INVALID_PARAMS", `the body is over ${MAX_BODY_BYTES} bytes`)
        : sendError(res, 400, "INVALID_PARAMS", 'send {"accountId": "...", "peer": "..."} as JSON');
    }
    const account = findAccount(body.accountId);
    if (typeof account === "string") return sendError(res, 404, "NO_ACCOUNT", account);
    const peer = typeof body.peer === "string" ? body.peer.trim() : "";
    if (!isPeerRef(peer)) return sendError(res, 400, "INVALID_PARAMS", "peer: pass the peer's hostname");
    const network = account.network;
    if (!network)
      return sendError(res, 503, "UNAVAILABLE", "the account is still starting; try again shortly");
    try {
      let result: PeerView;
      if (route === "/approve") result = await network.approve(peer);
      else {
        const reason = typeof body.reason === "string" ? body.reason.slice(0, 500) : undefined;
        result = await network.reject(peer, reason);
      }
      return sendJson(res, 200, { ok: true, accountId: account.accountId, peer: result });
    } catch (error) {
      if (error instanceof NetworkError) {
        const code = NETWORK_ERROR_CODES[error.code] ?? "FAILED";
        const status =
          code === "NOT_FOUND" || code === "NOT_PENDING" ? 409 : code === "UNAVAILABLE" ? 503 : 400;
        return sendError(res, status, code, error.message);
      }
      return sendError(res, 500, "FAILED", `${route.slice(1)} failed: ${(error as Error).message}`);
    }
  };
}
