// Long-poll wake-ups for relay inboxes: a read with `wait` parks here and is released as soon as a message
// for that installation is stored, when its time runs out, when the client leaves or when the server stops.

export class InboxWaiters {
  readonly #waiting = new Map<string, Set<() => void>>();
  #closed = false;

  /** Resolves on the next message for `installationId`, after `ms`, on abort or on close; never rejects. */
  wait(installationId: string, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.#closed || signal?.aborted || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.#waiting.get(installationId);
      if (!set) {
        set = new Set();
        this.#waiting.set(installationId, set);
      }
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        const current = this.#waiting.get(installationId);
        current?.delete(done);
        if (current?.size === 0) this.#waiting.delete(installationId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
      set.add(done);
    });
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
