// A copy of one installation's trust records kept in step with the registry by change: the first read (and one
// every `resyncMs`, or when the registry cannot continue from our cursor) pages through the whole list; the
// reads between ask only for what changed after the cursor, so an idle account costs one request a poll however
// many peers it has. Concurrent callers share one read. Registries that do not read by change get the whole
// list every time, as before.
import { RegistryError } from "../registry/errors.js";
import type { TrustChangesPage, TrustPeer } from "../registry/types.js";

/** The caller's trust records as of the last read. */
export interface TrustSnapshot {
  /** False: the registry does not read by change, and `records` is its whole list (as it sent it). */
  byChange: boolean;
  records: TrustPeer[];
}

export interface TrustMirrorOptions {
  /** One page of the caller's changes after `after` (from the start when null). */
  readPage(after: string | null): Promise<TrustChangesPage>;
  now(): number;
  /** A read from the start at least this often (picks up peers' new hostnames, repairs any drift). */
  resyncMs: number;
  /** Records kept at most; more is an error (memory stays bounded whatever the registry sends). */
  maxRecords: number;
  /**
   * How long the registry's "nothing changed" stands (default 0: never, every sync reads). The relay inbox's
   * long-poll follows each answer at once and ends on any change, so its word holds a little longer than a wait.
   */
  confirmedForMs?: number;
  /** Called when the copy's cursor moved (a first read, a read of changes that found some). */
  onCursor?: () => void;
}

export interface TrustMirror {
  /** Reads what changed (or everything, when due) and returns the records; one read at a time, shared. */
  sync(): Promise<TrustSnapshot>;
  /** The copy's cursor, or null while there is no copy (nothing for the registry to watch). */
  cursor(): string | null;
  /**
   * The registry's word on the copy's cursor (from the relay inbox, see InboxQuery.trustAfter): nothing changed as
   * of `at`, or something did. While a recent "nothing" stands for the current cursor, sync() answers from the copy
   * without a request; "changed" makes the next sync read; undefined (the registry did not answer for trust, e.g.
   * it was replaced by one that cannot) ends the registry's word until it answers again.
   */
  confirm(cursor: string, changed: boolean | undefined, at: number): void;
  /**
   * A relay inbox long-poll watching `cursor` is in flight (null: none is). Once the registry has shown it answers
   * for trust, such a long-poll stands for its word: it would end at once on a change.
   */
  watch(cursor: string | null): void;
}

/** What the relay inbox needs of the mirror to let the registry watch its cursor (see TrustMirror.confirm). */
export type TrustWatch = Pick<TrustMirror, "cursor" | "confirm" | "watch">;

/** The mirror would pass its bound: it is dropped, and the next sync starts over. */
export class TrustMirrorFull extends Error {
  override readonly name = "TrustMirrorFull";
  constructor(max: number) {
    super(
      `this account has more than ${max} live trust records on the registry, more than the relay keeps in memory; revoke trust with peers it no longer talks to`,
    );
  }
}

/** The registry broke its paging contract (more pages, but the cursor does not move). */
export class TrustPagingStuck extends Error {
  override readonly name = "TrustPagingStuck";
  constructor(cursor: string) {
    super(`the registry said more trust changes follow cursor ${cursor} but gave none; retry later`);
  }
}

const keyOf = (p: TrustPeer) => `${p.requesterId}\n${p.targetId}`;

/**
 * Only what a view is derived from is kept: pending, approved and blocked records. A rejected record (ended
 * trust, a refused request) is dropped from the copy, so memory follows live relationships, not history.
 */
const isLive = (p: TrustPeer) => p.status === "pending" || p.status === "approved" || p.status === "blocked";

/** A cursor the registry refused (409: ahead of its changes, e.g. a restored database; 422: not its cursor). */
const cursorRefused = (err: unknown) =>
  err instanceof RegistryError && (err.kind === "conflict" || err.kind === "invalid");

export function createTrustMirror(options: TrustMirrorOptions): TrustMirror {
  /** The copy and where it continues; null until a read from the start completed. */
  let copy: {
    records: Map<string, TrustPeer>;
    cursor: string;
    startedAt: number;
    /** The records as last returned: the same array while nothing changed, so readers can skip re-deriving. */
    view: TrustPeer[];
  } | null = null;
  let inflight: Promise<TrustSnapshot> | null = null;
  /** The last "nothing changed after `cursor`" the registry said, and when. */
  let confirmed: { cursor: string; at: number } | null = null;
  const confirmedForMs = options.confirmedForMs ?? 0;
  /** The cursor a long-poll in flight watches, and whether this registry has ever answered for trust. */
  let watching: string | null = null;
  let answersForTrust = false;

  /** Whether the registry's word covers `cursor` now: a recent "nothing changed", or a long-poll watching it. */
  function covered(cursor: string, now: number): boolean {
    if (confirmedForMs <= 0) return false;
    if (answersForTrust && watching === cursor) return true;
    return confirmed?.cursor === cursor && now - confirmed.at < confirmedForMs;
  }

  function apply(records: Map<string, TrustPeer>, peers: readonly TrustPeer[]): void {
    for (const p of peers) {
      if (isLive(p)) records.set(keyOf(p), p);
      else records.delete(keyOf(p));
    }
    if (records.size > options.maxRecords) {
      copy = null;
      throw new TrustMirrorFull(options.maxRecords);
    }
  }

  /**
   * Reads pages after `after` into `records` until the registry has no more and returns the last cursor; or,
   * from a registry that does not read by change, its whole list. `onPage` sees each cursor once its page is in.
   */
  async function readInto(
    records: Map<string, TrustPeer>,
    after: string | null,
    onPage: (cursor: string) => void = () => {},
  ): Promise<{ cursor: string } | { wholeList: TrustPeer[] }> {
    let cursor = after;
    for (;;) {
      const page = await options.readPage(cursor);
      if (page.nextCursor === null) return { wholeList: page.peers };
      if (page.hasMore && page.nextCursor === cursor) throw new TrustPagingStuck(page.nextCursor);
      apply(records, page.peers);
      cursor = page.nextCursor;
      onPage(cursor);
      if (!page.hasMore) return { cursor };
    }
  }

  /** A registry that does not read by change (or no longer: it was replaced) answered its whole list. */
  function wholeList(records: TrustPeer[]): TrustSnapshot {
    copy = null;
    return { byChange: false, records };
  }

  /** Pages through everything into a new copy, which replaces the old one only once complete. */
  async function readAll(): Promise<TrustSnapshot> {
    const startedAt = options.now();
    const records = new Map<string, TrustPeer>();
    const read = await readInto(records, null);
    if ("wholeList" in read) return wholeList(read.wholeList);
    const moved = copy?.cursor !== read.cursor;
    copy = { records, cursor: read.cursor, startedAt, view: [...records.values()] };
    if (moved) options.onCursor?.();
    return { byChange: true, records: copy.view };
  }

  /** Applies what changed after the copy's cursor. */
  async function readChanges(current: NonNullable<typeof copy>): Promise<TrustSnapshot> {
    // The cursor moves page by page, so a failure part-way leaves a copy that is current up to it.
    const before = current.cursor;
    const read = await readInto(current.records, current.cursor, (cursor) => {
      current.cursor = cursor;
    });
    if ("wholeList" in read) return wholeList(read.wholeList);
    if (current.cursor !== before) {
      current.view = [...current.records.values()];
      options.onCursor?.();
    }
    return { byChange: true, records: current.view };
  }

  async function run(): Promise<TrustSnapshot> {
    const current = copy;
    const now = options.now();
    if (current && covered(current.cursor, now) && now - current.startedAt < options.resyncMs) {
      return { byChange: true, records: current.view };
    }
    if (current && now - current.startedAt < options.resyncMs) {
      try {
        return await readChanges(current);
      } catch (err) {
        if (!cursorRefused(err)) throw err;
        copy = null;
      }
    }
    return readAll();
  }

  return {
    sync() {
      inflight ??= run().finally(() => {
        inflight = null;
      });
      return inflight;
    },
    cursor: () => copy?.cursor ?? null,
    confirm(cursor, changed, at) {
      answersForTrust = changed !== undefined;
      if (changed !== false) {
        confirmed = null;
        if (watching === cursor) watching = null;
      } else if (cursor === copy?.cursor && at >= (confirmed?.at ?? 0)) confirmed = { cursor, at };
    },
    watch(cursor) {
      watching = cursor;
    },
  };
}
