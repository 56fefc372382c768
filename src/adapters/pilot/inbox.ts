// Pilot inbox directory (`<home>/.pilot/inbox/`): the source of truth for inbound messages. Watches it for
// wake-ups, lists and reads files defensively (the daemon writes them non-atomically), and removes processed
// files one by one or moves failing ones to `inbox-dead-letter/`. Never uses `pilotctl inbox --clear`, which
// deletes files that arrived after the last read.
import { existsSync, type FSWatcher, mkdirSync, readdirSync, readFileSync, statSync, watch } from "node:fs";
import { mkdir, rename, stat, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import { parseAddress } from "./pilotctl.js";

export function inboxDir(home: string): string {
  return join(home, ".pilot", "inbox");
}

export function deadLetterDir(inbox: string): string {
  return join(dirname(inbox), "inbox-dead-letter");
}

const inboxFileSchema = z.object({
  type: z.string(),
  from: z.string(),
  data: z.string().optional(),
  data_b64: z.string().optional(),
  bytes: z.number().optional(),
  received_at: z.union([z.string(), z.number()]).optional(),
});

export interface InboxFile {
  name: string;
  path: string;
  type: string;
  /** Sender address as written by the daemon. */
  from: string;
  /** Sender node id (all 32 bits of the address). */
  fromNodeId: number;
  /** Payload text; `data_b64` is decoded as UTF-8. */
  data: string;
  /** The raw base64 payload when the daemon wrote `data_b64` (binary messages). */
  dataB64?: string;
  bytes?: number;
  receivedAt?: string | number;
  /** Size of the file on disk (for size caps before parsing the payload). */
  size: number;
}

export type ReadInboxResult =
  | { ok: InboxFile }
  | { retry: true }
  | { malformed: string }
  /** Moved away (another tool, or already processed) before we read it: nothing to do. */
  | { gone: true };

/** A half-written file is retried for this long after its last write before it counts as malformed. */
export const DEFAULT_PARTIAL_GRACE_MS = 2_000;

export interface ReadOptions {
  graceMs?: number;
  now?: () => number;
}

/**
 * Reads and classifies one inbox file. Synchronous on purpose: a local read is microseconds, while each promise
 * call costs a thread-pool round trip, which matters when draining a large backlog.
 */
export function readInboxFileSync(path: string, options: ReadOptions = {}): ReadInboxResult {
  let text: string;
  let mtimeMs: number;
  let size: number;
  try {
    const st = statSync(path);
    mtimeMs = st.mtimeMs;
    size = st.size;
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { gone: true };
    throw err;
  }
  return parseInboxFile(path, text, mtimeMs, size, options);
}

/** Classifies the text of one inbox file (pure; `mtimeMs` decides whether unparsable text may still grow). */
export function parseInboxFile(
  path: string,
  text: string,
  mtimeMs: number,
  size: number,
  options: ReadOptions = {},
): ReadInboxResult {
  const graceMs = options.graceMs ?? DEFAULT_PARTIAL_GRACE_MS;
  const now = options.now ?? Date.now;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // Most likely still being written: only a file that stays unparsable past the grace is malformed.
    if (now() - mtimeMs < graceMs) return { retry: true };
    return { malformed: `not JSON: ${(err as Error).message}` };
  }
  const file = inboxFileSchema.safeParse(parsed);
  if (!file.success) return { malformed: `unexpected shape: ${file.error.issues[0]?.message ?? "invalid"}` };
  const f = file.data;
  let fromNodeId: number;
  try {
    fromNodeId = parseAddress(f.from);
  } catch {
    // A sender we cannot map to a node id can never pass admission: treat the file as malformed.
    return { malformed: `unparsable sender address ${JSON.stringify(f.from)}` };
  }
  let data: string;
  if (f.data !== undefined) data = f.data;
  else if (f.data_b64 !== undefined) data = Buffer.from(f.data_b64, "base64").toString("utf8");
  else return { malformed: "neither data nor data_b64" };
  return {
    ok: {
      name: basename(path),
      path,
      type: f.type,
      from: f.from,
      fromNodeId,
      data,
      ...(f.data_b64 === undefined ? {} : { dataB64: f.data_b64 }),
      ...(f.bytes === undefined ? {} : { bytes: f.bytes }),
      ...(f.received_at === undefined ? {} : { receivedAt: f.received_at }),
      size,
    },
  };
}

export interface InboxEntry {
  name: string;
  path: string;
  mtimeMs: number;
  size: number;
}

/** Message files in the inbox, oldest first (by last write, then name). Missing directory = empty. Synchronous, as `readInboxFileSync`. */
export function listInboxFilesSync(dir: string): InboxEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const entries: InboxEntry[] = [];
  for (const name of names) {
    if (!name.endsWith(".json") || name.startsWith(".")) continue;
    const path = join(dir, name);
    // Undefined: deleted or moved between readdir and stat (eviction, another tool).
    const st = statSync(path, { throwIfNoEntry: false });
    if (st?.isFile()) entries.push({ name, path, mtimeMs: st.mtimeMs, size: st.size });
  }
  return entries.sort(byAge);
}

const byAge = (a: InboxEntry, b: InboxEntry) => a.mtimeMs - b.mtimeMs || a.name.localeCompare(b.name);

/** Removes one processed file; a file already gone is fine (idempotent). */
export async function deleteInboxFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/**
 * Moves a file that cannot be dispatched to `<pilot dir>/inbox-dead-letter/` with a `<name>.reason.json`
 * beside it. Returns the new path, or undefined when the file was already gone.
 */
export async function moveToDeadLetter(path: string, reason: string): Promise<string | undefined> {
  const dead = deadLetterDir(dirname(path));
  // Owner-only, like the daemon's own inbox: these are other people's messages.
  await mkdir(dead, { recursive: true, mode: 0o700 });
  let target = join(dead, basename(path));
  for (let i = 1; i < 1000; i++) {
    try {
      await stat(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") break;
      throw err;
    }
    // The old daemon's names can repeat (same type, same millisecond): never overwrite an earlier dead letter.
    target = join(dead, basename(path).replace(/\.json$/, `.${i}.json`));
  }
  try {
    await rename(path, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const note = { reason, moved_at: new Date().toISOString(), original_path: path };
  await writeFile(target.replace(/\.json$/, ".reason.json"), `${JSON.stringify(note, null, 2)}\n`);
  return target;
}

export interface InboxWatcher {
  /** Arms the watch again if it was lost (the directory removed, a watch error); a no-op while it works. */
  rearm(): void;
  close(): void;
}

/**
 * Calls `onWake(fileName?)` when something changes in the inbox. A hint only: the caller still lists the
 * directory (events can coalesce or be lost), and its timer-based reconciliation covers the gaps. The
 * directory is created if missing. A lost watch (the directory removed and recreated, a watch error) is armed
 * again by `rearm()`, which the inbox loop calls at every cycle: no timer of its own.
 */
export function watchInbox(dir: string, onWake: (fileName?: string) => void): InboxWatcher {
  let watcher: FSWatcher | undefined;
  let closed = false;

  const lose = () => {
    watcher?.close();
    watcher = undefined;
  };

  const arm = () => {
    if (closed || watcher) return;
    try {
      // 0700 as the daemon creates it (the messages are private); the daemon writes into it as the same user.
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      watcher = watch(dir, { persistent: false }, (event, fileName) => {
        // inotify reports the watched directory's own removal as a rename and then goes silent.
        if (event === "rename" && !existsSync(dir)) {
          lose();
          return;
        }
        if (fileName === null || fileName === undefined) onWake();
        else onWake(String(fileName));
      });
      watcher.on("error", lose);
      // Re-arming may have missed files written meanwhile: wake the reader once.
      onWake();
    } catch {
      // mkdir or watch failed (e.g. the parent is being replaced): the next cycle tries again.
      lose();
    }
  };

  arm();
  return {
    rearm: arm,
    close() {
      closed = true;
      lose();
    },
  };
}
