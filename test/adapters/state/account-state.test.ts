// The account state store owns the account database: opened on first use, closed with the store.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ACCOUNT_DB_FILE, AccountDbError } from "../../../src/adapters/state/account-db.js";
import {
  type AccountStateStore,
  createAccountStateStore,
} from "../../../src/adapters/state/account-state.js";

describe("account state store", () => {
  let dir: string;
  let stores: AccountStateStore[];
  const create = () => {
    const store = createAccountStateStore(dir);
    stores.push(store);
    return store;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "account-state-"));
    stores = [];
  });
  afterEach(() => {
    for (const store of stores) store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("opens no database until it is used", () => {
    const store = create();
    store.ensureInstallationId(null);
    expect(existsSync(join(dir, ACCOUNT_DB_FILE))).toBe(false);
    expect(store.db).toBe(store.db);
    expect(existsSync(join(dir, ACCOUNT_DB_FILE))).toBe(true);
  });

  it("closes the database with the store, twice without harm, and keeps the identity readable", () => {
    const store = create();
    const id = store.ensureInstallationId(null);
    const { db } = store;
    db.cursor("relay").save("3");
    store.close();
    store.close();
    expect(() => db.loadPeers()).toThrow(AccountDbError);
    expect(() => store.db).toThrow(/closed/);
    expect(store.identity().installationId).toBe(id);
    expect(create().db.cursor("relay").load()).toBe("3");
  });

  it("closes without ever opening the database", () => {
    create().close();
    expect(existsSync(join(dir, ACCOUNT_DB_FILE))).toBe(false);
  });
});
