import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inboxDir, listInboxFilesSync, readInboxFileSync } from "../../../src/adapters/pilot/inbox.js";
import {
  createPilotctl,
  formatAddress,
  MAX_PAYLOAD_BYTES,
  PilotError,
  parseAddress,
} from "../../../src/adapters/pilot/pilotctl.js";
import type { FakePilotNetwork, FakePilotNode } from "../../fixtures/fake-pilot/network.js";
import { adapterFor, type Peer, setupNetwork, trustEachOther, waitFor } from "./helpers.js";

async function pilotError(p: Promise<unknown>): Promise<PilotError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PilotError) return err;
    throw err;
  }
  throw new Error("expected a PilotError, the call succeeded");
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    // ESRCH: the process is gone.
    return false;
  }
  return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
}

describe("parseAddress", () => {
  it("keeps all 32 bits of the node id", () => {
    expect(parseAddress("0:0000.0001.0002")).toBe(0x0001_0002);
    expect(parseAddress("0:0000.FFFF.FFFF")).toBe(0xffff_ffff);
    expect(parseAddress("0:0000.0000.0001")).toBe(1);
  });

  it("round-trips with formatAddress", () => {
    for (const id of [1, 255, 65_535, 65_536, 0x12ab_34cd]) expect(parseAddress(formatAddress(id))).toBe(id);
  });

  it("rejects anything that is not an address", () => {
    for (const bad of ["", "1", "0:0000.0001", "x:0000.0000.0001", "0:0000.0000.00G1"]) {
      expect(() => parseAddress(bad)).toThrow(PilotError);
    }
  });
});

describe("createPilotctl without a binary", () => {
  it("reports binary_missing with what to do next", async () => {
    const ctl = createPilotctl({ binary: "/nonexistent/pilotctl", home: "/tmp" });
    const err = await pilotError(ctl.info());
    expect(err.code).toBe("binary_missing");
    expect(err.operation).toBe("info");
    expect(err.message).toMatch(/install Pilot Protocol or set pilot\.pilotctl/);
  });
});

// Every step runs real processes; on a loaded 2-core machine one node start costs ~0.5 s.
describe.each(["old", "new"] as const)(
  "pilotctl adapter against the fake (%s build)",
  { timeout: 120_000 },
  (shape) => {
    let net: FakePilotNetwork;
    let alpha: Peer;
    let beta: Peer;
    let gamma: Peer;

    beforeAll(async () => {
      const setup = setupNetwork({ shape }, ["alpha", "beta", "gamma"]);
      net = setup.net;
      [alpha, beta, gamma] = setup.peers as [Peer, Peer, Peer];
      await trustEachOther(alpha, beta);
    });
    afterAll(() => net.close());

    // One peer that alpha trusts but whose daemon is stopped: sends to it block (FAKE_PILOT_UNREACHABLE_MS).
    let down: Promise<FakePilotNode & { nodeId: number }> | undefined;
    const downPeer = () => {
      down ??= (async () => {
        const node = net.addNode(`down-${shape}`);
        const ctl = adapterFor(net, node);
        await trustEachOther({ node, ctl }, alpha);
        const { nodeId } = await ctl.info();
        await ctl.daemonStop();
        // By node id, as the plugin sends: an offline peer's hostname is a fast not_found instead of a slow dial.
        return { ...node, nodeId };
      })();
      return down;
    };

    it("info returns the node id and an address that encodes it", async () => {
      const info = await alpha.ctl.info();
      expect(info.hostname).toBe("alpha");
      expect(parseAddress(info.address)).toBe(info.nodeId);
    });

    it("daemonStatus reports a running daemon with its pid and node", async () => {
      const status = await beta.ctl.daemonStatus();
      expect(status.running).toBe(true);
      expect(status.pid).toBeGreaterThan(0);
      expect(status.nodeId).toBe((await beta.ctl.info()).nodeId);
    });

    it("daemonStart on a running daemon fails with already_exists", async () => {
      const err = await pilotError(alpha.ctl.daemonStart({ hostname: "alpha" }));
      expect(err.code).toBe("already_exists");
      expect(err.operation).toBe("daemon.start");
    });

    it("a stopped node: status not running, info not_running, restart keeps the node id", async () => {
      const node = net.addNode(`delta-${shape}`, { start: false });
      const ctl = adapterFor(net, node);
      expect((await ctl.daemonStatus()).running).toBe(false);
      const err = await pilotError(ctl.info());
      expect(err.code).toBe("not_running");
      expect(err.message).toMatch(/Pilot daemon not running/);
      const started = await ctl.daemonStart({ hostname: node.hostname });
      expect(started.hostname).toBe(node.hostname);
      expect((await ctl.info()).nodeId).toBe(started.nodeId);
      const stopped = await ctl.daemonStop();
      expect(stopped.pid).toBe(started.pid);
      expect(pidAlive(started.pid)).toBe(false);
      expect((await pilotError(ctl.daemonStop())).code).toBe("not_running");
      const again = await ctl.daemonStart({ hostname: node.hostname });
      expect(again.nodeId).toBe(started.nodeId);
      await ctl.daemonStop();
    });

    it("a crashed daemon (killed) shows as not running", async () => {
      const node = net.addNode(`crash-${shape}`);
      const ctl = adapterFor(net, node);
      const { pid } = await ctl.daemonStatus();
      process.kill(pid!, "SIGKILL");
      await waitFor(async () => !(await ctl.daemonStatus()).running, 5_000, 20);
      expect((await pilotError(ctl.sendMessage("alpha", "x"))).code).toBe("not_running");
    });

    it("refuses to send to a peer that has not trusted us, saying to handshake first", async () => {
      const err = await pilotError(alpha.ctl.sendMessage("gamma", "hello"));
      expect(err.code).toBe(shape === "old" ? "connection_failed" : "trust_required");
      expect(err.operation).toBe("send-message");
      expect(err.message).toMatch(/handshake first/);
    });

    const payloads = [
      "--hello",
      "-h",
      "--help",
      "--data=x",
      "line one\nline two\n",
      `quotes " ' \` and $HOME and ; rm -rf /`,
      "<b>&amp;</b>",
      "unicode ✓ \u2028 ünï",
      JSON.stringify({ v: 1, nested: { a: [1, 2] } }),
    ];

    it("sends payloads byte-exact, whatever they start with or contain", async () => {
      const betaInbox = inboxDir(beta.node.home);
      rmSync(betaInbox, { recursive: true, force: true });
      for (const p of payloads) {
        const res = await alpha.ctl.sendMessage("beta", p);
        expect(res.ack).toMatch(/^ACK /);
      }
      const files = listInboxFilesSync(betaInbox);
      const got: string[] = [];
      const alphaId = (await alpha.ctl.info()).nodeId;
      for (const f of files) {
        const r = readInboxFileSync(f.path);
        if (!("ok" in r)) throw new Error(`unreadable ${f.name}: ${JSON.stringify(r)}`);
        expect(r.ok.fromNodeId).toBe(alphaId);
        got.push(r.ok.data);
      }
      expect(got).toEqual(payloads);
    });

    it("sends by node id and by address, and the other way round", async () => {
      const betaInfo = await beta.ctl.info();
      const alphaInfo = await alpha.ctl.info();
      await alpha.ctl.sendMessage(betaInfo.nodeId, "by id");
      await alpha.ctl.sendMessage(betaInfo.address, "by address");
      await beta.ctl.sendMessage("alpha", "reply");
      const alphaFiles = listInboxFilesSync(inboxDir(alpha.node.home));
      const last = alphaFiles.at(-1);
      const r = readInboxFileSync(last!.path);
      expect("ok" in r && r.ok.data).toBe("reply");
      expect("ok" in r && r.ok.fromNodeId).toBe(betaInfo.nodeId);
      expect(alphaInfo.nodeId).not.toBe(betaInfo.nodeId);
    });

    it("listInbox reads the messages in either build (auto-detected)", async () => {
      await alpha.ctl.sendMessage("beta", "listed");
      const messages = await beta.ctl.listInbox();
      expect(messages.map((m) => m.data)).toContain("listed");
      const alphaId = (await alpha.ctl.info()).nodeId;
      expect(messages.every((m) => m.fromNodeId === alphaId)).toBe(true);
      if (shape === "new") expect(messages.every((m) => typeof m.id === "string")).toBe(true);
    });

    it("an ERR ack (receiver failed to save) is a failure", async () => {
      const dir = inboxDir(beta.node.home);
      rmSync(dir, { recursive: true, force: true });
      writeFileSync(dir, "not a directory");
      try {
        const err = await pilotError(alpha.ctl.sendMessage("beta", "lost?"));
        expect(err.code).toBe("ack_error");
        expect(err.detail).toMatch(/^ERR /);
      } finally {
        rmSync(dir, { force: true });
        mkdirSync(dir, { recursive: true });
      }
    });

    it("find resolves a hostname and reports not_found otherwise", async () => {
      const found = await alpha.ctl.find("gamma");
      expect(found.nodeId).toBe((await gamma.ctl.info()).nodeId);
      expect(parseAddress(found.address)).toBe(found.nodeId);
      const err = await pilotError(alpha.ctl.find("nobody-here"));
      expect(err.code).toBe("not_found");
    });

    it("handshake, pending, reject: a rejected request leaves no trust", async () => {
      const gammaId = (await gamma.ctl.info()).nodeId;
      const sent = await gamma.ctl.handshake("alpha", "-h looks like a flag but is my justification");
      expect(sent.status).toBe("sent");
      const pending = await alpha.ctl.pending();
      expect(pending.map((p) => p.nodeId)).toContain(gammaId);
      expect(pending.find((p) => p.nodeId === gammaId)?.justification).toMatch(/my justification/);
      const rejected = await alpha.ctl.reject(gammaId, "--not now");
      expect(rejected).toEqual({ nodeId: gammaId, status: "rejected" });
      expect((await alpha.ctl.pending()).map((p) => p.nodeId)).not.toContain(gammaId);
      expect((await gamma.ctl.trust()).map((t) => t.nodeId)).not.toContain((await alpha.ctl.info()).nodeId);
    });

    it("approve succeeds even with nothing pending, untrust of a stranger is connection_failed", async () => {
      const gammaId = (await gamma.ctl.info()).nodeId;
      expect(await beta.ctl.approve(gammaId)).toEqual({ nodeId: gammaId, status: "approved" });
      expect((await beta.ctl.trust()).map((t) => t.nodeId)).not.toContain(gammaId);
      const err = await pilotError(beta.ctl.untrust(gammaId));
      expect(err.code).toBe("connection_failed");
    });

    it("mutual handshakes approve each other automatically", async () => {
      const node = net.addNode(`mutual-${shape}`);
      const ctl = adapterFor(net, node);
      const id = (await ctl.info()).nodeId;
      const gammaId = (await gamma.ctl.info()).nodeId;
      await ctl.handshake("gamma", "hi gamma");
      await gamma.ctl.handshake(node.hostname, "hi you");
      expect((await ctl.trust()).map((t) => t.nodeId)).toContain(gammaId);
      expect((await gamma.ctl.trust()).map((t) => t.nodeId)).toContain(id);
      await ctl.sendMessage("gamma", "now we talk");
    });

    it("untrust stops traffic in both directions and leaves the peer's list stale", async () => {
      const node = net.addNode(`leaver-${shape}`);
      // The real dial to a peer that untrusted us hangs ~39 s; shortened here.
      const ctl = adapterFor(net, node, {
        env: { ...net.env(node.home), FAKE_PILOT_UNTRUSTED_BLOCK_MS: "200" },
      });
      const peer = { node, ctl };
      await trustEachOther(peer, gamma);
      const id = (await ctl.info()).nodeId;
      const gammaId = (await gamma.ctl.info()).nodeId;
      expect(await gamma.ctl.untrust(id)).toEqual({ nodeId: id });
      expect((await ctl.trust()).map((t) => t.nodeId)).toContain(gammaId);
      const blocked = await pilotError(ctl.sendMessage("gamma", "still there?"));
      expect(blocked).toMatchObject({ operation: "send-message", code: "connection_failed" });
      expect((await pilotError(gamma.ctl.sendMessage(node.hostname, "bye"))).operation).toBe("send-message");
    });

    it("a call to a trusted peer that is down is killed at our timeout", async () => {
      const node = await downPeer();
      const started = Date.now();
      const err = await pilotError(alpha.ctl.sendMessage(node.nodeId, "anyone?", { timeoutMs: 600 }));
      expect(err.code).toBe("timeout");
      expect(err.message).toMatch(/timed out/);
      expect(Date.now() - started).toBeLessThan(5_000);
      const markers = readdirSync(net.stateDir).filter((n) => n.startsWith("blocked-"));
      for (const m of markers) expect(pidAlive(Number(m.slice("blocked-".length)))).toBe(false);
    });

    it("a process that ignores SIGTERM is SIGKILLed after the grace", async () => {
      const node = await downPeer();
      const stubborn = adapterFor(net, alpha.node, {
        env: { ...net.env(alpha.node.home), FAKE_PILOT_IGNORE_SIGTERM: "1" },
        killGraceMs: 300,
      });
      const started = Date.now();
      const err = await pilotError(stubborn.sendMessage(node.nodeId, "hello?", { timeoutMs: 500 }));
      expect(err.code).toBe("timeout");
      expect(Date.now() - started).toBeLessThan(5_000);
      await waitFor(
        async () =>
          readdirSync(net.stateDir)
            .filter((n) => n.startsWith("blocked-"))
            .every((m) => !pidAlive(Number(m.slice("blocked-".length)))),
        3_000,
        50,
      );
    });

    it("an aborted signal cancels the call", async () => {
      const node = await downPeer();
      const controller = new AbortController();
      const p = alpha.ctl.sendMessage(node.nodeId, "x", { signal: controller.signal });
      setTimeout(() => controller.abort(), 300);
      expect((await pilotError(p)).code).toBe("aborted");
    });

    it("refuses payloads a command line cannot carry, with what to do instead", async () => {
      const big = await pilotError(alpha.ctl.sendMessage("beta", "x".repeat(MAX_PAYLOAD_BYTES + 1)));
      expect(big.code).toBe("invalid_argument");
      expect(big.message).toMatch(/shorten or split/);
      const nul = await pilotError(alpha.ctl.sendMessage("beta", "a\0b"));
      expect(nul.code).toBe("invalid_argument");
      const atLimit = await alpha.ctl.sendMessage("beta", "y".repeat(MAX_PAYLOAD_BYTES));
      expect(atLimit.ack).toMatch(/^ACK /);
    });

    it("rejects a target that looks like a flag before running anything", async () => {
      const err = await pilotError(alpha.ctl.sendMessage("--help", "x"));
      expect(err.code).toBe("invalid_argument");
    });

    // Only defined for the old output: a new build's plain `inbox` lists previews, not payloads.
    if (shape !== "new") {
      it("a build that rejects the new inbox flags: auto mode falls back to plain `inbox`", async () => {
        const strict = { ...net.env(beta.node.home), FAKE_PILOT_REJECT_FLAGS: "full,limit" };
        await alpha.ctl.sendMessage("beta", "for the strict build");
        const auto = adapterFor(net, beta.node, { env: strict });
        expect((await auto.listInbox()).map((m) => m.data)).toContain("for the strict build");
      });
    }

    it("forcing the new inbox flags on such a build is a usage error (exit 2) saying what to check", async () => {
      const strict = { ...net.env(beta.node.home), FAKE_PILOT_REJECT_FLAGS: "full,limit" };
      const forced = adapterFor(net, beta.node, { env: strict, shape: "new" });
      const err = await pilotError(forced.listInbox());
      expect(err.code).toBe("usage");
      expect(err.exitCode).toBe(2);
      expect(err.message).toMatch(/incompatible/);
    });

    it("an empty message is refused before running anything", async () => {
      expect((await pilotError(alpha.ctl.sendMessage("beta", ""))).code).toBe("invalid_argument");
    });

    it("never leaves inbox files behind for listInbox (it only reads)", async () => {
      const before = listInboxFilesSync(inboxDir(beta.node.home)).length;
      await beta.ctl.listInbox();
      expect(listInboxFilesSync(inboxDir(beta.node.home)).length).toBe(before);
      expect(existsSync(join(beta.node.home, ".pilot", "inbox"))).toBe(true);
    });
  },
);
