// A relay account against a registry shaped like the original (no tokens, no relay or trust routes): the
// account still registers, its link starts without a token, and its status says that this registry has no
// relay and what to do, instead of "starting" for ever.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveAccounts } from "../../src/config.js";
import { type AccountRuntime, startAccountRuntime } from "../../src/runtime/account-runtime.js";
import { type LegacyRegistryServer, startLegacyRegistryServer } from "../fixtures/legacy-registry-server.js";
import { until } from "./support/until.js";

const warnings: string[] = [];
const log = { info: () => {}, warn: (m: string) => warnings.push(m), error: () => {}, debug: () => {} };

describe("relay account on a registry without relay routes", () => {
  let legacy: LegacyRegistryServer;
  let runtime: AccountRuntime | undefined;
  const dir = mkdtempSync(join(tmpdir(), "ar-no-relay-"));

  beforeAll(async () => {
    legacy = await startLegacyRegistryServer();
  });

  afterAll(async () => {
    await runtime?.stop();
    await legacy.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("registers without a token and says the registry has no relay, and what to do", async () => {
    const [account] = resolveAccounts(
      { registryUrl: legacy.url, transport: "relay", accounts: { solo: { hostname: "solo" } } },
      {},
    );
    runtime = await startAccountRuntime({
      account: account!,
      stateRoot: dir,
      log,
      createDispatcher: () => async () => {},
    });
    await until(() => runtime!.status().lifecycle === "online", "registration");
    const reason = await until(() => {
      const r = runtime!.network.unavailableReason();
      return r && /no relay/.test(r) ? r : null;
    }, "the no-relay status");
    expect(reason).toContain(`registry at ${legacy.url} has no relay`);
    expect(reason).toMatch(/(relay inbox|trust list|trust pending) route answered 404/);
    expect(reason).toMatch(/registry with relay support .*transport to "pilot"/);
    expect(reason).not.toMatch(/starting/);
    expect(warnings.filter((w) => /has no relay/.test(w))).toHaveLength(1);
    // The inbox loop was woken by the registration and tried too.
    await until(
      () => legacy.requests.some((r) => r.path.startsWith("/api/v1/agents/messages/inbox/")),
      "the inbox read after registration",
    );
  });
});
