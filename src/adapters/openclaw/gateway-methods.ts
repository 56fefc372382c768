// Operator surface: gateway methods under `agent-registry.*` (and the original plugin's `agent-registry/*` names as
// aliases where the gateway accepts them). Read-only methods need operator.read; anything that changes state
// needs operator.write. Parameters are validated; errors carry a code and say what to pass. The registry URL
// always comes from the account's config, never from params. Every method finishes its work before it answers:
// nothing outlives the response, so none needs runDetachedWebhookWork.
import type { OpenClawPluginApi } from "openclaw/plugin-sdk/channel-core";
import { z } from "zod";
import {
  type AccountNetwork,
  NetworkError,
  type NetworkErrorCode,
  PEER_STATES,
  type PeerState,
} from "../../runtime/account-network.js";
import type { AccountRuntime } from "../../runtime/account-runtime.js";
import { type AccountRuntimes, NoAccountError } from "../../runtime/account-runtimes.js";
import { clampSearchLimit, SEARCH_CAPABILITIES_MAX } from "./tool.schema.js";

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

const accountId = z.string().min(1).optional();
const accountParams = z.object({ accountId }).strict();
const peerRef = z.string().trim().min(1, "peer: pass the hostname, node id or assistant name").max(200);

/** NetworkError codes as gateway method error codes (the operator's CLI shows them). */
export const NETWORK_ERROR_CODES: Record<NetworkErrorCode, string> = {
  NO_TRANSPORT: "UNAVAILABLE",
  TRANSPORT_UNAVAILABLE: "UNAVAILABLE",
  NOT_FOUND: "NOT_FOUND",
  NOT_TRUSTED: "NOT_TRUSTED",
  NOT_PENDING: "NOT_PENDING",
  OWNER_APPROVAL_REQUIRED: "FORBIDDEN",
  UNVERIFIED: "NOT_FOUND",
  INVALID: "INVALID_PARAMS",
  OUTBOX_FULL: "UNAVAILABLE",
  FAILED: "FAILED",
};

function peersByState(network: AccountNetwork): Record<PeerState, number> {
  const counts = Object.fromEntries(PEER_STATES.map((state) => [state, 0])) as Record<PeerState, number>;
  for (const peer of network.peers()) counts[peer.state] = (counts[peer.state] ?? 0) + 1;
  return counts;
}

/** Status of one account with its network: lifecycle from the account actor, transport, peers and counters. */
function accountStatus(runtime: AccountRuntime) {
  const network = runtime.network as AccountNetwork | undefined;
  // A runtime whose transport is still being set up has no network yet; status must still answer.
  if (!network) {
    return {
      ...runtime.status(),
      transport: null,
      unavailableReason: "starting",
      peers: null,
      counters: null,
    };
  }
  return {
    ...runtime.status(),
    transport: network.transport,
    unavailableReason: network.unavailableReason(),
    peers: peersByState(network),
    counters: network.counters(),
    // This installation's fingerprint (what the owners of its peers compare), and peers that need the owner.
    identity: network.identity(),
  };
}

export function gatewayMethodSpecs(runtimes: AccountRuntimes): GatewayMethodSpec[] {
  return [
    {
      name: "agent-registry.status",
      scope: "operator.read",
      params: accountParams,
      run: async (params) => ({
        accounts: runtimes.select(params.accountId as string | undefined).map(accountStatus),
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
      params: z
        .object({ accountId: z.string().min(1).optional(), discoverable: z.boolean().nullable() })
        .strict(),
      run: async (params) => {
        const runtime = runtimes.get(params.accountId as string | undefined);
        const result = await runtime.setDiscoverable(params.discoverable as boolean | null);
        return { accountId: runtime.accountId, discoverable: runtime.status().discoverable, result };
      },
    },
    {
      name: "agent-registry.peers",
      scope: "operator.read",
      params: accountParams,
      run: async (params) => ({
        accounts: runtimes.select(params.accountId as string | undefined).map((runtime) => ({
          accountId: runtime.accountId,
          transport: runtime.network.transport,
          unavailableReason: runtime.network.unavailableReason(),
          peers: runtime.network.peers(),
        })),
      }),
    },
    {
      name: "agent-registry.search",
      scope: "operator.read",
      params: z
        .object({
          accountId,
          query: z.string().trim().max(500).optional(),
          capabilities: z
            .array(z.string().trim().min(1).max(64))
            .max(SEARCH_CAPABILITIES_MAX, `capabilities: at most ${SEARCH_CAPABILITIES_MAX} entries`)
            .optional(),
          match: z.enum(["any", "all"]).optional(),
          limit: z.number().optional(),
        })
        .strict(),
      run: async (params) => {
        const p = params as {
          accountId?: string;
          query?: string;
          capabilities?: string[];
          match?: "any" | "all";
          limit?: number;
        };
        const runtime = runtimes.get(p.accountId);
        const limit = clampSearchLimit(p.limit);
        const page = await runtime.network.search({
          ...(p.query ? { q: p.query } : {}),
          ...(p.capabilities?.length ? { capabilities: p.capabilities } : {}),
          match: p.match ?? "any",
          limit,
        });
        return {
          accountId: runtime.accountId,
          limit,
          total: page.total,
          agents: page.agents.slice(0, limit),
          // What the registry could not do as asked (e.g. match "all" on the original registry).
          ...(page.caveats?.length ? { caveats: page.caveats } : {}),
        };
      },
    },
    {
      name: "agent-registry.send",
      scope: "operator.write",
      params: z
        .object({
          accountId,
          to: z.string().trim().min(1, "to: pass the peer's hostname"),
          text: z.string().min(1, "text: pass the message to send"),
        })
        .strict(),
      run: async (params) => {
        const runtime = runtimes.get(params.accountId as string | undefined);
        const to = (params.to as string).toLowerCase();
        const { messageId, state, reason } = await runtime.network.send(to, params.text as string);
        return { accountId: runtime.accountId, to, messageId, state, reason };
      },
    },
    {
      name: "agent-registry.outbox",
      scope: "operator.read",
      params: z
        .object({
          accountId,
          peer: z.string().trim().min(1).max(253).optional(),
          finished: z.number().int().min(0).max(200).default(0),
        })
        .strict(),
      run: async (params) => ({
        accounts: runtimes.select(params.accountId as string | undefined).map((runtime) => ({
          accountId: runtime.accountId,
          counts: runtime.network.counters().outbox ?? null,
          messages: runtime.network.outbox({
            ...(params.peer ? { peer: params.peer as string } : {}),
            finished: params.finished as number,
          }),
        })),
      }),
    },
    {
      name: "agent-registry.pending",
      scope: "operator.read",
      params: accountParams,
      run: async (params) => {
        const accounts = [];
        for (const runtime of runtimes.select(params.accountId as string | undefined)) {
          accounts.push({
            accountId: runtime.accountId,
            approver: runtime.account.handshake.approver,
            requests: await runtime.network.pending(),
          });
        }
        return { accounts };
      },
    },
    {
      // The operator is the owner: approving here is what handshake.approver "owner" points the agent to.
      name: "agent-registry.approve",
      scope: "operator.write",
      params: z.object({ accountId, peer: peerRef }).strict(),
      run: async (params) => {
        const runtime = runtimes.get(params.accountId as string | undefined);
        return { accountId: runtime.accountId, peer: await runtime.network.approve(params.peer as string) };
      },
    },
    {
      name: "agent-registry.reject",
      scope: "operator.write",
      params: z.object({ accountId, peer: peerRef, reason: z.string().trim().max(500).optional() }).strict(),
      run: async (params) => {
        const runtime = runtimes.get(params.accountId as string | undefined);
        const peer = await runtime.network.reject(params.peer as string, params.reason as string | undefined);
        return { accountId: runtime.accountId, peer };
      },
    },
    {
      // The operator asks a peer to connect (what the agent's "handshake" action does), e.g. from the CLI.
      name: "agent-registry.handshake",
      scope: "operator.write",
      params: z
        .object({ accountId, peer: peerRef, introduction: z.string().trim().min(1).max(2000).optional() })
        .strict(),
      run: async (params) => {
        const runtime = runtimes.get(params.accountId as string | undefined);
        const peer = await runtime.network.handshake(
          params.peer as string,
          params.introduction as string | undefined,
        );
        return { accountId: runtime.accountId, peer };
      },
    },
    {
      name: "agent-registry.untrust",
      scope: "operator.write",
      params: z.object({ accountId, peer: peerRef }).strict(),
      run: async (params) => {
        const runtime = runtimes.get(params.accountId as string | undefined);
        return { accountId: runtime.accountId, peer: await runtime.network.untrust(params.peer as string) };
      },
    },
  ];
}

/**
 * Errors are told apart by name, not by class: OpenClaw may load this plugin's modules more than once in one
 * gateway (the runtimes are shared through globalThis), so an error thrown by one copy's class is not an instance
 * of another copy's.
 */
const isNamed = (error: unknown, name: string): error is Error & { code: string } =>
  error instanceof Error && error.name === name && typeof (error as { code?: unknown }).code === "string";

function errorCode(error: unknown): string {
  if (error instanceof NoAccountError || isNamed(error, "NoAccountError")) return "NO_ACCOUNT";
  if (error instanceof MethodError) return error.code;
  if (error instanceof NetworkError || isNamed(error, "NetworkError")) {
    return NETWORK_ERROR_CODES[error.code as NetworkErrorCode] ?? "FAILED";
  }
  return "FAILED";
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
    const handler: Parameters<OpenClawPluginApi["registerGatewayMethod"]>[1] = async ({
      params,
      respond,
    }) => {
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
        const message = error instanceof Error ? error.message : String(error);
        const details =
          error instanceof NetworkError || isNamed(error, "NetworkError")
            ? { networkCode: error.code }
            : undefined;
        respond(false, undefined, {
          code: errorCode(error),
          message,
          ...(details ? { details } : {}),
        } as never);
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
