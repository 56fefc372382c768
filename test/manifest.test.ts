// Keeps openclaw.plugin.json in step with the code (it is generated from the zod schema by `npm run manifest`)
// and checks what OpenClaw relies on: the tool contract, secrets hidden in the UI, and a strict channel schema.
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { CHANNEL_ID, channelConfigSchema, parseChannelConfig, resolveAccounts } from "../src/config.js";
import { buildManifest, renderManifest, TOOL_NAME } from "../src/manifest.js";

const MANIFEST = new URL("../openclaw.plugin.json", import.meta.url);

interface ChannelEntry {
  schema: { type: string; additionalProperties?: unknown; properties: Record<string, unknown> };
  uiHints: Record<string, { label?: string; sensitive?: boolean }>;
}

const committedText = await readFile(MANIFEST, "utf8");
const committed = JSON.parse(committedText) as {
  id: string;
  channels: string[];
  channelConfigs: Record<string, ChannelEntry>;
  contracts: { tools: string[] };
};
const channel = committed.channelConfigs[CHANNEL_ID];

/** Where two texts first differ, so a stale manifest says what changed without a 1000-line diff. */
function firstDifference(committed: string, rendered: string): string {
  const a = committed.split("\n");
  const b = rendered.split("\n");
  const line = a.findIndex((text, i) => text !== b[i]);
  const at = line === -1 ? a.length : line;
  return `line ${at + 1}: committed ${JSON.stringify(a[at]?.trim() ?? null)}, code renders ${JSON.stringify(b[at]?.trim() ?? null)}`;
}

/** A config an operator would write: two accounts, one on the relay, one on Pilot, shared defaults on top. */
const realistic = {
  registryUrl: "https://registry.example.com",
  registryApiKey: "deployment-key",
  handshake: { approver: "owner" },
  accounts: {
    work: {
      hostname: "alice-assistant",
      displayName: "Alice's assistant",
      description: "Schedules meetings and books travel for Alice",
      capabilities: ["calendar", "travel"],
      ownerName: "Alice",
      transport: "relay",
      inbound: { ratePerMinute: 10, autoReplyBudget: 3 },
    },
    lab: {
      hostname: "alice-lab",
      transport: "pilot",
      pilot: { pilotctl: "/usr/local/bin/pilotctl", manageDaemon: true, pollIntervalSeconds: 30 },
      visibility: {
        source: "schedule",
        schedule: {
          timezone: "Europe/Berlin",
          windows: [{ days: ["mon", "fri"], start: "09:00", end: "17:00" }],
        },
      },
    },
  },
};

describe("openclaw.plugin.json", () => {
  it("equals renderManifest() (run `npm run manifest` after changing src/config.ts or src/manifest.ts)", () => {
    const rendered = renderManifest();
    expect(
      committedText === rendered,
      `openclaw.plugin.json is stale: run \`npm run manifest\` and commit it (${firstDifference(committedText, rendered)})`,
    ).toBe(true);
  });

  it("declares the agent_network tool in contracts.tools", () => {
    expect(TOOL_NAME).toBe("agent_network");
    expect(committed.contracts.tools).toContain("agent_network");
  });

  it("declares the channel and its config schema", () => {
    expect(committed.id).toBe(CHANNEL_ID);
    expect(committed.channels).toEqual([CHANNEL_ID]);
    expect(channel?.schema.type).toBe("object");
    expect(channel?.schema.additionalProperties).toBe(false);
  });

  it("marks the registry key sensitive, at the top level and per account", () => {
    expect(channel?.uiHints.registryApiKey?.sensitive).toBe(true);
    expect(channel?.uiHints["accounts.*.registryApiKey"]?.sensitive).toBe(true);
  });

  it("has a uiHint for every field the schema holds secrets in", () => {
    const secretLike = /key|token|secret|password/i;
    const secrets = Object.keys(channel?.schema.properties ?? {}).filter((name) => secretLike.test(name));
    expect(secrets).toContain("registryApiKey");
    for (const name of secrets) expect(channel?.uiHints[name]?.sensitive, name).toBe(true);
  });
});

describe("channel config schema", () => {
  it("accepts a realistic two-account config", () => {
    expect(channelConfigSchema.safeParse(realistic).success).toBe(true);
    expect(() => parseChannelConfig(realistic)).not.toThrow();
  });

  it("accepts the original plugin's array form of accounts", () => {
    const legacy = { accounts: [{ id: "default", hostname: "alice-assistant", transport: "pilot" }] };
    expect(channelConfigSchema.safeParse(legacy).success).toBe(true);
  });

  it("rejects an unknown key, naming it", () => {
    const result = channelConfigSchema.safeParse({ ...realistic, registryKey: "typo" });
    expect(result.success).toBe(false);
    expect(() => parseChannelConfig({ ...realistic, registryKey: "typo" })).toThrow(/registryKey/);
  });

  it("rejects an unknown key inside an account and inside a nested object", () => {
    const inAccount = { accounts: { work: { hostname: "alice-assistant", heartbeat: 30 } } };
    const nested = { hostname: "alice-assistant", pilot: { manageDeamon: true } };
    expect(channelConfigSchema.safeParse(inAccount).success).toBe(false);
    expect(channelConfigSchema.safeParse(nested).success).toBe(false);
  });

  it("merges an account's nested settings over the channel's, field by field", () => {
    const [account] = resolveAccounts(
      {
        pilot: { manageDaemon: true, pollIntervalSeconds: 1 },
        inbound: { ratePerMinute: 500 },
        handshake: { approver: "agent" },
        accounts: {
          work: {
            hostname: "alice-assistant",
            pilot: { pilotctl: "/opt/pilot/pilotctl" },
            inbound: { autoReplyBudget: 2 },
            handshake: { introduction: "hello" },
          },
        },
      },
      {},
    );
    // Fields the account leaves out come from the channel level, then from the defaults.
    expect(account!.pilot).toMatchObject({
      pilotctl: "/opt/pilot/pilotctl",
      manageDaemon: true,
      pollIntervalSeconds: 1,
      sendTimeoutMs: 10_000,
    });
    expect(account!.inbound).toMatchObject({
      ratePerMinute: 500,
      autoReplyBudget: 2,
      maxMessageBytes: 65_536,
    });
    expect(account!.handshake).toEqual({ approver: "agent", introduction: "hello" });
  });

  it("is the schema the manifest carries (same top-level fields)", () => {
    const built = buildManifest() as { channelConfigs: Record<string, ChannelEntry> };
    expect(Object.keys(channel?.schema.properties ?? {})).toEqual(
      Object.keys(built.channelConfigs[CHANNEL_ID]?.schema.properties ?? {}),
    );
    expect(Object.keys(channel?.schema.properties ?? {})).toEqual(Object.keys(channelConfigSchema.shape));
  });
});
