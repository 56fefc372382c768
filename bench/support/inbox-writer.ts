// A stand-in for the Pilot daemon in benches: a separate process that writes inbox files at a steady pace,
// non-atomically (open, write half, write rest, close) as the daemon does. Each payload is our envelope whose
// body is the write time on the monotonic clock shared by all processes (process.hrtime), so the reader can
// compute file-write-to-dispatch latency. Argument: one JSON object (see WriterJob); reports "done" over IPC.
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { formatAddress } from "../../src/adapters/pilot/pilotctl.js";
import {
  createEnvelope,
  type Envelope,
  encodeEnvelope,
  signEnvelope,
} from "../../src/adapters/transport/envelope.js";
import { type Identity, loadOrCreateIdentity } from "../../src/identity/keys.js";

export interface WriterJob {
  dir: string;
  count: number;
  intervalMs: number;
  /** Envelope ids are `<prefix>-<i>`. */
  prefix: string;
  /** Senders cycle through node ids 1..peers. */
  peers: number;
  /**
   * Sign each envelope as its sender for the recipient key `to`; sender n's key is kept in `<keysDir>/peer-<n>`
   * (the reader made the keys and pinned them).
   */
  signed?: { keysDir: string; to: string };
}

/** The key of sender `n` (1-based) below `keysDir`, made on first use. */
export function senderKey(keysDir: string, n: number): Identity {
  return loadOrCreateIdentity(join(keysDir, `peer-${n}`));
}

function envelopeOf(job: Pick<WriterJob, "prefix" | "peers">, i: number, sentAtNs: bigint): Envelope {
  return createEnvelope({
    fromHostname: `peer-${(i % job.peers) + 1}`,
    body: String(sentAtNs),
    id: `${job.prefix}-${i}`,
  });
}

export function inboxFileJson(job: Pick<WriterJob, "prefix" | "peers">, i: number, sentAtNs: bigint): string {
  return inboxFileOf(job, i, envelopeOf(job, i, sentAtNs));
}

function inboxFileOf(job: Pick<WriterJob, "peers">, i: number, envelope: Envelope): string {
  const data = encodeEnvelope(envelope);
  return JSON.stringify({
    type: "TEXT",
    from: formatAddress((i % job.peers) + 1),
    data,
    bytes: Buffer.byteLength(data),
    received_at: new Date().toISOString(),
  });
}

export function writeInboxFileNonAtomic(dir: string, name: string, content: string): void {
  const buf = Buffer.from(content);
  const fd = openSync(join(dir, name), "w");
  const half = Math.floor(buf.length / 2);
  writeSync(fd, buf, 0, half);
  writeSync(fd, buf, half, buf.length - half);
  closeSync(fd);
}

export function inboxFileName(i: number): string {
  return `TEXT-${Date.now()}-${String(i).padStart(6, "0")}.json`;
}

async function main(job: WriterJob): Promise<void> {
  mkdirSync(job.dir, { recursive: true });
  const signed = job.signed;
  const keys = signed ? Array.from({ length: job.peers }, (_, n) => senderKey(signed.keysDir, n + 1)) : [];
  const start = performance.now();
  for (let i = 0; i < job.count; i++) {
    const due = start + i * job.intervalMs;
    const wait = due - performance.now();
    if (wait > 0.5) await new Promise((resolve) => setTimeout(resolve, wait));
    // The clock starts before signing: the latency includes the sender's signature and the reader's check.
    const sentAt = process.hrtime.bigint();
    const content = job.signed
      ? inboxFileOf(
          job,
          i,
          await signEnvelope(envelopeOf(job, i, sentAt), keys[i % job.peers]!, job.signed.to),
        )
      : inboxFileJson(job, i, sentAt);
    writeInboxFileNonAtomic(job.dir, inboxFileName(i), content);
  }
  process.send?.({ done: job.count, elapsedMs: performance.now() - start });
}

if (process.argv[2]) {
  main(JSON.parse(process.argv[2]) as WriterJob).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
