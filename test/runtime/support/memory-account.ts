// An account runtime on an in-memory network (test/support/memory-network.ts), registered in a real registry.
import { join } from "node:path";
import type { InspectionEvent } from "xstate";
import type { AdmittedMessage } from "../../../src/adapters/transport/transport.js";
import { resolveAccounts } from "../../../src/config.js";
import { type AccountRuntime, startAccountRuntime } from "../../../src/runtime/account-runtime.js";
import type { MemoryNetwork } from "../../support/memory-network.js";
import { quiet, until } from "./until.js";

export interface MemoryAccount {
  runtime: AccountRuntime;
  received: AdmittedMessage[];
}

export async function startMemoryAccount(options: {
  network: MemoryNetwork;
  registryUrl: string;
  stateDir: string;
  accountId: string;
  account?: Record<string, unknown>;
  inspect?: (event: InspectionEvent) => void;
}): Promise<MemoryAccount> {
  const { accountId } = options;
  const [account] = resolveAccounts(
    {
      registryUrl: options.registryUrl,
      transport: "relay",
      accounts: {
        [accountId]: { hostname: accountId, pilot: { pollIntervalSeconds: 1 }, ...options.account },
      },
    },
    {},
  );
  const received: AdmittedMessage[] = [];
  const runtime = await startAccountRuntime({
    account: account!,
    stateRoot: join(options.stateDir, accountId),
    log: quiet,
    link: (deps) => options.network.link(deps),
    createDispatcher: () => async (message) => {
      received.push(message);
    },
    ...(options.inspect ? { inspect: options.inspect } : {}),
  });
  await until(() => runtime.status().lifecycle === "online", `${accountId} online`);
  return { runtime, received };
}
