// The account root's peers at scale: handshakes rest as records and wake only for work (see the header of
// account.machine.ts). Driven with the real account and handshake machines; the transport commands are promises
// the test settles.
import { describe, expect, it } from "vitest";
import { createActor, fromPromise } from "xstate";
import { type AccountMachineInput, accountMachine } from "../../src/machines/account.machine.js";
import {
  handshakeMachine,
  observeResting,
  observeThroughMachine,
  type PeerState,
} from "../../src/machines/handshake.machine.js";
import { getPeer, newPeerRecord, peerEntries } from "../../src/machines/peers.js";
import type { PeerRef, PeersObservation } from "../../src/machines/types.js";
import { INPUT } from "./support/account-model.js";

function ref(i: number): PeerRef {
  return { hostname: `peer-${i}`, nodeId: null, installationId: `p_${i}` };
}

function record(i: number, patch: Partial<PeerState>): PeerState {
  return { ...newPeerRecord(ref(i)), ...patch };
}

function startRoot(options: { peers?: AccountMachineInput["peers"]; approve?: () => Promise<unknown> } = {}) {
  const machine = accountMachine.provide({
    actors: {
      handshake: handshakeMachine.provide({
        actors: { approvePeer: fromPromise(options.approve ?? (async () => undefined)) },
      }),
    },
  });
  const actor = createActor(machine, {
    input: { ...INPUT, discoverable: false, transport: "none", peers: options.peers ?? [] },
  });
  const announced: string[] = [];
  actor.on("peer.announced", ({ key }) => announced.push(key));
  actor.start();
  const awake = () => Object.keys(actor.getSnapshot().children).filter((id) => id.startsWith("handshake:"));
  const state = (key: string) => getPeer(actor.getSnapshot().context.peers, key)?.state;
  const observe = (observation: Partial<PeersObservation>) =>
    actor.send({
      type: "PEERS.OBSERVED",
      observation: { pending: [], trusted: null, at: Date.now(), ...observation },
    });
  return { actor, announced, awake, state, observe };
}

const settled = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("account root: resting handshakes", () => {
  it("a trust list of 1,000 new peers becomes 1,000 trusted records in one table change, no actor awake", () => {
    const root = startRoot();
    let changes = 0;
    let last = root.actor.getSnapshot().context.peers;
    root.actor.subscribe((snapshot) => {
      if (snapshot.context.peers !== last) changes++;
      last = snapshot.context.peers;
    });
    root.observe({ trusted: Array.from({ length: 1_000 }, (_, i) => ref(i)) });
    expect(changes).toBe(1);
    expect(root.actor.getSnapshot().context.peers.size).toBe(1_000);
    expect(
      [...peerEntries(root.actor.getSnapshot().context.peers)].every(([, r]) => r.state === "trusted"),
    ).toBe(true);
    expect(root.awake()).toEqual([]);

    // The same reading again changes nothing; a peer missing from it is untrusted, still without an actor.
    root.observe({ trusted: Array.from({ length: 1_000 }, (_, i) => ref(i)) });
    expect(changes).toBe(1);
    root.observe({ trusted: Array.from({ length: 999 }, (_, i) => ref(i)) });
    expect(changes).toBe(2);
    expect(root.state("peer-999")).toBe("revoked");
    expect(root.awake()).toEqual([]);
  });

  it("a new request wakes its handshake, which announces it once and rests; reading it again wakes nothing", async () => {
    const root = startRoot();
    const pending = [
      { peer: ref(1), justification: "hi", receivedAt: 5, assistantName: "P", humanName: null },
    ];
    root.observe({ pending });
    await settled();
    expect(root.announced).toEqual(["peer-1"]);
    expect(root.state("peer-1")).toBe("pendingApproval");
    expect(root.awake()).toEqual([]);

    root.observe({ pending });
    await settled();
    expect(root.announced).toEqual(["peer-1"]);
    expect(root.awake()).toEqual([]);
  });

  it("a command wakes the handshake: awake while the call is in flight, resting after it succeeds", async () => {
    let finish: () => void = () => {};
    const root = startRoot({
      peers: [["peer-1", record(1, { state: "pendingApproval", announcedAt: 1 })]],
      approve: () => new Promise<void>((resolve) => (finish = resolve)),
    });
    expect(root.awake()).toEqual([]);
    root.actor.send({ type: "PEER.COMMAND", peer: ref(1), command: { type: "APPROVE", at: 10 } });
    await settled();
    expect(root.awake()).toEqual(["handshake:peer-1"]);
    finish();
    await settled();
    expect(root.state("peer-1")).toBe("trusted");
    expect(root.awake()).toEqual([]);
  });

  it("a handshake whose call failed stays awake with its error (status shows it) until a call succeeds", async () => {
    let fail = true;
    const root = startRoot({
      peers: [["peer-1", record(1, { state: "pendingApproval", announcedAt: 1 })]],
      approve: async () => {
        if (fail) throw new Error("read-only trust store");
      },
    });
    root.actor.send({ type: "PEER.COMMAND", peer: ref(1), command: { type: "APPROVE", at: 10 } });
    await settled();
    expect(root.awake()).toEqual(["handshake:peer-1"]);
    expect(root.state("peer-1")).toBe("pendingApproval");
    fail = false;
    root.actor.send({ type: "PEER.COMMAND", peer: ref(1), command: { type: "APPROVE", at: 11 } });
    await settled();
    expect(root.state("peer-1")).toBe("trusted");
    expect(root.awake()).toEqual([]);
  });

  it("a restored request that was never announced wakes at start to announce it", async () => {
    const root = startRoot({
      peers: [
        ["peer-1", record(1, { state: "pendingApproval", justification: "hi" })],
        ["peer-2", record(2, { state: "trusted" })],
      ],
    });
    await settled();
    expect(root.announced).toEqual(["peer-1"]);
    expect(root.awake()).toEqual([]);
  });
});

describe("observeResting", () => {
  it("takes a peer first seen on the trust list to what the machine's transition gives", () => {
    const fresh = record(7, { assistantName: "Seven" });
    const event = { type: "PEER.TRUSTED", at: 42 } as const;
    expect(observeResting(fresh, event)).toEqual(observeThroughMachine(fresh, event));
    expect(observeResting(fresh, { type: "PEER.TRUSTED" })).toEqual(
      observeThroughMachine(fresh, { type: "PEER.TRUSTED" }),
    );
  });
});
