// End to end: a real OpenClaw gateway (pinned version, Node 24, isolated dirs, 127.0.0.1) loads the plugin from
// this repo with accounts alice and bob against the reference registry. Proves the account lifecycle as an
// operator sees it: online and searchable, visibility flips deregister, reload keeps the agent id, a registry
// outage longer than the ttl heals by itself, and stopping the gateway deregisters both within 5 s.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import { createGateway, type Gateway, parseJsonOutput, waitUntil } from "./support/gateway.js";
import { type ModelServer, startModelServer } from "./support/model-server.js";

interface AccountView {
  accountId: string;
  lifecycle: string;
  agentId: string | null;
  discoverable: boolean;
}

/** A Convex deployment's `POST /api/query` answering installations:get with a switchable flag. */
async function startFakeConvex(): Promise<{ url: string; discoverable: boolean; close(): Promise<void> }> {
  const state = { discoverable: true };
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          status: "success",
          value: { metadata: { networkDiscoverable: state.discoverable, displayName: "Bob the Builder" } },
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get discoverable() {
      return state.discoverable;
    },
    set discoverable(value: boolean) {
      state.discoverable = value;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("account lifecycle in a real OpenClaw gateway", () => {
  const dbDir = mkdtempSync(join(tmpdir(), "ar-e2e-db-"));
  const dbPath = join(dbDir, "registry.db");
  // Longer than the 5 s heartbeat, so a live agent never looks offline between two heartbeats.
  const ttlSeconds = 8;
  let registry: RegistryServerHandle;
  let registryPort = 0;
  let model: ModelServer;
  let convex: Awaited<ReturnType<typeof startFakeConvex>>;
  let gateway: Gateway;

  const statusOf = async (): Promise<AccountView[]> =>
    (await gateway.call<{ accounts: AccountView[] }>("agent-registry.status")).accounts;
  const account = async (id: string) => (await statusOf()).find((a) => a.accountId === id);
  const registryGet = async (path: string) => {
    const response = await fetch(`http://127.0.0.1:${registryPort}${path}`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: dbPath, ttlSeconds });
    registryPort = registry.port;
    model = await startModelServer();
    convex = await startFakeConvex();
    gateway = await createGateway({
      modelBaseUrl: model.url,
      channelConfig: {
        registryUrl: registry.url,
        transport: "none",
        heartbeatIntervalSeconds: 5,
        accounts: {
          alice: { hostname: "alice", displayName: "Alice", capabilities: ["poetry", "translation"] },
          bob: {
            hostname: "bob",
            capabilities: ["carpentry"],
            visibility: { source: "convex", convexUrl: convex.url, refreshSeconds: 3600 },
          },
        },
      },
    });
    await gateway.start();
    await waitUntil(
      async () => {
        const all = await statusOf();
        return all.length === 2 && all.every((a) => a.lifecycle === "online");
      },
      90_000,
      "alice and bob online",
      1_000,
    );
  }, 240_000);

  afterAll(async () => {
    await gateway?.stop();
    gateway?.cleanup();
    await registry?.close();
    await model?.close();
    await convex?.close();
    rmSync(dbDir, { recursive: true, force: true });
  });

  it("shows both accounts connected in `openclaw channels status --json`", async () => {
    const { stdout } = await gateway.cli(["channels", "status", "--json"]);
    const status = parseJsonOutput(stdout) as {
      channelAccounts: Record<
        string,
        Array<{ accountId: string; connected?: boolean; statusState?: string }>
      >;
    };
    const accounts = status.channelAccounts["agent-registry"] ?? [];
    expect(accounts.map((a) => [a.accountId, a.connected, a.statusState]).sort()).toEqual([
      ["alice", true, "online"],
      ["bob", true, "online"],
    ]);
  }, 60_000);

  it("makes both searchable in the registry, with metadata from config and Convex", async () => {
    const poetry = await registryGet("/api/v1/agents/search?capabilities=poetry");
    expect((poetry.body.agents as Array<{ hostname: string }>).map((a) => a.hostname)).toEqual(["alice"]);
    const bob = await registryGet("/api/v1/agents/by-hostname/bob");
    expect(bob.status).toBe(200);
    expect(bob.body.display_name).toBe("Bob the Builder");
  });

  it("deregisters when Convex says private and the operator refreshes, and registers again when public", async () => {
    convex.discoverable = false;
    const off = await gateway.call<{ results: Record<string, string> }>("agent-registry.refresh", {
      accountId: "bob",
    });
    expect(off.results).toEqual({ bob: "deregistered" });
    expect((await registryGet("/api/v1/agents/by-hostname/bob")).status).toBe(404);
    expect((await account("bob"))?.lifecycle).toBe("private");

    convex.discoverable = true;
    const on = await gateway.call<{ results: Record<string, string> }>("agent-registry.refresh", {
      accountId: "bob",
    });
    expect(on.results).toEqual({ bob: "registered" });
    expect((await registryGet("/api/v1/agents/by-hostname/bob")).status).toBe(200);
  }, 90_000);

  it("answers an unknown account with NO_ACCOUNT", async () => {
    const result = await gateway.cli(
      [
        "gateway",
        "call",
        "agent-registry.refresh",
        "--params",
        JSON.stringify({ accountId: "mallory" }),
        "--json",
      ],
      { reject: false },
    );
    expect(result.exitCode).not.toBe(0);
    expect(`${result.stdout}${result.stderr}`).toContain("NO_ACCOUNT");
  }, 60_000);

  it("keeps the same agent id across `openclaw plugins reload agent-registry`", async () => {
    const before = await account("alice");
    expect(before?.agentId).toBeTruthy();
    await gateway.cli(["plugins", "reload", "agent-registry"], { timeoutMs: 90_000 });
    const after = await waitUntil(
      async () => {
        const a = await account("alice");
        return a?.lifecycle === "online" ? a : undefined;
      },
      90_000,
      "alice online after reload",
      1_000,
    );
    expect(after.agentId).toBe(before?.agentId);
    const record = await registryGet("/api/v1/agents/by-hostname/alice");
    expect(record.body.id).toBe(before?.agentId);
  }, 200_000);

  it("comes back online by itself after a registry outage longer than the ttl", async () => {
    await registry.close();
    // Longer than the ttl and than a heartbeat interval, so records expire and heartbeats fail.
    await new Promise((r) => setTimeout(r, (ttlSeconds + 6) * 1000));
    registry = await startRegistryServer({ port: registryPort, db: dbPath, ttlSeconds });
    await waitUntil(
      async () => {
        const [alice, bob] = await Promise.all([
          registryGet("/api/v1/agents/by-hostname/alice"),
          registryGet("/api/v1/agents/by-hostname/bob"),
        ]);
        return alice.status === 200 && bob.status === 200;
      },
      // Re-registration backs off while the registry is down (1, 2, 4, 8, 16 s...): room for the next attempt.
      90_000,
      "alice and bob online in the registry again",
      1_000,
    );
    const all = await statusOf();
    expect(all.map((a) => a.lifecycle)).toEqual(["online", "online"]);
  }, 180_000);

  it("deregisters both within 5 s of stopping the gateway", async () => {
    const signalled = Date.now();
    const stopping = gateway.stop();
    const gone = await waitUntil(
      async () => {
        // Deregistered records stay (offline, holding their hostnames for their owners); none is online.
        const list = await registryGet("/api/v1/agents/");
        return (list.body.agents as unknown[]).length === 0 ? Date.now() : undefined;
      },
      60_000,
      "both records offline",
      100,
    );
    await stopping;
    // Counted from the moment OpenClaw begins its shutdown (its own log line): on a loaded host the process can
    // take seconds to get there after SIGTERM, which says nothing about the plugin. Without the line, from SIGTERM.
    const shutdown = /^(\S+) \[shutdown\] started/m.exec(gateway.logs())?.[1];
    const from = shutdown ? Date.parse(shutdown) : signalled;
    expect(gone - from).toBeLessThan(5_000);
  }, 60_000);
});
