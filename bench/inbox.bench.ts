// Inbox bench (`npm run bench:inbox`): latency from inbox file write to dispatch, backlog throughput, idle CPU of
// the receiver, and the original plugin's read-then-clear poll as a baseline; then any extra section found in
// `bench/*.section.ts` (a module exporting `section: BenchSection`, e.g. the relay transport's, with `relay_`
// keys). Prints a table; the LAST line is one JSON object with every section's keys.
// Env: BENCH_ONLY=latency,backlog,... (section names), BENCH_IDLE_SECONDS (default 60), BENCH_LATENCY_MESSAGES,
// BENCH_BACKLOG_MESSAGES, BENCH_BASELINE_MESSAGES / _SECONDS / _POLL_SECONDS / _DISPATCH_MS.
import { readdirSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { inboxSections } from "./support/inbox-sections.js";
import type { BenchRow, BenchSection } from "./support/section.js";

const here = dirname(fileURLToPath(import.meta.url));

async function extraSections(): Promise<BenchSection[]> {
  const out: BenchSection[] = [];
  for (const file of readdirSync(here)
    .filter((f) => f.endsWith(".section.ts"))
    .sort()) {
    const mod = (await import(pathToFileURL(join(here, file)).href)) as { section?: BenchSection };
    if (mod.section) out.push(mod.section);
  }
  return out;
}

function printTable(rows: Array<BenchRow & { section: string }>): void {
  const header = ["section", "metric", "value", "target", "ok"];
  const cells = rows.map((r) => [
    r.section,
    r.metric,
    r.value,
    r.target ?? "",
    r.ok === undefined ? "" : r.ok ? "yes" : "NO",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
  const line = (c: string[]) => c.map((v, i) => v.padEnd(widths[i] ?? 0)).join(" | ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
  for (const c of cells) console.log(line(c));
}

async function main(): Promise<void> {
  const only = (process.env.BENCH_ONLY ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const sections = [...inboxSections, ...(await extraSections())].filter(
    (s) => only.length === 0 || only.includes(s.name),
  );
  const rows: Array<BenchRow & { section: string }> = [];
  const json: Record<string, number | null> = {};
  for (const section of sections) {
    console.error(`bench:inbox: running ${section.name}...`);
    const result = await section.run();
    for (const row of result.rows) rows.push({ ...row, section: section.name });
    Object.assign(json, result.json);
  }
  // Latency figures mean little on a saturated host: say how busy it was.
  const load = loadavg()
    .map((l) => l.toFixed(1))
    .join(" / ");
  rows.push({
    section: "host",
    metric: "load average 1/5/15 min (cores)",
    value: `${load} (${availableParallelism()})`,
  });
  printTable(rows);
  console.log(JSON.stringify(json));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
