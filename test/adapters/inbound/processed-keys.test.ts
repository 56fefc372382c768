// Processed-key store on real files: bounded, survives a restart without close(), tolerates a torn last line.
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  openProcessedKeys,
  PROCESSED_LOG_FILE,
  PROCESSED_SNAPSHOT_FILE,
} from "../../../src/adapters/inbound/processed-keys.js";

describe("processed keys", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "processed-keys-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("has a key as soon as record resolves, and the key is in the file by then", async () => {
    const keys = openProcessedKeys({ dir });
    await keys.record("env:a");
    expect(keys.has("env:a")).toBe(true);
    expect(readFileSync(join(dir, PROCESSED_LOG_FILE), "utf8")).toBe('"env:a"\n');
    keys.close();
  });

  it("reloads keys written by a process that never closed the store", async () => {
    const first = openProcessedKeys({ dir });
    await first.record("env:a");
    await first.record("plain:x\nwith newline");
    const second = openProcessedKeys({ dir });
    expect(second.has("env:a")).toBe(true);
    expect(second.has("plain:x\nwith newline")).toBe(true);
    second.close();
    first.close();
  });

  it("keeps only the most recent `capacity` keys, across compactions and restarts", async () => {
    const keys = openProcessedKeys({ dir, capacity: 100 });
    for (let i = 0; i < 250; i++) await keys.record(`k${i}`);
    expect(keys.size).toBe(100);
    expect(keys.has("k149")).toBe(false);
    expect(keys.has("k150")).toBe(true);
    // Compaction keeps the log short.
    expect(readFileSync(join(dir, PROCESSED_LOG_FILE), "utf8").split("\n").length).toBeLessThanOrEqual(101);
    const again = openProcessedKeys({ dir, capacity: 100 });
    expect(again.size).toBe(100);
    expect(again.has("k249")).toBe(true);
    expect(again.has("k149")).toBe(false);
    again.close();
    keys.close();
  });

  it("ignores a torn last line left by a crash mid-append", async () => {
    const keys = openProcessedKeys({ dir });
    await keys.record("env:done");
    appendFileSync(join(dir, PROCESSED_LOG_FILE), '"env:half');
    const again = openProcessedKeys({ dir });
    expect(again.has("env:done")).toBe(true);
    expect(again.has("env:half")).toBe(false);
    await again.record("env:next");
    const third = openProcessedKeys({ dir });
    expect(third.has("env:next")).toBe(true);
    third.close();
    again.close();
    keys.close();
  });

  it("writes a JSON snapshot on close", async () => {
    const keys = openProcessedKeys({ dir, durability: "power" });
    await keys.record("env:a");
    keys.close();
    const snapshot = JSON.parse(readFileSync(join(dir, PROCESSED_SNAPSHOT_FILE), "utf8")) as {
      keys: string[];
    };
    expect(snapshot.keys).toEqual(["env:a"]);
    await expect(keys.record("env:b")).rejects.toThrow(/closed/);
  });
});
