// The running account is one actor tree: the root `account:<id>` and its children (the inbox and peers loops, a
// handshake actor per peer, the daemon for Pilot), all in one system, as the inspector sees them. A failing child
// shows at the account's status. Real registry on 127.0.0.1; the peers talk over an in-memory network.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AnyActorRef, InspectionEvent } from "xstate";
import { openAccountDb } from "../../src/adapters/state/account-db.js";
import { resolveAccounts } from "../../src/config.js";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import { NetworkError } from "../../src/runtime/account-network.js";
import type { AccountRuntime } from "../../src/runtime/account-runtime.js";
import { startAccountRuntime } from "../../src/runtime/account-runtime.js";
import { noneLink } from "../../src/runtime/transport-link.js";
import { createMemoryNetwork, type MemoryNetwork } from "../support/memory-network.js";
import { startMemoryAccount } from "./support/memory-account.js";
import { quiet, until } from "./support/until.js";

/** Every actor id of the tree, each with its parent's id, walking the snapshots' children from the root. */
function treeOf(root: AnyActorRef): Map<string, string | null> {
  const tree = new Map<string, string | null>([[root.id, null]]);
  const walk = (actor: AnyActorRef) => {
    const children = (actor.getSnapshot() as { children?: Record<string, AnyActorRef> }).children ?? {};
    for (const child of Object.values(children)) {
      tree.set(child.id, actor.id);
      walk(child);
    }
  };
  walk(root);
  return tree;
}

describe("the account's actor tree", () => {
  let registry: RegistryServerHandle;
  let network: MemoryNetwork;
  const dir = mkdtempSync(join(tmpdir(), "ar-tree-"));
  const runtimes: AccountRuntime[] = [];
  const seen: InspectionEvent[] = [];
  let alice: AccountRuntime;
  let bob: AccountRuntime;

  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: ":memory:" });
    network = createMemoryNetwork();
    const start = async (accountId: string, inspect?: (event: InspectionEvent) => void) => {
      const { runtime } = await startMemoryAccount({
        network,
        registryUrl: registry.url,
        stateDir: dir,
        accountId,
        ...(inspect ? { inspect } : {}),
      });
      runtimes.push(runtime);
      return runtime;
    };
    alice = await start("alice", (event) => seen.push(event));
    bob = await start("bob");
  });

  afterAll(async () => {
    for (const runtime of runtimes) await runtime.stop();
    await registry?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("is one system: every actor the inspector saw has the account as its root, with readable ids", async () => {
    await alice.network.handshake("bob");
    await until(() => bob.network.peers().some((peer) => peer.hostname === "alice"), "bob sees the request");
    await bob.network.approve("alice");
    await until(
      () => alice.network.peers().find((peer) => peer.hostname === "bob")?.state === "trusted",
      "alice's peers loop sees bob's approval",
    );

    const root = alice.actor;
    const tree = treeOf(root);
    expect(root.id).toBe("account:alice");
    // The long-lived children, each directly under the account. Bob's handshake was woken for the request and
    // rests again as its record now that nothing is in flight.
    expect(tree.get("inbox")).toBe("account:alice");
    expect(tree.get("peers")).toBe("account:alice");
    expect(tree.has("handshake:bob")).toBe(false);

    // One system: the inspector reported every actor of this account with the root's session as its root.
    const actors = seen.filter((event) => event.type === "@xstate.actor");
    expect(actors.length).toBeGreaterThan(3);
    for (const event of actors) expect(event.rootId).toBe(root.sessionId);
    const ids = new Set(actors.map((event) => (event.actorRef as AnyActorRef).id));
    for (const id of ["account:alice", "inbox", "peers", "handshake:bob"]) expect(ids).toContain(id);
    // Whatever else ran (a handshake woken for its work, a loop's cycle, a registry call) was a child of these.
    for (const id of ids) {
      if (id === "account:alice" || id === "handshake:bob" || tree.has(id)) continue;
      expect(id).toMatch(
        /^(runCycle|registerAgent|sendHeartbeat|updateAgent|deregisterAgent|sendHandshake|approvePeer|rejectPeer|untrustPeer|readVisibility|watchInbox|checkBinary|startDaemon|readStatus|stopDaemon)$/,
      );
    }
  });

  it("shows a failing inbox read at the account's status, and its recovery", async () => {
    network.fail("bob", "read", "inbox storage is gone");
    bob.actor.send({ type: "INBOX.WAKE" });
    const reason = await until(() => bob.status().messaging.reason, "the inbox failure at bob's status");
    expect(reason).toMatch(/inbox storage is gone/);
    expect(bob.status().messaging.ready).toBe(false);
    expect(bob.status().messaging.inbox?.lastError?.message).toMatch(/inbox storage is gone/);
    network.fail("bob", "read", null);
    await until(() => bob.status().messaging.ready, "bob's inbox reads again", 10_000);
  });

  it("shows a failed handshake decision at the account's status", async () => {
    const carol = (
      await startMemoryAccount({ network, registryUrl: registry.url, stateDir: dir, accountId: "carol" })
    ).runtime;
    runtimes.push(carol);
    await carol.network.handshake("alice");
    await until(
      () => alice.network.peers().some((p) => p.hostname === "carol"),
      "alice sees carol's request",
    );
    network.fail("alice", "approve", "the trust store is read-only");
    await expect(alice.network.approve("carol")).rejects.toBeInstanceOf(NetworkError);
    const failing = alice.status().messaging.peers.failing;
    expect(failing).toEqual([
      { peer: "carol", error: expect.objectContaining({ message: expect.stringMatching(/read-only/) }) },
    ]);
    expect(alice.status().messaging.peers.pending).toBe(1);
    network.fail("alice", "approve", null);
    await alice.network.approve("carol");
    expect(alice.status().messaging.peers.failing).toEqual([]);
  });
});

describe("restoring saved peers", () => {
  it("restores saved peers as resting records: no actor each, nothing written back", async () => {
    const registry = await startRegistryServer({ port: 0, db: ":memory:" });
    const dir = mkdtempSync(join(tmpdir(), "ar-restore-"));
    const stateDir = join(dir, "dora", "agent-registry", "accounts", "dora");
    mkdirSync(stateDir, { recursive: true });
    const peers = Array.from({ length: 200 }, (_, i) => ({
      hostname: `peer-${i}`,
      nodeId: null,
      installationId: `p_${i}`,
      state: i % 2 === 0 ? "trusted" : "pendingApproval",
      introduction: null,
      justification: i % 2 === 0 ? null : `hello from ${i}`,
      assistantName: null,
      humanName: null,
      announcedAt: 1,
      updatedAt: 1,
    }));
    // Saved as the previous version did (peers.json): the first start imports it into the account database.
    writeFileSync(join(stateDir, "peers.json"), JSON.stringify({ peers }));
    const seeded = openAccountDb(stateDir);
    seeded.close();
    // Another connection sees the database's version change with every commit made by the runtime.
    const watcher = new DatabaseSync(join(stateDir, "account.db"));
    const version = () =>
      (watcher.prepare("PRAGMA data_version").get() as { data_version: number }).data_version;
    const before = version();
    const [account] = resolveAccounts(
      { registryUrl: registry.url, transport: "relay", accounts: { dora: { hostname: "dora" } } },
      {},
    );
    // No transport yet (its trust list would rightly revoke peers it does not list): only the restore shows.
    const runtime = await startAccountRuntime({
      account: account!,
      stateRoot: join(dir, "dora"),
      log: quiet,
      link: () => ({ ...noneLink(), unavailableReason: () => "starting" }),
    });
    try {
      const children = Object.keys(runtime.actor.getSnapshot().children);
      expect(children.filter((id) => id.startsWith("handshake:"))).toEqual([]);
      expect(runtime.status().messaging.peers).toMatchObject({ total: 200, trusted: 100, pending: 100 });
      // Restoring writes nothing: the database is as it was.
      expect(version()).toBe(before);
      // Nothing is announced again.
      expect(runtime.network.peers().find((peer) => peer.hostname === "peer-1")).toMatchObject({
        state: "pendingApproval",
        introduction: "hello from 1",
      });
    } finally {
      watcher.close();
      await runtime.stop();
      await registry.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the README's tree", () => {
  it("names the children the root spawns", () => {
    const readme = readFileSync(fileURLToPath(new URL("../../README.md", import.meta.url)), "utf8");
    const block = /```text\naccount:<id>[\s\S]*?```/.exec(readme)?.[0] ?? "";
    const named = [...block.matchAll(/[├└]─ (\S+)/g)].map((match) => match[1]);
    expect(named).toEqual(["daemon", "inbox", "relayInbox", "peers", "visibility", "handshake:<peer>"]);
    // The same ids the account machine spawns (handshake children are `handshake:<peer key>`).
    const machine = readFileSync(
      fileURLToPath(new URL("../../src/machines/account.machine.ts", import.meta.url)),
      "utf8",
    );
    for (const id of ["daemon", "inbox", "relayInbox", "peers", "visibility"]) {
      expect(machine).toContain(`{ id: "${id}"`);
    }
    expect(machine).toContain("id: handshakeId(key)");
  });
});
