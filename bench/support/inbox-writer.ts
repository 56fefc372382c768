// A stand-in for the Pilot daemon in benches: a separate process that writes inbox files at a steady pace,
// non-atomically (open, write half, write rest, close) as the daemon does. Each payload is our envelope whose
// body is the write time on the monotonic clock shared by all processes (process.hrtime), so the reader can
// compute file-write-to-dispatch latency. Argument: one JSON object (see WriterJob); reports "done" over IPC.
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { formatAddress } from "../../src/adapters/pilot/pilotctl.js";
import { createEnvelope, encodeEnvelope } from "../../src/adapters/transport/envelope.js";

export interface WriterJob {
  dir: string;
  count: number;
  intervalMs: number;
  /** Envelope ids are `<prefix>-<i>`. */
  prefix: string;
  /** Senders cycle through node ids 1..peers. */
  peers: number;
}

export function inboxFileJson(job: Pick<WriterJob, "prefix" | "peers">, i: number, sentAtNs: bigint): string {
  const data = encodeEnvelope(
    createEnvelope({
      fromHostname: `peer-${(i % job.peers) + 1}`,
      body: String(sentAtNs),
      id: `${job.prefix}-${i}`,
    }),
  );
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
  const start = performance.now();
  for (let i = 0; i < job.count; i++) {
    const due = start + i * job.intervalMs;
    const wait = due - performance.now();
    if (wait > 0.5) await new Promise((resolve) => setTimeout(resolve, wait));
    writeInboxFileNonAtomic(job.dir, inboxFileName(i), inboxFileJson(job, i, process.hrtime.bigint()));
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
