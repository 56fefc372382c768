// Scenario tests of the per-peer handshake machine, each named after what it proves.
import { describe, expect, it } from "vitest";
import { assign, createActor, setup } from "xstate";
import {
  type HandshakeParentEvent,
  handshakeMachine,
  type PeerState,
  peerTrustState,
  toPeerState,
} from "../../src/machines/handshake.machine.js";
import { createFakeActors, createHarness, flushMicrotasks } from "./support/index.js";

const ACTORS = ["sendHandshake", "approvePeer", "rejectPeer", "untrustPeer"] as const;
const pending = {
  type: "PEER.PENDING",
  justification: "Hi, I am bob's assistant",
  receivedAt: 1_000,
} as const;

function harness(initial?: PeerState) {
  return createHarness({
    machine: handshakeMachine,
    input: { peer: { hostname: "bob", nodeId: 9, installationId: null }, ...(initial ? { initial } : {}) },
    actors: ACTORS,
    actions: ["announceRequest"],
  });
}

const announces = (h: ReturnType<typeof harness>) =>
  h.effects.filter((e) => e.name === "announceRequest").length;

describe("handshake with one peer", () => {
  it("an incoming request is announced exactly once, even across a restart", async () => {
    const h = harness();
    await h.start();
    await h.send({ ...pending, at: 5_000 });
    await h.send(pending); // seen again at the next poll
    expect(announces(h)).toBe(1);
    const persisted = toPeerState(h.snapshot());
    expect(persisted).toMatchObject({ state: "pendingApproval", announcedAt: 5_000, nodeId: 9 });
    h.stop();

    // The gateway restarts: the peer is resumed from its record and the request is still pending.
    const restored = harness(JSON.parse(JSON.stringify(persisted)) as PeerState);
    await restored.start();
    await restored.send(pending);
    expect(peerTrustState(restored.snapshot())).toBe("pendingApproval");
    expect(announces(restored)).toBe(0);
    // Rejected, then asking again later: visible as pending, but nobody is pinged a second time.
    await restored.send({ type: "REJECT", reason: "not now" });
    expect(restored.fakes.pending("rejectPeer").input).toEqual({
      peer: { hostname: "bob", nodeId: 9, installationId: null },
      reason: "not now",
    });
    restored.fakes.resolve("rejectPeer", { node_id: 9, status: "rejected" });
    await restored.flush();
    expect(peerTrustState(restored.snapshot())).toBe("rejected");
    await restored.send(pending);
    expect(peerTrustState(restored.snapshot())).toBe("pendingApproval");
    expect(announces(restored)).toBe(0);
    restored.stop();
  });

  it("both sides requesting become trusted once the trust list shows it, without asking anyone", async () => {
    const h = harness();
    await h.start();
    await h.send({ type: "HANDSHAKE.REQUEST", introduction: "Hi, I am alice's assistant" });
    h.fakes.resolve("sendHandshake", { nodeId: 9 });
    await h.flush();
    await h.send(pending); // their request crosses ours
    expect(peerTrustState(h.snapshot())).toBe("requested");
    await h.send({ type: "PEER.TRUSTED" });
    expect(peerTrustState(h.snapshot())).toBe("trusted");
    expect(announces(h)).toBe(0);
    expect(h.fakes.callsOf("approvePeer")).toEqual([]);
    h.stop();
  });

  it("a peer known only by hostname learns its node id from the handshake answer", async () => {
    const h = createHarness({
      machine: handshakeMachine,
      input: { peer: { hostname: "carol", nodeId: null, installationId: null } },
      actors: ACTORS,
    });
    await h.start();
    await h.send({ type: "HANDSHAKE.REQUEST", introduction: "hello" });
    expect(h.fakes.pending("sendHandshake").input).toEqual({
      peer: { hostname: "carol", nodeId: null, installationId: null },
      introduction: "hello",
    });
    h.fakes.resolve("sendHandshake", { nodeId: 65_537 });
    await h.flush();
    expect(toPeerState(h.snapshot())).toMatchObject({
      hostname: "carol",
      nodeId: 65_537,
      state: "requested",
    });
    h.stop();
  });

  it("a failed handshake keeps the peer requested with the error, and a retry sends again", async () => {
    const h = harness();
    await h.start();
    await h.send({ type: "HANDSHAKE.REQUEST", introduction: "hello" });
    h.fakes.reject("sendHandshake", {
      kind: "unreachable",
      operation: "trust.request",
      message: "daemon down",
    });
    await h.flush();
    expect(h.snapshot().matches({ requested: "failed" })).toBe(true);
    expect(h.snapshot().context.lastError).toMatchObject({
      kind: "unreachable",
      operation: "trust.request",
    });
    await h.send({ type: "HANDSHAKE.REQUEST", introduction: "hello again" });
    expect(h.fakes.pending("sendHandshake").input).toMatchObject({ introduction: "hello again" });
    h.stop();
  });

  it("a second decision while one is in flight is ignored, not half-applied", async () => {
    const h = harness();
    await h.start();
    await h.send(pending);
    await h.send({ type: "APPROVE" });
    await h.send({ type: "REJECT" });
    await h.send({ type: "APPROVE" });
    expect(h.fakes.calls.map((call) => `${call.src}:${call.status}`)).toEqual(["approvePeer:pending"]);
    h.fakes.resolve("approvePeer", { node_id: 9, status: "approved" });
    await h.flush();
    expect(peerTrustState(h.snapshot())).toBe("trusted");
    h.stop();
  });

  it("untrust revokes; a failed untrust keeps the peer trusted and says why", async () => {
    const h = harness({
      hostname: "bob",
      installationId: null,
      nodeId: 9,
      state: "trusted",
      introduction: null,
      announcedAt: null,
    });
    await h.start();
    expect(peerTrustState(h.snapshot())).toBe("trusted");
    await h.send({ type: "UNTRUST" });
    h.fakes.reject("untrustPeer", {
      kind: "timeout",
      operation: "trust.untrust",
      message: "pilotctl timed out",
    });
    await h.flush();
    expect(h.snapshot().matches({ trusted: "idle" })).toBe(true);
    expect(h.snapshot().context.lastError?.operation).toBe("trust.untrust");
    await h.send({ type: "UNTRUST", at: 9_000 });
    h.fakes.resolve("untrustPeer", { node_id: 9 });
    await h.flush();
    expect(toPeerState(h.snapshot())).toMatchObject({ state: "revoked", updatedAt: 9_000 });
    h.stop();
  });

  it("a trust list read before an untrust does not bring the peer back", async () => {
    const h = harness({
      hostname: "bob",
      installationId: null,
      nodeId: 9,
      state: "trusted",
      introduction: null,
      announcedAt: null,
    });
    await h.start();
    await h.send({ type: "UNTRUST", at: 9_000 });
    h.fakes.resolve("untrustPeer", { node_id: 9 });
    await h.flush();
    // A poll cycle that read the trust list at 8 s, before the untrust, reports bob as trusted.
    await h.send({ type: "PEER.TRUSTED", at: 8_000 });
    expect(peerTrustState(h.snapshot())).toBe("revoked");
    // A later read is the truth (bob was approved again, e.g. from the CLI).
    await h.send({ type: "PEER.TRUSTED", at: 12_000 });
    expect(peerTrustState(h.snapshot())).toBe("trusted");
    h.stop();
  });

  it("a restored outgoing request is not sent again", async () => {
    const h = harness({
      hostname: "bob",
      installationId: null,
      nodeId: 9,
      state: "requested",
      introduction: "hello",
      announcedAt: null,
    });
    await h.start();
    expect(h.snapshot().matches({ requested: "waiting" })).toBe(true);
    expect(h.fakes.calls).toEqual([]);
    h.stop();
  });
});

describe("handshake machine inside a parent", () => {
  it("the default announceRequest tells the parent once, with the peer and the justification", async () => {
    const fakes = createFakeActors(ACTORS);
    const parent = setup({
      types: { context: {} as { heard: HandshakeParentEvent[] }, events: {} as HandshakeParentEvent },
      actors: { handshake: handshakeMachine.provide({ actors: fakes.logic }) },
    }).createMachine({
      context: { heard: [] },
      invoke: {
        id: "peer",
        src: "handshake",
        input: { peer: { hostname: null, nodeId: 9, installationId: null } },
      },
      on: {
        "HANDSHAKE.*": { actions: assign({ heard: ({ context, event }) => [...context.heard, event] }) },
      },
    });
    const actor = createActor(parent);
    actor.subscribe({ error: (error) => expect.fail(String(error)) });
    actor.start();
    const child = actor.getSnapshot().children.peer!;
    child.send(pending);
    child.send(pending);
    await flushMicrotasks();
    expect(actor.getSnapshot().context.heard).toEqual([
      {
        type: "HANDSHAKE.ANNOUNCE",
        peer: { hostname: null, nodeId: 9, installationId: null },
        justification: "Hi, I am bob's assistant",
        receivedAt: 1_000,
      },
    ]);
    actor.stop();
  });
});
