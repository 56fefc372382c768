// The trust mirror's recovery paths, against a scripted registry (a change log in memory): a refused cursor
// starts over, a failure part-way keeps what was read, a registry that stops paging gets whole-list reads, and
// a registry whose cursor never moves is an error rather than a loop.
import { describe, expect, it } from "vitest";
import { RegistryError } from "../../../src/adapters/registry/errors.js";
import type { TrustChangesPage, TrustPeer, TrustStatus } from "../../../src/adapters/registry/types.js";
import { createTrustMirror, type TrustMirror } from "../../../src/adapters/relay/trust-mirror.js";

const record = (peer: string, status: TrustStatus): TrustPeer => ({
  requesterId: peer,
  targetId: "me",
  status,
  createdAt: null,
  approvedAt: null,
  updatedAt: null,
  peerHostname: peer,
  introduction: null,
  assistantName: null,
  humanName: null,
});

/** A registry's change log: the nth write has change sequence n; pages of at most 2. */
class ScriptedRegistry {
  log: TrustPeer[] = [];
  reads: Array<string | null> = [];
  /** Answers the next reads with these instead (errors are thrown). */
  script: Array<TrustChangesPage | Error> = [];

  write(peer: string, status: TrustStatus): void {
    this.log.push(record(peer, status));
  }

  async readPage(after: string | null): Promise<TrustChangesPage> {
    this.reads.push(after);
    const scripted = this.script.shift();
    if (scripted instanceof Error) throw scripted;
    if (scripted) return scripted;
    const from = Number(after ?? 0);
    if (from > this.log.length) {
      throw new RegistryError("cursor ahead", { operation: "trust.list", kind: "conflict", status: 409 });
    }
    // Only each record's latest write counts, as the registry keeps one row per pair.
    const latest = new Map<string, number>();
    this.log.forEach((r, i) => {
      latest.set(r.requesterId, i + 1);
    });
    const changed = [...latest.entries()].filter(([, seq]) => seq > from).sort((a, b) => a[1] - b[1]);
    const page = changed.slice(0, 2);
    return {
      peers: page.map(([, seq]) => this.log[seq - 1]!),
      nextCursor: String(page.at(-1)?.[1] ?? from),
      hasMore: changed.length > 2,
    };
  }
}

function mirrorOf(registry: ScriptedRegistry, maxRecords = 100): TrustMirror {
  return createTrustMirror({
    readPage: (after) => registry.readPage(after),
    now: () => 0,
    resyncMs: 60_000,
    maxRecords,
  });
}

const live = async (mirror: TrustMirror) =>
  (await mirror.sync()).records.map((r) => `${r.requesterId}:${r.status}`).sort();

describe("trust mirror", () => {
  it("keeps live records only and follows changes after its cursor", async () => {
    const registry = new ScriptedRegistry();
    for (const peer of ["a", "b", "c"]) registry.write(peer, "approved");
    const mirror = mirrorOf(registry);
    expect(await live(mirror)).toEqual(["a:approved", "b:approved", "c:approved"]);
    expect(registry.reads).toEqual([null, "2"]);
    registry.write("b", "rejected");
    registry.write("d", "pending");
    expect(await live(mirror)).toEqual(["a:approved", "c:approved", "d:pending"]);
    expect(registry.reads.slice(2)).toEqual(["3"]);
  });

  it("hands back the same array while nothing changed, and a new one after a change", async () => {
    const registry = new ScriptedRegistry();
    registry.write("a", "approved");
    const mirror = mirrorOf(registry);
    const first = (await mirror.sync()).records;
    expect((await mirror.sync()).records).toBe(first);
    registry.write("b", "pending");
    const changed = (await mirror.sync()).records;
    expect(changed).not.toBe(first);
    expect(changed).toHaveLength(2);
  });

  it("starts over from the beginning when the registry refuses its cursor", async () => {
    const registry = new ScriptedRegistry();
    registry.write("a", "approved");
    const mirror = mirrorOf(registry);
    await mirror.sync();
    // The registry was restored from an older copy: its log is shorter than our cursor.
    registry.log = [];
    expect(await live(mirror)).toEqual([]);
    expect(registry.reads).toEqual([null, "1", null]);
  });

  it("keeps what it read when a read fails part-way, and continues from there", async () => {
    const registry = new ScriptedRegistry();
    registry.write("a", "approved");
    const mirror = mirrorOf(registry);
    await mirror.sync();
    for (const peer of ["b", "c", "d"]) registry.write(peer, "approved");
    const page = await registry.readPage("1");
    registry.reads = [];
    registry.script = [page, new Error("connection reset")];
    await expect(mirror.sync()).rejects.toThrow("connection reset");
    expect(await live(mirror)).toEqual(["a:approved", "b:approved", "c:approved", "d:approved"]);
    expect(registry.reads).toEqual(["1", "3", "3"]);
  });

  it("returns the whole list when the registry answers without a cursor, and drops its copy", async () => {
    const registry = new ScriptedRegistry();
    registry.write("a", "approved");
    const mirror = mirrorOf(registry);
    await mirror.sync();
    registry.script = [{ peers: [record("x", "approved")], nextCursor: null, hasMore: false }];
    expect(await mirror.sync()).toEqual({ byChange: false, records: [record("x", "approved")] });
    // No copy left: the next read is from the start.
    await mirror.sync();
    expect(registry.reads.at(-1)).toBeNull();
  });

  it("fails instead of looping when the registry says more follows but its cursor does not move", async () => {
    const registry = new ScriptedRegistry();
    registry.script = [
      { peers: [record("a", "approved")], nextCursor: "5", hasMore: true },
      { peers: [], nextCursor: "5", hasMore: true },
    ];
    await expect(mirrorOf(registry).sync()).rejects.toThrow(
      /more trust changes follow cursor 5 but gave none/,
    );
  });

  it("drops its copy when it would pass its bound, so memory stays bounded", async () => {
    const registry = new ScriptedRegistry();
    for (const peer of ["a", "b", "c"]) registry.write(peer, "approved");
    await expect(mirrorOf(registry, 2).sync()).rejects.toThrow(/more than 2 live trust records/);
  });
});

describe("trust mirror watched by the registry (relay inbox trust_after)", () => {
  function watchedMirror(registry: ScriptedRegistry, clock: { t: number }, moved: string[] = []) {
    return createTrustMirror({
      readPage: (after) => registry.readPage(after),
      now: () => clock.t,
      resyncMs: 600_000,
      maxRecords: 100,
      confirmedForMs: 40_000,
      onCursor: () => moved.push("moved"),
    });
  }

  it("answers from its copy while the registry's word covers its cursor, and reads once it lapses", async () => {
    const registry = new ScriptedRegistry();
    registry.write("a", "approved");
    const clock = { t: 0 };
    const moved: string[] = [];
    const mirror = watchedMirror(registry, clock, moved);
    await mirror.sync();
    expect(moved).toEqual(["moved"]);
    const reads = registry.reads.length;
    mirror.confirm(mirror.cursor()!, false, clock.t);
    clock.t = 39_000;
    await mirror.sync();
    expect(registry.reads.length).toBe(reads);
    clock.t = 41_000;
    await mirror.sync();
    expect(registry.reads.length).toBe(reads + 1);
  });

  it("counts a long-poll in flight as the registry's word only once the registry has answered for trust", async () => {
    const registry = new ScriptedRegistry();
    registry.write("a", "approved");
    const clock = { t: 0 };
    const mirror = watchedMirror(registry, clock);
    await mirror.sync();
    const cursor = mirror.cursor()!;
    mirror.watch(cursor);
    await mirror.sync();
    expect(registry.reads).toHaveLength(2); // never answered for trust: reads
    mirror.confirm(cursor, false, clock.t);
    mirror.watch(cursor);
    clock.t = 100_000; // the answer lapsed, the long-poll in flight stands
    await mirror.sync();
    expect(registry.reads).toHaveLength(2);
    // A registry that no longer answers for trust (replaced): its long-polls stand for nothing.
    mirror.confirm(cursor, undefined, clock.t);
    mirror.watch(cursor);
    await mirror.sync();
    expect(registry.reads).toHaveLength(3);
  });

  it("reads at once after the registry says trust changed, and moves its cursor", async () => {
    const registry = new ScriptedRegistry();
    registry.write("a", "approved");
    const clock = { t: 0 };
    const moved: string[] = [];
    const mirror = watchedMirror(registry, clock, moved);
    await mirror.sync();
    const cursor = mirror.cursor()!;
    mirror.confirm(cursor, false, clock.t);
    registry.write("b", "pending");
    mirror.confirm(cursor, true, clock.t);
    expect(await live(mirror)).toEqual(["a:approved", "b:pending"]);
    expect(mirror.cursor()).not.toBe(cursor);
    expect(moved).toEqual(["moved", "moved"]);
  });

  it("still reads from the start when a resync is due", async () => {
    const registry = new ScriptedRegistry();
    registry.write("a", "approved");
    const clock = { t: 0 };
    const mirror = watchedMirror(registry, clock);
    await mirror.sync();
    mirror.confirm(mirror.cursor()!, false, 0);
    mirror.watch(mirror.cursor());
    const reads = registry.reads.length;
    clock.t = 600_001;
    await mirror.sync();
    expect(registry.reads.slice(reads)).toEqual([null]);
  });
});
