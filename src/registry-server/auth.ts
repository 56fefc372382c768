// Secrets of the registry: the deployment key and agent tokens. Tokens are random, only their sha256 is
// stored, and every comparison is constant-time over equal-length digests.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

export const sha256Hex = (secret: string): string =>
  createHash("sha256").update(secret, "utf8").digest("hex");

/** Constant-time equality of a presented secret with a stored sha256 hex digest. */
export function matchesHash(presented: string, storedHashHex: string): boolean {
  const a = createHash("sha256").update(presented, "utf8").digest();
  const b = Buffer.from(storedHashHex, "hex");
  return b.length === a.length && timingSafeEqual(a, b);
}

/** A new agent token (256 random bits) and the digest to store. */
export function issueToken(): { token: string; hash: string } {
  const token = `art_${randomBytes(32).toString("base64url")}`;
  return { token, hash: sha256Hex(token) };
}

/** The bearer credential of a request, or undefined. */
export function bearerOf(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

export function registryKeyOf(req: IncomingMessage): string | undefined {
  const value = req.headers["x-registry-key"];
  return Array.isArray(value) ? value[0] : value;
}
