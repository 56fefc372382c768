// Builds the plugin as it ships: TypeScript compiled into dist/ (or --out-dir <dir>), plus the files the built code
// reads beside itself: the registry's PostgreSQL migrations and the network page's assets. `npm run build` runs it;
// the e2e harness builds into a temporary directory with it, so tests load what users install.
import { execFileSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Non-TypeScript files under src/ that the built code reads at run time, copied to the same place under dist/. */
export const RUNTIME_FILES = ["registry-server/migrations", "adapters/openclaw/network-page/assets"];

const root = fileURLToPath(new URL("../", import.meta.url));

/** Compiles src/ into `outDir` and copies RUNTIME_FILES next to the output. */
export function build(outDir = join(root, "dist")) {
  rmSync(outDir, { recursive: true, force: true });
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json"), "--outDir", outDir], {
    cwd: root,
    stdio: "inherit",
  });
  for (const path of RUNTIME_FILES) cpSync(join(root, "src", path), join(outDir, path), { recursive: true });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf("--out-dir");
  build(at > 0 ? resolve(process.argv[at + 1] ?? "dist") : undefined);
}
