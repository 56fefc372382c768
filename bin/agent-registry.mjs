#!/usr/bin/env node
// Launcher of the reference Agent Registry: runs the built CLI when dist/ exists, else the TypeScript source
// through tsx (so it works in a fresh checkout without a build).
import { existsSync } from "node:fs";

const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 13)) {
  process.stderr.write(
    `agent-registry needs Node >= 22.13 for node:sqlite (this is ${process.versions.node}); run it with Node 24, e.g. npx agent-registry\n`,
  );
  process.exit(1);
}

const built = new URL("../dist/registry-server/cli.js", import.meta.url);
let cli;
if (existsSync(built)) {
  cli = await import(built.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  cli = await import(new URL("../src/registry-server/cli.ts", import.meta.url).href);
}
process.exitCode = await cli.runCli(process.argv.slice(2));
