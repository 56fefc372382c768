// The package as ClawHub and OpenClaw's installer read it: ClawHub's own publish check (`clawhub package publish
// --dry-run`, which packs the folder and validates package.json without the network) passes, the OpenClaw versions
// the package claims are the pinned gateway the tests run, and installs load the built peer of the source entry.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { validateOpenClawExternalCodePluginPackageJson } from "clawhub/dist/schema/openclawContract.js";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./e2e/support/gateway.js";
import { npmEnv } from "./e2e/support/npm-registry.js";

interface PackageJson {
  name: string;
  version: string;
  peerDependencies: { openclaw: string };
  openclaw: {
    extensions: string[];
    runtimeExtensions: string[];
    compat: { pluginApi: string; minGatewayVersion: string };
    build: { openclawVersion: string; pluginSdkVersion: string };
  };
}

const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as PackageJson;
const pinned = (
  JSON.parse(readFileSync(join(repoRoot, "openclaw-host/package.json"), "utf8")) as {
    dependencies: { openclaw: string };
  }
).dependencies.openclaw;
// The project has no public repository yet; ClawHub requires one for a code plugin, and a real publish must name it.
const SOURCE_REPO = "example/openclaw-agent-registry";

/** OpenClaw's date versions (2026.9.6) as comparable numbers. */
const dateVersion = (version: string): number => {
  const [year = 0, month = 0, day = 0] = version.split(".").map(Number);
  return year * 10_000 + month * 100 + day;
};

describe("the package's OpenClaw and ClawHub metadata", () => {
  it("passes ClawHub's package.json check", () => {
    expect(validateOpenClawExternalCodePluginPackageJson(pkg).issues).toEqual([]);
  });

  it("says it was built against the pinned OpenClaw, and asks for no newer one", () => {
    expect(pkg.openclaw.build).toEqual({ openclawVersion: pinned, pluginSdkVersion: pinned });
    const floor = /^>=(\d+\.\d+\.\d+)$/.exec(pkg.openclaw.compat.pluginApi)?.[1];
    expect(floor, "openclaw.compat.pluginApi: a floor like >=2026.9.6").toBeDefined();
    expect(dateVersion(floor as string)).toBeLessThanOrEqual(dateVersion(pinned));
    expect(pkg.openclaw.compat.minGatewayVersion).toBe(floor);
    expect(pkg.peerDependencies.openclaw.startsWith(`>=${floor} `)).toBe(true);
  });

  it("points installs at the built peer of each source entry (src/x.ts -> dist/x.js)", () => {
    expect(pkg.openclaw.runtimeExtensions).toEqual(
      pkg.openclaw.extensions.map((entry) => entry.replace(/^\.\/src\//, "./dist/").replace(/\.ts$/, ".js")),
    );
  });

  it("passes `clawhub package publish --dry-run` with no registry to reach", async () => {
    const bin = join(
      dirname(createRequire(import.meta.url).resolve("clawhub/package.json")),
      "bin",
      "clawdhub.js",
    );
    const home = mkdtempSync(join(tmpdir(), "ar-clawhub-"));
    try {
      const head = await execa("git", ["rev-parse", "HEAD"], { cwd: repoRoot, reject: false });
      const commit = head.exitCode === 0 ? String(head.stdout).trim() : "0".repeat(40);
      const result = await execa(
        process.execPath,
        [bin, "package", "publish", repoRoot, "--dry-run", "--json"].concat([
          "--source-repo",
          SOURCE_REPO,
          "--source-commit",
          commit,
        ]),
        {
          cwd: home,
          extendEnv: false,
          reject: false,
          timeout: 120_000,
          env: {
            ...npmEnv(),
            HOME: home,
            CLAWHUB_CONFIG_PATH: join(home, "clawhub.json"),
            // Nothing listens there: a dry run that tried to reach ClawHub would fail here.
            CLAWHUB_REGISTRY: "http://127.0.0.1:9",
            CLAWHUB_SITE: "http://127.0.0.1:9",
            CLAWHUB_DISABLE_TELEMETRY: "1",
          },
        },
      );
      expect(result.exitCode, `${result.stdout}\n${result.stderr}`).toBe(0);
      const plan = JSON.parse(String(result.stdout)) as Record<string, unknown>;
      expect(plan).toMatchObject({ name: pkg.name, version: pkg.version, family: "code-plugin", commit });
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  }, 120_000);
});
