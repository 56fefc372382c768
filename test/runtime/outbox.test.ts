// The outbox on a real account database with a scripted transport and a hand-moved clock: written before the
// transport sees it, queued and retried on a failure a retry can fix, failed at once otherwise, resent with the
// same id while no receipt comes, finished by a receipt from the right peer only, bounded, told to the writing
// session once, and the same after a reopen (a restart).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AccountDb, openAccountDb } from "../../src/adapters/state/account-db.js";
import type { Envelope } from "../../src/adapters/transport/envelope.js";
import { type PeerRef, type Transport, TransportError } from "../../src/adapters/transport/transport.js";
import { NetworkError } from "../../src/runtime/account-network.js";
import { createOutbox, type OutboxOptions } from "../../src/runtime/outbox.js";
import { caught } from "../support/caught.js";

const quiet = { info: () => {}, warn: () => {}, debug: () => {} };

/** A transport whose sends succeed unless told to fail (by error, for the next n sends). */
function scriptedTransport() {
  const sent: Array<{ to: PeerRef; envelope: Envelope }> = [];
  const failures: Error[] = [];
  const transport = {
    kind: "relay",
    async send(to: PeerRef, envelope: Envelope) {
      const failure = failures.shift();
      if (failure) throw failure;
      sent.push({ to, envelope });
      return { messageId: envelope.id };
    },
  } as unknown as Transport;
  return { transport, sent, failNext: (...errors: Error[]) => failures.push(...errors) };
}

describe("outbox", () => {
  let dir: string;
  let db: AccountDb;
  let clock: number;
  let wire: ReturnType<typeof scriptedTransport>;
  let notes: Array<{ sessionKey: string | null; text: string }>;
  let distrusted: Set<string>;

  const outboxOn = (database: AccountDb, extra: Partial<OutboxOptions> = {}) =>
    createOutbox({
      table: database.outbox(),
      hostname: "alice",
      transport: () => wire.transport,
      unavailableReason: () => null,
      resolve: async (hostname) => {
        if (hostname === "mallory") throw new NetworkError("NOT_TRUSTED", `"mallory" is not a trusted peer`);
        return { hostname, nodeId: null, installationId: `inst-${hostname}` };
      },
      isTrusted: (hostname) => hostname !== "mallory" && !distrusted.has(hostname),
      notify: (entry, text) => notes.push({ sessionKey: entry.sessionKey, text }),
      log: quiet,
      now: () => clock,
      policy: {
        receiptTimeoutMs: 60_000,
        maxResends: 2,
        retryBackoff: { initialMs: 1_000, maxMs: 8_000, factor: 2 },
        notifyAfterMs: 600_000,
        maxPerPeer: 3,
        maxTotal: 5,
      },
      ...extra,
    });
  const cycle = (outbox: ReturnType<typeof outboxOn>) =>
    outbox.runCycle({ trigger: "timer", wait: 0, rescan: false });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "outbox-"));
    db = openAccountDb(dir);
    clock = 1_000_000;
    wire = scriptedTransport();
    notes = [];
    distrusted = new Set();
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("writes the message, sends it with a receipt request, and finishes on the peer's receipt", async () => {
    const outbox = outboxOn(db);
    const result = await outbox.submit({ peer: "bob", body: "hello", origin: "contact", sessionKey: "s1" });
    expect(result).toEqual({ messageId: expect.any(String), state: "sent", reason: null });
    expect(wire.sent).toHaveLength(1);
    expect(wire.sent[0]?.envelope).toMatchObject({ id: result.messageId, body: "hello", ack: true });
    expect(outbox.counts()).toMatchObject({ sent: 1 });
    // A receipt from someone else is not bob's.
    expect(outbox.onReceipt({ for: result.messageId, status: "delivered" }, "carol")).toBe(false);
    expect(outbox.get(result.messageId)?.state).toBe("sent");
    expect(outbox.onReceipt({ for: result.messageId, status: "delivered" }, "Bob")).toBe(true);
    expect(await outbox.settled(result.messageId)).toMatchObject({ state: "delivered" });
    expect(outbox.counts()).toMatchObject({ sent: 0, delivered: 1 });
    expect(outbox.list()).toEqual([]);
    expect(outbox.list({ finished: 5 })).toMatchObject([{ id: result.messageId, state: "delivered" }]);
    expect(outbox.list({ peer: "BOB", finished: 5 })).toMatchObject([{ id: result.messageId }]);
    expect(outbox.list({ peer: "carol", finished: 5 })).toEqual([]);
    // Nothing left to do: the loop waits for a wake-up.
    expect((await cycle(outbox)).next).toBe("idle");
  });

  it("queues what a retry can fix, with the reason, and sends it when the backoff has passed", async () => {
    const outbox = outboxOn(db);
    wire.failNext(new TransportError("send", "unavailable", "bob's daemon does not answer"));
    const result = await outbox.submit({ peer: "bob", body: "hi", origin: "send" });
    expect(result).toMatchObject({ state: "queued", reason: "bob's daemon does not answer" });
    const early = await cycle(outbox);
    expect(early).toMatchObject({ next: "later", laterMs: 1_000 });
    expect(wire.sent).toHaveLength(0);
    clock += 1_000;
    const due = await cycle(outbox);
    expect(wire.sent.map((s) => s.envelope.id)).toEqual([result.messageId]);
    // Now waiting for the receipt, until the end of its window.
    expect(due).toMatchObject({ next: "later", laterMs: 60_000 });
    expect(outbox.get(result.messageId)).toMatchObject({ state: "sent", attempts: 2, reason: null });
  });

  it("sends what waited for the transport as soon as it is back, not at the end of the backoff", async () => {
    const outbox = outboxOn(db);
    wire.failNext(
      ...Array.from({ length: 4 }, () => new TransportError("send", "unavailable", "daemon down")),
    );
    const { messageId } = await outbox.submit({ peer: "bob", body: "hi", origin: "send" });
    for (const step of [1_000, 2_000, 4_000]) {
      clock += step;
      await cycle(outbox);
    }
    expect(outbox.get(messageId)).toMatchObject({ state: "queued", attempts: 4 });
    expect((await cycle(outbox)).laterMs).toBe(8_000);
    outbox.retryNow();
    await cycle(outbox);
    expect(outbox.get(messageId)?.state).toBe("sent");
  });

  it("fails at once what a retry cannot fix, keeping the network's error code", async () => {
    const outbox = outboxOn(db);
    const untrusted = await caught(
      outbox.submit({ peer: "mallory", body: "hi", origin: "send" }),
      NetworkError,
    );
    expect(untrusted.code).toBe("NOT_TRUSTED");
    // The transport's "not trusted" is final for a peer we do not trust either...
    distrusted.add("carol");
    wire.failNext(new TransportError("send", "not_trusted", "carol does not trust you"));
    const refused = await caught(outbox.submit({ peer: "carol", body: "hi", origin: "send" }), NetworkError);
    expect(refused.code).toBe("NOT_TRUSTED");
    expect(outbox.counts()).toMatchObject({ failed: 2, queued: 0 });
    expect(outbox.list({ finished: 5 }).map((m) => m.reason)).toContain("carol does not trust you");
    // ...and for one we trust, retried (an old pilotctl says it for an offline peer, a broken pair until repaired).
    wire.failNext(new TransportError("send", "not_trusted", "could not reach bob"));
    const held = await outbox.submit({ peer: "bob", body: "hi", origin: "send" });
    expect(held).toMatchObject({ state: "queued", reason: "could not reach bob" });
    // Until we stop trusting bob: the next attempt fails it.
    distrusted.add("bob");
    clock += 1_000;
    await cycle(outbox);
    expect(outbox.get(held.messageId)).toMatchObject({
      state: "failed",
      reason: expect.stringContaining("no longer a trusted peer"),
    });
  });

  it("resends with the same id while no receipt comes, then leaves it sent (an older peer)", async () => {
    const outbox = outboxOn(db);
    const { messageId } = await outbox.submit({ peer: "bob", body: "hello", origin: "send" });
    clock += 60_000;
    await cycle(outbox);
    clock += 120_000;
    await cycle(outbox);
    expect(wire.sent.map((s) => s.envelope.id)).toEqual([messageId, messageId, messageId]);
    clock += 240_000;
    expect((await cycle(outbox)).next).toBe("idle");
    expect(wire.sent).toHaveLength(3);
    expect(outbox.get(messageId)).toMatchObject({
      state: "sent",
      nextAttemptAt: null,
      reason: expect.stringContaining("no receipt"),
    });
    // A late receipt still counts.
    outbox.onReceipt({ for: messageId, status: "delivered" }, "bob");
    expect(outbox.get(messageId)?.state).toBe("delivered");
  });

  it("keeps a message delivered when its receipt comes before the send returns", async () => {
    let outbox: ReturnType<typeof outboxOn> | undefined;
    const fast = {
      kind: "relay",
      async send(_to: PeerRef, envelope: Envelope) {
        // A fast peer: its receipt is taken before the transport's answer.
        outbox?.onReceipt({ for: envelope.id, status: "delivered" }, "bob");
        return { messageId: envelope.id };
      },
    } as unknown as Transport;
    outbox = outboxOn(db, { transport: () => fast });
    const { messageId, state } = await outbox.submit({ peer: "bob", body: "hello", origin: "send" });
    expect(state).toBe("delivered");
    expect(outbox.get(messageId)?.state).toBe("delivered");
    clock += 600_000;
    expect((await cycle(outbox)).next).toBe("idle");
    expect(outbox.counts()).toMatchObject({ queued: 0, sent: 0, delivered: 1 });
  });

  it("takes a refusal receipt with its reason", async () => {
    const outbox = outboxOn(db);
    const { messageId } = await outbox.submit({ peer: "bob", body: "x".repeat(10), origin: "send" });
    outbox.onReceipt({ for: messageId, status: "refused", reason: "too_large" }, "bob");
    expect(outbox.get(messageId)).toMatchObject({ state: "refused", reason: "refused by bob: too_large" });
  });

  it("resends at once, signed afresh, a message the peer found too old (not a refusal)", async () => {
    const outbox = outboxOn(db);
    const { messageId } = await outbox.submit({ peer: "bob", body: "sat in an inbox", origin: "send" });
    expect(outbox.get(messageId)?.state).toBe("sent");
    outbox.onReceipt({ for: messageId, status: "refused", reason: "stale" }, "bob");
    expect(outbox.get(messageId)).toMatchObject({
      state: "sent",
      nextAttemptAt: new Date(clock).toISOString(),
    });
    await cycle(outbox);
    expect(outbox.get(messageId)).toMatchObject({ state: "sent", attempts: 2 });
  });

  it("is bounded per peer and in all, with an error that says what to do", async () => {
    const outbox = outboxOn(db);
    for (let i = 0; i < 3; i++) await outbox.submit({ peer: "bob", body: `m${i}`, origin: "send" });
    const perPeer = await caught(outbox.submit({ peer: "bob", body: "m3", origin: "send" }), NetworkError);
    expect(perPeer.code).toBe("OUTBOX_FULL");
    expect(perPeer.message).toContain('undelivered messages to "bob"');
    for (let i = 0; i < 2; i++) await outbox.submit({ peer: "carol", body: `m${i}`, origin: "send" });
    const total = await caught(outbox.submit({ peer: "dave", body: "m", origin: "send" }), NetworkError);
    expect(total.code).toBe("OUTBOX_FULL");
    // A delivered message frees its place.
    const [first] = outbox.list({ peer: "bob" });
    outbox.onReceipt({ for: first!.id, status: "delivered" }, "bob");
    await outbox.submit({ peer: "bob", body: "m3", origin: "send" });
  });

  it("tells the writing session once when its message is still undelivered after the delay", async () => {
    const outbox = outboxOn(db);
    wire.failNext(
      ...Array.from({ length: 20 }, () => new TransportError("send", "timeout", "dial timed out")),
    );
    await outbox.submit({ peer: "bob", body: "hi", origin: "contact", sessionKey: "agent:main:s1" });
    await outbox.submit({ peer: "bob", body: "operator's", origin: "send" });
    for (let t = 0; t < 12; t++) {
      clock += 60_000;
      await cycle(outbox);
    }
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatchObject({ sessionKey: "agent:main:s1" });
    expect(notes[0]?.text).toContain("has not reached it yet (still queued: dial timed out)");
  });

  it("survives a restart: what was on its way is there again and goes on", async () => {
    const first = outboxOn(db);
    wire.failNext(new TransportError("send", "unavailable", "down"));
    const queued = await first.submit({ peer: "bob", body: "queued", origin: "send" });
    const sent = await first.submit({ peer: "bob", body: "sent", origin: "send" });
    db.close();
    db = openAccountDb(dir);
    const second = outboxOn(db);
    expect(second.list().map((m) => [m.id, m.state])).toEqual([
      [queued.messageId, "queued"],
      [sent.messageId, "sent"],
    ]);
    clock += 1_000;
    await cycle(second);
    expect(second.get(queued.messageId)?.state).toBe("sent");
    second.onReceipt({ for: sent.messageId, status: "delivered" }, "bob");
    expect(second.counts()).toMatchObject({ sent: 1, delivered: 1 });
  });
});
