// The pilotctl contract (/work/shared/contracts/pilotctl.md) as one suite, run through the adapter. By default
// against the fake Pilot network (both output builds); against real Pilot nodes when PILOTCTL (binary path)
// and PILOT_NODES (JSON array of {"home","socket","hostname"}, at least two running daemons) are set. On real
// nodes, untrust (which may break sends until both daemons restart) runs only with PILOT_CONTRACT_DESTRUCTIVE=1.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  deleteInboxFile,
  inboxDir,
  listInboxFilesSync,
  readInboxFileSync,
} from "../../src/adapters/pilot/inbox.js";
import {
  createPilotctl,
  formatAddress,
  type Pilotctl,
  type PilotError,
  type PilotInfo,
  parseAddress,
} from "../../src/adapters/pilot/pilotctl.js";
import { createEnvelope, decodeMessage, encodeEnvelope } from "../../src/adapters/transport/envelope.js";
import { createFakePilotNetwork, type FakePilotNetwork } from "../fixtures/fake-pilot/network.js";

interface NodeSpec {
  home: string;
  socket?: string;
  hostname: string;
}

const realBinary = process.env.PILOTCTL;
const realNodes = process.env.PILOT_NODES;
const real = Boolean(realBinary && realNodes);
const destructive = !real || process.env.PILOT_CONTRACT_DESTRUCTIVE === "1";
// Real handshakes propagate at the daemons' registry heartbeat (30 s each way); the fake uses a short delay.
const WAIT_MS = real ? 150_000 : 30_000;
const TEST_TIMEOUT_MS = real ? 400_000 : 120_000;

async function eventually<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not observed within ${WAIT_MS} ms`);
    await new Promise((r) => setTimeout(r, real ? 2_000 : 100));
  }
}

async function failure(p: Promise<unknown>): Promise<PilotError> {
  try {
    await p;
  } catch (err) {
    return err as PilotError;
  }
  throw new Error("expected the call to fail");
}

const targets = real ? (["real"] as const) : (["old", "new"] as const);

describe.each(targets)("pilotctl contract (%s)", { timeout: TEST_TIMEOUT_MS }, (target) => {
  let net: FakePilotNetwork | undefined;
  let specs: NodeSpec[];
  let ctl: Pilotctl[];
  let info: PilotInfo[];
  let startedTrusted = false;

  const a = () => ({ ctl: ctl[0]!, info: info[0]!, spec: specs[0]! });
  const b = () => ({ ctl: ctl[1]!, info: info[1]!, spec: specs[1]! });

  beforeAll(async () => {
    if (target === "real") {
      specs = JSON.parse(realNodes!) as NodeSpec[];
      if (!Array.isArray(specs) || specs.length < 2) throw new Error("PILOT_NODES needs at least two nodes");
      ctl = specs.map((s) =>
        createPilotctl({
          binary: realBinary!,
          home: s.home,
          ...(s.socket ? { socket: s.socket } : {}),
          timeoutMs: 60_000,
        }),
      );
    } else {
      const fake = createFakePilotNetwork({
        shape: target,
        handshakeDelayMs: 300,
        unreachableMs: 30_000,
        // Real: ~39 s (a send to a peer that untrusted us hangs before failing).
        untrustedBlockMs: 500,
      });
      net = fake;
      specs = ["contract-a", "contract-b"].map((h) => fake.addNode(h));
      ctl = specs.map((s) =>
        createPilotctl({
          binary: fake.pilotctlPath,
          home: s.home,
          socket: s.socket!,
          env: fake.env(s.home),
          timeoutMs: 30_000,
        }),
      );
    }
    info = [];
    for (const c of ctl) info.push(await c.info());
    const aTrusts = (await ctl[0]!.trust()).some((t) => t.nodeId === info[1]!.nodeId);
    const bTrusts = (await ctl[1]!.trust()).some((t) => t.nodeId === info[0]!.nodeId);
    startedTrusted = aTrusts && bTrusts;
  });
  afterAll(() => net?.close());

  it("info: node id, an address encoding all 32 bits of it, and the hostname", () => {
    for (const [i, n] of info.entries()) {
      expect(n.nodeId).toBeGreaterThan(0);
      expect(parseAddress(n.address)).toBe(n.nodeId);
      expect(n.hostname).toBe(specs[i]!.hostname);
    }
    expect(new Set(info.map((n) => n.nodeId)).size).toBe(info.length);
  });

  it("daemon status: running, with the same node", async () => {
    const status = await a().ctl.daemonStatus();
    expect(status.running).toBe(true);
    if (status.nodeId !== undefined) expect(status.nodeId).toBe(a().info.nodeId);
  });

  it("find: each node finds the other by hostname; an unknown hostname is not_found", async () => {
    const found = await a().ctl.find(b().spec.hostname);
    expect(found.nodeId).toBe(b().info.nodeId);
    expect(parseAddress(found.address)).toBe(b().info.nodeId);
    expect((await b().ctl.find(a().spec.hostname)).nodeId).toBe(a().info.nodeId);
    const err = await failure(a().ctl.find(`no-such-host-${Date.now()}`));
    expect(err.code).toBe("not_found");
  });

  it("before trust: sending is refused quickly (connection_failed or trust_required)", async (ctx) => {
    if (startedTrusted) ctx.skip();
    const started = Date.now();
    const err = await failure(a().ctl.sendMessage(b().spec.hostname, "are you there?"));
    expect(["connection_failed", "trust_required"]).toContain(err.code);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("handshake -> pending on the target -> reject: the request disappears, no trust", async (ctx) => {
    if (startedTrusted) ctx.skip();
    const sent = await a().ctl.handshake(b().info.nodeId, "contract test: reject me");
    expect(sent).toEqual({ nodeId: b().info.nodeId, status: "sent" });
    const request = await eventually("pending request", async () =>
      (await b().ctl.pending()).find((p) => p.nodeId === a().info.nodeId),
    );
    expect(request.justification).toContain("reject me");
    expect(await b().ctl.reject(a().info.nodeId, "not now")).toEqual({
      nodeId: a().info.nodeId,
      status: "rejected",
    });
    expect((await b().ctl.pending()).some((p) => p.nodeId === a().info.nodeId)).toBe(false);
    expect((await b().ctl.trust()).some((t) => t.nodeId === a().info.nodeId)).toBe(false);
  });

  it("handshake -> pending -> approve: both sides end up trusting each other", async (ctx) => {
    if (startedTrusted) ctx.skip();
    await a().ctl.handshake(b().spec.hostname, "contract test: approve me");
    await eventually("pending request", async () =>
      (await b().ctl.pending()).find((p) => p.nodeId === a().info.nodeId),
    );
    expect(await b().ctl.approve(a().info.nodeId)).toEqual({ nodeId: a().info.nodeId, status: "approved" });
    await eventually("approver trusts requester", async () =>
      (await b().ctl.trust()).find((t) => t.nodeId === a().info.nodeId),
    );
    await eventually("requester sees the approval", async () =>
      (await a().ctl.trust()).find((t) => t.nodeId === b().info.nodeId),
    );
  });

  it("approve with nothing pending still answers approved", async () => {
    expect(await a().ctl.approve(b().info.nodeId)).toEqual({ nodeId: b().info.nodeId, status: "approved" });
  });

  for (const direction of ["a->b", "b->a"] as const) {
    it(`after trust, ${direction}: the message lands as an inbox file of the documented shape`, async () => {
      const [from, to] = direction === "a->b" ? [a(), b()] : [b(), a()];
      const envelope = createEnvelope({
        fromHostname: from.spec.hostname,
        body: `contract ${direction} "quoted" --flag -h\nsecond line <&>`,
      });
      const sent = await eventually("send accepted", async () => {
        try {
          return await from.ctl.sendMessage(to.spec.hostname, encodeEnvelope(envelope));
        } catch (err) {
          // Right after approval the sender's side may lag by one heartbeat.
          if (["connection_failed", "trust_required"].includes((err as PilotError).code)) return undefined;
          throw err;
        }
      });
      expect(sent.ack).toMatch(/^ACK /);
      const dir = inboxDir(to.spec.home);
      const file = await eventually("inbox file", async () => {
        for (const entry of listInboxFilesSync(dir)) {
          const r = readInboxFileSync(entry.path);
          if ("ok" in r) {
            const decoded = decodeMessage(r.ok.data);
            if ("envelope" in decoded && decoded.envelope.id === envelope.id) return r.ok;
          }
        }
        return undefined;
      });
      expect(file.name).toMatch(/^[A-Z]+-(\d{8}-\d{6}\.\d{3}|\d+-\d+)\.json$/);
      expect(file.type).toBe("TEXT");
      expect(file.fromNodeId).toBe(from.info.nodeId);
      expect(decodeMessage(file.data)).toMatchObject({ envelope });
      if (file.bytes !== undefined) expect(file.bytes).toBe(Buffer.byteLength(file.data));
      expect(file.receivedAt).toBeDefined();
      const listed = await to.ctl.listInbox();
      expect(listed.some((m) => m.data === file.data && m.fromNodeId === from.info.nodeId)).toBe(true);
      await deleteInboxFile(file.path);
    });
  }

  it("untrust: the peer leaves the trust list; untrusting a stranger is connection_failed", async (ctx) => {
    if (!destructive) ctx.skip();
    expect(await b().ctl.untrust(a().info.nodeId)).toEqual({ nodeId: a().info.nodeId });
    expect((await b().ctl.trust()).some((t) => t.nodeId === a().info.nodeId)).toBe(false);
    expect((await failure(b().ctl.untrust(a().info.nodeId))).code).toBe("connection_failed");
    const err = await failure(
      a().ctl.sendMessage(b().spec.hostname, "still trusted?", { timeoutMs: 45_000 }),
    );
    expect(["connection_failed", "trust_required", "timeout"]).toContain(err.code);
  });

  it("a node without a daemon: not_running, with what to do next", async (ctx) => {
    if (!net) ctx.skip();
    const stopped = net!.addNode(`contract-off-${target}`, { start: false });
    const c = createPilotctl({
      binary: net!.pilotctlPath,
      home: stopped.home,
      socket: stopped.socket,
      env: net!.env(stopped.home),
    });
    expect((await c.daemonStatus()).running).toBe(false);
    const err = await failure(c.info());
    expect(err.code).toBe("not_running");
    expect(err.message).toMatch(/Pilot daemon not running/);
  });
});

// What real daemons were seen doing beyond the table above (docs/pilot.md, "Observed on real daemons"), as the fake
// models it with its delays shortened by knobs. Fake only: on real nodes these take minutes and restart daemons.
describe.runIf(!real).each(["old", "new"] as const)(
  "pilotctl behaviours seen on real daemons (fake, %s)",
  {
    timeout: 120_000,
  },
  (shape) => {
    const BLOCK_MS = 400;
    let net: FakePilotNetwork;
    const peer = (hostname: string, extraEnv: Record<string, string> = {}) => {
      const node = net.addNode(hostname);
      return {
        node,
        ctl: createPilotctl({
          binary: net.pilotctlPath,
          home: node.home,
          socket: node.socket,
          env: { ...net.env(node.home), ...extraEnv },
          timeoutMs: 30_000,
        }),
      };
    };
    const trustBoth = async (x: ReturnType<typeof peer>, y: ReturnType<typeof peer>) => {
      await x.ctl.handshake(y.node.hostname, "contract");
      await y.ctl.handshake(x.node.hostname, "contract");
    };
    const timed = async <T>(p: Promise<T>) => {
      const started = Date.now();
      const settled = await p.then(
        (value) => ({ value, error: undefined }),
        (error: unknown) => ({ value: undefined, error: error as PilotError }),
      );
      return { ...settled, ms: Date.now() - started };
    };

    beforeAll(() => {
      net = createFakePilotNetwork({
        shape,
        unreachableMs: 1_500,
        brokenDialMs: BLOCK_MS,
        untrustedBlockMs: BLOCK_MS,
      });
    });
    afterAll(() => net.close());

    it("a burst in one millisecond: every send is ACKed, but the old build keeps one file per name", async () => {
      const a = peer(`burst-a-${shape}`);
      const b = peer(`burst-b-${shape}`);
      await trustBoth(a, b);
      const colliding = createPilotctl({
        binary: net.pilotctlPath,
        home: a.node.home,
        socket: a.node.socket,
        env: { ...net.env(a.node.home), FAKE_PILOT_COLLIDE: "1", FAKE_PILOT_COLLIDE_MS: "60000" },
      });
      const acks = await Promise.all(
        Array.from({ length: 5 }, (_, i) => colliding.sendMessage(b.node.hostname, `burst ${i}`)),
      );
      for (const ack of acks) expect(ack.ack).toMatch(/^ACK /);
      const files = listInboxFilesSync(inboxDir(b.node.home));
      if (shape === "old") expect(files.length).toBeLessThan(5);
      else expect(files).toHaveLength(5);
    });

    it("FAKE_PILOT_DROP_PERCENT: that share of ACKed messages never reaches the inbox", async () => {
      const a = peer(`drop-a-${shape}`, { FAKE_PILOT_DROP_PERCENT: "50" });
      const b = peer(`drop-b-${shape}`);
      await trustBoth(a, b);
      for (let i = 0; i < 6; i++)
        expect((await a.ctl.sendMessage(b.node.hostname, `m${i}`)).ack).toMatch(/^ACK /);
      expect(listInboxFilesSync(inboxDir(b.node.home))).toHaveLength(3);
    });

    it("one daemon restarted: sends fail both ways (connection_failed, slow) until the other restarts too", async () => {
      const a = peer(`pair-a-${shape}`);
      const b = peer(`pair-b-${shape}`);
      await trustBoth(a, b);
      await a.ctl.sendMessage(b.node.hostname, "before");
      net.restartDaemon(b.node);
      for (const [from, to] of [
        [a, b],
        [b, a],
      ] as const) {
        const r = await timed(from.ctl.sendMessage(to.node.hostname, "after one restart"));
        expect(r.error?.code).toBe("connection_failed");
        expect(r.ms).toBeGreaterThanOrEqual(BLOCK_MS - 50);
      }
      // Trust is kept across the restart: only the tunnel is broken.
      const bId = (await b.ctl.info()).nodeId;
      expect((await a.ctl.trust()).some((t) => t.nodeId === bId)).toBe(true);
      expect(parseAddress(formatAddress(bId))).toBe(bId);
      net.restartDaemon(a.node);
      expect((await a.ctl.sendMessage(b.node.hostname, "after both restarted")).ack).toMatch(/^ACK /);
      expect((await b.ctl.sendMessage(a.node.hostname, "and back")).ack).toMatch(/^ACK /);
    });

    it("after the peer untrusted us, a send blocks, then fails (not a fast refusal)", async () => {
      const a = peer(`left-a-${shape}`);
      const b = peer(`left-b-${shape}`);
      await trustBoth(a, b);
      await b.ctl.untrust((await a.ctl.info()).nodeId);
      const r = await timed(a.ctl.sendMessage(b.node.hostname, "still friends?"));
      expect(r.error?.code).toBe("connection_failed");
      expect(r.ms).toBeGreaterThanOrEqual(BLOCK_MS - 50);
      // Our side still lists the peer (its list went stale); only `mutual` on our entry changed.
      const bId = (await b.ctl.info()).nodeId;
      expect((await a.ctl.trust()).find((t) => t.nodeId === bId)).toMatchObject({ mutual: false });
    });

    it("a peer offline: by hostname not_found at once, by node id a slow dial", async () => {
      const a = peer(`off-a-${shape}`);
      const b = peer(`off-b-${shape}`);
      await trustBoth(a, b);
      const bId = (await b.ctl.info()).nodeId;
      await b.ctl.daemonStop();
      const byName = await timed(a.ctl.sendMessage(b.node.hostname, "there?"));
      expect(byName.error?.code).toBe("not_found");
      expect(byName.ms).toBeLessThan(1_400);
      expect((await failure(a.ctl.find(b.node.hostname))).code).toBe("not_found");
      const byId = await timed(a.ctl.sendMessage(bId, "there?"));
      expect(["connection_failed", "timeout"]).toContain(byId.error?.code);
      expect(byId.ms).toBeGreaterThanOrEqual(1_400);
    });

    it("find resolves a hostname without any trust", async () => {
      const a = peer(`find-a-${shape}`);
      const b = peer(`find-b-${shape}`);
      expect((await a.ctl.trust()).length).toBe(0);
      expect((await a.ctl.find(b.node.hostname)).nodeId).toBe((await b.ctl.info()).nodeId);
    });

    it("daemon stop on a daemon pilotctl did not start: not_running, and the daemon keeps running", async () => {
      const a = peer(`foreign-${shape}`);
      net.forgetPidFile(a.node);
      const err = await failure(a.ctl.daemonStop());
      expect(err.code).toBe("not_running");
      expect(err.detail).toMatch(/PID file is missing/);
      expect((await a.ctl.daemonStatus()).running).toBe(true);
      expect((await a.ctl.info()).hostname).toBe(a.node.hostname);
    });
  },
);
