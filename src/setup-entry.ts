// The setup entry (package.json openclaw.setupEntry): the channel object without starting anything. OpenClaw loads
// it where it reads channels without running them: `openclaw doctor` and `openclaw security audit` take the
// channel's security findings from it (an external plugin without one shows no findings there).
import { defineSetupPluginEntry } from "openclaw/plugin-sdk/channel-core";
import { createAgentRegistryChannel } from "./adapters/openclaw/channel.js";
import { AccountRuntimes } from "./runtime/account-runtimes.js";

// The same process-wide set as src/index.ts: in a gateway, findings then see the running accounts.
const RUNTIMES_KEY = Symbol.for("openclaw-agent-registry.runtimes");
const processGlobal = globalThis as typeof globalThis & { [RUNTIMES_KEY]?: AccountRuntimes };
processGlobal[RUNTIMES_KEY] ??= new AccountRuntimes();

export default defineSetupPluginEntry(createAgentRegistryChannel(processGlobal[RUNTIMES_KEY]));
