// Test helpers: a real registry server on 127.0.0.1 (ephemeral port) with a hand-driven clock, and a small
// fetch wrapper that returns status + parsed JSON. The store is SQLite in memory, or, when the vitest project
// sets REGISTRY_TEST_STORE=postgres, a fresh database on a PostgreSQL server this file starts (one per test
// file, stopped after it).
import { afterAll, afterEach } from "vitest";
import {
  type RegistryServerHandle,
  type RegistryServerOptions,
  startRegistryServer,
} from "../../src/registry-server/index.js";
import { startTestPostgres, type TestPostgres } from "../support/postgres.js";

/** The store the registry tests run against: "sqlite" (default) or "postgres". */
export const testStore = process.env.REGISTRY_TEST_STORE === "postgres" ? "postgres" : "sqlite";

let postgres: Promise<TestPostgres> | undefined;

/** This file's PostgreSQL server, started on first use. */
export function testPostgres(): Promise<TestPostgres> {
  postgres ??= startTestPostgres();
  return postgres;
}

/**
 * The `db` a test registry opens when the test names none: in-memory SQLite, or a new PostgreSQL database
 * (migrated, empty).
 */
export async function testDb(): Promise<string> {
  return testStore === "postgres" ? (await testPostgres()).freshDatabase() : ":memory:";
}

export interface TestClock {
  now: () => number;
  advance(seconds: number): void;
}

export function testClock(start = Date.parse("2026-01-01T00:00:00Z")): TestClock {
  let t = start;
  return {
    now: () => t,
    advance: (seconds) => {
      t += seconds * 1000;
    },
  };
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

export interface TestRegistry {
  server: RegistryServerHandle;
  clock: TestClock;
  url: string;
  call<T = Record<string, unknown>>(
    method: string,
    path: string,
    options?: { body?: unknown; raw?: string; headers?: Record<string, string>; token?: string },
  ): Promise<ApiResponse<T>>;
  /** Registers an agent (as the owner of `token`, when given) and returns its record with agent_token. */
  register(fields: Record<string, unknown>, token?: string): Promise<AgentWithToken>;
}

export interface AgentWithToken {
  id: string;
  hostname: string;
  installation_id: string | null;
  peer_id: string | null;
  agent_token: string;
  capabilities: string[];
  status: string;
  [key: string]: unknown;
}

const running: RegistryServerHandle[] = [];
/** PostgreSQL databases the running servers use: emptied for the next test once their servers closed. */
const databases: string[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
  const used = databases.splice(0);
  if (used.length) {
    const server = await testPostgres();
    await Promise.all(used.map((db) => server.recycle(db)));
  }
});

afterAll(async () => {
  const server = postgres;
  postgres = undefined;
  if (server) await (await server).stop();
});

export async function startTestRegistry(
  options: RegistryServerOptions & { defaultHeaders?: Record<string, string> } = {},
): Promise<TestRegistry> {
  const clock = testClock();
  const { defaultHeaders = {}, ...serverOptions } = options;
  let db = serverOptions.db;
  if (!serverOptions.store && !db) {
    db = await testDb();
    if (testStore === "postgres") databases.push(db);
  }
  const server = await startRegistryServer({ now: clock.now, sweepIntervalMs: 0, ...serverOptions, db });
  running.push(server);
  const call: TestRegistry["call"] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...defaultHeaders, ...opts.headers };
    let body: string | undefined;
    if (opts.raw !== undefined) body = opts.raw;
    else if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined) headers["content-type"] ??= "application/json";
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    const res = await fetch(`${server.url}${path}`, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // Why safe: a non-JSON body is kept as text so the assertion shows what the server sent.
    }
    return { status: res.status, body: parsed as never, headers: res.headers };
  };
  const register = async (fields: Record<string, unknown>, token?: string) => {
    const res = await call<AgentWithToken>("POST", "/api/v1/agents/", {
      body: fields,
      ...(token ? { token } : {}),
    });
    if (res.status !== 201 && res.status !== 200) {
      throw new Error(`register failed: ${res.status} ${JSON.stringify(res.body)}`);
    }
    return res.body;
  };
  return { server, clock, url: server.url, call, register };
}
