// Crash safety of the receiver + pipeline: a real receiver process is SIGKILLed mid-burst (three times) and
// restarted on the same inbox and state dirs. Nothing may be lost. The only window that can repeat a message
// is between the dispatcher returning and the processed key reaching the file (one write(2) a few microseconds
// later): a kill there re-dispatches that ONE message after the restart. A kill after the key is written but
// before the file is deleted is caught as a duplicate and the file is just deleted.
import { type ChildProcess, fork } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { inboxDir } from "../../../src/adapters/pilot/inbox.js";
import { formatAddress } from "../../../src/adapters/pilot/pilotctl.js";
import { createEnvelope, encodeEnvelope } from "../../../src/adapters/transport/envelope.js";
import { waitFor } from "./helpers.js";

const script = join(dirname(fileURLToPath(import.meta.url)), "../../../bench/support/receiver-process.ts");

function lines(path: string): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l !== "");
}

describe("pilot receiver crash and restart", () => {
  const children: ChildProcess[] = [];
  let root: string | undefined;

  afterEach(() => {
    for (const child of children) {
      // Only our own children, by PID; one already gone is fine.
      if (child.exitCode === null && child.signalCode === null && child.pid)
        process.kill(child.pid, "SIGKILL");
    }
    if (root) rmSync(root, { recursive: true, force: true });
  });

  function startChild(env: Record<string, string>): Promise<ChildProcess> {
    const child = fork(script, [], {
      execArgv: ["--import", "tsx"],
      env: { ...process.env, ...env },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    children.push(child);
    return new Promise((resolve, reject) => {
      child.once("message", () => resolve(child));
      child.once("exit", (code) => reject(new Error(`receiver process exited early (${code})`)));
    });
  }

  function exited(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => child.once("exit", () => resolve()));
  }

  it("loses nothing and repeats at most one message per kill", { timeout: 60_000 }, async () => {
    root = mkdtempSync(join(tmpdir(), "receiver-crash-"));
    const home = join(root, "home");
    const inbox = inboxDir(home);
    mkdirSync(inbox, { recursive: true });
    const out = join(root, "dispatched.log");
    const total = 1_000;
    const expected = new Set<string>();
    for (let i = 0; i < total; i++) {
      const id = `m-${i}`;
      expected.add(`env:${id}`);
      const data = encodeEnvelope(createEnvelope({ fromHostname: "alice", body: `#${i}`, id }));
      const name = `TEXT-${String(i).padStart(5, "0")}.json`;
      writeFileSync(join(inbox, name), JSON.stringify({ type: "TEXT", from: formatAddress(5), data }));
    }
    const env = {
      RECEIVER_HOME: home,
      RECEIVER_STATE: join(root, "state"),
      RECEIVER_OUT: out,
      RECEIVER_DISPATCH_DELAY_MS: "1",
    };

    for (const killAt of [200, 450, 700]) {
      const child = await startChild(env);
      await waitFor(async () => lines(out).length >= killAt, 30_000, 2);
      process.kill(child.pid as number, "SIGKILL");
      await exited(child);
    }
    const last = await startChild(env);
    await waitFor(async () => readdirSync(inbox).length === 0, 30_000, 20);
    process.kill(last.pid as number, "SIGTERM");
    await exited(last);

    const got = lines(out);
    const unique = new Set(got);
    expect([...expected].filter((k) => !unique.has(k))).toEqual([]);
    expect(unique.size).toBe(total);
    const duplicates = got.length - unique.size;
    expect(duplicates).toBeLessThanOrEqual(3);
  });
});
