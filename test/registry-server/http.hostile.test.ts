// Hostile and broken clients against the real registry server on 127.0.0.1: deep JSON, uploads cut short,
// cross-site simple requests, control characters, connection floods, slow clients and long-poll piles.
// Every case is bounded (a few dozen sockets, short timeouts) and ends by proving the server still serves.
import { connect, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { CliUsageError, parseServeArgs } from "../../src/registry-server/cli.js";
import type { RegistryLogger } from "../../src/registry-server/index.js";
import { type AgentWithToken, startTestRegistry, type TestRegistry } from "./helpers.js";

interface CapturedLog {
  logger: RegistryLogger;
  errors: string[];
  debug: string[];
}

function captureLog(): CapturedLog {
  const errors: string[] = [];
  const debug: string[] = [];
  return {
    errors,
    debug,
    logger: {
      info: () => {},
      error: (message, error) => errors.push(`${message} ${String(error)}`),
      debug: (message) => debug.push(message),
    },
  };
}

async function until(check: () => boolean, what: string, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sockets: Socket[] = [];

/** A raw TCP connection to the server; destroyed by the test that made it (or at the end of the file). */
async function rawSocket(url: string): Promise<Socket> {
  const { port } = new URL(url);
  const socket = connect(Number(port), "127.0.0.1");
  sockets.push(socket);
  socket.on("error", () => {
    // Why safe: these tests provoke resets; what matters is what the server does, asserted separately.
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return socket;
}

/** Everything the server writes until it closes the connection (bounded by `ms`). */
function readUntilClosed(socket: Socket, ms = 3_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`connection still open after ${ms} ms: ${text}`)), ms);
    socket.on("data", (chunk) => {
      text += chunk.toString("utf8");
    });
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

async function stillServes(r: TestRegistry): Promise<void> {
  const res = await r.call("GET", "/healthz");
  expect(res.status).toBe(200);
}

function nested(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

describe("deeply nested JSON", () => {
  it("refuses a relay body nested 100,000 deep with 400, logs no error and keeps serving", async () => {
    const log = captureLog();
    const r = await startTestRegistry({ logger: log.logger });
    const alice = await r.register({ hostname: "alice", installation_id: "inst-a" });
    const raw = `{"from_installation_id":"inst-a","from_hostname":"alice","to_hostname":"alice","body":{"x":${nested(100_000)}}}`;
    const res = await r.call("POST", "/api/v1/agents/messages/send", { raw, token: alice.agent_token });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toMatch(/more than 64 levels deep/);
    expect(log.errors).toEqual([]);
    await stillServes(r);
  });

  it("refuses deep nesting on registration within the 64 KiB cap, and strings full of brackets are fine", async () => {
    const log = captureLog();
    const r = await startTestRegistry({ logger: log.logger });
    const deep = await r.call("POST", "/api/v1/agents/", {
      raw: `{"hostname":"deep","capabilities":${nested(30_000)}}`,
    });
    expect(deep.status).toBe(400);
    const brackets = await r.call("POST", "/api/v1/agents/", {
      body: { hostname: "brackets", description: `${"[{".repeat(500)} \\" ]` },
    });
    expect(brackets.status).toBe(201);
    expect(log.errors).toEqual([]);
  });
});

describe("a client that leaves mid-upload", () => {
  it("is dropped and logged at debug level, not as an error, and the server keeps serving", async () => {
    const log = captureLog();
    const r = await startTestRegistry({ logger: log.logger });
    for (let i = 0; i < 3; i++) {
      const socket = await rawSocket(r.url);
      socket.write(
        "POST /api/v1/agents/ HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n",
      );
      socket.write('{"hostname":"half');
      await until(() => r.server.stats().connections >= 1, "the upload to start");
      socket.destroy();
      await until(() => r.server.stats().connections === 0, "the server to drop the connection");
    }
    await until(() => log.debug.length >= 3, "three debug lines");
    expect(log.debug.join("\n")).toMatch(/closed the connection before sending the whole request/);
    expect(log.errors).toEqual([]);
    await stillServes(r);
  });
});

describe("content type", () => {
  it.each([
    ["text/plain", "text/plain;charset=UTF-8"],
    ["a form", "application/x-www-form-urlencoded"],
    ["multipart", "multipart/form-data; boundary=x"],
    ["a non-UTF-8 JSON", "application/json; charset=latin1"],
  ])("refuses %s body with 415 saying what to send", async (_name, type) => {
    const r = await startTestRegistry();
    const res = await r.call("POST", "/api/v1/agents/", {
      raw: JSON.stringify({ hostname: "csrf" }),
      headers: { "content-type": type },
    });
    expect(res.status).toBe(415);
    expect(JSON.stringify(res.body)).toMatch(/Content-Type: application\/json/);
    const list = await r.call<{ agents: unknown[] }>("GET", "/api/v1/agents/");
    expect(list.body.agents).toEqual([]);
  });

  it("refuses a body sent with no Content-Type at all (what a page sends with a Blob)", async () => {
    const r = await startTestRegistry();
    const res = await fetch(`${r.url}/api/v1/agents/`, {
      method: "POST",
      body: new Blob([JSON.stringify({ hostname: "blob" })]),
    });
    expect(res.status).toBe(415);
    await res.text();
  });

  it("accepts application/json with a UTF-8 charset, and bodiless calls need no Content-Type", async () => {
    const r = await startTestRegistry();
    const res = await r.call<AgentWithToken>("POST", "/api/v1/agents/", {
      body: { hostname: "fine" },
      headers: { "content-type": "Application/JSON; charset=utf-8" },
    });
    expect(res.status).toBe(201);
    const hb = await fetch(`${r.url}/api/v1/agents/${res.body.id}/heartbeat`, {
      method: "POST",
      headers: { authorization: `Bearer ${res.body.agent_token}` },
    });
    expect(hb.status).toBe(200);
    await hb.text();
  });
});

describe("control characters in what people and prompts read", () => {
  it.each([
    ["display_name", { display_name: "Alice\u001b[2J" }, ["body", "display_name"]],
    ["display_name (BEL)", { display_name: "ding\u0007" }, ["body", "display_name"]],
    ["display_name (C1 CSI)", { display_name: "x\u009b31m" }, ["body", "display_name"]],
    ["description (ESC)", { description: "hi\u001b]0;owned\u0007" }, ["body", "description"]],
    ["description (CR)", { description: "safe\rrm -rf" }, ["body", "description"]],
    ["a capability", { capabilities: ["ok", "bad\u001b"] }, ["body", "capabilities", 1]],
  ])("refuses %s with 422 naming the field", async (_name, fields, loc) => {
    const r = await startTestRegistry();
    const res = await r.call<{ detail: { loc: unknown[]; msg: string }[] }>("POST", "/api/v1/agents/", {
      body: { hostname: "ctl", ...fields },
    });
    expect(res.status).toBe(422);
    expect(res.body.detail[0]?.loc).toEqual(loc);
    expect(res.body.detail[0]?.msg).toMatch(/control characters/);
  });

  it.each([
    ["introduction", { introduction: "hi\u001b[8mhidden" }],
    ["assistant_name", { assistant_name: "Bob\u0007" }],
    ["human_name", { human_name: "\u009b2J" }],
  ])("refuses control characters in a trust request's %s", async (field, fields) => {
    const r = await startTestRegistry();
    const res = await r.call<{ detail: { loc: unknown[] }[] }>("POST", "/api/v1/trust/request", {
      body: { from_id: "inst-a", to_id: "inst-b", ...fields },
    });
    expect(res.status).toBe(422);
    expect(res.body.detail[0]?.loc).toEqual(["body", field]);
  });

  it("keeps newline and tab in a description, and refuses control characters in PATCH too", async () => {
    const r = await startTestRegistry();
    const a = await r.register({ hostname: "prose", description: "Line one\n\tindented line two" });
    expect(a.description).toBe("Line one\n\tindented line two");
    const windows = await r.register({ hostname: "crlf", description: "Line one\r\nline two" });
    expect(windows.description).toBe("Line one\r\nline two");
    const patch = await r.call("PATCH", `/api/v1/agents/${a.id}`, {
      body: { display_name: "\u001b[31mred" },
      token: a.agent_token,
    });
    expect(patch.status).toBe(422);
  });
});

describe("connection cap", () => {
  it("answers connections over the cap with 503 and Retry-After, holding no more sockets than the cap", async () => {
    const log = captureLog();
    const r = await startTestRegistry({ logger: log.logger, maxConnections: 20 });
    const idle: Socket[] = [];
    for (let i = 0; i < 20; i++) idle.push(await rawSocket(r.url));
    await until(() => r.server.stats().connections === 20, "20 connections");
    for (let i = 0; i < 5; i++) {
      const extra = await rawSocket(r.url);
      const answer = readUntilClosed(extra);
      extra.write("GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
      const text = await answer;
      expect(text).toMatch(/^HTTP\/1\.1 503 /);
      expect(text).toMatch(/retry-after: 5/i);
      expect(text).toMatch(/maximum of 20 open connections/);
    }
    expect(r.server.stats().connections).toBe(20);
    expect(log.errors).toEqual([]);
    for (const s of idle) s.destroy();
    await until(() => r.server.stats().connections === 0, "the idle sockets to close");
    await stillServes(r);
  });

  it("stops at once even with connections that never sent a request", async () => {
    const r = await startTestRegistry();
    for (let i = 0; i < 5; i++) await rawSocket(r.url);
    await until(() => r.server.stats().connections === 5, "5 connections");
    const started = Date.now();
    await r.server.close();
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("closes a client too slow to send its headers with 408", async () => {
    const r = await startTestRegistry({ headersTimeoutMs: 300, requestTimeoutMs: 600 });
    const slow = await rawSocket(r.url);
    const answer = readUntilClosed(slow, 3_000);
    slow.write("GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    const started = Date.now();
    expect(await answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - started).toBeLessThan(2_500);
    await stillServes(r);
  });

  it("closes a client too slow to send its body with 408", async () => {
    const r = await startTestRegistry({ headersTimeoutMs: 300, requestTimeoutMs: 600 });
    const slow = await rawSocket(r.url);
    const answer = readUntilClosed(slow, 3_000);
    slow.write(
      "POST /api/v1/agents/ HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    );
    const text = await answer;
    // node:http answers 408 when the timer fires during the body, or just closes; either way it is gone.
    expect(text === "" || /^HTTP\/1\.1 408 /.test(text)).toBe(true);
    await stillServes(r);
  });
});

describe("long-poll caps", () => {
  function longPoll(r: TestRegistry, who: AgentWithToken, signal: AbortSignal, wait = 5) {
    return fetch(`${r.url}/api/v1/agents/messages/inbox/${who.installation_id}?wait=${wait}`, {
      headers: { authorization: `Bearer ${who.agent_token}` },
      signal,
    });
  }

  it("refuses a long-poll over the per-inbox cap with 429 and over the total with 503, both with Retry-After", async () => {
    const log = captureLog();
    const r = await startTestRegistry({ logger: log.logger, maxLongPollsPerInbox: 2, maxLongPolls: 3 });
    const alice = await r.register({ hostname: "alice", installation_id: "inst-a" });
    const bob = await r.register({ hostname: "bob", installation_id: "inst-b" });
    const controller = new AbortController();
    const parked = [longPoll(r, alice, controller.signal), longPoll(r, alice, controller.signal)];
    for (const p of parked) p.catch(() => {});
    await until(() => r.server.stats().longPolls === 2, "two parked long-polls");

    const third = await longPoll(r, alice, AbortSignal.timeout(3_000));
    expect(third.status).toBe(429);
    expect(third.headers.get("retry-after")).toBe("5");
    expect(((await third.json()) as { detail: string }).detail).toMatch(/already has 2 long-polls/);

    const bobFirst = longPoll(r, bob, controller.signal);
    bobFirst.catch(() => {});
    await until(() => r.server.stats().longPolls === 3, "three parked long-polls");
    const bobSecond = await longPoll(r, bob, AbortSignal.timeout(3_000));
    expect(bobSecond.status).toBe(503);
    expect(bobSecond.headers.get("retry-after")).toBe("5");
    expect(((await bobSecond.json()) as { detail: string }).detail).toMatch(/maximum of 3 long-polls/);

    // A read that finds messages answers at once and takes no slot, even with every slot in use.
    await r.call("POST", "/api/v1/agents/messages/send", {
      body: { from_installation_id: "inst-b", from_hostname: "bob", to_hostname: "alice", body: "hi" },
      token: bob.agent_token,
    });
    await until(() => r.server.stats().longPolls === 1, "alice's long-polls to be answered");
    const withMessage = await longPoll(r, alice, AbortSignal.timeout(3_000));
    expect(withMessage.status).toBe(200);
    await withMessage.text();

    // Clients that leave give their slots back.
    controller.abort();
    await until(() => r.server.stats().longPolls === 0, "the slots to be released");
    expect(log.errors).toEqual([]);
    const again = await longPoll(r, bob, AbortSignal.timeout(3_000), 0.2);
    expect(again.status).toBe(200);
    await again.text();
  }, 15_000);
});

describe("limits on the command line", () => {
  it("defaults and flags map to the server options, and nonsense is a usage error", () => {
    expect(parseServeArgs(["serve"], {})).toMatchObject({
      maxConnections: 1024,
      headersTimeoutMs: 20_000,
      requestTimeoutMs: 60_000,
      maxLongPolls: 1000,
      maxLongPollsPerInbox: 4,
    });
    const set = parseServeArgs(
      [
        "serve",
        "--max-connections",
        "50",
        "--headers-timeout",
        "5",
        "--request-timeout",
        "30",
        "--max-long-polls",
        "10",
        "--max-long-polls-per-inbox",
        "1",
      ],
      {},
    );
    expect(set).toMatchObject({
      maxConnections: 50,
      headersTimeoutMs: 5_000,
      requestTimeoutMs: 30_000,
      maxLongPolls: 10,
      maxLongPollsPerInbox: 1,
    });
    expect(() => parseServeArgs(["serve", "--max-connections", "0"], {})).toThrow(CliUsageError);
    expect(() => parseServeArgs(["serve", "--max-long-polls-per-inbox", "x"], {})).toThrow(CliUsageError);
  });
});

describe("NUL in ids and search words", () => {
  it("matches nothing (404, 422 or an empty page), on either store, never a 500", async () => {
    const r = await startTestRegistry();
    const alice = await r.register({
      hostname: "alice",
      installation_id: "inst-alice",
      capabilities: ["chat"],
    });
    const token = alice.agent_token;
    const expectations: Array<[string, string, unknown?]> = [
      ["GET", "/api/v1/agents/%00"],
      ["GET", "/api/v1/agents/by-hostname/alice%00"],
      ["PATCH", "/api/v1/agents/a%00b", { display_name: "x" }],
      ["POST", "/api/v1/agents/%00/heartbeat"],
      ["DELETE", "/api/v1/agents/%00"],
    ];
    for (const [method, path, body] of expectations) {
      const res = await r.call(method, path, { token, ...(body ? { body } : {}) });
      expect([404, 422], `${method} ${path}`).toContain(res.status);
    }
    for (const query of ["q=al%00", "q=%00", "capabilities=chat%00", "q=alice&capabilities=%00&match=all"]) {
      const res = await r.call<{ agents: unknown[]; total: number }>("GET", `/api/v1/agents/search?${query}`);
      expect(res.status, query).toBe(200);
      expect(res.body.total, query).toBe(0);
    }
    const list = await r.call<{ agents: unknown[] }>("GET", "/api/v1/agents/?installation_id=inst-alice%00");
    expect([list.status, list.body.agents]).toEqual([200, []]);
    const inbox = await r.call("GET", "/api/v1/agents/messages/inbox/inst-alice%00", { token });
    expect([401, 403, 404]).toContain(inbox.status);
    expect((await r.call("GET", "/api/v1/agents/search?q=alice")).body.total).toBe(1);
  });
});
