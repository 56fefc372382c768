// Runs a real OpenClaw gateway (the pinned version in openclaw-host/) with this plugin built from the repo (or
// installed from its packed tarball), in isolated temp dirs, bound to 127.0.0.1. Used by the end-to-end tests and `npm run demo`.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";

export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
export const openclawEntry = join(repoRoot, "openclaw-host/node_modules/openclaw/openclaw.mjs");

export interface GatewayOptions {
  /** `channels.agent-registry` of openclaw.json. */
  channelConfig: Record<string, unknown>;
  modelBaseUrl: string;
  /** Extra openclaw.json settings, merged into the base config (objects key by key, anything else replaced). */
  extraConfig?: Record<string, unknown>;
  env?: Record<string, string>;
  /** Keep dirs across restarts (the same state dir). */
  baseDir?: string;
  /**
   * Install the plugin with `openclaw plugins install <install> --force --accept-capabilities`, as a user does,
   * instead of loading a staged copy of src/ from `plugins.load.paths`: a packed tarball's path, or
   * `npm-pack:<path>`. The install runs `npm install` for the plugin's dependencies: npm_config_* in `env` reach it.
   */
  install?: string;
}

export interface Gateway {
  port: number;
  baseDir: string;
  stateDir: string;
  configPath: string;
  env: Record<string, string>;
  /** What `openclaw plugins install` printed, when the gateway got the plugin that way. */
  installOutput?: string;
  pid(): number | undefined;
  logs(): string;
  /** Runs the openclaw CLI against this gateway; throws with its output when it exits non-zero. */
  cli(
    args: string[],
    opts?: { timeoutMs?: number; reject?: boolean },
  ): Promise<{ stdout: string; stderr: string; exitCode: number }>;
  /** `openclaw gateway call <method> --params <json> --json`. */
  call<T = unknown>(method: string, params?: Record<string, unknown>): Promise<T>;
  /**
   * Many calls of one method from one CLI process (the CLI's own call path, `callGatewayFromCli`), a few at a
   * time: hundreds of calls without hundreds of CLI start-ups. Each result, or the error it ended with.
   */
  callMany<T = unknown>(
    method: string,
    paramsList: Array<Record<string, unknown>>,
    concurrency?: number,
  ): Promise<Array<{ ok: true; result: T } | { ok: false; error: string }>>;
  readConfig(): Record<string, unknown>;
  writeConfig(config: Record<string, unknown>): void;
  /** SIGTERM, wait for exit (bounded), SIGKILL if needed. */
  stop(timeoutMs?: number): Promise<number | null>;
  kill9(): Promise<void>;
  start(): Promise<void>;
  cleanup(): void;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Every file under `dir`, recursively, as paths relative to it, sorted. */
function filesUnder(dir: string, prefix = ""): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true })
    .flatMap((entry) => {
      const path = prefix ? `${prefix}/${entry.name}` : entry.name;
      return entry.isDirectory() ? filesUnder(dir, path) : [path];
    })
    .sort();
}

/**
 * The plugin built as it ships (scripts/build.mjs: compiled JavaScript plus the files it reads beside itself), once
 * per state of its sources: the build goes to a temporary directory named by a hash of src/ and the build inputs,
 * so each e2e file of a run reuses it and an edit to src/ gets a fresh one.
 */
function builtPlugin(): string {
  const hash = createHash("sha256");
  for (const path of filesUnder(join(repoRoot, "src"))) {
    hash.update(path);
    hash.update(readFileSync(join(repoRoot, "src", path)));
  }
  for (const input of ["tsconfig.json", "scripts/build.mjs"])
    hash.update(readFileSync(join(repoRoot, input)));
  const dir = join(tmpdir(), `ar-e2e-build-${hash.digest("hex").slice(0, 16)}`);
  if (existsSync(join(dir, "index.js"))) return dir;
  const building = `${dir}.${process.pid}`;
  execFileSync(process.execPath, [join(repoRoot, "scripts", "build.mjs"), "--out-dir", building], {
    cwd: repoRoot,
    stdio: "inherit",
  });
  try {
    renameSync(building, dir);
  } catch (error) {
    // Another process finished the same build first: theirs is as good as ours.
    rmSync(building, { recursive: true, force: true });
    if (!existsSync(join(dir, "index.js"))) throw error;
  }
  return dir;
}

/**
 * A copy of the plugin as the packed package ships it: dist/ (built by builtPlugin), package.json and the manifest,
 * with node_modules linked to the repo's. OpenClaw then loads dist/index.js natively, as for an installed plugin;
 * loading src/ through jiti instead cost about 25 s of CPU per gateway start and 15 s per CLI call that loads
 * plugins. OpenClaw captures a plugin's whole source package before running its tools; loading the repo root
 * itself fails there ("Plugin entry is outside its captured source package"), since the root also holds
 * openclaw-host/ with a second node_modules of its own.
 */
export function stagePlugin(baseDir: string): string {
  const dir = join(baseDir, "plugin");
  mkdirSync(dir, { recursive: true });
  cpSync(builtPlugin(), join(dir, "dist"), { recursive: true });
  cpSync(join(repoRoot, "openclaw.plugin.json"), join(dir, "openclaw.plugin.json"));
  cpSync(join(repoRoot, "package.json"), join(dir, "package.json"));
  if (!existsSync(join(dir, "node_modules")))
    symlinkSync(join(repoRoot, "node_modules"), join(dir, "node_modules"), "dir");
  return dir;
}

/** The command owner every test gateway starts with: an operator's Telegram account, never a peer agent. */
export const OPERATOR_OWNER = "telegram:100000001";

function baseConfig(
  opts: GatewayOptions,
  port: number,
  token: string,
  pluginDir: string | null,
): Record<string, unknown> {
  return deepMerge(
    {
      gateway: { mode: "local", port, bind: "loopback", auth: { mode: "token", token } },
      plugins: {
        ...(pluginDir ? { load: { paths: [pluginDir] } } : {}),
        entries: { "agent-registry": { enabled: true } },
      },
      models: {
        providers: {
          scripted: {
            api: "openai-completions",
            baseUrl: opts.modelBaseUrl,
            apiKey: "scripted-test-key",
            models: [{ id: "scripted", name: "Scripted test model", contextWindow: 128000, maxTokens: 4096 }],
          },
        },
      },
      agents: { defaults: { model: { primary: "scripted/scripted" } } },
      // The operator's own chat account is the command owner, as the README asks before any peer is approved:
      // without one, `openclaw pairing approve` makes the approved peer the owner, and that config write restarts
      // the gateway (commands.* has no hot-reload rule), closing every connection for a while.
      commands: { ownerAllowFrom: [OPERATOR_OWNER] },
      channels: { "agent-registry": opts.channelConfig },
    },
    opts.extraConfig ?? {},
  );
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function deepMerge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

async function waitFor(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export async function createGateway(opts: GatewayOptions): Promise<Gateway> {
  const baseDir = opts.baseDir ?? mkdtempSync(join(tmpdir(), "ar-gateway-"));
  const home = join(baseDir, "home");
  const stateDir = join(baseDir, "state");
  const configPath = join(baseDir, "openclaw.json");
  mkdirSync(home, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  const port = await freePort();
  const token = randomBytes(16).toString("hex");
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: home,
    OPENCLAW_HOME: home,
    OPENCLAW_STATE_DIR: stateDir,
    OPENCLAW_CONFIG_PATH: configPath,
    OPENCLAW_GATEWAY_TOKEN: token,
    OPENCLAW_GATEWAY_PORT: String(port),
    OPENCLAW_DISABLE_BONJOUR: "1",
    OPENCLAW_NO_AUTO_UPDATE: "1",
    NO_COLOR: "1",
    // E2E_GATEWAY_LOG_LEVEL=debug puts the plugin's debug lines (actor transitions, inbox scans) and OpenClaw's
    // turn diagnostics into logs(), for finding where a slow or lost turn went.
    ...(process.env.E2E_GATEWAY_LOG_LEVEL ? { OPENCLAW_LOG_LEVEL: process.env.E2E_GATEWAY_LOG_LEVEL } : {}),
    ...opts.env,
  };
  const pluginDir = opts.install ? null : stagePlugin(baseDir);
  const config = baseConfig(opts, port, token, pluginDir);
  // OpenClaw refuses to install into a config it finds invalid, and `channels.agent-registry` is unknown until the
  // plugin is installed: the channel's settings go in after the install, as a user adds them.
  const { channels, ...beforeInstall } = config;
  writeFileSync(configPath, JSON.stringify(opts.install ? beforeInstall : config, null, 2));

  let child: ChildProcess | undefined;
  let output = "";
  const logPath = join(baseDir, "gateway.log");

  const gateway: Gateway = {
    port,
    baseDir,
    stateDir,
    configPath,
    env,
    pid: () => child?.pid,
    logs: () => output,
    async cli(args, cliOpts = {}) {
      const result = await execa(process.execPath, [openclawEntry, ...args], {
        env,
        extendEnv: false,
        reject: false,
        timeout: cliOpts.timeoutMs ?? 180_000,
        cwd: baseDir,
      });
      const exitCode = result.exitCode ?? -1;
      if (exitCode !== 0 && cliOpts.reject !== false) {
        throw new Error(
          `openclaw ${args.join(" ")} exited ${exitCode}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
        );
      }
      return { stdout: String(result.stdout), stderr: String(result.stderr), exitCode };
    },
    async call<T>(method: string, params: Record<string, unknown> = {}) {
      const { stdout } = await gateway.cli([
        "gateway",
        "call",
        method,
        "--params",
        JSON.stringify(params),
        "--json",
      ]);
      return parseJsonOutput(stdout) as T;
    },
    async callMany<T>(method: string, paramsList: Array<Record<string, unknown>>, concurrency = 4) {
      const script = join(baseDir, "call-many.mjs");
      const sdk = join(repoRoot, "openclaw-host/node_modules/openclaw/dist/plugin-sdk/gateway-runtime.js");
      writeFileSync(
        script,
        [
          `import { callGatewayFromCli } from ${JSON.stringify(sdk)};`,
          `import { readFileSync } from "node:fs";`,
          `const { method, list, concurrency } = JSON.parse(readFileSync(0, "utf8"));`,
          "const out = new Array(list.length);",
          "let next = 0;",
          "await Promise.all(Array.from({ length: concurrency }, async () => {",
          "  while (next < list.length) {",
          "    const i = next++;",
          "    try { out[i] = { ok: true, result: await callGatewayFromCli(method, { json: true, timeout: '60000' }, list[i]) }; }",
          "    catch (error) { out[i] = { ok: false, error: String(error?.message ?? error) }; }",
          "  }",
          "}));",
          'process.stdout.write("\\n" + JSON.stringify(out) + "\\n");',
          "process.exit(0);",
        ].join("\n"),
      );
      const result = await execa(process.execPath, [script], {
        env,
        extendEnv: false,
        input: JSON.stringify({ method, list: paramsList, concurrency }),
        timeout: 30 * 60_000,
        cwd: baseDir,
      });
      const line = String(result.stdout).trim().split("\n").at(-1) ?? "[]";
      return JSON.parse(line) as Array<{ ok: true; result: T } | { ok: false; error: string }>;
    },
    readConfig: () => JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>,
    writeConfig: (config) => writeFileSync(configPath, JSON.stringify(config, null, 2)),
    async start() {
      output = "";
      child = spawn(
        process.execPath,
        [
          // E2E_GATEWAY_CPU_PROF=<dir> writes a V8 CPU profile of each gateway run there (on a clean stop).
          ...(process.env.E2E_GATEWAY_CPU_PROF
            ? ["--cpu-prof", "--cpu-prof-dir", process.env.E2E_GATEWAY_CPU_PROF]
            : []),
          openclawEntry,
          "gateway",
          "run",
          "--port",
          String(port),
          "--bind",
          "loopback",
        ],
        {
          env,
          cwd: baseDir,
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      // The log file holds this run's output; each chunk is appended (rewriting the whole log per chunk cost
      // quadratic time over a 1,000-turn run).
      writeFileSync(logPath, "");
      const append = (chunk: Buffer) => {
        output += chunk.toString("utf8");
        appendFileSync(logPath, chunk);
      };
      child.stdout?.on("data", append);
      child.stderr?.on("data", append);
      const exited = new Promise<void>((resolve) => child?.once("exit", () => resolve()));
      let dead = false;
      void exited.then(() => {
        dead = true;
      });
      await waitFor(
        async () => {
          if (dead) throw new Error(`gateway exited during start:\n${output.slice(-4000)}`);
          return portOpen(port);
        },
        Number(process.env.GATEWAY_START_TIMEOUT_MS ?? 240_000),
        "the gateway to listen",
      );
    },
    async stop(timeoutMs = 20_000) {
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return proc?.exitCode ?? null;
      const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill9() {
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
      proc.kill("SIGKILL");
      await exited;
    },
    cleanup() {
      if (!opts.baseDir && !process.env.KEEP_E2E_DIRS) rmSync(baseDir, { recursive: true, force: true });
    },
  };
  if (opts.install) {
    const { stdout, stderr } = await gateway.cli(
      ["plugins", "install", opts.install, "--force", "--accept-capabilities"],
      { timeoutMs: 300_000 },
    );
    gateway.installOutput = `${stdout}${stderr}`;
    gateway.writeConfig(deepMerge(gateway.readConfig(), { channels }));
  }
  return gateway;
}

async function portOpen(port: number): Promise<boolean> {
  const { connect } = await import("node:net");
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** The CLI may print warnings before its JSON; take the first top-level JSON value. */
export function parseJsonOutput(stdout: string): unknown {
  const start = stdout.search(/^[{[]/m);
  if (start < 0) throw new Error(`no JSON in output: ${stdout.slice(0, 2000)}`);
  return JSON.parse(stdout.slice(start));
}

export async function waitUntil<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  what: string,
  intervalMs = 500,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`,
  );
}

/** A pending OpenClaw pairing request of this channel, as `openclaw pairing list --json` shows it. */
export interface PairingRequest {
  id: string;
  code: string;
  meta?: Record<string, string>;
}

/** The account's pending pairing requests, read through OpenClaw's own CLI. */
export async function pairingRequests(gateway: Gateway, accountId: string): Promise<PairingRequest[]> {
  const { stdout } = await gateway.cli([
    "pairing",
    "list",
    "agent-registry",
    "--account",
    accountId,
    "--json",
  ]);
  return (parseJsonOutput(stdout) as { requests: PairingRequest[] }).requests;
}
