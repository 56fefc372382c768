// Keeps docs/machines/*.md in step with the machines: each committed diagram must equal what the code renders
// now. When this fails, run `npm run diagrams` and commit the result.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { renderMachineDocs } from "../../scripts/diagrams.js";
import { accountMachine } from "../../src/machines/account.machine.js";
import { eventLabel, toMermaid } from "../../src/machines/diagram.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

async function readOrNull(file: string): Promise<string | null> {
  try {
    return await readFile(path.join(ROOT, file), "utf8");
  } catch (error) {
    // Only "no such file" means missing; anything else is a real failure.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

const docs = await renderMachineDocs(ROOT);

describe("machine diagrams in docs/machines", () => {
  it("cover every machine module", () => {
    expect(docs.map((doc) => doc.file)).toContain("docs/machines/account.md");
  });

  for (const doc of docs) {
    it(`${doc.file} is up to date`, async () => {
      const committed = await readOrNull(doc.file);
      expect(committed, `${doc.file} is missing: run \`npm run diagrams\` and commit it`).not.toBeNull();
      expect(committed === doc.content, `${doc.file} is stale: run \`npm run diagrams\` and commit it`).toBe(
        true,
      );
    });
  }

  it("has no diagram left over from a removed machine", async () => {
    const present = (await readdir(path.join(ROOT, "docs", "machines"))).filter((f) => f.endsWith(".md"));
    const expected = new Set(docs.map((doc) => path.basename(doc.file)));
    const orphans = present.filter((file) => !expected.has(file) && file !== "README.md");
    expect(orphans, "diagrams without a machine: run `npm run diagrams` and delete these").toEqual([]);
  });
});

describe("toMermaid", () => {
  const text = toMermaid(accountMachine);

  it("renders a state diagram with the lifecycle states and the final state", () => {
    expect(text.startsWith("stateDiagram-v2\n")).toBe(true);
    for (const state of ["private", "idle", "registering", "reregistering", "deregistering", "stopped"]) {
      expect(text).toMatch(new RegExp(`^  state ${state}$`, "m"));
    }
    expect(text).toContain('state "online" as online {');
    expect(text).toContain("stopped --> [*]");
  });

  it("labels invoke outcomes, delays, eventless transitions and guards", () => {
    expect(text).toContain("online__beating --> reregistering: error sendHeartbeat [isNotFound]");
    expect(text).toContain("online__waiting --> online__beating: after heartbeatInterval");
    expect(text).toContain("starting --> registering: always [isDiscoverable]");
    expect(eventLabel("xstate.after.5000.x.y")).toBe("after 5000 ms");
  });

  it("leaves out transitions that only update context", () => {
    expect(text).not.toMatch(/registering --> registering/);
  });
});
