// The operator's side of the command line: `agent-registry release` (admin key from the environment, never an
// argument) against a running registry, and the INSECURE warning of `serve --agent-tokens off`.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseReleaseArgs, parseServeArgs } from "../../src/registry-server/cli.js";
import { startTestRegistry } from "./helpers.js";

const BIN = fileURLToPath(new URL("../../bin/agent-registry.mjs", import.meta.url));

function run(
  args: string[],
  env: Record<string, string>,
  until?: RegExp,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [BIN, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, AGENT_REGISTRY_ADMIN_KEY: "", AGENT_REGISTRY_API_KEY: "", ...env },
    });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
      if (until?.test(stdout)) proc.kill("SIGTERM");
    });
    proc.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    proc.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("agent-registry CLI (operator)", () => {
  it("parses --release-after and --admin-key, the admin key also from the environment", () => {
    const o = parseServeArgs(["serve", "--release-after", "60"], { AGENT_REGISTRY_ADMIN_KEY: "k" });
    expect(o).toMatchObject({ offlineRetentionSeconds: 60, adminKey: "k" });
    expect(() => parseReleaseArgs(["release", "--url", "http://x", "--hostname", "h"], {})).toThrow(
      /AGENT_REGISTRY_ADMIN_KEY/,
    );
  });

  it("release frees a held hostname with the admin key from the environment", async () => {
    const r = await startTestRegistry({ adminKey: "the-admin-key" });
    await r.register({ hostname: "keeper", installation_id: "inst-a" });
    const refused = await run(["release", "--url", r.url, "--hostname", "keeper"], {
      AGENT_REGISTRY_ADMIN_KEY: "bad-admin-key-42",
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/release failed \(403\)/);
    expect(refused.stderr).not.toContain("bad-admin-key-42");
    const ok = await run(["release", "--url", r.url, "--hostname", "keeper"], {
      AGENT_REGISTRY_ADMIN_KEY: "the-admin-key",
    });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/released keeper: its key is unbound and its token void/);
    expect(
      (await r.call("POST", "/api/v1/agents/", { body: { hostname: "keeper", installation_id: "inst-b" } }))
        .status,
    ).toBe(201);
  }, 30_000);

  it("says in its help that release unbinds a lost key too", async () => {
    const help = await run(["--help"], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(
      /release --url URL --hostname HOSTNAME\s+frees a hostname whose owner lost its agent token or its key/,
    );
  }, 30_000);

  it("serve --agent-tokens off warns that it is insecure", async () => {
    const out = await run(
      ["serve", "--port", "0", "--db", ":memory:", "--agent-tokens", "off"],
      {},
      /listening/,
    );
    expect(out.stderr).toMatch(/WARNING: INSECURE: --agent-tokens off/);
  }, 30_000);
});
