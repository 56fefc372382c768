// Operator surface: gateway methods under `agent-registry.*` (and the original plugin's `agent-registry/*` names as
// aliases where the gateway accepts them). Read-only methods need operator.read; anything that changes state
// needs operator.write. Parameters are validated; errors carry a code and say what to pass.
import type { OpenClawPluginApi } from "openclaw/plugin-sdk/channel-core";
import { z } from "zod";
import { NoAccountError, type AccountRuntimes } from "../../runtime/account-runtimes.js";

type Scope = "operator.read" | "operator.write";

export interface GatewayMethodSpec {
  name: string;
  scope: Scope;
  params: z.ZodType;
  run(params: Record<string, unknown>): Promise<unknown>;
}

export class MethodError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const accountParams = z.object({ accountId: z.string().min(1).optional() }).strict();

export function gatewayMethodSpecs(runtimes: AccountRuntimes): GatewayMethodSpec[] {
  return [
    {
      name: "agent-registry.status",
      scope: "operator.read",
      params: accountParams,
      run: async (params) => ({
        accounts: runtimes.select(params.accountId as string | undefined).map((runtime) => runtime.status()),
      }),
    },
    {
      name: "agent-registry.refresh",
      scope: "operator.write",
      params: accountParams,
      run: async (params) => {
        const selected = runtimes.select(params.accountId as string | undefined);
        const results: Record<string, string> = {};
        for (const runtime of selected) results[runtime.accountId] = await runtime.refresh();
        return { results };
      },
    },
    {
      name: "agent-registry.visibility",
      scope: "operator.write",
      params: z.object({ accountId: z.string().min(1).optional(), discoverable: z.boolean().nullable() }).strict(),
      run: async (params) => {
        const runtime = runtimes.get(params.accountId as string | undefined);
        const result = await runtime.setDiscoverable(params.discoverable as boolean | null);
        return { accountId: runtime.accountId, discoverable: runtime.status().discoverable, result };
      },
    },
  ];
}

function describeParams(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join(".") || "params"}: ${issue.message}`).join("; ");
}

/** Registers every method under its dotted name, plus the slash alias when the gateway accepts it. */
export function registerGatewayMethods(
  api: Pick<OpenClawPluginApi, "registerGatewayMethod" | "logger">,
  specs: GatewayMethodSpec[],
): void {
  for (const spec of specs) {
    const handler: Parameters<OpenClawPluginApi["registerGatewayMethod"]>[1] = async ({ params, respond }) => {
      const parsed = spec.params.safeParse(params ?? {});
      if (!parsed.success) {
        respond(false, undefined, {
          code: "INVALID_PARAMS",
          message: `${spec.name}: ${describeParams(parsed.error)}`,
        } as never);
        return;
      }
      try {
        respond(true, await spec.run(parsed.data as Record<string, unknown>));
      } catch (error) {
        const code = error instanceof NoAccountError ? "NO_ACCOUNT" : error instanceof MethodError ? error.code : "FAILED";
        respond(false, undefined, { code, message: (error as Error).message } as never);
      }
    };
    api.registerGatewayMethod(spec.name, handler, { scope: spec.scope });
    const alias = spec.name.replace("agent-registry.", "agent-registry/");
    try {
      api.registerGatewayMethod(alias, handler, { scope: spec.scope });
    } catch (error) {
      // Gateways that reject "/" in method names only get the dotted name; the alias is a convenience.
      api.logger?.debug?.(`agent-registry: alias ${alias} not registered: ${(error as Error).message}`);
    }
  }
}
