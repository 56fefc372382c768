// The registry bench's command line: defaults, the store and replica parameters, and the refusals that say
// what to do instead.
import { describe, expect, it } from "vitest";
import { parseBenchArgs } from "../../bench/registry.bench.js";

describe("bench:registry arguments", () => {
  it("runs the SQLite store with one replica, 1,000,000 agents and 8 search clients by default", () => {
    expect(parseBenchArgs([], {})).toEqual({
      store: "sqlite",
      replicas: 1,
      agents: 1_000_000,
      searchesPerKind: 800,
      searchClients: 8,
      heartbeatSeconds: 10,
    });
  });

  it("takes the agent count from --agents, else BENCH_AGENTS", () => {
    expect(parseBenchArgs(["--agents", "100000"], { BENCH_AGENTS: "5000" }).agents).toBe(100_000);
    expect(parseBenchArgs([], { BENCH_AGENTS: "5000" }).agents).toBe(5_000);
  });

  it("refuses bad counts and unknown flags with the usage", () => {
    expect(() => parseBenchArgs(["--agents", "ten"], {})).toThrow(/--agents must be an integer.*usage/);
    expect(() => parseBenchArgs(["--agents", "10"], {})).toThrow(/>= 1000/);
    expect(() => parseBenchArgs(["--fast"], {})).toThrow();
  });

  it("runs the PostgreSQL store with 2 or more replicas, and SQLite with one", () => {
    expect(parseBenchArgs(["--store", "postgres", "--replicas", "3"], {})).toMatchObject({
      store: "postgres",
      replicas: 3,
      agents: 1_000_000,
      searchClients: 8,
    });
    expect(() => parseBenchArgs(["--store", "postgres"], {})).toThrow(/--replicas 2 or more/);
    expect(() => parseBenchArgs(["--store", "mysql"], {})).toThrow(/sqlite or postgres/);
    expect(() => parseBenchArgs(["--replicas", "3"], {})).toThrow(/SQLite store serves from one process/);
  });
});
