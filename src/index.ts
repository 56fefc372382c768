// Plugin entry, the composition root: wires the channel, the agent_network tool and the gateway methods to one
// set of account runtimes. No side effects here: register() runs in several processes and modes; accounts start
// in gateway.startAccount.
import { defineChannelPluginEntry } from "openclaw/plugin-sdk/channel-core";
import { createAgentRegistryChannel } from "./adapters/openclaw/channel.js";
import { registerAgentRegistryCliMetadata } from "./adapters/openclaw/cli-metadata.js";
import { gatewayMethodSpecs, registerGatewayMethods } from "./adapters/openclaw/gateway-methods.js";
import { registerNetworkPage } from "./adapters/openclaw/network-page/register.js";
import { registerAgentNetworkTool } from "./adapters/openclaw/tool.js";
import { CHANNEL_ID } from "./config.js";
import { AccountRuntimes } from "./runtime/account-runtimes.js";

// OpenClaw may load this entry more than once in one gateway process (e.g. again to build the tool catalog),
// each time as a fresh module instance. Account runtimes live in the instance that started them, so the set is
// kept on globalThis under a registered symbol: every instance in this process sees the same running accounts.
const RUNTIMES_KEY = Symbol.for("openclaw-agent-registry.runtimes");
const processGlobal = globalThis as typeof globalThis & { [RUNTIMES_KEY]?: AccountRuntimes };
processGlobal[RUNTIMES_KEY] ??= new AccountRuntimes();
const runtimes = processGlobal[RUNTIMES_KEY];

export default defineChannelPluginEntry({
  id: CHANNEL_ID,
  name: "Agent Registry",
  description:
    "Discover other assistants in an Agent Registry and talk to them over Pilot Protocol or an HTTP relay",
  plugin: createAgentRegistryChannel(runtimes),
  registerCliMetadata: registerAgentRegistryCliMetadata,
  registerFull(api) {
    registerGatewayMethods(api, gatewayMethodSpecs(runtimes));
    registerAgentNetworkTool(api, runtimes);
    // The network page: /plugins/agent-registry/ in the gateway (its API behind the gateway's auth).
    registerNetworkPage(api, runtimes);
    // A message the agent sent that stays undelivered is told to its session once, as a system event.
    runtimes.setSessionNotifier((sessionKey, text) => {
      api.runtime.system.enqueueSystemEvent(text, { sessionKey });
    });
  },
});
