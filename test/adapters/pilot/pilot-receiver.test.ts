// Pilot receiver on real inbox directories: hand-written files (half-written, malformed, bursts) and the real
// inbound pipeline with its processed keys on disk; the dispatcher only records what it received.
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createInboundPipeline, type InboundPipeline } from "../../../src/adapters/inbound/pipeline.js";
import {
  deadLetterDir,
  inboxDir,
  listInboxFilesSync,
  readInboxFileSync,
} from "../../../src/adapters/pilot/inbox.js";
import { formatAddress } from "../../../src/adapters/pilot/pilotctl.js";
import { type AccountDb, openAccountDb } from "../../../src/adapters/state/account-db.js";
import { createEnvelope, encodeEnvelope } from "../../../src/adapters/transport/envelope.js";
import type {
  AdmittedMessage,
  InboundOutcome,
  InboundSink,
  RawInbound,
} from "../../../src/adapters/transport/transport.js";
import { type PilotReceiver, startPilotReceiver, waitFor } from "./helpers.js";

function fileContent(id: string, fromNodeId = 0x0001_0002, body = `body of ${id}`): string {
  const data = encodeEnvelope(createEnvelope({ fromHostname: "alice", body, id }));
  return JSON.stringify({
    type: "TEXT",
    from: formatAddress(fromNodeId),
    data,
    bytes: Buffer.byteLength(data),
    received_at: new Date().toISOString(),
  });
}

/** Writes like the daemon: a plain open/write/write/close, so a watcher can see the first half alone. */
function writeNonAtomic(path: string, content: string): void {
  const buf = Buffer.from(content);
  const fd = openSync(path, "w");
  const half = Math.floor(buf.length / 2);
  writeSync(fd, buf, 0, half);
  writeSync(fd, buf, half, buf.length - half);
  closeSync(fd);
}

function ageFile(path: string, seconds: number): void {
  const t = new Date(Date.now() - seconds * 1000);
  utimesSync(path, t, t);
}

describe("pilot receiver", () => {
  let root: string;
  let home: string;
  let inbox: string;
  let dispatched: AdmittedMessage[];
  let pipeline: InboundPipeline;
  let db: AccountDb;
  let receivers: PilotReceiver[];

  function start(options: { watch?: boolean; sink?: InboundSink } = {}): PilotReceiver {
    const r = startPilotReceiver({ home, sink: options.sink ?? pipeline, watch: options.watch ?? false });
    receivers.push(r);
    return r;
  }

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "pilot-receiver-"));
    home = join(root, "home");
    inbox = inboxDir(home);
    mkdirSync(inbox, { recursive: true });
    dispatched = [];
    receivers = [];
    db = openAccountDb(join(root, "state"));
    pipeline = createInboundPipeline({
      processedKeys: db.processedKeys(),
      policy: { allowFrom: [], blockFrom: [], maxMessageBytes: 65_536, ratePerMinute: 10_000 },
      isTrusted: () => true,
      lookupHostname: async () => null,
      dispatch: async (m) => {
        dispatched.push(m);
      },
    });
  });

  afterEach(async () => {
    for (const r of receivers) await r.close();
    pipeline.close();
    db.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("dispatches a file and deletes it, mapping the sender address to its full 32-bit node id", async () => {
    writeFileSync(join(inbox, "TEXT-1.json"), fileContent("m-1", 0x0001_0002));
    const summary = await start().scan();
    expect(summary).toMatchObject({ files: 1, dispatched: 1 });
    expect(dispatched[0]?.peer.nodeId).toBe(0x0001_0002);
    expect(dispatched[0]?.text).toBe("body of m-1");
    expect(readdirSync(inbox)).toEqual([]);
  });

  it("is woken by the watcher without any scan() call", async () => {
    start({ watch: true });
    writeNonAtomic(join(inbox, "TEXT-1.json"), fileContent("m-1"));
    await waitFor(async () => dispatched.length === 1, 5_000, 5);
    await waitFor(async () => readdirSync(inbox).length === 0, 5_000, 5);
  });

  it("keeps a half-written file and dispatches it once it is complete", async () => {
    const path = join(inbox, "TEXT-1.json");
    const content = fileContent("m-1");
    writeFileSync(path, content.slice(0, 20));
    const r = start();
    // Kept by the loop's first cycle and again by the one scan() asked for.
    expect(await r.scan()).toMatchObject({ retried: 2, dispatched: 0 });
    expect(existsSync(path)).toBe(true);
    writeFileSync(path, content);
    expect(await r.scan()).toMatchObject({ dispatched: 1 });
    expect(dispatched).toHaveLength(1);
  });

  it("dead-letters a malformed file (past the grace) and carries on with the others", async () => {
    writeFileSync(join(inbox, "TEXT-1.json"), fileContent("m-1"));
    ageFile(join(inbox, "TEXT-1.json"), 30);
    writeFileSync(join(inbox, "TEXT-2.json"), "{ this is not json");
    ageFile(join(inbox, "TEXT-2.json"), 20);
    writeFileSync(join(inbox, "TEXT-3.json"), JSON.stringify({ type: "TEXT", from: "nonsense", data: "x" }));
    ageFile(join(inbox, "TEXT-3.json"), 10);
    writeFileSync(join(inbox, "TEXT-4.json"), fileContent("m-4"));
    const summary = await start().scan();
    expect(summary).toMatchObject({ dispatched: 2, malformed: 2 });
    expect(dispatched.map((m) => m.text)).toEqual(["body of m-1", "body of m-4"]);
    const dead = readdirSync(deadLetterDir(inbox)).sort();
    expect(dead).toEqual(["TEXT-2.json", "TEXT-2.reason.json", "TEXT-3.json", "TEXT-3.reason.json"]);
    expect(readdirSync(inbox)).toEqual([]);
  });

  it("keeps a file the pipeline wants retried and dead-letters one it gave up on", async () => {
    const outcomes = new Map<string, InboundOutcome>([
      ["TEXT-1.json", "retry"],
      ["TEXT-2.json", "dead-lettered"],
      ["TEXT-3.json", "refused"],
    ]);
    const sink: InboundSink = { process: async (raw: RawInbound) => outcomes.get(raw.name) ?? "dispatched" };
    for (const name of outcomes.keys()) writeFileSync(join(inbox, name), fileContent(name));
    const summary = await start({ sink }).scan();
    // The kept file is seen by the loop's first cycle and by the one scan() asked for.
    expect(summary).toMatchObject({ retried: 2, deadLettered: 1, refused: 1 });
    expect(readdirSync(inbox)).toEqual(["TEXT-1.json"]);
    expect(readdirSync(deadLetterDir(inbox)).sort()).toEqual(["TEXT-2.json", "TEXT-2.reason.json"]);
  });

  it("keeps a file when the sink throws, and the loop continues", async () => {
    const sink: InboundSink = {
      process: async (raw) => {
        if (raw.name === "TEXT-1.json") throw new Error("bug");
        return "dispatched";
      },
    };
    writeFileSync(join(inbox, "TEXT-1.json"), fileContent("a"));
    writeFileSync(join(inbox, "TEXT-2.json"), fileContent("b"));
    const summary = await start({ sink }).scan();
    // The kept file is seen by the loop's first cycle and by the one scan() asked for.
    expect(summary).toMatchObject({ errors: 2, dispatched: 1 });
    expect(readdirSync(inbox)).toEqual(["TEXT-1.json"]);
  });

  it("runs one scan at a time: concurrent scans never hand the same file to the sink twice", async () => {
    let active = 0;
    let maxActive = 0;
    const seen: string[] = [];
    const sink: InboundSink = {
      process: async (raw) => {
        active++;
        maxActive = Math.max(maxActive, active);
        seen.push(raw.name);
        await new Promise((r) => setTimeout(r, 1));
        active--;
        return "dispatched";
      },
    };
    for (let i = 0; i < 20; i++) writeFileSync(join(inbox, `TEXT-${i}.json`), fileContent(`m-${i}`));
    const r = start({ sink });
    await Promise.all([r.scan(), r.scan(), r.scan()]);
    r.wake();
    await r.scan();
    expect(maxActive).toBe(1);
    expect(seen).toHaveLength(20);
    expect(new Set(seen).size).toBe(20);
  });

  it("a scan() requested during a scan resolves only after a pass that saw files written meanwhile", async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const seen: string[] = [];
    const sink: InboundSink = {
      process: async (raw) => {
        seen.push(raw.name);
        if (raw.name === "TEXT-1.json") await gate;
        return "dispatched";
      },
    };
    writeFileSync(join(inbox, "TEXT-1.json"), fileContent("a"));
    const r = start({ sink });
    const first = r.scan();
    await waitFor(async () => seen.length === 1, 5_000, 5);
    writeFileSync(join(inbox, "TEXT-2.json"), fileContent("b"));
    const second = r.scan();
    release();
    await first;
    await second;
    expect(seen).toEqual(["TEXT-1.json", "TEXT-2.json"]);
  });

  it("dispatches a burst of 200 files written non-atomically exactly once each", async () => {
    start({ watch: true });
    for (let i = 0; i < 200; i++) {
      writeNonAtomic(join(inbox, `TEXT-${String(i).padStart(4, "0")}.json`), fileContent(`m-${i}`));
      if (i % 20 === 0) await new Promise((r) => setImmediate(r));
    }
    await waitFor(async () => dispatched.length >= 200 && readdirSync(inbox).length === 0, 15_000, 10);
    // Settle: nothing more arrives later.
    await new Promise((r) => setTimeout(r, 200));
    const keys = dispatched.map((m) => m.key);
    expect(keys).toHaveLength(200);
    expect(new Set(keys).size).toBe(200);
    expect(pipeline.counters().dispatched).toBe(200);
  });

  it("reads and lists exactly like inbox.ts (its synchronous copy must not drift)", async () => {
    const files: Record<string, string> = {
      "A.json": fileContent("a"),
      "B.json": "{ half",
      "C.json": JSON.stringify({ type: "TEXT", from: "nonsense", data: "x" }),
      "D.json": JSON.stringify({
        type: "BINARY",
        from: "0:0000.0001.0002",
        data_b64: Buffer.from("hi").toString("base64"),
      }),
      "E.json": JSON.stringify({ type: "TEXT", from: "0:0000.0000.0001" }),
      "F.json": JSON.stringify({ from: "0:0000.0000.0001", data: "no type" }),
      ".hidden.json": fileContent("h"),
      "notes.txt": "not a message",
    };
    for (const [name, content] of Object.entries(files)) writeFileSync(join(inbox, name), content);
    ageFile(join(inbox, "C.json"), 30);
    const now = Date.now();
    for (const graceMs of [0, 60_000]) {
      for (const name of Object.keys(files)) {
        const path = join(inbox, name);
        expect(readInboxFileSync(path, { graceMs, now: () => now })).toEqual(
          readInboxFileSync(path, { graceMs, now: () => now }),
        );
      }
    }
    expect(readInboxFileSync(join(inbox, "missing.json"), { graceMs: 0 })).toEqual({ gone: true });
    expect(listInboxFilesSync(inbox)).toEqual(listInboxFilesSync(inbox));
    expect(listInboxFilesSync(join(root, "nope"))).toEqual([]);
  });
});
