// Search: case-insensitive text over hostname, display name, description and capabilities; ranking; match
// any|all; stable order and pagination; offline hidden; hostile queries are plain text.
import { describe, expect, it } from "vitest";
import { type AgentWithToken, startTestRegistry, type TestRegistry } from "./helpers.js";

type Page = { agents: AgentWithToken[]; total: number };

/** The agent token of the last seeded "coder" (re-registering an owned record needs it). */
let coderToken = "";

async function seeded(): Promise<TestRegistry> {
  const r = await startTestRegistry();
  await r.register({
    hostname: "translator",
    installation_id: "i1",
    capabilities: ["code"],
    description: "Writes code",
  });
  await r.register({
    hostname: "polyglot",
    installation_id: "i2",
    display_name: "Poly Glot",
    capabilities: ["translator", "french"],
  });
  await r.register({
    hostname: "scribe",
    installation_id: "i3",
    description: "A TRANSLATOR of old French texts",
    capabilities: ["writing"],
  });
  coderToken = (
    await r.register({ hostname: "coder", installation_id: "i4", capabilities: ["code", "review"] })
  ).agent_token;
  await r.register({ hostname: "translator-bot", installation_id: "i5", capabilities: ["chat"] });
  return r;
}

const hostnames = (p: Page) => p.agents.map((a) => a.hostname);

describe("search", () => {
  it("ranks an exact hostname first, then exact capability hits, then hostname, then other matches", async () => {
    const r = await seeded();
    const res = await r.call<Page>("GET", "/api/v1/agents/search?q=Translator");
    expect(res.status).toBe(200);
    expect(hostnames(res.body)).toEqual(["translator", "polyglot", "translator-bot", "scribe"]);
    expect(res.body.total).toBe(4);
  });

  it("matches every word of q anywhere, case-insensitively", async () => {
    const r = await seeded();
    const res = await r.call<Page>("GET", "/api/v1/agents/search?q=french%20OLD");
    expect(hostnames(res.body)).toEqual(["scribe"]);
    const short = await r.call<Page>("GET", "/api/v1/agents/search?q=gl");
    expect(hostnames(short.body)).toEqual(["polyglot"]); // "Poly Glot"
    const prefix = await r.call<Page>("GET", "/api/v1/agents/search?q=transl");
    expect(prefix.body.total).toBe(4);
    // Words match by prefix, not anywhere inside a word.
    expect((await r.call<Page>("GET", "/api/v1/agents/search?q=lator")).body.total).toBe(0);
  });

  it("filters by capabilities with match=any (more hits first) and match=all", async () => {
    const r = await seeded();
    const any = await r.call<Page>("GET", "/api/v1/agents/search?capabilities=code&capabilities=REVIEW");
    expect(hostnames(any.body)[0]).toBe("coder");
    expect(any.body.total).toBe(2);
    const all = await r.call<Page>(
      "GET",
      "/api/v1/agents/search?capabilities=code&capabilities=review&match=all",
    );
    expect(hostnames(all.body)).toEqual(["coder"]);
    const both = await r.call<Page>("GET", "/api/v1/agents/search?q=writes&capabilities=code");
    expect(hostnames(both.body)).toEqual(["translator"]);
  });

  it("paginates with a correct total and a stable order (ties broken by id)", async () => {
    const r = await startTestRegistry();
    for (let i = 0; i < 23; i++) await r.register({ hostname: `helper-${i}`, capabilities: ["help"] });
    const seen: string[] = [];
    for (let offset = 0; offset < 30; offset += 10) {
      const page = await r.call<Page>("GET", `/api/v1/agents/search?q=helper&limit=10&offset=${offset}`);
      expect(page.body.total).toBe(23);
      seen.push(...page.body.agents.map((a) => a.id));
    }
    expect(seen).toHaveLength(23);
    expect(new Set(seen).size).toBe(23);
    expect(seen).toEqual([...seen].sort());
    const again = await r.call<Page>("GET", "/api/v1/agents/search?q=helper&limit=10");
    expect(again.body.agents.map((a) => a.id)).toEqual(seen.slice(0, 10));
  });

  it("hides offline agents unless include_offline=true", async () => {
    const r = await seeded();
    r.clock.advance(100);
    await r.register({ hostname: "fresh-translator", installation_id: "i9" });
    r.clock.advance(100); // the seeded agents are now 200 s old
    expect(hostnames((await r.call<Page>("GET", "/api/v1/agents/search?q=translator")).body)).toEqual([
      "fresh-translator",
    ]);
    const all = await r.call<Page>("GET", "/api/v1/agents/search?q=translator&include_offline=true");
    expect(all.body.total).toBe(5);
  });

  it("sees metadata changes at once (PATCH re-indexes)", async () => {
    const r = await seeded();
    const coder = (await r.call<Page>("GET", "/api/v1/agents/search?q=coder")).body.agents[0]!;
    const token = (
      await r.register({ hostname: "coder", installation_id: "i4", capabilities: ["code"] }, coderToken)
    ).agent_token;
    await r.call("PATCH", `/api/v1/agents/${coder.id}`, { token, body: { description: "Knows Haskell" } });
    expect(hostnames((await r.call<Page>("GET", "/api/v1/agents/search?q=haskell")).body)).toEqual(["coder"]);
    expect((await r.call<Page>("GET", "/api/v1/agents/search?capabilities=review")).body.total).toBe(0);
  });

  it("treats SQL fragments, LIKE wildcards, quotes and unicode as plain text", async () => {
    const r = await seeded();
    await r.register({ hostname: "weird", description: '100% sure_thing "quoted" Übersetzer 日本語' });
    const cases: Array<[string, string[]]> = [
      ["%", ["weird"]],
      ["_", ["weird"]],
      ["100%", ["weird"]],
      ["s_re", []], // "_" would match "u" in "sure" if it were a LIKE wildcard
      ["' OR 1=1 --", []],
      ['"; DROP TABLE agents; --', []],
      ['"quoted"', ["weird"]],
      ["übersetzer", ["weird"]],
      ["日本", ["weird"]],
      ["NEAR(a b)", []],
      ["* OR translator", []],
    ];
    for (const [q, expected] of cases) {
      const res = await r.call<Page>("GET", `/api/v1/agents/search?q=${encodeURIComponent(q)}`);
      expect(res.status, q).toBe(200);
      expect(hostnames(res.body), q).toEqual(expected);
    }
    expect((await r.call<Page>("GET", "/api/v1/agents/search?q=translator")).body.total).toBe(4);
  });

  it("answers a 10 KB query with 200 and no match", async () => {
    const r = await seeded();
    const q = "x".repeat(10 * 1024);
    const res = await r.call<Page>("GET", `/api/v1/agents/search?q=${q}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ agents: [], total: 0, total_exact: true });
    const unicode = "é".repeat(5000);
    expect((await r.call("GET", `/api/v1/agents/search?q=${encodeURIComponent(unicode)}`)).status).toBe(200);
  });

  it("refuses limit outside 1-50, too many capabilities and a bad match with 422 naming the field", async () => {
    const r = await seeded();
    for (const [query, field] of [
      ["limit=0", "limit"],
      ["limit=51", "limit"],
      ["limit=abc", "limit"],
      ["offset=-1", "offset"],
      ["match=some", "match"],
      ["include_offline=maybe", "include_offline"],
      [Array.from({ length: 21 }, (_, i) => `capabilities=c${i}`).join("&"), "capabilities"],
    ] as const) {
      const res = await r.call<{ detail: Array<{ loc: string[] }> }>("GET", `/api/v1/agents/search?${query}`);
      expect(res.status, query).toBe(422);
      expect(res.body.detail[0]!.loc, query).toEqual(["query", field]);
    }
    expect((await r.call("GET", "/api/v1/agents/search?limit=50")).status).toBe(200);
    expect((await r.call("GET", "/api/v1/agents/search?limit=1")).status).toBe(200);
  });
});
