// The persisted, bounded set of inbound message keys already handled (dispatched or refused), so a message is
// never dispatched twice even when its inbox file survives a crash. Kept as an in-memory Set plus an append-only
// log (one JSON string per line) compacted into an atomically replaced snapshot; `record` resolves only once the
// key reached the file, so the caller can delete the source message afterwards (record, then delete).
import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { readJsonFile, writeJsonAtomic } from "../state/json-file.js";

export const DEFAULT_PROCESSED_CAPACITY = 10_000;

/**
 * `process` (default): every key is written to the kernel before `record` resolves, which survives a killed
 * process; the file is fdatasync'ed at most every `syncIntervalMs`, so a power loss can at worst re-dispatch the
 * messages of that last interval (a duplicate, never a loss). `power`: fdatasync before every `record` resolves
 * (about 3 ms each on a typical ext4 disk, which caps a backlog at a few hundred messages per second).
 */
export type ProcessedKeysDurability = "process" | "power";

export interface ProcessedKeysOptions {
  /** Directory of this account's inbound state; created if missing. */
  dir: string;
  /** How many of the most recent keys are remembered. Default 10,000 (the Pilot daemon's inbox cap). */
  capacity?: number;
  durability?: ProcessedKeysDurability;
  syncIntervalMs?: number;
}

export interface ProcessedKeys {
  has(key: string): boolean;
  /** Remembers `key`; resolves once it is written to the file (see `ProcessedKeysDurability`). */
  record(key: string): Promise<void>;
  readonly size: number;
  /** Forces the file to disk. */
  flush(): void;
  close(): void;
}

export class ProcessedKeysError extends Error {
  override name = "ProcessedKeysError";
  constructor(
    readonly operation: "open" | "record" | "compact",
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const snapshotSchema = z.object({ v: z.literal(1), keys: z.array(z.string()) });

export const PROCESSED_SNAPSHOT_FILE = "processed-keys.json";
export const PROCESSED_LOG_FILE = "processed-keys.log";

/** Reads the snapshot and the log (a torn last line from a crash mid-append is dropped: its record never resolved). */
function loadKeys(snapshotPath: string, logPath: string): { keys: string[]; logBytes: number } {
  const snapshot = readJsonFile(snapshotPath, snapshotSchema, { v: 1, keys: [] });
  const keys = [...snapshot.keys];
  let text = "";
  try {
    text = readFileSync(logPath, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new ProcessedKeysError("open", logPath, `Cannot read ${logPath}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  const complete = text.lastIndexOf("\n") + 1;
  for (const line of text.slice(0, complete).split("\n")) {
    if (line === "") continue;
    try {
      const key: unknown = JSON.parse(line);
      if (typeof key === "string") keys.push(key);
    } catch {
      // A line mangled by a crash (or an editor): that record never resolved, so its message is still in the inbox.
    }
  }
  return { keys, logBytes: Buffer.byteLength(text.slice(0, complete)) };
}

export function openProcessedKeys(options: ProcessedKeysOptions): ProcessedKeys {
  const capacity = options.capacity ?? DEFAULT_PROCESSED_CAPACITY;
  const durability = options.durability ?? "process";
  const syncIntervalMs = options.syncIntervalMs ?? 1_000;
  const snapshotPath = join(options.dir, PROCESSED_SNAPSHOT_FILE);
  const logPath = join(options.dir, PROCESSED_LOG_FILE);

  // Make sure the directory exists (writeJsonAtomic creates it with 0700) before opening the log.
  const loaded = loadKeys(snapshotPath, logPath);
  const keys = new Set<string>();
  for (const key of loaded.keys) {
    keys.delete(key);
    keys.add(key);
  }
  while (keys.size > capacity) keys.delete(keys.values().next().value as string);
  writeJsonAtomic(snapshotPath, { v: 1, keys: [...keys] });

  let fd: number | undefined;
  try {
    fd = openSync(logPath, "a+", 0o600);
    // The snapshot now holds every key: start an empty log (also drops a torn last line).
    ftruncateSync(fd, 0);
  } catch (err) {
    throw new ProcessedKeysError("open", logPath, `Cannot open ${logPath}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let logLines = 0;
  let dirty = false;
  let syncTimer: NodeJS.Timeout | undefined;

  /** Forces the log to disk now (blocking): on close and in `power` durability. */
  const sync = () => {
    if (syncTimer) clearTimeout(syncTimer);
    syncTimer = undefined;
    if (fd === undefined || !dirty) return;
    fdatasyncSync(fd);
    dirty = false;
  };

  /** The periodic flush runs on the thread pool: a slow disk must not stall the event loop (and every inbox). */
  const syncInBackground = () => {
    syncTimer = undefined;
    if (fd === undefined || !dirty) return;
    dirty = false;
    fdatasync(fd, (err) => {
      // Best effort: the keys are already in the kernel (safe from a killed process); retry at the next interval.
      if (err) dirty = true;
    });
  };

  const compact = () => {
    if (fd === undefined) return;
    try {
      writeJsonAtomic(snapshotPath, { v: 1, keys: [...keys] });
      ftruncateSync(fd, 0);
      logLines = 0;
      dirty = false;
    } catch (err) {
      // A crash between the two steps leaves keys in both files: loading de-duplicates them.
      throw new ProcessedKeysError(
        "compact",
        snapshotPath,
        `Cannot compact ${snapshotPath}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  };

  return {
    has: (key) => keys.has(key),
    get size() {
      return keys.size;
    },
    async record(key) {
      if (fd === undefined) throw new ProcessedKeysError("record", logPath, "processed-keys store is closed");
      if (keys.has(key)) return;
      keys.add(key);
      if (keys.size > capacity) keys.delete(keys.values().next().value as string);
      try {
        // One write(2) per key: in the kernel (safe from a killed process) before we resolve.
        writeSync(fd, `${JSON.stringify(key)}\n`);
      } catch (err) {
        // Kept in memory: this process still will not dispatch it twice; the caller decides about the source.
        throw new ProcessedKeysError(
          "record",
          logPath,
          `Cannot write ${logPath}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      logLines++;
      dirty = true;
      if (logLines >= capacity) compact();
      else if (durability === "power") sync();
      else if (!syncTimer) {
        syncTimer = setTimeout(syncInBackground, syncIntervalMs);
        syncTimer.unref?.();
      }
    },
    flush: sync,
    close() {
      if (fd === undefined) return;
      sync();
      if (fstatSync(fd).size > 0) compact();
      closeSync(fd);
      fd = undefined;
    },
  };
}
