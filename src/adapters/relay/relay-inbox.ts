// Inbound side of the registry relay, one cycle at a time: a cycle is one (long-poll) read of this installation's
// relay inbox, each message handed to the inbound pipeline (an `InboundSink`) one at a time, then the acks. The
// poll machine (src/machines/poll.machine.ts) runs the cycles and owns every wait between them; this adapter has
// no loop and no timers. A message is acked only after a final outcome, so the registry keeps anything not yet
// safely dispatched, and the cursor is persisted only once its messages are acked; a crash re-reads instead of
// losing (the pipeline's dedupe makes that exactly-once). Registry outages and restarts: the cycle fails, the
// machine backs off, the next cycle resumes from the acked cursor; never skip. A message the client cannot read
// (not a string body, oversize, malformed) is dead-lettered by id, acked and counted, and one without an id is
// skipped by its cursor: content never stalls the inbox.
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Log } from "../../log.js";
import type { BackoffPolicy } from "../../machines/backoff.js";
import { idleSummary, type PollSummary, type RunCycleInput } from "../../machines/poll.machine.js";
import { type PlainError, toPlainError } from "../../machines/types.js";
import type { RegistryClient } from "../registry/client.js";
import { RegistryError } from "../registry/errors.js";
import type { CallOptions, InboxPage, UnreadableReason, UnreadableRelayMessage } from "../registry/types.js";
import type { InboundOutcome, InboundSink, RawInbound } from "../transport/transport.js";
import type { TrustWatch } from "./trust-mirror.js";

/** Where the relay read position survives restarts. */
export interface RelayCursorStore {
  load(): Promise<string | null> | string | null;
  save(cursor: string | null): Promise<void> | void;
}

/** An in-memory cursor (tests; the account keeps its cursor in its database, see AccountDb.cursor). */
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

export type RelayLog = Pick<Log, "warn" | "debug">;

export interface RelayInboxOptions {
  client: RegistryClient;
  installationId: string;
  /** How logs name this inbox (the account id): the installation id is a secret and never logged. */
  label?: string;
  /** Read on every call: re-registration replaces the token. */
  agentToken?: () => string | null;
  sink: InboundSink;
  cursorStore: RelayCursorStore;
  log?: RelayLog;
  /** Messages per read (default 100). */
  batchLimit?: number;
  /** Local copies of dead-lettered messages go here (one JSON file each); null keeps none. */
  deadLetterDir?: string | null;
  /**
   * An empty answer faster than this is not a real long-poll (a registry without `wait` support): the cycle asks
   * the poll machine to pause for the rest, so such a registry is polled at this pace instead of in a tight loop.
   * Here rather than in the machine because only the cycle measures the answer.
   */
  minEmptyPollMs?: number;
  /**
   * A read from the start of the inbox at least this often (default 5 min), see RunCycleInput.rescan. Checked
   * against the clock at the start of each cycle (cycles follow each other at once while the registry answers),
   * not with a timer.
   */
  rescanIntervalMs?: number;
  /**
   * The trust list's copy, for the registry to watch: each read names its cursor (`trustAfter`), the answer says
   * whether trust changed since (the long-poll ends at once when it does), and `onTrustChanged` is told.
   */
  trustWatch?: TrustWatch;
  onTrustChanged?: () => void;
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
    | "received"
    | "dispatched"
    | "duplicate"
    | "receipt"
    | "refused"
    | "retry"
    | "deadLettered"
    | "unreadable"
    | "skipped",
    number
  >;
  /** Unreadable messages per reason, since start. */
  unreadable: Record<UnreadableReason, number>;
  /** The latest unreadable messages (at most 20), newest last, for the inbox report. */
  recentUnreadable: Array<{ ref: string | null; from: string | null; reason: string; at: number }>;
}

/** One relay inbox, read one cycle at a time by the poll machine (which owns every wait between cycles). */
export interface RelayInbox {
  /**
   * One inbox read (from the acked cursor, or from the start with `input.rescan`, long-polling `input.wait`
   * seconds), each message through the sink one at a time, then the acks. Rejects with a PlainError when the
   * registry failed (read or ack) or a dead-letter copy could not be kept; the next cycle re-reads from the acked
   * cursor. An abort stops the read at once, or the page after the message in hand (whose ack is still sent).
   */
  runCycle(input: RunCycleInput, signal: AbortSignal): Promise<PollSummary>;
  /**
   * The trust list was read past the cursor the long-poll in flight watches (or it watches none): that read is
   * ended and the next cycle follows at once with the new cursor, so the registry watches the current one.
   */
  trustMoved(): void;
  status(): RelayReceiverStatus;
  /** Marks the inbox stopped and waits for the cycle in flight (abort it first through its signal). */
  close(): Promise<void>;
}

export const DEFAULT_RELAY_WAIT_SECONDS = 25;
export const DEFAULT_RELAY_MIN_EMPTY_POLL_MS = 1_000;
export const DEFAULT_RELAY_RESCAN_INTERVAL_MS = 5 * 60_000;
/** The registry takes at most 1000 ids per ack. */
const ACK_MAX_IDS = 1000;
/** After an abort (the account stopping), the acks of what was already handled still get this long. */
const CLOSE_ACK_BUDGET_MS = 2_000;
/** Error backoff of the relay's poll machine (registry outage, restart, auth while re-registering). */
export const DEFAULT_RELAY_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000, factor: 2 };
/** Retry backoff of the relay's poll machine, after the sink asked to retry a message. */
export const DEFAULT_RELAY_RETRY_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 60_000, factor: 2 };

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A file name from a message id: the id comes from a peer, so it must not steer the path. */
function deadLetterName(messageId: string): string {
  const safe = messageId.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 120);
  return `relay-${Date.now()}-${safe}.json`;
}

const RECENT_UNREADABLE_MAX = 20;

type BatchResult = "done" | "retry" | "stalled" | "stopped";

/** Thrown (as a PlainError) out of a cycle: the poll machine backs off and the next cycle re-reads. */
function cycleFailure(operation: string, what: string, err: unknown): PlainError {
  const plain = toPlainError(err, operation);
  return { ...plain, operation, message: `${what}: ${plain.message}` };
}

export function createRelayInbox(options: RelayInboxOptions): RelayInbox {
  const { client, installationId, sink, cursorStore } = options;
  const label = options.label ?? "this account";
  const log: RelayLog = options.log ?? { warn: () => {} };
  const minEmptyPollMs = options.minEmptyPollMs ?? DEFAULT_RELAY_MIN_EMPTY_POLL_MS;
  const rescanIntervalMs = options.rescanIntervalMs ?? DEFAULT_RELAY_RESCAN_INTERVAL_MS;
  const batchLimit = options.batchLimit ?? 100;
  const now = options.now ?? Date.now;

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
      receipt: 0,
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
  // `status.cursor` is the last acknowledged one, the only one persisted. Acks are sent at the end of each cycle,
  // one request per page (this replaces a 200 ms coalescing timer: the loop owns no timers). Until a message is
  // acked a crash re-reads it, and the pipeline's dedupe reports it as a duplicate.
  let readCursor: string | null = null;
  /** Acks to send; `messageId` null: a message skipped by cursor (nothing to ack, only the cursor moves). */
  const pending: Array<{ messageId: string | null; cursor: string | null }> = [];
  let loaded: Promise<void> | null = null;
  let lastRescan = now();
  // Set by a failed cycle, cleared by a read from the start that returned messages. A registry that failed may
  // come back renumbered; a quick read from the start right after the failure can come before the first new
  // message, and a long-poll after our old cursor would then never see it. So reads stay from the start (a
  // long-poll from the start wakes on any new message) until the registry hands us messages again.
  let resync = false;
  /** The trust cursor a change was last told for (see cycle). */
  let trustTold: string | null = null;
  /** The read in flight: the trust cursor it asked the registry to watch, and how to end it early. */
  let watchingTrust: { trustAfter: string | null; restart: AbortController } | null = null;
  let inFlight: Promise<unknown> | null = null;
  let closed = false;

  function load(): Promise<void> {
    loaded ??= (async () => {
      try {
        status.cursor = (await cursorStore.load()) ?? null;
      } catch (err) {
        // An unreadable cursor must not stop delivery: reading from the start only re-sees unacked messages.
        log.warn(`relay inbox of ${label}: cursor unreadable (${describe(err)}); reading from the start`);
        status.cursor = null;
      }
      readCursor = status.cursor;
    })();
    return loaded;
  }

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

  /** Acks everything pending, in order, then persists the cursor; throws (as a PlainError) when not taken. */
  async function ackPending(ackSignal: AbortSignal | undefined): Promise<void> {
    while (pending.length > 0) {
      const batch = pending.splice(0, ACK_MAX_IDS);
      const opts: CallOptions = { token: options.agentToken?.() ?? null };
      if (ackSignal) opts.signal = ackSignal;
      const messageIds = batch.flatMap((p) => (p.messageId === null ? [] : [p.messageId]));
      try {
        if (messageIds.length > 0) await client.ack({ installationId, messageIds }, opts);
      } catch (err) {
        // Not acked: the next cycle reads again from the acked cursor and the pipeline reports each message as a
        // duplicate, which is acked then. Nothing is lost.
        pending.length = 0;
        readCursor = status.cursor;
        resync = true;
        const what = `acknowledging ${batch.length} message(s)`;
        failed(what, err);
        throw cycleFailure("relay.ack", what, err);
      }
      await persist(batch.findLast((p) => p.cursor !== null)?.cursor ?? null);
    }
  }

  /**
   * A message the client could not read: with an id it is dead-lettered, acked and counted; without one it is
   * skipped by its cursor (or the page's next cursor when it ends the page), logged and counted.
   */
  async function giveUpUnreadable(
    bad: UnreadableRelayMessage,
    pageNextCursor: string | null,
    last: boolean,
  ): Promise<PlainError | null> {
    const from = bad.fromHostname ?? bad.fromInstallationId;
    if (bad.messageId !== null) {
      try {
        await keepDeadLetter(bad.messageId, {
          unreadable: { reason: bad.reason, detail: bad.detail },
          message: bad.raw,
        });
      } catch (err) {
        // Without the local copy an ack would lose the message: keep it on the registry and try again.
        const what = `keeping a dead-letter copy of unreadable message ${bad.messageId}`;
        failed(what, err);
        return cycleFailure("relay.deadLetter", what, err);
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
    return null;
  }

  interface BatchOutcome {
    result: BatchResult;
    /** Set when result is "stalled". */
    error?: PlainError;
    dispatched: number;
    refused: number;
  }

  async function processBatch(page: InboxPage, signal: AbortSignal): Promise<BatchOutcome> {
    const outcome: BatchOutcome = { result: "done", dispatched: 0, refused: 0 };
    const total = page.messages.length + page.unreadable.length;
    const unreadableAt = new Map(page.unreadable.map((u) => [u.position, u]));
    let nextReadable = 0;
    for (let position = 0; position < total; position++) {
      if (signal.aborted) return { ...outcome, result: "stopped" };
      status.state = "processing";
      status.counts.received += 1;
      status.lastMessageAt = now();
      const bad = unreadableAt.get(position);
      if (bad) {
        const error = await giveUpUnreadable(bad, page.nextCursor, position === total - 1);
        if (error) return { ...outcome, result: "stalled", error };
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
      let result: InboundOutcome;
      try {
        result = await sink.process(raw);
      } catch (err) {
        // The pipeline owns failures; one that throws anyway gets the safe answer: keep the message, try later.
        log.warn(`relay message ${message.messageId}: inbound pipeline threw (${describe(err)}); will retry`);
        result = "retry";
      }
      log.debug?.(`relay message ${message.messageId}: ${result}`);
      // Counted as the pipeline reported them (an outcome whose ack fails is seen again, as a duplicate).
      if (result === "dispatched") {
        status.counts.dispatched += 1;
        outcome.dispatched += 1;
      } else if (result === "duplicate") status.counts.duplicate += 1;
      else if (result === "receipt") status.counts.receipt += 1;
      else if (result === "refused") {
        status.counts.refused += 1;
        outcome.refused += 1;
      } else if (result === "dead-lettered") status.counts.deadLettered += 1;
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
        // Never skip: later messages wait behind this one until it has a final outcome.
        return { ...outcome, result: "retry" };
      }
      if (status.retrying?.messageId === message.messageId) status.retrying = null;
      if (result === "dead-lettered") {
        try {
          await keepDeadLetter(message.messageId, { message });
        } catch (err) {
          // Without the local copy an ack would lose the message: keep it on the registry and try again.
          const what = `keeping a dead-letter copy of ${message.messageId}`;
          failed(what, err);
          return { ...outcome, result: "stalled", error: cycleFailure("relay.deadLetter", what, err) };
        }
      }
      pending.push({ messageId: message.messageId, cursor: message.cursor });
      if (message.cursor !== null) readCursor = message.cursor;
    }
    return outcome;
  }

  async function cycle(input: RunCycleInput, signal: AbortSignal): Promise<PollSummary> {
    await load();
    const summary: PollSummary = {
      trigger: input.trigger,
      dispatched: 0,
      refused: 0,
      deferred: 0,
      peers: null,
      next: "again",
    };
    if (signal.aborted) return { ...summary, next: "idle" };
    // A registry restored from an older copy or an empty database numbers messages below our cursor, and reads
    // after the cursor would never see them. So some reads start from the beginning: when the machine asks (after
    // a failure, after an early empty answer), after a failure until messages come again (see `resync`), and
    // every `rescanIntervalMs`. Acked messages are deleted, so such a
    // read only re-sees unacked ones, which the pipeline dedupes.
    const fromStart = input.rescan || resync || now() - lastRescan >= rescanIntervalMs;
    status.state = "polling";
    const started = now();
    // A change already told for this cursor is not asked about again until the trust list is read past it: the
    // registry would answer at once every time.
    const trustCursor = options.trustWatch?.cursor() ?? null;
    const trustAfter = trustCursor !== null && trustCursor !== trustTold ? trustCursor : null;
    // Ended early (not failed) when the trust list moves past trustAfter: see trustMoved.
    const restart = new AbortController();
    const watching = { trustAfter, restart };
    watchingTrust = watching;
    options.trustWatch?.watch(trustAfter);
    let page: InboxPage;
    try {
      page = await client.readInbox(
        {
          installationId,
          after: fromStart ? null : readCursor,
          wait: input.wait,
          limit: batchLimit,
          ...(trustAfter === null ? {} : { trustAfter }),
        },
        { token: options.agentToken?.() ?? null, signal: AbortSignal.any([signal, restart.signal]) },
      );
    } catch (err) {
      if (watchingTrust === watching) {
        watchingTrust = null;
        options.trustWatch?.watch(null);
      }
      if (signal.aborted) return { ...summary, next: "idle" };
      if (restart.signal.aborted) return summary;
      failed("reading the inbox", err);
      resync = true;
      if (err instanceof RegistryError && (err.kind === "unauthorized" || err.kind === "forbidden")) {
        log.warn(
          `relay inbox of ${label}: the registry refused our agent token; it is refreshed when the account re-registers`,
        );
      }
      throw cycleFailure("relay.readInbox", "reading the inbox", err);
    }
    if (watchingTrust === watching) {
      watchingTrust = null;
      options.trustWatch?.watch(null);
    }
    if (fromStart) {
      lastRescan = now();
      if (page.messages.length > 0 || page.unreadable.length > 0) resync = false;
    }
    status.consecutiveFailures = 0;
    status.lastError = null;
    const trustChanged = trustAfter !== null && page.trustChanged === true;
    if (trustAfter !== null) {
      options.trustWatch?.confirm(trustAfter, page.trustChanged, now());
      if (trustChanged) {
        trustTold = trustAfter;
        options.onTrustChanged?.();
      }
    }
    if (page.messages.length === 0 && page.unreadable.length === 0) {
      // Ended early by a trust change: a real answer, not a registry that ignores `wait`.
      if (trustChanged) return summary;
      const elapsed = now() - started;
      if (input.wait > 0 && elapsed < minEmptyPollMs)
        return { ...summary, next: "pause", pauseMs: minEmptyPollMs - elapsed };
      return summary;
    }
    const cursorBefore = readCursor;
    const batch = await processBatch(page, signal);
    // Acks of everything with a final outcome, even when stopping (briefly then: what stays unacked is re-read
    // and deduped after a restart).
    await ackPending(signal.aborted ? AbortSignal.timeout(CLOSE_ACK_BUDGET_MS) : undefined);
    summary.dispatched = batch.dispatched;
    summary.refused = batch.refused;
    if (batch.result === "stalled") throw batch.error;
    if (batch.result === "stopped") return { ...summary, next: "idle" };
    if (batch.result === "retry") return { ...summary, deferred: 1, next: "retry" };
    if (
      page.messages.length === 0 &&
      page.unreadable.every((u) => u.messageId === null) &&
      readCursor === cursorBefore
    ) {
      // Only messages without id or cursor (a registry that gives neither): nothing to ack and no way past them,
      // so the next read would return the same page at once. Poll at the empty pace instead of spinning.
      return { ...summary, next: "pause", pauseMs: minEmptyPollMs };
    }
    return summary;
  }

  return {
    runCycle(input, signal) {
      if (closed) return Promise.resolve(idleSummary(input.trigger));
      const run = cycle(input, signal).finally(() => {
        inFlight = null;
        if (closed) status.state = "stopped";
        else if (status.consecutiveFailures > 0 || status.retrying) status.state = "backoff";
        else status.state = "polling";
      });
      inFlight = run;
      return run;
    },
    trustMoved() {
      const cursor = options.trustWatch?.cursor() ?? null;
      if (watchingTrust && cursor !== null && watchingTrust.trustAfter !== cursor) {
        watchingTrust.restart.abort();
      }
    },
    status: () => structuredClone(status),
    async close() {
      closed = true;
      await inFlight?.catch(() => {
        // The cycle's failure was reported to the poll machine (and logged); closing only waits for it.
      });
      status.state = "stopped";
    },
  };
}
