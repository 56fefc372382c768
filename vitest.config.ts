import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// OpenClaw lives in openclaw-host/ (see scripts/install-openclaw-host.mjs); the gateway aliases
// `openclaw/plugin-sdk/*` to its own copy at run time, and tests resolve it the same way.
const sdkDir = fileURLToPath(
  new URL("./openclaw-host/node_modules/openclaw/dist/plugin-sdk/", import.meta.url),
);

export default defineConfig({
  resolve: {
    alias: [{ find: /^openclaw\/plugin-sdk\/(.*)$/, replacement: `${sdkDir}$1.js` }],
  },
  test: {
    testTimeout: 20_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: "all", include: ["test/**/*.test.ts"] } },
      // The registry suite once more on PostgreSQL (one server for the run, see test/support/postgres.ts). Left out:
      // tests of SQLite itself (its files, migrations and in-memory index), the PostgreSQL store's own tests and the
      // replica tests (which always run on PostgreSQL).
      {
        extends: true,
        test: {
          name: "registry-postgres",
          include: ["test/registry-server/**/*.test.ts"],
          exclude: [
            "test/registry-server/durability.test.ts",
            "test/registry-server/migration.test.ts",
            "test/registry-server/search-index.test.ts",
            "test/registry-server/search-words.test.ts",
            "test/registry-server/key-statistics.test.ts",
            "test/registry-server/store.test.ts",
            "test/registry-server/store.operations.test.ts",
            "test/registry-server/postgres-store.test.ts",
            "test/registry-server/replicas.test.ts",
            "test/registry-server/inbox-waiters.test.ts",
            "test/registry-server/heartbeat-batcher.test.ts",
          ],
          env: { REGISTRY_TEST_STORE: "postgres" },
          globalSetup: ["test/support/postgres.global.ts"],
        },
      },
    ],
  },
});
