// How an account's status reads in `openclaw channels status`: the lifecycle, the reason and, from the actor
// tree, whether messaging works and why not.
import { describe, expect, it } from "vitest";
import { toChannelSnapshot } from "../../../src/adapters/openclaw/channel.js";
import type { AccountRuntimeStatus } from "../../../src/runtime/account-runtime.js";

function status(overrides: Partial<AccountRuntimeStatus> = {}): AccountRuntimeStatus {
  return {
    lifecycle: "online",
    agentId: "agent-1",
    discoverable: true,
    lastHeartbeatAt: null,
    heartbeatFailures: 0,
    lastError: null,
    nextRetryDelayMs: null,
    messaging: {
      transport: "pilot",
      ready: false,
      reason: "Pilot daemon exited",
      daemon: null,
      inbox: null,
      relayInbox: null,
      peersLoop: null,
      outboxLoop: null,
      peers: { total: 3, trusted: 2, pending: 1, failing: [] },
    },
    accountId: "main",
    hostname: "alice",
    peerId: "p_1",
    registryUrl: "http://127.0.0.1:1",
    registry: { url: "http://127.0.0.1:1", index: 0, configured: 1, lastFailover: null },
    fingerprint: "12345 67890 12345 67890 12345 67890",
    visibilitySource: "config",
    visibilityError: null,
    ...overrides,
  };
}

describe("the channel status of an account", () => {
  it("is connected while online and shows why messaging is down, with its peers", () => {
    const snapshot = toChannelSnapshot(status()) as unknown as Record<string, unknown>;
    expect(snapshot).toMatchObject({ accountId: "main", running: true, connected: true, lifecycle: "ready" });
    expect(snapshot.profile).toMatchObject({
      peerId: "p_1",
      messaging: {
        transport: "pilot",
        ready: false,
        reason: "Pilot daemon exited",
        peers: 3,
        trusted: 2,
        pending: 1,
      },
    });
  });

  it("names the registry URL in use and, after a failover, when it happened and from where", () => {
    const failedOver = status({
      registryUrl: "https://b.example",
      registry: {
        url: "https://b.example",
        index: 1,
        configured: 2,
        lastFailover: {
          at: "2026-11-30T08:00:00.000Z",
          from: "https://a.example",
          to: "https://b.example",
          reason: "https://a.example: unreachable",
        },
      },
    });
    expect(toChannelSnapshot(failedOver)).toMatchObject({
      baseUrl: "https://b.example",
      profile: {
        registry: {
          url: "https://b.example",
          configured: 2,
          lastFailoverAt: "2026-11-30T08:00:00.000Z",
          lastFailoverFrom: "https://a.example",
        },
      },
    });
  });

  it("says recovering with the registry's error while idle after a failure, and starting before one", () => {
    const failing = status({
      lifecycle: "idle",
      lastError: { kind: "unreachable", operation: "register", message: "registry unreachable" },
    });
    expect(toChannelSnapshot(failing)).toMatchObject({
      connected: false,
      lifecycle: "recovering",
      lastError: "registry unreachable",
    });
    expect(toChannelSnapshot(status({ lifecycle: "idle" }))).toMatchObject({ lifecycle: "starting" });
    expect(toChannelSnapshot(status({ lifecycle: "stopped" }))).toMatchObject({ running: false });
  });
});
