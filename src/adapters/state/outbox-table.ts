// The outbox's rows in the account database: one row per outgoing message, written before the transport sees it
// and updated at each step (sent, delivered, refused, failed). Messages still on their way (queued, sent) are
// also kept in memory, so the outbox loop and status never read the disk; finished ones are read only to list
// them, and the oldest beyond `keepFinished` are pruned.
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { z } from "zod";

/**
 * - `queued`: written, not yet accepted by the transport (or waiting for a retry after a failure).
 * - `sent`: the transport accepted it; waiting for the peer's receipt (resent with the same id if none comes).
 * - `delivered`: the peer's plugin put it into the peer agent's session (its receipt said so).
 * - `refused`: the peer's plugin refused it (its receipt said why).
 * - `failed`: it will not be sent (the reason says why: the peer is not trusted, the message is invalid, ...).
 */
export type OutboxState = "queued" | "sent" | "delivered" | "refused" | "failed";
export const OUTBOX_STATES: readonly OutboxState[] = ["queued", "sent", "delivered", "refused", "failed"];
export const ACTIVE_STATES: readonly OutboxState[] = ["queued", "sent"];

/** Who wrote it: the agent_network tool, an operator (`agent-registry.send`), the agent replying to a peer. */
export type OutboxOrigin = "contact" | "send" | "reply";

export interface OutboxEntry {
  /** The envelope id: the same on every resend, so the receiver's dedupe makes resends safe. */
  id: string;
  /** The peer's hostname, as addressed. */
  peer: string;
  body: string;
  replyTo: string | null;
  origin: OutboxOrigin;
  /** The OpenClaw session that wrote it (told once when it stays undelivered), when known. */
  sessionKey: string | null;
  state: OutboxState;
  /** Times the transport was asked to send it (first send and resends). */
  attempts: number;
  createdAt: number;
  updatedAt: number;
  /** When the outbox loop acts on it next (a retry, or the end of the receipt window); null: nothing to do. */
  nextAt: number | null;
  /** Why it is still queued, or why it failed or was refused. */
  reason: string | null;
  /** The writing session was told it is still undelivered. */
  notified: boolean;
}

const entrySchema = z.object({
  id: z.string().min(1).max(128),
  peer: z.string().min(1),
  body: z.string(),
  reply_to: z.string().nullable(),
  origin: z.enum(["contact", "send", "reply"]),
  session_key: z.string().nullable(),
  state: z.enum(["queued", "sent", "delivered", "refused", "failed"]),
  attempts: z.number().int().nonnegative(),
  created_at: z.number(),
  updated_at: z.number(),
  next_at: z.number().nullable(),
  reason: z.string().nullable(),
  notified: z.number().int(),
});

/** The table (migration 2 of the account database). */
export const OUTBOX_MIGRATION = `CREATE TABLE outbox (
     id TEXT PRIMARY KEY,
     peer TEXT NOT NULL,
     body TEXT NOT NULL,
     reply_to TEXT,
     origin TEXT NOT NULL,
     session_key TEXT,
     state TEXT NOT NULL,
     attempts INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     next_at INTEGER,
     reason TEXT,
     notified INTEGER NOT NULL
   );
   CREATE INDEX outbox_by_state ON outbox (state, updated_at);`;

export interface OutboxTable {
  /** Messages still on their way (queued, sent), oldest first; held in memory. */
  active(): readonly OutboxEntry[];
  get(id: string): OutboxEntry | null;
  /** Inserts or replaces the row (one small transaction). */
  put(entry: OutboxEntry): void;
  /** The most recent finished messages (delivered, refused, failed), newest first; to one peer when given. */
  finished(limit: number, peer?: string): OutboxEntry[];
  /** Messages by state, all of them (finished ones counted since the last prune). */
  counts(): Record<OutboxState, number>;
}

export function createOutboxTable(
  db: DatabaseSync,
  write: (fn: () => void) => void,
  options: { keepFinished?: number; onInvalid?: (ids: string[]) => void } = {},
): OutboxTable {
  const keepFinished = options.keepFinished ?? 1_000;
  const stmt = {
    selectActive: db.prepare(
      "SELECT * FROM outbox WHERE state IN ('queued', 'sent') ORDER BY created_at, rowid",
    ),
    selectOne: db.prepare("SELECT * FROM outbox WHERE id = ?"),
    upsert: db.prepare(
      `INSERT INTO outbox (id, peer, body, reply_to, origin, session_key, state, attempts, created_at, updated_at,
         next_at, reason, notified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET state = excluded.state, attempts = excluded.attempts,
         updated_at = excluded.updated_at, next_at = excluded.next_at, reason = excluded.reason,
         notified = excluded.notified`,
    ),
    selectFinished: db.prepare(
      "SELECT * FROM outbox WHERE state IN ('delivered', 'refused', 'failed') ORDER BY updated_at DESC, rowid DESC LIMIT ?",
    ),
    selectFinishedFor: db.prepare(
      `SELECT * FROM outbox WHERE state IN ('delivered', 'refused', 'failed') AND peer = ? COLLATE NOCASE
       ORDER BY updated_at DESC, rowid DESC LIMIT ?`,
    ),
    countFinished: db.prepare(
      "SELECT state, COUNT(*) AS n FROM outbox WHERE state IN ('delivered', 'refused', 'failed') GROUP BY state",
    ),
    pruneFinished: db.prepare(
      `DELETE FROM outbox WHERE rowid IN (SELECT rowid FROM outbox WHERE state IN ('delivered', 'refused', 'failed')
         ORDER BY updated_at DESC, rowid DESC LIMIT -1 OFFSET ?)`,
    ),
  } satisfies Record<string, StatementSync>;

  const toEntry = (row: Record<string, unknown>): OutboxEntry | null => {
    const parsed = entrySchema.safeParse(row);
    if (!parsed.success) return null;
    const r = parsed.data;
    return {
      id: r.id,
      peer: r.peer,
      body: r.body,
      replyTo: r.reply_to,
      origin: r.origin,
      sessionKey: r.session_key,
      state: r.state,
      attempts: r.attempts,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      nextAt: r.next_at,
      reason: r.reason,
      notified: r.notified !== 0,
    };
  };

  const active = new Map<string, OutboxEntry>();
  const invalid: string[] = [];
  for (const row of stmt.selectActive.all()) {
    const entry = toEntry(row);
    if (entry) active.set(entry.id, entry);
    else invalid.push(String(row.id));
  }
  if (invalid.length > 0) options.onInvalid?.(invalid);
  const finishedCounts: Record<OutboxState, number> = {
    queued: 0,
    sent: 0,
    delivered: 0,
    refused: 0,
    failed: 0,
  };
  const recount = () => {
    for (const state of ["delivered", "refused", "failed"] as const) finishedCounts[state] = 0;
    for (const row of stmt.countFinished.all()) {
      finishedCounts[row.state as OutboxState] = Number(row.n);
    }
  };
  write(() => stmt.pruneFinished.run(keepFinished));
  recount();
  let sincePrune = 0;

  return {
    active: () => [...active.values()],
    get(id) {
      const held = active.get(id);
      if (held) return { ...held };
      const row = stmt.selectOne.get(id);
      return row ? toEntry(row) : null;
    },
    put(entry) {
      const before = active.get(entry.id)?.state;
      write(() =>
        stmt.upsert.run(
          entry.id,
          entry.peer,
          entry.body,
          entry.replyTo,
          entry.origin,
          entry.sessionKey,
          entry.state,
          entry.attempts,
          entry.createdAt,
          entry.updatedAt,
          entry.nextAt,
          entry.reason,
          entry.notified ? 1 : 0,
        ),
      );
      if (entry.state === "queued" || entry.state === "sent") {
        active.set(entry.id, { ...entry });
        return;
      }
      active.delete(entry.id);
      // A message finishes once (a late second receipt finds it finished and is not written again).
      if (before !== undefined) finishedCounts[entry.state] += 1;
      if (++sincePrune >= 100) {
        sincePrune = 0;
        write(() => stmt.pruneFinished.run(keepFinished));
        recount();
      }
    },
    finished: (limit, peer) =>
      (peer === undefined ? stmt.selectFinished.all(limit) : stmt.selectFinishedFor.all(peer, limit))
        .map(toEntry)
        .filter((entry): entry is OutboxEntry => entry !== null),
    counts() {
      const counts = { ...finishedCounts };
      for (const entry of active.values()) counts[entry.state] += 1;
      return counts;
    },
  };
}
