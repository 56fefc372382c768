// Persistent state of one account, under OpenClaw's state dir so a reload or restart keeps the same registry
// record (no id churn): its identity (installation id, generated once; registered agent id and token) in
// identity.json, and everything that changes often (peers, cursors, processed keys) in its database.
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { z } from "zod";
import type { Log } from "../../log.js";
import { ACCOUNT_DB_FILE, type AccountDb, AccountDbError, openAccountDb } from "./account-db.js";
import { readJsonFile, writeJsonAtomic } from "./json-file.js";

const identitySchema = z.object({
  installationId: z.string().min(1).nullable().default(null),
  agentId: z.string().min(1).nullable().default(null),
  /** Kept across deregistration: the registry holds our hostname for us and only this token reclaims it. */
  agentToken: z.string().min(1).nullable().default(null),
  /** Our public peer id from the last registration (null on registries without peer ids). */
  peerId: z.string().min(1).nullable().default(null),
  registryUrl: z.string().nullable().default(null),
  /**
   * Registrations at other registries this account used before, by registry URL: switching registryUrl and back
   * must find its token again, since that registry still holds the hostname for it.
   */
  otherRegistries: z
    .record(
      z.string(),
      z.object({
        agentId: z.string().min(1).nullable(),
        agentToken: z.string().min(1).nullable(),
        peerId: z.string().min(1).nullable(),
      }),
    )
    .default({}),
  /** Operator's run-time visibility override (gateway method agent-registry.visibility); null = follow config. */
  discoverableOverride: z.boolean().nullable().default(null),
});
export type AccountIdentity = z.infer<typeof identitySchema>;

export interface AccountStateStore {
  readonly dir: string;
  identity(): AccountIdentity;
  update(patch: Partial<AccountIdentity>): AccountIdentity;
  /** The configured id wins; else the persisted one; else a new one, persisted before first use. */
  ensureInstallationId(configured: string | null): string;
  /**
   * The account database (account.db in `dir`), opened on first use: a store used only for the identity creates
   * no database and imports no legacy files. Throws once the store is closed.
   */
  readonly db: AccountDb;
  /** Closes the database if it was opened; the identity stays readable. Safe to call twice. */
  close(): void;
}

export interface AccountStateOptions {
  /** For the database: its one-time import of the legacy files, and records it skips. */
  log?: Pick<Log, "info" | "warn">;
}

export function accountStateDir(stateRoot: string, accountId: string): string {
  return join(stateRoot, "agent-registry", "accounts", encodeURIComponent(accountId));
}

export function createAccountStateStore(dir: string, options: AccountStateOptions = {}): AccountStateStore {
  const path = join(dir, "identity.json");
  const empty: AccountIdentity = {
    installationId: null,
    agentId: null,
    agentToken: null,
    peerId: null,
    registryUrl: null,
    otherRegistries: {},
    discoverableOverride: null,
  };
  let current = readJsonFile(path, identitySchema, empty);
  let db: AccountDb | null = null;
  let closed = false;
  return {
    dir,
    get db() {
      if (closed)
        throw new AccountDbError("open", join(dir, ACCOUNT_DB_FILE), `the account state in ${dir} is closed`);
      db ??= openAccountDb(dir, options.log ? { log: options.log } : {});
      return db;
    },
    close() {
      closed = true;
      db?.close();
    },
    identity: () => ({ ...current }),
    update(patch) {
      current = { ...current, ...patch };
      writeJsonAtomic(path, current);
      return { ...current };
    },
    ensureInstallationId(configured) {
      if (configured) return configured;
      if (current.installationId) return current.installationId;
      return this.update({ installationId: `oc-${randomUUID()}` }).installationId!;
    },
  };
}
