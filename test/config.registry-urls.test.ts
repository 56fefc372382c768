// registryUrl as one URL (as ever) or a list of replicas of one registry for failover: the list is resolved in
// order, the first is the preferred one, and every entry is validated as a single URL is.
import { describe, expect, it } from "vitest";
import { ConfigError, DEFAULT_REGISTRY_URL, REGISTRY_URLS_MAX, resolveAccounts } from "../src/config.js";

const one = (config: Record<string, unknown>, env: Record<string, string> = {}) =>
  resolveAccounts({ hostname: "alice", ...config }, env)[0]!;

const refusal = (config: Record<string, unknown>): string => {
  try {
    one(config);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the config was accepted");
};

describe("registryUrl with one or several URLs", () => {
  it("takes one URL as before: it is the preferred one and the only one", () => {
    const account = one({ registryUrl: "https://registry.example/" });
    expect(account.registryUrl).toBe("https://registry.example");
    expect(account.registryUrls).toEqual(["https://registry.example"]);
    expect(one({}).registryUrls).toEqual([DEFAULT_REGISTRY_URL]);
  });

  it("takes a list in failover order, the first preferred, trailing slashes dropped", () => {
    const account = one({
      registryUrl: ["https://a.example/reg/", "https://b.example", "http://127.0.0.1:8001"],
    });
    expect(account.registryUrl).toBe("https://a.example/reg");
    expect(account.registryUrls).toEqual([
      "https://a.example/reg",
      "https://b.example",
      "http://127.0.0.1:8001",
    ]);
  });

  it("lets an account's list replace the channel's", () => {
    const [account] = resolveAccounts(
      {
        registryUrl: ["https://a.example", "https://b.example"],
        accounts: { alice: { hostname: "alice", registryUrl: "https://c.example" } },
      },
      {},
    );
    expect(account!.registryUrls).toEqual(["https://c.example"]);
  });

  it("reads several URLs from AGENT_REGISTRY_URL separated by commas", () => {
    const account = one({}, { AGENT_REGISTRY_URL: "https://a.example, https://b.example/ ,," });
    expect(account.registryUrls).toEqual(["https://a.example", "https://b.example"]);
    expect(account.registryUrl).toBe("https://a.example");
  });

  it("refuses an empty list, an invalid entry, a repeated URL and a list over the limit, naming the field", () => {
    expect(refusal({ registryUrl: [] })).toMatch(/channels\.agent-registry\.registryUrl/);
    expect(refusal({ registryUrl: ["https://a.example", "not a url"] })).toMatch(
      /channels\.agent-registry\.registryUrl/,
    );
    expect(refusal({ registryUrl: ["https://a.example", "https://a.example/"] })).toMatch(
      /each registry URL once/,
    );
    const many = Array.from({ length: REGISTRY_URLS_MAX + 1 }, (_, i) => `https://r${i}.example`);
    expect(refusal({ registryUrl: many })).toMatch(/channels\.agent-registry\.registryUrl/);
    expect(refusal({ registryUrl: 42 })).toMatch(/channels\.agent-registry\.registryUrl/);
    const withPassword = refusal({ registryUrl: ["https://a.example", "https://user:pa55@b.example"] });
    expect(withPassword).toMatch(/registryUrl\.1: no user name or password in the URL/);
    expect(withPassword).not.toContain("pa55");
  });
});
