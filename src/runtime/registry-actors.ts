// The account root's registry calls (register, heartbeat, update, deregister) bound to the registry client and
// the account's state file: the agent id, token and public peer id are saved as soon as the registry gives them.
import { fromPromise } from "xstate";
import { type RegistryClient, wireCapabilities } from "../adapters/registry/client.js";
import { RegistryError } from "../adapters/registry/errors.js";
import type { AgentMetadata as WireMetadata } from "../adapters/registry/types.js";
import type { AccountStateStore } from "../adapters/state/account-state.js";
import type { Identity } from "../identity/keys.js";
import { normalizeRecordFields, signRecord } from "../identity/signed-record.js";
import type { Log } from "../log.js";
import type {
  DeregisterAgentInput,
  RegisterAgentInput,
  RegisterAgentOutput,
  SendHeartbeatInput,
  SendHeartbeatOutput,
  UpdateAgentInput,
  UpdateAgentOutput,
} from "../machines/account.machine.js";
import type { AgentMetadata, PlainError } from "../machines/types.js";
import { toPlain } from "./plain-error.js";

export interface RegistryActorDeps {
  accountId: string;
  registryUrl: string;
  registry: RegistryClient;
  state: AccountStateStore;
  log: Log;
  /**
   * The installation's key: every registration and update then carries it and a freshly signed record (the
   * client signs the requests themselves with the same identity).
   */
  identity?: Identity;
  /** A registration succeeded in this run (with or without a token: the original registry issues none). */
  onRegistered?(): void;
}

/**
 * A registration refused because the hostname belongs to another registration (a registry that holds hostnames
 * for their owners says so with its release hint): typically this gateway lost its state directory, and with it
 * the agent token; or the record is bound to a key this gateway no longer holds. Said plainly, with the ways out;
 * null for any other failure (a wrong deployment key is a 401 too, but needs another fix).
 */
export function ownershipRefusal(
  error: unknown,
  context: { hostname: string; accountId: string; registryUrl: string },
): PlainError | null {
  if (!(error instanceof RegistryError) || error.operation !== "register") return null;
  if (error.status !== 401 && error.status !== 403 && error.status !== 409) return null;
  const detail = error.detail ?? "";
  if (!/agent-registry release/.test(detail)) return null;
  const releaseAt = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/.exec(detail)?.[0];
  const { hostname, accountId, registryUrl } = context;
  if (/is bound to (?:a|another) key/.test(detail)) {
    // The record is this installation's, or was: its key is not the one this gateway holds now.
    return {
      kind: error.kind === "unauthorized" ? "unauthorized" : "conflict",
      operation: "register",
      status: error.status,
      message:
        `hostname "${hostname}" is bound to a key this gateway does not hold (identity.key lost or replaced?). ` +
        "To recover: restore identity.key from a backup, ask the registry operator to run " +
        `"agent-registry release --url ${registryUrl} --hostname ${hostname}" (it unbinds the key; peers then ` +
        `approve the new fingerprint), or set a different hostname for account "${accountId}" (retrying with backoff)`,
    };
  }
  return {
    kind:
      error.kind === "unauthorized" ? "unauthorized" : error.kind === "forbidden" ? "forbidden" : "conflict",
    operation: "register",
    status: error.status,
    message:
      `hostname "${hostname}" is owned by another registration whose agent token this gateway does not have ` +
      "(lost or replaced state directory?). To recover: ask the registry operator to run " +
      `"agent-registry release --url ${registryUrl} --hostname ${hostname}", ` +
      `${releaseAt ? `or wait until ${releaseAt} when the registry releases it, ` : ""}` +
      `or set a different hostname for account "${accountId}" (retrying with backoff)`,
  };
}

/**
 * The metadata as sent; with an identity, its public key and a record signed now over exactly the fields the
 * registry will store (capabilities as the client sends them), so a reader can check every one of them.
 */
export async function toWire(meta: AgentMetadata, identity?: Identity): Promise<WireMetadata> {
  const wire: WireMetadata = {
    hostname: meta.hostname,
    installationId: meta.installationId,
    pilotNodeId: meta.pilotNodeId === null ? null : String(meta.pilotNodeId),
    pilotAddress: meta.pilotAddress,
    displayName: meta.displayName,
    description: meta.description,
    capabilities: wireCapabilities(meta.capabilities),
  };
  if (!identity) return wire;
  const fields = normalizeRecordFields({
    ...wire,
    publicKey: identity.publicKey,
    issuedAt: new Date(),
  });
  return { ...wire, publicKey: identity.publicKey, signedRecord: await signRecord(identity, fields) };
}

export function registryActors(deps: RegistryActorDeps) {
  const { registry, state, log, accountId, registryUrl, identity } = deps;
  return {
    registerAgent: fromPromise<RegisterAgentOutput, RegisterAgentInput>(async ({ input, signal }) => {
      try {
        // The saved token proves this gateway owns the registration (the registry refuses it otherwise).
        const result = await registry.register(await toWire(input.metadata, identity), {
          signal,
          token: state.identity().agentToken,
        });
        state.update({
          agentId: result.record.id,
          // A registry without tokens (the original) returns none: keep ours rather than forget it.
          agentToken: result.agentToken ?? state.identity().agentToken,
          peerId: result.record.peerId,
          registryUrl,
        });
        deps.onRegistered?.();
        log.info(
          `agent-registry: ${accountId} registered as ${input.metadata.hostname} (agent ${result.record.id})`,
        );
        return { agentId: result.record.id };
      } catch (error) {
        throw (
          ownershipRefusal(error, {
            hostname: input.metadata.hostname,
            accountId,
            registryUrl: registry.url,
          }) ?? toPlain(error, "register")
        );
      }
    }),
    sendHeartbeat: fromPromise<SendHeartbeatOutput, SendHeartbeatInput>(async ({ input, signal }) => {
      try {
        const result = await registry.heartbeat(input.agentId, state.identity().agentToken, { signal });
        return { lastSeen: result.lastSeen ?? new Date().toISOString() };
      } catch (error) {
        throw toPlain(error, "heartbeat");
      }
    }),
    updateAgent: fromPromise<UpdateAgentOutput, UpdateAgentInput>(async ({ input, signal }) => {
      try {
        const wire = await toWire(input.metadata, identity);
        const result = await registry.patch(input.agentId, state.identity().agentToken, wire, {
          signal,
          fallback: wire,
        });
        state.update({
          agentId: result.record.id,
          ...(result.agentToken ? { agentToken: result.agentToken } : {}),
          ...(result.record.peerId ? { peerId: result.record.peerId } : {}),
        });
        return { agentId: result.record.id };
      } catch (error) {
        throw toPlain(error, "update");
      }
    }),
    deregisterAgent: fromPromise<void, DeregisterAgentInput>(async ({ input, signal }) => {
      try {
        await registry.deregister(input.agentId, state.identity().agentToken, { signal });
        log.info(`agent-registry: ${accountId} deregistered (agent ${input.agentId})`);
      } catch (error) {
        throw toPlain(error, "deregister");
      }
    }),
  };
}

/** The account root's state-file actions. */
export function registryActions(state: AccountStateStore) {
  return {
    persistAgentId: (_: unknown, params: { agentId: string }) => {
      if (state.identity().agentId !== params.agentId) state.update({ agentId: params.agentId });
    },
    forgetAgentId: () => {
      // The token stays: the registry holds our hostname after deregistration, and the next registration
      // must present it to get the same record back (without it, another gateway could take it over).
      state.update({ agentId: null });
    },
  };
}
