// Durability and process lifecycle: data acknowledged with a 2xx survives a restart (file db) and a kill -9 of
// the `agent-registry` bin; SIGTERM lets in-flight requests finish and exits 0.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { startRegistryServer } from "../../src/registry-server/index.js";

const dir = mkdtempSync(join(tmpdir(), "agent-registry-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BIN = new URL("../../bin/agent-registry.mjs", import.meta.url).pathname;

interface Child {
  proc: ChildProcess;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns the bin on an ephemeral port and waits for its one "listening on <url>" line. */
async function spawnRegistry(db: string): Promise<Child> {
  const proc = spawn(process.execPath, [BIN, "serve", "--port", "0", "--db", db], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let stderr = "";
  proc.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`registry did not start in 20 s: ${stderr}`)), 20_000);
    createInterface({ input: proc.stdout! }).once("line", (line) => {
      clearTimeout(timer);
      const match = /^agent-registry listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
      if (match?.[1]) resolve(match[1]);
      else reject(new Error(`unexpected first line: ${line}`));
    });
    proc.once("exit", () => reject(new Error(`registry exited before listening: ${stderr}`)));
  });
  return { proc, url, exited };
}

async function post(url: string, body: unknown, token?: string) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("durability", () => {
  it("keeps agents, tokens, messages and trust across a restart on the same file", async () => {
    const db = join(dir, "restart.db");
    const first = await startRegistryServer({ db });
    const a = await post(`${first.url}/api/v1/agents/`, {
      hostname: "alpha",
      installation_id: "A",
      capabilities: ["x"],
    });
    const b = await post(`${first.url}/api/v1/agents/`, { hostname: "beta", installation_id: "B" });
    await post(`${first.url}/api/v1/trust/request`, { from_id: "A", to_id: "B" }, String(a.body.agent_token));
    const sent = await post(
      `${first.url}/api/v1/agents/messages/send`,
      {
        from_installation_id: "A",
        from_hostname: "alpha",
        to_hostname: "beta",
        body: "kept",
        message_id: "m1",
      },
      String(a.body.agent_token),
    );
    expect(sent.status).toBe(200);
    await first.close();

    const second = await startRegistryServer({ db });
    try {
      const again = await post(
        `${second.url}/api/v1/agents/`,
        { hostname: "alpha", installation_id: "A" },
        String(a.body.agent_token),
      );
      expect(again.body.id).toBe(a.body.id);
      const search = await fetch(`${second.url}/api/v1/agents/search?capabilities=x&include_offline=true`);
      expect(((await search.json()) as { total: number }).total).toBe(0); // re-registration replaced capabilities
      const inbox = await fetch(`${second.url}/api/v1/agents/messages/inbox/B`, {
        headers: { authorization: `Bearer ${b.body.agent_token}` },
      });
      expect(
        ((await inbox.json()) as { messages: Array<{ body: unknown }> }).messages.map((m) => m.body),
      ).toEqual(["kept"]);
      const pending = await fetch(`${second.url}/api/v1/trust/pending/B`, {
        headers: { authorization: `Bearer ${b.body.agent_token}` },
      });
      expect(((await pending.json()) as { requests: unknown[] }).requests).toHaveLength(1);
    } finally {
      await second.close();
    }
  });

  it("keeps a 2xx-acknowledged registration and message after kill -9 of the bin", async () => {
    const db = join(dir, "kill9.db");
    const first = await spawnRegistry(db);
    const a = await post(`${first.url}/api/v1/agents/`, { hostname: "alpha", installation_id: "A" });
    expect(a.status).toBe(201);
    const b = await post(`${first.url}/api/v1/agents/`, { hostname: "beta", installation_id: "B" });
    const sent = await post(
      `${first.url}/api/v1/agents/messages/send`,
      { from_installation_id: "A", from_hostname: "alpha", to_hostname: "beta", body: "survives" },
      String(a.body.agent_token),
    );
    expect(sent.status).toBe(200);
    first.proc.kill("SIGKILL");
    expect((await first.exited).signal).toBe("SIGKILL");

    const second = await spawnRegistry(db);
    try {
      const got = await fetch(`${second.url}/api/v1/agents/${a.body.id}`);
      expect(got.status).toBe(200);
      expect(((await got.json()) as { hostname: string }).hostname).toBe("alpha");
      // The token issued before the crash still authenticates.
      const hb = await post(
        `${second.url}/api/v1/agents/${a.body.id}/heartbeat`,
        {},
        String(a.body.agent_token),
      );
      expect(hb.status).toBe(200);
      const inbox = await fetch(`${second.url}/api/v1/agents/messages/inbox/B`, {
        headers: { authorization: `Bearer ${b.body.agent_token}` },
      });
      expect(
        ((await inbox.json()) as { messages: Array<{ body: unknown }> }).messages.map((m) => m.body),
      ).toEqual(["survives"]);
    } finally {
      second.proc.kill("SIGTERM");
      await second.exited;
    }
  }, 60_000);

  it("on SIGTERM answers the in-flight long-poll, then exits 0", async () => {
    const child = await spawnRegistry(join(dir, "sigterm.db"));
    const b = await post(`${child.url}/api/v1/agents/`, { hostname: "beta", installation_id: "B" });
    const polling = fetch(`${child.url}/api/v1/agents/messages/inbox/B?wait=20`, {
      headers: { authorization: `Bearer ${b.body.agent_token}` },
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = Date.now();
    child.proc.kill("SIGTERM");
    const res = await polling;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ messages: [], next_cursor: null });
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(5000);
  }, 60_000);

  it("refuses bad arguments with exit code 2 and a usage line", async () => {
    const proc = spawn(process.execPath, [BIN, "serve", "--agent-tokens", "maybe"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    proc.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => proc.once("exit", resolve));
    expect(code).toBe(2);
    expect(stderr).toMatch(/--agent-tokens takes on or off/);
  }, 30_000);
});
