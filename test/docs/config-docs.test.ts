// Keeps docs/configuration.md in step with the zod schema: the committed file must equal what the code renders
// now, every field must be described, and every documented env fallback must be one the resolver really reads.
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { channelConfigJsonSchema, resolveAccounts } from "../../src/config.js";
import {
  configFieldDocs,
  ENV_FALLBACKS,
  FALLBACK_DESCRIPTIONS,
  renderConfigDocs,
} from "../../src/config-docs.js";

const DOC = new URL("../../docs/configuration.md", import.meta.url);

async function readOrNull(url: URL): Promise<string | null> {
  try {
    return await readFile(url, "utf8");
  } catch (error) {
    // Only "no such file" means missing; anything else is a real failure.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/** Every leaf path of the JSON Schema, the way configFieldDocs names them. */
function schemaPaths(properties: Record<string, unknown>, prefix = ""): string[] {
  const paths: string[] = [];
  for (const [name, node] of Object.entries(properties)) {
    const path = `${prefix}${name}`;
    const n = node as {
      properties?: Record<string, unknown>;
      items?: { properties?: Record<string, unknown> };
    };
    paths.push(path);
    if (n.properties) paths.push(...schemaPaths(n.properties, `${path}.`));
    if (n.items?.properties) paths.push(...schemaPaths(n.items.properties, `${path}[].`));
  }
  return paths;
}

const fields = configFieldDocs();
const byPath = new Map(fields.map((field) => [field.path, field]));

describe("docs/configuration.md", () => {
  it("is up to date with src/config.ts", async () => {
    const committed = await readOrNull(DOC);
    expect(committed, "docs/configuration.md is missing: run `npm run docs` and commit it").not.toBeNull();
    expect(
      committed === renderConfigDocs(),
      "docs/configuration.md is stale: run `npm run docs` and commit it",
    ).toBe(true);
  });

  it("documents every field, nested ones included", () => {
    for (const path of [
      "hostname",
      "registryApiKey",
      "visibility.source",
      "visibility.schedule.windows[].days",
      "pilot.manageDaemon",
      "handshake.approver",
      "inbound.autoReplyBudget",
      "accounts",
    ]) {
      expect(byPath.has(path), path).toBe(true);
    }
    const containers = new Set(["pilot", "handshake", "inbound", "outbound", "visibility"]);
    const schema = channelConfigJsonSchema() as { properties: Record<string, unknown> };
    const missing = schemaPaths(schema.properties)
      .filter((path) => !containers.has(path))
      // accounts documents its entries as "every field above".
      .filter((path) => !path.startsWith("accounts."))
      .filter((path) => !byPath.has(path));
    expect(missing).toEqual([]);
  });

  it("gives every field a description (add .describe() in src/config.ts)", () => {
    expect(fields.filter((field) => field.description === "").map((field) => field.path)).toEqual([]);
  });

  it("has no fallback description for a field that no longer exists", () => {
    const schema = channelConfigJsonSchema() as { properties: Record<string, unknown> };
    const paths = new Set(schemaPaths(schema.properties));
    expect(Object.keys(FALLBACK_DESCRIPTIONS).filter((path) => !paths.has(path))).toEqual([]);
  });

  it("shows the resolver's defaults, not only the schema's", () => {
    expect(byPath.get("transport")?.defaultValue).toBe('`"pilot"`');
    expect(byPath.get("heartbeatIntervalSeconds")?.defaultValue).toBe("`60`");
    expect(byPath.get("registryUrl")?.defaultValue).toBe('`"http://127.0.0.1:8001"`');
    expect(byPath.get("pilot.pollIntervalSeconds")?.defaultValue).toBe("`15`");
    expect(byPath.get("name")?.defaultValue).toBe("the account id");
    expect(byPath.get("hostname")?.defaultValue).toBe("—");
  });

  it("names every env variable a description mentions as an env fallback", () => {
    for (const field of fields) {
      const mentioned = [...field.description.matchAll(/\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b/g)]
        .map((m) => m[0])
        .filter((name) => name !== "PILOT_SOCKET" && name !== "X_REGISTRY_KEY");
      for (const name of mentioned) expect(field.env, `${field.path} mentions ${name}`).toContain(name);
    }
  });

  for (const [path, names] of Object.entries(ENV_FALLBACKS)) {
    for (const name of names) {
      it(`${path} really falls back to env ${name}`, () => {
        const value = path.endsWith("Url") ? "http://127.0.0.1:9999" : "from-env-value";
        const config =
          path === "visibility.convexUrl"
            ? { hostname: "envcheck", visibility: { source: "convex" } }
            : { hostname: "envcheck" };
        const [account] = resolveAccounts(config, { [name]: value });
        const resolved = path
          .split(".")
          .reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], account);
        expect(resolved).toBe(value);
      });
    }
  }
});
