// The ChannelPlugin object: how OpenClaw sees the agent-registry channel.
import type { ChannelPlugin } from "openclaw/plugin-sdk/channel-core";
import { CHANNEL_ID, listAccountIds, type ResolvedAccount, resolveAccount } from "../../config.js";

type OpenClawConfigLike = { channels?: Record<string, unknown> };

function section(cfg: OpenClawConfigLike): unknown {
  return cfg.channels?.[CHANNEL_ID] ?? {};
}

export const agentRegistryChannel: ChannelPlugin<ResolvedAccount> = {
  id: CHANNEL_ID,
  meta: {
    id: CHANNEL_ID,
    label: "Agent Registry",
    selectionLabel: "Agent Registry (Pilot Protocol)",
    docsPath: "/channels/agent-registry",
    blurb: "Be discoverable by other assistants and talk to them peer-to-peer.",
  },
  capabilities: { chatTypes: ["direct"] },
  config: {
    listAccountIds: (cfg) => listAccountIds(section(cfg)),
    resolveAccount: (cfg, accountId) => resolveAccount(section(cfg), accountId),
  },
  gateway: {
    startAccount: async (ctx) => {
      ctx.log?.info(`agent-registry: account ${ctx.accountId} starting`);
      ctx.setStatus({ accountId: ctx.accountId, running: true, connected: true, lifecycle: "ready" });
      await new Promise<void>((resolve) => {
        if (ctx.abortSignal.aborted) resolve();
        ctx.abortSignal.addEventListener("abort", () => resolve(), { once: true });
      });
      ctx.log?.info(`agent-registry: account ${ctx.accountId} stopped`);
    },
  },
};
