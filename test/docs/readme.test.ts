// Keeps README.md honest: every npm script it names exists, every relative link resolves, every config example
// is accepted by the real resolver, and the tool actions, gateway methods (with scopes and params) and lifecycle
// states it lists are exactly the ones the code has.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { gatewayMethodSpecs } from "../../src/adapters/openclaw/gateway-methods.js";
import { AGENT_NETWORK_ACTIONS } from "../../src/adapters/openclaw/tool.schema.js";
import { CHANNEL_ID, resolveAccounts } from "../../src/config.js";
import type { AccountLifecycle } from "../../src/machines/account.status.js";
import { AccountRuntimes } from "../../src/runtime/account-runtimes.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const readme = readFileSync(`${ROOT}README.md`, "utf8");
const scripts = (
  JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as { scripts: Record<string, string> }
).scripts;

/** The markdown section under a `## title` heading, up to the next `## ` heading. */
function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}`);
  expect(start, `README has no "## ${title}" section`).toBeGreaterThanOrEqual(0);
  const end = readme.indexOf("\n## ", start + 4);
  return readme.slice(start, end === -1 ? undefined : end);
}

/** Table rows of a section as cells (header and separator rows dropped). */
function rows(text: string): string[][] {
  return text
    .split("\n")
    .filter((line) => line.startsWith("| `"))
    .map((line) =>
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim()),
    );
}

function firstCode(cell: string | undefined): string | undefined {
  return cell?.match(/`([^`]+)`/)?.[1];
}

// Every lifecycle state, as the type lists them (the Record makes the compiler flag a new or removed state).
const LIFECYCLES: Record<AccountLifecycle, true> = {
  private: true,
  idle: true,
  registering: true,
  online: true,
  "re-registering": true,
  deregistering: true,
  stopped: true,
};

describe("README.md", () => {
  it("names only npm scripts that exist", () => {
    const named = [...readme.matchAll(/npm run ([a-z][\w:-]*)/g)].map((m) => m[1] as string);
    expect(named.length).toBeGreaterThan(5);
    expect([...new Set(named)].filter((name) => !(name in scripts))).toEqual([]);
  });

  it("links only to files that exist", () => {
    const links = [...readme.matchAll(/\]\(([^)]+)\)/g)]
      .map((m) => m[1] as string)
      .filter((href) => !/^(https?:|#|mailto:)/.test(href));
    expect(links).toContain("docs/configuration.md");
    expect(links.filter((href) => !existsSync(`${ROOT}${href.split("#")[0]}`))).toEqual([]);
  });

  it("links every machine diagram", () => {
    for (const machine of ["account", "daemon", "poll", "handshake"]) {
      expect(readme).toContain(`](docs/machines/${machine}.md)`);
    }
  });

  it("has config examples the resolver accepts", () => {
    const blocks = [...readme.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1] as string));
    const configs = blocks
      .map((block) => (block as { channels?: Record<string, unknown> }).channels?.[CHANNEL_ID])
      .filter((config) => config !== undefined);
    expect(configs.length).toBeGreaterThanOrEqual(2);
    const transports = configs.flatMap((config) => resolveAccounts(config, {}).map((a) => a.transport));
    expect(transports).toEqual(expect.arrayContaining(["relay", "pilot"]));
  });

  it("lists exactly the agent_network actions", () => {
    const listed = rows(section("The `agent_network` tool")).map((cells) => firstCode(cells[0]));
    expect(listed).toEqual([...AGENT_NETWORK_ACTIONS]);
  });

  it("lists exactly the gateway methods, with their scopes and params", () => {
    const specs = gatewayMethodSpecs(new AccountRuntimes());
    const listed = rows(section("Gateway methods"));
    expect(listed.map((cells) => firstCode(cells[0]))).toEqual(specs.map((spec) => spec.name));
    for (const spec of specs) {
      const cells = listed.find((row) => firstCode(row[0]) === spec.name) ?? [];
      expect(firstCode(cells[1]), `${spec.name} scope`).toBe(spec.scope);
      const documented = [...(cells[2] ?? "").matchAll(/`([A-Za-z]+)(\?)?[^`]*`/g)].map(
        (m) => `${m[1]}${m[2] ?? ""}`,
      );
      const shape = (spec.params as unknown as z.ZodObject<z.ZodRawShape>).shape;
      const actual = Object.entries(shape).map(
        ([key, schema]) => `${key}${(schema as z.ZodType).safeParse(undefined).success ? "?" : ""}`,
      );
      expect(documented.sort(), `${spec.name} params`).toEqual(actual.sort());
    }
  });

  it("explains every lifecycle state", () => {
    const listed = rows(section("Lifecycle of an account")).map((cells) => firstCode(cells[0]));
    expect(listed.sort()).toEqual(Object.keys(LIFECYCLES).sort());
  });

  it("keeps a Benchmarks section with the bench commands", () => {
    const bench = section("Benchmarks");
    for (const name of Object.keys(scripts).filter((s) => s.startsWith("bench:"))) {
      expect(bench).toContain(`npm run ${name}`);
    }
  });
});
