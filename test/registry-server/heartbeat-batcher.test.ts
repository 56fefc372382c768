// Group commit of heartbeats: concurrent touches share one write, each is answered only once its write is done,
// and a failed write fails exactly the heartbeats it carried. The writer is a plain function over a Map.
import { describe, expect, it } from "vitest";
import { HeartbeatBatcher } from "../../src/registry-server/heartbeat-batcher.js";

function table(ids: string[]) {
  const lastSeen = new Map(ids.map((id) => [id, 0]));
  const writes: string[][] = [];
  let failNext = false;
  const write = async (batch: string[], times: number[]) => {
    writes.push(batch);
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (failNext) {
      failNext = false;
      throw new Error("database unavailable");
    }
    const found = new Set<string>();
    batch.forEach((id, i) => {
      if (!lastSeen.has(id)) return;
      lastSeen.set(id, Math.max(lastSeen.get(id)!, times[i]!));
      found.add(id);
    });
    return found;
  };
  return { lastSeen, writes, write, failOnce: () => (failNext = true) };
}

describe("heartbeat batcher", () => {
  it("shares a row between heartbeats of one agent only when they carry the same token hash", async () => {
    const hashes: Array<Array<string | null>> = [];
    const batcher = new HeartbeatBatcher({
      lingerMs: 5,
      write: async (ids, _times, _since, tokenHashes) => {
        hashes.push(tokenHashes);
        return new Set(ids);
      },
    });
    const answers = await Promise.all([
      batcher.touch("a", 10, 0, "h1"),
      batcher.touch("a", 11, 0, "h1"),
      // Another token for a pending agent is answered false at once (its caller reads the record to say why).
      batcher.touch("a", 12, 0, "h2"),
      batcher.touch("b", 10, 0, null),
    ]);
    expect(answers).toEqual([true, true, false, true]);
    expect(hashes).toEqual([["h1", null]]);
  });

  it("writes concurrent heartbeats together and answers each once written", async () => {
    const t = table(["a", "b", "c"]);
    const batcher = new HeartbeatBatcher({ write: t.write, lingerMs: 5 });
    const answers = await Promise.all([
      batcher.touch("b", 10),
      batcher.touch("a", 10),
      batcher.touch("a", 12),
      batcher.touch("ghost", 10),
    ]);
    expect(answers).toEqual([true, true, true, false]);
    expect(t.writes).toEqual([["a", "b", "ghost"]]);
    expect(t.lastSeen.get("a")).toBe(12);
    expect(batcher.stats).toEqual({ batches: 1, rows: 3 });
  });

  it("keeps one write in flight and sends what came meanwhile in the next, at most maxBatch rows each", async () => {
    const t = table(["a", "b", "c", "d"]);
    const batcher = new HeartbeatBatcher({ write: t.write, lingerMs: 0, maxBatch: 2 });
    const first = batcher.touch("a", 1);
    await new Promise((resolve) => setImmediate(resolve));
    const later = ["b", "c", "d"].map((id) => batcher.touch(id, 2));
    expect(await Promise.all([first, ...later])).toEqual([true, true, true, true]);
    expect(t.writes).toEqual([["a"], ["b", "c"], ["d"]]);
  });

  it("fails the heartbeats of a failed write, and writes the next ones again", async () => {
    const t = table(["a", "b"]);
    const batcher = new HeartbeatBatcher({ write: t.write, lingerMs: 1 });
    t.failOnce();
    await expect(batcher.touch("a", 1)).rejects.toThrow(/unavailable/);
    expect(await batcher.touch("b", 2)).toBe(true);
  });

  it("drains pending heartbeats before the store closes", async () => {
    const t = table(["a"]);
    const batcher = new HeartbeatBatcher({ write: t.write, lingerMs: 1000 });
    const answer = batcher.touch("a", 7);
    await batcher.drain();
    expect(await answer).toBe(true);
    expect(t.lastSeen.get("a")).toBe(7);
  });
});
