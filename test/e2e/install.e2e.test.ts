// End to end, installed as users install it: `npm pack` (prepack builds dist/), then `openclaw plugins install
// <tgz> --force --accept-capabilities` into a fresh OpenClaw state directory, no staged copy. The install runs
// `npm install` for the plugin's dependencies; here npm is pointed at a registry on 127.0.0.1 serving them from
// this repo's node_modules, so nothing leaves the machine. Then a real gateway runs the installed copy with two
// relay accounts against the reference registry: both register, one finds the other through agent-registry.search,
// asks for a handshake, the other's operator approves it, and one agent-registry.send is delivered. The same
// tarball also installs through `npm-pack:` (the managed npm project OpenClaw's docs ask publishers to test).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validateOpenClawExternalCodePluginPackageContents } from "clawhub/dist/schema/openclawContract.js";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import { createGateway, type Gateway, parseJsonOutput, repoRoot, waitUntil } from "./support/gateway.js";
import { type ModelServer, startModelServer } from "./support/model-server.js";
import { type LocalNpmRegistry, npmEnv, startLocalNpmRegistry } from "./support/npm-registry.js";
import { LEAN_AGENT } from "./support/turns.js";

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  entryCount: number;
  files: Array<{ path: string }>;
}

/** The parts of `openclaw plugins inspect <id> --json` this test reads. */
interface Inspection {
  plugin: { source: string; origin: string; status: string };
  install: { source: string; installPath: string };
  gatewayMethods?: unknown[];
}

interface OutboxReply {
  accounts: Array<{
    counts: Record<"queued" | "sent" | "delivered" | "refused" | "failed", number>;
    messages: Array<{ id: string; state: string }>;
  }>;
}

/** What the package may hold: the built plugin and registry, the launcher, the manifest, the README. */
const SHIPPED =
  /^(package\.json|README\.md|openclaw\.plugin\.json|bin\/agent-registry\.mjs|dist\/[\w/.-]+\.js|dist\/registry-server\/migrations\/postgres\/\d{4}_\w+\.sql|dist\/adapters\/openclaw\/network-page\/assets\/[\w.]+)$/;

describe("the packed package, installed with `openclaw plugins install` into a fresh OpenClaw", () => {
  const workDir = mkdtempSync(join(tmpdir(), "ar-install-e2e-"));
  let packed: PackResult;
  let npmRegistry: LocalNpmRegistry;
  let registry: RegistryServerHandle;
  let model: ModelServer;
  let gateway: Gateway;
  let installMs = 0;

  const peersOf = async (accountId: string) =>
    JSON.stringify(await gateway.call("agent-registry.peers", { accountId }));
  const inspect = async (of: Gateway, runtime = false): Promise<Inspection> => {
    const args = ["plugins", "inspect", "agent-registry", "--json", ...(runtime ? ["--runtime"] : [])];
    return parseJsonOutput((await of.cli(args, { timeoutMs: 180_000 })).stdout) as Inspection;
  };
  /** npm settings for the installs: the registry on 127.0.0.1 and an empty cache of their own. */
  const npmSettings = (cacheDir: string) => ({
    npm_config_registry: `${npmRegistry.url}/`,
    npm_config_cache: cacheDir,
    npm_config_update_notifier: "false",
    npm_config_audit: "false",
    npm_config_fund: "false",
  });

  beforeAll(async () => {
    const pack = await execa("npm", ["pack", "--json", "--pack-destination", workDir], {
      cwd: repoRoot,
      env: npmEnv(),
      timeout: 300_000,
    });
    packed = (JSON.parse(String(pack.stdout)) as PackResult[])[0] as PackResult;
    console.log(
      `packed package: ${packed.filename}, ${packed.size} bytes packed, ${packed.unpackedSize} bytes unpacked, ${packed.entryCount} files`,
    );

    npmRegistry = await startLocalNpmRegistry(repoRoot, join(workDir, "npm-registry"));
    registry = await startRegistryServer({ port: 0, db: join(workDir, "registry.db") });
    model = await startModelServer(() => ({ text: "Noted." }));
    const t0 = Date.now();
    gateway = await createGateway({
      modelBaseUrl: model.url,
      // The README's command: the tarball's path.
      install: join(workDir, packed.filename),
      env: npmSettings(join(workDir, "npm-cache")),
      extraConfig: LEAN_AGENT,
      channelConfig: {
        registryUrl: registry.url,
        transport: "relay",
        heartbeatIntervalSeconds: 30,
        inbound: { autoReplyBudget: 0 },
        accounts: {
          alice: { hostname: "alice", displayName: "Alice", capabilities: ["poetry"] },
          bob: { hostname: "bob", displayName: "Bob", capabilities: ["carpentry"] },
        },
      },
    });
    installMs = Date.now() - t0;
    console.log(`openclaw plugins install: ${(installMs / 1000).toFixed(1)} s`);
    await gateway.start();
    await waitUntil(
      async () => {
        const { accounts } = await gateway.call<{ accounts: Array<{ lifecycle: string }> }>(
          "agent-registry.status",
        );
        return accounts.length === 2 && accounts.every((a) => a.lifecycle === "online");
      },
      180_000,
      "alice and bob online",
      1_000,
    );
  }, 600_000);

  afterAll(async () => {
    await gateway?.stop();
    gateway?.cleanup();
    await registry?.close();
    await model?.close();
    await npmRegistry?.close();
    if (!process.env.KEEP_E2E_DIRS) rmSync(workDir, { recursive: true, force: true });
  });

  it("packs only what runs: built JavaScript, the registry's migrations, the network page's assets, the launcher, the manifest and the README", () => {
    const paths = packed.files.map((f) => f.path);
    expect(paths.filter((path) => !SHIPPED.test(path))).toEqual([]);
    expect(paths).toEqual(expect.arrayContaining(["dist/index.js", "dist/registry-server/cli.js"]));
    // `agent-registry migrate` and `serve --db postgres://` read them next to the built store.
    const migrations = readdirSync(join(repoRoot, "src", "registry-server", "migrations", "postgres"));
    expect(migrations.length).toBeGreaterThan(0);
    for (const file of migrations)
      expect(paths).toContain(`dist/registry-server/migrations/postgres/${file}`);
    // The network page serves its HTML, script and style from beside its built module.
    const assets = readdirSync(join(repoRoot, "src", "adapters", "openclaw", "network-page", "assets"));
    expect(assets.length).toBeGreaterThan(0);
    for (const file of assets) expect(paths).toContain(`dist/adapters/openclaw/network-page/assets/${file}`);
    const manifest = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
      openclaw: { runtimeExtensions: string[] };
    };
    for (const entry of manifest.openclaw.runtimeExtensions)
      expect(paths).toContain(entry.replace(/^\.\//, ""));
    // What ClawHub checks before a real publish (its dry run stops short of it): the runtime entries are packed.
    expect(validateOpenClawExternalCodePluginPackageContents(manifest, paths).issues).toEqual([]);
  });

  it("installs the runtime dependencies through npm, from the registry on 127.0.0.1 only", () => {
    expect(gateway.installOutput).toContain("Installed plugin: agent-registry");
    const fetched = new Set(npmRegistry.requests.map((path) => path.slice(1)));
    const { dependencies } = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    for (const name of Object.keys(dependencies)) expect(fetched).toContain(name);
    const installed = join(gateway.stateDir, "extensions", "agent-registry");
    for (const name of Object.keys(dependencies)) {
      const pkg = JSON.parse(readFileSync(join(installed, "node_modules", name, "package.json"), "utf8")) as {
        version: string;
      };
      expect(pkg.version).toBe(dependencies[name]);
    }
  });

  it("runs the installed copy's built entry, not a staged or linked one", async () => {
    const { plugin, install } = await inspect(gateway);
    const installPath = join(gateway.stateDir, "extensions", "agent-registry");
    expect(install).toMatchObject({ source: "archive", installPath });
    expect(plugin).toMatchObject({ origin: "global", source: join(installPath, "dist", "index.js") });
    expect(gateway.readConfig()).not.toHaveProperty("plugins.load");
  }, 60_000);

  it("serves the network page and its assets from the installed copy", async () => {
    const origin = `http://127.0.0.1:${gateway.port}/plugins/agent-registry`;
    for (const [path, type] of [
      ["/", "text/html"],
      ["/assets/app.js", "text/javascript"],
      ["/assets/app.css", "text/css"],
    ] as const) {
      const response = await fetch(`${origin}${path}`);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("content-type"), path).toContain(type);
      expect((await response.text()).length, path).toBeGreaterThan(0);
    }
  }, 30_000);

  it("installs as an npm package too (`npm-pack:`, OpenClaw's managed npm project) and loads from there", async () => {
    const other = await createGateway({
      modelBaseUrl: model.url,
      install: `npm-pack:${join(workDir, packed.filename)}`,
      env: npmSettings(join(workDir, "npm-cache-npm-pack")),
      channelConfig: { registryUrl: registry.url, transport: "none" },
    });
    try {
      const { plugin, install, gatewayMethods } = await inspect(other, true);
      const project = join(other.stateDir, "npm", "projects", "openclaw-agent-registry");
      expect(install.source).toBe("npm");
      expect(plugin).toMatchObject({
        status: "loaded",
        source: join(project, "node_modules", "openclaw-agent-registry", "dist", "index.js"),
      });
      // --runtime imported the built entry with its installed dependencies and saw it register its methods.
      expect(gatewayMethods?.length ?? 0).toBeGreaterThan(0);
    } finally {
      other.cleanup();
    }
  }, 300_000);

  it("registers both accounts and finds alice through agent-registry.search", async () => {
    const found = await gateway.call<{ agents: Array<{ hostname: string }> }>("agent-registry.search", {
      accountId: "bob",
      capabilities: ["poetry"],
    });
    expect(found.agents.map((a) => a.hostname)).toEqual(["alice"]);
  }, 60_000);

  it("delivers a message after a handshake the operator approves", async () => {
    const asked = await gateway.call<{ ok: boolean }>("tools.invoke", {
      name: "agent_network",
      args: {
        action: "handshake",
        accountId: "bob",
        hostname: "alice",
        introduction: "Bob, a carpenter's helper.",
      },
    });
    expect(asked.ok, JSON.stringify(asked)).toBe(true);
    await waitUntil(
      async () =>
        JSON.stringify(await gateway.call("agent-registry.pending", { accountId: "alice" })).includes(
          '"bob"',
        ),
      60_000,
      "bob's request in alice's pending list",
      1_000,
    );
    await gateway.call("agent-registry.approve", { accountId: "alice", peer: "bob" });
    await waitUntil(
      async () => /"alice"[^}]*"trusted"|"trusted"[^}]*"alice"/.test(await peersOf("bob")),
      60_000,
      "bob to see alice as trusted",
      1_000,
    );

    const sent = await gateway.call<{ messageId: string; state: string }>("agent-registry.send", {
      accountId: "bob",
      to: "alice",
      text: "Hello from an installed plugin.",
    });
    expect(sent.messageId).toBeTruthy();
    const outbox = await waitUntil(
      async () => {
        const box = (await gateway.call<OutboxReply>("agent-registry.outbox", { accountId: "bob" }))
          .accounts[0];
        return box && box.counts.delivered >= 1 ? box : undefined;
      },
      90_000,
      "bob's message to show delivered",
      1_000,
    );
    expect(outbox.counts).toMatchObject({ delivered: 1, refused: 0, failed: 0 });
  }, 240_000);
});
