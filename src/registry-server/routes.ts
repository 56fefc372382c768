// The route table of the Agent Registry API: each route parses its input with zod, calls the service and
// shapes the reply. Literal routes (/search, /lookup, /by-hostname/, /messages/...) are never taken for an agent
// id.
import { z } from "zod";
import { verifyRecord } from "../identity/signed-record.js";
import { bearerOf } from "./auth.js";
import { tooBusy, unprocessable } from "./errors.js";
import {
  type Handler,
  parseJson,
  queryObject,
  type RequestContext,
  Router,
  readBody,
  validate,
} from "./http.js";
import type { InboxWaiters } from "./inbox-waiters.js";
import { ProofChecker } from "./proofs.js";
import {
  ackSchema,
  adminReleaseSchema,
  byHostnameQuerySchema,
  hostnameSchema,
  INBOX_DEFAULT_MAX_BYTES,
  inboxQuerySchema,
  LOOKUP_MAX_IDS,
  LOOKUP_MAX_REQUEST_BYTES,
  listQuerySchema,
  lookupSchema,
  MAX_MESSAGE_BODY_BYTES,
  MAX_QUERY_TERMS,
  patchSchema,
  registrationSchema,
  searchQuerySchema,
  sendMessageSchema,
  TRUST_PAGE_DEFAULT_LIMIT,
  trustDecisionSchema,
  trustListQuerySchema,
  trustRequestSchema,
} from "./schemas.js";
import type { RegistryService } from "./service.js";

const AGENTS = "/api/v1/agents";
const TRUST = "/api/v1/trust";
/** JSON escaping can grow a 64 KiB message body up to 6x (\uXXXX); the request cap leaves room for that. */
const SEND_MAX_REQUEST_BYTES = MAX_MESSAGE_BODY_BYTES * 6 + 16 * 1024;

const idParam = z.string().min(1).max(200);

const caller = (ctx: RequestContext) => ({ bearer: bearerOf(ctx.req) });

async function jsonBody(ctx: RequestContext, operation: string, maxBytes: number): Promise<unknown> {
  return parseJson(await readBody(ctx.req, operation, maxBytes), operation);
}

/** Drains (bounded) and ignores a body on routes that take none, so keep-alive connections stay usable. */
async function ignoreBody(ctx: RequestContext, operation: string): Promise<void> {
  await readBody(ctx.req, operation, 64 * 1024);
}

// Path-parameter schemas are built once: zod compiles an object schema on first use, so building one per
// request would recompile on every call.
const pathSchemas = {
  id: z.object({ id: idParam }),
  hostname: z.object({ hostname: hostnameSchema }),
  installation_id: z.object({ installation_id: idParam }),
};

function pathParam(ctx: RequestContext, name: keyof typeof pathSchemas, operation: string): string {
  // Fast path for the id-like parameters (what idParam accepts); anything else goes through zod, which
  // also writes the 422 for a bad value.
  const raw = ctx.params[name];
  if (name !== "hostname" && raw !== undefined && raw.length >= 1 && raw.length <= 200) return raw;
  const parsed = validate(pathSchemas[name], { [name]: ctx.params[name] }, "path", operation) as Record<
    string,
    string
  >;
  return parsed[name]!;
}

/** Seconds a refused long-poll is asked to wait before trying again. */
const LONG_POLL_RETRY_AFTER_S = 5;

/** Takes a long-poll slot or refuses the read: 429 when this inbox has too many, 503 when the server does. */
function admitLongPoll(waiters: InboxWaiters, installationId: string, op: string): () => void {
  const admitted = waiters.admit(installationId);
  if (typeof admitted === "function") return admitted;
  if (admitted === "inbox-full") {
    throw tooBusy(
      429,
      op,
      `this inbox already has ${waiters.perInbox} long-polls waiting; keep one long-poll per receiver and retry after ${LONG_POLL_RETRY_AFTER_S} s (or read without wait)`,
      LONG_POLL_RETRY_AFTER_S,
    );
  }
  throw tooBusy(
    503,
    op,
    `the registry is holding its maximum of ${waiters.total} long-polls; retry after ${LONG_POLL_RETRY_AFTER_S} s (or read without wait)`,
    LONG_POLL_RETRY_AFTER_S,
  );
}

/** What verifyRecord makes of a request's signed_record (null when it sent none, or it did not verify). */
const verifiedRecord = async (jws: string | null | undefined) => (jws ? await verifyRecord(jws) : null);

/**
 * `proofs` checks X-Agent-Proof headers and remembers their nonces (one per server). Registration, PATCH and
 * DELETE check a proof here, over the raw body bytes, before the service's synchronous transaction; the service
 * then only compares keys.
 */
export function buildRoutes(
  service: RegistryService,
  waiters: InboxWaiters,
  proofs = new ProofChecker({ now: () => service.options.now() }),
): Router {
  const router = new Router();

  const register: Handler = async (ctx) => {
    const op = "register agent";
    const raw = await readBody(ctx.req, op, 64 * 1024);
    const input = validate(registrationSchema, parseJson(raw, op), "body", op);
    const verified = await verifiedRecord(input.signed_record);
    const proof = await proofs.check(ctx.req, raw, () => service.registrationKeys(input));
    const result = await service.register(input, { ...caller(ctx), proof }, verified);
    const body = result.token ? { ...result.record, agent_token: result.token } : result.record;
    return { status: result.created ? 201 : 200, body };
  };

  const list: Handler = async (ctx) => {
    const op = "list agents";
    const q = validate(listQuerySchema, queryObject(ctx.url), "query", op);
    return {
      status: 200,
      body: await service.list({
        hostname: q.hostname,
        installationId: q.installation_id,
        peerId: q.peer_id,
        pilotNodeId: q.pilot_node_id,
        includeOffline: q.include_offline ?? false,
        limit: q.limit ?? 50,
        offset: q.offset ?? 0,
      }),
    };
  };

  const search: Handler = async (ctx) => {
    const op = "search agents";
    const q = validate(searchQuerySchema, queryObject(ctx.url, ["capabilities"]), "query", op);
    const words = new Set((q.q ?? "").toLowerCase().split(/\s+/).filter(Boolean));
    if (words.size > MAX_QUERY_TERMS) {
      throw unprocessable(op, [
        { loc: ["query", "q"], msg: `use at most ${MAX_QUERY_TERMS} words`, type: "too_long" },
      ]);
    }
    return {
      status: 200,
      body: await service.search({
        q: q.q ?? "",
        capabilities: q.capabilities ?? [],
        match: q.match ?? "any",
        includeOffline: q.include_offline ?? false,
        limit: q.limit ?? 10,
        offset: q.offset ?? 0,
      }),
    };
  };

  const lookup: Handler = async (ctx) => {
    const op = "look up agents";
    const input = validate(lookupSchema, await jsonBody(ctx, op, LOOKUP_MAX_REQUEST_BYTES), "body", op);
    const pilotNodeIds = input.pilot_node_ids ?? [];
    const peerIds = input.peer_ids ?? [];
    // Each list is capped by the schema; the cap is on both together.
    if (pilotNodeIds.length + peerIds.length > LOOKUP_MAX_IDS) {
      throw unprocessable(op, [
        {
          loc: ["body"],
          msg: `pilot_node_ids and peer_ids name ${pilotNodeIds.length + peerIds.length} ids together; send at most ${LOOKUP_MAX_IDS} per lookup and split the rest into further requests`,
          type: "too_long",
        },
      ]);
    }
    return { status: 200, body: await service.lookup({ pilotNodeIds, peerIds }) };
  };

  const byHostname: Handler = async (ctx) => {
    const op = "get agent by hostname";
    const hostname = pathParam(ctx, "hostname", op);
    const q = validate(byHostnameQuerySchema, queryObject(ctx.url), "query", op);
    return { status: 200, body: await service.byHostname(hostname, q.include_offline ?? false) };
  };

  const getAgent: Handler = async (ctx) => ({
    status: 200,
    body: await service.get(pathParam(ctx, "id", "get agent")),
  });

  const patchAgent: Handler = async (ctx) => {
    const op = "update agent";
    const id = pathParam(ctx, "id", op);
    const raw = await readBody(ctx.req, op, 64 * 1024);
    const input = validate(patchSchema, parseJson(raw, op), "body", op);
    const verified = await verifiedRecord(input.signed_record);
    const proof = await proofs.check(ctx.req, raw, () => service.agentKeys(id, input.public_key));
    return { status: 200, body: await service.patch(id, input, { ...caller(ctx), proof }, verified) };
  };

  const deleteAgent: Handler = async (ctx) => {
    const op = "deregister agent";
    const id = pathParam(ctx, "id", op);
    // Drained and ignored, but signed: a proof covers the body the request carried (normally none).
    const raw = await readBody(ctx.req, op, 64 * 1024);
    const proof = await proofs.check(ctx.req, raw, () => service.agentKeys(id));
    await service.remove(id, { ...caller(ctx), proof });
    return { status: 204 };
  };

  const heartbeat: Handler = async (ctx) => {
    const op = "heartbeat";
    const id = pathParam(ctx, "id", op);
    await ignoreBody(ctx, op);
    return { status: 200, body: await service.heartbeat(id, caller(ctx)) };
  };

  const send: Handler = async (ctx) => {
    const op = "send relay message";
    const input = validate(sendMessageSchema, await jsonBody(ctx, op, SEND_MAX_REQUEST_BYTES), "body", op);
    return { status: 200, body: await service.sendMessage(input, caller(ctx)) };
  };

  const inbox: Handler = async (ctx) => {
    const op = "read relay inbox";
    const installationId = pathParam(ctx, "installation_id", op);
    const q = validate(inboxQuerySchema, queryObject(ctx.url), "query", op);
    const after = q.after ? Number(q.after) : 0;
    const limit = q.limit ?? 100;
    const maxBytes = q.max_bytes ?? INBOX_DEFAULT_MAX_BYTES;
    const who = caller(ctx);
    await service.authorizeInbox(installationId, who);
    // With `trust_after` (the caller's trust-list cursor) the answer says whether its trust records changed since,
    // and a long-poll also ends on such a change: a client learns of a request or a decision at once.
    const trustAfter = q.trust_after === undefined ? undefined : Number(q.trust_after);
    const trustChanged = async () =>
      trustAfter === undefined ? undefined : await service.trustChangedSince(installationId, trustAfter);
    let changed: boolean | undefined;
    const written = () => changed;
    // Long-poll: bounded by `wait` (<= 30 s); each wake-up re-reads. The inbox is watched from before the
    // first read, so a message stored (or a trust change made) while a read is under way (a database round trip)
    // is never missed: the next wait returns at once (the notifier fires after the write commits, on this
    // replica or another).
    const deadline = Date.now() + (q.wait ?? 0) * 1000;
    const watch = deadline > Date.now() ? waiters.watch(installationId) : undefined;
    let release: (() => void) | null = null;
    try {
      let page = await service.inbox(installationId, after, limit, maxBytes, who, written);
      if (page.count === 0) changed = await trustChanged();
      // Only a read that will actually park takes a long-poll slot; one that has messages answers at once.
      if (watch && page.count === 0 && !changed && deadline > Date.now()) {
        release = admitLongPoll(waiters, installationId, op);
      }
      while (watch && page.count === 0 && !changed && !ctx.signal.aborted) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        await watch.wait(left, ctx.signal);
        page = await service.inbox(installationId, after, limit, maxBytes, who, written);
        changed = await trustChanged();
        if (waiters.closed) break;
      }
      if (changed === undefined) changed = await trustChanged();
      return { status: 200, body: page.body };
    } finally {
      release?.();
      watch?.close();
    }
  };

  const ack: Handler = async (ctx) => {
    const op = "acknowledge relay messages";
    const input = validate(ackSchema, await jsonBody(ctx, op, 256 * 1024), "body", op);
    return { status: 200, body: await service.ack(input, caller(ctx)) };
  };

  const trustRequest: Handler = async (ctx) => {
    const op = "request trust";
    const input = validate(trustRequestSchema, await jsonBody(ctx, op, 64 * 1024), "body", op);
    const result = await service.trustRequest(input, caller(ctx));
    return { status: result.created ? 201 : 200, body: { status: result.status } };
  };

  const decision =
    (kind: "approve" | "reject" | "block"): Handler =>
    async (ctx) => {
      const op = `${kind} trust`;
      const input = validate(trustDecisionSchema, await jsonBody(ctx, op, 64 * 1024), "body", op);
      return { status: 200, body: await service.trustDecision(kind, input, caller(ctx)) };
    };

  const revoke: Handler = async (ctx) => {
    const op = "revoke trust";
    const input = validate(trustDecisionSchema, await jsonBody(ctx, op, 64 * 1024), "body", op);
    return { status: 200, body: await service.trustRevoke(input, caller(ctx)) };
  };

  const pending: Handler = async (ctx) => ({
    status: 200,
    body: await service.pendingTrust(
      pathParam(ctx, "installation_id", "list pending trust requests"),
      caller(ctx),
    ),
  });

  const trustList: Handler = async (ctx) => {
    const op = "list trust";
    const installationId = pathParam(ctx, "installation_id", op);
    const q = validate(trustListQuerySchema, queryObject(ctx.url), "query", op);
    // Either parameter asks for a page of changes; neither, for the whole list (what older clients read).
    const changes =
      q.after === undefined && q.limit === undefined
        ? undefined
        : { after: q.after ?? 0, limit: q.limit ?? TRUST_PAGE_DEFAULT_LIMIT };
    return { status: 200, body: await service.trustList(installationId, caller(ctx), changes) };
  };

  const adminRelease: Handler = async (ctx) => {
    const op = "release hostname";
    const input = validate(adminReleaseSchema, await jsonBody(ctx, op, 64 * 1024), "body", op);
    const key = ctx.req.headers["x-registry-admin-key"];
    return {
      status: 200,
      body: await service.adminRelease(input.hostname, Array.isArray(key) ? key[0] : key),
    };
  };

  return router
    .add("GET", "/healthz", "health", () => ({ status: 200, body: { ok: true } }))
    .add("POST", AGENTS, "register agent", register)
    .add("GET", AGENTS, "list agents", list)
    .add("GET", `${AGENTS}/search`, "search agents", search)
    .add("POST", `${AGENTS}/lookup`, "look up agents", lookup)
    .add("GET", `${AGENTS}/by-hostname/:hostname`, "get agent by hostname", byHostname)
    .add("POST", `${AGENTS}/messages/send`, "send relay message", send)
    .add("GET", `${AGENTS}/messages/inbox/:installation_id`, "read relay inbox", inbox)
    .add("POST", `${AGENTS}/messages/ack`, "acknowledge relay messages", ack)
    .add("GET", `${AGENTS}/:id`, "get agent", getAgent)
    .add("PATCH", `${AGENTS}/:id`, "update agent", patchAgent)
    .add("DELETE", `${AGENTS}/:id`, "deregister agent", deleteAgent)
    .add("POST", `${AGENTS}/:id/heartbeat`, "heartbeat", heartbeat)
    .add("POST", `${TRUST}/request`, "request trust", trustRequest)
    .add("POST", `${TRUST}/approve`, "approve trust", decision("approve"))
    .add("POST", `${TRUST}/reject`, "reject trust", decision("reject"))
    .add("POST", `${TRUST}/block`, "block trust", decision("block"))
    .add("POST", `${TRUST}/revoke`, "revoke trust", revoke)
    .add("GET", `${TRUST}/pending/:installation_id`, "list pending trust requests", pending)
    .add("GET", `${TRUST}/list/:installation_id`, "list trust", trustList)
    .add("POST", "/api/v1/admin/release", "release hostname", adminRelease);
}
