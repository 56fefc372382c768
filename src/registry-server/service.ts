// The registry's rules, independent of HTTP: registration upsert without id churn, liveness from last_seen
// and the ttl, agent-token checks, relay messages with dedupe, and the trust handshake. Callers pass parsed,
// validated input; every failure is a RegistryHttpError naming the operation and the next step.
import { createHash, randomUUID } from "node:crypto";
import {
  normalizeRecordFields,
  rewrittenField,
  type ServedFields,
  type SignedRecordFields,
} from "../identity/signed-record.js";
import { issueToken, matchesHash, sha256Hex } from "./auth.js";
import {
  badRequest,
  conflict,
  forbidden,
  insufficientStorage,
  notFound,
  payloadTooLarge,
  tooManyRequests,
  unauthorized,
  unprocessable,
} from "./errors.js";
import type { InboxWaiters } from "./inbox-waiters.js";
import { JsonStream } from "./json-text.js";
import { isPeerId, peerIdOf } from "./peer-id.js";
import type { ProofResult } from "./proofs.js";
import { SendRateLimiter } from "./rate-limit.js";
import {
  LOOKUP_MAX_PER_NODE_ID,
  MAX_MESSAGE_BODY_BYTES,
  type PatchInput,
  type RegistrationInput,
  type SendMessageInput,
} from "./schemas.js";
import type {
  ListedTrust,
  RegistryStore,
  StoredAgent,
  StoredMessageHead,
  TrustStatus,
  TrustWrite,
} from "./store.js";

/** The public agent record (contract: "Agent record"). */
export interface AgentRecord {
  id: string;
  hostname: string;
  /** Secret: shown only to the owner (its registration and PATCH replies); null in public records. */
  installation_id: string | null;
  /** Public id of the agent for relay and trust (derived one way from the installation id). */
  peer_id: string | null;
  pilot_node_id: number | null;
  pilot_address: string | null;
  display_name: string | null;
  description: string | null;
  capabilities: string[];
  status: "online" | "offline";
  last_seen: string;
  created_at: string;
  updated_at: string;
  /** The Ed25519 key the record is bound to (base64url), or null for a record without one. */
  public_key: string | null;
  /** The agent's own JWS over the record's public fields (null exactly when public_key is). */
  signed_record: string | null;
}

export interface RelayMessage {
  message_id: string;
  /** The sender's peer id. */
  from_peer_id: string;
  /** The sender's PEER id too: the field keeps its name for older clients and never carries the secret. */
  from_installation_id: string;
  from_hostname: string;
  body: unknown;
  created_at: string;
  cursor: string;
}

export interface TrustPeer {
  requester_id: string;
  target_id: string;
  status: TrustStatus;
  created_at: string;
  approved_at?: string;
  updated_at: string;
  /** Hostname of the other side's agent; null when no agent has that peer id (purged or never registered). */
  peer_hostname: string | null;
  /** Only on pending records shown to their target: what the pending read shows of the request. */
  introduction?: string | null;
  assistant_name?: string | null;
  human_name?: string | null;
}

/** The trust list: whole, or one page of changes (then with has_more). */
export interface TrustList {
  peers: TrustPeer[];
  /** Continue reading changes after this (the highest change of the records returned, or the given cursor). */
  next_cursor: string;
  has_more?: boolean;
}

/** A page of trust changes after a cursor (a change sequence). */
export interface TrustChangesQuery {
  after: number;
  limit: number;
}

/** Credentials a request presented for acting as an agent. */
export interface Caller {
  bearer: string | undefined;
  /** What its X-Agent-Proof proved (checked by the route); absent on calls that take no proof. */
  proof?: ProofResult;
}

/** The fields of a `signed_record` whose signature the route verified; null when it did not verify. */
export type VerifiedRecord = SignedRecordFields | null;

/** A record's fields as a signed record covers them (for rewrittenField). */
function servedFields(agent: StoredAgent): ServedFields {
  return {
    hostname: agent.hostname,
    displayName: agent.displayName,
    description: agent.description,
    capabilities: agent.capabilities,
    pilotNodeId: agent.pilotNodeId === null ? null : String(agent.pilotNodeId),
    pilotAddress: agent.pilotAddress,
    publicKey: agent.publicKey,
  };
}

export interface RegistryServiceOptions {
  store: RegistryStore;
  waiters: InboxWaiters;
  now: () => number;
  ttlSeconds: number;
  agentTokens: boolean;
  requireTrust: boolean;
  /**
   * Release period: how long a record that went offline (or deregistered) keeps its hostname and ownership
   * before the sweep purges it and the hostname is free.
   */
  offlineRetentionSeconds: number;
  messageRetentionSeconds: number;
  /** sha256 of the operator's admin key (admin routes are disabled without it). */
  adminKeyHash?: string | undefined;
  /** Unacknowledged messages one inbox may hold (0 = no limit); beyond it sends get 507. */
  inboxMaxMessages?: number;
  /** Stored body bytes one inbox may hold (0 = no limit); beyond it sends get 507. */
  inboxMaxBytes?: number;
  /** Sends a minute per sender installation (token bucket; 0 = no limit); beyond it sends get 429. */
  sendRatePerMinute?: number;
  /** Sends a sender may make at once before the rate applies. */
  sendBurst?: number;
}

export const DEFAULT_INBOX_MAX_MESSAGES = 1000;
export const DEFAULT_INBOX_MAX_BYTES = 32 * 1024 * 1024;
export const DEFAULT_SEND_RATE_PER_MINUTE = 120;
export const DEFAULT_SEND_BURST = 60;
/** `{"messages":[` + `],"next_cursor":"<15 digits>"}` and some slack: what a page costs besides its messages. */
const PAGE_OVERHEAD_BYTES = 64;

/** One inbox page: `count` messages, written as JSON `{messages:[RelayMessage], next_cursor}` by `body`. */
export interface InboxPageText {
  count: number;
  body: JsonStream;
}

const iso = (ms: number) => new Date(ms).toISOString();

export class RegistryService {
  readonly #sendRate: SendRateLimiter;

  constructor(readonly options: RegistryServiceOptions) {
    this.#sendRate = new SendRateLimiter({
      perMinute: options.sendRatePerMinute ?? DEFAULT_SEND_RATE_PER_MINUTE,
      burst: options.sendBurst ?? DEFAULT_SEND_BURST,
      now: options.now,
    });
  }

  get #store() {
    return this.options.store;
  }

  #now(): number {
    return this.options.now();
  }

  #ttlMs(): number {
    return this.options.ttlSeconds * 1000;
  }

  isOnline(agent: Pick<StoredAgent, "lastSeen">, now = this.#now()): boolean {
    return now - agent.lastSeen <= this.#ttlMs();
  }

  /** The earliest last_seen that still counts as online. */
  onlineSince(now = this.#now()): number {
    return now - this.#ttlMs();
  }

  /** When a record's claim on its hostname lapses if it is not seen again (ttl + release period). */
  releaseAt(agent: Pick<StoredAgent, "lastSeen">): number {
    return agent.lastSeen + this.#ttlMs() + this.options.offlineRetentionSeconds * 1000;
  }

  /** The record still holds its hostname and ownership (online, offline or deregistered, not yet released). */
  #isHeld(agent: Pick<StoredAgent, "lastSeen">, now: number): boolean {
    return now <= this.releaseAt(agent);
  }

  /** A record past its release period goes at once, with its inbox (the sweep would do the same later). */
  async #purge(agent: StoredAgent): Promise<void> {
    await this.#store.deleteAgent(agent.id);
    if (agent.installationId) await this.#store.deleteInbox(agent.installationId);
  }

  /** An agent by peer id or installation id (older clients send installation ids; both are indexed). */
  async #agentByAnyId(id: string): Promise<StoredAgent | undefined> {
    return isPeerId(id)
      ? ((await this.#store.getAgentByPeerId(id)) ?? (await this.#store.getAgentByInstallation(id)))
      : await this.#store.getAgentByInstallation(id);
  }

  /** Ownership checks are on: records that hold a token hash can only be changed with that token. */
  #owned(agent: Pick<StoredAgent, "tokenHash">): boolean {
    return this.options.agentTokens && agent.tokenHash !== null;
  }

  /**
   * What to do about a registration this caller cannot take over (ends 401/403/409 details). Kept short, with
   * the date early: clients shorten details (the plugin keeps 300 characters).
   */
  #recovery(agent: StoredAgent): string {
    return (
      `token lost? wait until ${iso(this.releaseAt(agent))} (release), ask the operator to run ` +
      `'agent-registry release --url <registry> --hostname ${agent.hostname}', or use another hostname`
    );
  }

  /** Re-registering, patching or deleting an owned record needs its token: none -> 401, another -> 403. */
  #requireOwner(agent: StoredAgent, caller: Caller, operation: string): void {
    if (!this.#owned(agent)) return;
    if (!caller.bearer) {
      throw unauthorized(
        operation,
        `hostname '${agent.hostname}' is owned: send its saved agent_token as Authorization: Bearer <agent_token>; ` +
          this.#recovery(agent),
      );
    }
    if (!matchesHash(caller.bearer, agent.tokenHash!)) {
      throw forbidden(
        operation,
        `wrong token: hostname '${agent.hostname}' is owned by another agent_token; send the one saved from its last registration; ` +
          this.#recovery(agent),
      );
    }
  }

  /** The request is signed with the key this record is bound to (a fresh proof for exactly this request). */
  #provesKey(agent: StoredAgent, caller: Caller): boolean {
    return (
      agent.publicKey !== null && caller.proof?.kind === "valid" && caller.proof.publicKey === agent.publicKey
    );
  }

  /** What to do about a record bound to a key the caller cannot sign with (ends 401/409 details). */
  #keyRecovery(agent: StoredAgent): string {
    return (
      `key lost? ask the operator to run 'agent-registry release --url <registry> --hostname ${agent.hostname}', ` +
      "which unbinds it, or use another hostname"
    );
  }

  /**
   * A record bound to a key is changed only by requests signed with that key; its agent token alone is refused
   * (401), so a stolen token cannot move, change or delete the record, and the key holder needs no token.
   */
  #requireKey(agent: StoredAgent, caller: Caller, operation: string): void {
    if (this.#provesKey(agent, caller)) return;
    const proof = caller.proof ?? { kind: "none" };
    const bound = `hostname '${agent.hostname}' is bound to a key`;
    const problem =
      proof.kind === "none"
        ? `${bound}: sign the request with that key (header X-Agent-Proof); the agent token alone is not enough`
        : proof.kind === "invalid"
          ? `X-Agent-Proof refused: ${proof.reason}; ${bound}: sign this exact request (method, path, body) with it`
          : `X-Agent-Proof is signed by another key; ${bound}: sign with that one`;
    throw unauthorized(operation, `${problem}; ${this.#keyRecovery(agent)}`, "Agent-Proof");
  }

  /**
   * Binding a key to a record (new, or one without a key) needs a proof signed with that key: possession now, not
   * just a signed record, which anyone may have copied from a registry's answers.
   */
  #requireNewKey(publicKey: string, caller: Caller, operation: string): void {
    if (caller.proof?.kind === "valid" && caller.proof.publicKey === publicKey) return;
    const why =
      caller.proof?.kind === "invalid"
        ? `X-Agent-Proof refused: ${caller.proof.reason}`
        : "no X-Agent-Proof signed with it";
    throw unauthorized(
      operation,
      `binding public_key to a record needs the request signed with that key (header X-Agent-Proof): ${why}`,
      "Agent-Proof",
    );
  }

  /**
   * The signed record a write leaves on `next`: it verified (`verified` is what verifyRecord made of it), names the
   * record's key and agrees with every field it covers. 400 naming what is wrong.
   */
  #checkSigned(operation: string, next: StoredAgent, verified: VerifiedRecord): void {
    if (next.publicKey === null) {
      throw badRequest(
        operation,
        "signed_record needs public_key: send the key it is signed with, or neither of the two",
      );
    }
    if (!verified) {
      throw badRequest(
        operation,
        "signed_record does not verify: send a compact JWS (alg EdDSA, typ agent-record+jws) over the record's fields, signed by the key it names",
      );
    }
    if (verified.public_key !== next.publicKey) {
      throw badRequest(
        operation,
        "signed_record names another key than public_key: sign the record with the key the request carries",
      );
    }
    const field = rewrittenField(verified, servedFields(next));
    if (field) {
      throw badRequest(
        operation,
        `signed_record does not match the record: field ${field} differs; sign the fields as the record gets them (capabilities lowercase, without duplicates)`,
      );
    }
  }

  /** 409 for a hostname held by another record, with the date it is released. */
  #held(operation: string, holder: StoredAgent, now: number) {
    const state = this.isOnline(holder, now) ? "online" : "offline or deregistered";
    return conflict(
      operation,
      `hostname '${holder.hostname}' is held by another registration (${state}) until at least ` +
        `${iso(this.releaseAt(holder))}; use another hostname, or if it is yours and its token or key is lost, ask the operator to run ` +
        `'agent-registry release --url <registry> --hostname ${holder.hostname}'`,
    );
  }

  /**
   * A hostname another record holds: the caller may take it only when that record is unowned, unkeyed and offline
   * (or past its release period); the stale record then gives way with its inbox. Otherwise 409.
   */
  async #claimHostname(operation: string, holder: StoredAgent, now: number): Promise<void> {
    const claimed = this.#owned(holder) || holder.publicKey !== null || this.isOnline(holder, now);
    if (this.#isHeld(holder, now) && claimed) {
      throw this.#held(operation, holder, now);
    }
    await this.#purge(holder);
  }

  /**
   * Public records never show the installation id (it is the agent's secret); `owner` is for the replies to
   * the owner's own registration and PATCH.
   */
  toRecord(agent: StoredAgent, now = this.#now(), owner = false): AgentRecord {
    return {
      id: agent.id,
      hostname: agent.hostname,
      installation_id: owner ? agent.installationId : null,
      peer_id: agent.peerId,
      pilot_node_id: agent.pilotNodeId,
      pilot_address: agent.pilotAddress,
      display_name: agent.displayName,
      description: agent.description,
      capabilities: agent.capabilities,
      status: this.isOnline(agent, now) ? "online" : "offline",
      last_seen: iso(agent.lastSeen),
      created_at: iso(agent.createdAt),
      updated_at: iso(agent.updatedAt),
      public_key: agent.publicKey,
      signed_record: agent.signedRecord,
    };
  }

  /**
   * Acting as an agent needs its token when tokens are on: none -> 401, someone else's -> 403.
   * `who` names the identity in the message so the caller knows which token was expected.
   */
  #requireAgent(
    agent: Pick<StoredAgent, "tokenHash"> | undefined,
    caller: Caller,
    operation: string,
    who: string,
  ): void {
    if (!this.options.agentTokens) return;
    if (!caller.bearer) {
      throw unauthorized(
        operation,
        `${operation} acts as ${who}: send Authorization: Bearer <agent_token> with the token returned when it registered`,
      );
    }
    if (!agent?.tokenHash || !matchesHash(caller.bearer, agent.tokenHash)) {
      throw forbidden(
        operation,
        `the bearer token is not the agent token of ${who}; use the agent_token from that agent's latest registration (re-register to get a new one)`,
      );
    }
  }

  // ---- agents -------------------------------------------------------------------------------------------

  /**
   * The keys a registration's X-Agent-Proof may be signed with: those of the records it may replace (matched by
   * hostname or installation id) and the one it asks to bind. The route checks the proof against them (async)
   * before register(), which then compares keys inside its transaction.
   */
  async registrationKeys(input: RegistrationInput): Promise<string[]> {
    const keys = [input.public_key, (await this.#store.getAgentByHostname(input.hostname))?.publicKey];
    if (input.installation_id)
      keys.push((await this.#store.getAgentByInstallation(input.installation_id))?.publicKey);
    return keys.filter((k): k is string => typeof k === "string");
  }

  /** The keys a PATCH or DELETE of agent `id` may be signed with: the record's, and one a PATCH binds. */
  async agentKeys(id: string, publicKey?: string | null): Promise<string[]> {
    return [(await this.#store.getAgentById(id))?.publicKey, publicKey].filter(
      (k): k is string => typeof k === "string",
    );
  }

  async register(
    input: RegistrationInput,
    caller: Caller,
    verified: VerifiedRecord = null,
  ): Promise<{ created: boolean; record: AgentRecord; token?: string }> {
    const operation = "register agent";
    const publicKey = input.public_key ?? null;
    const signedRecord = input.signed_record ?? null;
    if ((publicKey === null) !== (signedRecord === null)) {
      throw badRequest(
        operation,
        "public_key and signed_record go together: send both (the key and the record signed with it) or neither",
      );
    }
    return await this.#store.transaction(async () => {
      const now = this.#now();
      const installationId = input.installation_id ?? null;
      let byHostname = await this.#store.getAgentByHostname(input.hostname);
      let byInstallation = installationId
        ? await this.#store.getAgentByInstallation(installationId)
        : undefined;
      // Records past their release period are as good as purged: the sweep may just not have run yet.
      if (byHostname && !this.#isHeld(byHostname, now)) {
        await this.#purge(byHostname);
        if (byInstallation?.id === byHostname.id) byInstallation = undefined;
        byHostname = undefined;
      }
      if (byInstallation && !this.#isHeld(byInstallation, now)) {
        await this.#purge(byInstallation);
        byInstallation = undefined;
      }
      if (byHostname && byHostname.installationId !== installationId) {
        const owner =
          byHostname.publicKey !== null
            ? this.#provesKey(byHostname, caller)
            : this.#owned(byHostname) && caller.bearer && matchesHash(caller.bearer, byHostname.tokenHash!);
        if (owner) {
          // The owner itself (it proves the key, or the token of an unkeyed record) registering under a new
          // installation id: allowed unless that installation already has a record of its own.
          if (byInstallation && byInstallation.id !== byHostname.id) {
            throw conflict(
              operation,
              `installation_id is already registered as agent ${byInstallation.id} ('${byInstallation.hostname}'); register with that agent's hostname or another installation_id`,
            );
          }
          byInstallation = byHostname;
        } else {
          await this.#claimHostname(operation, byHostname, now);
          byHostname = undefined;
        }
      }
      const existing = byHostname ?? byInstallation;
      if (existing?.publicKey) {
        // A record bound to a key goes on only with a request signed by that key (the token is not needed: that
        // is how a key holder that lost its token gets a new one). Another key without that signature is
        // someone else asking for the hostname; with it, the holder rotating its key.
        if (!this.#provesKey(existing, caller) && publicKey !== null && publicKey !== existing.publicKey) {
          throw conflict(
            operation,
            `hostname '${existing.hostname}' is bound to another key; to move it to a new key, sign the registration (X-Agent-Proof) with the old one; ${this.#keyRecovery(existing)}`,
          );
        }
        this.#requireKey(existing, caller, operation);
        if (publicKey === null) {
          throw badRequest(
            operation,
            `hostname '${existing.hostname}' is bound to a key: a registration must carry public_key and signed_record (a new key to rotate it); ${this.#keyRecovery(existing)}`,
          );
        }
      } else {
        // Matched by hostname or by installation id, an owned record needs its token: an installation id alone
        // is no proof (older registries published it), and without this anyone could move or read the agent.
        if (existing) this.#requireOwner(existing, caller, operation);
        if (publicKey !== null) this.#requireNewKey(publicKey, caller, operation);
      }
      // The owner's valid token is kept, not rotated: a reply lost in transit must not lock the owner out. A key
      // holder without it (or with a stale one) gets a new token.
      const keep =
        existing &&
        this.#owned(existing) &&
        caller.bearer !== undefined &&
        matchesHash(caller.bearer, existing.tokenHash!);
      const token = !this.options.agentTokens
        ? undefined
        : keep
          ? { token: caller.bearer!, hash: existing.tokenHash! }
          : issueToken();
      const fields = {
        hostname: input.hostname,
        installationId,
        peerId: installationId ? peerIdOf(installationId) : null,
        pilotNodeId: input.pilot_node_id ?? null,
        pilotAddress: input.pilot_address ?? null,
        displayName: input.display_name ?? null,
        description: input.description ?? null,
        capabilities: input.capabilities ?? [],
        tokenHash: token?.hash ?? null,
        publicKey,
        signedRecord,
        lastSeen: now,
        updatedAt: now,
      };
      if (existing) {
        const agent: StoredAgent = { ...existing, ...fields };
        if (signedRecord !== null) this.#checkSigned(operation, agent, verified);
        await this.#store.updateAgent(agent);
        return { created: false, record: this.toRecord(agent, now, true), token: token?.token };
      }
      const agent: StoredAgent = {
        id: await this.#newAgentId(installationId, fields.hostname),
        createdAt: now,
        ...fields,
      };
      if (signedRecord !== null) this.#checkSigned(operation, agent, verified);
      await this.#store.insertAgent(agent);
      return { created: true, record: this.toRecord(agent, now, true), token: token?.token };
    });
  }

  /**
   * The same installation under the same hostname always gets the same id, even after it deregistered (a
   * plugin reload deletes and re-creates the record): ids do not churn. Anonymous registrations get a random id.
   */
  async #newAgentId(installationId: string | null, hostname: string): Promise<string> {
    if (!installationId) return randomUUID();
    const hex = createHash("sha256").update(`agent:${installationId}:${hostname}`).digest("hex");
    const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
    return (await this.#store.getAgentById(id)) ? randomUUID() : id;
  }

  async patch(
    id: string,
    input: PatchInput,
    caller: Caller,
    verified: VerifiedRecord = null,
  ): Promise<AgentRecord> {
    const operation = "update agent";
    return await this.#store.transaction(async () => {
      const now = this.#now();
      const agent = await this.#store.getAgentById(id);
      if (!agent) throw notFound(operation, `agent ${id} is unknown; register it with POST /api/v1/agents/`);
      if (agent.publicKey !== null) this.#requireKey(agent, caller, operation);
      else this.#requireAgent(agent, caller, operation, `agent ${id}`);
      const next: StoredAgent = { ...agent, updatedAt: now };
      if (input.hostname !== undefined && input.hostname !== agent.hostname) {
        const holder = await this.#store.getAgentByHostname(input.hostname);
        if (holder && holder.id !== id) await this.#claimHostname(operation, holder, now);
        next.hostname = input.hostname;
      }
      if (input.installation_id !== undefined && input.installation_id !== agent.installationId) {
        const holder = input.installation_id
          ? await this.#store.getAgentByInstallation(input.installation_id)
          : undefined;
        if (holder && holder.id !== id) {
          throw conflict(
            operation,
            `installation_id '${input.installation_id}' belongs to agent ${holder.id}`,
          );
        }
        next.installationId = input.installation_id;
        next.peerId = input.installation_id ? peerIdOf(input.installation_id) : null;
      }
      if (input.pilot_node_id !== undefined) next.pilotNodeId = input.pilot_node_id;
      if (input.pilot_address !== undefined) next.pilotAddress = input.pilot_address;
      if (input.display_name !== undefined) next.displayName = input.display_name;
      if (input.description !== undefined) next.description = input.description;
      if (input.capabilities !== undefined) next.capabilities = input.capabilities ?? [];
      this.#patchKey(operation, agent, next, input, caller, verified);
      await this.#store.updateAgent(next);
      return this.toRecord(next, now, true);
    });
  }

  /**
   * The key and signed record a PATCH leaves on `next`. A key is bound by its holder (a proof signed with it) or
   * rotated by the old key's holder (proven already); it is never removed here (the operator's release does
   * that). A signed record sent must match the result; one left out is kept only while the result still matches
   * it, so a keyed record never serves fields its agent did not sign.
   */
  #patchKey(
    operation: string,
    agent: StoredAgent,
    next: StoredAgent,
    input: PatchInput,
    caller: Caller,
    verified: VerifiedRecord,
  ): void {
    if (input.public_key !== undefined && input.public_key !== agent.publicKey) {
      if (input.public_key === null) {
        throw badRequest(
          operation,
          `hostname '${agent.hostname}' is bound to a key and a PATCH cannot unbind it; send a new key to rotate it, or ${this.#keyRecovery(agent)}`,
        );
      }
      if (agent.publicKey === null) this.#requireNewKey(input.public_key, caller, operation);
      next.publicKey = input.public_key;
    }
    if (input.signed_record) {
      this.#checkSigned(operation, next, verified);
      next.signedRecord = input.signed_record;
      return;
    }
    if (next.publicKey === null) return;
    const before =
      agent.publicKey === null
        ? "public_key"
        : rewrittenField(
            normalizeRecordFields({ ...agent, publicKey: agent.publicKey, issuedAt: new Date(0) }),
            servedFields(next),
          );
    if (before !== null) {
      throw badRequest(
        operation,
        `this PATCH changes ${before}, which the record's signature covers: send a new signed_record matching the updated record`,
      );
    }
  }

  async remove(id: string, caller: Caller): Promise<void> {
    const operation = "deregister agent";
    // One transaction: a concurrent PATCH (on this or another replica) must not be undone by this write.
    await this.#store.transaction(async () => {
      const agent = await this.#store.getAgentById(id);
      if (!agent) throw notFound(operation, `agent ${id} is unknown (already deregistered or purged)`);
      if (agent.publicKey !== null) this.#requireKey(agent, caller, operation);
      else this.#requireAgent(agent, caller, operation, `agent ${id}`);
      if (!this.options.agentTokens) {
        // No tokens, no owner to hold the hostname for: the original behaviour.
        await this.#store.deleteAgent(id);
        return;
      }
      // Deregistering keeps the claim: the record goes offline at once (its last_seen moves back by the ttl, so
      // search, by-hostname and heartbeats treat it as offline) and keeps its hostname, token and inbox for the
      // release period; the owner re-registering with its token revives the same id.
      const now = this.#now();
      await this.#store.updateAgent({
        ...agent,
        lastSeen: Math.min(agent.lastSeen, this.onlineSince(now) - 1),
        updatedAt: now,
      });
    });
  }

  async heartbeat(id: string, caller: Caller): Promise<{ ok: true; last_seen: string; ttl_seconds: number }> {
    const operation = "heartbeat";
    const now = this.#now();
    const answer = { ok: true as const, last_seen: iso(now), ttl_seconds: this.options.ttlSeconds };
    // Where the store shares writes (PostgreSQL), a heartbeat is one write that checks liveness and the token
    // itself; the record is read only when it is refused, to say why (or to find it was a race, and write then).
    const tokenHash = this.options.agentTokens ? caller.bearer && sha256Hex(caller.bearer) : null;
    if (this.#store.touchOnlineAgent && tokenHash !== undefined) {
      if (await this.#store.touchOnlineAgent(id, now, this.onlineSince(now), tokenHash)) return answer;
    }
    const agent = await this.#store.getAgentLiveness(id);
    if (!agent || !this.isOnline(agent, now)) {
      throw notFound(
        operation,
        `agent ${id} is ${agent ? "expired" : "unknown"}; register again at once with POST /api/v1/agents/`,
      );
    }
    this.#requireAgent(agent, caller, operation, `agent ${id}`);
    // The write may be batched with other heartbeats (PostgreSQL): it is answered once written. A record deleted,
    // deregistered or released since the check above (on any replica) is not revived by it.
    if (!(await this.#store.touchAgent(id, now, agent.lastSeen))) {
      throw notFound(
        operation,
        `agent ${id} was deregistered or expired just now; register again at once with POST /api/v1/agents/`,
      );
    }
    return answer;
  }

  async get(id: string): Promise<AgentRecord> {
    const agent = await this.#store.getAgentById(id);
    if (!agent) throw notFound("get agent", `agent ${id} is unknown`);
    return this.toRecord(agent);
  }

  async byHostname(hostname: string, includeOffline: boolean): Promise<AgentRecord> {
    const now = this.#now();
    const agent = await this.#store.getAgentByHostname(hostname);
    if (!agent || (!includeOffline && !this.isOnline(agent, now))) {
      throw notFound(
        "get agent by hostname",
        `no ${includeOffline ? "" : "online "}agent has hostname '${hostname}'`,
      );
    }
    return this.toRecord(agent, now);
  }

  async list(query: {
    hostname?: string;
    installationId?: string;
    peerId?: string;
    pilotNodeId?: number;
    includeOffline: boolean;
    limit: number;
    offset: number;
  }): Promise<{ agents: AgentRecord[]; total: number }> {
    const now = this.#now();
    const page = await this.#store.listAgents({
      hostname: query.hostname,
      // An older client filters by the id it saw in records, which is now a peer id.
      ...(query.installationId !== undefined && isPeerId(query.installationId)
        ? { peerId: query.installationId }
        : { installationId: query.installationId }),
      ...(query.peerId !== undefined ? { peerId: query.peerId } : {}),
      pilotNodeId: query.pilotNodeId,
      seenSince: query.includeOffline ? undefined : this.onlineSince(now),
      limit: query.limit,
      offset: query.offset,
    });
    return { agents: page.items.map((a) => this.toRecord(a, now)), total: page.total };
  }

  /**
   * Agents by node id or peer id, offline ones too, each once (ids that match nothing are left out). Peer ids
   * match the public peer id only: a batched probe of installation ids would test guesses of secrets.
   */
  async lookup(query: { pilotNodeIds: number[]; peerIds: string[] }): Promise<{ agents: AgentRecord[] }> {
    const now = this.#now();
    const agents = await this.#store.lookupAgents({
      pilotNodeIds: [...new Set(query.pilotNodeIds)],
      peerIds: [...new Set(query.peerIds)],
      perNodeId: LOOKUP_MAX_PER_NODE_ID,
    });
    return { agents: agents.map((a) => this.toRecord(a, now)) };
  }

  async search(query: {
    q: string;
    capabilities: string[];
    match: "any" | "all";
    includeOffline: boolean;
    limit: number;
    offset: number;
  }): Promise<{ agents: AgentRecord[]; total: number; total_exact: boolean }> {
    const now = this.#now();
    const phrase = query.q.trim().toLowerCase();
    const terms = [...new Set(phrase.split(/\s+/).filter(Boolean))];
    const page = await this.#store.searchAgents({
      phrase,
      terms,
      capabilities: [...new Set(query.capabilities.map((c) => c.toLowerCase()))],
      match: query.match,
      seenSince: query.includeOffline ? undefined : this.onlineSince(now),
      limit: query.limit,
      offset: query.offset,
    });
    return {
      agents: page.items.map((a) => this.toRecord(a, now)),
      total: page.total,
      total_exact: page.totalExact ?? true,
    };
  }

  // ---- relay --------------------------------------------------------------------------------------------

  async #trusted(a: string, b: string): Promise<boolean> {
    const ab = (await this.#store.getTrust(a, b))?.status;
    const ba = (await this.#store.getTrust(b, a))?.status;
    if (ab === "blocked" || ba === "blocked") return false;
    return ab === "approved" || ba === "approved";
  }

  async sendMessage(input: SendMessageInput, caller: Caller): Promise<{ ok: true; message_id: string }> {
    const operation = "send relay message";
    // Measured as stored (escaped JSON text without its quotes): what inbox pages and quotas are made of.
    const bodyJson = JSON.stringify(input.body);
    const bytes = Buffer.byteLength(bodyJson) - 2;
    if (bytes > MAX_MESSAGE_BODY_BYTES) {
      throw payloadTooLarge(
        operation,
        `message body is ${bytes} bytes as stored (JSON-escaped: a control character takes 6 bytes, a quote or backslash 2); the relay carries at most ${MAX_MESSAGE_BODY_BYTES} bytes, split or shorten it`,
      );
    }
    const sender = await this.#agentByAnyId(input.from_installation_id);
    this.#requireAgent(sender, caller, operation, `installation ${input.from_installation_id}`);
    if (this.options.agentTokens && sender && sender.hostname !== input.from_hostname) {
      throw forbidden(
        operation,
        `from_hostname '${input.from_hostname}' is not the hostname registered for installation ${input.from_installation_id} ('${sender.hostname}')`,
      );
    }
    const wait = this.#sendRate.take(input.from_installation_id);
    if (wait > 0) {
      throw tooManyRequests(
        operation,
        `installation ${input.from_installation_id} is sending faster than ${this.options.sendRatePerMinute ?? DEFAULT_SEND_RATE_PER_MINUTE} messages a minute; retry after ${wait} s`,
        wait,
      );
    }
    // The recipient by peer id (new), hostname, or to_installation_id (which also takes a peer id: older
    // clients put the id they saw in records there). A hostname held after deregistration still names its
    // owner, so its messages wait in the owner's inbox and never reach a newcomer.
    const byPeer = input.to_peer_id ? await this.#store.getAgentByPeerId(input.to_peer_id) : undefined;
    const byInstallation = input.to_installation_id
      ? await this.#agentByAnyId(input.to_installation_id)
      : undefined;
    const byHostname = input.to_hostname
      ? await this.#store.getAgentByHostname(input.to_hostname)
      : undefined;
    const named = [byPeer, byInstallation, byHostname].filter((a) => a !== undefined);
    if (named.some((a) => a.id !== named[0]!.id)) {
      throw unprocessable(operation, [
        {
          loc: ["body", "to_hostname"],
          msg: "to_peer_id, to_hostname and to_installation_id name different agents; send only one",
          type: "value_error",
        },
      ]);
    }
    // A record past its release period is as good as purged (the sweep may not have run yet).
    const recipient = named[0] && this.#isHeld(named[0], this.#now()) ? named[0] : undefined;
    if (!recipient) {
      throw notFound(
        operation,
        `unknown recipient ${input.to_peer_id ?? input.to_installation_id ?? input.to_hostname}; look it up with GET /api/v1/agents/search`,
      );
    }
    if (!recipient.installationId) {
      throw notFound(
        operation,
        `recipient ${recipient.hostname} registered without installation_id and has no relay inbox`,
      );
    }
    const to = recipient.installationId;
    // Messages and trust name the sender by its peer id: the installation id is the sender's secret.
    const fromPeer = sender?.peerId ?? this.#peerOf(input.from_installation_id);
    if (this.options.requireTrust && !(await this.#trusted(fromPeer, recipient.peerId ?? ""))) {
      throw forbidden(
        operation,
        `no approved trust between ${fromPeer} and ${recipient.peerId} ('${recipient.hostname}'); request it with POST /api/v1/trust/request and wait for approval`,
      );
    }
    const messageId = input.message_id ?? randomUUID();
    const { message, duplicate } = await this.#store.transaction(async () => {
      await this.#checkQuota(operation, recipient.hostname, to, messageId, bytes + 2);
      return await this.#store.insertMessage({
        messageId,
        toInstallationId: to,
        fromInstallationId: fromPeer,
        fromHostname: sender?.hostname ?? input.from_hostname,
        bodyJson,
        createdAt: this.#now(),
      });
    });
    if (duplicate && message.fromInstallationId !== fromPeer) {
      throw conflict(
        operation,
        `message_id ${messageId} is already used in this inbox; use a fresh id (a UUID)`,
      );
    }
    if (!duplicate) this.options.waiters.notify(to);
    return { ok: true, message_id: messageId };
  }

  /** 507 when the message would take the inbox past its quota; a resend of a stored message always passes. */
  async #checkQuota(
    operation: string,
    hostname: string,
    to: string,
    messageId: string,
    storedBytes: number,
  ): Promise<void> {
    const maxMessages = this.options.inboxMaxMessages ?? DEFAULT_INBOX_MAX_MESSAGES;
    const maxBytes = this.options.inboxMaxBytes ?? DEFAULT_INBOX_MAX_BYTES;
    if (maxMessages <= 0 && maxBytes <= 0) return;
    const usage = await this.#store.inboxUsage(to);
    const overCount = maxMessages > 0 && usage.messages + 1 > maxMessages;
    const overBytes = maxBytes > 0 && usage.bytes + storedBytes > maxBytes;
    if ((overCount || overBytes) && !(await this.#store.hasMessage(to, messageId))) {
      throw insufficientStorage(
        operation,
        `the relay inbox of ${hostname} is full (${usage.messages} unacknowledged messages, ${usage.bytes} bytes; at most ${maxMessages} messages and ${maxBytes} bytes); try again later, once it has read its messages`,
      );
    }
  }

  async #requireInbox(installationId: string, caller: Caller, operation: string): Promise<void> {
    if (!this.options.agentTokens) return;
    const agent = await this.#store.getAgentByInstallation(installationId);
    this.#requireAgent(agent, caller, operation, `installation ${installationId}`);
  }

  /** Checks that the caller may read the inbox (so long-polls fail fast instead of waiting). */
  async authorizeInbox(installationId: string, caller: Caller): Promise<void> {
    await this.#requireInbox(installationId, caller, "read relay inbox");
  }

  /**
   * One page of the inbox: at most `limit` messages and at most `maxBytes` of JSON text (always at least one
   * message when there is one, which the body limit bounds). The page is planned from the rows' stored sizes
   * without reading bodies; the bodies are then read one at a time as the socket drains and placed in the text
   * as stored (no parse, no second escaping). A read so holds about one message in memory, not one page.
   */
  async inbox(
    installationId: string,
    after: number,
    limit: number,
    maxBytes: number,
    caller: Caller,
    /** Read when the page is written: whether the caller's trust changed (see trustChangedSince), if asked. */
    trustChanged: () => boolean | undefined = () => undefined,
  ): Promise<InboxPageText> {
    await this.#requireInbox(installationId, caller, "read relay inbox");
    const since = this.#now() - this.options.messageRetentionSeconds * 1000;
    const planned: Array<{ head: StoredMessageHead; text: [string, string] }> = [];
    let size = PAGE_OVERHEAD_BYTES;
    for (const head of await this.#store.listMessageHeads(installationId, after, since, limit)) {
      const text = relayMessageText(head, planned.length > 0);
      const bytes = Buffer.byteLength(text[0]) + head.bodyBytes + Buffer.byteLength(text[1]);
      if (planned.length > 0 && size + bytes > maxBytes) break;
      planned.push({ head, text });
      size += bytes;
    }
    const last = planned.at(-1)?.head.seq;
    const nextCursor = last !== undefined ? String(last) : after > 0 ? String(after) : null;
    const store = this.#store;
    async function* chunks(): AsyncGenerator<string> {
      yield '{"messages":[';
      let first = true;
      for (const { head, text } of planned) {
        // Acknowledged (or purged) since the page was planned: left out; next_cursor still passes it.
        const body = await store.getMessageBody(installationId, head.seq);
        if (body === undefined) continue;
        yield first ? relayMessageText(head, false)[0] : text[0];
        yield body;
        yield text[1];
        first = false;
      }
      const changed = trustChanged();
      const trust = changed === undefined ? "" : `,"trust_changed":${changed}`;
      yield `],"next_cursor":${JSON.stringify(nextCursor)}${trust}}`;
    }
    return { count: planned.length, body: new JsonStream(chunks) };
  }

  async ack(
    input: { installation_id: string; message_ids: string[] },
    caller: Caller,
  ): Promise<{ acked: number }> {
    await this.#requireInbox(input.installation_id, caller, "acknowledge relay messages");
    return { acked: await this.#store.deleteMessages(input.installation_id, input.message_ids) };
  }

  // ---- trust --------------------------------------------------------------------------------------------

  /** The peer id for an id that names no registered agent (a peer id already, or an installation id). */
  #peerOf(id: string): string {
    return isPeerId(id) ? id : peerIdOf(id);
  }

  /**
   * The caller's own side of a trust call: its installation id or peer id, proven by its token. Returns the
   * peer id trust records are keyed by.
   */
  async #trustSelf(id: string, caller: Caller, operation: string, role: string): Promise<string> {
    const agent = await this.#agentByAnyId(id);
    this.#requireAgent(agent, caller, operation, `installation ${id}${role}`);
    return agent?.peerId ?? this.#peerOf(id);
  }

  /** The other side of a trust call: by peer id (or, for older clients, installation id). */
  async #trustOther(id: string): Promise<{ peerId: string; agent: StoredAgent | undefined }> {
    const agent = await this.#agentByAnyId(id);
    return { peerId: agent?.peerId ?? this.#peerOf(id), agent };
  }

  /**
   * Whether any trust record of the inbox's agent changed after `after` (a trust-list cursor): the relay inbox
   * answers a long-poll with it, so a client learns of a request or a decision at once instead of polling its trust
   * list. Undefined when the agent has no peer id (it keeps no trust records).
   */
  async trustChangedSince(installationId: string, after: number): Promise<boolean | undefined> {
    const agent = await this.#store.getAgentByInstallation(installationId);
    if (!agent?.peerId) return undefined;
    return (await this.#store.listTrustChanges(agent.peerId, after, 1)).length > 0;
  }

  /** Wakes the relay long-polls of both sides of a trust change (after its transaction committed). */
  async #wakeTrustParties(peerIds: readonly string[]): Promise<void> {
    for (const peerId of new Set(peerIds)) {
      const installationId = (await this.#store.getAgentByPeerId(peerId))?.installationId;
      if (installationId) this.options.waiters.notify(installationId);
    }
  }

  async trustRequest(
    input: {
      from_id: string;
      to_id: string;
      introduction?: string | null;
      assistant_name?: string | null;
      human_name?: string | null;
    },
    caller: Caller,
  ): Promise<{ created: boolean; status: "pending" | "approved" }> {
    const operation = "request trust";
    const selfRequest = () =>
      unprocessable(operation, [
        {
          loc: ["body", "to_id"],
          msg: "an installation cannot request trust with itself",
          type: "value_error",
        },
      ]);
    if (input.from_id === input.to_id) throw selfRequest();
    let parties: string[] = [];
    const result = await this.#store.transaction(async () => {
      const now = this.#now();
      const from = await this.#trustSelf(input.from_id, caller, operation, "");
      const other = await this.#trustOther(input.to_id);
      if (!other.agent) {
        throw notFound(
          operation,
          `${input.to_id} is not a registered agent; use the peer_id of a record from GET /api/v1/agents/search`,
        );
      }
      const to = other.peerId;
      if (from === to) throw selfRequest();
      parties = [from, to];
      const own = await this.#store.getTrust(from, to);
      const reverse = await this.#store.getTrust(to, from);
      if (own?.status === "blocked") {
        throw forbidden(operation, `${input.to_id} does not accept trust requests from you`);
      }
      if (own?.status === "approved") return { created: false, status: "approved" as const };
      const text = {
        introduction: input.introduction ?? own?.introduction ?? null,
        assistantName: input.assistant_name ?? own?.assistantName ?? null,
        humanName: input.human_name ?? own?.humanName ?? null,
      };
      if (reverse && (reverse.status === "pending" || reverse.status === "approved")) {
        // Both sides asked for each other: that is consent from both, so trust is approved at once.
        await this.#store.putTrust({ ...reverse, status: "approved", approvedAt: now, updatedAt: now });
        await this.#store.putTrust({
          requesterId: from,
          targetId: to,
          status: "approved",
          ...text,
          createdAt: own?.createdAt ?? now,
          approvedAt: now,
          updatedAt: now,
        });
        return { created: true, status: "approved" as const };
      }
      if (own?.status === "pending") {
        await this.#store.putTrust({ ...own, ...text, updatedAt: now });
        return { created: false, status: "pending" as const };
      }
      await this.#store.putTrust({
        requesterId: from,
        targetId: to,
        status: "pending",
        ...text,
        createdAt: now,
        approvedAt: null,
        updatedAt: now,
      });
      return { created: true, status: "pending" as const };
    });
    await this.#wakeTrustParties(parties);
    return result;
  }

  async trustDecision(
    decision: "approve" | "reject" | "block",
    input: { from_id: string; to_id: string },
    caller: Caller,
  ): Promise<{ status: TrustStatus }> {
    const operation = `${decision} trust`;
    let parties: string[] = [];
    const result = await this.#store.transaction(async () => {
      const now = this.#now();
      const to = await this.#trustSelf(input.to_id, caller, operation, " (to_id is the deciding side)");
      const other = await this.#trustOther(input.from_id);
      const from = other.peerId;
      parties = [from, to];
      const record = await this.#store.getTrust(from, to);
      if (!record && decision !== "block") {
        throw notFound(
          operation,
          `no trust request from ${input.from_id} to ${input.to_id}; list them with GET /api/v1/trust/pending/${input.to_id}`,
        );
      }
      if (!record && !other.agent) {
        // Blocking an id nobody registered would only fill the table with rows for made-up ids.
        throw notFound(
          operation,
          `${input.from_id} is not a registered agent; block a peer_id from a record or from your trust list`,
        );
      }
      const reverse = await this.#store.getTrust(to, from);
      const status: TrustStatus =
        decision === "approve" ? "approved" : decision === "reject" ? "rejected" : "blocked";
      const base: TrustWrite = record ?? {
        requesterId: from,
        targetId: to,
        status,
        introduction: null,
        assistantName: null,
        humanName: null,
        createdAt: now,
        approvedAt: null,
        updatedAt: now,
      };
      await this.#store.putTrust({
        ...base,
        status,
        approvedAt: status === "approved" ? now : null,
        updatedAt: now,
      });
      if (reverse && reverse.status !== "blocked") {
        // Trust is symmetric: approving also settles the other direction, and rejecting or blocking
        // revokes it both ways.
        if (status === "approved" && reverse.status === "pending") {
          await this.#store.putTrust({ ...reverse, status: "approved", approvedAt: now, updatedAt: now });
        } else if (status !== "approved" && (reverse.status === "approved" || reverse.status === "pending")) {
          await this.#store.putTrust({ ...reverse, status: "rejected", approvedAt: null, updatedAt: now });
        }
      }
      return { status };
    });
    await this.#wakeTrustParties(parties);
    return result;
  }

  /**
   * Either side ends a trust relationship: approved or pending records become rejected in both directions
   * (blocks stay). The caller is whichever side its token proves; a new request and approval can restore it.
   */
  async trustRevoke(
    input: { from_id: string; to_id: string },
    caller: Caller,
  ): Promise<{ status: "revoked"; changed: number }> {
    const operation = "revoke trust";
    let parties: string[] = [];
    const result = await this.#store.transaction(async () => {
      const now = this.#now();
      const a = await this.#trustOther(input.from_id);
      const b = await this.#trustOther(input.to_id);
      parties = [a.peerId, b.peerId];
      if (this.options.agentTokens) {
        if (!caller.bearer) {
          throw unauthorized(
            operation,
            `${operation} acts as one of its two sides: send Authorization: Bearer <agent_token> of from_id or to_id`,
          );
        }
        const proves = (agent: StoredAgent | undefined) =>
          agent?.tokenHash != null && matchesHash(caller.bearer!, agent.tokenHash);
        if (!proves(a.agent) && !proves(b.agent)) {
          throw forbidden(
            operation,
            "the bearer token is the agent token of neither from_id nor to_id; send your own agent_token and put your own id on one side",
          );
        }
      }
      let changed = 0;
      for (const [x, y] of [
        [a.peerId, b.peerId],
        [b.peerId, a.peerId],
      ] as const) {
        const record = await this.#store.getTrust(x, y);
        if (record && (record.status === "approved" || record.status === "pending")) {
          await this.#store.putTrust({ ...record, status: "rejected", approvedAt: null, updatedAt: now });
          changed++;
        }
      }
      return { status: "revoked" as const, changed };
    });
    if (result.changed > 0) await this.#wakeTrustParties(parties);
    return result;
  }

  /** Trust reads show who asked an agent for what: only that agent (its token) may read them. */
  async pendingTrust(id: string, caller: Caller) {
    const self = await this.#trustSelf(id, caller, "list pending trust requests", "");
    const requests = (await this.#store.listPendingTrust(self)).map((t) => ({
      from_id: t.requesterId,
      requester_id: t.requesterId,
      to_id: t.targetId,
      from_assistant_name: t.assistantName,
      from_human_name: t.humanName,
      introduction: t.introduction,
      created_at: iso(t.createdAt),
    }));
    return { requests, relationships: requests };
  }

  /**
   * The caller's trust records, both directions: all of them, or (with `changes`) those changed after a cursor,
   * so a client that keeps a copy reads only what changed. Either way `next_cursor` is where to continue.
   */
  async trustList(id: string, caller: Caller, changes?: TrustChangesQuery): Promise<TrustList> {
    const operation = "list trust";
    const self = await this.#trustSelf(id, caller, operation, "");
    const show = (t: ListedTrust) => trustPeerOf(t, self);
    if (!changes) {
      const records = await this.#store.listTrust(self);
      const last = records.reduce((max, t) => Math.max(max, t.changeSeq), 0);
      return { peers: records.map(show), next_cursor: String(last) };
    }
    if (changes.after > (await this.#store.lastTrustChange())) {
      // Only a registry restored from an older copy can get here: the reader's copy holds changes this
      // registry never made, so continuing from its cursor would miss the ones it makes next.
      throw conflict(
        operation,
        `cursor ${changes.after} is ahead of this registry's trust changes (was it restored from a backup?); read the whole list again, without after`,
      );
    }
    const records = await this.#store.listTrustChanges(self, changes.after, changes.limit + 1);
    const page = records.slice(0, changes.limit);
    return {
      peers: page.map(show),
      next_cursor: String(page.at(-1)?.changeSeq ?? changes.after),
      has_more: records.length > changes.limit,
    };
  }

  // ---- operator ------------------------------------------------------------------------------------------

  /**
   * Operator recovery for an owner that lost its token or its key: drops the record's ownership (token and key)
   * and takes it offline, so the next registration of that hostname (by any installation) gets a fresh token and
   * may bind a new key; another installation replaces the record and its inbox.
   */
  async adminRelease(
    hostname: string,
    adminKey: string | undefined,
  ): Promise<{ released: true; id: string; hostname: string }> {
    const operation = "release hostname";
    if (!this.options.adminKeyHash) {
      throw forbidden(
        operation,
        "admin routes are disabled on this registry; start it with --admin-key (or env AGENT_REGISTRY_ADMIN_KEY) to enable them",
      );
    }
    if (!adminKey) {
      throw unauthorized(
        operation,
        "send the operator's admin key as X-Registry-Admin-Key (agent-registry release reads it from AGENT_REGISTRY_ADMIN_KEY)",
        "X-Registry-Admin-Key",
      );
    }
    if (!matchesHash(adminKey, this.options.adminKeyHash)) {
      throw forbidden(operation, "wrong X-Registry-Admin-Key; use the key the registry was started with");
    }
    return await this.#store.transaction(async () => {
      const now = this.#now();
      const agent = await this.#store.getAgentByHostname(hostname);
      if (!agent)
        throw notFound(operation, `no registration holds hostname '${hostname}'; it is free already`);
      // The key goes with the token: an owner that lost its key registers again with a new one, and until then
      // the record serves no signature (readers that pinned the old key see the change).
      await this.#store.updateAgent({
        ...agent,
        tokenHash: null,
        publicKey: null,
        signedRecord: null,
        lastSeen: Math.min(agent.lastSeen, this.onlineSince(now) - 1),
        updatedAt: now,
      });
      return { released: true as const, id: agent.id, hostname };
    });
  }

  /** Forgets this process's idle rate-limit buckets (per replica: every replica does it on every tick). */
  sweepLocal(): void {
    this.#sendRate.sweep();
  }

  /** Purges agents offline past the retention period and messages older than theirs. */
  async sweep(): Promise<{ agents: number; messages: number }> {
    const now = this.#now();
    this.sweepLocal();
    return {
      agents: await this.#store.purgeAgents(
        now - this.#ttlMs() - this.options.offlineRetentionSeconds * 1000,
      ),
      messages: await this.#store.purgeMessages(now - this.options.messageRetentionSeconds * 1000),
    };
  }
}

/** A trust record as `self` sees it: the request's text only when self is its target and it is pending. */
function trustPeerOf(t: ListedTrust, self: string): TrustPeer {
  const request =
    t.status === "pending" && t.targetId === self
      ? { introduction: t.introduction, assistant_name: t.assistantName, human_name: t.humanName }
      : {};
  return {
    requester_id: t.requesterId,
    target_id: t.targetId,
    status: t.status,
    created_at: iso(t.createdAt),
    ...(t.approvedAt !== null ? { approved_at: iso(t.approvedAt) } : {}),
    updated_at: iso(t.updatedAt),
    peer_hostname: t.peerHostname,
    ...request,
  };
}

/**
 * A RelayMessage as JSON text around its body: `head` + the stored body JSON + `tail`. The stored text is
 * already valid JSON (a string, or an object stored before bodies had to be strings), so it goes in as it is.
 */
function relayMessageText(m: StoredMessageHead, comma: boolean): [string, string] {
  const head = JSON.stringify({
    message_id: m.messageId,
    from_peer_id: m.fromInstallationId,
    from_installation_id: m.fromInstallationId,
    from_hostname: m.fromHostname,
  });
  const tail = JSON.stringify({ created_at: iso(m.createdAt), cursor: String(m.seq) });
  return [`${comma ? "," : ""}${head.slice(0, -1)},"body":`, `,${tail.slice(1)}`];
}
