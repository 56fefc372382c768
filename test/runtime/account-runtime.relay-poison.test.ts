// A running relay account never stalls on content: poison left in its registry inbox (an object body as older
// registries stored it, more 64 KiB messages than one response can carry, bodies of control characters stored 6x
// escaped) sits ahead of a good message from a trusted peer, and the good message still reaches that peer's
// session. The object body is dead-lettered, acknowledged and counted.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accountStateDir } from "../../src/adapters/state/account-state.js";
import type { AdmittedMessage } from "../../src/adapters/transport/transport.js";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import { SqliteRegistryStore } from "../../src/registry-server/sqlite-store.js";
import type { AccountRuntime } from "../../src/runtime/account-runtime.js";
import { startRelayAccount } from "./support/relay-account.js";
import { until } from "./support/until.js";

const KIB = 1024;

describe("a running relay account with poison in its inbox", () => {
  let registry: RegistryServerHandle;
  const dir = mkdtempSync(join(tmpdir(), "ar-relay-poison-"));
  const dbPath = join(dir, "registry.db");
  const runtimes: AccountRuntime[] = [];
  const dispatched = new Map<string, AdmittedMessage[]>();

  const start = async (accountId: string) => {
    const { runtime, received } = await startRelayAccount({
      registryUrl: registry.url,
      stateDir: dir,
      accountId,
      // The poison comes from one trusted peer: a rate limit above its volume keeps the good message admitted.
      channel: { inbound: { ratePerMinute: 1000 } },
    });
    dispatched.set(accountId, received);
    runtimes.push(runtime);
    return runtime;
  };

  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: dbPath });
  });

  afterAll(async () => {
    for (const runtime of runtimes) await runtime.stop();
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("delivers the good message after every poison shape into the sender's session", async () => {
    const alice = await start("alice");
    const bob = await start("bob");
    await alice.network.handshake("bob", "hello");
    await until(async () => (await bob.network.pending()).length === 1, "bob to see alice's request");
    await bob.network.approve("alice");
    await until(async () => {
      await alice.network.pending();
      return alice.network.peers().some((p) => p.hostname === "bob" && p.state === "trusted");
    }, "alice to trust bob");

    // Poison goes straight into bob's inbox through the registry's database, as an older server stored it.
    const bobInstallation = (
      JSON.parse(readFileSync(join(accountStateDir(join(dir, "bob"), "bob"), "identity.json"), "utf8")) as {
        installationId: string;
      }
    ).installationId;
    const alicePeer = alice.status().peerId!;
    const store = new SqliteRegistryStore({ path: dbPath });
    try {
      const poison = [
        { id: "object-body", bodyJson: JSON.stringify({ not: "a string" }) },
        ...Array.from({ length: 70 }, (_, i) => ({
          id: `big-${i}`,
          bodyJson: JSON.stringify("b".repeat(64 * KIB)),
        })),
        ...Array.from({ length: 12 }, (_, i) => ({
          id: `ctl-${i}`,
          bodyJson: JSON.stringify("\u0001".repeat(64 * KIB)),
        })),
      ];
      for (const p of poison) {
        store.insertMessage({
          messageId: p.id,
          toInstallationId: bobInstallation,
          fromInstallationId: alicePeer,
          fromHostname: "alice",
          bodyJson: p.bodyJson,
          createdAt: Date.now(),
        });
      }
    } finally {
      store.close();
    }

    await alice.network.send("bob", "the good message after the poison");
    const good = await until(
      () => dispatched.get("bob")!.find((m) => m.text.includes("the good message after the poison")),
      "the good message in bob's session with alice",
      60_000,
    );
    expect(good.peer.hostname).toBe("alice");
    await until(
      () => (bob.network.counters().unreadable?.body_not_string ?? 0) === 1,
      "the object body counted",
    );
    expect(bob.network.counters().deadLettered).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
