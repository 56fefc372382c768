// Transport "auto" over two scripted transports (plain objects that record calls and fail on demand: the real Pilot
// and relay transports are tested against their fakes elsewhere, and end to end in the runtime's auto test).
import { describe, expect, it } from "vitest";
import { createEnvelope } from "../../../src/adapters/transport/envelope.js";
import {
  createFallbackTransport,
  mergeByHostname,
  PILOT_HOLD_MS,
} from "../../../src/adapters/transport/fallback-transport.js";
import {
  type PeerRef,
  type Transport,
  TransportError,
  type TransportErrorCode,
  type TransportKind,
} from "../../../src/adapters/transport/transport.js";

interface Scripted extends Transport {
  sent: string[];
  calls: string[];
  failSend: TransportErrorCode | null;
  failTrust: TransportErrorCode | null;
  trusted: PeerRef[];
}

function scripted(kind: TransportKind): Scripted {
  const t: Scripted = {
    kind,
    sent: [],
    calls: [],
    failSend: null,
    failTrust: null,
    trusted: [],
    async send(_to, envelope) {
      if (t.failSend) throw new TransportError("send", t.failSend, `${kind} send failed (${t.failSend})`);
      t.sent.push(envelope.id);
      return { messageId: envelope.id };
    },
    async requestTrust() {
      t.calls.push("requestTrust");
      if (t.failTrust) throw new TransportError("requestTrust", t.failTrust, `${kind} refused`);
    },
    async approve() {
      t.calls.push("approve");
      if (t.failTrust) throw new TransportError("approve", t.failTrust, `${kind} refused`);
    },
    async reject() {
      t.calls.push("reject");
    },
    async untrust() {
      t.calls.push("untrust");
    },
    async listPending() {
      return [];
    },
    async listTrusted() {
      if (t.failTrust) throw new TransportError("listTrusted", t.failTrust, `${kind} list failed`);
      return t.trusted.map((peer) => ({ peer, since: null }));
    },
  };
  return t;
}

const BOB: PeerRef = { hostname: "bob", nodeId: 7, installationId: "peer-bob" };

function world(options: { pilot?: boolean; relay?: boolean } = {}) {
  const pilot = scripted("pilot");
  const relay = scripted("relay");
  let clock = 1_000_000;
  const auto = createFallbackTransport({
    pilot: () => (options.pilot === false ? null : pilot),
    relay: () => (options.relay === false ? null : relay),
    now: () => clock,
  });
  return { pilot, relay, auto, advance: (ms: number) => (clock += ms) };
}

const envelope = (id: string) => createEnvelope({ id, fromHostname: "alice", body: `body ${id}`, ack: true });

describe("transport auto: sends", () => {
  it("sends over Pilot while Pilot works, and says so", async () => {
    const { pilot, relay, auto } = world();
    expect(await auto.send(BOB, envelope("m1"))).toEqual({ messageId: "m1", via: "pilot" });
    expect(pilot.sent).toEqual(["m1"]);
    expect(relay.sent).toEqual([]);
    expect(auto.counters()).toEqual({ pilot: 1, relay: 0, fallbacks: 0 });
  });

  it.each(["unavailable", "timeout", "failed", "not_trusted"] as const)(
    "sends the same envelope over the relay when Pilot fails with %s",
    async (code) => {
      const { pilot, relay, auto } = world();
      pilot.failSend = code;
      expect(await auto.send(BOB, envelope("m1"))).toEqual({ messageId: "m1", via: "relay" });
      expect(relay.sent).toEqual(["m1"]);
      expect(auto.counters()).toEqual({ pilot: 0, relay: 1, fallbacks: 1 });
      expect(auto.pilotFailing()).toEqual(["bob"]);
    },
  );

  it("does not fall back for an invalid request: the relay would refuse it the same way", async () => {
    const { pilot, relay, auto } = world();
    pilot.failSend = "invalid";
    await expect(auto.send(BOB, envelope("m1"))).rejects.toMatchObject({ code: "invalid" });
    expect(relay.sent).toEqual([]);
  });

  it("passes Pilot over for that peer while it is marked failing, then tries Pilot first again", async () => {
    const { pilot, relay, auto, advance } = world();
    pilot.failSend = "unavailable";
    await auto.send(BOB, envelope("m1"));
    pilot.failSend = null;
    await auto.send(BOB, envelope("m2"));
    expect(pilot.sent).toEqual([]);
    expect(relay.sent).toEqual(["m1", "m2"]);
    // Another peer still goes over Pilot.
    await auto.send({ hostname: "carol", nodeId: 8, installationId: null }, envelope("m3"));
    expect(pilot.sent).toEqual(["m3"]);
    advance(PILOT_HOLD_MS + 1);
    expect(await auto.send(BOB, envelope("m4"))).toMatchObject({ via: "pilot" });
    expect(auto.pilotFailing()).toEqual([]);
  });

  it("sends over the relay to a peer without a Pilot node, without marking Pilot failing", async () => {
    const { pilot, auto } = world();
    pilot.failSend = "peer_unknown";
    expect(await auto.send(BOB, envelope("m1"))).toMatchObject({ via: "relay" });
    expect(auto.pilotFailing()).toEqual([]);
  });

  it("uses the relay alone while the Pilot daemon is down, and Pilot alone before the relay is linked", async () => {
    const noPilot = world({ pilot: false });
    expect(await noPilot.auto.send(BOB, envelope("m1"))).toMatchObject({ via: "relay" });
    expect(noPilot.auto.counters()).toEqual({ pilot: 0, relay: 1, fallbacks: 0 });
    const noRelay = world({ relay: false });
    noRelay.pilot.failSend = "unavailable";
    await expect(noRelay.auto.send(BOB, envelope("m2"))).rejects.toMatchObject({ code: "unavailable" });
  });

  it("fails with Pilot's reason when the relay does not know the peer, else with the relay's", async () => {
    const { pilot, relay, auto } = world();
    pilot.failSend = "timeout";
    relay.failSend = "peer_unknown";
    await expect(auto.send(BOB, envelope("m1"))).rejects.toMatchObject({ code: "timeout" });
    relay.failSend = "inbox_full";
    await expect(auto.send(BOB, envelope("m2"))).rejects.toMatchObject({ code: "inbox_full" });
  });

  it("is unavailable when neither path is usable", async () => {
    const { auto } = world({ pilot: false, relay: false });
    await expect(auto.send(BOB, envelope("m1"))).rejects.toMatchObject({ code: "unavailable" });
  });
});

describe("transport auto: trust", () => {
  it("asks, approves and untrusts on both transports", async () => {
    const { pilot, relay, auto } = world();
    await auto.requestTrust(BOB, "hello");
    await auto.approve(BOB);
    await auto.untrust(BOB);
    expect(pilot.calls).toEqual(["requestTrust", "approve", "untrust"]);
    expect(relay.calls).toEqual(["requestTrust", "approve", "untrust"]);
  });

  it("succeeds when one transport refuses, fails only when both do", async () => {
    const { pilot, relay, auto } = world();
    pilot.failTrust = "peer_unknown";
    await expect(auto.approve(BOB)).resolves.toBeUndefined();
    relay.failTrust = "unavailable";
    await expect(auto.approve(BOB)).rejects.toMatchObject({ operation: "approve", code: "peer_unknown" });
  });

  it("merges the trust lists by hostname: one peer with its node id and its relay id", async () => {
    const { pilot, relay, auto } = world();
    pilot.trusted = [{ hostname: "bob", nodeId: 7, installationId: null }];
    relay.trusted = [
      { hostname: "bob", nodeId: null, installationId: "peer-bob" },
      { hostname: "carol", nodeId: null, installationId: "peer-carol" },
    ];
    expect((await auto.listTrusted()).map((t) => t.peer)).toEqual([
      { hostname: "bob", nodeId: 7, installationId: "peer-bob" },
      { hostname: "carol", nodeId: null, installationId: "peer-carol" },
    ]);
  });

  it("keeps a path's last list while that path fails or is down, rather than drop its peers", async () => {
    const { pilot, relay, auto } = world();
    pilot.trusted = [{ hostname: "carol", nodeId: 8, installationId: null }];
    relay.trusted = [{ hostname: "bob", nodeId: null, installationId: "peer-bob" }];
    expect(await auto.listTrusted()).toHaveLength(2);
    relay.failTrust = "unavailable";
    expect((await auto.listTrusted()).map((t) => t.peer.hostname)).toEqual(["carol", "bob"]);
    pilot.failTrust = "unavailable";
    await expect(auto.listTrusted()).rejects.toMatchObject({ code: "unavailable" });
  });

  it("lists what the relay says, plus Pilot's last list, while the daemon is down", async () => {
    const pilot = scripted("pilot");
    const relay = scripted("relay");
    let daemonUp = true;
    const auto = createFallbackTransport({ pilot: () => (daemonUp ? pilot : null), relay: () => relay });
    pilot.trusted = [{ hostname: "carol", nodeId: 8, installationId: null }];
    await auto.listTrusted();
    daemonUp = false;
    relay.trusted = [{ hostname: "bob", nodeId: null, installationId: "peer-bob" }];
    expect((await auto.listTrusted()).map((t) => t.peer.hostname)).toEqual(["carol", "bob"]);
  });

  it("keeps entries without a hostname apart (the registry names them later)", () => {
    const merged = mergeByHostname([
      [{ peer: { hostname: null, nodeId: 7, installationId: null } }],
      [{ peer: { hostname: "bob", nodeId: null, installationId: "peer-bob" } }],
    ]);
    expect(merged).toHaveLength(2);
  });
});
