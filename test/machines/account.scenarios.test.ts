// Scenario tests of the account machine, one behaviour each, named after what they prove. They drive the real
// machine through the test kit: fake registry actors settled by the test, a simulated clock.
import { describe, expect, it } from "vitest";
import { type AccountMachineInput, accountMachine } from "../../src/machines/account.machine.js";
import { toAccountStatus } from "../../src/machines/account.status.js";
import { backoffDelay } from "../../src/machines/backoff.js";
import {
  ACCOUNT_ACTIONS,
  ACCOUNT_ACTORS,
  AGENT_ID,
  CHANGED_METADATA,
  INPUT,
  LAST_SEEN,
  METADATA,
  plainError,
  TRANSPORT,
} from "./support/account-model.js";
import { createHarness } from "./support/index.js";

const HEARTBEAT = INPUT.heartbeatIntervalMs!;

async function startAccount(overrides: Partial<AccountMachineInput> = {}) {
  const h = createHarness({
    machine: accountMachine,
    input: { ...INPUT, ...overrides },
    actors: ACCOUNT_ACTORS,
    actions: ACCOUNT_ACTIONS,
  });
  await h.start();
  return h;
}

type AccountHarness = Awaited<ReturnType<typeof startAccount>>;

async function settle(h: AccountHarness, src: string, outcome: { output: unknown } | { error: unknown }) {
  if ("output" in outcome) h.fakes.resolve(src, outcome.output);
  else h.fakes.reject(src, outcome.error);
  await h.flush();
}

async function goOnline(overrides: Partial<AccountMachineInput> = {}) {
  const h = await startAccount(overrides);
  await settle(h, "registerAgent", { output: { agentId: AGENT_ID } });
  expect(h.snapshot().value).toEqual({ online: "waiting" });
  return h;
}

/** Lets the heartbeat timer fire and returns with the heartbeat in flight. */
async function nextHeartbeat(h: AccountHarness) {
  await h.advance(HEARTBEAT);
  expect(h.snapshot().value).toEqual({ online: "beating" });
}

describe("account: registration", () => {
  it("a discoverable account registers at start with its full metadata and persists the id", async () => {
    const h = await startAccount({ agentId: "agent-old" });
    expect(h.fakes.pending("registerAgent").input).toEqual({ metadata: METADATA, agentId: "agent-old" });
    await settle(h, "registerAgent", { output: { agentId: AGENT_ID } });
    expect(h.effects).toEqual([
      { name: "persistAgentId", params: { accountId: "main", agentId: AGENT_ID }, at: 0 },
    ]);
    expect(toAccountStatus(h.snapshot())).toMatchObject({ lifecycle: "online", agentId: AGENT_ID });
  });

  it("a private account never calls the registry until it becomes discoverable", async () => {
    const h = await startAccount({ discoverable: false });
    await h.advance(10 * HEARTBEAT);
    expect(h.fakes.calls).toEqual([]);
    expect(h.timers()).toEqual([]);
    await h.send({ type: "VISIBILITY.CHANGED", discoverable: true });
    expect(h.fakes.pending("registerAgent").input).toEqual({ metadata: METADATA, agentId: null });
  });

  it("registration failures back off exponentially with deterministic jitter, capped", async () => {
    const policy = { initialMs: 1_000, maxMs: 20_000, factor: 2 };
    const h = await startAccount({ registerBackoff: policy });
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 8; attempt++) {
      await settle(h, "registerAgent", { error: plainError("unreachable", "register") });
      expect(h.snapshot().value).toBe("idle");
      const expected = backoffDelay(policy, attempt, METADATA.installationId);
      expect(toAccountStatus(h.snapshot()).nextRetryDelayMs).toBe(expected);
      await h.advance(expected - 1);
      expect(h.snapshot().value, `attempt ${attempt}: still idle 1 ms early`).toBe("idle");
      await h.advance(1);
      expect(h.snapshot().value, `attempt ${attempt}: retries on time`).toBe("registering");
      delays.push(expected);
    }
    const bases = [1_000, 2_000, 4_000, 8_000, 16_000, 20_000, 20_000, 20_000];
    delays.forEach((delay, index) => {
      expect(delay).toBeLessThanOrEqual(bases[index]!);
      expect(delay).toBeGreaterThanOrEqual(Math.round(bases[index]! * 0.8));
    });
    expect(new Set(delays.slice(5)).size, "jitter varies per attempt even at the cap").toBeGreaterThan(1);
  });

  it("two installations failing together retry at different times", () => {
    const policy = INPUT.registerBackoff!;
    const a = [1, 2, 3, 4].map((n) => backoffDelay(policy, n, "inst-a"));
    const b = [1, 2, 3, 4].map((n) => backoffDelay(policy, n, "inst-b"));
    expect(a).not.toEqual(b);
  });

  it("a successful registration resets the backoff", async () => {
    const h = await startAccount();
    await settle(h, "registerAgent", { error: plainError("unreachable", "register") });
    await h.advance(h.timers()[0]!.remainingMs);
    await settle(h, "registerAgent", { output: { agentId: AGENT_ID } });
    expect(h.snapshot().context).toMatchObject({
      registerAttempts: 0,
      nextRetryDelayMs: null,
      lastError: null,
    });
  });

  it("REGISTER.NOW skips a pending backoff", async () => {
    const h = await startAccount();
    await settle(h, "registerAgent", { error: plainError("unreachable", "register") });
    expect(h.snapshot().value).toBe("idle");
    await h.send({ type: "REGISTER.NOW" });
    expect(h.snapshot().value).toBe("registering");
    expect(h.timers()).toEqual([]);
    expect(h.fakes.callsOf("registerAgent")).toHaveLength(2);
  });

  it("a hostname conflict backs off with a message naming the hostname and what to do", async () => {
    const h = await startAccount();
    await settle(h, "registerAgent", { error: { ...plainError("conflict", "register"), status: 409 } });
    const status = toAccountStatus(h.snapshot());
    expect(status.lifecycle).toBe("idle");
    expect(status.lastError).toMatchObject({ kind: "conflict", operation: "register", status: 409 });
    expect(status.lastError?.message).toMatch(/hostname "alpha" is held by another installation/);
    expect(status.lastError?.message).toMatch(/set a different hostname for account "main"/);
    expect(status.nextRetryDelayMs).toBe(backoffDelay(INPUT.registerBackoff!, 1, METADATA.installationId));
  });

  it("a non-plain rejection (an Error instance) is treated as kind http, not a crash", async () => {
    const h = await startAccount();
    await settle(h, "registerAgent", { error: new Error("socket hang up") });
    expect(h.errors).toEqual([]);
    expect(h.snapshot().context.lastError).toEqual({
      kind: "http",
      operation: "register",
      message: "socket hang up",
    });
    expect(h.snapshot().value).toBe("idle");
  });
});

describe("account: heartbeat", () => {
  it("heartbeats every heartbeatIntervalMs, exactly", async () => {
    const h = await goOnline();
    await h.advance(HEARTBEAT - 1);
    expect(h.fakes.callsOf("sendHeartbeat")).toHaveLength(0);
    await h.advance(1);
    expect(h.fakes.pending("sendHeartbeat").input).toEqual({ agentId: AGENT_ID });
    await settle(h, "sendHeartbeat", { output: { lastSeen: LAST_SEEN } });
    expect(toAccountStatus(h.snapshot()).lastHeartbeatAt).toBe(LAST_SEEN);
  });

  it("heartbeats never overlap: a slow heartbeat delays the next one", async () => {
    const h = await goOnline();
    await nextHeartbeat(h);
    await h.advance(10 * HEARTBEAT);
    expect(h.fakes.callsOf("sendHeartbeat")).toHaveLength(1);
    await settle(h, "sendHeartbeat", { output: { lastSeen: LAST_SEEN } });
    await h.advance(HEARTBEAT - 1);
    expect(h.fakes.callsOf("sendHeartbeat")).toHaveLength(1);
    await h.advance(1);
    expect(h.fakes.callsOf("sendHeartbeat")).toHaveLength(2);
  });

  it("404 on heartbeat re-registers at once", async () => {
    const h = await goOnline();
    await nextHeartbeat(h);
    await settle(h, "sendHeartbeat", { error: plainError("not_found", "heartbeat") });
    expect(h.snapshot().value).toBe("reregistering");
    expect(h.fakes.pending("registerAgent").input).toEqual({ metadata: METADATA, agentId: AGENT_ID });
    await settle(h, "registerAgent", { output: { agentId: AGENT_ID } });
    expect(h.snapshot().value).toEqual({ online: "waiting" });
    expect(h.snapshot().context.heartbeatFailures).toBe(0);
  });

  it("maxHeartbeatFailures consecutive failures re-register with the full metadata", async () => {
    const h = await goOnline();
    await h.send({ type: "TRANSPORT.READY", ...TRANSPORT });
    await settle(h, "updateAgent", { output: { agentId: AGENT_ID } });
    for (let failure = 1; failure <= 3; failure++) {
      await nextHeartbeat(h);
      await settle(h, "sendHeartbeat", { error: plainError("unreachable", "heartbeat") });
      expect(toAccountStatus(h.snapshot()).heartbeatFailures).toBe(failure);
    }
    expect(toAccountStatus(h.snapshot()).lifecycle).toBe("re-registering");
    expect(h.fakes.pending("registerAgent").input).toEqual({
      metadata: { ...METADATA, ...TRANSPORT },
      agentId: AGENT_ID,
    });
  });

  it("a successful heartbeat resets the failure count", async () => {
    const h = await goOnline({ maxHeartbeatFailures: 2 });
    await nextHeartbeat(h);
    await settle(h, "sendHeartbeat", { error: plainError("timeout", "heartbeat") });
    await nextHeartbeat(h);
    await settle(h, "sendHeartbeat", { output: { lastSeen: LAST_SEEN } });
    expect(h.snapshot().context).toMatchObject({ heartbeatFailures: 0, lastError: null });
    await nextHeartbeat(h);
    await settle(h, "sendHeartbeat", { error: plainError("timeout", "heartbeat") });
    expect(h.snapshot().value).toEqual({ online: "waiting" });
  });

  it("a registry outage never de-lists the agent by itself: it keeps the id and retries", async () => {
    const h = await goOnline();
    for (let failure = 1; failure <= 3; failure++) {
      await nextHeartbeat(h);
      await settle(h, "sendHeartbeat", { error: plainError("unreachable", "heartbeat") });
    }
    await settle(h, "registerAgent", { error: plainError("unreachable", "register") });
    expect(toAccountStatus(h.snapshot())).toMatchObject({ lifecycle: "idle", agentId: AGENT_ID });
    expect(h.fakes.callsOf("deregisterAgent")).toEqual([]);
    expect(h.effects.filter((effect) => effect.name === "forgetAgentId")).toEqual([]);
  });
});

describe("account: metadata", () => {
  it("a metadata change while online is PATCHed once; an identical change sends nothing", async () => {
    const h = await goOnline();
    await h.send({ type: "METADATA.CHANGED", metadata: CHANGED_METADATA });
    expect(h.fakes.pending("updateAgent").input).toEqual({ agentId: AGENT_ID, metadata: CHANGED_METADATA });
    await settle(h, "updateAgent", { output: { agentId: AGENT_ID } });
    await h.send({ type: "METADATA.CHANGED", metadata: { ...CHANGED_METADATA } });
    expect(h.fakes.callsOf("updateAgent")).toHaveLength(1);
    expect(h.snapshot().value).toEqual({ online: "waiting" });
  });

  it("TRANSPORT.READY merges the Pilot node into the metadata and updates the registry", async () => {
    const h = await goOnline();
    await h.send({ type: "TRANSPORT.READY", ...TRANSPORT });
    expect(h.fakes.pending("updateAgent").input).toEqual({
      agentId: AGENT_ID,
      metadata: { ...METADATA, pilotNodeId: 7, pilotAddress: "0:0000.0000.0007" },
    });
  });

  it("a metadata change during a heartbeat waits for it, then PATCHes", async () => {
    const h = await goOnline();
    await nextHeartbeat(h);
    await h.send({ type: "METADATA.CHANGED", metadata: CHANGED_METADATA });
    expect(h.fakes.inFlight().map((call) => call.src)).toEqual(["sendHeartbeat"]);
    await settle(h, "sendHeartbeat", { output: { lastSeen: LAST_SEEN } });
    expect(h.fakes.pending("updateAgent").input).toEqual({ agentId: AGENT_ID, metadata: CHANGED_METADATA });
  });

  it("a metadata change during registration is sent right after it", async () => {
    const h = await startAccount();
    await h.send({ type: "METADATA.CHANGED", metadata: CHANGED_METADATA });
    await settle(h, "registerAgent", { output: { agentId: AGENT_ID } });
    expect(h.fakes.pending("updateAgent").input).toEqual({ agentId: AGENT_ID, metadata: CHANGED_METADATA });
  });

  it("a re-registration carries pending metadata changes, so no PATCH follows it", async () => {
    const h = await goOnline();
    await nextHeartbeat(h);
    await h.send({ type: "METADATA.CHANGED", metadata: CHANGED_METADATA });
    await settle(h, "sendHeartbeat", { error: plainError("not_found", "heartbeat") });
    expect(h.fakes.pending("registerAgent").input).toEqual({ metadata: CHANGED_METADATA, agentId: AGENT_ID });
    await settle(h, "registerAgent", { output: { agentId: AGENT_ID } });
    expect(h.snapshot().value).toEqual({ online: "waiting" });
    expect(h.fakes.callsOf("updateAgent")).toEqual([]);
  });

  it("metadata stored while private is what the first registration sends", async () => {
    const h = await startAccount({ discoverable: false });
    await h.send({ type: "METADATA.CHANGED", metadata: CHANGED_METADATA });
    await h.send({ type: "VISIBILITY.CHANGED", discoverable: true });
    expect(h.fakes.pending("registerAgent").input).toEqual({ metadata: CHANGED_METADATA, agentId: null });
  });

  it("a failed update retries in the next heartbeat slot, not in a loop", async () => {
    const h = await goOnline();
    await h.send({ type: "METADATA.CHANGED", metadata: CHANGED_METADATA });
    await settle(h, "updateAgent", { error: plainError("unreachable", "update") });
    expect(h.fakes.callsOf("updateAgent")).toHaveLength(1);
    expect(h.snapshot().context.lastError).toMatchObject({ kind: "unreachable", operation: "update" });
    await nextHeartbeat(h);
    await settle(h, "sendHeartbeat", { output: { lastSeen: LAST_SEEN } });
    expect(h.fakes.pending("updateAgent").input).toEqual({ agentId: AGENT_ID, metadata: CHANGED_METADATA });
  });

  it("an update answered 404 re-registers at once", async () => {
    const h = await goOnline();
    await h.send({ type: "METADATA.CHANGED", metadata: CHANGED_METADATA });
    await settle(h, "updateAgent", { error: plainError("not_found", "update") });
    expect(h.fakes.pending("registerAgent").input).toEqual({ metadata: CHANGED_METADATA, agentId: AGENT_ID });
  });
});

describe("account: visibility and stop", () => {
  it("going private while online deregisters, forgets the id and returns to private", async () => {
    const h = await goOnline();
    await h.send({ type: "VISIBILITY.CHANGED", discoverable: false });
    expect(toAccountStatus(h.snapshot()).lifecycle).toBe("deregistering");
    expect(h.fakes.pending("deregisterAgent").input).toEqual({ agentId: AGENT_ID });
    await settle(h, "deregisterAgent", { output: undefined });
    expect(toAccountStatus(h.snapshot())).toMatchObject({ lifecycle: "private", agentId: null });
    expect(h.effects.map((effect) => effect.name)).toEqual(["persistAgentId", "forgetAgentId"]);
    expect(h.timers()).toEqual([]);
  });

  it("going private during a heartbeat aborts it and deregisters", async () => {
    const h = await goOnline();
    await nextHeartbeat(h);
    await h.send({ type: "VISIBILITY.CHANGED", discoverable: false });
    expect(h.fakes.callsOf("sendHeartbeat")[0]?.status).toBe("aborted");
    expect(h.fakes.inFlight().map((call) => call.src)).toEqual(["deregisterAgent"]);
  });

  it("going private during registration lets it finish, then deregisters the new id", async () => {
    const h = await startAccount();
    await h.send({ type: "VISIBILITY.CHANGED", discoverable: false });
    expect(h.fakes.pending("registerAgent").status).toBe("pending");
    await settle(h, "registerAgent", { output: { agentId: AGENT_ID } });
    expect(h.fakes.pending("deregisterAgent").input).toEqual({ agentId: AGENT_ID });
  });

  it("a deregistration that hangs is abandoned after exactly deregisterTimeoutMs", async () => {
    const h = await goOnline();
    await h.send({ type: "VISIBILITY.CHANGED", discoverable: false });
    await h.advance(INPUT.deregisterTimeoutMs! - 1);
    expect(h.snapshot().value).toBe("deregistering");
    await h.advance(1);
    expect(h.snapshot().value).toBe("private");
    expect(h.fakes.callsOf("deregisterAgent")[0]?.status).toBe("aborted");
    expect(h.snapshot().context.lastError).toMatchObject({ kind: "timeout", operation: "deregister" });
  });

  it("STOP while online deregisters then stops; a failed DELETE does not block", async () => {
    const h = await goOnline();
    await h.send({ type: "STOP" });
    await settle(h, "deregisterAgent", { error: plainError("unreachable", "deregister") });
    expect(h.snapshot().status).toBe("done");
    expect(toAccountStatus(h.snapshot()).lifecycle).toBe("stopped");
    expect(h.timers()).toEqual([]);
    expect(h.effects.map((effect) => effect.name)).toEqual(["persistAgentId"]);
  });

  it("STOP from private or idle stops at once without registry calls", async () => {
    const fromPrivate = await startAccount({ discoverable: false });
    await fromPrivate.send({ type: "STOP" });
    expect(fromPrivate.snapshot().status).toBe("done");
    expect(fromPrivate.fakes.calls).toEqual([]);

    const fromIdle = await startAccount();
    await settle(fromIdle, "registerAgent", { error: plainError("unreachable", "register") });
    await fromIdle.send({ type: "STOP" });
    expect(fromIdle.snapshot().status).toBe("done");
    expect(fromIdle.fakes.calls).toHaveLength(1);
    expect(fromIdle.timers()).toEqual([]);
  });

  it("STOP during deregistration for going private still stops", async () => {
    const h = await goOnline();
    await h.send({ type: "VISIBILITY.CHANGED", discoverable: false });
    await h.send({ type: "STOP" });
    await settle(h, "deregisterAgent", { output: undefined });
    expect(h.snapshot().status).toBe("done");
  });

  it("becoming discoverable again during deregistration registers afresh", async () => {
    const h = await goOnline();
    await h.send({ type: "VISIBILITY.CHANGED", discoverable: false });
    await h.send({ type: "VISIBILITY.CHANGED", discoverable: true });
    await settle(h, "deregisterAgent", { output: undefined });
    expect(h.snapshot().value).toBe("registering");
    expect(h.fakes.pending("registerAgent").input).toEqual({ metadata: METADATA, agentId: null });
  });
});

describe("toAccountStatus", () => {
  it("shows a small stable shape without XState internals", async () => {
    const h = await startAccount();
    await settle(h, "registerAgent", { error: plainError("unreachable", "register") });
    expect(toAccountStatus(h.snapshot())).toEqual({
      lifecycle: "idle",
      agentId: null,
      discoverable: true,
      lastHeartbeatAt: null,
      heartbeatFailures: 0,
      lastError: plainError("unreachable", "register"),
      nextRetryDelayMs: backoffDelay(INPUT.registerBackoff!, 1, METADATA.installationId),
      // Transport "none": no children, discovery only.
      messaging: {
        transport: "none",
        ready: false,
        reason: 'transport "none": discovery only',
        daemon: null,
        inbox: null,
        relayInbox: null,
        peersLoop: null,
        outboxLoop: null,
        peers: { total: 0, trusted: 0, pending: 0, failing: [] },
      },
    });
  });

  it("reports the retry delay only while idle", async () => {
    const h = await startAccount();
    await settle(h, "registerAgent", { error: plainError("unreachable", "register") });
    await h.send({ type: "REGISTER.NOW" });
    expect(toAccountStatus(h.snapshot())).toMatchObject({ lifecycle: "registering", nextRetryDelayMs: null });
  });
});
