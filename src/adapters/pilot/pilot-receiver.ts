// Pilot receiver: turns inbox files into inbound-pipeline calls. A directory watcher wakes it within
// milliseconds; `scan()` (called by the poll machine's reconciliation cycle) catches anything the watcher missed.
// One scan at a time, files oldest first, one file at a time; the pipeline's outcome decides the file's fate:
// done (dispatched, duplicate, refused) -> delete; retry -> keep; dead-lettered or malformed -> dead-letter folder.
import { unlinkSync } from "node:fs";
import { basename } from "node:path";
import type { InboundOutcome, InboundSink, RawInbound } from "../transport/transport.js";
import {
  DEFAULT_PARTIAL_GRACE_MS,
  type InboxFile,
  type InboxWatcher,
  inboxDir,
  listInboxFilesSync,
  moveToDeadLetter,
  readInboxFileSync,
  watchInbox,
} from "./inbox.js";

export interface ReceiverLog {
  info(message: string): void;
  warn(message: string): void;
  debug?(message: string): void;
}

export interface PilotReceiverOptions {
  /** HOME shared with the account's daemon (the inbox is `<home>/.pilot/inbox`). */
  home: string;
  /** Overrides the inbox directory (tests, unusual layouts). */
  inbox?: string;
  sink: InboundSink;
  log?: ReceiverLog;
  /** Called on inbox file events other than our own deletions (e.g. to tell the poll machine INBOX.WAKE). */
  onWake?: (fileName?: string) => void;
  /** Scan on file events by itself (default true). When false only `wake()`/`scan()` trigger scans. */
  watch?: boolean;
  /** How long a file that does not parse is treated as still being written. */
  graceMs?: number;
  /** When files were kept for a retry, scan again after this long. Default 1 s. */
  retryScanMs?: number;
  /** Delay that coalesces the several events of one file write into one scan. Default 1 ms. */
  wakeDelayMs?: number;
  /** Consecutive scans run by one `scan()` call under a steady stream of wake-ups before yielding. */
  maxPassesPerScan?: number;
  now?: () => number;
}

export interface ScanSummary {
  /** Files looked at (a file kept for a retry and seen again counts again). */
  files: number;
  dispatched: number;
  duplicates: number;
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

export interface PilotReceiver {
  readonly inbox: string;
  /** Schedules a scan soon (a wake during a scan runs exactly one more scan after it). */
  wake(): void;
  /** Runs a scan (or joins the one in flight, which then runs once more) and resolves with what it did. */
  scan(): Promise<ScanSummary>;
  /** Everything this receiver did since it started (for status and benches). */
  totals(): ScanSummary;
  /** Stops the watcher and timers; waits for the file in hand to finish. */
  close(): Promise<void>;
}

function emptySummary(): ScanSummary {
  return {
    files: 0,
    dispatched: 0,
    duplicates: 0,
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

export function startPilotReceiver(options: PilotReceiverOptions): PilotReceiver {
  const dir = options.inbox ?? inboxDir(options.home);
  const log = options.log;
  const now = options.now ?? Date.now;
  const graceMs = options.graceMs ?? DEFAULT_PARTIAL_GRACE_MS;
  const retryScanMs = options.retryScanMs ?? 1_000;
  const wakeDelayMs = options.wakeDelayMs ?? 1;
  const maxPasses = Math.max(1, options.maxPassesPerScan ?? 100);
  let closed = false;
  let again = false;
  let inFlight: Promise<ScanSummary> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let wakeScheduled = false;
  const totals = emptySummary();
  let passesStarted = 0;
  // Names we just deleted or moved: the watcher reports those too, and they need no scan.
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
      // A bug or an unexpected failure in the pipeline: keep the file, it is tried again on a later scan.
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

  async function pass(summary: ScanSummary): Promise<boolean> {
    let keep = false;
    const entries = listInboxFilesSync(dir);
    summary.passes++;
    passesStarted++;
    let sinceYield = 0;
    for (const entry of entries) {
      if (closed) break;
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

  function scheduleRetryScan(): void {
    if (closed || retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      wake();
    }, retryScanMs);
    retryTimer.unref?.();
  }

  async function loop(): Promise<ScanSummary> {
    const started = performance.now();
    const summary = emptySummary();
    let keep = false;
    try {
      for (let i = 0; i < maxPasses && again && !closed; i++) {
        again = false;
        keep = (await pass(summary)) || keep;
      }
    } finally {
      summary.durationMs = performance.now() - started;
    }
    for (const k of Object.keys(totals) as Array<keyof ScanSummary>) totals[k] += summary[k];
    if (keep) scheduleRetryScan();
    if (summary.files > 0) {
      log?.debug?.(
        `pilot inbox: scan of ${summary.files} file(s): ${summary.dispatched} dispatched, ${summary.duplicates} duplicate, ${summary.refused} refused, ${summary.retried} kept, ${summary.deadLettered + summary.malformed} dead-lettered`,
      );
    }
    return summary;
  }

  function startLoop(): Promise<ScanSummary> {
    if (!inFlight) {
      inFlight = loop().finally(() => {
        inFlight = undefined;
        // Wake-ups kept arriving past maxPasses: carry on in a fresh turn of the event loop.
        if (again && !closed) wake();
      });
    }
    return inFlight;
  }

  async function scan(): Promise<ScanSummary> {
    const requestedAt = passesStarted;
    again = true;
    // The loop in flight may have checked `again` just before we set it: then run one of our own. Bounded: the
    // second loop necessarily starts a pass after our request.
    for (let attempt = 0; attempt < 3; attempt++) {
      if (closed) return emptySummary();
      const summary = await startLoop();
      if (passesStarted > requestedAt) return summary;
      again = true;
    }
    return emptySummary();
  }

  function wake(): void {
    if (closed) return;
    if (inFlight) {
      again = true;
      return;
    }
    if (wakeScheduled) return;
    // Coalesce the burst of events one file write produces (create, change, change) into one scan.
    wakeScheduled = true;
    setTimeout(() => {
      wakeScheduled = false;
      scan().catch((err: unknown) => {
        log?.warn(`pilot inbox: scan failed: ${(err as Error).message}; the next wake-up or poll retries`);
      });
    }, wakeDelayMs);
  }

  const autoScan = options.watch ?? true;
  let watcher: InboxWatcher | undefined;
  watcher = watchInbox(dir, (fileName) => {
    if (fileName !== undefined && handledNames.delete(fileName)) return;
    options.onWake?.(fileName);
    if (autoScan) wake();
  });

  return {
    inbox: dir,
    wake,
    scan,
    totals: () => ({ ...totals }),
    async close() {
      closed = true;
      watcher?.close();
      watcher = undefined;
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = undefined;
      await inFlight?.catch(() => {
        // Already logged by whoever awaited the scan; closing only waits for the file in hand.
      });
    },
  };
}
