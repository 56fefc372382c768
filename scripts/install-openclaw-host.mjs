// Installs the pinned OpenClaw gateway into openclaw-host/ after the root install.
// Why a second install: OpenClaw's preinstall refuses Node < 24.16, and within one `npm install` it runs before
// the `node` dev dependency (Node 24) is linked. The root postinstall runs after, with Node 24 first on PATH.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const host = join(root, "openclaw-host");
if (process.env.AGENT_REGISTRY_SKIP_OPENCLAW_HOST === "1") {
  console.log("[openclaw-host] skipped (AGENT_REGISTRY_SKIP_OPENCLAW_HOST=1)");
  process.exit(0);
}
const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  console.error(
    `[openclaw-host] Node ${process.versions.node} is running this script; expected the repo's Node 24.`,
  );
  process.exit(1);
}
const lockPath = join(host, "package-lock.json");
const hasLock = existsSync(lockPath);
// Skip the ~2 min reinstall when the host already matches its lockfile (a marker holds the lockfile's hash).
const marker = join(host, "node_modules", ".installed-lock-sha256");
const lockHash = hasLock ? createHash("sha256").update(readFileSync(lockPath)).digest("hex") : null;
if (lockHash && existsSync(marker) && readFileSync(marker, "utf8").trim() === lockHash) {
  console.log("[openclaw-host] up to date");
  process.exit(0);
}
const npmCli = process.env.npm_execpath;
const args = [hasLock ? "ci" : "install", "--no-audit", "--no-fund", "--prefix", host];
const command = npmCli ? process.execPath : "npm";
const argv = npmCli ? [npmCli, ...args] : args;
console.log(`[openclaw-host] npm ${args.join(" ")}`);
const result = spawnSync(command, argv, { stdio: "inherit", env: process.env });
if (result.status === 0 && lockHash) writeFileSync(marker, `${lockHash}\n`);
process.exit(result.status ?? 1);
