// Point reads by key share statements, as group commit does for writes: a read goes out at once when no statement
// is in flight, and reads that arrive while one is go out together when it returns. A quiet replica so adds no
// wait, and a loaded one reads the rows of many heartbeats with one query instead of one query each. No read is
// older than its request: a statement is sent after every request in it arrived.

/** Reads the rows of `keys` (unique), returning the found ones by key. */
export type BatchRead<K, V> = (keys: K[]) => Promise<Map<K, V>>;

interface Waiting<V> {
  resolve: (value: V | undefined) => void;
  reject: (error: unknown) => void;
}

export class ReadBatcher<K, V> {
  readonly #read: BatchRead<K, V>;
  readonly #maxBatch: number;
  #waiting = new Map<K, Array<Waiting<V>>>();
  #scheduled = false;
  #inFlight = false;
  #batches = 0;
  #reads = 0;

  /** `maxBatch` keys in one statement at most (default 1,000); more wait for the next one. */
  constructor(read: BatchRead<K, V>, maxBatch = 1000) {
    this.#read = read;
    this.#maxBatch = Math.max(1, maxBatch);
  }

  /** Statements sent and reads they answered so far. */
  get stats(): { batches: number; reads: number } {
    return { batches: this.#batches, reads: this.#reads };
  }

  /** The row of `key`, or undefined when there is none. */
  get(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      const waiting = this.#waiting.get(key);
      if (waiting) waiting.push({ resolve, reject });
      else this.#waiting.set(key, [{ resolve, reject }]);
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight || this.#waiting.size === 0) return;
    this.#scheduled = true;
    // The rest of this turn's reads join the statement.
    setImmediate(() => this.#send());
  }

  #send(): void {
    this.#scheduled = false;
    const batch = [...this.#waiting].slice(0, this.#maxBatch);
    for (const [key] of batch) this.#waiting.delete(key);
    this.#inFlight = true;
    this.#batches++;
    this.#reads += batch.length;
    this.#read(batch.map(([key]) => key))
      .then(
        (found) => {
          for (const [key, waiting] of batch) for (const w of waiting) w.resolve(found.get(key));
        },
        (error: unknown) => {
          for (const [, waiting] of batch) for (const w of waiting) w.reject(error);
        },
      )
      .finally(() => {
        this.#inFlight = false;
        this.#schedule();
      });
  }
}
