// Point reads share statements: a read goes out at once when none is in flight, reads arriving meanwhile go out
// together when it returns; each caller gets its own row (or undefined), a key asked twice is read once, a batch
// over the limit is split, a failed statement fails exactly the reads it carried, and a read asked after its key's
// statement was sent goes into the next one (it never gets a row read before it was asked).
import { describe, expect, it } from "vitest";
import { ReadBatcher } from "../../src/registry-server/read-batcher.js";

function table(rows: Record<string, number>) {
  const statements: string[][] = [];
  let failNext = false;
  const read = async (keys: string[]) => {
    statements.push(keys);
    // The statement sees the rows as they are when it is sent.
    const found = new Map(keys.filter((k) => k in rows).map((k) => [k, rows[k]!]));
    const fail = failNext;
    failNext = false;
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (fail) throw new Error("database unavailable");
    return found;
  };
  return { rows, statements, read, failOnce: () => (failNext = true) };
}

describe("read batcher", () => {
  it("answers reads of one turn with one statement, each with its own row", async () => {
    const t = table({ a: 1, b: 2 });
    const batcher = new ReadBatcher(t.read);
    const answers = await Promise.all([
      batcher.get("b"),
      batcher.get("a"),
      batcher.get("a"),
      batcher.get("ghost"),
    ]);
    expect(answers).toEqual([2, 1, 1, undefined]);
    expect(t.statements).toEqual([["b", "a", "ghost"]]);
    expect(batcher.stats).toEqual({ batches: 1, reads: 3 });
  });

  it("gathers the reads that arrive while a statement is in flight into the next one", async () => {
    const t = table({ a: 1, b: 2, c: 3, d: 4 });
    const batcher = new ReadBatcher(t.read);
    const first = batcher.get("a");
    await new Promise((resolve) => setTimeout(resolve, 1));
    expect(t.statements).toEqual([["a"]]);
    const rest = Promise.all(["b", "c", "d"].map((k) => batcher.get(k)));
    expect(await first).toBe(1);
    expect(await rest).toEqual([2, 3, 4]);
    expect(t.statements).toEqual([["a"], ["b", "c", "d"]]);
  });

  it("splits a turn's reads at the batch limit", async () => {
    const t = table({ a: 1, b: 2, c: 3 });
    const batcher = new ReadBatcher(t.read, 2);
    expect(await Promise.all(["a", "b", "c"].map((k) => batcher.get(k)))).toEqual([1, 2, 3]);
    expect(t.statements).toEqual([["a", "b"], ["c"]]);
  });

  it("fails the reads of a failed statement, and only those", async () => {
    const t = table({ a: 1, b: 2 });
    const batcher = new ReadBatcher(t.read, 1);
    t.failOnce();
    const [a, b] = await Promise.allSettled([batcher.get("a"), batcher.get("b")]);
    expect(a).toMatchObject({ status: "rejected", reason: new Error("database unavailable") });
    expect(b).toEqual({ status: "fulfilled", value: 2 });
    expect(await batcher.get("a")).toBe(1);
  });

  it("reads a key asked after its batch was sent again, in the next statement", async () => {
    const t = table({ a: 1 });
    const batcher = new ReadBatcher(t.read);
    const first = batcher.get("a");
    await new Promise((resolve) => setImmediate(resolve));
    t.rows.a = 5;
    const second = batcher.get("a");
    expect(await Promise.all([first, second])).toEqual([1, 5]);
    expect(t.statements).toEqual([["a"], ["a"]]);
  });
});
