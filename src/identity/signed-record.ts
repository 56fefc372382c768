// An agent's signed registry record: the public part of its registration (hostname, display fields,
// capabilities, Pilot address, public key, issued-at), signed by the agent itself as a JWS over canonical JSON.
// The registry stores it and returns it with the record (`signed_record`); a reader verifies it against the key
// inside, compares it with the record's fields, and against the key it pinned for that hostname. A registry can
// then withhold a record or serve an old one, but not forge or rewrite one.
import { z } from "zod";
import { signJson, verifyJson } from "./jws.js";
import { type Identity, isPublicKey } from "./keys.js";

export const RECORD_TYP = "agent-record+jws";

/** The signed fields, snake_case as on the wire; `capabilities` as the registry stores them (lowercase, unique). */
export interface SignedRecordFields {
  hostname: string;
  display_name: string | null;
  description: string | null;
  capabilities: string[];
  pilot_node_id: string | null;
  pilot_address: string | null;
  public_key: string;
  /** ISO-8601 UTC: when the agent signed it. A newer one replaces an older one, never the reverse. */
  issued_at: string;
}

const fieldsSchema = z.object({
  hostname: z.string().min(1).max(253),
  display_name: z.string().max(200).nullable(),
  description: z.string().max(2000).nullable(),
  capabilities: z.array(z.string().max(64)).max(50),
  pilot_node_id: z.string().max(10).nullable(),
  pilot_address: z.string().max(64).nullable(),
  public_key: z.string().refine(isPublicKey),
  issued_at: z.iso.datetime(),
});

/** The fields as the registry will store them, so what is signed is what is served. */
export function normalizeRecordFields(input: {
  hostname: string;
  displayName?: string | null;
  description?: string | null;
  capabilities?: readonly string[];
  pilotNodeId?: string | number | null;
  pilotAddress?: string | null;
  publicKey: string;
  issuedAt: Date;
}): SignedRecordFields {
  return {
    hostname: input.hostname.toLowerCase(),
    display_name: input.displayName ?? null,
    description: input.description ?? null,
    capabilities: [...new Set((input.capabilities ?? []).map((c) => c.toLowerCase()))],
    pilot_node_id:
      input.pilotNodeId === null || input.pilotNodeId === undefined ? null : String(input.pilotNodeId),
    pilot_address: input.pilotAddress ?? null,
    public_key: input.publicKey,
    issued_at: input.issuedAt.toISOString(),
  };
}

export async function signRecord(identity: Identity, fields: SignedRecordFields): Promise<string> {
  if (fields.public_key !== identity.publicKey) throw new Error("a record is signed by the key it names");
  return signJson(identity, fields, RECORD_TYP);
}

/** The fields of a record signed by the key it names, or null (a forged, truncated or foreign JWS). */
export async function verifyRecord(jws: unknown): Promise<SignedRecordFields | null> {
  const payload = await verifyJson(jws, RECORD_TYP, (p) =>
    p && typeof p === "object" && "public_key" in p
      ? String((p as { public_key: unknown }).public_key)
      : null,
  );
  const fields = fieldsSchema.safeParse(payload);
  return fields.success ? fields.data : null;
}

/** The record's own fields, as the registry served them, to compare with what the agent signed. */
export interface ServedFields {
  hostname: string;
  displayName: string | null;
  description: string | null;
  capabilities: readonly string[];
  pilotNodeId: string | null;
  pilotAddress: string | null;
  publicKey: string | null;
}

/** The first served field that differs from the signed one (a registry rewrote it), or null when all match. */
export function rewrittenField(signed: SignedRecordFields, served: ServedFields): string | null {
  if (served.hostname.toLowerCase() !== signed.hostname) return "hostname";
  if ((served.displayName ?? null) !== signed.display_name) return "display_name";
  if ((served.description ?? null) !== signed.description) return "description";
  const caps = served.capabilities.map((c) => c.toLowerCase());
  if (caps.length !== signed.capabilities.length || caps.some((c, i) => c !== signed.capabilities[i])) {
    return "capabilities";
  }
  if ((served.pilotNodeId ?? null) !== signed.pilot_node_id) return "pilot_node_id";
  if ((served.pilotAddress ?? null) !== signed.pilot_address) return "pilot_address";
  if (served.publicKey !== signed.public_key) return "public_key";
  return null;
}
