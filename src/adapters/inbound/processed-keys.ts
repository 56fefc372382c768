// The bounded set of inbound message keys already handled (dispatched or refused), so a message is never
// dispatched twice even when its source survives a crash: the interface the pipeline uses (the account database
// implements it, see adapters/state/account-db.ts), and the reader of the files it was kept in before, for the
// database's one-time import. `record` resolves only once the key is committed, so the caller can delete the
// source message afterwards (record, then delete).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

export const DEFAULT_PROCESSED_CAPACITY = 10_000;

/**
 * `process` (default): the key is committed to the kernel before `record` resolves, which survives a killed
 * process; the database syncs it to disk in the background within about a second, so a power loss can at worst
 * re-dispatch the messages of that last interval (a duplicate, never a loss). `power`: the commit itself is
 * synced (SQLite synchronous=FULL, an fsync of the WAL; a few ms each on a typical ext4 disk, which caps a
 * backlog at a few hundred messages per second).
 */
export type ProcessedKeysDurability = "process" | "power";

export interface ProcessedKeysOptions {
  /** How many of the most recent keys are remembered. Default 10,000 (the Pilot daemon's inbox cap). */
  capacity?: number;
  durability?: ProcessedKeysDurability;
}

export interface ProcessedKeys {
  /** In memory: never waits for the disk. */
  has(key: string): boolean;
  /** Remembers `key`; resolves once it is committed (see `ProcessedKeysDurability`). */
  record(key: string): Promise<void>;
  readonly size: number;
  /** Forces what was recorded to disk now. */
  flush(): void;
  /** Flushes and stops recording; safe to call twice. */
  close(): void;
}

export class ProcessedKeysError extends Error {
  override name = "ProcessedKeysError";
  constructor(
    readonly operation: "open" | "record",
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const snapshotSchema = z.object({ v: z.literal(1), keys: z.array(z.string()) });

/** The files of the store before the account database, under the account's inbound/ dir. */
export const PROCESSED_SNAPSHOT_FILE = "processed-keys.json";
export const PROCESSED_LOG_FILE = "processed-keys.log";

/** What the files of the store before the account database held (read once, to import them). */
export interface LegacyProcessedKeys {
  /** Oldest first, each once (a key seen again counts as its latest position). */
  keys: string[];
  /** The files that existed. */
  files: string[];
  /** What could not be read, each naming its file. */
  problems: string[];
}

/**
 * Reads processed-keys.json and processed-keys.log without failing: a corrupt snapshot is reported and the log
 * still read; a torn last line from a crash mid-append is dropped (its record never resolved).
 */
export function readLegacyProcessedKeys(dir: string): LegacyProcessedKeys {
  const snapshotPath = join(dir, PROCESSED_SNAPSHOT_FILE);
  const logPath = join(dir, PROCESSED_LOG_FILE);
  const found: string[] = [];
  const problems: string[] = [];
  const ordered = new Set<string>();
  const add = (key: string) => {
    ordered.delete(key);
    ordered.add(key);
  };
  const snapshotText = readIfPresent(snapshotPath, problems);
  if (snapshotText !== null) {
    found.push(snapshotPath);
    try {
      const parsed = snapshotSchema.safeParse(JSON.parse(snapshotText));
      if (parsed.success) for (const key of parsed.data.keys) add(key);
      else problems.push(`${snapshotPath} has an unexpected shape: ${parsed.error.issues[0]?.message}`);
    } catch {
      problems.push(`${snapshotPath} is not valid JSON`);
    }
  }
  const logText = readIfPresent(logPath, problems);
  if (logText !== null) {
    found.push(logPath);
    const complete = logText.lastIndexOf("\n") + 1;
    for (const line of logText.slice(0, complete).split("\n")) {
      if (line === "") continue;
      try {
        const key: unknown = JSON.parse(line);
        if (typeof key === "string") add(key);
      } catch {
        // A line mangled by a crash (or an editor): that record never resolved, so its message is still in the inbox.
      }
    }
  }
  return { keys: [...ordered], files: found, problems };
}

function readIfPresent(path: string, problems: string[]): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      problems.push(`Cannot read ${path}: ${(err as Error).message}`);
    }
    return null;
  }
}
