// Long-poll wake-ups for relay inboxes: a read with `wait` parks here and is released as soon as a message
// for that installation is stored, when its time runs out, when the client leaves or when the server stops.
// Long-polls are admitted against two caps (per inbox and in total), since each one holds a connection and
// a timer for up to 30 s: without a cap, one client could park thousands of them.

export interface InboxWaiterLimits {
  /** Long-polls parked at once on one installation's inbox (default 4). */
  perInbox?: number;
  /** Long-polls parked at once on the whole server (default 1,000). */
  total?: number;
  /**
   * The public key other replicas wake an inbox by (the peer id of its installation id): given, waiters can be
   * woken with notifyWakeKey. Never the installation id itself, which is a secret.
   */
  wakeKeyOf?: (installationId: string) => string;
}

/** Why a long-poll was not admitted: its inbox already has `perInbox` of them, or the server has `total`. */
export type LongPollRefusal = "inbox-full" | "server-full";

export class InboxWaiters {
  readonly #waiting = new Map<string, Set<() => void>>();
  readonly #admitted = new Map<string, number>();
  readonly #wakeKeyOf: ((installationId: string) => string) | undefined;
  /** Wake key -> installation ids with waiters (only with wakeKeyOf). */
  readonly #byWakeKey = new Map<string, Set<string>>();
  #admittedTotal = 0;
  #closed = false;
  readonly perInbox: number;
  readonly total: number;

  constructor(limits: InboxWaiterLimits = {}) {
    this.perInbox = limits.perInbox ?? 4;
    this.total = limits.total ?? 1000;
    this.#wakeKeyOf = limits.wakeKeyOf;
  }

  /**
   * Claims a long-poll slot for the whole of one request (it may wait several times); returns the release
   * function, to be called exactly once when the request ends, or why it was refused.
   */
  admit(installationId: string): (() => void) | LongPollRefusal {
    const mine = this.#admitted.get(installationId) ?? 0;
    if (mine >= this.perInbox) return "inbox-full";
    if (this.#admittedTotal >= this.total) return "server-full";
    this.#admitted.set(installationId, mine + 1);
    this.#admittedTotal++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#admittedTotal--;
      const left = (this.#admitted.get(installationId) ?? 1) - 1;
      if (left > 0) this.#admitted.set(installationId, left);
      else this.#admitted.delete(installationId);
    };
  }

  /** Long-polls admitted and not yet released. */
  get admitted(): number {
    return this.#admittedTotal;
  }

  /** Resolves on the next message for `installationId`, after `ms`, on abort or on close; never rejects. */
  wait(installationId: string, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.#closed || signal?.aborted || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.#waiting.get(installationId);
      if (!set) {
        set = new Set();
        this.#waiting.set(installationId, set);
        this.#indexWakeKey(installationId, true);
      }
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        const current = this.#waiting.get(installationId);
        current?.delete(done);
        if (current?.size === 0) {
          this.#waiting.delete(installationId);
          this.#indexWakeKey(installationId, false);
        }
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
      set.add(done);
    });
  }

  #indexWakeKey(installationId: string, add: boolean): void {
    if (!this.#wakeKeyOf) return;
    const key = this.#wakeKeyOf(installationId);
    let ids = this.#byWakeKey.get(key);
    if (add) {
      if (!ids) {
        ids = new Set();
        this.#byWakeKey.set(key, ids);
      }
      ids.add(installationId);
    } else if (ids) {
      ids.delete(installationId);
      if (ids.size === 0) this.#byWakeKey.delete(key);
    }
  }

  /** Wakes the inbox whose wake key is `key` (a message stored through another replica). */
  notifyWakeKey(key: string): void {
    const ids = this.#byWakeKey.get(key);
    if (ids) for (const id of [...ids]) this.notify(id);
  }

  /** Wakes every waiter once without closing (wake-ups may have been missed: each re-reads its inbox). */
  wakeAll(): void {
    for (const set of [...this.#waiting.values()]) for (const done of [...set]) done();
  }

  notify(installationId: string): void {
    const set = this.#waiting.get(installationId);
    if (!set) return;
    for (const done of [...set]) done();
  }

  /** Releases every waiter now and refuses new waits (shutdown: in-flight long-polls answer at once). */
  close(): void {
    this.#closed = true;
    for (const set of [...this.#waiting.values()]) for (const done of [...set]) done();
  }

  get closed(): boolean {
    return this.#closed;
  }

  get size(): number {
    let n = 0;
    for (const set of this.#waiting.values()) n += set.size;
    return n;
  }
}
