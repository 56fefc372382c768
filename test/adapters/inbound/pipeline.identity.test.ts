// The pipeline's authentication in isolation (the account runtime test runs it between real accounts): what it
// accepts from unpinned peers, how it addresses and dates signatures, and that a receipt under a bad signature is
// never taken.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createInboundPipeline,
  type InboundIdentity,
  type InboundPipeline,
} from "../../../src/adapters/inbound/pipeline.js";
import { type AccountDb, openAccountDb } from "../../../src/adapters/state/account-db.js";
import {
  createEnvelope,
  createReceipts,
  type Envelope,
  encodeEnvelope,
  signEnvelope,
} from "../../../src/adapters/transport/envelope.js";
import type { AdmittedMessage, PeerRef, RawInbound } from "../../../src/adapters/transport/transport.js";
import { generateIdentity, type Identity } from "../../../src/identity/keys.js";

const me = generateIdentity();
const alice = generateIdentity();
const ALICE: PeerRef = { hostname: null, nodeId: 7, installationId: null };

let seq = 0;
const raw = (envelope: Envelope | string, from = ALICE): RawInbound => ({
  transport: "pilot",
  ref: `/inbox/${++seq}.json`,
  name: `${seq}.json`,
  data: typeof envelope === "string" ? envelope : encodeEnvelope(envelope),
  from,
  receivedAt: 1_000,
});

describe("inbound authentication", () => {
  let dir: string;
  let db: AccountDb;
  let pipeline: InboundPipeline;
  let clock: number;
  let dispatched: AdmittedMessage[];
  let pinned: string | null;
  let offered: string[];
  let taken: string[];

  const identity = (): InboundIdentity => ({
    publicKey: me.publicKey,
    hostname: "me",
    lookup: (_from, key) => ({
      pinnedTo: key !== null && key === pinned ? { hostname: "alice", suspended: false } : null,
      transportPeer: { key: pinned, suspended: false },
    }),
    keyChanged: () => undefined,
    offered: (_from, key) => offered.push(key),
  });
  const signed = (text: string, options: { key?: Identity; to?: string; at?: number } = {}) =>
    signEnvelope(
      createEnvelope({ fromHostname: "alice", body: text, now: new Date(options.at ?? clock) }),
      options.key ?? alice,
      options.to ?? me.publicKey,
    );

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "inbound-identity-"));
    db = openAccountDb(dir);
    clock = 1_700_000_000_000;
    dispatched = [];
    pinned = null;
    offered = [];
    taken = [];
    pipeline = createInboundPipeline({
      processedKeys: db.processedKeys(),
      policy: { allowFrom: [], blockFrom: [], maxMessageBytes: 65_536, ratePerMinute: 100 },
      isTrusted: () => true,
      lookupHostname: async () => "alice",
      dispatch: async (m) => void dispatched.push(m),
      now: () => clock,
      identity: identity(),
      receipts: { send: () => undefined, take: (receipt) => void taken.push(receipt.for) },
    });
  });
  afterEach(() => {
    pipeline.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("takes an unpinned peer's messages, signed or not, and offers its key without pinning it", async () => {
    expect(await pipeline.process(raw(createEnvelope({ fromHostname: "alice", body: "old plugin" })))).toBe(
      "dispatched",
    );
    expect(await pipeline.process(raw(await signed("new plugin")))).toBe("dispatched");
    expect(offered).toEqual([alice.publicKey]);
    expect(pipeline.counters().verified).toBe(0);
  });

  it("accepts its own hostname as the recipient, and refuses someone else's", async () => {
    pinned = alice.publicKey;
    expect(await pipeline.process(raw(await signed("by name", { to: "ME" })))).toBe("dispatched");
    expect(await pipeline.process(raw(await signed("for bob", { to: "bob" })))).toBe("refused");
    expect(await pipeline.process(raw(await signed("for bob's key", { to: alice.publicKey })))).toBe(
      "refused",
    );
    expect(pipeline.counters().refused.wrong_recipient).toBe(2);
    expect(pipeline.counters().verified).toBe(1);
  });

  it("dates signatures: an hour back and five minutes ahead at most", async () => {
    pinned = alice.publicKey;
    const minute = 60_000;
    expect(await pipeline.process(raw(await signed("59 min", { at: clock - 59 * minute })))).toBe(
      "dispatched",
    );
    expect(await pipeline.process(raw(await signed("61 min", { at: clock - 61 * minute })))).toBe("refused");
    expect(await pipeline.process(raw(await signed("4 min ahead", { at: clock + 4 * minute })))).toBe(
      "dispatched",
    );
    expect(await pipeline.process(raw(await signed("6 min ahead", { at: clock + 6 * minute })))).toBe(
      "refused",
    );
    expect(pipeline.counters().refused.stale).toBe(2);
  });

  it("a refused forgery does not take the id of the real message", async () => {
    pinned = alice.publicKey;
    const real = await signed("the real one");
    expect(await pipeline.process(raw({ ...real, body: "forged" }))).toBe("refused");
    expect(await pipeline.process(raw(real))).toBe("dispatched");
    expect(dispatched.map((m) => m.text)).toEqual(["the real one"]);
  });

  it("never takes receipts under a bad signature or from a pinned peer unsigned", async () => {
    pinned = alice.publicKey;
    const receipts = createReceipts({
      fromHostname: "alice",
      receipts: [{ for: "m-1", status: "delivered" }],
      now: new Date(clock),
    });
    const good = await signEnvelope(receipts, alice, me.publicKey);
    expect(await pipeline.process(raw({ ...good, receipts: [{ for: "m-2", status: "delivered" }] }))).toBe(
      "refused",
    );
    expect(await pipeline.process(raw(receipts))).toBe("refused");
    expect(await pipeline.process(raw(good))).toBe("receipt");
    expect(taken).toEqual(["m-1"]);
  });

  it("a plain text from a pinned peer is a downgrade", async () => {
    pinned = alice.publicKey;
    expect(await pipeline.process(raw("hello in plain text"))).toBe("refused");
    expect(pipeline.counters().refused.unsigned).toBe(1);
    expect(dispatched).toEqual([]);
  });
});
