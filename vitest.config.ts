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
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
  },
});
