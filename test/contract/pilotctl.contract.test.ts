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
      const fake = createFakePilotNetwork({ shape: target, handshakeDelayMs: 300, unreachableMs: 30_000 });
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
      expect(decodeMessage(file.data)).toEqual({ envelope });
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
