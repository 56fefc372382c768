// The operator's gateway methods, called through the handlers registered on a recording host api: names and
// aliases, scopes, parameter validation, multi-account routing, NetworkError codes, and the extended status.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  gatewayMethodSpecs,
  NETWORK_ERROR_CODES,
  registerGatewayMethods,
} from "../../../src/adapters/openclaw/gateway-methods.js";
import { NetworkError, type NetworkErrorCode } from "../../../src/runtime/account-network.js";
import type { AccountRuntimes } from "../../../src/runtime/account-runtimes.js";
import { createFakeApi } from "./support/fake-api.js";
import { runtimesOf, startToolFixture, type ToolFixture } from "./support/fixture.js";
import { peer, type TestRuntime, testRuntime } from "./support/test-network.js";

let fx: ToolFixture;

beforeAll(async () => {
  fx = await startToolFixture();
});

afterAll(async () => {
  await fx.close();
});

function account(id: string, config: Record<string, unknown> = {}): TestRuntime {
  return testRuntime(id, fx.registry.url, config);
}

function gateway(runtimes: AccountRuntimes, options: { rejectSlashNames?: boolean } = {}) {
  const fake = createFakeApi(options);
  registerGatewayMethods(fake.api, gatewayMethodSpecs(runtimes));
  return fake;
}

const METHODS: Record<string, "operator.read" | "operator.write"> = {
  "agent-registry.status": "operator.read",
  "agent-registry.refresh": "operator.write",
  "agent-registry.visibility": "operator.write",
  "agent-registry.peers": "operator.read",
  "agent-registry.search": "operator.read",
  "agent-registry.send": "operator.write",
  "agent-registry.pending": "operator.read",
  "agent-registry.approve": "operator.write",
  "agent-registry.reject": "operator.write",
  "agent-registry.untrust": "operator.write",
};

describe("registration", () => {
  it("registers every method with an explicit scope, plus its slash alias", () => {
    const fake = gateway(runtimesOf());
    for (const [name, scope] of Object.entries(METHODS)) {
      expect(fake.methods.get(name)?.scope).toBe(scope);
      expect(fake.methods.get(name.replace("agent-registry.", "agent-registry/"))?.scope).toBe(scope);
    }
    expect(fake.methods.size).toBe(Object.keys(METHODS).length * 2);
  });

  it("keeps the dotted names when the gateway refuses slash aliases", () => {
    const fake = gateway(runtimesOf(), { rejectSlashNames: true });
    expect([...fake.methods.keys()].sort()).toEqual(Object.keys(METHODS).sort());
    expect(fake.debug.some((line) => line.includes("alias agent-registry/peers not registered"))).toBe(true);
  });

  it("no method takes a registry URL", async () => {
    const fake = gateway(runtimesOf(account("a")));
    const reply = await fake.call("agent-registry.search", { registryUrl: "http://evil.example" });
    expect(reply).toMatchObject({ ok: false, error: { code: "INVALID_PARAMS" } });
  });
});

describe("agent-registry.status", () => {
  it("adds transport, unavailableReason, peers counted by state and counters to each account", async () => {
    const a = account("a");
    a.network.unavailable = "Pilot daemon not running";
    a.network.add(peer({ hostname: "bob", state: "trusted" }));
    a.network.add(peer({ hostname: "carol", state: "trusted" }));
    a.network.add(peer({ hostname: "dave", state: "pendingApproval" }));
    const b = account("b");
    b.network.transport = "none";
    const reply = await gateway(runtimesOf(a, b)).call("agent-registry.status");
    expect(reply.ok).toBe(true);
    const accounts = (reply.payload as { accounts: Array<Record<string, unknown>> }).accounts;
    expect(accounts).toHaveLength(2);
    expect(accounts[0]).toMatchObject({
      accountId: "a",
      lifecycle: "online",
      transport: "relay",
      unavailableReason: "Pilot daemon not running",
      peers: { trusted: 2, pendingApproval: 1, requested: 0, rejected: 0, revoked: 0, unknown: 0 },
      counters: { dispatched: 3, refused: { untrusted: 2 }, deadLettered: 0, duplicates: 1, sent: 0 },
    });
    expect(accounts[1]).toMatchObject({
      accountId: "b",
      transport: "none",
      unavailableReason: expect.any(String),
    });
  });

  it("still answers for a runtime whose network is not set up yet", async () => {
    const starting = { ...account("a"), network: undefined } as unknown as TestRuntime;
    const reply = await gateway(runtimesOf(starting)).call("agent-registry.status");
    expect(reply).toMatchObject({
      ok: true,
      payload: {
        accounts: [{ accountId: "a", lifecycle: "online", transport: null, unavailableReason: "starting" }],
      },
    });
  });

  it("selects one account by id and reports an unknown one", async () => {
    const fake = gateway(runtimesOf(account("a"), account("b")));
    const one = await fake.call("agent-registry.status", { accountId: "b" });
    expect(
      (one.payload as { accounts: Array<{ accountId: string }> }).accounts.map((x) => x.accountId),
    ).toEqual(["b"]);
    const unknown = await fake.call("agent-registry.status", { accountId: "zzz" });
    expect(unknown).toMatchObject({ ok: false, error: { code: "NO_ACCOUNT" } });
  });
});

describe("agent-registry.peers and .pending", () => {
  it("lists every account's peers, or one account's", async () => {
    const a = account("a");
    a.network.add(peer({ hostname: "bob", state: "trusted" }));
    const b = account("b");
    b.network.add(peer({ hostname: "carol", state: "requested" }));
    const fake = gateway(runtimesOf(a, b));
    const all = await fake.call("agent-registry.peers");
    expect(all.payload).toMatchObject({
      accounts: [
        {
          accountId: "a",
          transport: "relay",
          unavailableReason: null,
          peers: [{ hostname: "bob", state: "trusted" }],
        },
        { accountId: "b", peers: [{ hostname: "carol", state: "requested" }] },
      ],
    });
    const onlyB = await fake.call("agent-registry/peers", { accountId: "b" });
    expect((onlyB.payload as { accounts: unknown[] }).accounts).toHaveLength(1);
  });

  it("lists pending requests with the approver of each account", async () => {
    const a = account("a", { handshake: { approver: "agent" } });
    a.network.add(peer({ hostname: "mallory", state: "pendingApproval", introduction: "approve me" }));
    a.network.add(peer({ hostname: "bob", state: "trusted" }));
    const reply = await gateway(runtimesOf(a)).call("agent-registry.pending", {});
    expect(reply.payload).toEqual({
      accounts: [
        {
          accountId: "a",
          approver: "agent",
          requests: [expect.objectContaining({ hostname: "mallory", introduction: "approve me" })],
        },
      ],
    });
  });

  it("refuses unknown parameters", async () => {
    const reply = await gateway(runtimesOf(account("a"))).call("agent-registry.pending", { all: true });
    expect(reply).toMatchObject({ ok: false, error: { code: "INVALID_PARAMS" } });
    expect(reply.error?.message).toContain("agent-registry.pending");
  });
});

describe("agent-registry.search", () => {
  it("searches the account's registry with clamped limit", async () => {
    const a = account("a");
    const fake = gateway(runtimesOf(a));
    const reply = await fake.call("agent-registry.search", { capabilities: ["filler"], limit: 999 });
    expect(reply.payload).toMatchObject({ accountId: "a", limit: 50, total: 12 });
    expect((reply.payload as { agents: unknown[] }).agents).toHaveLength(12);
    const small = await fake.call("agent-registry.search", { query: "trips", match: "all", limit: -3 });
    expect(small.payload).toMatchObject({ limit: 1 });
    expect(a.network.searches.at(-1)).toEqual({ q: "trips", match: "all", limit: 1 });
  });

  it("validates capabilities, match and limit", async () => {
    const fake = gateway(runtimesOf(account("a")));
    const tooMany = await fake.call("agent-registry.search", {
      capabilities: Array.from({ length: 21 }, (_, i) => `c${i}`),
    });
    expect(tooMany).toMatchObject({ ok: false, error: { code: "INVALID_PARAMS" } });
    expect(tooMany.error?.message).toContain("at most 20");
    expect(await fake.call("agent-registry.search", { match: "some" })).toMatchObject({ ok: false });
    expect(await fake.call("agent-registry.search", { limit: "ten" })).toMatchObject({ ok: false });
  });

  it("needs accountId when several accounts run", async () => {
    const reply = await gateway(runtimesOf(account("a"), account("b"))).call("agent-registry.search", {});
    expect(reply).toMatchObject({ ok: false, error: { code: "NO_ACCOUNT" } });
    expect(reply.error?.message).toContain("pass accountId");
  });
});

describe("agent-registry.send", () => {
  it("sends from the chosen account and returns the message id", async () => {
    const a = account("a");
    const b = account("b");
    b.network.add(peer({ hostname: "bob", state: "trusted" }));
    const reply = await gateway(runtimesOf(a, b)).call("agent-registry.send", {
      accountId: "b",
      to: "Bob",
      text: "hello from the operator",
    });
    expect(reply).toMatchObject({ ok: true, payload: { accountId: "b", to: "bob", messageId: "msg-1" } });
    expect(b.network.sent).toHaveLength(1);
    expect(a.network.sent).toHaveLength(0);
  });

  it("maps NOT_TRUSTED and transport errors to method error codes", async () => {
    const a = account("a");
    const fake = gateway(runtimesOf(a));
    const untrusted = await fake.call("agent-registry.send", { to: "carol", text: "hi" });
    expect(untrusted).toMatchObject({
      ok: false,
      error: { code: "NOT_TRUSTED", details: { networkCode: "NOT_TRUSTED" } },
    });
    a.network.transport = "none";
    const off = await fake.call("agent-registry.send", { to: "carol", text: "hi" });
    expect(off).toMatchObject({
      ok: false,
      error: { code: "UNAVAILABLE", details: { networkCode: "NO_TRANSPORT" } },
    });
  });

  it("requires to and text", async () => {
    const fake = gateway(runtimesOf(account("a")));
    const reply = await fake.call("agent-registry.send", { to: "bob" });
    expect(reply).toMatchObject({ ok: false, error: { code: "INVALID_PARAMS" } });
    expect(reply.error?.message).toContain("text");
    const empty = await fake.call("agent-registry.send", { to: "", text: "x" });
    expect(empty.error?.message).toContain("to: pass the peer's hostname");
  });
});

describe("agent-registry.approve, .reject, .untrust", () => {
  it("lets the operator approve even when handshake.approver is owner", async () => {
    const a = account("a");
    expect(a.account.handshake.approver).toBe("owner");
    a.network.add(peer({ hostname: "mallory", nodeId: 666, state: "pendingApproval" }));
    const reply = await gateway(runtimesOf(a)).call("agent-registry.approve", {
      accountId: "a",
      peer: "666",
    });
    expect(reply).toMatchObject({
      ok: true,
      payload: { accountId: "a", peer: { hostname: "mallory", state: "trusted" } },
    });
  });

  it("rejects with a reason and untrusts", async () => {
    const a = account("a");
    a.network.add(peer({ hostname: "mallory", state: "pendingApproval" }));
    a.network.add(peer({ hostname: "bob", state: "trusted" }));
    const fake = gateway(runtimesOf(a));
    expect(await fake.call("agent-registry.reject", { peer: "MALLORY", reason: "spam" })).toMatchObject({
      ok: true,
      payload: { peer: { state: "rejected" } },
    });
    expect(await fake.call("agent-registry/untrust", { peer: "bob" })).toMatchObject({
      ok: true,
      payload: { peer: { hostname: "bob", state: "revoked" } },
    });
  });

  it("reports NOT_PENDING, NOT_TRUSTED and a missing peer", async () => {
    const a = account("a");
    a.network.add(peer({ hostname: "bob", state: "trusted" }));
    const fake = gateway(runtimesOf(a));
    expect(await fake.call("agent-registry.approve", { peer: "bob" })).toMatchObject({
      ok: false,
      error: { code: "NOT_PENDING" },
    });
    expect(await fake.call("agent-registry.reject", { peer: "nobody" })).toMatchObject({
      ok: false,
      error: { code: "NOT_PENDING" },
    });
    expect(await fake.call("agent-registry.untrust", { peer: "nobody" })).toMatchObject({
      ok: false,
      error: { code: "NOT_TRUSTED" },
    });
    const missing = await fake.call("agent-registry.untrust", {});
    expect(missing).toMatchObject({ ok: false, error: { code: "INVALID_PARAMS" } });
    expect(missing.error?.message).toContain("peer");
  });

  it("routes to the named account only", async () => {
    const a = account("a");
    const b = account("b");
    for (const runtime of [a, b])
      runtime.network.add(peer({ hostname: "mallory", state: "pendingApproval" }));
    await gateway(runtimesOf(a, b)).call("agent-registry.approve", { accountId: "b", peer: "mallory" });
    expect(a.network.known.get("mallory")?.state).toBe("pendingApproval");
    expect(b.network.known.get("mallory")?.state).toBe("trusted");
  });
});

describe("NetworkError codes", () => {
  it.each(Object.entries(NETWORK_ERROR_CODES))("%s becomes %s", async (networkCode, methodCode) => {
    const a = account("a");
    a.network.failNext = new NetworkError(networkCode as NetworkErrorCode, `failed with ${networkCode}`);
    const reply = await gateway(runtimesOf(a)).call("agent-registry.pending");
    expect(reply).toMatchObject({
      ok: false,
      error: { code: methodCode, message: `failed with ${networkCode}`, details: { networkCode } },
    });
  });

  it("any other error is FAILED", async () => {
    const a = account("a");
    a.network.failNext = new Error("registry unreachable");
    const reply = await gateway(runtimesOf(a)).call("agent-registry.search", { query: "x" });
    expect(reply).toMatchObject({ ok: false, error: { code: "FAILED", message: "registry unreachable" } });
  });
});
