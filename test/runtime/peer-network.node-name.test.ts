// A Pilot peer that the registry does not know is named `node-<id>` in its session. Replies, introductions and
// trust checks by that name must still find the peer (by node id): before, every reply to such a peer was dropped
// as "not trusted".
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRegistryClient } from "../../src/adapters/registry/client.js";
import type { Envelope } from "../../src/adapters/transport/envelope.js";
import type { PeerRef, Transport } from "../../src/adapters/transport/transport.js";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import { createPeerNetwork } from "../../src/runtime/peer-network.js";
import { removeStateDirs, tempStateDir, testAccount } from "../adapters/openclaw/support/test-network.js";

const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };

describe("a trusted peer known only by its Pilot node id", () => {
  let registry: RegistryServerHandle;
  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: ":memory:" });
  });
  afterAll(async () => {
    await registry.close();
    removeStateDirs();
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
    const account = testAccount("alice", registry.url, { transport: "pilot" });
    const network = createPeerNetwork({
      account: { ...account, hostname: "alice" },
      registry: createRegistryClient({ baseUrl: registry.url }),
      stateDir: tempStateDir(),
      log: quiet,
      transport: () => transport,
      unavailableReason: () => null,
    });
    try {
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
      network.stop();
    }
  });
});
