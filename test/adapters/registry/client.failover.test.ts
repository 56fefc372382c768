// The client with several registry URLs (replicas of one registry): a request goes to the URL in use and, when
// that URL is down, overloaded or stalled, to the next; the URL that answered stays in use, and the preferred one
// is asked again after a while. Requests that must not repeat are not repeated. Real HTTP on 127.0.0.1: one
// reference registry behind two proxies (its replicas' front doors), and stand-ins that fail on purpose.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createRegistryClient, type RegistrySwitch } from "../../../src/adapters/registry/client.js";
import { RegistryError } from "../../../src/adapters/registry/errors.js";
import type { AgentMetadata } from "../../../src/adapters/registry/types.js";
import { generateIdentity } from "../../../src/identity/keys.js";
import { PROOF_HEADER, verifyRequestProof } from "../../../src/identity/request-proof.js";
import { startRegistryServer } from "../../../src/registry-server/server.js";
import { caught as caughtAs } from "../../support/caught.js";
import { startCountingProxy } from "../../support/counting-proxy.js";

const caught = (promise: Promise<unknown>) => caughtAs(promise, RegistryError);

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

const ALICE: AgentMetadata = {
  hostname: "alice",
  installationId: "inst-alice",
  pilotNodeId: "4242",
  displayName: "Alice",
  description: "Books meetings",
  capabilities: ["calendar"],
};

interface Seen {
  method: string;
  url: string;
  proof: string | undefined;
  body: string;
}

type Answer = { status: number; body?: unknown } | "hang";

interface Stub {
  /** Base URL (with the base path, when given). */
  url: string;
  seen: Seen[];
  /** Requests to the API, without the preferred-URL probes. */
  api(): Seen[];
  answer: (seen: Seen) => Answer | Promise<Answer>;
  close(): Promise<void>;
}

const RECORD = { id: "a1", hostname: "alice", capabilities: [], status: "online" };

/** A registry stand-in whose answers a test sets; records every request as it arrived. */
async function startStub(basePath = ""): Promise<Stub> {
  const stub = { seen: [] as Seen[] } as Stub;
  stub.answer = () => ({ status: 200, body: {} });
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const proof = req.headers[PROOF_HEADER];
    const seen = {
      method: req.method ?? "",
      url: req.url ?? "",
      proof: Array.isArray(proof) ? proof[0] : proof,
      body: Buffer.concat(chunks).toString(),
    };
    stub.seen.push(seen);
    const answer = await stub.answer(seen);
    if (answer === "hang") return; // Never answers: the client's deadline ends it.
    res.writeHead(answer.status, { "content-type": "application/json" });
    res.end(JSON.stringify(answer.body ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  stub.url = `http://127.0.0.1:${port}${basePath}`;
  stub.api = () => stub.seen.filter((s) => !s.url.endsWith("/readyz"));
  stub.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  closers.push(stub.close);
  return stub;
}

/** A loopback URL nothing listens on (a port just released). */
async function deadUrl(): Promise<string> {
  const stub = await startStub();
  await stub.close();
  return stub.url;
}

describe("failover between two URLs of one registry", () => {
  // Two front doors (proxies, as a load balancer per replica would be) of one reference registry: closing the
  // first is a replica gone, and what the second serves is the same database.
  it("goes on at the second when the first stops: heartbeat, registration and relay, one token", async () => {
    const registry = await startRegistryServer({ port: 0, db: ":memory:", sweepIntervalMs: 0 });
    closers.push(() => registry.close());
    const first = await startCountingProxy(registry.url);
    const second = await startCountingProxy(registry.url);
    closers.push(second.close);
    const switches: RegistrySwitch[] = [];
    const client = createRegistryClient({
      baseUrl: [first.url, second.url],
      timeoutMs: 5_000,
      onSwitch: (change) => switches.push(change),
    });
    const bob = createRegistryClient({ baseUrl: second.url, timeoutMs: 5_000 });

    const { record, agentToken } = await client.register(ALICE);
    await client.heartbeat(record.id, agentToken);
    expect(client.endpoints()).toEqual({ url: first.url, index: 0, configured: 2, lastFailover: null });
    expect([first.take().length, second.take().length]).toEqual([2, 0]);

    await first.close();
    const beat = await client.heartbeat(record.id, agentToken);
    expect(beat.lastSeen).toEqual(expect.any(String));
    const status = client.endpoints();
    expect(status).toMatchObject({ url: second.url, index: 1, configured: 2 });
    expect(status.lastFailover).toMatchObject({ from: first.url, to: second.url });
    expect(status.lastFailover?.reason).toBe(`${first.url}: unreachable`);
    expect(Date.parse(status.lastFailover?.at ?? "")).not.toBeNaN();
    expect(client.url).toBe(second.url);
    expect(switches.map((s) => [s.kind, s.from, s.to])).toEqual([["failover", first.url, second.url]]);

    // The same token re-registers there (one database): same record, same token.
    const again = await client.register(ALICE, { token: agentToken });
    expect(again.record.id).toBe(record.id);
    expect(again.agentToken).toBe(agentToken);

    // A message sent to alice reaches her long-poll, which goes to the second URL too.
    const sender = await bob.register({ ...ALICE, hostname: "bob", installationId: "inst-bob" });
    const polling = client.readInbox({ installationId: "inst-alice", wait: 5 }, { token: agentToken });
    await bob.sendMessage(
      {
        fromInstallationId: "inst-bob",
        fromHostname: "bob",
        toHostname: "alice",
        body: "after the failover",
        messageId: "m-1",
      },
      { token: sender.agentToken },
    );
    const inbox = await polling;
    expect(inbox.messages.map((m) => [m.messageId, m.body])).toEqual([["m-1", "after the failover"]]);
    expect(switches).toHaveLength(1);
    expect(second.requests.filter((r) => r.includes("/messages/inbox/inst-alice"))).toHaveLength(1);
  });
});

describe("which answers move requests to the next URL", () => {
  it("a 503 does, and the URL that answered stays in use for the next requests", async () => {
    const a = await startStub();
    const b = await startStub();
    a.answer = () => ({ status: 503, body: { detail: "draining" } });
    b.answer = () => ({ status: 200, body: RECORD });
    const client = createRegistryClient({ baseUrl: [a.url, b.url], timeoutMs: 2_000 });
    expect((await client.get("a1"))?.hostname).toBe("alice");
    expect(client.endpoints()).toMatchObject({ url: b.url, index: 1 });
    expect(client.endpoints().lastFailover?.reason).toBe(`${a.url}: 503`);
    await client.get("a1");
    await client.get("a1");
    expect(a.api()).toHaveLength(1);
    expect(b.api()).toHaveLength(3);
  });

  it("a 4xx does not: it is the registry's answer (and the URL stays)", async () => {
    const a = await startStub();
    const b = await startStub();
    a.answer = () => ({ status: 404, body: { detail: "agent a1 not found" } });
    const client = createRegistryClient({ baseUrl: [a.url, b.url], timeoutMs: 2_000 });
    expect(await client.get("a1")).toBeNull();
    a.answer = () => ({ status: 429, body: { detail: "slow down" } });
    expect((await caught(client.heartbeat("a1", "t"))).kind).toBe("rate_limited");
    expect(b.seen).toHaveLength(0);
    expect(client.endpoints()).toMatchObject({ url: a.url, index: 0, lastFailover: null });
  });

  it("a URL that does not answer in time does, for a request that is safe to repeat", async () => {
    const a = await startStub();
    const b = await startStub();
    a.answer = () => "hang";
    b.answer = () => ({ status: 200, body: { last_seen: "2026-11-30T08:00:00Z", ttl_seconds: 180 } });
    const client = createRegistryClient({ baseUrl: [a.url, b.url], timeoutMs: 300 });
    expect((await client.heartbeat("a1", "t")).lastSeen).toBe("2026-11-30T08:00:00Z");
    expect(client.endpoints().lastFailover?.reason).toBe(`${a.url}: timeout`);
  });

  it("a request its caller cancels does not, whatever its URL was doing", async () => {
    const a = await startStub();
    const b = await startStub();
    a.answer = () => "hang";
    const client = createRegistryClient({ baseUrl: [a.url, b.url], timeoutMs: 5_000 });
    const err = await caught(client.heartbeat("a1", "t", { signal: AbortSignal.timeout(100) }));
    expect(err.kind).toBe("aborted");
    expect(b.seen).toHaveLength(0);
    expect(client.url).toBe(a.url);
  });

  it("when every URL fails, the error is the last one's and names what failed before it", async () => {
    const a = await deadUrl();
    const b = await startStub();
    b.answer = () => ({ status: 503, body: { detail: "draining" } });
    const client = createRegistryClient({ baseUrl: [a, b.url], timeoutMs: 2_000 });
    const err = await caught(client.heartbeat("a1", "t"));
    expect(err).toMatchObject({ kind: "http", status: 503, operation: "heartbeat" });
    expect(err.message).toContain(`Agent Registry at ${b.url} answered 503`);
    expect(err.message).toContain(`(tried before: ${a}: unreachable)`);
    // Nobody answered: the URL in use stays where it was.
    expect(client.endpoints()).toMatchObject({ url: a, index: 0, lastFailover: null });
  });

  it("refuses a URL with a user name or password, without quoting it", () => {
    try {
      createRegistryClient({ baseUrl: ["http://127.0.0.1:1", "http://user:pa55word@127.0.0.1:2/reg"] });
      expect.unreachable("the client was created");
    } catch (err) {
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as RegistryError).message).toContain(
        "registryUrl http://127.0.0.1:2/reg carries a user name",
      );
      expect((err as RegistryError).message).not.toContain("pa55word");
    }
  });

  it("does not let a request that started before a failover move requests back when it ends", async () => {
    const a = await startStub();
    const b = await startStub();
    let release: () => void = () => {};
    const parked = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The first URL holds a long-poll, then answers it; everything else there fails.
    a.answer = async (seen) => {
      if (!seen.url.includes("/messages/inbox/")) return { status: 503 };
      await parked;
      return { status: 200, body: { messages: [], next_cursor: null } };
    };
    b.answer = () => ({ status: 200, body: { last_seen: null, ttl_seconds: 180 } });
    const client = createRegistryClient({ baseUrl: [a.url, b.url], timeoutMs: 2_000 });
    const polling = client.readInbox({ installationId: "inst-alice", wait: 5 });
    await until(() => a.api().length === 1);
    await client.heartbeat("a1", "t");
    expect(client.url).toBe(b.url);
    release();
    await polling;
    expect(client.url).toBe(b.url);
  });
});

describe("back to the preferred URL", () => {
  it("is probed at /readyz after the retry interval, beside the requests, and used again once it answers", async () => {
    const a = await startStub("/base");
    const b = await startStub();
    a.answer = () => ({ status: 503 });
    b.answer = () => ({ status: 200, body: RECORD });
    let clock = Date.parse("2026-11-30T08:00:00Z");
    const switches: RegistrySwitch[] = [];
    const client = createRegistryClient({
      baseUrl: [a.url, b.url],
      timeoutMs: 2_000,
      preferredRetryMs: 60_000,
      now: () => clock,
      onSwitch: (change) => switches.push(change),
    });
    await client.get("a1");
    expect(client.url).toBe(b.url);

    // Not due yet: no probe.
    clock += 59_000;
    await client.get("a1");
    expect(a.seen.filter((s) => s.url.endsWith("/readyz"))).toHaveLength(0);

    // Due, but still failing: the request went to the second URL, which stays in use.
    clock += 2_000;
    await client.get("a1");
    await until(() => a.seen.some((s) => s.url === "/base/readyz"));
    await new Promise((r) => setTimeout(r, 50));
    expect(client.url).toBe(b.url);

    // Answers again (a registry without /readyz answers 404, which counts): used from the next request on.
    a.answer = (seen) => (seen.url.endsWith("/readyz") ? { status: 404 } : { status: 200, body: RECORD });
    clock += 61_000;
    await client.get("a1");
    expect(b.api()).toHaveLength(4);
    await until(() => client.url === a.url);
    await client.get("a1");
    expect(a.api()).toHaveLength(2);
    expect(switches.map((s) => [s.kind, s.from, s.to])).toEqual([
      ["failover", a.url, b.url],
      ["preferred", b.url, a.url],
    ]);
    // The status keeps the last failover after the return.
    expect(client.endpoints()).toMatchObject({ url: a.url, index: 0, lastFailover: { from: a.url } });
  });

  it("is never probed with a retry interval of 0", async () => {
    const a = await startStub();
    const b = await startStub();
    a.answer = () => ({ status: 503 });
    b.answer = () => ({ status: 200, body: RECORD });
    let clock = 0;
    const client = createRegistryClient({
      baseUrl: [a.url, b.url],
      preferredRetryMs: 0,
      now: () => clock,
    });
    await client.get("a1");
    clock += 24 * 3_600_000;
    await client.get("a1");
    await new Promise((r) => setTimeout(r, 50));
    expect(a.seen.map((s) => s.url)).toEqual(["/api/v1/agents/a1"]);
    expect(client.url).toBe(b.url);
  });
});

describe("requests that must not be repeated", () => {
  const message = {
    fromInstallationId: "inst-alice",
    fromHostname: "alice",
    toHostname: "bob",
    body: "hello",
  };

  it("a relay message without an id is not sent again after a 503 or a timeout", async () => {
    const a = await startStub();
    const b = await startStub();
    b.answer = () => ({ status: 200, body: { ok: true, message_id: "m" } });
    const client = createRegistryClient({ baseUrl: [a.url, b.url], timeoutMs: 300 });
    a.answer = () => ({ status: 503 });
    expect((await caught(client.sendMessage(message))).status).toBe(503);
    a.answer = () => "hang";
    expect((await caught(client.sendMessage(message))).kind).toBe("timeout");
    expect(b.seen).toHaveLength(0);
    expect(client.url).toBe(a.url);
  });

  it("a relay message without an id goes to the next URL when the first refused the connection", async () => {
    const b = await startStub();
    b.answer = () => ({ status: 200, body: { ok: true, message_id: "m-server" } });
    const client = createRegistryClient({ baseUrl: [await deadUrl(), b.url], timeoutMs: 2_000 });
    expect(await client.sendMessage(message)).toEqual({ messageId: "m-server" });
    expect(b.seen).toHaveLength(1);
  });

  it("a relay message with its id is sent again at the next URL (the registry stores one per id)", async () => {
    const a = await startStub();
    const b = await startStub();
    a.answer = () => "hang";
    b.answer = () => ({ status: 200, body: { ok: true, message_id: "m-7" } });
    const client = createRegistryClient({ baseUrl: [a.url, b.url], timeoutMs: 300 });
    expect(await client.sendMessage({ ...message, messageId: "m-7" })).toEqual({ messageId: "m-7" });
    expect(JSON.parse(b.seen[0]!.body)).toMatchObject({ message_id: "m-7" });
  });

  it("a first registration with neither token nor key is not repeated after a 503", async () => {
    const a = await startStub();
    const b = await startStub();
    a.answer = () => ({ status: 503 });
    const client = createRegistryClient({ baseUrl: [a.url, b.url], timeoutMs: 2_000 });
    expect((await caught(client.register(ALICE))).status).toBe(503);
    expect(b.seen).toHaveLength(0);
  });

  it("a registration signed by the key is repeated, with a proof over the next URL's own base path", async () => {
    const a = await startStub("/a-base");
    const b = await startStub("/b-base");
    const identity = generateIdentity();
    a.answer = () => ({ status: 502 });
    b.answer = () => ({ status: 201, body: { ...RECORD, agent_token: "tok" } });
    const client = createRegistryClient({ baseUrl: [a.url, b.url], timeoutMs: 2_000, identity });
    expect((await client.register(ALICE)).agentToken).toBe("tok");
    const [atA] = a.api();
    const [atB] = b.api();
    expect(atA?.url).toBe("/a-base/api/v1/agents/");
    expect(atB?.url).toBe("/b-base/api/v1/agents/");
    expect(atB?.proof).not.toBe(atA?.proof);
    for (const seen of [atA!, atB!]) {
      const target = { method: "POST", path: seen.url, body: seen.body };
      const check = await verifyRequestProof(seen.proof!, identity.publicKey, target, {
        nonceSeen: () => false,
      });
      expect(check.ok, seen.url).toBe(true);
    }
  });
});

async function until(probe: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}
