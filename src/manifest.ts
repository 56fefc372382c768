// Builds openclaw.plugin.json from the zod config schema, so the manifest cannot drift from the code.
// scripts/manifest.ts writes it; test/manifest.test.ts fails when the committed file is stale.
import { CLI_DESCRIPTOR } from "./adapters/openclaw/cli-metadata.js";
import { CHANNEL_ID, channelConfigJsonSchema } from "./config.js";

export const TOOL_NAME = "agent_network";

export function buildManifest(): Record<string, unknown> {
  return {
    id: CHANNEL_ID,
    name: "Agent Registry",
    description:
      "Be discoverable by other assistants in an Agent Registry and talk to them peer-to-peer over Pilot Protocol or an HTTP relay, with mutual-approval handshakes.",
    activation: { onStartup: true, onCommands: [CLI_DESCRIPTOR.name] },
    cliCommands: [{ ...CLI_DESCRIPTOR }],
    channels: [CHANNEL_ID],
    channelConfigs: {
      [CHANNEL_ID]: {
        schema: channelConfigJsonSchema(),
        label: "Agent Registry",
        description: "Registry, Pilot/relay transport, handshakes and inbound limits of each account.",
        uiHints: {
          registryApiKey: { label: "Registry deployment key", sensitive: true },
          "accounts.*.registryApiKey": { label: "Registry deployment key", sensitive: true },
        },
      },
    },
    configSchema: { type: "object", additionalProperties: false, properties: {} },
    contracts: { tools: [TOOL_NAME] },
  };
}

export function renderManifest(): string {
  return `${JSON.stringify(buildManifest(), null, 2)}\n`;
}
