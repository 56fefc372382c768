// One relay account runtime against a registry, its dispatched messages recorded, started and waited for online.
import { join } from "node:path";
import type { FetchLike } from "../../../src/adapters/registry/client.js";
import type { AdmittedMessage } from "../../../src/adapters/transport/transport.js";
import { resolveAccounts } from "../../../src/config.js";
import type { IdentityReport } from "../../../src/runtime/account-network.js";
import { type AccountRuntime, startAccountRuntime } from "../../../src/runtime/account-runtime.js";
import { quiet, until } from "./until.js";

export interface RelayAccount {
  runtime: AccountRuntime;
  /** What the runtime dispatched into sessions, in order. */
  received: AdmittedMessage[];
  /** What the owner was told about peers' keys, in order. */
  alerts: IdentityReport["alerts"];
}

/**
 * `channel` holds channel-level settings (e.g. `inbound`), `account` the account's own (e.g. `handshake`). State
 * lives in `<stateDir>/<accountId>`.
 */
export async function startRelayAccount(options: {
  /** One URL, or several for failover. */
  registryUrl: string | string[];
  stateDir: string;
  accountId: string;
  channel?: Record<string, unknown>;
  account?: Record<string, unknown>;
  /** The account's registry connection (a test's malicious registry wraps it). */
  fetch?: FetchLike;
}): Promise<RelayAccount> {
  const { accountId } = options;
  const [account] = resolveAccounts(
    {
      registryUrl: options.registryUrl,
      transport: "relay",
      ...options.channel,
      accounts: { [accountId]: { hostname: accountId, ...options.account } },
    },
    {},
  );
  const received: AdmittedMessage[] = [];
  const alerts: IdentityReport["alerts"] = [];
  const runtime = await startAccountRuntime({
    account: account!,
    stateRoot: join(options.stateDir, accountId),
    log: quiet,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    onIdentityAlert: (alert) => alerts.push(alert),
    createDispatcher: () => async (message) => {
      received.push(message);
    },
  });
  await until(
    () => runtime.status().lifecycle === "online" && runtime.network.unavailableReason() === null,
    `${accountId} online`,
  );
  return { runtime, received, alerts };
}
