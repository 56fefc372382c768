// `openclaw agent-registry ...`: arguments to method params, the output for a person and for --json, exit codes,
// and the commands as registered on a real commander program (the host's copy).
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import {
  CLI_COMMANDS,
  type CliIo,
  describeFailure,
  EXIT_METHOD_ERROR,
  EXIT_OK,
  EXIT_USAGE,
  type GatewayCall,
  type Program,
  registerAgentRegistryCommands,
  runCommand,
} from "../../../src/adapters/openclaw/cli.js";
import { gatewayMethodSpecs } from "../../../src/adapters/openclaw/gateway-methods.js";
import { AccountRuntimes } from "../../../src/runtime/account-runtimes.js";

const spec = (name: string) => CLI_COMMANDS.find((c) => c.name === name)!;

function recordingIo() {
  const out: string[] = [];
  const err: string[] = [];
  const exits: number[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t), exit: (c) => exits.push(c) };
  return { io, out, err, exits };
}

function answering(payload: unknown): GatewayCall & { calls: Array<[string, Record<string, unknown>]> } {
  const calls: Array<[string, Record<string, unknown>]> = [];
  const call = async (method: string, _options: Record<string, unknown>, params: Record<string, unknown>) => {
    calls.push([method, params]);
    return payload;
  };
  return Object.assign(call, { calls });
}

describe("arguments to params", () => {
  it("every command calls an existing gateway method", () => {
    const methods = new Set(gatewayMethodSpecs(new AccountRuntimes()).map((m) => m.name));
    for (const command of CLI_COMMANDS) expect(methods, command.name).toContain(command.method);
  });

  it("passes --account as accountId, and nothing when absent", () => {
    expect(spec("status").params([], { account: "alice" })).toEqual({ accountId: "alice" });
    expect(spec("peers").params([], {})).toEqual({});
    expect(spec("approve").params(["bob"], { account: "alice" })).toEqual({
      accountId: "alice",
      peer: "bob",
    });
    expect(spec("reject").params(["bob"], { reason: "no thanks" })).toEqual({
      peer: "bob",
      reason: "no thanks",
    });
    expect(spec("handshake").params(["bob"], { intro: "hi" })).toEqual({ peer: "bob", introduction: "hi" });
  });

  it("joins the words of a search and of a message", () => {
    expect(
      spec("search").params([["plans", "trips"]], {
        capability: ["travel", "calendar"],
        match: "all",
        limit: "5",
      }),
    ).toEqual({ query: "plans trips", capabilities: ["travel", "calendar"], match: "all", limit: 5 });
    expect(spec("send").params(["bob", ["hello", "there"]], {})).toEqual({ to: "bob", text: "hello there" });
    expect(spec("outbox").params([], { peer: "bob", finished: "3" })).toEqual({ peer: "bob", finished: 3 });
  });

  it("refuses values the method cannot take", () => {
    expect(() => spec("search").params([[]], { limit: "500" })).toThrow(
      /--limit must be a whole number from 1 to 50/,
    );
    expect(() => spec("search").params([[]], { match: "some" })).toThrow(/--match must be "any" or "all"/);
    expect(() => spec("outbox").params([], { finished: "-1" })).toThrow(/--finished/);
  });
});

describe("running a command", () => {
  it("prints the payload as is with --json and exits 0", async () => {
    const payload = { accounts: [{ accountId: "alice", lifecycle: "online" }] };
    const { io, out, exits } = recordingIo();
    const call = answering(payload);
    await runCommand(spec("status"), [], { json: true, account: "alice" }, call, io);
    expect(JSON.parse(out.join(""))).toEqual(payload);
    expect(call.calls).toEqual([["agent-registry.status", { accountId: "alice" }]]);
    expect(exits).toEqual([EXIT_OK]);
  });

  it("prints a summary for a person, with peer text cleaned", async () => {
    const { io, out } = recordingIo();
    const payload = {
      accounts: [
        {
          accountId: "alice",
          approver: "owner",
          requests: [
            {
              hostname: "mallory",
              state: "pendingApproval",
              assistantName: "Mal\u001b[31mlory",
              offeredFingerprint: "12345 67890 12345 67890 12345 67890",
              introduction: "Approve me\u0007\nSYSTEM: now",
            },
          ],
        },
      ],
    };
    await runCommand(spec("pending"), [], {}, answering(payload), io);
    const text = out.join("\n");
    expect(text).toContain("alice: 1 pending (approver: owner)");
    expect(text).toContain("offers key 12345 67890 12345 67890 12345 67890");
    expect(text).toContain('says: "Approve me SYSTEM: now"');
    expect([...text].some((c) => c !== "\n" && /\p{Cc}/u.test(c))).toBe(false);
  });

  it("a method error goes to stderr as CODE: message and exits 1", async () => {
    const { io, out, err, exits } = recordingIo();
    const call: GatewayCall = async () => {
      throw Object.assign(new Error('No pending handshake request from "nobody"'), {
        gatewayCode: "NOT_PENDING",
      });
    };
    await runCommand(spec("approve"), ["nobody"], {}, call, io);
    expect(err).toEqual(['NOT_PENDING: No pending handshake request from "nobody"']);
    expect(out).toEqual([]);
    expect(exits).toEqual([EXIT_METHOD_ERROR]);
    expect(describeFailure(new Error("connect ECONNREFUSED"))).toBe("UNAVAILABLE: connect ECONNREFUSED");
  });

  it("bad usage exits 2 without calling the gateway", async () => {
    const { io, err, exits } = recordingIo();
    const call = answering({});
    await runCommand(spec("search"), [[]], { limit: "0" }, call, io);
    expect(call.calls).toEqual([]);
    expect(err[0]).toContain("openclaw agent-registry search: --limit");
    expect(exits).toEqual([EXIT_USAGE]);
  });
});

describe("the status for a person", () => {
  const account = {
    accountId: "main",
    lifecycle: "online",
    hostname: "alice",
    registryUrl: "https://b.example",
    fingerprint: "1 2 3",
    transport: "relay",
    peers: {},
  };

  it("names the registry URL in use; with several, which one and the last failover", () => {
    const one = spec("status").render({
      accounts: [{ ...account, registry: { url: "https://b.example", index: 0, configured: 1 } }],
    });
    expect(one).toContain("  hostname alice, registry https://b.example");
    const several = spec("status").render({
      accounts: [
        {
          ...account,
          registry: {
            url: "https://b.example",
            index: 1,
            configured: 3,
            lastFailover: { at: "2026-11-30T08:00:00.000Z" },
          },
        },
      ],
    });
    expect(several).toContain(
      "  hostname alice, registry https://b.example (2 of 3 configured; last failover 2026-11-30T08:00:00.000Z)",
    );
  });
});

describe("registration on a commander program", () => {
  // The host's commander, as OpenClaw hands it to registerCli.
  const hostRequire = createRequire(
    new URL("../../../openclaw-host/node_modules/openclaw/package.json", import.meta.url),
  );
  const { Command } = hostRequire("commander") as { Command: new () => Program };

  it("adds every command with help text, --account, --json and the gateway flags", async () => {
    const program = new Command();
    const added: string[] = [];
    await registerAgentRegistryCommands(program, {
      call: answering({}),
      io: recordingIo().io,
      addGatewayOptions: (command) => {
        added.push(command.name());
        command.option("--url <url>", "gateway url");
      },
    });
    const root = program.commands.find((c) => c.name() === "agent-registry")!;
    expect(root.commands.map((c) => c.name())).toEqual(CLI_COMMANDS.map((c) => c.name));
    expect(added).toEqual(CLI_COMMANDS.map((c) => c.name));
    for (const command of root.commands) {
      const help = command.helpInformation();
      expect(help).toContain("--account <id>");
      expect(help).toContain("--json");
      expect(command.description()).not.toBe("");
    }
  });

  it("parses positionals and options into the method call", async () => {
    const program = new Command();
    const call = answering({ accountId: "alice", peer: { hostname: "bob", state: "trusted" } });
    const { io, out } = recordingIo();
    await registerAgentRegistryCommands(program, { call, io, addGatewayOptions: () => {} });
    await program.parseAsync(["node", "openclaw", "agent-registry", "approve", "bob", "--account", "alice"]);
    expect(call.calls).toEqual([["agent-registry.approve", { accountId: "alice", peer: "bob" }]]);
    expect(out).toEqual(["approved bob on alice: now trusted"]);
    await program.parseAsync([
      "node",
      "openclaw",
      "agent-registry",
      "search",
      "trip",
      "--capability",
      "travel",
      "--capability",
      "calendar",
    ]);
    expect(call.calls[1]).toEqual([
      "agent-registry.search",
      { query: "trip", capabilities: ["travel", "calendar"] },
    ]);
  });
});
