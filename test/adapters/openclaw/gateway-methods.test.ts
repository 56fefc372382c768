// The operator's gateway methods, called through the handlers registered on a recording host api: names and
// aliases, scopes, parameter validation, multi-account routing, NetworkError codes, and the extended status.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  gatewayMethodSpecs,
  NETWORK_ERROR_CODES,
  registerGatewayMethods,
} from "../../../src/adapters/openclaw/gateway-methods.js";
import type { NetworkErrorCode } from "../../../src/runtime/account-network.js";
import type { AccountRuntimes } from "../../../src/runtime/account-runtimes.js";
import { createFakeApi } from "./support/fake-api.js";
import {
  type AccountOptions,
  runtimesOf,
  startToolFixture,
  type TestAccount,
  type ToolFixture,
} from "./support/fixture.js";

let fx: ToolFixture;

beforeAll(async () => {
  fx = await startToolFixture();
});

afterEach(async () => {
  await fx.stopAccounts();
});

afterAll(async () => {
  await fx.close();
});

/** A real account runtime on its own in-memory network. */
function account(id: string, config: Record<string, unknown> = {}, options: AccountOptions = {}) {
  return fx.account(id, config, options);
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
  "agent-registry.outbox": "operator.read",
  "agent-registry.pending": "operator.read",
  "agent-registry.approve": "operator.write",
  "agent-registry.reject": "operator.write",
  "agent-registry.handshake": "operator.write",
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
    const fake = gateway(runtimesOf(await fx.shared("a")));
    const reply = await fake.call("agent-registry.search", { registryUrl: "http://evil.example" });
    expect(reply).toMatchObject({ ok: false, error: { code: "INVALID_PARAMS" } });
  });
});

describe("agent-registry.status", () => {
  it("adds transport, unavailableReason, peers counted by state and counters to each account", async () => {
    const a = await account("a", {}, { online: true });
    await a.trust("bob");
    await a.trust("carol");
    await a.requestFrom("dave");
    await a.network.send("bob", "hello bob");
    a.transportDown("Pilot daemon not running");
    const b = await account("b", {}, { transport: "none", online: true });
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
      counters: {
        dispatched: 0,
        refused: {},
        deadLettered: 0,
        duplicates: 0,
        sent: 1,
        // bob is a name on the trust list, not a running plugin: no receipt comes back.
        outbox: { queued: 0, sent: 1, delivered: 0, refused: 0, failed: 0 },
      },
    });
    expect(accounts[1]).toMatchObject({
      accountId: "b",
      transport: "none",
      unavailableReason: expect.any(String),
    });
  });

  it("still answers for a runtime whose network is not set up yet", async () => {
    // Its own hostname: the registry keeps "a" for the installation of the test before.
    const running = await account("a", { hostname: "a-starting" }, { online: true });
    const starting = { ...running, network: undefined } as unknown as TestAccount;
    const reply = await gateway(runtimesOf(starting)).call("agent-registry.status");
    expect(reply).toMatchObject({
      ok: true,
      payload: {
        accounts: [{ accountId: "a", lifecycle: "online", transport: null, unavailableReason: "starting" }],
      },
    });
  });

  it("selects one account by id and reports an unknown one", async () => {
    const fake = gateway(runtimesOf(await account("a"), await account("b")));
    const one = await fake.call("agent-registry.status", { accountId: "b" });
    expect(
      (one.payload as { accounts: Array<{ accountId: string }> }).accounts.map((x) => x.accountId),
    ).toEqual(["b"]);
    const unknown = await fake.call("agent-registry.status", { accountId: "zzz" });
    expect(unknown).toMatchObject({ ok: false, error: { code: "NO_ACCOUNT" } });
  });
});

describe("agent-registry.outbox", () => {
  it("lists the undelivered messages with their state and reason, by account", async () => {
    const a = await account("a");
    await a.trust("bob");
    a.transportDown("Pilot daemon not running");
    const fake = gateway(runtimesOf(a));
    const sent = await fake.call("agent-registry.send", { to: "bob", text: "are you there?" });
    expect(sent).toMatchObject({
      ok: true,
      payload: { state: "queued", reason: "Pilot daemon not running" },
    });
    const reply = await fake.call("agent-registry.outbox", { peer: "bob" });
    expect(reply).toMatchObject({
      ok: true,
      payload: {
        accounts: [
          {
            accountId: "a",
            counts: { queued: 1 },
            messages: [{ peer: "bob", state: "queued", preview: "are you there?", origin: "send" }],
          },
        ],
      },
    });
    expect(await fake.call("agent-registry.outbox", { finished: 500 })).toMatchObject({
      ok: false,
      error: { code: "INVALID_PARAMS" },
    });
  });
});

describe("agent-registry.peers and .pending", () => {
  it("lists every account's peers, or one account's", async () => {
    const a = await account("a");
    await a.trust("bob");
    const b = await account("b");
    await b.network.handshake("carol");
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
    const a = await account("a", { handshake: { approver: "agent" } });
    await a.requestFrom("mallory", "approve me");
    await a.trust("bob");
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
    const reply = await gateway(runtimesOf(await fx.shared("a"))).call("agent-registry.pending", {
      all: true,
    });
    expect(reply).toMatchObject({ ok: false, error: { code: "INVALID_PARAMS" } });
    expect(reply.error?.message).toContain("agent-registry.pending");
  });
});

describe("agent-registry.search", () => {
  it("searches the account's registry with clamped limit", async () => {
    const a = await account("a");
    const fake = gateway(runtimesOf(a));
    const reply = await fake.call("agent-registry.search", { capabilities: ["filler"], limit: 999 });
    expect(reply.payload).toMatchObject({ accountId: "a", limit: 50, total: 12 });
    expect(a.searches.at(-1)?.getAll("capabilities")).toEqual(["filler"]);
    expect((reply.payload as { agents: unknown[] }).agents).toHaveLength(12);
    const small = await fake.call("agent-registry.search", { query: "trips", match: "all", limit: -3 });
    expect(small.payload).toMatchObject({ limit: 1 });
    const sent = a.searches.at(-1)!;
    expect([sent.get("q"), sent.get("match"), sent.get("limit")]).toEqual(["trips", "all", "1"]);
  });

  it("validates capabilities, match and limit", async () => {
    const fake = gateway(runtimesOf(await fx.shared("a")));
    const tooMany = await fake.call("agent-registry.search", {
      capabilities: Array.from({ length: 21 }, (_, i) => `c${i}`),
    });
    expect(tooMany).toMatchObject({ ok: false, error: { code: "INVALID_PARAMS" } });
    expect(tooMany.error?.message).toContain("at most 20");
    expect(await fake.call("agent-registry.search", { match: "some" })).toMatchObject({ ok: false });
    expect(await fake.call("agent-registry.search", { limit: "ten" })).toMatchObject({ ok: false });
  });

  it("needs accountId when several accounts run", async () => {
    const reply = await gateway(runtimesOf(await account("a"), await account("b"))).call(
      "agent-registry.search",
      {},
    );
    expect(reply).toMatchObject({ ok: false, error: { code: "NO_ACCOUNT" } });
    expect(reply.error?.message).toContain("pass accountId");
  });
});

describe("agent-registry.send", () => {
  it("sends from the chosen account and returns the message id", async () => {
    const a = await account("a");
    const b = await account("b");
    await b.trust("bob");
    const reply = await gateway(runtimesOf(a, b)).call("agent-registry.send", {
      accountId: "b",
      to: "Bob",
      text: "hello from the operator",
    });
    expect(reply).toMatchObject({
      ok: true,
      payload: { accountId: "b", to: "bob", messageId: expect.any(String) },
    });
    const { messageId } = reply.payload as { messageId: string };
    expect(b.sentTo("bob")).toEqual([
      expect.objectContaining({ id: messageId, body: "hello from the operator" }),
    ]);
    expect(a.sentTo("bob")).toHaveLength(0);
  });

  it("maps NOT_TRUSTED and transport errors to method error codes", async () => {
    const a = await account("a");
    const fake = gateway(runtimesOf(a));
    const untrusted = await fake.call("agent-registry.send", { to: "carol", text: "hi" });
    expect(untrusted).toMatchObject({
      ok: false,
      error: { code: "NOT_TRUSTED", details: { networkCode: "NOT_TRUSTED" } },
    });
    const none = await account("a", {}, { transport: "none" });
    const off = await gateway(runtimesOf(none)).call("agent-registry.send", { to: "carol", text: "hi" });
    expect(off).toMatchObject({
      ok: false,
      error: { code: "UNAVAILABLE", details: { networkCode: "NO_TRANSPORT" } },
    });
  });

  it("requires to and text", async () => {
    const fake = gateway(runtimesOf(await fx.shared("a")));
    const reply = await fake.call("agent-registry.send", { to: "bob" });
    expect(reply).toMatchObject({ ok: false, error: { code: "INVALID_PARAMS" } });
    expect(reply.error?.message).toContain("text");
    const empty = await fake.call("agent-registry.send", { to: "", text: "x" });
    expect(empty.error?.message).toContain("to: pass the peer's hostname");
  });
});

describe("agent-registry.approve, .reject, .untrust", () => {
  it("lets the operator approve even when handshake.approver is owner", async () => {
    const a = await account("a");
    expect(a.account.handshake.approver).toBe("owner");
    await a.requestFrom("mallory", "hi", { nodeId: 666 });
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
    const a = await account("a");
    await a.requestFrom("mallory");
    await a.trust("bob");
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
    const a = await account("a");
    await a.trust("bob");
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
    const a = await account("a");
    const b = await account("b");
    for (const runtime of [a, b]) await runtime.requestFrom("mallory");
    await gateway(runtimesOf(a, b)).call("agent-registry.approve", { accountId: "b", peer: "mallory" });
    expect(a.stateOf("mallory")).toBe("pendingApproval");
    expect(b.stateOf("mallory")).toBe("trusted");
    expect(b.memory.trusts("mallory", "b")).toBe(true);
  });
});

describe("NetworkError codes", () => {
  /** Each code as the real network raises it, through the gateway method that meets it. */
  const cases: Record<
    Exclude<NetworkErrorCode, "OWNER_APPROVAL_REQUIRED">,
    (a: TestAccount) => [string, Record<string, unknown>] | Promise<[string, Record<string, unknown>]>
  > = {
    NO_TRANSPORT: () => ["agent-registry.send", { to: "bob", text: "hi" }],
    // To a peer not known as trusted (a trusted one would be queued, see OUTBOX_FULL).
    TRANSPORT_UNAVAILABLE: (a) => {
      a.transportDown("Pilot daemon not running");
      return ["agent-registry.send", { to: "bob", text: "hi" }];
    },
    // The account below allows one undelivered message per peer; the transport is down, so the first stays.
    OUTBOX_FULL: async (a) => {
      await a.trust("bob");
      a.transportDown("Pilot daemon not running");
      await a.network.send("bob", "first");
      return ["agent-registry.send", { to: "bob", text: "second" }];
    },
    NOT_FOUND: () => ["agent-registry.send", { to: "nobody", text: "hi" }],
    NOT_TRUSTED: () => ["agent-registry.send", { to: "carol", text: "hi" }],
    NOT_PENDING: () => ["agent-registry.approve", { peer: "bob" }],
    // The registry serves bob's record with a signature that does not verify: it is not taken.
    UNVERIFIED: (a) => {
      a.tamper((path, body) =>
        path.endsWith("/by-hostname/bob") ? { ...(body as object), signed_record: "e30.e30.AAAA" } : body,
      );
      return ["agent-registry.send", { to: "bob", text: "hi" }];
    },
    INVALID: () => ["agent-registry.send", { to: "bob", text: "   " }],
    FAILED: (a) => {
      a.memory.fail("a", "listPending", "pilotctl exited 1");
      return ["agent-registry.pending", {}];
    },
  };

  it.each(Object.entries(cases))("%s becomes its method code", async (networkCode, setup) => {
    const config = networkCode === "OUTBOX_FULL" ? { outbound: { maxQueuedPerPeer: 1 } } : {};
    const a = await account("a", config, networkCode === "NO_TRANSPORT" ? { transport: "none" } : {});
    const [method, params] = await setup(a);
    const reply = await gateway(runtimesOf(a)).call(method, params);
    expect(reply).toMatchObject({
      ok: false,
      error: {
        code: NETWORK_ERROR_CODES[networkCode as NetworkErrorCode],
        message: expect.any(String),
        details: { networkCode },
      },
    });
  });

  it("maps every network code (OWNER_APPROVAL_REQUIRED is the tool's: the network never raises it)", () => {
    expect(Object.keys(NETWORK_ERROR_CODES).sort()).toEqual(
      [...Object.keys(cases), "OWNER_APPROVAL_REQUIRED"].sort(),
    );
    expect(NETWORK_ERROR_CODES.OWNER_APPROVAL_REQUIRED).toBe("FORBIDDEN");
  });

  it("any other error is FAILED", async () => {
    const a = await account("a");
    a.registryDown(true);
    const reply = await gateway(runtimesOf(a)).call("agent-registry.search", { query: "x" });
    expect(reply).toMatchObject({
      ok: false,
      error: { code: "FAILED", message: expect.stringMatching(/unreachable/) },
    });
  });
});
