// The fake's quirks, checked directly (raw argv, no adapter): they are why the adapter passes `--data=<v>` as
// one token, and the adapter tests only mean something if the fake really misbehaves like pilotctl.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inboxDir } from "../../../src/adapters/pilot/inbox.js";
import type { FakePilotNetwork, FakePilotNode } from "../../fixtures/fake-pilot/network.js";
import { type Peer, setupNetwork, trustEachOther } from "./helpers.js";

function raw(
  net: FakePilotNetwork,
  node: FakePilotNode,
  args: string[],
  extraEnv: Record<string, string> = {},
) {
  const r = spawnSync(net.pilotctlPath, args, {
    env: { ...process.env, ...net.env(node.home), ...extraEnv },
    encoding: "utf8",
    timeout: 20_000,
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

describe.each(["old", "new"] as const)("fake pilotctl quirks (%s build)", { timeout: 60_000 }, (shape) => {
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

  it("usage errors are text with exit 2", () => {
    const r = raw(net, a.node, ["--json", "frobnicate"]);
    expect(r.code).toBe(2);
    expect(() => JSON.parse(r.stderr)).toThrow();
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
