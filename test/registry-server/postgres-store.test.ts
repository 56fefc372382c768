// The PostgreSQL store's own guarantees, on a real server: migrations that concurrent replicas apply once, the
// migrate command, and the races two replicas on one database run into (one hostname, one inbox's quota, the
// order of an inbox's seqs), which the service's transactions must settle as a single process would.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistryServer } from "../../src/registry-server/index.js";
import { PostgresRegistryStore, redactConnectionString } from "../../src/registry-server/postgres-store.js";
import { startTestPostgres, type TestPostgres } from "../support/postgres.js";

const run = promisify(execFile);

let server: TestPostgres;
beforeAll(async () => {
  server = await startTestPostgres();
});
afterAll(async () => {
  await server?.stop();
});

async function tables(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    );
    return rows.map((r) => String(r.tablename));
  } finally {
    await client.end();
  }
}

async function versions(url: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query("SELECT version FROM schema_migrations ORDER BY version")).rows.map((r) =>
      Number(r.version),
    );
  } finally {
    await client.end();
  }
}

/** Two registry replicas on one fresh database, as two processes would be (each its own pool). */
async function replicas(count = 2, options: Parameters<typeof startRegistryServer>[0] = {}) {
  const db = await server.freshDatabase();
  const started = await Promise.all(
    Array.from({ length: count }, () => startRegistryServer({ db, sweepIntervalMs: 0, ...options })),
  );
  const call = async (i: number, method: string, path: string, body?: unknown, token?: string) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${started[i % count]!.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return {
    call,
    close: () => Promise.all(started.map((s) => s.close())),
  };
}

describe("PostgreSQL migrations", () => {
  it("are applied once when three stores open an empty database at the same time", async () => {
    const url = await server.emptyDatabase();
    const stores = await Promise.all(
      [1, 2, 3].map(() => PostgresRegistryStore.open({ connectionString: url })),
    );
    try {
      expect(await versions(url)).toEqual([1]);
      expect(await tables(url)).toEqual(
        expect.arrayContaining(["agents", "agent_words", "messages", "inbox_usage", "trust", "counters"]),
      );
      for (const store of stores) expect(await store.lastTrustChange()).toBe(0);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it("are applied by 'agent-registry migrate --db', which says so and then that the schema is current", async () => {
    const url = await server.emptyDatabase();
    const cli = ["bin/agent-registry.mjs"];
    const first = await run(process.execPath, [...cli, "migrate", "--db", url]);
    expect(first.stdout).toMatch(/applied migrations 1 to postgresql:/);
    const again = await run(process.execPath, [...cli, "migrate"], {
      env: { ...process.env, DATABASE_URL: url },
    });
    expect(again.stdout).toMatch(/is up to date/);
    expect(await versions(url)).toEqual([1]);
  });

  it("never show a connection string's password", () => {
    const shown = redactConnectionString(
      "postgres://registry:s3cret@db.example:5432/registry?password=other",
    );
    expect(shown).not.toContain("s3cret");
    expect(shown).not.toContain("other");
    expect(shown).toContain("db.example");
  });
});

describe("two replicas on one database", () => {
  it("let exactly one of two concurrent registrations of one hostname win", async () => {
    const r = await replicas();
    try {
      for (let round = 0; round < 5; round++) {
        const hostname = `contested-${round}`;
        const results = await Promise.all(
          [0, 1].map((i) =>
            r.call(i, "POST", "/api/v1/agents/", { hostname, installation_id: `inst-${round}-${i}` }),
          ),
        );
        expect(results.map((x) => x.status).sort()).toEqual([201, 409]);
      }
    } finally {
      await r.close();
    }
  });

  it("keep an inbox within its quota when senders race on both replicas, with seqs increasing", async () => {
    const r = await replicas(2, { inboxMaxMessages: 10, sendRatePerMinute: 0 });
    try {
      const bob = await r.call(0, "POST", "/api/v1/agents/", {
        hostname: "bob",
        installation_id: "inst-bob",
      });
      const senders = await Promise.all(
        [0, 1, 2, 3].map((i) =>
          r.call(i, "POST", "/api/v1/agents/", { hostname: `sender-${i}`, installation_id: `inst-s${i}` }),
        ),
      );
      const sends = await Promise.all(
        Array.from({ length: 24 }, (_, n) => {
          const s = senders[n % 4]!.body;
          return r.call(
            n,
            "POST",
            "/api/v1/agents/messages/send",
            {
              from_installation_id: `inst-s${n % 4}`,
              from_hostname: s.hostname,
              to_hostname: "bob",
              body: `message ${n}`,
              message_id: `m-${n}`,
            },
            String(s.agent_token),
          );
        }),
      );
      const statuses = sends.map((s) => s.status);
      expect(statuses.filter((s) => s === 200)).toHaveLength(10);
      expect(statuses.filter((s) => s === 507)).toHaveLength(14);
      const inbox = await r.call(
        1,
        "GET",
        "/api/v1/agents/messages/inbox/inst-bob?limit=100",
        undefined,
        String(bob.body.agent_token),
      );
      const cursors = (inbox.body.messages as Array<{ cursor: string }>).map((m) => Number(m.cursor));
      expect(cursors).toHaveLength(10);
      expect(cursors).toEqual([...cursors].sort((a, b) => a - b));
      expect(new Set(cursors).size).toBe(10);
    } finally {
      await r.close();
    }
  });
});
