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

/** One long-poll's interest in an inbox, from before its first read until it answers. */
export interface InboxWatch {
  /** Resolves at once when a message came since the last wait, else on the next one, after `ms`, abort or close. */
  wait(ms: number, signal?: AbortSignal): Promise<void>;
  /** Stops watching (exactly once, when the request ends). */
  close(): void;
}

interface Watch {
  /** A message came since the watch last waited. */
  notified: boolean;
  /** Ends the current wait (set while parked). */
  wake: (() => void) | undefined;
}

export class InboxWaiters {
  /** Installation id -> the watches on its inbox (each a long-poll request, parked or reading). */
  readonly #watching = new Map<string, Set<Watch>>();
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

  /**
   * Starts watching an inbox, BEFORE reading it: a message stored from now on (a notify) is remembered, so a wait
   * after a read that just missed it returns at once instead of sleeping through it. With PostgreSQL the read is a
   * round trip, during which a send can commit and notify; without the watch that wake-up would be lost.
   */
  watch(installationId: string): InboxWatch {
    const watch: Watch = { notified: false, wake: undefined };
    let set = this.#watching.get(installationId);
    if (!set) {
      set = new Set();
      this.#watching.set(installationId, set);
      this.#indexWakeKey(installationId, true);
    }
    set.add(watch);
    let closed = false;
    return {
      wait: (ms, signal) => this.#park(watch, ms, signal),
      close: () => {
        if (closed) return;
        closed = true;
        watch.wake?.();
        const current = this.#watching.get(installationId);
        current?.delete(watch);
        if (current?.size === 0) {
          this.#watching.delete(installationId);
          this.#indexWakeKey(installationId, false);
        }
      },
    };
  }

  /** Resolves when the watch was notified (since its last wait), after `ms`, on abort or on close. */
  #park(watch: Watch, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.#closed || signal?.aborted || ms <= 0 || watch.notified) {
      watch.notified = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        watch.wake = undefined;
        // The wake-up is consumed: the caller reads the inbox next.
        watch.notified = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
      watch.wake = done;
    });
  }

  /** Resolves on the next message for `installationId`, after `ms`, on abort or on close; never rejects. */
  async wait(installationId: string, ms: number, signal?: AbortSignal): Promise<void> {
    const watch = this.watch(installationId);
    try {
      await watch.wait(ms, signal);
    } finally {
      watch.close();
    }
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

  /** Wakes every watch once without closing (wake-ups may have been missed: each re-reads its inbox). */
  wakeAll(): void {
    for (const set of [...this.#watching.values()]) for (const watch of [...set]) this.#signal(watch);
  }

  notify(installationId: string): void {
    const set = this.#watching.get(installationId);
    if (!set) return;
    for (const watch of [...set]) this.#signal(watch);
  }

  #signal(watch: Watch): void {
    watch.notified = true;
    watch.wake?.();
  }

  /** Releases every waiter now and refuses new waits (shutdown: in-flight long-polls answer at once). */
  close(): void {
    this.#closed = true;
    for (const set of [...this.#watching.values()]) for (const watch of [...set]) watch.wake?.();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Long-polls parked right now. */
  get size(): number {
    let n = 0;
    for (const set of this.#watching.values()) for (const watch of set) if (watch.wake) n++;
    return n;
  }
}
