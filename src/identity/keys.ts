// The installation's identity: one Ed25519 key pair per account, made on first start and kept in the account's
// state directory (identity.key, PKCS#8 PEM, mode 0600). Everything signed by this plugin (its registry record,
// its requests to the registry, every envelope) is signed with it; peers pin its public key. The private key
// never leaves this module's object: it is not enumerable, not in JSON, not in `util.inspect`.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** A public key on the wire: the 32 raw Ed25519 bytes, base64url without padding (the JWK `x`). */
export const PUBLIC_KEY_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export const IDENTITY_FILE = "identity.key";

export class IdentityError extends Error {
  override name = "IdentityError";
}

export interface Identity {
  /** base64url of the raw public key. */
  readonly publicKey: string;
  /** What owners compare out of band (see `fingerprint`). */
  readonly fingerprint: string;
  /** For the signing functions of this folder only. */
  readonly privateKey: KeyObject;
}

/**
 * A short, human-comparable form of a public key: 30 decimal digits in six groups of five, from its SHA-256 (about
 * 100 bits; the form Signal's safety numbers use). Two owners read theirs to each other, or compare a screenshot.
 */
export function fingerprint(publicKey: string): string {
  const hash = createHash("sha256").update("agent-registry key:").update(publicKey, "utf8").digest();
  const groups: string[] = [];
  for (let i = 0; i < 6; i++) {
    const chunk = hash.readUIntBE(i * 5, 5);
    groups.push(String(chunk % 100_000).padStart(5, "0"));
  }
  return groups.join(" ");
}

export const isPublicKey = (value: unknown): value is string =>
  typeof value === "string" && PUBLIC_KEY_PATTERN.test(value);

function identityOf(privateKey: KeyObject): Identity {
  const jwk = createPublicKey(privateKey).export({ format: "jwk" });
  if (jwk.crv !== "Ed25519" || typeof jwk.x !== "string") {
    throw new IdentityError(
      "the identity key is not an Ed25519 key; move identity.key away to make a new one",
    );
  }
  const publicKey = jwk.x;
  const identity = { publicKey, fingerprint: fingerprint(publicKey) } as Identity;
  Object.defineProperty(identity, "privateKey", { value: privateKey, enumerable: false });
  Object.defineProperty(identity, "toJSON", {
    value: () => ({ publicKey, fingerprint: identity.fingerprint }),
    enumerable: false,
  });
  Object.defineProperty(identity, Symbol.for("nodejs.util.inspect.custom"), {
    value: () => `Identity(${identity.fingerprint})`,
    enumerable: false,
  });
  return Object.freeze(identity);
}

/** A fresh identity in memory (tests, the reference server's tools). */
export function generateIdentity(): Identity {
  return identityOf(generateKeyPairSync("ed25519").privateKey);
}

/**
 * The identity kept in `dir`, made on first call. Creation is atomic (a temporary file linked into place), so two
 * processes starting at once end with the same key; an unreadable file is an error that says what to do, never a
 * silent new key (peers pinned the old one).
 */
export function loadOrCreateIdentity(dir: string): Identity {
  const path = join(dir, IDENTITY_FILE);
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const pem = generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" });
    const temp = `${path}.${process.pid}.${Date.now()}.tmp`;
    writeFileSync(temp, pem, { mode: 0o600, flag: "wx" });
    try {
      linkSync(temp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      // Another process made it first: use theirs.
    } finally {
      rmSync(temp, { force: true });
    }
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(readFileSync(path, "utf8"));
  } catch (err) {
    throw new IdentityError(
      `cannot read the identity key ${path}: ${(err as Error).message}. Restore it from a backup; if it is lost, move it away to make a new one, then ask each peer's owner to approve the new fingerprint`,
      { cause: err },
    );
  }
  try {
    chmodSync(path, 0o600);
  } catch {
    // Read-only state directory: the key still works; its mode is the owner's business.
  }
  return identityOf(privateKey);
}

const publicKeys = new Map<string, KeyObject>();

/** The key object of a wire public key (cached: a busy peer verifies every message with the same key). */
export function publicKeyObject(publicKey: string): KeyObject {
  let key = publicKeys.get(publicKey);
  if (!key) {
    if (!isPublicKey(publicKey))
      throw new IdentityError("not an Ed25519 public key (43 base64url characters)");
    key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: publicKey }, format: "jwk" });
    if (publicKeys.size >= 10_000) publicKeys.delete(publicKeys.keys().next().value as string);
    publicKeys.set(publicKey, key);
  }
  return key;
}
