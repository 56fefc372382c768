// Inbound side of the registry relay: a long-poll loop over this installation's relay inbox that hands each
// message to the inbound pipeline (an `InboundSink`) one at a time and acknowledges it only after a final
// outcome, so the registry keeps anything not yet safely dispatched. Acks are coalesced and the cursor is
// persisted only once its messages are acked; a crash re-reads instead of losing (the pipeline's dedupe makes
// that exactly-once). Registry outages and restarts: capped exponential backoff, resume, never skip. A message
// the client cannot read (not a string body, oversize, malformed) is dead-lettered by id, acked and counted, and
// one without an id is skipped by its cursor: content never stalls the inbox.
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { type BackoffPolicy, backoffDelay } from "../../machines/backoff.js";
import type { RegistryClient } from "../registry/client.js";
import { RegistryError } from "../registry/errors.js";
import type { CallOptions, InboxPage, UnreadableReason, UnreadableRelayMessage } from "../registry/types.js";
import { readJsonFile, writeJsonAtomic } from "../state/json-file.js";
import type { InboundOutcome, InboundSink, RawInbound } from "../transport/transport.js";

/** Where the relay read position survives restarts. */
export interface RelayCursorStore {
  load(): Promise<string | null> | string | null;
  save(cursor: string | null): Promise<void> | void;
}

const cursorFileSchema = z.object({ v: z.literal(1), cursor: z.string().nullable() });

/** The cursor as a small JSON file replaced atomically (temp file, fsync, rename). */
export function createFileCursorStore(path: string): RelayCursorStore {
  return {
    load: () => readJsonFile(path, cursorFileSchema, { v: 1, cursor: null }).cursor,
    save: (cursor) => writeJsonAtomic(path, { v: 1, cursor }),
  };
}

/** An in-memory cursor (tests, or a caller that keeps it in its own state file). */
export function createMemoryCursorStore(initial: string | null = null): RelayCursorStore & {
  readonly current: string | null;
} {
  let cursor = initial;
  return {
    load: () => cursor,
    save: (next) => {
      cursor = next;
    },
    get current() {
      return cursor;
    },
  };
}

export interface RelayLog {
  debug?: (message: string) => void;
  warn: (message: string) => void;
}

export interface RelayReceiverOptions {
  client: RegistryClient;
  installationId: string;
  /** How logs name this inbox (the account id): the installation id is a secret and never logged. */
  label?: string;
  /** Read on every call: re-registration replaces the token. */
  agentToken?: () => string | null;
  sink: InboundSink;
  cursorStore: RelayCursorStore;
  log?: RelayLog;
  /** Long-poll seconds per inbox read (0-30, default 25). */
  waitSeconds?: number;
  /** Messages per read (default 100). */
  batchLimit?: number;
  /** Local copies of dead-lettered messages go here (one JSON file each); null keeps none. */
  deadLetterDir?: string | null;
  /**
   * Acks are coalesced for this long (default 200 ms; 0 acks after every batch): each ack is a durable registry
   * write, and a message acked late is at worst re-read after a crash, which the pipeline dedupes.
   */
  ackDelayMs?: number;
  /** Ack at once when this many messages wait (default 100). */
  ackBatchSize?: number;
  /** Backoff after a failed read or ack (registry outage, restart, auth while re-registering). */
  backoff?: BackoffPolicy;
  /** Backoff after the sink asked to retry a message. */
  retryBackoff?: BackoffPolicy;
  /**
   * An empty answer faster than this is not a real long-poll (a registry without `wait` support): the next
   * read waits out the rest, so such a registry is polled at this pace instead of in a tight loop.
   */
  minEmptyPollMs?: number;
  /** A read from the start of the inbox at least this often (default 5 min), see the loop. */
  rescanIntervalMs?: number;
  now?: () => number;
}

export type RelayReceiverState = "starting" | "polling" | "processing" | "backoff" | "stopped";

/** JSON-serializable snapshot for channel status. */
export interface RelayReceiverStatus {
  state: RelayReceiverState;
  /** The persisted cursor: after the last acknowledged message. */
  cursor: string | null;
  /** Failed reads or acks in a row (0 when the registry answers). */
  consecutiveFailures: number;
  lastError: string | null;
  lastMessageAt: number | null;
  /** The message the pipeline asked to retry, holding back later ones until it has a final outcome. */
  retrying: { messageId: string; fromHostname: string | null; attempts: number; since: number } | null;
  /** Cumulative, since start. `unreadable`: messages the client could not read (dead-lettered by id, or
   * `skipped` by cursor when they had no id); they are not among the pipeline's outcomes. */
  counts: Record<
    "received" | "dispatched" | "duplicate" | "refused" | "retry" | "deadLettered" | "unreadable" | "skipped",
    number
  >;
  /** Unreadable messages per reason, since start. */
  unreadable: Record<UnreadableReason, number>;
  /** The latest unreadable messages (at most 20), newest last, for the inbox report. */
  recentUnreadable: Array<{ ref: string | null; from: string | null; reason: string; at: number }>;
}

export interface RelayReceiver {
  /** Stops the loop: the in-flight long-poll is aborted at once; a message being processed finishes first. */
  close(): Promise<void>;
  status(): RelayReceiverStatus;
}

export const DEFAULT_RELAY_WAIT_SECONDS = 25;
export const DEFAULT_RELAY_ACK_DELAY_MS = 200;
export const DEFAULT_RELAY_RESCAN_INTERVAL_MS = 5 * 60_000;
/** The registry takes at most 1000 ids per ack. */
const ACK_MAX_IDS = 1000;
const CLOSE_ACK_BUDGET_MS = 2_000;
export const DEFAULT_RELAY_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000, factor: 2 };
export const DEFAULT_RELAY_RETRY_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 60_000, factor: 2 };

/** Resolves after `ms` or at once when the signal aborts; never rejects. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A file name from a message id: the id comes from a peer, so it must not steer the path. */
function deadLetterName(messageId: string): string {
  const safe = messageId.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 120);
  return `relay-${Date.now()}-${safe}.json`;
}

const RECENT_UNREADABLE_MAX = 20;

type BatchResult = "done" | "retry" | "stalled" | "ack-failed" | "stopped";

export function startRelayReceiver(options: RelayReceiverOptions): RelayReceiver {
  const { client, installationId, sink, cursorStore } = options;
  const label = options.label ?? "this account";
  const log: RelayLog = options.log ?? { warn: () => {} };
  const waitSeconds = Math.min(30, Math.max(0, options.waitSeconds ?? DEFAULT_RELAY_WAIT_SECONDS));
  const backoff = options.backoff ?? DEFAULT_RELAY_BACKOFF;
  const retryBackoff = options.retryBackoff ?? DEFAULT_RELAY_RETRY_BACKOFF;
  const minEmptyPollMs = options.minEmptyPollMs ?? 1_000;
  const rescanIntervalMs = options.rescanIntervalMs ?? DEFAULT_RELAY_RESCAN_INTERVAL_MS;
  const ackDelayMs = options.ackDelayMs ?? DEFAULT_RELAY_ACK_DELAY_MS;
  const ackBatchSize = Math.min(ACK_MAX_IDS, Math.max(1, options.ackBatchSize ?? 100));
  const now = options.now ?? Date.now;
  const controller = new AbortController();
  const signal = controller.signal;

  const status: RelayReceiverStatus = {
    state: "starting",
    cursor: null,
    consecutiveFailures: 0,
    lastError: null,
    lastMessageAt: null,
    retrying: null,
    counts: {
      received: 0,
      dispatched: 0,
      duplicate: 0,
      refused: 0,
      retry: 0,
      deadLettered: 0,
      unreadable: 0,
      skipped: 0,
    },
    unreadable: { body_not_string: 0, too_large: 0, malformed: 0 },
    recentUnreadable: [],
  };

  function failed(what: string, err: unknown): void {
    status.consecutiveFailures += 1;
    status.lastError = `${what}: ${describe(err)}`;
    log.warn(`relay inbox of ${label}: ${what} failed (${describe(err)}); backing off`);
  }

  /** `record` is the file's content: the message, and why it was given up on when the client could not read it. */
  async function keepDeadLetter(messageId: string, record: Record<string, unknown>): Promise<void> {
    const dir = options.deadLetterDir;
    if (!dir) return;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, deadLetterName(messageId));
    const tmp = `${path}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ transport: "relay", installationId, ...record }, null, 2)}\n`, {
      mode: 0o600,
    });
    await rename(tmp, path);
  }

  // Two cursors: `readCursor` follows the last message with a final outcome (where the next read starts);
  // `status.cursor` is the last acknowledged one, the only one persisted. Acks are coalesced (one registry
  // write per `ackDelayMs` instead of one per message); until a message is acked a restart re-reads it.
  let readCursor: string | null = null;
  /** Acks to send; `messageId` null: a message skipped by cursor (nothing to ack, only the cursor moves). */
  const pending: Array<{ messageId: string | null; cursor: string | null }> = [];
  let flushing: Promise<boolean> | null = null;
  let ackTimer: ReturnType<typeof setTimeout> | null = null;
  let ackFailed = false;
  let currentRead: AbortController | null = null;

  async function persist(cursor: string | null): Promise<void> {
    if (cursor === null || cursor === status.cursor) return;
    status.cursor = cursor;
    try {
      await cursorStore.save(cursor);
    } catch (err) {
      // Safe to go on: the messages are acked, so an older cursor after a crash only re-reads later ones
      // (unacked, deduped by the pipeline).
      log.warn(`relay inbox of ${label}: could not persist the cursor (${describe(err)})`);
    }
  }

  /** Acks everything pending, in order; false when the registry did not take it (the loop then re-reads). */
  async function ackPending(ackSignal: AbortSignal | undefined): Promise<boolean> {
    while (pending.length > 0) {
      const batch = pending.splice(0, ACK_MAX_IDS);
      const opts: CallOptions = { token: options.agentToken?.() ?? null };
      if (ackSignal) opts.signal = ackSignal;
      const messageIds = batch.flatMap((p) => (p.messageId === null ? [] : [p.messageId]));
      try {
        if (messageIds.length > 0) await client.ack({ installationId, messageIds }, opts);
      } catch (err) {
        // Not acked: everything after the acked cursor is read again and the pipeline reports each as a
        // duplicate, which is acked then. Nothing is lost; the in-flight read is restarted from there.
        pending.length = 0;
        ackFailed = true;
        currentRead?.abort();
        failed(`acknowledging ${batch.length} message(s)`, err);
        return false;
      }
      await persist(batch.findLast((p) => p.cursor !== null)?.cursor ?? null);
    }
    return true;
  }

  /** One ack run at a time; a call during a run joins it (the run drains what was added meanwhile). */
  function flush(ackSignal?: AbortSignal): Promise<boolean> {
    if (ackTimer) {
      clearTimeout(ackTimer);
      ackTimer = null;
    }
    // After a failed ack the loop re-reads from the acked cursor first; acking later messages now would move
    // the persisted cursor past unacked ones.
    if (ackFailed) return Promise.resolve(false);
    if (flushing) return flushing;
    if (pending.length === 0) return Promise.resolve(true);
    // `.finally` runs asynchronously, so `flushing` is always cleared after it was set.
    const run = ackPending(ackSignal).finally(() => {
      flushing = null;
    });
    flushing = run;
    return run;
  }

  /** Acks soon (coalescing), or now when the delay is 0 or enough are waiting; false when the ack failed. */
  async function scheduleFlush(): Promise<boolean> {
    if (pending.length === 0) return true;
    // A registry that gives no cursors is read from the start every time: unacked messages would come again.
    if (ackDelayMs <= 0 || pending.length >= ackBatchSize || pending.some((p) => p.cursor === null)) {
      return flush();
    }
    ackTimer ??= setTimeout(() => {
      ackTimer = null;
      void flush();
    }, ackDelayMs);
    return true;
  }

  /**
   * A message the client could not read: with an id it is dead-lettered, acked and counted; without one it is
   * skipped by its cursor (or the page's next cursor when it ends the page), logged and counted.
   */
  async function giveUpUnreadable(
    bad: UnreadableRelayMessage,
    pageNextCursor: string | null,
    last: boolean,
  ): Promise<"done" | "stalled"> {
    const from = bad.fromHostname ?? bad.fromInstallationId;
    if (bad.messageId !== null) {
      try {
        await keepDeadLetter(bad.messageId, {
          unreadable: { reason: bad.reason, detail: bad.detail },
          message: bad.raw,
        });
      } catch (err) {
        // Without the local copy an ack would lose the message: keep it on the registry and try again.
        failed(`keeping a dead-letter copy of unreadable message ${bad.messageId}`, err);
        return "stalled";
      }
      status.counts.unreadable += 1;
      log.warn(
        `relay message ${bad.messageId}${from ? ` from ${from}` : ""} is unreadable (${bad.reason}: ${bad.detail}); dead-lettered and acknowledged`,
      );
    } else {
      status.counts.skipped += 1;
      log.warn(
        `relay inbox of ${label}: skipped a message without a usable id${from ? ` from ${from}` : ""} (${bad.reason}: ${bad.detail})`,
      );
    }
    status.unreadable[bad.reason] += 1;
    status.recentUnreadable.push({
      ref: bad.messageId,
      from,
      reason: `${bad.reason}: ${bad.detail}`,
      at: now(),
    });
    if (status.recentUnreadable.length > RECENT_UNREADABLE_MAX) status.recentUnreadable.shift();
    const cursor = bad.cursor ?? (last ? pageNextCursor : null);
    if (bad.messageId !== null || cursor !== null) pending.push({ messageId: bad.messageId, cursor });
    if (cursor !== null) readCursor = cursor;
    return "done";
  }

  async function processBatch(page: InboxPage): Promise<BatchResult> {
    const total = page.messages.length + page.unreadable.length;
    const unreadableAt = new Map(page.unreadable.map((u) => [u.position, u]));
    let nextReadable = 0;
    for (let position = 0; position < total; position++) {
      if (signal.aborted) return "stopped";
      if (ackFailed) return "ack-failed";
      status.state = "processing";
      status.counts.received += 1;
      status.lastMessageAt = now();
      const bad = unreadableAt.get(position);
      if (bad) {
        if ((await giveUpUnreadable(bad, page.nextCursor, position === total - 1)) === "stalled") {
          return "stalled";
        }
        if (pending.length >= ackBatchSize && !(await flush())) return "ack-failed";
        continue;
      }
      const message = page.messages[nextReadable++];
      if (!message) break;
      const raw: RawInbound = {
        transport: "relay",
        ref: message.messageId,
        name: message.messageId,
        data: message.body,
        from: {
          hostname: message.fromHostname,
          nodeId: null,
          installationId: message.fromInstallationId,
        },
        receivedAt: now(),
      };
      let outcome: InboundOutcome;
      try {
        outcome = await sink.process(raw);
      } catch (err) {
        // The pipeline owns failures; one that throws anyway gets the safe answer: keep the message, try later.
        log.warn(`relay message ${message.messageId}: inbound pipeline threw (${describe(err)}); will retry`);
        outcome = "retry";
      }
      log.debug?.(`relay message ${message.messageId}: ${outcome}`);
      // Counted as the pipeline reported them (an outcome whose ack fails is seen again, as a duplicate).
      if (outcome === "dispatched") status.counts.dispatched += 1;
      else if (outcome === "duplicate") status.counts.duplicate += 1;
      else if (outcome === "refused") status.counts.refused += 1;
      else if (outcome === "dead-lettered") status.counts.deadLettered += 1;
      else {
        status.counts.retry += 1;
        if (status.retrying?.messageId === message.messageId) status.retrying.attempts += 1;
        else {
          status.retrying = {
            messageId: message.messageId,
            fromHostname: message.fromHostname,
            attempts: 1,
            since: now(),
          };
        }
        return "retry";
      }
      if (status.retrying?.messageId === message.messageId) status.retrying = null;
      if (outcome === "dead-lettered") {
        try {
          await keepDeadLetter(message.messageId, { message });
        } catch (err) {
          // Without the local copy an ack would lose the message: keep it on the registry and try again.
          failed(`keeping a dead-letter copy of ${message.messageId}`, err);
          return "stalled";
        }
      }
      pending.push({ messageId: message.messageId, cursor: message.cursor });
      if (message.cursor !== null) readCursor = message.cursor;
      if (pending.length >= ackBatchSize && !(await flush())) return "ack-failed";
    }
    return "done";
  }

  async function run(): Promise<void> {
    try {
      status.cursor = (await cursorStore.load()) ?? null;
    } catch (err) {
      // An unreadable cursor must not stop delivery: reading from the start only re-sees unacked messages.
      log.warn(`relay inbox of ${label}: cursor unreadable (${describe(err)}); reading from the start`);
      status.cursor = null;
    }
    readCursor = status.cursor;
    let retryAttempt = 0;
    // A registry restored from an older copy or an empty database numbers messages below our cursor, and
    // reads after the cursor would never see them. So some reads start from the beginning instead: after a
    // failure, after an early empty answer (how a restarting registry ends long-polls) and every
    // `rescanIntervalMs`. Acked messages are deleted, so such a read only re-sees unacked ones (pending acks
    // are flushed first; whatever remains is deduped by the pipeline).
    let rescan = false;
    let lastRescan = now();
    // After a failure the first read does not wait, so status shows the recovery without a long-poll's delay.
    let quick = false;
    let emptyPause = 0;

    while (!signal.aborted) {
      if (ackFailed) {
        ackFailed = false;
        pending.length = 0;
        readCursor = status.cursor;
        rescan = true;
        quick = true;
        status.state = "backoff";
        await sleep(backoffDelay(backoff, Math.max(1, status.consecutiveFailures), installationId), signal);
        continue;
      }
      if (emptyPause > 0) {
        await sleep(emptyPause, signal);
        emptyPause = 0;
        continue;
      }
      if (now() - lastRescan >= rescanIntervalMs) rescan = true;
      if (rescan && pending.length > 0 && !(await flush())) continue;
      status.state = "polling";
      const started = now();
      const fromStart = rescan;
      const wait = quick ? 0 : waitSeconds;
      const read = new AbortController();
      currentRead = read;
      let page: InboxPage;
      try {
        page = await client.readInbox(
          {
            installationId,
            after: fromStart ? null : readCursor,
            wait,
            limit: options.batchLimit ?? 100,
          },
          { token: options.agentToken?.() ?? null, signal: AbortSignal.any([signal, read.signal]) },
        );
      } catch (err) {
        if (signal.aborted) break;
        if (ackFailed) continue;
        failed("reading the inbox", err);
        if (err instanceof RegistryError && (err.kind === "unauthorized" || err.kind === "forbidden")) {
          log.warn(
            `relay inbox of ${label}: the registry refused our agent token; it is refreshed when the account re-registers`,
          );
        }
        rescan = true;
        quick = true;
        status.state = "backoff";
        await sleep(backoffDelay(backoff, status.consecutiveFailures, installationId), signal);
        continue;
      } finally {
        currentRead = null;
      }
      if (ackFailed) continue;
      if (fromStart) {
        rescan = false;
        lastRescan = now();
      }
      quick = false;
      status.consecutiveFailures = 0;
      status.lastError = null;
      if (page.messages.length === 0 && page.unreadable.length === 0) {
        const elapsed = now() - started;
        if (wait > 0 && elapsed < minEmptyPollMs) {
          emptyPause = minEmptyPollMs - elapsed;
          rescan = true;
        }
        continue;
      }
      const cursorBefore = readCursor;
      const result = await processBatch(page);
      if (result === "stopped") break;
      if (
        result === "done" &&
        page.messages.length === 0 &&
        page.unreadable.every((u) => u.messageId === null) &&
        readCursor === cursorBefore
      ) {
        // Only messages without id or cursor (a registry that gives neither): nothing to ack and no way past
        // them, so the next read would return the same page at once. Poll at the empty pace instead of spinning.
        emptyPause = minEmptyPollMs;
      }
      if (result === "ack-failed" || !(await scheduleFlush())) continue;
      if (result === "done") {
        retryAttempt = 0;
        continue;
      }
      status.state = "backoff";
      if (result === "retry") {
        retryAttempt += 1;
        await sleep(backoffDelay(retryBackoff, retryAttempt, installationId), signal);
      } else {
        await sleep(backoffDelay(backoff, Math.max(1, status.consecutiveFailures), installationId), signal);
      }
    }
    // Last acks before stopping, briefly: what stays unacked is re-read (and deduped) after a restart.
    if (pending.length > 0 || flushing) {
      if (flushing) await flushing;
      if (pending.length > 0) await flush(AbortSignal.timeout(CLOSE_ACK_BUDGET_MS));
    }
    status.state = "stopped";
  }

  const loop = run().catch((err: unknown) => {
    // A bug, not an outage (those are handled in the loop): report it in status rather than crash the gateway.
    status.state = "stopped";
    status.lastError = `relay receiver stopped: ${describe(err)}`;
    log.warn(`relay inbox of ${label}: receiver stopped on an unexpected error (${describe(err)})`);
  });

  return {
    async close() {
      controller.abort();
      await loop;
    },
    status: () => structuredClone(status),
  };
}
