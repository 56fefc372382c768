// Compiles the plugin's src/ and the bench's hub (peers-hub.ts) to plain JavaScript, as registry-build.ts does for
// the registry: the hub then runs as a deployment's code does, without tsx's loader. That loader's hooks thread
// alone costs about 1 s of CPU a minute in an otherwise idle process (measured here), more than the whole idle
// account it would be measuring. Types are only stripped (transpileModule, no type check: `npm run typecheck`).
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Inside the repo (git-ignored) so that the built files resolve packages from the repo's node_modules. */
const OUT = join(ROOT, ".tmp", "bench-hub");

function transpile(file: string): void {
  const { outputText } = ts.transpileModule(readFileSync(file, "utf8"), {
    fileName: file,
    compilerOptions: {
      target: ts.ScriptTarget.ES2023,
      // ESM output: the repo's package.json says "type": "module", which a lone transpile cannot see.
      module: ts.ModuleKind.ESNext,
      verbatimModuleSyntax: true,
    },
  });
  const out = join(OUT, relative(ROOT, file)).replace(/\.ts$/, ".js");
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, outputText);
}

function transpileTree(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) transpileTree(path);
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) transpile(path);
  }
}

/** Builds src/ and the hub; returns the hub's entry script (run it with `--hub`). */
export function buildHub(): string {
  rmSync(OUT, { recursive: true, force: true });
  transpileTree(join(ROOT, "src"));
  transpile(join(ROOT, "bench", "support", "peers-hub.ts"));
  return join(OUT, "bench", "support", "peers-hub.js");
}
