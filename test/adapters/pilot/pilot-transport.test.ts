// Pilot transport against the fake pilotctl network (real processes, real inbox files), in both output shapes.
import { rmSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inboxDir, listInboxFilesSync, readInboxFileSync } from "../../../src/adapters/pilot/inbox.js";
import {
  createPilotTransport,
  HANDSHAKE_FIRST,
  PEER_LEFT,
  PEER_OFFLINE,
} from "../../../src/adapters/pilot/pilot-transport.js";
import { createEnvelope, decodeMessage } from "../../../src/adapters/transport/envelope.js";
import { type PeerRef, TransportError } from "../../../src/adapters/transport/transport.js";
import type { FakePilotNetwork } from "../../fixtures/fake-pilot/network.js";
import { adapterFor, type Peer, setupNetwork, trustEachOther, waitFor } from "./helpers.js";

async function transportError(p: Promise<unknown>): Promise<TransportError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TransportError) return err;
    throw err;
  }
  throw new Error("expected a TransportError, the call succeeded");
}

const byName = (hostname: string): PeerRef => ({ hostname, nodeId: null, installationId: null });

for (const shape of ["old", "new"] as const) {
  describe(`pilot transport (${shape} pilotctl)`, () => {
    let net: FakePilotNetwork;
    let alice: Peer;
    let bob: Peer;
    let carol: Peer;
    let bobId: number;
    let carolId: number;

    beforeAll(async () => {
      const setup = setupNetwork({ shape, unreachableMs: 300 }, ["alice", "bob", "carol"]);
      net = setup.net;
      [alice, bob, carol] = setup.peers as [Peer, Peer, Peer];
      bobId = (await bob.ctl.info()).nodeId;
      carolId = (await carol.ctl.info()).nodeId;
    });
    afterAll(() => net?.close());

    it("refuses a send before trust with a message that says to handshake first", async () => {
      const t = createPilotTransport({ pilotctl: alice.ctl });
      const err = await transportError(
        t.send(byName("bob"), createEnvelope({ fromHostname: "alice", body: "hi" })),
      );
      expect(err.code).toBe("not_trusted");
      expect(err.operation).toBe("send");
      expect(err.message).toContain(HANDSHAKE_FIRST);
      expect(listInboxFilesSync(inboxDir(bob.node.home))).toEqual([]);
    });

    it("requests trust by handshake; the peer sees it pending and approves; then a send arrives as our envelope", {
      timeout: 60_000,
    }, async () => {
      const a = createPilotTransport({ pilotctl: alice.ctl });
      const b = createPilotTransport({ pilotctl: bob.ctl });
      await a.requestTrust(byName("bob"), "hello from alice's assistant");
      await waitFor(async () => (await b.listPending()).length > 0, 10_000);
      const pending = await b.listPending();
      expect(pending[0]?.introduction).toBe("hello from alice's assistant");
      expect(pending[0]?.peer.nodeId).toBe((await alice.ctl.info()).nodeId);
      await b.approve(pending[0]?.peer as PeerRef);
      await waitFor(async () => (await a.listTrusted()).some((p) => p.peer.nodeId === bobId), 10_000);

      const envelope = createEnvelope({ fromHostname: "alice", body: "--data looks like a flag -h" });
      expect(await a.send(byName("bob"), envelope)).toEqual({ messageId: envelope.id });
      const files = listInboxFilesSync(inboxDir(bob.node.home));
      expect(files).toHaveLength(1);
      const read = readInboxFileSync(files[0]?.path as string, { graceMs: 0 });
      if (!("ok" in read)) throw new Error(`unexpected ${JSON.stringify(read)}`);
      expect(decodeMessage(read.ok.data)).toMatchObject({ envelope });
    });

    it("resolves a hostname through the registry first, then pilotctl find", {
      timeout: 60_000,
    }, async () => {
      await trustEachOther(alice, carol);
      const asked: string[] = [];
      const viaRegistry = createPilotTransport({
        pilotctl: alice.ctl,
        resolveNodeId: async (h) => {
          asked.push(h);
          return carolId;
        },
      });
      // A hostname only the registry knows (pilotctl find would say not_found): the registry's answer wins.
      await viaRegistry.send(
        byName("carol-registered-name"),
        createEnvelope({ fromHostname: "alice", body: "1" }),
      );
      expect(asked).toEqual(["carol-registered-name"]);
      const fallback = createPilotTransport({
        pilotctl: alice.ctl,
        resolveNodeId: async () => {
          throw new Error("registry down");
        },
      });
      await fallback.send(byName("carol"), createEnvelope({ fromHostname: "alice", body: "2" }));
      await waitFor(async () => listInboxFilesSync(inboxDir(carol.node.home)).length === 2, 5_000);
    });

    it("reports an unknown hostname as peer_unknown", async () => {
      const t = createPilotTransport({ pilotctl: alice.ctl, resolveNodeId: async () => null });
      const err = await transportError(
        t.send(byName("nobody"), createEnvelope({ fromHostname: "alice", body: "x" })),
      );
      expect(err.code).toBe("peer_unknown");
      expect(err.message).toMatch(/check the hostname/);
    });

    it("reports a full or broken peer inbox (ERR ack) as a failure, not a success", async () => {
      const dir = inboxDir(carol.node.home);
      rmSync(dir, { recursive: true, force: true });
      writeFileSync(dir, "not a directory");
      try {
        const t = createPilotTransport({ pilotctl: alice.ctl });
        const err = await transportError(
          t.send(
            { hostname: "carol", nodeId: carolId, installationId: null },
            createEnvelope({ fromHostname: "alice", body: "x" }),
          ),
        );
        expect(err.code).toBe("failed");
        expect(err.message).toMatch(/could not store it \(ERR ack/);
      } finally {
        rmSync(dir, { force: true });
      }
    });

    it("says the peer is offline when a trusted peer's daemon is down (its hostname is not found), and fails fast the next time", async () => {
      net.run(carol.node, ["daemon", "stop"]);
      try {
        const t = createPilotTransport({ pilotctl: alice.ctl, sendTimeoutMs: 5_000 });
        const carolRef = { hostname: "carol", nodeId: carolId, installationId: null };
        const err = await transportError(
          t.send(carolRef, createEnvelope({ fromHostname: "alice", body: "x" })),
        );
        expect(err.code).toBe("unavailable");
        expect(err.message).toContain(PEER_OFFLINE);
        // The peer failed lately: it is looked up first, and the send does not wait for the slow dial.
        const started = Date.now();
        const again = await transportError(
          t.send(carolRef, createEnvelope({ fromHostname: "alice", body: "y" })),
        );
        expect(again.code).toBe("unavailable");
        expect(Date.now() - started).toBeLessThan(250 + 2_000);
      } finally {
        net.run(carol.node, ["daemon", "start", "--hostname", "carol"]);
      }
    });

    // Our own kill-on-timeout path is the same for both shapes: defined once (it starts a second network).
    if (shape === "old") {
      it("times out a send that blocks longer than sendTimeoutMs", { timeout: 60_000 }, async () => {
        const slow = setupNetwork({ shape, unreachableMs: 10_000 }, ["p", "q"]);
        try {
          const [p, q] = slow.peers as [Peer, Peer];
          await trustEachOther(p, q);
          const qId = (await q.ctl.info()).nodeId;
          slow.net.run(q.node, ["daemon", "stop"]);
          const t = createPilotTransport({ pilotctl: p.ctl, sendTimeoutMs: 500 });
          const started = Date.now();
          // By node id only: nothing tells an offline peer from a slow one, so it stays a timeout.
          const err = await transportError(
            t.send(
              { hostname: null, nodeId: qId, installationId: null },
              createEnvelope({ fromHostname: "p", body: "x" }),
            ),
          );
          expect(err.code).toBe("timeout");
          expect(err.message).toMatch(/within 500 ms/);
          expect(Date.now() - started).toBeLessThan(5_000);
        } finally {
          slow.net.close();
        }
      });
    }

    it("says how to start the daemon when ours is not running", async () => {
      const dave = net.addNode("dave", { start: false });
      const t = createPilotTransport({ pilotctl: adapterFor(net, dave) });
      const err = await transportError(
        t.send(
          { hostname: "bob", nodeId: bobId, installationId: null },
          createEnvelope({ fromHostname: "dave", body: "x" }),
        ),
      );
      expect(err.code).toBe("unavailable");
      expect(err.message).toContain("pilotctl daemon start");
      expect((await transportError(t.listPending())).code).toBe("unavailable");
    });

    it("untrusts by node id, and untrusting again is not an error", async () => {
      const t = createPilotTransport({ pilotctl: alice.ctl });
      const carolRef = { hostname: "carol", nodeId: carolId, installationId: null };
      await t.untrust(carolRef);
      expect((await t.listTrusted()).some((p) => p.peer.nodeId === carolId)).toBe(false);
      await t.untrust(carolRef);
    });

    it("rejects a pending request", { timeout: 60_000 }, async () => {
      const d = createPilotTransport({ pilotctl: carol.ctl });
      await createPilotTransport({ pilotctl: bob.ctl }).requestTrust(byName("carol"), "bob here");
      await waitFor(async () => (await d.listPending()).some((p) => p.peer.nodeId === bobId), 10_000);
      await d.reject({ hostname: null, nodeId: bobId, installationId: null }, "no thanks");
      expect((await d.listPending()).some((p) => p.peer.nodeId === bobId)).toBe(false);
    });
  });
}

// The failures real daemons produce (docs/pilot.md), with the fake's delays shortened.
describe("pilot transport: classifying what real daemons do", { timeout: 90_000 }, () => {
  let net: FakePilotNetwork;
  let p: Peer;
  let q: Peer;
  let r: Peer;
  let qRef: PeerRef;
  let rRef: PeerRef;
  const envelope = (body: string) => createEnvelope({ fromHostname: "p", body });

  beforeAll(async () => {
    const setup = setupNetwork({ shape: "old", brokenDialMs: 300, untrustedBlockMs: 3_000 }, ["p", "q", "r"]);
    net = setup.net;
    [p, q, r] = setup.peers as [Peer, Peer, Peer];
    await trustEachOther(p, q);
    await trustEachOther(p, r);
    qRef = { hostname: "q", nodeId: (await q.ctl.info()).nodeId, installationId: null };
    rRef = { hostname: "r", nodeId: (await r.ctl.info()).nodeId, installationId: null };
  });
  afterAll(() => net?.close());

  it("a send that hangs because the peer untrusted us is not_trusted, not a network fault", async () => {
    const reports: string[] = [];
    const t = createPilotTransport({
      pilotctl: p.ctl,
      sendTimeoutMs: 800,
      suspicion: { after: 1, windowMs: 60_000, report: (reason) => reports.push(reason) },
    });
    // The peers loop reads the trust list regularly: the entry was mutual.
    expect((await t.listTrusted()).some((x) => x.peer.nodeId === rRef.nodeId)).toBe(true);
    await r.ctl.untrust((await p.ctl.info()).nodeId);
    const err = await transportError(t.send(rRef, envelope("still there?")));
    expect(err.code).toBe("not_trusted");
    expect(err.message).toContain(PEER_LEFT);
    expect(reports).toEqual([]);
  });

  it("sends to a trusted peer that is online keep failing (its daemon restarted): suspicion is reported once per streak", async () => {
    const reports: string[] = [];
    const t = createPilotTransport({
      pilotctl: p.ctl,
      sendTimeoutMs: 5_000,
      suspicion: { after: 3, windowMs: 60_000, report: (reason) => reports.push(reason) },
    });
    await t.send(qRef, envelope("before the restart"));
    net.restartDaemon(q.node);
    for (let i = 0; i < 3; i++) {
      const err = await transportError(t.send(qRef, envelope(`after ${i}`)));
      expect(err.code).toBe("unavailable");
    }
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatch(
      /3 sends in a row to trusted peers that are online failed \(last: q, connection_failed\)/,
    );
    // Our side restarting too repairs the pair (what the daemon machine does on that report).
    net.restartDaemon(p.node);
    await t.send(qRef, envelope("after both restarted"));
    expect(reports).toHaveLength(1);
  });

  it("a success between failures starts the count again", async () => {
    const reports: string[] = [];
    let clock = 0;
    const t = createPilotTransport({
      pilotctl: p.ctl,
      sendTimeoutMs: 5_000,
      now: () => clock,
      suspicion: { after: 2, windowMs: 60_000, report: (reason) => reports.push(reason) },
    });
    net.restartDaemon(q.node);
    await transportError(t.send(qRef, envelope("one")));
    net.restartDaemon(p.node);
    await t.send(qRef, envelope("ok"));
    net.restartDaemon(q.node);
    await transportError(t.send(qRef, envelope("two")));
    expect(reports).toEqual([]);
    // Failures further apart than the window do not add up either.
    clock += 61_000;
    await transportError(t.send(qRef, envelope("three")));
    expect(reports).toEqual([]);
    clock += 1_000;
    await transportError(t.send(qRef, envelope("four")));
    expect(reports).toHaveLength(1);
    net.restartDaemon(p.node);
  });
});
