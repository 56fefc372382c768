// Long-poll wake-ups: a watch taken before an inbox read keeps a wake-up that comes while the read is under way
// (a database round trip with PostgreSQL), and wake keys let another replica's notification reach the inbox.
import { describe, expect, it } from "vitest";
import { InboxWaiters } from "../../src/registry-server/inbox-waiters.js";
import { peerIdOf } from "../../src/registry-server/peer-id.js";

const elapsed = async (work: Promise<void>) => {
  const started = performance.now();
  await work;
  return performance.now() - started;
};

describe("inbox waiters", () => {
  it("returns at once from a wait when a message came between the watch and the wait", async () => {
    const waiters = new InboxWaiters();
    const watch = waiters.watch("inst-bob");
    waiters.notify("inst-bob"); // stored while the long-poll was reading its (still empty) page
    expect(await elapsed(watch.wait(5000))).toBeLessThan(1000);
    // The wake-up was consumed: the next wait parks until its time runs out.
    expect(await elapsed(watch.wait(50))).toBeGreaterThanOrEqual(40);
    watch.close();
    expect(waiters.size).toBe(0);
  });

  it("wakes an inbox by its peer id (another replica's notification), never by another inbox's", async () => {
    const waiters = new InboxWaiters({ wakeKeyOf: peerIdOf });
    const bob = waiters.watch("inst-bob");
    const carol = waiters.watch("inst-carol");
    const bobWoken = bob.wait(5000);
    const carolWoken = carol.wait(80);
    waiters.notifyWakeKey(peerIdOf("inst-bob"));
    waiters.notifyWakeKey("inst-bob"); // the secret itself is no wake key
    expect(await elapsed(bobWoken)).toBeLessThan(1000);
    expect(await elapsed(carolWoken)).toBeGreaterThanOrEqual(40);
    bob.close();
    carol.close();
  });

  it("wakes every parked long-poll after a resync, without refusing new ones", async () => {
    const waiters = new InboxWaiters();
    const a = waiters.wait("inst-a", 5000);
    const b = waiters.wait("inst-b", 5000);
    expect(waiters.size).toBe(2);
    waiters.wakeAll();
    await Promise.all([a, b]);
    expect(waiters.closed).toBe(false);
    expect(await elapsed(waiters.wait("inst-a", 30))).toBeGreaterThanOrEqual(20);
  });
});
