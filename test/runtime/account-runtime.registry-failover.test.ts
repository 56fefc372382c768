// A running relay account with two registry URLs (two front doors of one reference registry): when the first
// goes away, its heartbeats, its relay inbox and its sends go on at the second, and its status names the URL in
// use, how many are configured and when it failed over. Its registration, saved under the preferred URL, is kept
// when the list changes around it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveAccounts } from "../../src/config.js";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import { type AccountRuntime, startAccountRuntime } from "../../src/runtime/account-runtime.js";
import { type CountingProxy, startCountingProxy } from "../support/counting-proxy.js";
import { type RelayAccount, startRelayAccount } from "./support/relay-account.js";
import { quiet, until } from "./support/until.js";

describe("a relay account whose first registry URL goes away", () => {
  let registry: RegistryServerHandle;
  let first: CountingProxy;
  let second: CountingProxy;
  const dir = mkdtempSync(join(tmpdir(), "ar-registry-failover-"));
  const running: AccountRuntime[] = [];
  const warnings: string[] = [];

  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: ":memory:", sweepIntervalMs: 0 });
    first = await startCountingProxy(registry.url);
    second = await startCountingProxy(registry.url);
  });

  afterAll(async () => {
    for (const runtime of running) await runtime.stop();
    await first.close();
    await second.close();
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (accountId: string, registryUrl: string | string[]): Promise<RelayAccount> => {
    const started = await startRelayAccount({
      registryUrl,
      stateDir: dir,
      accountId,
      account: { heartbeatIntervalSeconds: 5 },
    });
    running.push(started.runtime);
    return started;
  };

  it("heartbeats, receives and sends at the second URL, and says so in its status", async () => {
    const alice = await start("alice", [first.url, second.url]);
    const bob = await start("bob", second.url);
    expect(alice.runtime.status()).toMatchObject({
      registryUrl: first.url,
      registry: { url: first.url, index: 0, configured: 2, lastFailover: null },
    });
    await alice.runtime.network.handshake("bob", "hello");
    await until(async () => (await bob.runtime.network.pending()).length === 1, "bob to see alice's request");
    await bob.runtime.network.approve("alice");
    await until(async () => {
      await alice.runtime.network.pending();
      return alice.runtime.network.peers().some((p) => p.hostname === "bob" && p.state === "trusted");
    }, "alice to trust bob");

    await first.close();
    const status = await until(() => {
      const s = alice.runtime.status();
      return s.registry.lastFailover ? s : null;
    }, "alice's failover");
    expect(status.registryUrl).toBe(second.url);
    expect(status.registry).toMatchObject({ url: second.url, index: 1, configured: 2 });
    expect(status.registry.lastFailover).toMatchObject({ from: first.url, to: second.url });

    // A heartbeat after the failover went to the second URL and kept the account online.
    const failedOverAt = Date.parse(status.registry.lastFailover!.at);
    await until(
      () => Date.parse(alice.runtime.status().lastHeartbeatAt ?? "") > failedOverAt,
      "a heartbeat after the failover",
      12_000,
    );
    expect(alice.runtime.status()).toMatchObject({ lifecycle: "online", heartbeatFailures: 0 });
    const agentId = alice.runtime.status().agentId!;
    expect(second.requests.some((r) => r === `POST /api/v1/agents/${agentId}/heartbeat`)).toBe(true);

    await bob.runtime.network.send("alice", "through the second URL");
    await until(() => alice.received.find((m) => m.text === "through the second URL"), "bob's message");
    await alice.runtime.network.send("bob", "and back");
    await until(() => bob.received.find((m) => m.text === "and back"), "alice's reply");
    expect(alice.runtime.status().registry.index).toBe(1);
  }, 45_000);

  it("keeps its registration, saved under its old URL, when that URL becomes a fallback in a list", async () => {
    const resolve = (registryUrl: string | string[]) =>
      resolveAccounts({ registryUrl, transport: "none", accounts: { carol: { hostname: "carol" } } }, {})[0]!;
    const stateRoot = join(dir, "carol");
    const log = { ...quiet, warn: (m: string) => warnings.push(m) };
    const before = await startAccountRuntime({ account: resolve(second.url), stateRoot, log });
    running.push(before);
    const { agentId } = await until(() => before.status().lifecycle === "online" && before.status(), "carol");
    const token = before.state.identity().agentToken;
    await before.stop();
    running.splice(running.indexOf(before), 1);

    const other = await startCountingProxy(registry.url);
    try {
      const after = await startAccountRuntime({ account: resolve([other.url, second.url]), stateRoot, log });
      running.push(after);
      await until(() => after.status().lifecycle === "online", "carol again");
      expect(after.status().agentId).toBe(agentId);
      expect(after.state.identity()).toMatchObject({ registryUrl: other.url, agentToken: token });
      expect(after.status().registryUrl).toBe(other.url);
      await after.stop();
      running.splice(running.indexOf(after), 1);
    } finally {
      await other.close();
    }
  }, 30_000);
});
