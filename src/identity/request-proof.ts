// Proof that a registry request comes from the holder of an agent's key: a JWS in the `X-Agent-Proof` header over
// the request's method, path (with query), a hash of its body, a timestamp and a random nonce. The registry
// checks it against the key bound to the record, within a time window, and refuses a nonce seen twice. A stolen
// or lost agent token alone then cannot re-register, update or delete a keyed record; the key holder can always
// get a new token.
import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";
import { signJson, verifyJson } from "./jws.js";
import type { Identity } from "./keys.js";

export const PROOF_HEADER = "x-agent-proof";
export const PROOF_TYP = "agent-request+jws";
/** How far a proof's time may be from the server's clock, either way. */
export const PROOF_WINDOW_MS = 5 * 60_000;

export interface ProofTarget {
  method: string;
  /** The path with its query string, as sent (e.g. `/api/v1/agents/12`). */
  path: string;
  /** The raw body bytes (empty for none). */
  body: string | Uint8Array;
}

const payloadSchema = z.object({
  m: z.string().max(16),
  p: z.string().max(2048),
  h: z.string().max(64),
  t: z.number().int().nonnegative(),
  n: z.string().min(16).max(64),
});

const bodyHash = (body: string | Uint8Array) => createHash("sha256").update(body).digest("base64url");

export async function createRequestProof(
  identity: Identity,
  target: ProofTarget,
  now = Date.now(),
): Promise<string> {
  return signJson(
    identity,
    {
      m: target.method.toUpperCase(),
      p: target.path,
      h: bodyHash(target.body),
      t: Math.floor(now / 1000),
      n: randomBytes(16).toString("base64url"),
    },
    PROOF_TYP,
  );
}

export type ProofCheck = { ok: true; nonce: string } | { ok: false; reason: string };

/**
 * Checks a proof against the key bound to the record. `nonceSeen` answers whether the nonce was used before
 * (the caller remembers it for the window once the request is accepted).
 */
export async function verifyRequestProof(
  proof: unknown,
  publicKey: string,
  target: ProofTarget,
  options: { now?: number; nonceSeen(nonce: string): boolean },
): Promise<ProofCheck> {
  const payload = payloadSchema.safeParse(await verifyJson(proof, PROOF_TYP, publicKey));
  if (!payload.success) return { ok: false, reason: "the proof is not signed by this agent's key" };
  const p = payload.data;
  if (p.m !== target.method.toUpperCase() || p.p !== target.path || p.h !== bodyHash(target.body)) {
    return { ok: false, reason: "the proof is for another request" };
  }
  const now = options.now ?? Date.now();
  if (Math.abs(now - p.t * 1000) > PROOF_WINDOW_MS) {
    return { ok: false, reason: "the proof's time is more than 5 minutes from the registry's clock" };
  }
  if (options.nonceSeen(p.n)) return { ok: false, reason: "the proof was used before" };
  return { ok: true, nonce: p.n };
}
