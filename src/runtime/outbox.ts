// The account's outbox: every outgoing message (the tool's contact, an operator's send, the agent's replies) is
// written to the account database before the transport sees it, then followed until the peer's receipt says it
// reached the peer's session (or was refused). A message the transport could not take stays queued and is
// retried with backoff; a sent message without a receipt is resent with the same id (the receiver's dedupe makes
// that safe) a few times, then left `sent` (the peer may run a plugin without receipts). The writing session is
// told once when a message is still undelivered after `notifyAfterMs`.
//
// No timers here: the outbox loop (a poll machine, child "outbox" of the account root) runs `runCycle`, which
// does what is due and says when the next thing is due (`next: "later"`).

import type { OutboxEntry, OutboxOrigin, OutboxState, OutboxTable } from "../adapters/state/outbox-table.js";
import { createEnvelope, type Receipt } from "../adapters/transport/envelope.js";
import { type PeerRef, type Transport, TransportError } from "../adapters/transport/transport.js";
import type { Log } from "../log.js";
import { type BackoffPolicy, baseDelay } from "../machines/backoff.js";
import { idleSummary, type PollSummary, type RunCycleInput } from "../machines/poll.machine.js";
import { NetworkError, toNetworkError } from "./account-network.js";

export interface OutboxPolicy {
  /** Undelivered messages (queued or sent) per peer. */
  maxPerPeer: number;
  /** Undelivered messages in all. */
  maxTotal: number;
  /** How long a sent message waits for its receipt before it is resent (doubling per resend). */
  receiptTimeoutMs: number;
  /** Resends of a sent message without a receipt; after them it stays `sent`. */
  maxResends: number;
  /** Between attempts of a message the transport did not take. */
  retryBackoff: BackoffPolicy;
  /** A queued message older than this fails (the peer never became reachable). */
  expireAfterMs: number;
  /** The writing session is told once when a message is still undelivered after this long. */
  notifyAfterMs: number;
}

export const OUTBOX_DEFAULTS: OutboxPolicy = {
  maxPerPeer: 100,
  maxTotal: 1_000,
  receiptTimeoutMs: 120_000,
  maxResends: 4,
  retryBackoff: { initialMs: 5_000, maxMs: 600_000, factor: 2 },
  expireAfterMs: 7 * 24 * 3_600_000,
  notifyAfterMs: 600_000,
};

/** Transport failures a retry cannot fix: the message fails at once. */
const PERMANENT = new Set<TransportError["code"]>(["not_trusted", "invalid", "rejected"]);
/** Most messages one cycle works on (the rest: the next cycle, at once). */
const CYCLE_LIMIT = 32;
/** Sends in flight at once within a cycle (one per peer at a time). */
const CYCLE_CONCURRENCY = 4;

export interface OutboxOptions {
  table: OutboxTable;
  /** This account's hostname (the envelopes' `from_hostname`). */
  hostname: string;
  /** The transport once usable; null while it starts (the message waits, queued). */
  transport: () => Transport | null;
  /** Why the transport is not usable, for a queued message's reason. */
  unavailableReason: () => string | null;
  /** The peer's reference for the transport; throws NetworkError when it is not a trusted peer. */
  resolve: (hostname: string) => Promise<PeerRef>;
  /**
   * Whether this account trusts the peer (its handshake says so). A transport's "not trusted" is final only for
   * a peer we do not trust either: old pilotctl builds say it for an offline peer too, and a broken pair says it
   * until it is repaired. A peer we stop trusting fails its messages at their next attempt.
   */
  isTrusted: (hostname: string) => boolean;
  /** Tells a session once that its message is still undelivered. */
  notify?: (entry: OutboxEntry, text: string) => void;
  /** Wakes the outbox loop (new work or an earlier due time). */
  wake?: () => void;
  log: Pick<Log, "info" | "warn" | "debug">;
  policy?: Partial<OutboxPolicy>;
  now?: () => number;
}

export interface OutboxSubmission {
  peer: string;
  body: string;
  replyTo?: string | null;
  origin: OutboxOrigin;
  sessionKey?: string | null;
}

/** What the caller of a send learns: the message id and where it stands. */
export interface OutboxReceiptView {
  messageId: string;
  state: OutboxState;
  reason: string | null;
}

export interface OutboxView {
  id: string;
  peer: string;
  state: OutboxState;
  origin: OutboxOrigin;
  attempts: number;
  createdAt: string;
  updatedAt: string;
  nextAttemptAt: string | null;
  reason: string | null;
  /** The first 200 characters. */
  preview: string;
}

export interface Outbox {
  /** Writes the message, then tries the transport once; failures a retry can fix leave it queued. */
  submit(message: OutboxSubmission): Promise<OutboxReceiptView>;
  /** The outbox loop's cycle. */
  runCycle(input: RunCycleInput): Promise<PollSummary>;
  /** A receipt from `from` (the verified sender's hostname); false when it matches none of ours. */
  onReceipt(receipt: Receipt, from: string): boolean;
  /** Undelivered messages (queued, sent), oldest first, then the latest finished ones when asked. */
  list(options?: { peer?: string; finished?: number }): OutboxView[];
  get(id: string): OutboxView | null;
  counts(): Record<OutboxState, number>;
  /**
   * The transport is back (a daemon restarted, a registry answers again): queued messages are due now instead of
   * at the end of their backoff. Wakes the loop.
   */
  retryNow(): void;
  /** Resolves when the message is delivered, refused or failed (tests and the delivery benchmark). */
  settled(id: string): Promise<OutboxView>;
}

export function toOutboxView(entry: OutboxEntry): OutboxView {
  return {
    id: entry.id,
    peer: entry.peer,
    state: entry.state,
    origin: entry.origin,
    attempts: entry.attempts,
    createdAt: new Date(entry.createdAt).toISOString(),
    updatedAt: new Date(entry.updatedAt).toISOString(),
    nextAttemptAt: entry.nextAt === null ? null : new Date(entry.nextAt).toISOString(),
    reason: entry.reason,
    preview: entry.body.length > 200 ? `${entry.body.slice(0, 200)}...` : entry.body,
  };
}

const FINAL: ReadonlySet<OutboxState> = new Set(["delivered", "refused", "failed"]);

export function createOutbox(options: OutboxOptions): Outbox {
  const { table, log } = options;
  const policy: OutboxPolicy = { ...OUTBOX_DEFAULTS, ...options.policy };
  const now = options.now ?? Date.now;
  /** Messages with a send in flight: the loop and a submit never send one twice at once. */
  const inFlight = new Set<string>();
  const waiters = new Map<string, Array<(view: OutboxView) => void>>();

  const save = (entry: OutboxEntry) => {
    table.put(entry);
    if (FINAL.has(entry.state)) {
      const view = toOutboxView(entry);
      for (const resolve of waiters.get(entry.id) ?? []) resolve(view);
      waiters.delete(entry.id);
    }
  };

  const change = (entry: OutboxEntry, patch: Partial<OutboxEntry>): OutboxEntry => {
    const next = { ...entry, ...patch, updatedAt: now() };
    save(next);
    return next;
  };

  /** The entry as the table holds it now (a receipt may have finished it meanwhile). */
  const latest = (entry: OutboxEntry): OutboxEntry => table.get(entry.id) ?? entry;

  /** The end of a sent message's receipt window: doubling with each resend. */
  const receiptDue = (attempts: number) =>
    now() + policy.receiptTimeoutMs * 2 ** Math.max(0, Math.min(attempts - 1, 10));

  /** One transport attempt; returns the entry as it stands afterwards, and why it failed when it did. */
  const attempt = async (entry: OutboxEntry): Promise<{ entry: OutboxEntry; error?: NetworkError }> => {
    if (inFlight.has(entry.id)) return { entry };
    const transport = options.transport();
    if (!transport) {
      const reason = options.unavailableReason() ?? "the transport is starting";
      return { entry: change(entry, { reason, nextAt: now() + baseDelay(policy.retryBackoff, 1) }) };
    }
    inFlight.add(entry.id);
    try {
      const ref = await options.resolve(entry.peer);
      const envelope = createEnvelope({
        id: entry.id,
        fromHostname: options.hostname,
        body: entry.body,
        ack: true,
        ...(entry.replyTo ? { replyTo: entry.replyTo } : {}),
      });
      await transport.send(ref, envelope);
      // The receipt may have come while the send was on its way (a resend's first copy, a fast relay): a
      // finished message stays finished.
      const current = latest(entry);
      if (FINAL.has(current.state)) return { entry: current };
      const attempts = current.attempts + 1;
      // The first send waits one receipt window; each resend twice as long as the one before.
      const nextAt = current.state === "queued" ? receiptDue(1) : receiptDue(attempts);
      return { entry: change(current, { state: "sent", attempts, nextAt, reason: null }) };
    } catch (error) {
      const current = latest(entry);
      if (FINAL.has(current.state)) return { entry: current };
      entry = current;
      const attempts = entry.attempts + 1;
      const failure = toNetworkError(error, "send");
      const permanent =
        (error instanceof TransportError &&
          PERMANENT.has(error.code) &&
          (error.code !== "not_trusted" || !options.isTrusted(entry.peer))) ||
        (error instanceof NetworkError && error.code !== "TRANSPORT_UNAVAILABLE" && error.code !== "FAILED");
      if (permanent) {
        const failed = change(entry, { state: "failed", attempts, nextAt: null, reason: failure.message });
        return { entry: failed, error: failure };
      }
      // A resend that failed keeps its `sent` state (the first copy may still arrive) and retries later.
      const failures = entry.state === "queued" ? attempts : Math.max(1, attempts - 1);
      const retried = change(entry, {
        attempts,
        reason: failure.message,
        nextAt: now() + baseDelay(policy.retryBackoff, failures),
      });
      return { entry: retried, error: failure };
    } finally {
      inFlight.delete(entry.id);
    }
  };

  const undeliveredText = (entry: OutboxEntry) =>
    `[Agent Registry] Your message ${entry.id} to "${entry.peer}" has not reached it yet ` +
    `(${entry.state === "queued" ? "still queued" : "sent, no receipt from the peer yet"}` +
    `${entry.reason ? `: ${entry.reason}` : ""}). It is retried automatically; ` +
    `see agent_network action "outbox" for where it stands.`;

  /** What the loop does with one due message. */
  const work = async (entry: OutboxEntry): Promise<void> => {
    const t = now();
    if (entry.state === "queued" && t - entry.createdAt > policy.expireAfterMs) {
      change(entry, {
        state: "failed",
        nextAt: null,
        reason: `not sent within ${Math.round(policy.expireAfterMs / 3_600_000)} h: ${entry.reason ?? "the peer stayed unreachable"}`,
      });
      return;
    }
    if (!options.isTrusted(entry.peer)) {
      change(entry, {
        state: "failed",
        nextAt: null,
        reason: `"${entry.peer}" is no longer a trusted peer; a new handshake is needed`,
      });
      return;
    }
    if (entry.state === "sent" && entry.attempts > policy.maxResends) {
      // No receipt after every resend: an older plugin without receipts, most likely. Nothing more to do.
      change(entry, {
        nextAt: null,
        reason: "no receipt from the peer (its plugin may not send receipts)",
      });
      return;
    }
    await attempt(entry);
  };

  const notifyDue = (entry: OutboxEntry) =>
    !entry.notified && entry.sessionKey !== null && now() - entry.createdAt >= policy.notifyAfterMs;

  return {
    async submit(message) {
      const active = table.active();
      const peer = message.peer;
      const forPeer = active.filter((entry) => entry.peer.toLowerCase() === peer.toLowerCase()).length;
      if (forPeer >= policy.maxPerPeer) {
        throw new NetworkError(
          "OUTBOX_FULL",
          `The outbox holds ${forPeer} undelivered messages to "${peer}" (the limit); wait until they are delivered (agent_network action "outbox") or until "${peer}" is reachable again`,
        );
      }
      if (active.length >= policy.maxTotal) {
        throw new NetworkError(
          "OUTBOX_FULL",
          `The outbox holds ${active.length} undelivered messages (the limit); wait until some are delivered (agent_network action "outbox")`,
        );
      }
      const t = now();
      const entry: OutboxEntry = {
        id: crypto.randomUUID(),
        peer,
        body: message.body,
        replyTo: message.replyTo ?? null,
        origin: message.origin,
        sessionKey: message.sessionKey ?? null,
        state: "queued",
        attempts: 0,
        createdAt: t,
        updatedAt: t,
        nextAt: t,
        reason: null,
        notified: false,
      };
      save(entry);
      const { entry: after, error } = await attempt(entry);
      // The loop owns what happens next: the receipt window, or the retry.
      options.wake?.();
      if (after.state === "failed") {
        throw new NetworkError(error?.code ?? "FAILED", error?.message ?? `Message ${after.id} failed`, {
          cause: error,
        });
      }
      return { messageId: after.id, state: after.state, reason: after.reason };
    },

    async runCycle(input) {
      const t = now();
      const active = table.active();
      for (const entry of active) {
        if (!notifyDue(entry)) continue;
        options.notify?.(entry, undeliveredText(entry));
        change(entry, { notified: true });
      }
      const due = table
        .active()
        .filter((entry) => entry.nextAt !== null && entry.nextAt <= t && !inFlight.has(entry.id))
        .sort((a, b) => (a.nextAt ?? 0) - (b.nextAt ?? 0));
      const batch = due.slice(0, CYCLE_LIMIT);
      // One message per peer at a time, in order; a few peers at once.
      const byPeer = new Map<string, OutboxEntry[]>();
      for (const entry of batch) {
        const key = entry.peer.toLowerCase();
        byPeer.set(key, [...(byPeer.get(key) ?? []), entry]);
      }
      const lanes = [...byPeer.values()];
      const runLane = async () => {
        for (let lane = lanes.shift(); lane; lane = lanes.shift()) {
          for (const entry of lane) {
            const current = table.get(entry.id);
            if (current && !FINAL.has(current.state)) await work(current);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(CYCLE_CONCURRENCY, lanes.length) }, runLane));

      const summary = idleSummary(input.trigger);
      if (due.length > batch.length) return { ...summary, next: "again" };
      const later = table.active().flatMap((entry) => {
        const times = entry.nextAt === null ? [] : [entry.nextAt];
        if (!entry.notified && entry.sessionKey !== null) times.push(entry.createdAt + policy.notifyAfterMs);
        return times;
      });
      if (later.length === 0) return summary;
      return { ...summary, next: "later", laterMs: Math.max(0, Math.min(...later) - now()) };
    },

    onReceipt(receipt, from) {
      const entry = table.get(receipt.for);
      if (!entry) {
        log.debug?.(`outbox: receipt for unknown message ${receipt.for} from ${from}`);
        return false;
      }
      if (entry.peer.toLowerCase() !== from.toLowerCase()) {
        log.warn(
          `outbox: ${from} sent a receipt for message ${entry.id}, which went to ${entry.peer}; ignored`,
        );
        return false;
      }
      if (FINAL.has(entry.state)) return true;
      if (receipt.status === "delivered") change(entry, { state: "delivered", nextAt: null, reason: null });
      else if (receipt.reason === "stale") {
        // The copy it got was signed too long ago (it sat in an inbox): a fresh copy goes now.
        change(entry, { nextAt: now(), reason: `${entry.peer} found the copy too old; resending` });
        options.wake?.();
      } else {
        const reason = `refused by ${entry.peer}: ${receipt.reason ?? "no reason given"}`;
        change(entry, { state: "refused", nextAt: null, reason });
        log.info(`outbox: message ${entry.id} ${reason}`);
      }
      return true;
    },

    list(listOptions = {}) {
      const peer = listOptions.peer?.toLowerCase();
      const matches = (entry: OutboxEntry) => peer === undefined || entry.peer.toLowerCase() === peer;
      const active = table.active().filter(matches).map(toOutboxView);
      const finished = listOptions.finished ? table.finished(listOptions.finished, listOptions.peer) : [];
      return [...active, ...finished.map(toOutboxView)];
    },

    get(id) {
      const entry = table.get(id);
      return entry ? toOutboxView(entry) : null;
    },

    counts: () => table.counts(),

    retryNow() {
      const t = now();
      for (const entry of table.active()) {
        if (entry.state === "queued" && entry.nextAt !== null && entry.nextAt > t)
          change(entry, { nextAt: t });
      }
      options.wake?.();
    },

    settled(id) {
      const entry = table.get(id);
      if (!entry) return Promise.reject(new Error(`no outbox message ${id}`));
      if (FINAL.has(entry.state)) return Promise.resolve(toOutboxView(entry));
      return new Promise((resolve) => waiters.set(id, [...(waiters.get(id) ?? []), resolve]));
    },
  };
}
