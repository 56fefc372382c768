// Sends receipts (see envelope.ts) without ever holding the inbox: the pipeline hands one over and goes on; a few
// go out at a time, and a flood of them is bounded (the oldest waiting one is dropped: its sender resends the
// message, and the resent copy is answered again). A receipt that fails is not retried for the same reason.
import { createReceipt, type Receipt } from "../adapters/transport/envelope.js";
import type { PeerRef, Transport } from "../adapters/transport/transport.js";
import type { Log } from "../log.js";

const CONCURRENCY = 2;
const MAX_WAITING = 1_000;

export interface ReceiptSender {
  send(to: PeerRef, receipt: Receipt): void;
  /** Receipts sent and lost (failed or dropped), since start. */
  counters(): { sent: number; failed: number; dropped: number };
}

export function createReceiptSender(options: {
  hostname: string;
  transport: () => Transport | null;
  log: Pick<Log, "debug">;
}): ReceiptSender {
  const waiting: Array<{ to: PeerRef; receipt: Receipt }> = [];
  const counts = { sent: 0, failed: 0, dropped: 0 };
  let running = 0;

  const pump = () => {
    while (running < CONCURRENCY && waiting.length > 0) {
      const next = waiting.shift()!;
      const transport = options.transport();
      if (!transport) {
        counts.failed += 1;
        continue;
      }
      running += 1;
      transport
        .send(next.to, createReceipt({ fromHostname: options.hostname, receipt: next.receipt }))
        .then(
          () => {
            counts.sent += 1;
          },
          (error: unknown) => {
            counts.failed += 1;
            options.log.debug?.(`receipt for ${next.receipt.for} not sent: ${(error as Error).message}`);
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
      waiting.push({ to, receipt });
      if (waiting.length > MAX_WAITING) {
        waiting.shift();
        counts.dropped += 1;
      }
      pump();
    },
    counters: () => ({ ...counts }),
  };
}
