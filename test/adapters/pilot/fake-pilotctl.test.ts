// The fake's quirks, checked directly (raw argv, no adapter): they are why the adapter passes `--data=<v>` as
// one token, and the adapter tests only mean something if the fake really misbehaves like pilotctl.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inboxDir } from "../../../src/adapters/pilot/inbox.js";
import type { FakePilotNetwork, FakePilotNode } from "../../fixtures/fake-pilot/network.js";
import { adapterFor, type Peer, setupNetwork, trustEachOther, waitFor } from "./helpers.js";

function raw(
  net: FakePilotNetwork,
  node: FakePilotNode,
  args: string[],
  extraEnv: Record<string, string> = {},
) {
  const r = spawnSync(net.pilotctlPath, args, {
    env: { ...process.env, ...net.env(node.home), ...extraEnv },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function inboxData(node: FakePilotNode): string[] {
  const dir = inboxDir(node.home);
  return readdirSync(dir)
    .sort()
    .map((n) => JSON.parse(readFileSync(join(dir, n), "utf8")) as { data?: string })
    .map((m) => m.data ?? "");
}

describe.each(["old", "new"] as const)("fake pilotctl quirks (%s build)", { timeout: 120_000 }, (shape) => {
  let net: FakePilotNetwork;
  let a: Peer;
  let b: Peer;
  beforeAll(async () => {
    const setup = setupNetwork({ shape }, ["qa", "qb"]);
    net = setup.net;
    [a, b] = setup.peers as [Peer, Peer];
    await trustEachOther(a, b);
  });
  afterAll(() => net.close());

  it("success is one JSON line on stdout, errors one JSON line on stderr with exit 1", () => {
    const okRun = raw(net, a.node, ["info", "--json"]);
    expect(okRun.code).toBe(0);
    expect(okRun.stdout.trim().split("\n")).toHaveLength(1);
    expect(JSON.parse(okRun.stdout)).toMatchObject({ status: "ok", data: { hostname: "qa" } });
    const bad = raw(net, a.node, ["--json", "find", "nobody"]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe("");
    expect(JSON.parse(bad.stderr)).toMatchObject({ status: "error", code: "not_found" });
  });

  it("usage errors are text with exit 2; with --json an unknown command is invalid_argument", () => {
    const none = raw(net, a.node, []);
    expect(none.code).toBe(2);
    expect(() => JSON.parse(none.stderr)).toThrow();
    expect(raw(net, a.node, ["frobnicate"]).code).toBe(2);
    const unknown = raw(net, a.node, ["--json", "frobnicate"]);
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stderr)).toMatchObject({ code: "invalid_argument" });
  });

  it("unknown flags are ignored, and --json may stand anywhere", () => {
    const r = raw(net, a.node, ["info", "--frobnicate", "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).data.hostname).toBe("qa");
  });

  it("an empty --data is invalid_argument; the answer names the target by address", () => {
    const empty = raw(net, a.node, ["--json", "send-message", "qb", "--data="]);
    expect(empty.code).toBe(1);
    expect(JSON.parse(empty.stderr).code).toBe("invalid_argument");
    const sent = raw(net, a.node, ["--json", "send-message", "qb", "--data=x"]);
    expect(JSON.parse(sent.stdout).data.target).toMatch(/^0:0000\.[0-9A-F]{4}\.[0-9A-F]{4}$/);
  });

  it("escapes <>& like Go's encoder", () => {
    rmSync(inboxDir(b.node.home), { recursive: true, force: true });
    raw(net, a.node, ["--json", "send-message", "qb", "--data=<a&b>"]);
    const dir = inboxDir(b.node.home);
    const [file] = readdirSync(dir);
    const text = readFileSync(join(dir, file!), "utf8");
    expect(text).toContain("\\u003ca\\u0026b\\u003e");
    expect(JSON.parse(text).data).toBe("<a&b>");
  });

  it("a separate `--data <v>` token starting with -- sends the literal true", () => {
    rmSync(inboxDir(b.node.home), { recursive: true, force: true });
    const r = raw(net, a.node, ["--json", "send-message", "qb", "--data", "--surprise"]);
    expect(r.code).toBe(0);
    expect(inboxData(b.node)).toEqual(["true"]);
  });

  it(
    shape === "new"
      ? "a lone -h anywhere prints help and sends nothing"
      : "-h as a value is sent (old build)",
    () => {
      rmSync(inboxDir(b.node.home), { recursive: true, force: true });
      const r = raw(net, a.node, ["--json", "send-message", "qb", "--data", "-h"]);
      expect(r.code).toBe(0);
      if (shape === "new") {
        expect(r.stdout).toMatch(/Usage/);
        expect(() => readdirSync(inboxDir(b.node.home))).toThrow();
      } else {
        expect(inboxData(b.node)).toEqual(["-h"]);
      }
    },
  );

  it("daemon status --check answers with the exit code only", () => {
    const r = raw(net, a.node, ["--json", "daemon", "status", "--check"]);
    expect(r).toMatchObject({ code: 0, stdout: "" });
    const stopped = net.addNode(`chk-${shape}`, { start: false });
    expect(raw(net, stopped, ["--json", "daemon", "status", "--check"])).toMatchObject({
      code: 1,
      stdout: "",
    });
  });

  it("inbox --clear deletes every file and reports not_found on an empty inbox", () => {
    raw(net, a.node, ["--json", "send-message", "qb", "--data=one"]);
    const cleared = raw(net, b.node, ["--json", "inbox", "--clear"]);
    expect(JSON.parse(cleared.stdout).data.cleared).toBeGreaterThan(0);
    const again = raw(net, b.node, ["--json", "inbox", "--clear"]);
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stderr).code).toBe("not_found");
  });

  it(`inbox file names follow the ${shape} daemon's pattern`, () => {
    rmSync(inboxDir(b.node.home), { recursive: true, force: true });
    raw(net, a.node, ["--json", "send-message", "qb", "--data={}", "--type=json"]);
    const [name] = readdirSync(inboxDir(b.node.home));
    if (shape === "old") expect(name).toMatch(/^JSON-\d{8}-\d{6}\.\d{3}\.json$/);
    else expect(name).toMatch(/^JSON-\d+-\d+\.json$/);
  });

  it("peers lists tunnels to trusted running peers; context describes the CLI", () => {
    const peers = JSON.parse(raw(net, a.node, ["--json", "peers"]).stdout).data;
    expect(peers.total).toBe(1);
    const context = JSON.parse(raw(net, a.node, ["--json", "context"]).stdout).data;
    expect(context.version).toBe("1.2");
    expect(Object.keys(context.commands)).toContain("send-message");
  });

  it(`version: ${shape === "old" ? "unknown command (exit 2)" : "plain text even with --json"}`, () => {
    const r = raw(net, a.node, ["--json", "version"]);
    if (shape === "old") expect(r.code).toBe(2);
    else expect(r).toMatchObject({ code: 0, stdout: expect.stringMatching(/^pilotctl /) });
  });

  it("concurrent sends from many processes all arrive (the state lock holds)", async () => {
    rmSync(inboxDir(b.node.home), { recursive: true, force: true });
    const runs = Array.from({ length: 8 }, (_, i) => a.ctl.sendMessage("qb", `concurrent ${i}`));
    await Promise.all(runs);
    const got = inboxData(b.node);
    if (shape === "new")
      expect(got.sort()).toEqual(Array.from({ length: 8 }, (_, i) => `concurrent ${i}`).sort());
    else expect(got.length).toBeGreaterThan(0);
  });

  it(`same-millisecond messages ${shape === "old" ? "overwrite each other" : "get distinct files"}`, () => {
    rmSync(inboxDir(b.node.home), { recursive: true, force: true });
    const pinned = { FAKE_PILOT_INBOX_TIME_MS: String(Date.now()) };
    raw(net, a.node, ["--json", "send-message", "qb", "--data=first"], pinned);
    raw(net, a.node, ["--json", "send-message", "qb", "--data=second"], pinned);
    expect(inboxData(b.node)).toEqual(shape === "old" ? ["second"] : ["first", "second"]);
  });

  it("an empty identity path gives a new node id at every start", () => {
    const n = net.addNode(`ephemeral-${shape}`, { start: false });
    const first = net.run(n, ["daemon", "start", `--hostname=${n.hostname}`, "--identity="]) as {
      node_id: number;
    };
    net.run(n, ["daemon", "stop"]);
    const second = net.run(n, ["daemon", "start", `--hostname=${n.hostname}`, "--identity="]) as {
      node_id: number;
    };
    expect(second.node_id).not.toBe(first.node_id);
    net.run(n, ["daemon", "stop"]);
  });

  it("the webhook gets a body-less message.received hint after the inbox file is written", async () => {
    const hits: unknown[] = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        hits.push(JSON.parse(body));
        res.end("ok");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as AddressInfo).port;
      const n = net.addNode(`hooked-${shape}`, { start: false });
      net.run(n, ["daemon", "start", `--hostname=${n.hostname}`, `--webhook=http://127.0.0.1:${port}/hook`]);
      const peer = { node: n, ctl: adapterFor(net, n) };
      await trustEachOther(a, peer);
      await a.ctl.sendMessage(n.hostname, "secret body");
      await waitFor(async () => hits.length > 0, 5_000, 20);
      expect(hits[0]).toMatchObject({ event: "message.received" });
      expect(JSON.stringify(hits[0])).not.toContain("secret body");
      net.run(n, ["daemon", "stop"]);
    } finally {
      server.close();
    }
  });

  it("with FAKE_PILOT_UNTRUST_DEFECT, sends fail after untrust + re-handshake until both daemons restart", async () => {
    const defect = { FAKE_PILOT_UNTRUST_DEFECT: "1" };
    const x = net.addNode(`defx-${shape}`);
    const y = net.addNode(`defy-${shape}`);
    const px = { node: x, ctl: adapterFor(net, x) };
    const py = { node: y, ctl: adapterFor(net, y) };
    await trustEachOther(px, py);
    const yId = (await py.ctl.info()).nodeId;
    expect(raw(net, x, ["--json", "untrust", String(yId)], defect).code).toBe(0);
    await trustEachOther(px, py);
    await expect(px.ctl.sendMessage(y.hostname, "after re-trust")).rejects.toMatchObject({
      code: expect.any(String),
    });
    for (const p of [px, py]) {
      await p.ctl.daemonStop();
      await p.ctl.daemonStart({ hostname: p.node.hostname });
    }
    expect((await px.ctl.sendMessage(y.hostname, "after restarts")).ack).toMatch(/^ACK /);
  });

  it("FAKE_PILOT_NO_PID_FILE: a daemon started without a PID file cannot be stopped by pilotctl", () => {
    const n = net.addNode(`nopid-${shape}`, { start: false });
    const started = raw(net, n, ["--json", "daemon", "start", `--hostname=${n.hostname}`], {
      FAKE_PILOT_NO_PID_FILE: "1",
    });
    expect(started.code).toBe(0);
    const stop = raw(net, n, ["--json", "daemon", "stop"]);
    expect(stop.code).toBe(1);
    expect(JSON.parse(stop.stderr)).toMatchObject({ code: "not_running", message: /PID file is missing/ });
    expect(raw(net, n, ["daemon", "status", "--check"]).code).toBe(0);
  });

  it("the inbox folder is created owner-only, as the real daemon does", () => {
    expect(statSync(inboxDir(b.node.home)).mode & 0o777).toBe(0o700);
  });

  it("handshake requests show up only after the propagation delay", () => {
    const slowEnv = { FAKE_PILOT_HANDSHAKE_DELAY_MS: "3000" };
    const c = net.addNode(`late-${shape}`);
    const started = Date.now();
    const hs = raw(net, c, ["--json", "handshake", "qa", "hello"], slowEnv);
    expect(hs.code).toBe(0);
    const early = JSON.parse(raw(net, a.node, ["--json", "pending"]).stdout).data.pending;
    const elapsed = Date.now() - started;
    const cId = JSON.parse(raw(net, c, ["--json", "info"]).stdout).data.node_id;
    // On a very slow machine the check may come after the delay: only assert what was observable.
    if (elapsed < 2_500) expect(early.map((p: { node_id: number }) => p.node_id)).not.toContain(cId);
    spawnSync("sleep", ["3.1"]);
    const later = JSON.parse(raw(net, a.node, ["--json", "pending"]).stdout).data.pending;
    expect(later.map((p: { node_id: number }) => p.node_id)).toContain(cId);
  });
});
