// JWS (RFC 7515, compact form, alg EdDSA over Ed25519) over canonical JSON (RFC 8785, the JSON Canonicalization
// Scheme): the form A2A uses for signed Agent Cards. `jose` does the JOSE; `canonicalize` the canonical bytes.
// Two shapes: an attached JWS (the payload travels inside it: signed records, request proofs) and a detached one
// (`header..signature`, RFC 7515 appendix F: the payload is the envelope the signature sits in).
import canonicalize from "canonicalize";
import { CompactSign, compactVerify, decodeProtectedHeader } from "jose";
import { type Identity, isPublicKey, publicKeyObject } from "./keys.js";

/** Longest JWS we read: a record or proof is well under 8 KiB; more is an attack on the parser. */
export const MAX_JWS_LENGTH = 16 * 1024;

const encoder = new TextEncoder();

/** The canonical bytes of a JSON value (RFC 8785). */
export function canonicalBytes(value: unknown): Uint8Array {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError("not a JSON value");
  return encoder.encode(text);
}

/** An attached compact JWS of `payload`'s canonical JSON, with `typ` naming what it is. */
export async function signJson(identity: Identity, payload: unknown, typ: string): Promise<string> {
  return new CompactSign(canonicalBytes(payload))
    .setProtectedHeader({ alg: "EdDSA", typ })
    .sign(identity.privateKey);
}

/** A detached compact JWS (`header..signature`) of `payload`'s canonical JSON. */
export async function signDetached(identity: Identity, payload: unknown, typ: string): Promise<string> {
  const jws = await signJson(identity, payload, typ);
  const [header, , signature] = jws.split(".");
  return `${header}..${signature}`;
}

function typOk(jws: string, typ: string): boolean {
  try {
    const header = decodeProtectedHeader(jws);
    return header.alg === "EdDSA" && header.typ === typ && header.crit === undefined;
  } catch {
    return false;
  }
}

/**
 * The payload of an attached JWS if `publicKey` signed it as `typ`, else null (never throws: every byte here came
 * from a peer or a registry). `publicKey` may be a function of the payload (a self-signed record names its key).
 */
export async function verifyJson(
  jws: unknown,
  typ: string,
  publicKey: string | ((payload: unknown) => string | null),
): Promise<unknown | null> {
  if (typeof jws !== "string" || jws.length > MAX_JWS_LENGTH || !typOk(jws, typ)) return null;
  try {
    const parts = jws.split(".");
    if (parts.length !== 3 || !parts[1]) return null;
    const payload: unknown = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    const key = typeof publicKey === "function" ? publicKey(payload) : publicKey;
    if (!isPublicKey(key)) return null;
    await compactVerify(jws, publicKeyObject(key), { algorithms: ["EdDSA"] });
    return payload;
  } catch {
    return null;
  }
}

/** Whether `publicKey` made this detached signature over `payload` (never throws). */
export async function verifyDetached(
  signature: unknown,
  payload: unknown,
  typ: string,
  publicKey: string,
): Promise<boolean> {
  if (typeof signature !== "string" || signature.length > MAX_JWS_LENGTH || !isPublicKey(publicKey))
    return false;
  const [header, middle, sig] = signature.split(".");
  if (!header || middle !== "" || !sig || signature.split(".").length !== 3) return false;
  try {
    const body = Buffer.from(canonicalBytes(payload)).toString("base64url");
    const jws = `${header}.${body}.${sig}`;
    if (!typOk(jws, typ)) return false;
    await compactVerify(jws, publicKeyObject(publicKey), { algorithms: ["EdDSA"] });
    return true;
  } catch {
    return false;
  }
}
