// The network page's HTTP surface on a real HTTP server (127.0.0.1), with accounts made of a real actor and a
// fake network: who may read and act, what the shell and the API send (headers, bounds), and the live feed
// (only changes, transitions of actors that woke and rested between two sends).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { assign, createActor, createMachine, sendTo, setup, spawnChild, stopChild } from "xstate";
import { type AccountView, PEER_STATES } from "../../../src/adapters/openclaw/network-page/projection.js";
import {
  API_PATH,
  ASSETS_PATH,
  CONTENT_SECURITY_POLICY,
  createApiHandler,
  handleAsset,
  handlePage,
  type PageRuntime,
} from "../../../src/adapters/openclaw/network-page/routes.js";
import type { PeerState } from "../../../src/machines/handshake.machine.js";
import { peerTableOf } from "../../../src/machines/peers.js";
import { NetworkError, type PeerView } from "../../../src/runtime/account-network.js";

const HOSTILE = `<img src=x onerror="alert(1)">${"x".repeat(2_000)}`;

function peer(hostname: string, state: PeerView["state"], introduction: string | null = null): PeerView {
  return {
    hostname,
    nodeId: null,
    installationId: null,
    state,
    introduction,
    assistantName: "Bob <b>",
    humanName: null,
    updatedAt: null,
    fingerprint: null,
    offeredFingerprint: "SHA256:abcd",
  };
}

// A root with one child that wakes and rests, like a handshake: enough of the account tree for the feed.
const childMachine = createMachine({
  id: "handshake",
  initial: "pendingApproval",
  states: { pendingApproval: { on: { APPROVE: "approving" } }, approving: {} },
});
const bobRecord = (state: string) => ({ hostname: "bob", state }) as unknown as PeerState;
const rootMachine = setup({
  actors: { handshake: childMachine },
}).createMachine({
  id: "account",
  context: { peers: peerTableOf([["bob", bobRecord("pendingApproval")]]), n: 0 },
  initial: "online",
  states: {
    online: {
      on: {
        BUMP: { actions: assign({ n: ({ context }) => context.n + 1 }) },
        WAKE: {
          actions: [
            spawnChild("handshake", { id: "handshake:bob" }),
            sendTo("handshake:bob", { type: "APPROVE" }),
          ],
        },
        // The handshake settled: its record is written and the actor stops in the same step, as the root does.
        REST: {
          actions: [
            assign({ peers: () => peerTableOf([["bob", bobRecord("trusted")]]) }),
            stopChild("handshake:bob"),
          ],
        },
        GO: "private",
      },
    },
    private: {},
  },
});

function fakeAccount(accountId = "alice") {
  const actor = createActor(rootMachine).start();
  const calls: string[] = [];
  const peers = [peer("bob", "pendingApproval", HOSTILE), peer("carol", "trusted")];
  const network = {
    transport: "relay" as const,
    unavailableReason: () => null,
    peers: () => peers,
    counters: () => ({
      dispatched: 0,
      refused: { untrusted: 2 },
      deadLettered: 0,
      duplicates: 0,
      sent: 0,
      lastInboundAt: null,
      lastOutboundAt: null,
    }),
    identity: () => ({ fingerprint: "SHA256:self", records: {}, alerts: [] }),
    outbox: () => [],
    async approve(ref: string) {
      calls.push(`approve ${ref}`);
      if (ref === "nobody") throw new NetworkError("NOT_PENDING", "nobody has not asked");
      return { ...peers[0]!, state: "trusted" as const };
    },
    async reject(ref: string, reason?: string) {
      calls.push(`reject ${ref} ${reason ?? ""}`);
      return { ...peers[0]!, state: "rejected" as const };
    },
  };
  const account = {
    accountId,
    actor,
    network,
    status: () => ({
      lifecycle: actor.getSnapshot().value === "online" ? "online" : "private",
      agentId: "agent-1",
      discoverable: true,
      lastHeartbeatAt: null,
      heartbeatFailures: 0,
      lastError: null,
      nextRetryDelayMs: null,
      accountId,
      hostname: accountId,
      peerId: "p_1",
      registryUrl: "http://127.0.0.1:2",
      registry: {
        url: "http://127.0.0.1:2",
        index: 1,
        configured: 2,
        lastFailover: {
          at: "2026-11-30T08:00:00.000Z",
          from: "http://127.0.0.1:1",
          to: "http://127.0.0.1:2",
          reason: "http://127.0.0.1:1: unreachable",
        },
      },
      fingerprint: "SHA256:self",
      visibilitySource: "config",
      visibilityError: null,
    }),
  } as unknown as PageRuntime;
  return { account, actor, calls, peers };
}

let server: Server;
let base: string;
let scopes: string[] | undefined;
let accounts: PageRuntime[];

beforeEach(async () => {
  scopes = ["operator.read"];
  accounts = [];
  const api = createApiHandler({
    accounts: () => accounts,
    callerScopes: () => scopes,
    stream: { throttleMs: 20, tickMs: 100_000, pingMs: 100_000, maxMs: 10_000 },
  });
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path.startsWith(API_PATH)) void api(req, res);
    else if (path.startsWith(ASSETS_PATH)) handleAsset(req, res);
    else handlePage(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}${API_PATH}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });

describe("the shell", () => {
  it("serves the page with a strict Content-Security-Policy and no inline code", async () => {
    const response = await fetch(`${base}/plugins/agent-registry/`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-security-policy")).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe|https?:|\*/);
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    const html = await response.text();
    expect(html).toContain('src="assets/app.js"');
    expect(html).not.toMatch(/<script>|<style>| on[a-z]+=/);
  });

  it("redirects the path without its slash, so relative asset URLs resolve", async () => {
    const response = await fetch(`${base}/plugins/agent-registry`, { redirect: "manual" });
    expect(response.status).toBe(308);
    expect(response.headers.get("location")).toBe("/plugins/agent-registry/");
  });

  it("serves only its own assets, and its script never parses data as HTML", async () => {
    const script = await fetch(`${base}${ASSETS_PATH}/app.js`);
    expect(script.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect(await script.text()).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
    expect((await fetch(`${base}${ASSETS_PATH}/app.css`)).status).toBe(200);
    expect((await fetch(`${base}${ASSETS_PATH}/%2e%2e%2f%2e%2e%2froutes.ts`)).status).toBe(404);
    expect((await fetch(`${base}${ASSETS_PATH}/secret.json`)).status).toBe(404);
  });
});

describe("the API", () => {
  it("refuses a caller without operator.read", async () => {
    scopes = [];
    expect((await fetch(`${base}${API_PATH}/state`)).status).toBe(403);
    scopes = undefined;
    expect((await fetch(`${base}${API_PATH}/state`)).status).toBe(403);
  });

  it("shows each account's registration, peers, pending requests and refusals, bounded", async () => {
    accounts = [fakeAccount().account];
    const body = (await (await fetch(`${base}${API_PATH}/state`)).json()) as {
      canWrite: boolean;
      peerStates: Array<{ state: string; name: string }>;
      accounts: Array<AccountView>;
    };
    expect(body.canWrite).toBe(false);
    // The page's order and words for peer states come with the state: the browser keeps no copy of them.
    expect(body.peerStates.map((entry) => entry.state)).toEqual(PEER_STATES.map((entry) => entry.state));
    expect(body.peerStates.find((entry) => entry.state === "pendingApproval")?.name).toBe("pending approval");
    const alice = body.accounts[0]!;
    expect(alice.lifecycle).toBe("online");
    expect(alice.registration).toMatchObject({ agentId: "agent-1", fingerprint: "SHA256:self" });
    // The registry URL in use, and with several configured which one and the last failover.
    expect(alice.registration).toMatchObject({
      registryUrl: "http://127.0.0.1:2",
      registryFailover: {
        inUse: 2,
        configured: 2,
        lastAt: "2026-11-30T08:00:00.000Z",
        lastFrom: "http://127.0.0.1:1",
      },
    });
    expect(alice.pending.map((p: PeerView) => p.hostname)).toEqual(["bob"]);
    // Hostile text is data, clipped to a bound; the browser inserts it as text.
    expect(alice.pending[0]!.introduction!.length).toBeLessThanOrEqual(501);
    expect(alice.pending[0]!.introduction!.startsWith("<img src=x")).toBe(true);
    expect(alice.peers.counts).toMatchObject({ pendingApproval: 1, trusted: 1 });
    expect(alice.refusals.refused).toEqual({ untrusted: 2 });
    expect(alice.actors.root).toMatchObject({ id: "account:alice", machine: "account", active: ["online"] });
  });

  it("lets only operator.write approve or reject", async () => {
    const { account, calls } = fakeAccount();
    accounts = [account];
    expect((await post("/approve", { accountId: "alice", peer: "bob" })).status).toBe(403);
    expect(calls).toEqual([]);
    scopes = ["operator.write"];
    const approved = await post("/approve", { accountId: "alice", peer: "bob" });
    expect(approved.status).toBe(200);
    expect(((await approved.json()) as { peer: PeerView }).peer.state).toBe("trusted");
    expect((await post("/reject", { accountId: "alice", peer: "bob", reason: "no" })).status).toBe(200);
    expect(calls).toEqual(["approve bob", "reject bob no"]);
  });

  it("refuses cross-site writes, non-JSON bodies, bad peers and unknown accounts", async () => {
    const { account, calls } = fakeAccount();
    accounts = [account];
    scopes = ["operator.admin"];
    expect((await post("/approve", { peer: "bob" }, { "sec-fetch-site": "cross-site" })).status).toBe(403);
    expect((await post("/approve", { peer: "bob" }, { origin: "http://evil.example" })).status).toBe(403);
    const form = await fetch(`${base}${API_PATH}/approve`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "peer=bob",
    });
    expect(form.status).toBe(403);
    expect((await post("/approve", { peer: "" })).status).toBe(400);
    expect((await post("/approve", { accountId: "mallory", peer: "bob" })).status).toBe(404);
    expect((await post("/approve", { peer: "x".repeat(5_000) })).status).toBe(413);
    const notPending = await post("/approve", { peer: "nobody" });
    expect(notPending.status).toBe(409);
    expect(((await notPending.json()) as { error: { code: string } }).error.code).toBe("NOT_PENDING");
    expect(calls).toEqual(["approve nobody"]);
  });
});

// biome-ignore lint/suspicious/noExplicitAny: frames are JSON the test reads field by field
type Frame = any;

async function readFrames(
  response: Response,
  until: (frames: Array<{ event: string; data: Frame }>) => boolean,
) {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const frames: Array<{ event: string; data: Frame }> = [];
  let buffer = "";
  const deadline = Date.now() + 5_000;
  while (!until(frames) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end = buffer.indexOf("\n\n");
    while (end !== -1) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(frame)?.[1];
      const data = /^data: (.*)$/m.exec(frame)?.[1];
      if (event && data) frames.push({ event, data: JSON.parse(data) });
      end = buffer.indexOf("\n\n");
    }
  }
  await reader.cancel();
  return frames;
}

describe("the live feed", () => {
  it("sends each account once, then only what changed", async () => {
    const { account, actor } = fakeAccount();
    accounts = [account];
    const response = await fetch(`${base}${API_PATH}/events`);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    setTimeout(() => {
      // Context changes that the projection does not show send nothing; a state change sends the account.
      actor.send({ type: "BUMP" });
      actor.send({ type: "BUMP" });
      setTimeout(() => actor.send({ type: "GO" }), 80);
    }, 50);
    const frames = await readFrames(response, (f) => f.filter((x) => x.event === "account").length >= 2);
    const sent = frames.filter((f) => f.event === "account");
    expect(sent.map((f) => f.data.lifecycle)).toEqual(["online", "private"]);
    const transitions = frames.filter((f) => f.event === "transitions").flatMap((f) => f.data);
    expect(transitions).toContainEqual(
      expect.objectContaining({ accountId: "alice", actor: "account:alice", from: "online", to: "private" }),
    );
  });

  it("tells where a handshake that woke and rested between two sends ended: its record", async () => {
    const { account, actor } = fakeAccount();
    accounts = [account];
    const response = await fetch(`${base}${API_PATH}/events`);
    setTimeout(() => {
      actor.send({ type: "WAKE" });
      actor.send({ type: "REST" });
    }, 50);
    const frames = await readFrames(response, (f) =>
      f.some((x) => x.event === "transitions" && x.data.some((t: Frame) => t.to.includes("rests"))),
    );
    const transitions = frames.filter((f) => f.event === "transitions").flatMap((f) => f.data);
    expect(transitions).toContainEqual(
      expect.objectContaining({ actor: "handshake:bob", from: "approving", to: "trusted (rests)" }),
    );
  });

  it("bounds the number of live views", async () => {
    accounts = [fakeAccount().account];
    const open = await Promise.all(Array.from({ length: 8 }, () => fetch(`${base}${API_PATH}/events`)));
    expect(open.every((r) => r.status === 200)).toBe(true);
    const ninth = await fetch(`${base}${API_PATH}/events`);
    expect(ninth.status).toBe(503);
    for (const r of open) await r.body?.cancel();
  });
});
