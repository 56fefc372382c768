// The Convex visibility source against a real HTTP server on 127.0.0.1 that speaks Convex's `/api/query`.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createConvexSource } from "../../../src/adapters/visibility/convex.js";
import { VisibilityError } from "../../../src/adapters/visibility/types.js";
import { caught as caughtAs } from "../../support/caught.js";

interface Seen {
  method: string;
  path: string;
  body: unknown;
}

type Reply = { status: number; body: string; contentType?: string; delayMs?: number };

let server: Server;
let url: string;
let seen: Seen[];
let reply: Reply;
const timers = new Set<NodeJS.Timeout>();

function json(status: number, value: unknown): Reply {
  return { status, body: JSON.stringify(value) };
}

beforeEach(async () => {
  seen = [];
  reply = json(200, { status: "success", value: null });
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      seen.push({ method: req.method ?? "", path: req.url ?? "", body: text ? JSON.parse(text) : undefined });
      const { status, body, contentType, delayMs } = reply;
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(status, { "content-type": contentType ?? "application/json" });
        res.end(body);
      };
      if (delayMs) {
        const t = setTimeout(() => {
          timers.delete(t);
          send();
        }, delayMs);
        timers.add(t);
      } else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  for (const t of timers) clearTimeout(t);
  timers.clear();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const caught = (promise: Promise<unknown>) => caughtAs(promise, VisibilityError);

describe("convex visibility source", () => {
  it("queries installations:get with the installation id and reads networkDiscoverable and metadata", async () => {
    reply = json(200, {
      status: "success",
      value: {
        _id: "inst-1",
        metadata: {
          networkDiscoverable: true,
          displayName: "Alice",
          description: "Books meetings",
          capabilities: ["calendar"],
          somethingElse: 1,
        },
      },
      logLines: [],
    });
    const source = createConvexSource({ convexUrl: `${url}/`, installationId: "inst-1" });
    await expect(source.read()).resolves.toEqual({
      discoverable: true,
      displayName: "Alice",
      description: "Books meetings",
      capabilities: ["calendar"],
    });
    expect(seen).toEqual([
      {
        method: "POST",
        path: "/api/query",
        body: { path: "installations:get", args: { id: "inst-1" }, format: "json" },
      },
    ]);
  });

  it("also reads the original plugin's networkDisplayName/networkDescription/networkCapabilities", async () => {
    reply = json(200, {
      status: "success",
      value: {
        metadata: {
          networkDiscoverable: true,
          networkDisplayName: "Bob",
          networkDescription: "Plans trips",
          networkCapabilities: ["travel"],
        },
      },
    });
    const source = createConvexSource({ convexUrl: url, installationId: "inst-2" });
    await expect(source.read()).resolves.toEqual({
      discoverable: true,
      displayName: "Bob",
      description: "Plans trips",
      capabilities: ["travel"],
    });
  });

  it("reads an unknown installation (value null) as not discoverable", async () => {
    reply = json(200, { status: "success", value: null });
    await expect(createConvexSource({ convexUrl: url, installationId: "x" }).read()).resolves.toEqual({
      discoverable: false,
    });
  });

  it("reads missing metadata or a missing flag as not discoverable (opt-in, as the original plugin)", async () => {
    const source = createConvexSource({ convexUrl: url, installationId: "x" });
    reply = json(200, { status: "success", value: { name: "no metadata" } });
    await expect(source.read()).resolves.toEqual({ discoverable: false });
    reply = json(200, { status: "success", value: { metadata: { displayName: "Quiet" } } });
    await expect(source.read()).resolves.toEqual({ discoverable: false, displayName: "Quiet" });
    reply = json(200, { status: "success", value: { metadata: { networkDiscoverable: false } } });
    await expect(source.read()).resolves.toEqual({ discoverable: false });
  });

  it("raises query_failed with Convex's message when the query errors", async () => {
    reply = json(400, {
      status: "error",
      errorMessage: "Could not find public function for 'installations:get'",
    });
    const err = await caught(createConvexSource({ convexUrl: url, installationId: "x" }).read());
    expect(err.kind).toBe("query_failed");
    expect(err.message).toContain("Could not find public function");
  });

  it("raises http for an HTML error page", async () => {
    reply = { status: 502, body: "<html><body>Bad Gateway</body></html>", contentType: "text/html" };
    const err = await caught(createConvexSource({ convexUrl: url, installationId: "x" }).read());
    expect(err.kind).toBe("http");
    expect(err.status).toBe(502);
    expect(err.message).not.toContain("<html>");
  });

  it("raises bad_response for an answer of the wrong shape", async () => {
    reply = json(200, { status: "success", value: { metadata: { networkDiscoverable: "yes" } } });
    const err = await caught(createConvexSource({ convexUrl: url, installationId: "x" }).read());
    expect(err.kind).toBe("bad_response");
  });

  it("does not follow a redirect", async () => {
    reply = { status: 308, body: "" };
    const err = await caught(createConvexSource({ convexUrl: url, installationId: "x" }).read());
    expect(err.kind).toBe("http");
    expect(err.status).toBe(308);
    expect(err.message).toMatch(/convexUrl/);
  });

  it("times out a slow deployment", async () => {
    reply = { ...json(200, { status: "success", value: null }), delayMs: 3_000 };
    const err = await caught(
      createConvexSource({ convexUrl: url, installationId: "x", timeoutMs: 150 }).read(),
    );
    expect(err.kind).toBe("timeout");
  });

  it("reports an unreachable deployment", async () => {
    // A port that was just free: start a server, note its port, close it.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const source = createConvexSource({ convexUrl: `http://127.0.0.1:${port}`, installationId: "x" });
    const err = await caught(source.read());
    expect(err.kind).toBe("unreachable");
    expect(err.message).toMatch(/convexUrl/);
  });

  it("sends the gateway token in args and never repeats it in an error", async () => {
    reply = json(400, {
      status: "error",
      errorMessage:
        'ArgumentValidationError: Value does not match validator. Path: .gatewayToken Value: "gw-secret-123"',
    });
    const source = createConvexSource({
      convexUrl: url,
      installationId: "inst-1",
      gatewayToken: "gw-secret-123",
    });
    const err = await caught(source.read());
    expect(seen[0]?.body).toEqual({
      path: "installations:get",
      args: { id: "inst-1", gatewayToken: "gw-secret-123" },
      format: "json",
    });
    expect(err.kind).toBe("query_failed");
    expect(err.message).toContain("ArgumentValidationError");
    expect(err.message).not.toContain("gw-secret-123");
  });

  describe("metadata schedule (networkScheduleEnabled)", () => {
    const metadata = (extra: Record<string, unknown>) =>
      json(200, { status: "success", value: { metadata: { networkDiscoverable: true, ...extra } } });
    const berlinWeekdays = {
      networkScheduleEnabled: true,
      networkScheduleTimezone: "Europe/Berlin",
      networkSchedule: {
        monday: { start: "09:00", end: "17:00" },
        Tuesday: { start: "09:00", end: "17:00" },
        wed: null,
      },
    };

    it("is discoverable inside a window and says when that ends", async () => {
      reply = metadata(berlinWeekdays);
      const source = createConvexSource({
        convexUrl: url,
        installationId: "x",
        now: () => new Date("2026-01-12T09:00:00Z"), // Mon 10:00 CET
      });
      await expect(source.read()).resolves.toEqual({
        discoverable: true,
        nextChangeAt: "2026-01-12T16:00:00.000Z",
      });
    });

    it("is private outside the windows even though networkDiscoverable is true", async () => {
      reply = metadata(berlinWeekdays);
      const source = createConvexSource({
        convexUrl: url,
        installationId: "x",
        now: () => new Date("2026-01-14T09:00:00Z"), // Wed: null = not that day
      });
      await expect(source.read()).resolves.toEqual({
        discoverable: false,
        nextChangeAt: "2026-01-19T08:00:00.000Z", // Mon 09:00 CET
      });
    });

    it("ignores the schedule when it is not enabled, and never makes a private agent discoverable", async () => {
      const monday = () => new Date("2026-01-12T09:00:00Z");
      reply = metadata({ ...berlinWeekdays, networkScheduleEnabled: false });
      const source = createConvexSource({
        convexUrl: url,
        installationId: "x",
        now: () => new Date("2026-01-14T09:00:00Z"),
      });
      await expect(source.read()).resolves.toEqual({ discoverable: true });
      reply = json(200, {
        status: "success",
        value: { metadata: { networkDiscoverable: false, ...berlinWeekdays } },
      });
      await expect(
        createConvexSource({ convexUrl: url, installationId: "x", now: monday }).read(),
      ).resolves.toEqual({
        discoverable: false,
      });
    });

    it("reports an invalid schedule as bad_response instead of guessing", async () => {
      reply = metadata({ ...berlinWeekdays, networkSchedule: { funday: { start: "09:00", end: "10:00" } } });
      const err = await caught(createConvexSource({ convexUrl: url, installationId: "x" }).read());
      expect(err.kind).toBe("bad_response");
      expect(err.message).toContain("funday");
      reply = metadata({ ...berlinWeekdays, networkScheduleTimezone: "Nowhere/Land" });
      expect((await caught(createConvexSource({ convexUrl: url, installationId: "x" }).read())).kind).toBe(
        "bad_response",
      );
    });
  });

  it("uses an injected fetch", async () => {
    const calls: string[] = [];
    const source = createConvexSource({
      convexUrl: "https://example.convex.cloud",
      installationId: "x",
      fetch: async (input) => {
        calls.push(input);
        return new Response(
          JSON.stringify({ status: "success", value: { metadata: { networkDiscoverable: true } } }),
        );
      },
    });
    await expect(source.read()).resolves.toEqual({ discoverable: true });
    expect(calls).toEqual(["https://example.convex.cloud/api/query"]);
  });
});
