// Input validation and error statuses: FastAPI-style 422 naming the field, 400 on malformed JSON, 413 on
// oversized bodies, 404 unknown routes, 405 wrong methods; never a 500 for a client mistake.
import { describe, expect, it } from "vitest";
import { startTestRegistry } from "./helpers.js";

type Detail = { detail: Array<{ loc: Array<string | number>; msg: string; type: string }> };

describe("validation", () => {
  it("answers 422 naming the field for a bad hostname", async () => {
    const r = await startTestRegistry();
    for (const hostname of ["Alpha", "-alpha", "alpha-", "a".repeat(64), "al pha", "", "al_pha"]) {
      const res = await r.call<Detail>("POST", "/api/v1/agents/", { body: { hostname } });
      expect(res.status, hostname).toBe(422);
      expect(res.body.detail[0]!.loc, hostname).toEqual(["body", "hostname"]);
    }
  });

  it("answers 422 with type 'missing' for a missing hostname and an empty body", async () => {
    const r = await startTestRegistry();
    const res = await r.call<Detail>("POST", "/api/v1/agents/", { body: { installation_id: "x" } });
    expect(res.status).toBe(422);
    expect(res.body.detail).toEqual([{ loc: ["body", "hostname"], msg: "Field required", type: "missing" }]);
    const empty = await r.call<Detail>("POST", "/api/v1/agents/", { raw: "" });
    expect(empty.status).toBe(422);
    expect(empty.body.detail[0]!.loc).toEqual(["body"]);
  });

  it("enforces the record limits (capabilities, display name, description, node id, address)", async () => {
    const r = await startTestRegistry();
    const cases: Array<[Record<string, unknown>, Array<string | number>]> = [
      [{ capabilities: Array.from({ length: 51 }, (_, i) => `c${i}`) }, ["body", "capabilities"]],
      [{ capabilities: ["x".repeat(65)] }, ["body", "capabilities", 0]],
      [{ capabilities: [""] }, ["body", "capabilities", 0]],
      [{ capabilities: "code" }, ["body", "capabilities"]],
      [{ display_name: "x".repeat(201) }, ["body", "display_name"]],
      [{ description: "x".repeat(2001) }, ["body", "description"]],
      [{ pilot_node_id: -1 }, ["body", "pilot_node_id"]],
      [{ pilot_address: "not-an-address" }, ["body", "pilot_address"]],
      [{ installation_id: "a\u0000b" }, ["body", "installation_id"]],
    ];
    for (const [fields, loc] of cases) {
      const res = await r.call<Detail>("POST", "/api/v1/agents/", { body: { hostname: "alpha", ...fields } });
      expect(res.status, JSON.stringify(fields).slice(0, 60)).toBe(422);
      expect(
        res.body.detail.map((d) => d.loc),
        JSON.stringify(fields).slice(0, 60),
      ).toContainEqual(loc);
    }
    const ok = await r.call("POST", "/api/v1/agents/", {
      body: {
        hostname: "alpha",
        pilot_node_id: "65537",
        pilot_address: "0:0000.0001.0001",
        capabilities: Array.from({ length: 50 }, (_, i) => `c${i}`),
        extra_field: "ignored",
      },
    });
    expect(ok.status).toBe(201);
    expect(ok.body.pilot_node_id).toBe(65537);
  });

  it("answers 400 for malformed JSON and 422 for a non-object body", async () => {
    const r = await startTestRegistry();
    const bad = await r.call("POST", "/api/v1/agents/", { raw: '{"hostname": "a",' });
    expect(bad.status).toBe(400);
    expect(String(bad.body.detail)).toMatch(/not valid JSON/);
    expect((await r.call("POST", "/api/v1/agents/", { raw: "[1,2]" })).status).toBe(422);
    expect((await r.call("POST", "/api/v1/agents/", { raw: "null" })).status).toBe(422);
    expect((await r.call("POST", "/api/v1/trust/request", { raw: "not json" })).status).toBe(400);
  });

  it("answers 413 for a body over the cap", async () => {
    const r = await startTestRegistry();
    const res = await r.call("POST", "/api/v1/agents/", {
      raw: JSON.stringify({ hostname: "alpha", description: "x".repeat(100 * 1024) }),
    });
    expect(res.status).toBe(413);
  });

  it("answers 404 for unknown routes and 405 with Allow for wrong methods", async () => {
    const r = await startTestRegistry();
    expect((await r.call("GET", "/api/v1/nothing")).status).toBe(404);
    expect((await r.call("GET", "/")).status).toBe(404);
    const wrong = await r.call("PUT", "/api/v1/agents/");
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("GET, POST");
    expect((await r.call("GET", "/api/v1/trust/request")).status).toBe(405);
    expect((await r.call("GET", "/api/v1/agents/x/heartbeat")).status).toBe(405);
  });

  it("validates path parameters and query strings", async () => {
    const r = await startTestRegistry();
    const res = await r.call<Detail>("GET", "/api/v1/agents/by-hostname/Not_Valid");
    expect(res.status).toBe(422);
    expect(res.body.detail[0]!.loc).toEqual(["path", "hostname"]);
    expect((await r.call("GET", "/api/v1/agents/?limit=101")).status).toBe(422);
    expect((await r.call("GET", "/api/v1/agents/?limit=100")).status).toBe(200);
    expect((await r.call("GET", "/api/v1/agents/%E0%A4%A")).status).toBe(404);
  });

  it("never answers 500 to a barrage of junk", async () => {
    const r = await startTestRegistry();
    const junk = [
      "",
      "{}",
      "[]",
      "1",
      '"s"',
      '{"hostname":null}',
      '{"hostname":{"$gt":""}}',
      "\u0000",
      "{".repeat(5000),
    ];
    const routes: Array<[string, string]> = [
      ["POST", "/api/v1/agents/"],
      ["PATCH", "/api/v1/agents/x"],
      ["POST", "/api/v1/agents/messages/send"],
      ["POST", "/api/v1/agents/messages/ack"],
      ["POST", "/api/v1/trust/request"],
      ["POST", "/api/v1/trust/approve"],
    ];
    for (const [method, path] of routes) {
      for (const raw of junk) {
        const res = await r.call(method, path, { raw });
        expect(res.status, `${method} ${path} ${raw.slice(0, 20)}`).toBeLessThan(500);
      }
    }
  });
});
