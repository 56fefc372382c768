// The JSON files an account kept before its database (peers.json, inbound/processed-keys.json and .log,
// relay-cursor.json), read once so the database can import them. Reading never fails: whatever is valid is
// returned, and each thing that is not is described (naming its file) for the operator.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { PeerState } from "../../machines/handshake.machine.js";
import { peerKey } from "../../machines/types.js";
import { readLegacyProcessedKeys } from "../inbound/processed-keys.js";
import { peerRecordSchema } from "./peer-records.js";

export const LEGACY_PEERS_FILE = "peers.json";
export const LEGACY_RELAY_CURSOR_FILE = "relay-cursor.json";
/** Where the processed keys of the inbound pipeline were kept, under the account's state dir. */
export const LEGACY_INBOUND_DIR = "inbound";

const cursorFileSchema = z.object({ v: z.literal(1), cursor: z.string().nullable() });

export interface LegacyState {
  /** Peer records keyed as the account root keys them on restore (a later duplicate wins, as it did there). */
  peers: Array<{ key: string; record: PeerState }>;
  /** Oldest first. */
  processedKeys: string[];
  /** undefined: no cursor file (or an unreadable one). */
  relayCursor: string | null | undefined;
  /** The files that existed. */
  files: string[];
  /** What was skipped, each naming its file. */
  skipped: string[];
}

export function readLegacyState(dir: string): LegacyState {
  const files: string[] = [];
  const skipped: string[] = [];
  const peers = readPeers(join(dir, LEGACY_PEERS_FILE), files, skipped);
  const relayCursor = readCursor(join(dir, LEGACY_RELAY_CURSOR_FILE), files, skipped);
  const processed = readLegacyProcessedKeys(join(dir, LEGACY_INBOUND_DIR));
  files.push(...processed.files);
  skipped.push(...processed.problems);
  return { peers, processedKeys: processed.keys, relayCursor, files, skipped };
}

/** The file's parsed JSON; undefined when it is missing or unusable (then said why in `skipped`). */
function readJson(path: string, files: string[], skipped: string[]): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      skipped.push(`Cannot read ${path}: ${(err as Error).message}`);
    }
    return undefined;
  }
  files.push(path);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    skipped.push(`${path} is not valid JSON`);
    return undefined;
  }
}

function readPeers(path: string, files: string[], skipped: string[]): LegacyState["peers"] {
  const parsed = readJson(path, files, skipped);
  if (parsed === undefined) return [];
  const list = (parsed as { peers?: unknown } | null)?.peers;
  if (!Array.isArray(list)) {
    skipped.push(`${path} has an unexpected shape: no "peers" list`);
    return [];
  }
  const peers: LegacyState["peers"] = [];
  let invalid = 0;
  let firstIssue = "";
  // Record by record: one bad record (an edit, a field from a newer version) must not lose every other peer.
  for (const item of list) {
    const record = peerRecordSchema.safeParse(item);
    if (record.success) {
      peers.push({ key: peerKey(record.data), record: record.data });
    } else {
      invalid++;
      const issue = record.error.issues[0];
      firstIssue ||= `${issue?.path.join(".") || "record"}: ${issue?.message}`;
    }
  }
  if (invalid > 0) {
    skipped.push(`${path}: ${invalid} of ${list.length} peer records are invalid (first: ${firstIssue})`);
  }
  return peers;
}

function readCursor(path: string, files: string[], skipped: string[]): string | null | undefined {
  const parsed = readJson(path, files, skipped);
  if (parsed === undefined) return undefined;
  const cursor = cursorFileSchema.safeParse(parsed);
  if (cursor.success) return cursor.data.cursor;
  skipped.push(`${path} has an unexpected shape: ${cursor.error.issues[0]?.message}`);
  return undefined;
}
