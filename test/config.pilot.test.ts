// The Pilot section of the config: the registry and beacon addresses a managed daemon is started with.
import { describe, expect, it } from "vitest";
import { pilotSchema, resolveAccounts } from "../src/config.js";

describe("pilot.registry and pilot.beacon", () => {
  it("accept host:port with a name, an IPv4 or a bracketed IPv6 address", () => {
    for (const value of ["127.0.0.1:9000", "registry.example.org:9000", "[::1]:9001", "localhost:1"]) {
      expect(pilotSchema.parse({ registry: value, beacon: value })).toMatchObject({
        registry: value,
        beacon: value,
      });
    }
  });

  it("refuse what the daemon's flags do not take, saying the expected form", () => {
    for (const value of [
      "127.0.0.1",
      "http://127.0.0.1:9000",
      "host:0",
      "host:65536",
      ":9000",
      "a b:1",
      "",
    ]) {
      const result = pilotSchema.safeParse({ registry: value });
      expect(result.success, value).toBe(false);
      expect(result.error?.issues[0]?.message).toMatch(/host:port/);
    }
  });

  it("are optional and inherited by accounts like the other pilot fields", () => {
    const [account] = resolveAccounts(
      {
        pilot: { registry: "127.0.0.1:9000" },
        accounts: { work: { hostname: "alice", pilot: { beacon: "127.0.0.1:9001" } } },
      },
      {},
    );
    expect(account?.pilot).toMatchObject({ registry: "127.0.0.1:9000", beacon: "127.0.0.1:9001" });
    const [plain] = resolveAccounts({ hostname: "bob" }, {});
    expect(plain?.pilot.registry).toBeUndefined();
  });
});
