// Graceful drain of the real `agent-registry serve` process: SIGTERM (sent to its PID) answers a parked
// long-poll with an empty page, lets a request that is still uploading finish, cuts what is left at the drain
// timeout, fails /readyz during the drain delay and exits 0; its stderr is JSON lines without secrets.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { parseServeArgs } from "../../src/registry-server/cli.js";

const dir = mkdtempSync(join(tmpdir(), "agent-registry-drain-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BIN = new URL("../../bin/agent-registry.mjs", import.meta.url).pathname;

interface Child {
  proc: ChildProcess;
  url: string;
  port: number;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
afterEach(() => {
  // Only the processes this file started, by their PID.
  for (const proc of children.splice(0))
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
});

function spawnCli(args: string[]): Omit<Child, "url" | "port"> {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(proc);
  let stderr = "";
  proc.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { proc, stderr: () => stderr, exited };
}

async function serve(extra: string[]): Promise<Child> {
  const child = spawnCli(["serve", "--port", "0", "--db", join(dir, `${Math.random()}.db`), ...extra]);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`registry did not start in 20 s: ${child.stderr()}`)),
      20_000,
    );
    createInterface({ input: child.proc.stdout! }).once("line", (line) => {
      clearTimeout(timer);
      const match = /^agent-registry listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
      if (match?.[1]) resolve(match[1]);
      else reject(new Error(`unexpected first line: ${line}`));
    });
    child.proc.once("exit", () => reject(new Error(`registry exited before listening: ${child.stderr()}`)));
  });
  return { ...child, url, port: Number(new URL(url).port) };
}

async function register(url: string, hostname: string): Promise<{ id: string; agent_token: string }> {
  const res = await fetch(`${url}/api/v1/agents/`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ hostname, installation_id: `inst-${hostname}` }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; agent_token: string };
}

/** A raw connection that has sent a registration's headers and half its body; `finish()` sends the rest. */
async function halfSentRegistration(port: number, hostname: string) {
  const body = JSON.stringify({ hostname, installation_id: `inst-${hostname}` });
  const socket: Socket = connect(port, "127.0.0.1");
  let received = "";
  socket.on("data", (chunk: Buffer) => {
    received += chunk.toString();
  });
  socket.on("error", () => {
    // Why safe: a cut connection is what one of the tests expects; `closed` reports it.
  });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  socket.write(
    `POST /api/v1/agents/ HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 10)}`,
  );
  return {
    finish: () => socket.write(body.slice(10)),
    closed,
    received: () => received,
  };
}

const jsonLines = (text: string) =>
  text
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("agent-registry serve drains on SIGTERM", () => {
  it("answers the parked long-poll, finishes the request still uploading and exits 0", async () => {
    const child = await serve(["--log-format", "json", "--drain-timeout", "10"]);
    const bob = await register(child.url, "bob");
    const polling = fetch(`${child.url}/api/v1/agents/messages/inbox/inst-bob?wait=25`, {
      headers: { authorization: `Bearer ${bob.agent_token}` },
    });
    const upload = await halfSentRegistration(child.port, "carol");
    await sleep(300);
    const started = Date.now();
    expect(process.kill(child.proc.pid!, "SIGTERM")).toBe(true);
    const poll = await polling;
    expect(poll.status).toBe(200);
    expect(await poll.json()).toEqual({ messages: [], next_cursor: null });
    expect(Date.now() - started).toBeLessThan(3000);
    // The upload is still in flight: the process waits for it.
    await sleep(300);
    expect(child.proc.exitCode).toBeNull();
    upload.finish();
    await upload.closed;
    expect(upload.received()).toMatch(/^HTTP\/1\.1 201 /);
    expect(upload.received()).toMatch(/connection: close/i);
    expect(await child.exited).toEqual({ code: 0, signal: null });
    const messages = jsonLines(child.stderr()).map((l) => l.msg);
    expect(messages).toEqual(expect.arrayContaining(["listening", "draining", "stopped"]));
  }, 60_000);

  it("cuts a request that does not finish by the drain timeout, then exits 0", async () => {
    const child = await serve(["--log-format", "json", "--drain-timeout", "1"]);
    const upload = await halfSentRegistration(child.port, "dave");
    await sleep(200);
    const started = Date.now();
    process.kill(child.proc.pid!, "SIGTERM");
    await upload.closed;
    expect(await child.exited).toEqual({ code: 0, signal: null });
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(5000);
    expect(jsonLines(child.stderr())).toContainEqual(
      expect.objectContaining({
        level: "warn",
        msg: "drain timeout reached: cutting the connections still open",
      }),
    );
  }, 60_000);

  it("fails /readyz at once and keeps serving during the drain delay (JSON logs by default off a terminal)", async () => {
    const child = await serve(["--drain-delay", "2"]);
    // At once: the signal handlers are on before the "listening" line is written.
    process.kill(child.proc.pid!, "SIGTERM");
    await sleep(100);
    const ready = await fetch(`${child.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { detail: string }).detail).toMatch(/^draining/);
    expect((await fetch(`${child.url}/livez`)).status).toBe(200);
    expect(await child.exited).toEqual({ code: 0, signal: null });
    // Every line of stderr is one JSON object (stderr is a pipe here, not a terminal).
    expect(jsonLines(child.stderr()).map((l) => l.msg)).toContain("draining");
  }, 60_000);
});

describe("agent-registry serve logs", () => {
  it("never writes a connection string's password, even when it cannot open the database", async () => {
    const child = spawnCli([
      "serve",
      "--port",
      "0",
      "--log-format",
      "json",
      "--db",
      "postgres://registry:hunter2@127.0.0.1:1/registry",
    ]);
    const { code } = await child.exited;
    expect(code).toBe(1);
    expect(child.stderr()).not.toContain("hunter2");
    const lines = jsonLines(child.stderr());
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.at(-1)).toMatchObject({ level: "error" });
  }, 60_000);

  it("refuses an unknown log format with exit 2", async () => {
    const child = spawnCli(["serve", "--log-format", "yaml"]);
    expect((await child.exited).code).toBe(2);
    expect(child.stderr()).toMatch(/--log-format takes json or text, not 'yaml'/);
  }, 30_000);

  it("defaults to text logs on a terminal and JSON lines elsewhere", () => {
    expect(parseServeArgs(["serve"], {}, true).logFormat).toBe("text");
    expect(parseServeArgs(["serve"], {}, false).logFormat).toBe("json");
    expect(parseServeArgs(["serve", "--log-format", "text"], {}, false).logFormat).toBe("text");
    expect(parseServeArgs(["serve"], { AGENT_REGISTRY_METRICS_TOKEN: "t" }, false).metricsToken).toBe("t");
    expect(parseServeArgs(["serve", "--drain-timeout", "3", "--drain-delay", "1"], {}, false)).toMatchObject({
      drainTimeoutMs: 3000,
      drainDelayMs: 1000,
    });
    expect(parseServeArgs(["serve"], {}, false).opsPort).toBeUndefined();
    expect(parseServeArgs(["serve", "--ops-port", "9090"], {}, false).opsPort).toBe(9090);
  });
});
