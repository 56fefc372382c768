// An idle account's peers loop: the same reading of pending requests and the trust list, into the same table,
// is not routed again, so its cost does not grow with the number of peers; a change is routed at once.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import type { AccountRuntime } from "../../src/runtime/account-runtime.js";
import type { PeerNetwork } from "../../src/runtime/peer-network.js";
import { createMemoryNetwork } from "../support/memory-network.js";
import { startMemoryAccount } from "./support/memory-account.js";

describe("peers loop while idle", () => {
  let registry: RegistryServerHandle;
  let runtime: AccountRuntime;
  const dir = mkdtempSync(join(tmpdir(), "ar-idle-"));
  const network = createMemoryNetwork();

  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: ":memory:" });
    ({ runtime } = await startMemoryAccount({
      network,
      registryUrl: registry.url,
      stateDir: dir,
      accountId: "ida",
    }));
  });

  afterAll(async () => {
    await runtime.stop();
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("skips a reading it already routed, and routes the next one that differs", async () => {
    const peers = runtime.network as PeerNetwork;
    await peers.observe();
    expect(await peers.observe()).toBeNull();

    const zed = network.join("zed");
    await zed.requestTrust({ hostname: "ida", nodeId: null, installationId: null }, "hello from zed");
    const changed = await peers.observe();
    expect(changed?.pending.map((request) => request.peer.hostname)).toEqual(["zed"]);
  });
});
