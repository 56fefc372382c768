// Proof of possession for records bound to a key: the `X-Agent-Proof` header of a request, checked (async, in the
// route, before the service's synchronous transaction) against the keys the request could be speaking for, and a
// bounded memory of the nonces already used. The service then only compares the key that signed with the key the
// record holds, inside its transaction, so a key changed meanwhile is never taken for the old one.
import type { IncomingMessage } from "node:http";
import { PROOF_HEADER, PROOF_WINDOW_MS, verifyRequestProof } from "../identity/request-proof.js";

/** What a request proved about its signer, as far as the route could tell. */
export type ProofResult =
  /** No `X-Agent-Proof` header. */
  | { kind: "none" }
  /** A fresh proof for exactly this request, signed by `publicKey`, its nonce now spent. */
  | { kind: "valid"; publicKey: string }
  /** A header that proves nothing: `reason` says why (verifyRequestProof's words). */
  | { kind: "invalid"; reason: string };

/** The proof header's value (one header; a repeated one is joined by node:http and then fails to verify). */
export function proofHeader(req: IncomingMessage): string | undefined {
  const value = req.headers[PROOF_HEADER];
  return Array.isArray(value) ? value.join(", ") : value;
}

/** verifyRequestProof's reason when the signature fails for a key (then another key may still have signed it). */
const NOT_SIGNED = "the proof is not signed by this agent's key";

export const NONCE_CACHE_SIZE = 100_000;
/**
 * A proof is valid from 5 minutes before its time to 5 minutes after, so a nonce first seen at any point of that
 * span can come back for up to 10 minutes: that is how long it is kept.
 */
const NONCE_KEEP_MS = 2 * PROOF_WINDOW_MS;

export interface ProofCheckerOptions {
  now: () => number;
  /** Nonces remembered at most (default NONCE_CACHE_SIZE). */
  maxNonces?: number;
}

export class ProofChecker {
  /** nonce -> when it may be forgotten. Insertion order is expiry order (every nonce is kept equally long). */
  readonly #seen = new Map<string, number>();
  readonly #now: () => number;
  readonly #max: number;

  constructor(options: ProofCheckerOptions) {
    this.#now = options.now;
    this.#max = options.maxNonces ?? NONCE_CACHE_SIZE;
  }

  /** Nonces remembered right now (tests watch the bound). */
  get size(): number {
    return this.#seen.size;
  }

  #forgetExpired(now: number): void {
    for (const [nonce, until] of this.#seen) {
      if (until > now) break;
      this.#seen.delete(nonce);
    }
  }

  #seenBefore(nonce: string, now: number): boolean {
    const until = this.#seen.get(nonce);
    return until !== undefined && until > now;
  }

  /**
   * Spends a nonce; false when it was spent already. Synchronous, so two requests carrying one proof cannot both
   * pass between the check and the spend. When full, the oldest nonces go first: a flood of proofs (anyone can
   * sign with a key of their own) must not stop every key holder from being served, and a forgotten nonce only
   * matters to whoever captured that proof within its last minutes.
   */
  #spend(nonce: string, now: number): boolean {
    this.#forgetExpired(now);
    if (this.#seenBefore(nonce, now)) return false;
    while (this.#seen.size >= this.#max) {
      const oldest = this.#seen.keys().next().value as string;
      this.#seen.delete(oldest);
    }
    this.#seen.set(nonce, now + NONCE_KEEP_MS);
    return true;
  }

  /**
   * Checks the request's proof against each candidate key (the record's key, a key the request asks to bind)
   * and spends its nonce when one of them signed it. The proof covers the method, the request target exactly as
   * received (path and query), and the raw body bytes.
   */
  async check(
    req: IncomingMessage,
    body: Uint8Array,
    keys: () => ReadonlyArray<string | null | undefined> | Promise<ReadonlyArray<string | null | undefined>>,
  ): Promise<ProofResult> {
    const proof = proofHeader(req);
    // Requests without a proof (every client without a key) cost no key lookups.
    if (proof === undefined) return { kind: "none" };
    const target = { method: req.method ?? "GET", path: req.url ?? "/", body };
    let reason = NOT_SIGNED;
    for (const key of new Set(await keys())) {
      if (!key) continue;
      const now = this.#now();
      const checked = await verifyRequestProof(proof, key, target, {
        now,
        nonceSeen: (nonce) => this.#seenBefore(nonce, now),
      });
      if (checked.ok) {
        if (!this.#spend(checked.nonce, this.#now()))
          return { kind: "invalid", reason: "the proof was used before" };
        return { kind: "valid", publicKey: key };
      }
      // A reason past the signature (another request, too old, used before) says more than "not this key".
      if (checked.reason !== NOT_SIGNED) reason = checked.reason;
    }
    return { kind: "invalid", reason };
  }
}
