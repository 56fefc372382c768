// Trust changes reach a relay account through its inbox long-poll: the registry ends the long-poll when the
// account's trust records change, and the account reads its trust list at once. So a request and an approval show
// in a second or two although the peers loop polls only every 2 minutes here, and between changes the trust list
// is not read at all (the registry's "nothing changed" stands in for it).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FetchLike } from "../../src/adapters/registry/client.js";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import { type RelayAccount, startRelayAccount } from "./support/relay-account.js";
import { until } from "./support/until.js";

describe("trust changes over the relay inbox", () => {
  let registry: RegistryServerHandle;
  const dir = mkdtempSync(join(tmpdir(), "ar-trust-wake-"));
  const started: RelayAccount[] = [];
  /** Trust-list reads per account, counted at the account's own registry connection. */
  const trustReads: Record<string, number> = {};

  const counting =
    (accountId: string): FetchLike =>
    (input, init) => {
      if (String(input).includes("/api/v1/trust/list/"))
        trustReads[accountId] = (trustReads[accountId] ?? 0) + 1;
      return fetch(input, init);
    };

  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: ":memory:" });
  });

  afterAll(async () => {
    await Promise.all(started.map((a) => a.runtime.stop()));
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("shows a request and its approval at once, and reads no trust list while nothing changes", async () => {
    const account = { pilot: { pollIntervalSeconds: 120 } };
    for (const accountId of ["alice", "bob"]) {
      started.push(
        await startRelayAccount({
          registryUrl: registry.url,
          stateDir: dir,
          accountId,
          account,
          fetch: counting(accountId),
        }),
      );
    }
    const [alice, bob] = started as [RelayAccount, RelayAccount];
    // Both have read their (empty) trust lists once at start, and their long-polls now watch the cursor.
    await until(() => (trustReads.alice ?? 0) >= 1 && (trustReads.bob ?? 0) >= 1, "the first readings");
    await new Promise((resolve) => setTimeout(resolve, 1_000));

    await alice.runtime.network.handshake("bob", "hello");
    const asked = Date.now();
    await until(() => bob.runtime.status().messaging.peers.pending === 1, "bob sees the request", 10_000);
    expect(Date.now() - asked).toBeLessThan(10_000);

    await bob.runtime.network.approve("alice");
    const approved = Date.now();
    await until(
      () => alice.runtime.network.peers().some((p) => p.hostname === "bob" && p.state === "trusted"),
      "alice sees the approval",
      10_000,
    );
    expect(Date.now() - approved).toBeLessThan(10_000);

    // Quiet now. Asking for the pending requests runs a peers cycle at once, and the registry's word (the
    // long-poll watching the current cursor) spares its read of the trust list.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const before = { ...trustReads };
    expect(await bob.runtime.network.pending()).toEqual([]);
    expect(await alice.runtime.network.pending()).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(trustReads.alice).toBe(before.alice);
    expect(trustReads.bob).toBe(before.bob);
  }, 60_000);
});
