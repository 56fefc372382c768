// Per-sender token buckets for relay sends: each sender installation may send `perMinute` messages a minute on
// average and `burst` at once. Memory is bounded: buckets that have refilled completely carry no information
// and are dropped when the map grows.

export interface RateLimitOptions {
  /** Average sends a minute per sender; 0 turns the limit off. */
  perMinute: number;
  /** Sends allowed at once (the bucket's size). */
  burst: number;
  now: () => number;
  /** Buckets kept before full ones are swept out (default 10,000). */
  maxBuckets?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class SendRateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #perMs: number;
  readonly #burst: number;
  readonly #maxBuckets: number;

  constructor(readonly options: RateLimitOptions) {
    this.#perMs = options.perMinute / 60_000;
    this.#burst = Math.max(1, options.burst);
    this.#maxBuckets = options.maxBuckets ?? 10_000;
  }

  get enabled(): boolean {
    return this.options.perMinute > 0;
  }

  /** Takes one send for `key`: 0 when allowed, else the whole seconds to wait before the next one is. */
  take(key: string): number {
    if (!this.enabled) return 0;
    const now = this.options.now();
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      if (this.#buckets.size >= this.#maxBuckets) this.sweep();
      // Still full (only possible with agent tokens off, where sender ids are unchecked): forget the oldest,
      // so memory stays bounded; such a server trusts its senders anyway.
      if (this.#buckets.size >= this.#maxBuckets) {
        const oldest = this.#buckets.keys().next().value;
        if (oldest !== undefined) this.#buckets.delete(oldest);
      }
      bucket = { tokens: this.#burst, at: now };
      this.#buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs);
      bucket.at = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.#perMs / 1000));
  }

  /** Drops buckets that are full again (they would start full anyway). */
  sweep(): void {
    const now = this.options.now();
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + (now - bucket.at) * this.#perMs >= this.#burst) this.#buckets.delete(key);
    }
  }

  get size(): number {
    return this.#buckets.size;
  }
}
