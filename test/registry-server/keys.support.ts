// Test helpers for records bound to a key: a registration body with public_key and a signed_record over its
// fields, and calls signed with X-Agent-Proof over exactly the bytes sent, at the test registry's clock.
import { generateIdentity, type Identity } from "../../src/identity/keys.js";
import { createRequestProof, PROOF_HEADER } from "../../src/identity/request-proof.js";
import { normalizeRecordFields, signRecord } from "../../src/identity/signed-record.js";
import type { ApiResponse, TestRegistry } from "./helpers.js";

export interface RecordFields {
  hostname: string;
  installation_id?: string;
  display_name?: string | null;
  description?: string | null;
  capabilities?: string[];
  pilot_node_id?: number | null;
  pilot_address?: string | null;
}

/** The registration fields with `identity`'s public key and a record signed over them (issued at `issuedAt`). */
export async function keyedBody(
  identity: Identity,
  fields: RecordFields,
  issuedAt = new Date(),
): Promise<Record<string, unknown>> {
  const signed = normalizeRecordFields({
    hostname: fields.hostname,
    displayName: fields.display_name ?? null,
    description: fields.description ?? null,
    capabilities: fields.capabilities ?? [],
    pilotNodeId: fields.pilot_node_id ?? null,
    pilotAddress: fields.pilot_address ?? null,
    publicKey: identity.publicKey,
    issuedAt,
  });
  return { ...fields, public_key: identity.publicKey, signed_record: await signRecord(identity, signed) };
}

export interface SignedCall {
  /** Who signs the proof (none: no X-Agent-Proof). */
  signer?: Identity;
  body?: unknown;
  token?: string;
  /** Sign another request than the one sent (method, path or body), to test the binding. */
  signedAs?: { method?: string; path?: string; body?: string };
  /** The proof's clock (default: the registry's). */
  at?: number;
  /** A proof made earlier, sent as it is (replays). */
  proof?: string;
}

export async function proofFor(
  r: TestRegistry,
  signer: Identity,
  method: string,
  path: string,
  body: string,
  at = r.clock.now(),
): Promise<string> {
  return createRequestProof(signer, { method, path, body }, at);
}

/** A request with X-Agent-Proof over its exact method, path and body bytes; returns the proof it sent too. */
export async function signedCall<T = Record<string, unknown>>(
  r: TestRegistry,
  method: string,
  path: string,
  options: SignedCall = {},
): Promise<ApiResponse<T> & { proof: string | undefined }> {
  const raw = options.body === undefined ? "" : JSON.stringify(options.body);
  let proof = options.proof;
  if (!proof && options.signer) {
    const as = options.signedAs ?? {};
    proof = await proofFor(
      r,
      options.signer,
      as.method ?? method,
      as.path ?? path,
      as.body ?? raw,
      options.at ?? r.clock.now(),
    );
  }
  const headers: Record<string, string> = proof ? { [PROOF_HEADER]: proof } : {};
  const res = await r.call<T>(method, path, {
    ...(options.body === undefined ? {} : { raw }),
    headers,
    ...(options.token ? { token: options.token } : {}),
  });
  return { ...res, proof };
}

export interface KeyedAgent {
  identity: Identity;
  id: string;
  token: string;
  fields: RecordFields;
  record: Record<string, unknown>;
}

/** Registers a record bound to a fresh key (signed by it), and returns the key, id and token. */
export async function registerKeyed(
  r: TestRegistry,
  fields: RecordFields,
  identity = generateIdentity(),
): Promise<KeyedAgent> {
  const res = await signedCall(r, "POST", "/api/v1/agents/", {
    signer: identity,
    body: await keyedBody(identity, fields),
  });
  if (res.status !== 201 && res.status !== 200) {
    throw new Error(`keyed register failed: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return {
    identity,
    id: String(res.body.id),
    token: String(res.body.agent_token),
    fields,
    record: res.body,
  };
}

export const detailOf = (res: { body: unknown }): string =>
  String((res.body as { detail?: unknown } | undefined)?.detail ?? "");
