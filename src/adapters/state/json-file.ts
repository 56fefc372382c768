// Small JSON documents on disk with atomic replacement: write a temp file, fsync, rename. A crash leaves either
// the old or the new document, never half of one. Files are 0600 because some hold agent tokens.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { z } from "zod";

export class StateFileError extends Error {
  override name = "StateFileError";
  constructor(
    readonly operation: "read" | "write",
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, `${JSON.stringify(value, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/**
 * Reads and validates a JSON document; a missing file gives `fallback`. A corrupt file is an error that names
 * the file, so an operator can inspect it rather than the plugin silently starting over with a new identity.
 */
export function readJsonFile<T>(path: string, schema: z.ZodType<T>, fallback: T): T {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return fallback;
    throw new StateFileError("read", path, `Cannot read ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new StateFileError(
      "read",
      path,
      `${path} is not valid JSON; fix or remove it (the plugin will recreate it)`,
    );
  }
  const result = schema.safeParse(parsed);
  if (!result.success) {
    throw new StateFileError(
      "read",
      path,
      `${path} has an unexpected shape: ${result.error.issues[0]?.message}`,
    );
  }
  return result.data;
}
