// What the registry says about an agent, checked before anything uses it: the agent's own signature over its
// record (src/identity/signed-record.ts), the served fields against the signed ones, the record's age against the
// newest one seen for that hostname, and its key against the key pinned for that peer. A registry can withhold a
// record or serve an unsigned one (said as such), but cannot forge, rewrite, roll back or re-key one unnoticed.
import type { AgentRecord, RecordVerification } from "../adapters/registry/types.js";
import { fingerprint } from "../identity/keys.js";
import { rewrittenField, verifyRecord } from "../identity/signed-record.js";

export type RecordVerdict = RecordVerification["status"];

/** Verdicts that make a record unusable: it is left out of search and never names, routes or keys a peer. */
export const IGNORED_VERDICTS: ReadonlySet<RecordVerdict> = new Set(["invalid", "stale", "key_mismatch"]);

export interface RecordCheckOptions {
  /** The key pinned for the peer of this hostname, if any. */
  pinnedKeyOf(hostname: string): string | null;
  /** A verified record offers another key than the pinned one (told once per peer and key). */
  onKeyMismatch?(hostname: string, offered: string, pinned: string): void;
}

export interface RecordCheck {
  /** The record with its verification; ignored records are marked, never dropped here. */
  check(record: AgentRecord): Promise<AgentRecord & { verification: RecordVerification }>;
  /** Records seen per verdict since start (status). */
  counts(): Record<RecordVerdict, number>;
}

/** Hostnames whose newest issued-at is remembered (beyond it the oldest are forgotten: a bound, not a cache). */
const MAX_REMEMBERED = 100_000;

export function createRecordCheck(options: RecordCheckOptions): RecordCheck {
  const newest = new Map<string, number>();
  const counts: Record<RecordVerdict, number> = {
    verified: 0,
    unsigned: 0,
    invalid: 0,
    stale: 0,
    key_mismatch: 0,
  };

  const verdict = async (record: AgentRecord): Promise<RecordVerification> => {
    if (!record.signedRecord) return { status: "unsigned", key: null, fingerprint: null, reason: null };
    const signed = await verifyRecord(record.signedRecord);
    if (!signed) {
      return { status: "invalid", key: null, fingerprint: null, reason: "its signature does not verify" };
    }
    const key = signed.public_key;
    const print = fingerprint(key);
    const field = rewrittenField(signed, {
      hostname: record.hostname,
      displayName: record.displayName,
      description: record.description,
      capabilities: record.capabilities,
      pilotNodeId: record.pilotNodeId,
      pilotAddress: record.pilotAddress,
      publicKey: record.publicKey ?? null,
    });
    if (field) {
      return { status: "invalid", key, fingerprint: print, reason: `the registry changed its ${field}` };
    }
    const issuedAt = Date.parse(signed.issued_at);
    const hostname = signed.hostname;
    const seen = newest.get(hostname);
    if (seen !== undefined && issuedAt < seen) {
      return {
        status: "stale",
        key,
        fingerprint: print,
        reason: `an older record than one already seen (signed ${signed.issued_at})`,
      };
    }
    newest.delete(hostname);
    newest.set(hostname, Math.max(seen ?? 0, issuedAt));
    if (newest.size > MAX_REMEMBERED) newest.delete(newest.keys().next().value as string);
    const pinned = options.pinnedKeyOf(hostname);
    if (pinned && pinned !== key) {
      options.onKeyMismatch?.(hostname, key, pinned);
      return {
        status: "key_mismatch",
        key,
        fingerprint: print,
        reason: `its key (${print}) is not the one you approved (${fingerprint(pinned)})`,
      };
    }
    return { status: "verified", key, fingerprint: print, reason: null };
  };

  return {
    async check(record) {
      const verification = await verdict(record);
      counts[verification.status]++;
      return { ...record, verification };
    },
    counts: () => ({ ...counts }),
  };
}
