// Group commit of heartbeats for a store shared by replicas: lastSeen writes that arrive while one is in flight
// (or within an optional linger) go to the database together, as one statement, and each heartbeat is answered
// only once its row is written. Under load a replica so makes a few writes a second instead of one a heartbeat,
// and no heartbeat is ever acknowledged before it is durable: another replica read right after the answer sees
// it, and a crash loses only heartbeats not yet answered (their clients retry).

/**
 * Writes lastSeen for the given agents (ids unique, in order), each only where the row's lastSeen is still at
 * least `seenSince` (what the heartbeat's check read, or where an agent counts as online) and, where a token hash
 * is given, the row holds it; returns the ids written.
 */
export type TouchWriter = (
  ids: string[],
  lastSeen: number[],
  seenSince: number[],
  tokenHashes: Array<string | null>,
) => Promise<Set<string>>;

export interface HeartbeatBatcherOptions {
  write: TouchWriter;
  /** Rows in one statement at most (default 1,000); more wait for the next one. */
  maxBatch?: number;
  /**
   * Milliseconds the first heartbeat of a batch waits for others to join it (default DEFAULT_HEARTBEAT_LINGER_MS;
   * 0: the next turn of the event loop). A replica so writes heartbeats at most 1000 / lingerMs times a second
   * (plus one statement per maxBatch rows), whatever its load, and each heartbeat is answered at most about
   * lingerMs plus one write later: nothing for a client that beats once a minute.
   */
  lingerMs?: number;
  /** Told the size of every batch written (metrics: heartbeat batch sizes). */
  onBatch?: (rows: number) => void;
}

export const DEFAULT_HEARTBEAT_LINGER_MS = 2;

interface PendingTouch {
  lastSeen: number;
  seenSince: number;
  tokenHash: string | null;
  settle: Array<{ resolve: (exists: boolean) => void; reject: (error: unknown) => void }>;
}

export class HeartbeatBatcher {
  readonly #write: TouchWriter;
  readonly #maxBatch: number;
  readonly #lingerMs: number;
  readonly #onBatch: ((rows: number) => void) | undefined;
  /** Heartbeats not yet in a statement, by agent id (two for one agent share a row: the later time wins). */
  #pending = new Map<string, PendingTouch>();
  #scheduled = false;
  /** performance.now() when the oldest pending heartbeat arrived. */
  #oldestAt = 0;
  #inFlight: Promise<void> | undefined;
  #batches = 0;
  #rows = 0;

  constructor(options: HeartbeatBatcherOptions) {
    this.#write = options.write;
    this.#maxBatch = Math.max(1, options.maxBatch ?? 1000);
    this.#lingerMs = Math.max(0, options.lingerMs ?? DEFAULT_HEARTBEAT_LINGER_MS);
    this.#onBatch = options.onBatch;
  }

  /** Statements written and rows they carried so far (tests and metrics compare them with heartbeats). */
  get stats(): { batches: number; rows: number } {
    return { batches: this.#batches, rows: this.#rows };
  }

  /**
   * Resolves once lastSeen is written: true, or false when no agent has that id, its lastSeen went below
   * `seenSince` meanwhile (default: no such condition), or it does not hold `tokenHash` (when given).
   */
  touch(
    id: string,
    lastSeen: number,
    seenSince = Number.MIN_SAFE_INTEGER,
    tokenHash: string | null = null,
  ): Promise<boolean> {
    const pending = this.#pending.get(id);
    // Two heartbeats of one agent share a row only when they ask the same of it; another token (one of them
    // wrong) is answered false at once, and its caller reads the record to say why.
    if (pending && pending.tokenHash !== tokenHash) return Promise.resolve(false);
    return new Promise((resolve, reject) => {
      if (this.#pending.size === 0) this.#oldestAt = performance.now();
      if (pending) {
        pending.lastSeen = Math.max(pending.lastSeen, lastSeen);
        // Both heartbeats passed their checks; a row moved below the earlier one's reading was changed after both.
        pending.seenSince = Math.min(pending.seenSince, seenSince);
        pending.settle.push({ resolve, reject });
      } else {
        this.#pending.set(id, { lastSeen, seenSince, tokenHash, settle: [{ resolve, reject }] });
      }
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight || this.#pending.size === 0) return;
    this.#scheduled = true;
    const run = () => {
      this.#scheduled = false;
      if (!this.#inFlight && this.#pending.size > 0) this.#start();
    };
    // The linger counts from the oldest pending heartbeat: one that waited through a write in flight goes next.
    const wait = this.#lingerMs - (performance.now() - this.#oldestAt);
    if (wait >= 1) setTimeout(run, wait);
    else setImmediate(run);
  }

  #start(): void {
    this.#inFlight = this.#flush().finally(() => {
      this.#inFlight = undefined;
      this.#schedule();
    });
  }

  async #flush(): Promise<void> {
    // Ids sorted: two replicas' batches then lock shared rows in the same order and cannot deadlock each other.
    const ids = [...this.#pending.keys()].sort().slice(0, this.#maxBatch);
    // Heartbeats left for the next statement (beyond maxBatch) have waited already: they go without lingering.
    const batch = ids.map((id) => {
      const entry = this.#pending.get(id)!;
      this.#pending.delete(id);
      return entry;
    });
    if (this.#pending.size > 0) this.#oldestAt = performance.now() - this.#lingerMs;
    this.#batches++;
    this.#rows += ids.length;
    this.#onBatch?.(ids.length);
    try {
      const found = await this.#write(
        ids,
        batch.map((b) => b.lastSeen),
        batch.map((b) => b.seenSince),
        batch.map((b) => b.tokenHash),
      );
      ids.forEach((id, i) => {
        for (const s of batch[i]!.settle) s.resolve(found.has(id));
      });
    } catch (error) {
      // Every heartbeat of the statement fails with it: its callers answer 500 and the clients retry.
      for (const b of batch) for (const s of b.settle) s.reject(error);
    }
  }

  /** Writes what is pending and waits for it (store close: no answered or waiting heartbeat is dropped). */
  async drain(): Promise<void> {
    while (this.#inFlight || this.#pending.size > 0) {
      if (!this.#inFlight) this.#start();
      await this.#inFlight;
    }
  }
}
