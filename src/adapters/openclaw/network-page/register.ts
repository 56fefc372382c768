// Wires the network page into the gateway: the shell and its assets (static, no data) and the API behind the
// gateway's own authentication. The API reads the caller's operator scopes from the gateway's request scope;
// with the "trusted-operator" surface those are the caller's real scopes (a device token's, a trusted proxy's
// declared ones; a shared gateway token or password is a full operator), not the blanket operator.write the
// default surface grants every authenticated caller, so read-only operators get a read-only page.
import type { OpenClawPluginApi } from "openclaw/plugin-sdk/channel-core";
import { getPluginRuntimeGatewayRequestScope } from "openclaw/plugin-sdk/plugin-runtime";
import type { AccountRuntimes } from "../../../runtime/account-runtimes.js";
import { API_PATH, ASSETS_PATH, createApiHandler, handleAsset, handlePage, PAGE_PATH } from "./routes.js";

function callerScopes(): readonly string[] | undefined {
  const client = getPluginRuntimeGatewayRequestScope()?.client as
    | { connect?: { scopes?: unknown } }
    | null
    | undefined;
  const scopes = client?.connect?.scopes;
  return Array.isArray(scopes) ? scopes.filter((s): s is string => typeof s === "string") : undefined;
}

export function registerNetworkPage(
  api: Pick<OpenClawPluginApi, "registerHttpRoute">,
  runtimes: AccountRuntimes,
) {
  api.registerHttpRoute({ path: PAGE_PATH, match: "exact", auth: "plugin", handler: handlePage });
  api.registerHttpRoute({ path: ASSETS_PATH, match: "prefix", auth: "plugin", handler: handleAsset });
  api.registerHttpRoute({
    path: API_PATH,
    match: "prefix",
    auth: "gateway",
    gatewayRuntimeScopeSurface: "trusted-operator",
    handler: createApiHandler({ accounts: () => runtimes.list(), callerScopes }),
  });
}
