// Compiles the reference registry (src/registry-server/) to plain JavaScript for the registry benchmark, so the
// server it measures runs the way a deployment does (built JS, as bin/agent-registry.mjs runs dist/) rather than
// through tsx's loader, whose hooks thread and on-the-fly transpiling cost memory and start-up time. Types are
// only stripped here (transpileModule, no type check): `npm run typecheck` checks them.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";

const SOURCE = new URL("../../src/", import.meta.url);
/** The folders of src/ the server imports (registry-server/ reaches ../identity/), built side by side. */
const FOLDERS = ["registry-server", "identity"];
/** Inside the repo (git-ignored) so that the built files resolve `zod` from the repo's node_modules. */
const OUT = new URL("../../.tmp/bench-registry/", import.meta.url);

/** Builds the registry server and returns the path of an entry script taking the CLI's arguments. */
export function buildRegistryServer(): string {
  const out = OUT.pathname;
  rmSync(out, { recursive: true, force: true });
  for (const folder of FOLDERS) build(new URL(`${folder}/`, SOURCE), join(out, folder));
  // The PostgreSQL store's migrations (SQL files), beside the store as `npm run build` puts them in dist/.
  const migrations = new URL("registry-server/migrations/", SOURCE).pathname;
  if (existsSync(migrations))
    cpSync(migrations, join(out, "registry-server", "migrations"), { recursive: true });
  // The same two lines as bin/agent-registry.mjs once it has found a build.
  const entry = join(out, "registry-server", "serve.mjs");
  writeFileSync(
    entry,
    'import { runCli } from "./cli.js";\nprocess.exitCode = await runCli(process.argv.slice(2));\n',
  );
  return entry;
}

function build(source: URL, out: string): void {
  mkdirSync(out, { recursive: true });
  for (const name of readdirSync(source)) {
    if (!name.endsWith(".ts") || name.endsWith(".d.ts")) continue;
    const text = readFileSync(new URL(name, source), "utf8");
    const { outputText } = ts.transpileModule(text, {
      fileName: name,
      compilerOptions: {
        target: ts.ScriptTarget.ES2023,
        // ESM output: the repo's package.json says "type": "module", which a lone transpile cannot see.
        module: ts.ModuleKind.ESNext,
        verbatimModuleSyntax: true,
      },
    });
    writeFileSync(join(out, name.replace(/\.ts$/, ".js")), outputText);
  }
}
