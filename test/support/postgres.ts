// A real PostgreSQL server for tests: initdb in a temp dir, started with pg_ctl on a Unix socket in that dir
// only (no TCP port), as an unprivileged user when the tests run as root (postgres refuses root), and stopped
// and deleted afterwards. One server per test file; each test takes a fresh database cloned from a migrated
// template (CREATE DATABASE ... TEMPLATE, no migration run), or one a finished test gave back, emptied with a few
// DELETEs (a few ms where cloning costs a checkpoint, 300-800 ms on a busy machine).
import { execFile } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { applyPostgresMigrations } from "../../src/registry-server/postgres-migrations.js";

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

export interface TestPostgres {
  /** Connection URL of a database (Unix socket in the server's dir). */
  url(database: string): string;
  /** A migrated database holding no rows, for one test; dropped when the server stops. */
  freshDatabase(): Promise<string>;
  /** Gives back a database from freshDatabase() once nothing uses it: it is emptied and handed out again. */
  recycle(url: string): Promise<void>;
  /** A new database with nothing in it (not even the migrations). */
  emptyDatabase(): Promise<string>;
  stop(): Promise<void>;
}

let counter = 0;

export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = findPostgresBin();
  const dir = mkdtempSync(join(tmpdir(), "pg-"));
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  // Commands run as the unprivileged user when we are root (runuser keeps no privileges).
  const as = (cmd: string, args: string[]) =>
    asRoot ? run("runuser", ["-u", UNPRIVILEGED.name, "--", cmd, ...args]) : run(cmd, args);
  if (asRoot) {
    chownSync(dir, UNPRIVILEGED.uid, UNPRIVILEGED.gid);
    chmodSync(dir, 0o700);
  }
  let started = false;
  const stopServer = async () => {
    if (!started) return;
    started = false;
    // pg_ctl stops the server by the PID in its postmaster.pid, the one this helper started.
    await as(join(bin, "pg_ctl"), ["stop", "-D", data, "-m", "fast", "-w"]).catch(() => {
      // Why safe: a server that will not stop politely is killed by its PID below.
      const pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
      if (pid > 0) process.kill(pid, "SIGKILL");
    });
  };
  try {
    try {
      await as(join(bin, "initdb"), [
        "-D",
        data,
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-locale",
        "--no-sync",
      ]);
    } catch (error) {
      throw new Error(
        `initdb failed (${(error as { stderr?: string }).stderr?.trim() ?? (error as Error).message}); ${INSTALL_HINT}`,
      );
    }
    // Durability off: test databases are thrown away, and fsyncs would dominate the run on a shared disk.
    const options = [
      "-c listen_addresses=''",
      `-c unix_socket_directories='${dir}'`,
      "-c fsync=off",
      "-c synchronous_commit=off",
      "-c full_page_writes=off",
      "-c max_connections=200",
      "-c shared_buffers=32MB",
    ].join(" ");
    try {
      await as(join(bin, "pg_ctl"), [
        "start",
        "-D",
        data,
        "-w",
        "-t",
        "60",
        "-l",
        join(dir, "log"),
        "-o",
        options,
      ]);
      started = true;
    } catch (error) {
      const log = existsSync(join(dir, "log")) ? readFileSync(join(dir, "log"), "utf8").slice(-2000) : "";
      throw new Error(`PostgreSQL did not start: ${(error as Error).message}\n${log}`);
    }
    const url = (database: string) =>
      `postgresql://postgres@localhost/${database}?host=${encodeURIComponent(dir)}`;
    const admin = new pg.Client({ connectionString: url("postgres") });
    await admin.connect();
    // The template: migrated once, then cloned for every test.
    await admin.query("CREATE DATABASE registry_template");
    const templatePool = new pg.Pool({ connectionString: url("registry_template"), max: 1 });
    try {
      await applyPostgresMigrations(templatePool);
    } finally {
      await templatePool.end();
    }
    const create = async (template: string) => {
      const name = `t_${process.pid}_${++counter}`;
      await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template} STRATEGY FILE_COPY`);
      return url(name);
    };
    const free: string[] = [];
    return {
      url,
      freshDatabase: async () => free.pop() ?? (await create("registry_template")),
      async recycle(database) {
        const client = new pg.Client({ connectionString: database });
        await client.connect();
        try {
          await client.query(
            // DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE makes new files for every table.
            "DELETE FROM agent_words; DELETE FROM agents; DELETE FROM messages; DELETE FROM inbox_usage; " +
              "DELETE FROM trust; UPDATE counters SET value = 0; ALTER TABLE agents ALTER COLUMN seq RESTART; " +
              "ALTER TABLE messages ALTER COLUMN seq RESTART",
          );
        } finally {
          await client.end();
        }
        free.push(database);
      },
      emptyDatabase: () => create("template0"),
      async stop() {
        await admin.end().catch(() => {
          // Why safe: the server is stopped next anyway.
        });
        await stopServer();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await stopServer();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
