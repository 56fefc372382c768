// A Pilot peer that the registry does not know is named `node-<id>` in its session. Replies, introductions and
// trust checks by that name must still find the peer (by node id): before, every reply to such a peer was dropped
// as "not trusted".
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Envelope } from "../../src/adapters/transport/envelope.js";
import type { PeerRef, Transport } from "../../src/adapters/transport/transport.js";
import { resolveAccounts } from "../../src/config.js";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import { startAccountRuntime } from "../../src/runtime/account-runtime.js";
import type { PeerNetwork } from "../../src/runtime/peer-network.js";
import { noneLink } from "../../src/runtime/transport-link.js";
import { quiet, until } from "./support/until.js";

describe("a trusted peer known only by its Pilot node id", () => {
  let registry: RegistryServerHandle;
  const dir = mkdtempSync(join(tmpdir(), "ar-node-name-"));
  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: ":memory:" });
  });
  afterAll(async () => {
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });
  it("is trusted, introduced and answered under the name node-<id>", async () => {
    const sent: Array<{ to: PeerRef; envelope: Envelope }> = [];
    const transport: Transport = {
      kind: "pilot",
      send: async (to, envelope) => {
        sent.push({ to, envelope });
        return { messageId: envelope.id };
      },
      requestTrust: async () => {},
      listPending: async () => [
        {
          peer: { hostname: null, nodeId: 4_000_000_007, installationId: null },
          introduction: "Hello from a node the registry never saw",
          assistantName: null,
          humanName: null,
          receivedAt: new Date().toISOString(),
        },
      ],
      listTrusted: async () => [
        { peer: { hostname: null, nodeId: 4_000_000_007, installationId: null }, since: null },
      ],
      approve: async () => {},
      reject: async () => {},
      untrust: async () => {},
    };
    const [account] = resolveAccounts(
      { registryUrl: registry.url, transport: "pilot", accounts: { alice: { hostname: "alice" } } },
      {},
    );
    // The real runtime with this transport in place of pilotctl (no inbox: only trust and replies matter here).
    const runtime = await startAccountRuntime({
      account: account!,
      stateRoot: join(dir, "alice"),
      log: quiet,
      link: () => ({ ...noneLink(), transport: () => transport, unavailableReason: () => null }),
    });
    const network = runtime.network as PeerNetwork;
    try {
      await until(() => runtime.status().lifecycle === "online", "alice online").catch((e) => {
        throw new Error(`${e} ${JSON.stringify(runtime.status())}`);
      });
      await network.reconcile();
      const name = "node-4000000007";
      expect(network.isTrusted({ hostname: name, nodeId: null, installationId: null })).toBe(true);
      expect(network.introductionFor(name)).toBe("Hello from a node the registry never saw");
      await network.sendReply(name, "Thanks, received.");
      expect(sent).toHaveLength(1);
      expect(sent[0]!.to.nodeId).toBe(4_000_000_007);
      expect(sent[0]!.envelope.body).toBe("Thanks, received.");
      // A name that is not ours to resolve stays unknown.
      expect(network.isTrusted({ hostname: "node-5", nodeId: null, installationId: null })).toBe(false);
    } finally {
      await runtime.stop();
    }
  });
});
