// Sends receipts (see envelope.ts) without ever holding the inbox: the pipeline hands one over and goes on. A few
// envelopes go out at a time; receipts for one peer that wait meanwhile leave together, up to MAX_RECEIPTS in one
// envelope, so a burst of messages is answered in a few sends, not one per message (a relay sender's rate limit
// counts every send). A flood is bounded: past MAX_WAITING the oldest waiting receipt is dropped (its sender
// resends the message, and the copy is answered again). A failed send is not retried for the same reason.
import { peerId } from "../adapters/inbound/pipeline.js";
import { createReceipts, MAX_RECEIPTS, type Receipt } from "../adapters/transport/envelope.js";
import type { PeerRef, Transport } from "../adapters/transport/transport.js";
import type { Log } from "../log.js";

const CONCURRENCY = 2;
const MAX_WAITING = 1_000;

export interface ReceiptSender {
  send(to: PeerRef, receipt: Receipt): void;
  /** Receipt envelopes sent, receipts in them, and receipts lost (failed or dropped), since start. */
  counters(): { envelopes: number; sent: number; failed: number; dropped: number };
}

export function createReceiptSender(options: {
  hostname: string;
  transport: () => Transport | null;
  log: Pick<Log, "debug">;
}): ReceiptSender {
  /** Insertion order is the order batches leave in. */
  const waiting = new Map<string, { to: PeerRef; receipts: Receipt[] }>();
  const counts = { envelopes: 0, sent: 0, failed: 0, dropped: 0 };
  let queued = 0;
  let running = 0;

  const pump = () => {
    while (running < CONCURRENCY && waiting.size > 0) {
      const [key, batch] = waiting.entries().next().value as [string, { to: PeerRef; receipts: Receipt[] }];
      const receipts = batch.receipts.splice(0, MAX_RECEIPTS);
      if (batch.receipts.length === 0) waiting.delete(key);
      queued -= receipts.length;
      const transport = options.transport();
      if (!transport) {
        counts.failed += receipts.length;
        continue;
      }
      running += 1;
      transport
        .send(batch.to, createReceipts({ fromHostname: options.hostname, receipts }))
        .then(
          () => {
            counts.envelopes += 1;
            counts.sent += receipts.length;
          },
          (error: unknown) => {
            counts.failed += receipts.length;
            options.log.debug?.(`${receipts.length} receipt(s) not sent: ${(error as Error).message}`);
          },
        )
        .finally(() => {
          running -= 1;
          pump();
        });
    }
  };

  return {
    send(to, receipt) {
      const key = peerId(to);
      const batch = waiting.get(key);
      if (batch) batch.receipts.push(receipt);
      else waiting.set(key, { to, receipts: [receipt] });
      queued += 1;
      if (queued > MAX_WAITING) {
        const [oldestKey, oldest] = waiting.entries().next().value as [string, { receipts: Receipt[] }];
        oldest.receipts.shift();
        if (oldest.receipts.length === 0) waiting.delete(oldestKey);
        queued -= 1;
        counts.dropped += 1;
      }
      pump();
    },
    counters: () => ({ ...counts }),
  };
}
