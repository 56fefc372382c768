// The receipt sender with a transport whose sends the test releases by hand: it never holds the caller, sends a
// few envelopes at a time, gathers what waits for one peer into one envelope (up to 100), and bounds a flood.
import { describe, expect, it } from "vitest";
import { type Envelope, MAX_RECEIPTS } from "../../src/adapters/transport/envelope.js";
import type { PeerRef, Transport } from "../../src/adapters/transport/transport.js";
import { createReceiptSender } from "../../src/runtime/receipt-sender.js";

const bob: PeerRef = { hostname: "bob", nodeId: 2, installationId: null };
const carol: PeerRef = { hostname: "carol", nodeId: 3, installationId: null };

function heldTransport() {
  const calls: Array<{ to: PeerRef; envelope: Envelope; release: () => void }> = [];
  const transport = {
    kind: "pilot",
    send: (to: PeerRef, envelope: Envelope) =>
      new Promise<{ messageId: string }>((resolve) => {
        calls.push({ to, envelope, release: () => resolve({ messageId: envelope.id }) });
      }),
  } as unknown as Transport;
  return { transport, calls };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe("receipt sender", () => {
  it("gathers the receipts that wait for one peer into one envelope", async () => {
    const { transport, calls } = heldTransport();
    const sender = createReceiptSender({ hostname: "alice", transport: () => transport, log: {} });
    for (let i = 0; i < 5; i++) sender.send(bob, { for: `b${i}`, status: "delivered" });
    sender.send(carol, { for: "c0", status: "refused", reason: "too_large" });
    // Two in flight at once, each went as it came; the rest wait.
    const sent = () => calls.map((c) => [c.to.hostname, c.envelope.receipts?.map((r) => r.for)]);
    expect(sent()).toEqual([
      ["bob", ["b0"]],
      ["bob", ["b1"]],
    ]);
    expect(calls[0]?.envelope).toMatchObject({ from_hostname: "alice", body: "" });
    expect(calls[0]?.envelope.ack).toBeUndefined();
    // As one finishes, what waited for bob leaves in one envelope, then carol's.
    calls[0]?.release();
    await flush();
    expect(sent()[2]).toEqual(["bob", ["b2", "b3", "b4"]]);
    calls[1]?.release();
    await flush();
    expect(calls[3]?.envelope.receipts).toEqual([{ for: "c0", status: "refused", reason: "too_large" }]);
    for (const call of calls.slice(2)) call.release();
    await flush();
    expect(sender.counters()).toEqual({ envelopes: 4, sent: 6, failed: 0, dropped: 0 });
  });

  it("puts at most MAX_RECEIPTS in an envelope and drops the oldest beyond its bound", async () => {
    const { transport, calls } = heldTransport();
    const sender = createReceiptSender({ hostname: "alice", transport: () => transport, log: {} });
    for (let i = 0; i < 1_100; i++) sender.send(bob, { for: `m${i}`, status: "delivered" });
    // m0 and m1 left at once, each alone; 1,000 wait; the oldest 98 of the rest were dropped.
    expect(sender.counters().dropped).toBe(98);
    for (let round = 0; round < 20 && calls.some((c) => c.release); round++) {
      for (const call of calls.splice(0)) {
        expect(call.envelope.receipts!.length).toBeLessThanOrEqual(MAX_RECEIPTS);
        call.release();
      }
      await flush();
    }
    expect(sender.counters()).toMatchObject({ sent: 1_100 - 98, dropped: 98 });
  });
});
