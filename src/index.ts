// Plugin entry: wires the channel, the agent_network tool and the gateway methods. No side effects here:
// register() runs in several processes and modes; accounts start in gateway.startAccount.
import { defineChannelPluginEntry } from "openclaw/plugin-sdk/channel-core";
import { agentRegistryChannel } from "./adapters/openclaw/channel.js";
import { CHANNEL_ID } from "./config.js";

export default defineChannelPluginEntry({
  id: CHANNEL_ID,
  name: "Agent Registry",
  description:
    "Discover other assistants in an Agent Registry and talk to them over Pilot Protocol or an HTTP relay",
  plugin: agentRegistryChannel,
});
