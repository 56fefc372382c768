import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  deadLetterDir,
  deleteInboxFile,
  inboxDir,
  listInboxFilesSync,
  moveToDeadLetter,
  readInboxFileSync,
  watchInbox,
} from "../../../src/adapters/pilot/inbox.js";
import { setupNetwork, trustEachOther, waitFor } from "./helpers.js";

let home: string;
let dir: string;

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "inbox-test-"));
  dir = inboxDir(home);
  mkdirSync(dir, { recursive: true });
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

const message = (over: Record<string, unknown> = {}) =>
  JSON.stringify({
    type: "TEXT",
    from: "0:0000.0001.0002",
    data: "hello",
    bytes: 5,
    received_at: "2026-11-25T10:00:00Z",
    ...over,
  });

describe("readInboxFileSync", () => {
  it("parses a complete file and maps the sender to all 32 bits of its node id", async () => {
    const path = join(dir, "TEXT-20261125-100000.000.json");
    writeFileSync(path, message());
    const r = readInboxFileSync(path);
    expect(r).toMatchObject({
      ok: { name: "TEXT-20261125-100000.000.json", data: "hello", fromNodeId: 0x10002 },
    });
  });

  it("decodes data_b64", async () => {
    const path = join(dir, "BINARY-1-000001.json");
    writeFileSync(
      path,
      JSON.stringify({
        type: "BINARY",
        from: "0:0000.0000.0003",
        data_b64: Buffer.from("bïn").toString("base64"),
      }),
    );
    const r = readInboxFileSync(path);
    expect(r).toMatchObject({ ok: { data: "bïn", dataB64: Buffer.from("bïn").toString("base64") } });
  });

  it("a half-written file is retried while young, malformed once older than the grace", async () => {
    const path = join(dir, "TEXT-20261125-100000.001.json");
    const full = message();
    writeFileSync(path, full.slice(0, full.length / 2));
    expect(readInboxFileSync(path)).toEqual({ retry: true });
    const later = Date.now() + 5_000;
    const r = readInboxFileSync(path, { graceMs: 2_000, now: () => later });
    expect(r).toMatchObject({ malformed: expect.stringMatching(/not JSON/) });
  });

  it("an empty file (just created) is retried", async () => {
    const path = join(dir, "TEXT-20261125-100000.002.json");
    writeFileSync(path, "");
    expect(readInboxFileSync(path)).toEqual({ retry: true });
  });

  it("valid JSON of the wrong shape or with a bad sender is malformed at once", async () => {
    const a = join(dir, "a.json");
    writeFileSync(a, JSON.stringify({ hello: 1 }));
    expect(readInboxFileSync(a)).toMatchObject({ malformed: expect.any(String) });
    const b = join(dir, "b.json");
    writeFileSync(b, message({ from: "node-7" }));
    expect(readInboxFileSync(b)).toMatchObject({ malformed: expect.stringMatching(/sender address/) });
  });

  it("a file moved away before reading is gone, not an error", async () => {
    expect(readInboxFileSync(join(dir, "missing.json"))).toEqual({ gone: true });
  });
});

describe("a mixed inbox", () => {
  it("lists files oldest first and classifies each: whole, still being written, malformed", () => {
    const full = message();
    writeFileSync(join(dir, "TEXT-1.json"), full);
    writeFileSync(join(dir, "TEXT-2.json"), full.slice(0, 10));
    writeFileSync(join(dir, "TEXT-3.json"), JSON.stringify({ nope: true }));
    const t = Date.now() / 1000;
    utimesSync(join(dir, "TEXT-3.json"), t - 30, t - 30);
    const listed = listInboxFilesSync(dir);
    expect(listed.map((e) => e.name)).toEqual(["TEXT-3.json", "TEXT-1.json", "TEXT-2.json"]);
    const [old, whole, partial] = listed.map((e) => readInboxFileSync(e.path));
    expect(old).toMatchObject({ malformed: expect.any(String) });
    expect(whole).toMatchObject({ ok: { name: "TEXT-1.json" } });
    expect(partial).toEqual({ retry: true });
    expect(listInboxFilesSync(join(home, "nope"))).toEqual([]);
  });
});

describe("listInboxFilesSync / deleteInboxFile / moveToDeadLetter", () => {
  it("lists only message files, oldest first, and an absent directory as empty", async () => {
    writeFileSync(join(dir, "TEXT-b.json"), message());
    writeFileSync(join(dir, "TEXT-a.json"), message());
    writeFileSync(join(dir, ".hidden.json"), message());
    writeFileSync(join(dir, "notes.txt"), "x");
    const t = Date.now() / 1000;
    utimesSync(join(dir, "TEXT-b.json"), t - 10, t - 10);
    utimesSync(join(dir, "TEXT-a.json"), t - 5, t - 5);
    expect(listInboxFilesSync(dir).map((e) => e.name)).toEqual(["TEXT-b.json", "TEXT-a.json"]);
    expect(listInboxFilesSync(join(home, "nope"))).toEqual([]);
  });

  it("deletes one file and tolerates one already gone", async () => {
    const path = join(dir, "x.json");
    writeFileSync(path, message());
    await deleteInboxFile(path);
    expect(existsSync(path)).toBe(false);
    await deleteInboxFile(path);
  });

  it("moves a file to the dead-letter folder beside the inbox with its reason, never overwriting", async () => {
    const path = join(dir, "TEXT-20261125-100000.000.json");
    writeFileSync(path, message({ data: "first" }));
    const first = await moveToDeadLetter(path, "dispatch failed 5 times");
    expect(statSync(deadLetterDir(dirname(path))).mode & 0o777).toBe(0o700);
    writeFileSync(path, message({ data: "second" }));
    const second = await moveToDeadLetter(path, "again");
    const dead = deadLetterDir(dir);
    expect(dead).toBe(join(home, ".pilot", "inbox-dead-letter"));
    expect(first).toBe(join(dead, "TEXT-20261125-100000.000.json"));
    expect(second).not.toBe(first);
    expect(JSON.parse(readFileSync(first!, "utf8")).data).toBe("first");
    expect(JSON.parse(readFileSync(second!, "utf8")).data).toBe("second");
    const reason = JSON.parse(readFileSync(first!.replace(/\.json$/, ".reason.json"), "utf8"));
    expect(reason).toMatchObject({ reason: "dispatch failed 5 times", original_path: path });
    expect(existsSync(path)).toBe(false);
    expect(await moveToDeadLetter(path, "gone already")).toBeUndefined();
  });
});

describe("watchInbox", () => {
  it("creates a missing directory and wakes on a new file", async () => {
    rmSync(dir, { recursive: true, force: true });
    const wakes: (string | undefined)[] = [];
    const w = watchInbox(dir, (f) => wakes.push(f));
    try {
      expect(existsSync(dir)).toBe(true);
      // Owner-only, as the daemon creates it.
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      writeFileSync(join(dir, "TEXT-1.json"), message());
      await waitFor(async () => wakes.includes("TEXT-1.json"), 3_000, 10);
    } finally {
      w.close();
    }
  });

  it("re-arms after the directory is removed and recreated, when the loop asks", async () => {
    const wakes: (string | undefined)[] = [];
    const w = watchInbox(dir, (f) => wakes.push(f));
    try {
      rmSync(dir, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 50));
      // The inbox loop's next cycle re-arms it (and recreates the directory).
      w.rearm();
      expect(existsSync(dir)).toBe(true);
      writeFileSync(join(dir, "TEXT-2.json"), message());
      await waitFor(async () => wakes.includes("TEXT-2.json"), 3_000, 10);
    } finally {
      w.close();
    }
  });
});

describe("reading what the fake daemon writes (non-atomic writes)", { timeout: 60_000 }, () => {
  it("every file a watcher sees is either retry or complete, and completes", async () => {
    const { net, peers } = setupNetwork({ shape: "new", extraEnv: { FAKE_PILOT_WRITE_PAUSE_MS: "150" } }, [
      "sender",
      "receiver",
    ]);
    const [sender, receiver] = peers as [(typeof peers)[0], (typeof peers)[0]];
    try {
      await trustEachOther(sender, receiver);
      const rdir = inboxDir(receiver.node.home);
      const seen: string[] = [];
      let sawRetry = false;
      const w = watchInbox(rdir, async (f) => {
        if (!f?.endsWith(".json")) return;
        const r = readInboxFileSync(join(rdir, f));
        if ("retry" in r) sawRetry = true;
        if ("ok" in r) seen.push(r.ok.data);
      });
      try {
        await sender.ctl.sendMessage("receiver", "x".repeat(2_000));
        await waitFor(async () => seen.length > 0, 5_000, 20);
      } finally {
        w.close();
      }
      expect(seen[0]).toBe("x".repeat(2_000));
      expect(sawRetry).toBe(true);
    } finally {
      net.close();
    }
  });
});
