// Pilot inbox: turns inbox files into inbound-pipeline calls, one cycle at a time. A cycle is one pass over the
// inbox directory, files oldest first, one file at a time; the pipeline's outcome decides the file's fate:
// done (dispatched, duplicate, refused) -> delete; retry -> keep; dead-lettered or malformed -> dead-letter folder.
// The poll machine (src/machines/poll.machine.ts) runs the cycles: on a wake-up from the directory watcher (started
// by `watch()`), on its poll interval, and again shortly when files were kept for a retry. No loop, no timers here.
import { unlinkSync } from "node:fs";
import { basename } from "node:path";
import type { Log } from "../../log.js";
import type { BackoffPolicy } from "../../machines/backoff.js";
import { idleSummary, type PollSummary, type RunCycleInput } from "../../machines/poll.machine.js";
import type { InboundOutcome, InboundSink, RawInbound } from "../transport/transport.js";
import {
  DEFAULT_PARTIAL_GRACE_MS,
  type InboxFile,
  inboxDir,
  listInboxFilesSync,
  moveToDeadLetter,
  readInboxFileSync,
  watchInbox,
} from "./inbox.js";

export type ReceiverLog = Pick<Log, "info" | "warn" | "debug">;

export interface PilotInboxOptions {
  /** HOME shared with the account's daemon (the inbox is `<home>/.pilot/inbox`). */
  home: string;
  /** Overrides the inbox directory (tests, unusual layouts). */
  inbox?: string;
  sink: InboundSink;
  log?: ReceiverLog;
  /** How long a file that does not parse is treated as still being written. */
  graceMs?: number;
  now?: () => number;
}

/**
 * Retry backoff for the Pilot inbox's poll machine: files kept for a retry (half-written, or the pipeline asked)
 * are looked at again after a second, every second; a wake-up runs a cycle sooner.
 */
export const PILOT_RETRY_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 1_000, factor: 1 };

export interface ScanSummary {
  /** Files looked at (a file kept for a retry and seen again counts again). */
  files: number;
  dispatched: number;
  duplicates: number;
  /** Receipts for our own messages (to the outbox, never to a session). */
  receipts: number;
  refused: number;
  /** Kept for a later scan: a half-written file or a failed dispatch. */
  retried: number;
  deadLettered: number;
  /** Files that never became a valid inbox message (moved to the dead-letter folder). */
  malformed: number;
  /** Files that vanished before we read them (evicted, moved by another tool). */
  gone: number;
  /** Files whose handling failed unexpectedly (logged; retried on the next scan). */
  errors: number;
  passes: number;
  durationMs: number;
}

export interface PilotInbox {
  readonly inbox: string;
  /**
   * One pass over the inbox directory. Asks for `next: "retry"` when files were kept for a retry, else `idle`.
   * An abort stops the pass after the file in hand.
   */
  runCycle(input: RunCycleInput, signal: AbortSignal): Promise<PollSummary>;
  /** Starts the directory watcher: `onWake` on inbox changes other than our own deletions. Returns its stop. */
  watch(onWake: () => void): () => void;
  /** Everything this inbox did since it started (for status and benches). */
  totals(): ScanSummary;
  /** Stops the watchers and waits for the file in hand to finish (abort the cycle first through its signal). */
  close(): Promise<void>;
}

export function emptyScanSummary(): ScanSummary {
  return {
    files: 0,
    dispatched: 0,
    duplicates: 0,
    receipts: 0,
    refused: 0,
    retried: 0,
    deadLettered: 0,
    malformed: 0,
    gone: 0,
    errors: 0,
    passes: 0,
    durationMs: 0,
  };
}

function receivedAtMs(file: InboxFile, fallback: number): number {
  const at = file.receivedAt;
  if (typeof at === "number") return at < 1e12 ? at * 1000 : at;
  if (typeof at === "string") {
    const parsed = Date.parse(at);
    if (Number.isFinite(parsed)) return parsed;
  }
  return fallback;
}

export function toRawInbound(file: InboxFile, fallbackReceivedAt: number): RawInbound {
  return {
    transport: "pilot",
    ref: file.path,
    name: file.name,
    data: file.data,
    // Inbox files carry an address only: the node id (all 32 bits) is the peer's identity.
    from: { hostname: null, nodeId: file.fromNodeId, installationId: null },
    receivedAt: receivedAtMs(file, fallbackReceivedAt),
  };
}

// ---------- synchronous file access ----------
// The hot path (list, read, delete) uses synchronous calls on purpose: each is a few microseconds on a local disk,
// while the promise versions cost a thread-pool round trip each (about 7 per file), which made a 10,000-file
// backlog 3-4x slower on a busy 2-core host. The scan yields to the event loop every YIELD_EVERY files so the
// gateway stays responsive. Reads use inbox.ts's synchronous `listInboxFilesSync`/`readInboxFileSync`.

const YIELD_EVERY = 64;

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === "ENOENT";
}

function deleteNow(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    // Already gone (moved by another tool): the message is done either way.
    if (!isMissing(err)) throw err;
  }
}

export function createPilotInbox(options: PilotInboxOptions): PilotInbox {
  const dir = options.inbox ?? inboxDir(options.home);
  const log = options.log;
  const now = options.now ?? Date.now;
  const graceMs = options.graceMs ?? DEFAULT_PARTIAL_GRACE_MS;
  let closed = false;
  let inFlight: Promise<unknown> | undefined;
  const watchers = new Set<() => void>();
  /** Watches lost since they were armed (the inbox directory was replaced): armed again at the next cycle. */
  const rearms = new Set<() => void>();
  const totals = emptyScanSummary();
  // Names we just deleted or moved: the watcher reports those too, and they need no cycle.
  const handledNames = new Set<string>();
  const markHandled = (path: string) => {
    if (handledNames.size >= 1_000) handledNames.clear();
    handledNames.add(basename(path));
  };

  async function handle(path: string, summary: ScanSummary): Promise<boolean> {
    const read = readInboxFileSync(path, { graceMs, now });
    if ("gone" in read) {
      summary.gone++;
      return false;
    }
    if ("retry" in read) {
      summary.retried++;
      return true;
    }
    if ("malformed" in read) {
      log?.warn(
        `pilot inbox: ${path} is not a valid message (${read.malformed}); moved to the dead-letter folder`,
      );
      await moveToDeadLetter(path, `malformed: ${read.malformed}`);
      markHandled(path);
      summary.malformed++;
      return false;
    }
    let outcome: InboundOutcome;
    try {
      outcome = await options.sink.process(toRawInbound(read.ok, now()));
    } catch (err) {
      // A bug or an unexpected failure in the pipeline: keep the file, it is tried again on a later cycle.
      log?.warn(`pilot inbox: processing ${read.ok.name} failed: ${(err as Error).message}; will retry`);
      summary.errors++;
      return true;
    }
    switch (outcome) {
      case "dispatched":
        summary.dispatched++;
        deleteNow(path);
        markHandled(path);
        return false;
      case "duplicate":
        summary.duplicates++;
        deleteNow(path);
        markHandled(path);
        return false;
      case "receipt":
        summary.receipts++;
        deleteNow(path);
        markHandled(path);
        return false;
      case "refused":
        summary.refused++;
        deleteNow(path);
        markHandled(path);
        return false;
      case "retry":
        summary.retried++;
        return true;
      case "dead-lettered":
        summary.deadLettered++;
        await moveToDeadLetter(path, "dispatch failed too many times");
        markHandled(path);
        return false;
    }
  }

  /** One pass; true when a file was kept for a retry. */
  async function pass(summary: ScanSummary, signal: AbortSignal): Promise<boolean> {
    let keep = false;
    const entries = listInboxFilesSync(dir);
    summary.passes++;
    let sinceYield = 0;
    for (const entry of entries) {
      if (closed || signal.aborted) break;
      if (++sinceYield >= YIELD_EVERY) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      summary.files++;
      // Just created and not written yet (the daemon opens, then writes): its next write event wakes us again.
      if (entry.size === 0 && now() - entry.mtimeMs < graceMs) {
        summary.retried++;
        keep = true;
        continue;
      }
      try {
        if (await handle(entry.path, summary)) keep = true;
      } catch (err) {
        // One bad file (permissions, a full disk while dead-lettering) must not stop the others.
        summary.errors++;
        keep = true;
        log?.warn(`pilot inbox: could not handle ${entry.name}: ${(err as Error).message}; will retry`);
      }
    }
    return keep;
  }

  async function cycle(input: RunCycleInput, signal: AbortSignal): Promise<PollSummary> {
    const started = performance.now();
    const summary = emptyScanSummary();
    let keep = false;
    try {
      keep = await pass(summary, signal);
    } finally {
      summary.durationMs = performance.now() - started;
      for (const k of Object.keys(totals) as Array<keyof ScanSummary>) totals[k] += summary[k];
    }
    if (summary.files > 0) {
      log?.debug?.(
        `pilot inbox: scan of ${summary.files} file(s): ${summary.dispatched} dispatched, ${summary.duplicates} duplicate, ${summary.refused} refused, ${summary.retried} kept, ${summary.deadLettered + summary.malformed} dead-lettered`,
      );
    }
    return {
      trigger: input.trigger,
      dispatched: summary.dispatched,
      refused: summary.refused,
      deferred: summary.retried + summary.errors,
      peers: null,
      next: keep ? "retry" : "idle",
    };
  }

  return {
    inbox: dir,
    runCycle(input, signal) {
      if (closed) {
        return Promise.resolve(idleSummary(input.trigger));
      }
      for (const rearm of rearms) rearm();
      const run = cycle(input, signal).finally(() => {
        inFlight = undefined;
      });
      inFlight = run;
      return run;
    },
    watch(onWake) {
      const watcher = watchInbox(dir, (fileName) => {
        if (fileName !== undefined && handledNames.delete(fileName)) return;
        onWake();
      });
      const stop = () => {
        watchers.delete(stop);
        rearms.delete(watcher.rearm);
        watcher.close();
      };
      rearms.add(watcher.rearm);
      watchers.add(stop);
      return stop;
    },
    totals: () => ({ ...totals }),
    async close() {
      closed = true;
      for (const stop of [...watchers]) stop();
      await inFlight?.catch(() => {
        // The cycle's failure was reported to the poll machine; closing only waits for the file in hand.
      });
    },
  };
}
