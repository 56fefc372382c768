// The first reading of pending requests and the trust list happens at start, once the transport is linked: a
// request made while the account was down shows at once, not a poll interval (15 s here) later.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRegistryClient } from "../../src/adapters/registry/client.js";
import { accountStateDir } from "../../src/adapters/state/account-state.js";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import { startRelayAccount } from "./support/relay-account.js";
import { until } from "./support/until.js";

describe("the first poll", () => {
  let registry: RegistryServerHandle;
  const dir = mkdtempSync(join(tmpdir(), "ar-first-poll-"));

  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: ":memory:" });
  });

  afterAll(async () => {
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("shows a request made while the account was down right after it starts again", async () => {
    const account = { pilot: { pollIntervalSeconds: 15 } };
    const first = await startRelayAccount({
      registryUrl: registry.url,
      stateDir: dir,
      accountId: "ada",
      account,
    });
    const peerId = first.runtime.status().peerId;
    await first.runtime.stop();

    const client = createRegistryClient({ baseUrl: registry.url });
    const bob = await client.register({
      hostname: "bob",
      installationId: "bob-installation",
      capabilities: [],
    });
    await client.requestTrust(
      { fromId: "bob-installation", toId: peerId ?? "", introduction: "hello while you were away" },
      { token: bob.agentToken },
    );
    const identity = JSON.parse(
      readFileSync(join(accountStateDir(join(dir, "ada"), "ada"), "identity.json"), "utf8"),
    ) as { agentToken: string | null };
    expect(identity.agentToken).not.toBeNull();

    const started = Date.now();
    const again = await startRelayAccount({
      registryUrl: registry.url,
      stateDir: dir,
      accountId: "ada",
      account,
    });
    try {
      await until(() => again.runtime.status().messaging.peers.pending === 1, "the request shows", 5_000);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(again.runtime.network.peers()).toEqual([
        expect.objectContaining({
          hostname: "bob",
          state: "pendingApproval",
          introduction: "hello while you were away",
        }),
      ]);
    } finally {
      await again.runtime.stop();
    }
  });
});
