// Structured logs: JSON lines and text lines, levels, and redaction, both of the logger alone and of a real
// server's access and error logs while clients send tokens, keys and proofs.
import { describe, expect, it } from "vitest";
import { createLogger, type LogFormat, redactText } from "../../src/registry-server/logger.js";
import { SqliteRegistryStore } from "../../src/registry-server/sqlite-store.js";
import { startTestRegistry } from "./helpers.js";

const AT = Date.parse("2026-11-30T08:00:00.000Z");

function capture(format: LogFormat, level: "debug" | "info" | "warn" | "error" = "debug") {
  const lines: string[] = [];
  const logger = createLogger({ format, level, now: () => AT, write: (line) => lines.push(line) });
  return { logger, lines };
}

describe("log lines", () => {
  it("writes one JSON object a line with time, level, msg and the fields", () => {
    const { logger, lines } = capture("json");
    logger.info("request", { method: "GET", route: "/api/v1/agents/:id", status: 200, duration_ms: 1.5 });
    logger.warn("multi\nline");
    expect(lines.every((l) => l.endsWith("\n") && l.indexOf("\n") === l.length - 1)).toBe(true);
    expect(JSON.parse(lines[0]!)).toEqual({
      time: "2026-11-30T08:00:00.000Z",
      level: "info",
      msg: "request",
      method: "GET",
      route: "/api/v1/agents/:id",
      status: 200,
      duration_ms: 1.5,
    });
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: "warn", msg: "multi\nline" });
  });

  it("puts an error's name, message and stack in fields of the same line", () => {
    const { logger, lines } = capture("json");
    logger.error("internal error in heartbeat", new TypeError("boom"), { route: "/x" });
    const record = JSON.parse(lines[0]!);
    expect(record).toMatchObject({
      level: "error",
      msg: "internal error in heartbeat",
      error: "TypeError: boom",
    });
    expect(record.stack).toMatch(/logger\.test\.ts/);
  });

  it("does not let a field overwrite time, level or msg", () => {
    const { logger, lines } = capture("json");
    logger.info("real", { msg: "forged", level: "error", time: "never" });
    expect(JSON.parse(lines[0]!)).toEqual({ time: "2026-11-30T08:00:00.000Z", level: "info", msg: "real" });
  });

  it("writes text lines for people: time, level, message, then name=value", () => {
    const { logger, lines } = capture("text");
    logger.info("listening", { url: "http://127.0.0.1:8001", note: "two words" });
    expect(lines[0]).toBe(
      '2026-11-30T08:00:00.000Z INFO  listening url=http://127.0.0.1:8001 note="two words"\n',
    );
  });

  it("escapes control characters in text lines, so input cannot forge a line or drive a terminal", () => {
    const { logger, lines } = capture("text");
    logger.warn("evil\r\u001b[31mred\nINFO forged", { value: "a\u001b[2Jb" });
    logger.error("x", new Error("bad\u001b]0;title\u0007"));
    const all = lines.join("");
    for (const control of ["\u001b", "\u0007", "\r"]) expect(all).not.toContain(control);
    expect(lines[0]).toBe(
      '2026-11-30T08:00:00.000Z WARN  evil\\u000d\\u001b[31mred\\nINFO forged value="a\\u001b[2Jb"\n',
    );
  });

  it("drops records below the level", () => {
    const { logger, lines } = capture("json", "warn");
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(["w", "e"]);
  });
});

describe("redaction", () => {
  it("masks values of fields named like secrets, whatever they hold", () => {
    const { logger, lines } = capture("json");
    logger.info("x", {
      agent_token: "art_abc",
      api_key: "k1",
      authorization: "Bearer zzz",
      proof: "p1",
      installation_id: "inst-1",
      password: "pw",
      DATABASE_URL: "postgres://u:pw@h/db",
      route: "/api/v1/agents/:id",
    });
    const record = JSON.parse(lines[0]!);
    for (const name of [
      "agent_token",
      "api_key",
      "authorization",
      "proof",
      "installation_id",
      "password",
      "DATABASE_URL",
    ]) {
      expect(record[name]).toBe("[redacted]");
    }
    expect(record.route).toBe("/api/v1/agents/:id");
  });

  it.each([
    ["postgres://registry:hunter2@db:5432/registry", "postgres://registry:[redacted]@db:5432/registry"],
    [
      "postgresql://registry:p%40ss@db/registry?sslmode=require",
      "postgresql://registry:[redacted]@db/registry?sslmode=require",
    ],
    ["host=db user=registry password=hunter2 dbname=x", "host=db user=registry password=[redacted] dbname=x"],
    ["authorization: Bearer art_0123456789abcdef", "authorization: [redacted]"],
    ["sent Bearer art_0123456789abcdef along", "sent Bearer [redacted] along"],
    ["x-registry-key: deploy-secret", "x-registry-key: [redacted]"],
    ["GET /metrics?token=abc&x=1", "GET /metrics?token=[redacted]&x=1"],
    ["postgres://db.internal:5432/registry", "postgres://db.internal:5432/registry"],
    ["agent_token=art_x1 next", "agent_token=[redacted] next"],
    ['{"agent_token":"art_x1","id":"a1"}', '{"agent_token":[redacted],"id":"a1"}'],
    ["no secrets here: route=/api/v1/agents/:id", "no secrets here: route=/api/v1/agents/:id"],
  ])("masks credentials in free text: %s", (input, expected) => {
    expect(redactText(input)).toBe(expected);
  });

  it("masks credentials in messages, text fields and error messages and stacks", () => {
    const { logger, lines } = capture("json");
    const error = new Error("connect ECONNREFUSED for postgres://registry:hunter2@db:5432/registry");
    logger.error("cannot start with db postgres://registry:hunter2@db/registry", error, {
      db: "postgres://registry:hunter2@db/registry",
    });
    expect(lines.join("")).not.toContain("hunter2");
    expect(JSON.parse(lines[0]!).db).toBe("postgres://registry:[redacted]@db/registry");
    const text = capture("text");
    text.logger.error("failed", error);
    expect(text.lines.join("")).not.toContain("hunter2");
  });
});

describe("a server's logs", () => {
  it("never carry a token, key, proof or installation id, with access logs on", async () => {
    const { logger, lines } = capture("json");
    const r = await startTestRegistry({
      logger,
      accessLog: true,
      apiKey: "deploy-key-secret",
      adminKey: "admin-key-secret",
      defaultHeaders: { "x-registry-key": "deploy-key-secret" },
    });
    const alice = await r.register({ hostname: "alice", installation_id: "inst-alice-secret" });
    await r.call("POST", `/api/v1/agents/${alice.id}/heartbeat`, { token: alice.agent_token });
    await r.call("GET", "/api/v1/agents/messages/inbox/inst-alice-secret", { token: alice.agent_token });
    await r.call("POST", `/api/v1/agents/${alice.id}/heartbeat`, { token: "art_wrong-token-secret" });
    await r.call("POST", "/api/v1/admin/release", {
      body: { hostname: "alice" },
      headers: { "x-registry-admin-key": "wrong-admin-secret" },
    });
    await r.call("GET", "/api/v1/agents/", { headers: { "x-registry-key": "wrong-deploy-secret" } });
    await r.call("PATCH", `/api/v1/agents/${alice.id}`, {
      body: { description: "x" },
      token: alice.agent_token,
      headers: { "x-agent-proof": "proof-secret-value" },
    });
    await r.server.close();
    const records = lines.map((l) => JSON.parse(l));
    const access = records.filter((l) => l.msg === "request");
    expect(access.length).toBeGreaterThanOrEqual(7);
    expect(access).toContainEqual(
      expect.objectContaining({
        level: "info",
        method: "GET",
        route: "/api/v1/agents/messages/inbox/:installation_id",
        status: 200,
      }),
    );
    expect(access.every((l) => typeof l.duration_ms === "number")).toBe(true);
    const all = lines.join("");
    for (const secret of [
      alice.agent_token,
      "inst-alice-secret",
      "deploy-key-secret",
      "admin-key-secret",
      "wrong-token-secret",
      "wrong-admin-secret",
      "wrong-deploy-secret",
      "proof-secret-value",
    ]) {
      expect(all).not.toContain(secret);
    }
  });

  it("logs a failing readiness check without the password in its error", async () => {
    const { logger, lines } = capture("json");
    class Broken extends SqliteRegistryStore {
      override ready(): void {
        throw new Error("password authentication failed for postgres://registry:hunter2@db/registry");
      }
    }
    const r = await startTestRegistry({ logger, store: new Broken({ path: ":memory:" }) });
    expect((await fetch(`${r.url}/readyz`)).status).toBe(503);
    const all = lines.join("");
    expect(all).toContain("readiness check failed");
    expect(all).not.toContain("hunter2");
  });
});
