// The reference registry in its own process (`agent-registry serve` on 127.0.0.1, an ephemeral port), as deployed:
// its synchronous SQLite commits then do not stall the bench's own event loop. Stopped with SIGTERM by its PID.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** `flags` are more `serve` flags (e.g. `--send-rate 0` for a bench that sends faster than the default limit). */
export async function startRegistryProcess(
  db: string,
  flags: readonly string[] = [],
): Promise<{ url: string; pid: number; close(): Promise<void> }> {
  const bin = fileURLToPath(new URL("../../bin/agent-registry.mjs", import.meta.url));
  const child = spawn(
    process.execPath,
    [bin, "serve", "--host", "127.0.0.1", "--port", "0", "--db", db, ...flags],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-2000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      reject(new Error(`agent-registry did not start within 20 s: ${stderr}`));
    }, 20_000);
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`agent-registry exited with ${code} before listening: ${stderr}`));
    });
  });
  return {
    url,
    pid: child.pid ?? -1,
    async close() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const force = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(force);
    },
  };
}
