// Content never stalls the relay receiver: each poison shape sits in the inbox ahead of a good message, and the
// good message still reaches the sink. Unreadable ones are dead-lettered by id, acknowledged and counted; one
// without an id is skipped by cursor. Pages too large for the client (a registry that ignores max_bytes) are
// read again with a smaller limit.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createRegistryClient } from "../../../src/adapters/registry/client.js";
import { createMemoryCursorStore } from "../../../src/adapters/relay/relay-inbox.js";
import { createRelayTransport } from "../../../src/adapters/relay/relay-transport.js";
import { createEnvelope } from "../../../src/adapters/transport/envelope.js";
import { SqliteRegistryStore } from "../../../src/registry-server/sqlite-store.js";
import {
  type RelayReceiver,
  type RelayReceiverOptions,
  startRelayReceiver,
} from "../../support/inbox-loops.js";
import {
  betaReceiver,
  closeReceivers,
  FAST_BACKOFF,
  RecordingSink,
  type RelayWorld,
  startRelayWorld,
} from "./helpers.js";

let world: RelayWorld | undefined;
let legacy: Server | undefined;
const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  await closeReceivers();
  for (const r of receivers.splice(0)) await r.close();
  await world?.cleanup();
  world = undefined;
  if (legacy) {
    legacy.closeAllConnections();
    await new Promise((resolve) => legacy?.close(resolve));
    legacy = undefined;
  }
});

/** Receivers a test builds itself (other registries, other options); the rest come from betaReceiver. */
const receivers: RelayReceiver[] = [];
const fast = FAST_BACKOFF;
const KIB = 1024;

function receiverFor(w: RelayWorld, sink: RecordingSink, extra: Partial<RelayReceiverOptions> = {}) {
  return betaReceiver(w, sink, { waitSeconds: 1, deadLetterDir: join(w.dir, "dead-letter"), ...extra });
}

/** Stores messages for beta straight through the registry's store, as an older server (or a bug) left them. */
function storeRaw(w: RelayWorld, bodies: Array<{ id: string; bodyJson: string }>): void {
  const store = new SqliteRegistryStore({ path: w.dbPath });
  try {
    for (const { id, bodyJson } of bodies) {
      store.insertMessage({
        messageId: id,
        toInstallationId: "inst-beta",
        fromInstallationId: "inst-alpha",
        fromHostname: "alpha",
        bodyJson,
        createdAt: Date.now(),
      });
    }
  } finally {
    store.close();
  }
}

async function sendGood(w: RelayWorld, text = "the good one"): Promise<string> {
  const envelope = createEnvelope({ fromHostname: "alpha", body: text });
  const transport = createRelayTransport({
    client: w.alpha.client,
    self: { installationId: w.alpha.installationId, hostname: "alpha", agentToken: () => w.alpha.token },
  });
  await transport.send({ hostname: "beta", nodeId: null, installationId: "inst-beta" }, envelope);
  return envelope.id;
}

async function inboxIds(w: RelayWorld): Promise<string[]> {
  const page = await w.beta.client.readInbox({ installationId: "inst-beta" }, { token: w.beta.token });
  return [...page.messages.map((m) => m.messageId), ...page.unreadable.map((u) => String(u.messageId))];
}

function deadLetters(
  w: RelayWorld,
): Array<{ unreadable?: { reason: string }; message: { message_id?: string } }> {
  const dir = join(w.dir, "dead-letter");
  return readdirSync(dir).map((name) => JSON.parse(readFileSync(join(dir, name), "utf8")));
}

async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("relay receiver with poison in the inbox", () => {
  it("dead-letters an object body, acks and counts it, and delivers the good message after it", async () => {
    world = await startRelayWorld({ trusted: true });
    storeRaw(world, [
      { id: "poison-object", bodyJson: JSON.stringify({ v: 1, text: "an object" }) },
      { id: "poison-number", bodyJson: "42" },
    ]);
    const good = await sendGood(world);
    const sink = new RecordingSink();
    const receiver = receiverFor(world, sink);
    await sink.waitForDispatched(1);
    expect(sink.dispatched.map((m) => m.ref)).toEqual([good]);
    await until(async () => (await inboxIds(world as RelayWorld)).length === 0);
    await until(() => receiver.status().counts.dispatched === 1);
    const status = receiver.status();
    expect(status.counts).toMatchObject({ received: 3, dispatched: 1, unreadable: 2, skipped: 0 });
    expect(status.unreadable).toEqual({ body_not_string: 2, too_large: 0, malformed: 0 });
    expect(status.recentUnreadable.map((u) => u.ref)).toEqual(["poison-object", "poison-number"]);
    const copies = deadLetters(world);
    expect(copies.map((c) => c.message.message_id).sort()).toEqual(["poison-number", "poison-object"]);
    expect(copies.every((c) => c.unreadable?.reason === "body_not_string")).toBe(true);
  });

  it("dead-letters a body over 64 KiB that the client does not admit", async () => {
    world = await startRelayWorld({ trusted: true });
    storeRaw(world, [{ id: "poison-big", bodyJson: JSON.stringify("x".repeat(64 * KIB + 1)) }]);
    const good = await sendGood(world);
    const sink = new RecordingSink();
    const receiver = receiverFor(world, sink);
    await sink.waitForDispatched(1);
    expect(sink.dispatched.map((m) => m.ref)).toEqual([good]);
    await until(() => receiver.status().counts.unreadable === 1);
    expect(receiver.status().unreadable.too_large).toBe(1);
    expect(deadLetters(world)[0]?.unreadable?.reason).toBe("too_large");
  });

  // 70 x 64 KiB is more than one response can carry; 12 bodies of 64 Ki control characters are 384 KiB each as
  // stored (6x escaped, as the old registry accepted them) and pass 4 MiB together.
  it.each([
    { what: "70 messages of 64 KiB", count: 70, body: "b".repeat(64 * KIB) },
    {
      what: "a page of control-character bodies stored 6x escaped",
      count: 12,
      body: "\u0001".repeat(64 * KIB),
    },
  ])("gets past $what to the good message", async ({ count, body }) => {
    world = await startRelayWorld({ trusted: true });
    storeRaw(
      world,
      Array.from({ length: count }, (_, i) => ({ id: `big-${i}`, bodyJson: JSON.stringify(body) })),
    );
    const good = await sendGood(world);
    const sink = new RecordingSink();
    const receiver = receiverFor(world, sink);
    await sink.waitForDispatched(count + 1, 20_000);
    expect(sink.dispatched.at(-1)?.ref).toBe(good);
    await until(() => receiver.status().counts.dispatched === count + 1);
    expect(receiver.status().counts.unreadable).toBe(0);
  });
});

describe("relay receiver against a registry that ignores max_bytes", () => {
  /** A bare-bones relay inbox in the style of an older registry: honours `limit` and `after`, nothing else. */
  async function startLegacyInbox(messages: Array<Record<string, unknown>>) {
    const acked: string[] = [];
    const limits: number[] = [];
    const maxBytes: number[] = [];
    let box = [...messages];
    legacy = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (req.method === "GET" && url.pathname.startsWith("/api/v1/agents/messages/inbox/")) {
        const limit = Number(url.searchParams.get("limit") ?? "100");
        const after = Number(url.searchParams.get("after") ?? "0");
        limits.push(limit);
        maxBytes.push(Number(url.searchParams.get("max_bytes")));
        const page = box.filter((m) => m.cursor === undefined || Number(m.cursor) > after).slice(0, limit);
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ messages: page }));
        return;
      }
      if (req.method === "POST" && url.pathname === "/api/v1/agents/messages/ack") {
        let text = "";
        req.on("data", (chunk: Buffer) => {
          text += chunk.toString();
        });
        req.on("end", () => {
          const ids = (JSON.parse(text) as { message_ids: string[] }).message_ids;
          acked.push(...ids);
          box = box.filter((m) => !ids.includes(String(m.message_id)));
          res
            .writeHead(200, { "content-type": "application/json" })
            .end(JSON.stringify({ acked: ids.length }));
        });
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => legacy?.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(legacy.address() as AddressInfo).port}`;
    return { url, acked, limits, maxBytes };
  }

  it("retries with a smaller limit past a huge page, dead-letters malformed ones, skips one without an id", async () => {
    const wire = (i: number, body: unknown, extra: Record<string, unknown> = {}) => ({
      message_id: `m-${i}`,
      from_installation_id: "inst-alpha",
      from_hostname: "alpha",
      body,
      created_at: "2026-01-01T00:00:00Z",
      cursor: String(i),
      ...extra,
    });
    const messages = [
      // 40 x ~384 KiB on the wire: 15 MiB in one page unless the client asks for fewer.
      ...Array.from({ length: 40 }, (_, i) => wire(i + 1, "\u0002".repeat(64 * KIB))),
      wire(41, "ok", { created_at: { not: "a time" } }),
      { body: "who am I", cursor: "42" },
      wire(43, "the good one"),
    ];
    const inbox = await startLegacyInbox(messages);
    const sink = new RecordingSink();
    const deadLetterDir = mkdtempSync(join(tmpdir(), "legacy-dead-"));
    dirs.push(deadLetterDir);
    const receiver = startRelayReceiver({
      client: createRegistryClient({ baseUrl: inbox.url, timeoutMs: 5_000 }),
      installationId: "inst-beta",
      sink,
      cursorStore: createMemoryCursorStore(),
      // The legacy inbox ignores `wait`; the receiver then polls at the minEmptyPollMs pace.
      waitSeconds: 1,
      minEmptyPollMs: 50,
      backoff: fast,
      retryBackoff: fast,
      deadLetterDir,
    });
    receivers.push(receiver);
    await sink.waitForDispatched(41, 20_000);
    expect(sink.dispatched.at(-1)?.ref).toBe("m-43");
    await until(() => inbox.acked.includes("m-43") && receiver.status().counts.dispatched === 41);
    expect(inbox.acked).toContain("m-41");
    const status = receiver.status();
    expect(status.counts).toMatchObject({ dispatched: 41, unreadable: 1, skipped: 1 });
    expect(status.unreadable.malformed).toBe(2);
    expect(status.consecutiveFailures).toBe(0);
    // The first read asked for 100 and got 15 MiB; later reads asked for fewer.
    expect(inbox.limits[0]).toBe(100);
    expect(inbox.maxBytes[0]).toBe(4 * 1024 * 1024); // the client's own response limit
    expect(Math.min(...inbox.limits)).toBeLessThanOrEqual(12);
    const copies = readdirSync(deadLetterDir);
    expect(copies).toHaveLength(1);
  });

  it("does not spin on a message with neither id nor cursor: it is skipped at the empty-poll pace", async () => {
    const inbox = await startLegacyInbox([{ body: { no: "id, no cursor" } }]);
    const sink = new RecordingSink();
    const receiver = startRelayReceiver({
      client: createRegistryClient({ baseUrl: inbox.url, timeoutMs: 5_000 }),
      installationId: "inst-beta",
      sink,
      cursorStore: createMemoryCursorStore(),
      waitSeconds: 1,
      minEmptyPollMs: 100,
      backoff: fast,
      retryBackoff: fast,
      deadLetterDir: null,
    });
    receivers.push(receiver);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(inbox.limits.length).toBeGreaterThanOrEqual(2);
    expect(inbox.limits.length).toBeLessThanOrEqual(10);
    expect(receiver.status().counts.skipped).toBe(inbox.limits.length);
    expect(sink.seen).toHaveLength(0);
  });
});
