// A throwaway PostgreSQL cluster, for the tests and the benches alike: initdb in a temp dir, started with pg_ctl
// on a Unix socket in that dir only (no TCP port), as an unprivileged user when we run as root (postgres refuses
// root), and stopped (pg_ctl, else SIGKILL of the postmaster's PID from its postmaster.pid: the one we started)
// and deleted afterwards. Callers choose the server settings: durable for a bench, fsync off for tests.
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The user the server runs as when we are root: nobody exists on every Debian system. */
const UNPRIVILEGED = { name: "nobody", uid: 65534, gid: 65534 };

const INSTALL_HINT =
  "PostgreSQL server binaries (initdb, pg_ctl) were not found under /usr/lib/postgresql/*/bin: install them with " +
  "'apt-get install postgresql' (Debian/Ubuntu), or set PG_BIN to the directory holding initdb and pg_ctl";

/** The bin directory of the newest PostgreSQL installed (or PG_BIN). */
export function findPostgresBin(): string {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv) {
    if (existsSync(join(fromEnv, "initdb"))) return fromEnv;
    throw new Error(`PG_BIN=${fromEnv} holds no initdb; ${INSTALL_HINT}`);
  }
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, "bin", "initdb")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions.length) throw new Error(INSTALL_HINT);
  return join(root, versions[0]!, "bin");
}

export interface ClusterOptions {
  /** Prefix of the temp dir's name. */
  prefix: string;
  /** Server settings, `name=value`, beside the socket-only listening this module always sets. */
  settings: readonly string[];
  /** initdb without fsyncs (a thrown-away test cluster). */
  noSync?: boolean;
}

export interface PostgresCluster {
  /** Its directory: data, Unix socket and log. */
  dir: string;
  /** Connection URL of a database, as the superuser `postgres` over the socket (no password). */
  url(database: string): string;
  /** PID of the postmaster (0 when it is not running): its process tree is the database's CPU. */
  pid(): number;
  /** Stops the server and deletes its directory; idempotent. */
  stop(): Promise<void>;
  /** The same, synchronously, for exit and signal handlers. */
  stopSync(): void;
}

export const urlIn = (dir: string, database: string) =>
  `postgresql://postgres@localhost/${database}?host=${encodeURIComponent(dir)}`;

/** Initialises and starts a cluster; on failure nothing is left running or on disk. */
export async function startPostgresCluster(options: ClusterOptions): Promise<PostgresCluster> {
  const bin = findPostgresBin();
  const dir = mkdtempSync(join(tmpdir(), options.prefix));
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  // Commands run as the unprivileged user when we are root (runuser keeps no privileges).
  const wrap = (cmd: string, args: string[]): [string, string[]] =>
    asRoot ? ["runuser", ["-u", UNPRIVILEGED.name, "--", cmd, ...args]] : [cmd, args];
  if (asRoot) {
    chownSync(dir, UNPRIVILEGED.uid, UNPRIVILEGED.gid);
    chmodSync(dir, 0o700);
  }
  const postmasterPid = (): number => {
    try {
      return Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]) || 0;
    } catch {
      return 0;
    }
  };
  let state: "none" | "started" | "stopped" = "none";
  const stopSync = () => {
    if (state === "stopped") return;
    const wasStarted = state === "started";
    state = "stopped";
    if (wasStarted) {
      try {
        execFileSync(...wrap(join(bin, "pg_ctl"), ["stop", "-D", data, "-m", "fast", "-w", "-t", "30"]), {
          stdio: "ignore",
        });
      } catch {
        // Why safe: the postmaster we started (its PID file) is killed instead.
        const pid = postmasterPid();
        if (pid > 0) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // Already gone.
          }
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const initdb = ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"];
    try {
      await run(...wrap(join(bin, "initdb"), options.noSync ? [...initdb, "--no-sync"] : initdb));
    } catch (error) {
      throw new Error(
        `initdb failed (${(error as { stderr?: string }).stderr?.trim() ?? (error as Error).message}); ${INSTALL_HINT}`,
      );
    }
    const settings = ["listen_addresses=''", `unix_socket_directories='${dir}'`, ...options.settings];
    // Marked started before pg_ctl returns: a start that timed out may still have left a postmaster behind.
    state = "started";
    try {
      const start = ["start", "-D", data, "-w", "-t", "60", "-l", join(dir, "log")];
      await run(...wrap(join(bin, "pg_ctl"), [...start, "-o", settings.map((s) => `-c ${s}`).join(" ")]));
    } catch (error) {
      const log = existsSync(join(dir, "log")) ? readFileSync(join(dir, "log"), "utf8").slice(-2000) : "";
      throw new Error(`PostgreSQL did not start: ${(error as Error).message}\n${log}`);
    }
  } catch (error) {
    stopSync();
    throw error;
  }
  return {
    dir,
    url: (database) => urlIn(dir, database),
    pid: postmasterPid,
    stop: async () => stopSync(),
    stopSync,
  };
}
