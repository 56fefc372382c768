// Exponential backoff with deterministic jitter. Pure: the jitter comes from a hash of a seed (the installation
// id) and the attempt number, so tests can assert exact delays and different installations do not retry in
// lockstep after a shared registry outage.

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  factor: number;
}

/** Fraction of the base delay that jitter may remove (delays land in [base * (1 - JITTER_RATIO), base]). */
export const JITTER_RATIO = 0.2;

/** FNV-1a, 32 bit: small, stable across platforms, good enough to spread retries. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** A number in [0, 1) derived from the seed and the attempt. */
export function jitterFraction(seed: string, attempt: number): number {
  return fnv1a32(`${seed}:${attempt}`) / 0x1_0000_0000;
}

/** The un-jittered delay before retry number `attempt` (1-based), capped at maxMs. */
export function baseDelay(policy: BackoffPolicy, attempt: number): number {
  const exponent = Math.max(0, attempt - 1);
  const raw = policy.initialMs * policy.factor ** exponent;
  return Math.min(policy.maxMs, Number.isFinite(raw) ? raw : policy.maxMs);
}

/**
 * Delay before retry number `attempt` (1-based): the capped exponential base minus up to JITTER_RATIO of it.
 * Never exceeds maxMs and never drops below 1 ms.
 */
export function backoffDelay(policy: BackoffPolicy, attempt: number, seed: string): number {
  const base = baseDelay(policy, attempt);
  const jittered = Math.round(base * (1 - JITTER_RATIO * jitterFraction(seed, attempt)));
  return Math.max(1, Math.min(policy.maxMs, jittered));
}
