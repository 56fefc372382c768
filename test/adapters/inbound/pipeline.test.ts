// The inbound pipeline with processed keys in a real account database in a temp dir and plain-function deps (the pipeline's
// deps are functions by design; the transports that feed it are tested against real fakes elsewhere).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createInboundPipeline,
  type InboundPipeline,
  type InboundPipelineDeps,
  type InboundPolicy,
} from "../../../src/adapters/inbound/pipeline.js";
import { type AccountDb, openAccountDb } from "../../../src/adapters/state/account-db.js";
import {
  createEnvelope,
  createReceipts,
  encodeEnvelope,
  type Receipt,
} from "../../../src/adapters/transport/envelope.js";
import type { AdmittedMessage, PeerRef, RawInbound } from "../../../src/adapters/transport/transport.js";

const POLICY: InboundPolicy = { allowFrom: [], blockFrom: [], maxMessageBytes: 65_536, ratePerMinute: 30 };

function peer(nodeId: number): PeerRef {
  return { hostname: null, nodeId, installationId: null };
}

let seq = 0;
function envelopeRaw(
  from: PeerRef,
  body: string,
  opts: { id?: string; fromHostname?: string } = {},
): RawInbound {
  const envelope = createEnvelope({
    fromHostname: opts.fromHostname ?? "alice",
    body,
    ...(opts.id ? { id: opts.id } : {}),
  });
  seq++;
  return {
    transport: "pilot",
    ref: `/inbox/JSON-${seq}.json`,
    name: `JSON-${seq}.json`,
    data: encodeEnvelope(envelope),
    from,
    receivedAt: 1_000,
  };
}

function plainRaw(from: PeerRef, text: string, name = `TEXT-${++seq}.json`): RawInbound {
  return { transport: "pilot", ref: `/inbox/${name}`, name, data: text, from, receivedAt: 1_000 };
}

describe("inbound pipeline", () => {
  let dir: string;
  let clock: number;
  let dispatched: AdmittedMessage[];
  let pipelines: InboundPipeline[];
  let dbs: AccountDb[];

  function make(overrides: Partial<InboundPipelineDeps> = {}): InboundPipeline {
    // A database per pipeline, as a restarted process opens its own.
    const db = openAccountDb(dir);
    dbs.push(db);
    const p = createInboundPipeline({
      processedKeys: db.processedKeys(),
      policy: POLICY,
      isTrusted: () => true,
      lookupHostname: async () => null,
      dispatch: async (m) => {
        dispatched.push(m);
      },
      now: () => clock,
      ...overrides,
    });
    pipelines.push(p);
    return p;
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "inbound-pipeline-"));
    clock = 1_700_000_000_000;
    dispatched = [];
    pipelines = [];
    dbs = [];
  });
  afterEach(() => {
    for (const p of pipelines) p.close();
    for (const db of dbs) db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("dispatches an envelope with the body as text and the confirmed envelope hostname", async () => {
    const p = make({ lookupHostname: async () => "alice" });
    expect(await p.process(envelopeRaw(peer(7), "hello"))).toBe("dispatched");
    expect(dispatched).toHaveLength(1);
    expect(dispatched[0]?.text).toBe("hello");
    expect(dispatched[0]?.peer).toEqual({ hostname: "alice", nodeId: 7, installationId: null });
    expect(dispatched[0]?.key).toMatch(/^env:/);
    expect(p.counters().dispatched).toBe(1);
    expect(p.counters().lastInboundAt).toBe(clock);
  });

  it("dispatches plain text as is", async () => {
    const p = make();
    expect(await p.process(plainRaw(peer(7), "{not json"))).toBe("dispatched");
    expect(dispatched[0]?.text).toBe("{not json");
    expect(dispatched[0]?.envelope).toBeNull();
  });

  it("skips a message whose key was already processed", async () => {
    const p = make();
    const raw = envelopeRaw(peer(7), "once", { id: "m-1" });
    expect(await p.process(raw)).toBe("dispatched");
    expect(await p.process({ ...raw, name: "other-file.json" })).toBe("duplicate");
    expect(dispatched).toHaveLength(1);
    expect(p.counters().duplicates).toBe(1);
  });

  it("dispatches once when a copy arrives over the other inbox while the first is still in dispatch", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const p = make({
      dispatch: async (m) => {
        await gate;
        dispatched.push(m);
      },
    });
    const overPilot = envelopeRaw(peer(7), "once", { id: "m-both" });
    const overRelay: RawInbound = { ...overPilot, transport: "relay", ref: "relay-1", name: "relay-1" };
    const first = p.process(overPilot);
    const second = p.process(overRelay);
    release();
    expect(await Promise.all([first, second])).toEqual(["dispatched", "duplicate"]);
    expect(dispatched).toHaveLength(1);
  });

  it("remembers processed keys across a restart with the same state dir", async () => {
    const first = make();
    await first.process(envelopeRaw(peer(7), "a", { id: "m-1" }));
    await first.process(plainRaw(peer(7), "plain", "TEXT-1.json"));
    // No close(): a killed process never flushes; the keys must already be committed.
    const second = make();
    expect(await second.process(envelopeRaw(peer(7), "a", { id: "m-1" }))).toBe("duplicate");
    expect(await second.process(plainRaw(peer(7), "plain", "TEXT-1.json"))).toBe("duplicate");
    expect(await second.process(plainRaw(peer(7), "plain", "TEXT-2.json"))).toBe("dispatched");
    expect(dispatched).toHaveLength(3);
  });

  it("refuses an untrusted sender, never dispatches it and records it as processed", async () => {
    const p = make({ isTrusted: (ref) => ref.nodeId !== 9 });
    const raw = envelopeRaw(peer(9), "let me in");
    expect(await p.process(raw)).toBe("refused");
    expect(await p.process(raw)).toBe("duplicate");
    expect(dispatched).toHaveLength(0);
    expect(p.counters().refused.untrusted).toBe(1);
  });

  it("refuses a blocked peer by its registry name, its node name, or its own claim", async () => {
    const p = make({
      policy: { ...POLICY, blockFrom: ["Mallory", "node-12"] },
      lookupHostname: async (ref) => (ref.nodeId === 11 ? "mallory" : null),
    });
    expect(await p.process(plainRaw(peer(11), "registry name"))).toBe("refused");
    expect(await p.process(plainRaw(peer(12), "node name"))).toBe("refused");
    expect(await p.process(envelopeRaw(peer(13), "claims", { fromHostname: "mallory" }))).toBe("refused");
    expect(await p.process(plainRaw(peer(14), "someone else"))).toBe("dispatched");
    expect(p.counters().refused.blocked).toBe(3);
  });

  it("with allowFrom, admits only peers whose verified name is listed (a claimed hostname is not enough)", async () => {
    const p = make({
      policy: { ...POLICY, allowFrom: ["bob"] },
      lookupHostname: async (ref) => (ref.nodeId === 2 ? "bob" : "eve"),
    });
    expect(await p.process(envelopeRaw(peer(2), "from bob", { fromHostname: "bob" }))).toBe("dispatched");
    expect(await p.process(envelopeRaw(peer(3), "eve claims bob", { fromHostname: "bob" }))).toBe("refused");
    expect(p.counters().refused.not_allowed).toBe(1);
  });

  it("refuses a message over maxMessageBytes (counted in bytes, not characters)", async () => {
    const p = make({ policy: { ...POLICY, maxMessageBytes: 10 } });
    expect(await p.process(plainRaw(peer(7), "ééééé"))).toBe("dispatched");
    expect(await p.process(plainRaw(peer(7), "éééééé"))).toBe("refused");
    expect(p.counters().refused.too_large).toBe(1);
  });

  it("rate-limits per peer over a sliding minute", async () => {
    const p = make({ policy: { ...POLICY, ratePerMinute: 3 } });
    for (let i = 0; i < 3; i++) expect(await p.process(plainRaw(peer(7), `m${i}`))).toBe("dispatched");
    expect(await p.process(plainRaw(peer(7), "m3"))).toBe("refused");
    // Another peer has its own window.
    expect(await p.process(plainRaw(peer(8), "other"))).toBe("dispatched");
    clock += 30_000;
    expect(await p.process(plainRaw(peer(7), "m4"))).toBe("refused");
    // The first three leave the window 60 s after they arrived.
    clock += 30_001;
    expect(await p.process(plainRaw(peer(7), "m5"))).toBe("dispatched");
    expect(p.counters().refused.rate_limited).toBe(2);
  });

  it("retries a failed dispatch after its backoff, then dead-letters after maxAttempts", async () => {
    let fail = true;
    let calls = 0;
    const p = make({
      maxAttempts: 3,
      retryBackoff: { initialMs: 1_000, maxMs: 10_000, factor: 2 },
      dispatch: async () => {
        calls++;
        if (fail) throw new Error("session busy");
      },
    });
    const raw = envelopeRaw(peer(7), "flaky");
    expect(await p.process(raw)).toBe("retry");
    // Within the backoff: not attempted again.
    expect(await p.process(raw)).toBe("retry");
    expect(calls).toBe(1);
    clock += 1_000;
    expect(await p.process(raw)).toBe("retry");
    expect(calls).toBe(2);
    clock += 1_999;
    expect(await p.process(raw)).toBe("retry");
    expect(calls).toBe(2);
    clock += 1;
    expect(await p.process(raw)).toBe("dead-lettered");
    expect(calls).toBe(3);
    expect(p.counters()).toMatchObject({ retries: 2, deadLettered: 1, dispatched: 0 });

    fail = false;
    const other = envelopeRaw(peer(7), "recovers");
    fail = true;
    expect(await p.process(other)).toBe("retry");
    fail = false;
    clock += 1_000;
    expect(await p.process(other)).toBe("dispatched");
    expect(await p.process(other)).toBe("duplicate");
  });

  it("does not spend a rate-limit slot again when retrying a message", async () => {
    let fail = true;
    const p = make({
      policy: { ...POLICY, ratePerMinute: 1 },
      dispatch: async () => {
        if (fail) throw new Error("down");
      },
    });
    const raw = plainRaw(peer(7), "only one");
    expect(await p.process(raw)).toBe("retry");
    fail = false;
    clock += 1_000;
    expect(await p.process(raw)).toBe("dispatched");
  });

  it("retries when the trust check itself fails", async () => {
    const p = make({
      isTrusted: () => {
        throw new Error("pilotctl trust timed out");
      },
    });
    expect(await p.process(plainRaw(peer(7), "hi"))).toBe("retry");
    expect(dispatched).toHaveLength(0);
  });

  describe("hostname resolution", () => {
    it("uses the envelope's hostname only when the registry or trust list gives the node that name", async () => {
      const names = new Map<number, string>([
        [7, "carol"],
        [8, "mallory"],
      ]);
      const warnings: string[] = [];
      const p = make({
        lookupHostname: async (ref) => names.get(ref.nodeId ?? -1) ?? null,
        log: { info: () => {}, warn: (m) => warnings.push(m) },
      });
      await p.process(envelopeRaw(peer(7), "x", { fromHostname: "carol" }));
      // A trusted peer claiming another peer's name lands in its own session, not in that peer's.
      await p.process(envelopeRaw(peer(8), "y", { fromHostname: "carol" }));
      // A claim nobody can confirm names nothing: the node id does.
      await p.process(envelopeRaw(peer(9), "z", { fromHostname: "carol" }));
      expect(dispatched.map((m) => m.peer.hostname)).toEqual(["carol", "mallory", "node-9"]);
      expect(warnings.join("\n")).toContain('claims to be "carol" but is registered as "mallory"');
    });

    it("looks a plain sender up in the registry once, then uses the cache", async () => {
      const asked: PeerRef[] = [];
      const p = make({
        lookupHostname: async (ref) => {
          asked.push(ref);
          return "dave";
        },
      });
      await p.process(plainRaw(peer(0x0001_0002), "one"));
      await p.process(plainRaw(peer(0x0001_0002), "two"));
      expect(dispatched.map((m) => m.peer.hostname)).toEqual(["dave", "dave"]);
      expect(asked).toHaveLength(1);
      expect(asked[0]?.nodeId).toBe(0x0001_0002);
    });

    it("falls back to node-<full 32-bit id> when the registry does not know the peer or fails", async () => {
      const p = make({
        lookupHostname: async (ref) => {
          if (ref.nodeId === 0x0001_0002) return null;
          throw new Error("registry down");
        },
      });
      await p.process(plainRaw(peer(0x0001_0002), "unknown"));
      await p.process(plainRaw(peer(0x0003_0004), "outage"));
      expect(dispatched.map((m) => m.peer.hostname)).toEqual([`node-${0x0001_0002}`, `node-${0x0003_0004}`]);
    });

    it("uses a hostname the transport already verified (relay) before the envelope's claim", async () => {
      const p = make();
      const raw = envelopeRaw({ hostname: "erin", nodeId: null, installationId: "inst-1" }, "x", {
        fromHostname: "frank",
      });
      await p.process({ ...raw, transport: "relay" });
      expect(dispatched[0]?.peer.hostname).toBe("erin");
    });
  });

  describe("receipts", () => {
    const bob: PeerRef = { hostname: "bob", nodeId: null, installationId: "inst-bob" };
    function receiptsOf(overrides: Partial<InboundPipelineDeps> = {}) {
      const sent: Array<{ to: PeerRef; receipt: Receipt }> = [];
      const taken: Array<{ receipt: Receipt; from: string }> = [];
      const p = make({
        receipts: {
          send: (to, receipt) => sent.push({ to, receipt }),
          take: (receipt, from) => taken.push({ receipt, from }),
        },
        ...overrides,
      });
      return { p, sent, taken };
    }
    function asking(from: PeerRef, body: string, id = `m-${++seq}`): RawInbound {
      const envelope = createEnvelope({ fromHostname: "bob", body, id, ack: true });
      return {
        transport: "relay",
        ref: id,
        name: id,
        data: encodeEnvelope(envelope),
        from,
        receivedAt: 1_000,
      };
    }

    it("answers a message that asks, once it is in the session, and again for a resent copy", async () => {
      const { p, sent } = receiptsOf();
      expect(await p.process(asking(bob, "hello", "m-1"))).toBe("dispatched");
      expect(await p.process(asking(bob, "hello", "m-1"))).toBe("duplicate");
      expect(dispatched).toHaveLength(1);
      expect(sent).toEqual([
        { to: bob, receipt: { for: "m-1", status: "delivered" } },
        { to: bob, receipt: { for: "m-1", status: "delivered" } },
      ]);
    });

    it("sends none to a sender that did not ask (an older plugin, or plain text)", async () => {
      const { p, sent } = receiptsOf();
      await p.process({ ...envelopeRaw(bob, "old plugin"), transport: "relay" });
      await p.process(plainRaw(peer(7), "bare pilotctl"));
      expect(dispatched).toHaveLength(2);
      expect(sent).toEqual([]);
    });

    it("answers a refusal with its reason, the first time and for a resent copy", async () => {
      const { p, sent } = receiptsOf({ isTrusted: () => false });
      expect(await p.process(asking(bob, "let me in", "m-2"))).toBe("refused");
      expect(await p.process(asking(bob, "let me in", "m-2"))).toBe("duplicate");
      expect(sent.map((s) => s.receipt)).toEqual([
        { for: "m-2", status: "refused", reason: "untrusted" },
        { for: "m-2", status: "refused", reason: "untrusted" },
      ]);
    });

    it("sends no receipt for a message that failed (its sender resends it)", async () => {
      const { p, sent } = receiptsOf({
        dispatch: async () => {
          throw new Error("session busy");
        },
      });
      expect(await p.process(asking(bob, "hi"))).toBe("retry");
      expect(sent).toEqual([]);
    });

    it("takes a receipt from a trusted peer for the outbox: never dispatched, never answered", async () => {
      const { p, sent, taken } = receiptsOf();
      const receipt = createReceipts({
        fromHostname: "bob",
        receipts: [
          { for: "ours-1", status: "delivered" },
          { for: "ours-2", status: "refused", reason: "too_large" },
        ],
      });
      const raw: RawInbound = {
        transport: "relay",
        ref: "r-1",
        name: "r-1",
        data: encodeEnvelope(receipt),
        from: bob,
        receivedAt: 1_000,
      };
      expect(await p.process(raw)).toBe("receipt");
      expect(taken).toEqual([
        { receipt: { for: "ours-1", status: "delivered" }, from: "bob" },
        { receipt: { for: "ours-2", status: "refused", reason: "too_large" }, from: "bob" },
      ]);
      expect(dispatched).toEqual([]);
      expect(sent).toEqual([]);
      expect(p.counters()).toMatchObject({ receipts: 2, dispatched: 0, duplicates: 0 });
    });

    it("drops a receipt from a peer that is not trusted, and still never dispatches it", async () => {
      const { p, taken } = receiptsOf({ isTrusted: () => false });
      const receipt = createReceipts({
        fromHostname: "bob",
        receipts: [{ for: "ours-3", status: "delivered" }],
      });
      const raw: RawInbound = {
        transport: "relay",
        ref: "r-2",
        name: "r-2",
        data: encodeEnvelope(receipt),
        from: bob,
        receivedAt: 1_000,
      };
      expect(await p.process(raw)).toBe("receipt");
      expect(taken).toEqual([]);
      expect(dispatched).toEqual([]);
    });
  });
});
