// Writes docs/machines/<name>.md (a Mermaid diagram) for every machine in src/machines/*.machine.ts.
// `npm run diagrams` regenerates them; test/docs/diagrams.test.ts fails when a committed one is stale.
import { mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { AnyStateMachine } from "xstate";
import { rootEntry, rootHandlers, toMermaid } from "../src/machines/diagram.js";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface MachineDoc {
  /** Path relative to the repository root, e.g. `docs/machines/account.md`. */
  file: string;
  content: string;
}

function isMachine(value: unknown): value is AnyStateMachine {
  return (
    typeof value === "object" &&
    value !== null &&
    "root" in value &&
    "config" in value &&
    typeof (value as { provide?: unknown }).provide === "function"
  );
}

/** What the root does whatever its state: its entry actions and its targetless handlers, as a table. */
function renderRoot(machine: AnyStateMachine): string {
  const entry = rootEntry(machine);
  const handlers = rootHandlers(machine);
  if (entry.length === 0 && handlers.length === 0) return "";
  const lines = ["", "In every state:", ""];
  if (entry.length > 0) lines.push(`- on start: ${entry.map((a) => `\`${a}\``).join(", ")}`, "");
  if (handlers.length > 0) {
    lines.push("| event | guard | actions |", "| --- | --- | --- |");
    for (const h of handlers) {
      lines.push(
        `| \`${h.event}\` | ${h.guard || "-"} | ${h.actions.map((a) => `\`${a}\``).join(", ") || "-"} |`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

function renderDoc(name: string, sourceFile: string, machines: Array<[string, AnyStateMachine]>): string {
  const sections = machines.map(([exportName, machine]) => {
    const heading = machines.length > 1 ? `## \`${exportName}\` (id \`${machine.id}\`)\n\n` : "";
    return `${heading}\`\`\`mermaid\n${toMermaid(machine)}\`\`\`\n${renderRoot(machine)}`;
  });
  return [
    `# ${name} machine`,
    "",
    `<!-- Generated from ${sourceFile} by \`npm run diagrams\`. Do not edit by hand. -->`,
    "",
    "Labels: `done X` / `error X` are the outcome of the invoked actor X, `after D` is the delay D,",
    "`always` is an immediate (eventless) transition, `[guard]` names the condition.",
    "",
    ...sections,
  ].join("\n");
}

/** Renders the docs of every machine module, sorted by file name. */
export async function renderMachineDocs(root: string = REPO_ROOT): Promise<MachineDoc[]> {
  const machinesDir = path.join(root, "src", "machines");
  const files = (await readdir(machinesDir)).filter((file) => file.endsWith(".machine.ts")).sort();
  const docs: MachineDoc[] = [];
  for (const file of files) {
    const name = file.slice(0, -".machine.ts".length);
    const module = (await import(pathToFileURL(path.join(machinesDir, file)).href)) as Record<
      string,
      unknown
    >;
    const machines = Object.entries(module)
      .filter((entry): entry is [string, AnyStateMachine] => isMachine(entry[1]))
      .sort(([a], [b]) => a.localeCompare(b));
    if (machines.length === 0) continue;
    docs.push({
      file: path.posix.join("docs", "machines", `${name}.md`),
      content: renderDoc(name, `src/machines/${file}`, machines),
    });
  }
  return docs;
}

export async function writeMachineDocs(root: string = REPO_ROOT): Promise<MachineDoc[]> {
  const docs = await renderMachineDocs(root);
  await mkdir(path.join(root, "docs", "machines"), { recursive: true });
  for (const doc of docs) await writeFile(path.join(root, doc.file), doc.content);
  return docs;
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const docs = await writeMachineDocs();
  for (const doc of docs) console.log(`wrote ${doc.file}`);
}
