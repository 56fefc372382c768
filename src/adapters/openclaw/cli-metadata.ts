// The `openclaw agent-registry` root command as OpenClaw's CLI sees it before loading any plugin code: the same
// name, text and subcommand flag go into the manifest's cliCommands (src/manifest.ts) and into registerCli.
import type { OpenClawPluginApi } from "openclaw/plugin-sdk/channel-core";

export const CLI_DESCRIPTOR = {
  name: "agent-registry",
  description: "Operate Agent Registry accounts: status, peers, handshakes, search, messages",
  hasSubcommands: true,
} as const;

/** Registers the command lazily: the commands module loads only when `openclaw agent-registry ...` runs. */
export function registerAgentRegistryCliMetadata(api: Pick<OpenClawPluginApi, "registerCli">): void {
  api.registerCli(
    async ({ program }) => {
      const { registerAgentRegistryCommands } = await import("./cli.js");
      await registerAgentRegistryCommands(program);
    },
    { descriptors: [{ ...CLI_DESCRIPTOR }] },
  );
}
