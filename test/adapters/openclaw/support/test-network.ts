// A small AccountNetwork for tool and gateway-method tests: search and lookups go to a real registry through the
// real registry client; peers, handshakes and sent messages live in memory so tests can set up any trust state.
// Error codes follow the account runtime's network (src/runtime/peer-network.ts).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRegistryClient, type RegistryClient } from "../../../../src/adapters/registry/client.js";
import type { AgentPage, AgentRecord, SearchQuery } from "../../../../src/adapters/registry/types.js";
import { createAccountStateStore } from "../../../../src/adapters/state/account-state.js";
import { type ResolvedAccount, resolveAccount } from "../../../../src/config.js";
import {
  type AccountNetwork,
  type InboxReport,
  type NetworkCounters,
  NetworkError,
  type PeerView,
} from "../../../../src/runtime/account-network.js";
import type { AccountRuntime, AccountRuntimeStatus } from "../../../../src/runtime/account-runtime.js";

export interface SentMessage {
  to: string;
  text: string;
  messageId: string;
}

export function peer(partial: Partial<PeerView> & Pick<PeerView, "state">): PeerView {
  return {
    hostname: null,
    nodeId: null,
    installationId: null,
    introduction: null,
    assistantName: null,
    humanName: null,
    updatedAt: null,
    ...partial,
  };
}

export class TestNetwork implements AccountNetwork {
  transport: "pilot" | "relay" | "none" = "relay";
  unavailable: string | null = null;
  readonly known = new Map<string, PeerView>();
  readonly sent: SentMessage[] = [];
  readonly searches: SearchQuery[] = [];
  inboxReport: InboxReport = { undelivered: [], deadLettered: [] };
  failNext: Error | null = null;
  #nextId = 1;

  constructor(readonly registry: RegistryClient) {}

  /** Adds or replaces a peer (keyed by hostname, else node id, else assistant name). */
  add(view: PeerView): void {
    this.known.set(view.hostname ?? String(view.nodeId ?? view.assistantName), view);
  }

  #throwIfFailing(): void {
    const failure = this.failNext;
    this.failNext = null;
    if (failure) throw failure;
  }

  #find(ref: string): PeerView | undefined {
    const needle = ref.trim().toLowerCase();
    return [...this.known.values()].find(
      (p) =>
        p.hostname?.toLowerCase() === needle ||
        (p.nodeId !== null && String(p.nodeId) === needle) ||
        p.assistantName?.toLowerCase() === needle,
    );
  }

  #set(view: PeerView, patch: Partial<PeerView>): PeerView {
    const next = { ...view, ...patch, updatedAt: new Date().toISOString() };
    this.add(next);
    return next;
  }

  unavailableReason(): string | null {
    if (this.transport === "none") return "transport is none in this account's config";
    return this.unavailable;
  }

  async search(query: SearchQuery): Promise<AgentPage> {
    this.#throwIfFailing();
    this.searches.push(query);
    return this.registry.search(query);
  }

  async getAgent(hostname: string): Promise<AgentRecord | null> {
    this.#throwIfFailing();
    return this.registry.byHostname(hostname);
  }

  peers(): PeerView[] {
    return [...this.known.values()];
  }

  async pending(): Promise<PeerView[]> {
    this.#throwIfFailing();
    return this.peers().filter((p) => p.state === "pendingApproval");
  }

  async handshake(hostname: string, introduction?: string): Promise<PeerView> {
    this.#throwIfFailing();
    const existing = this.#find(hostname);
    if (existing?.state === "trusted") return existing;
    const record = await this.registry.byHostname(hostname);
    if (!record) throw new NetworkError("NOT_FOUND", `no online agent "${hostname}" in the registry`);
    return this.#set(existing ?? peer({ hostname, state: "unknown" }), {
      state: "requested",
      introduction: introduction ?? null,
      nodeId: record.pilotNodeId === null ? null : Number(record.pilotNodeId),
    });
  }

  async approve(ref: string): Promise<PeerView> {
    this.#throwIfFailing();
    // As the account runtime's network: approving an outgoing request too completes a mutual handshake.
    const found = this.#find(ref);
    if (!found || !["pendingApproval", "requested"].includes(found.state)) {
      throw new NetworkError("NOT_PENDING", `No pending handshake request from "${ref}"`);
    }
    return this.#set(found, { state: "trusted" });
  }

  async reject(ref: string, _reason?: string): Promise<PeerView> {
    this.#throwIfFailing();
    const found = this.#find(ref);
    if (found?.state !== "pendingApproval") {
      throw new NetworkError("NOT_PENDING", `No pending handshake request from "${ref}"`);
    }
    return this.#set(found, { state: "rejected" });
  }

  async untrust(ref: string): Promise<PeerView> {
    this.#throwIfFailing();
    const found = this.#find(ref);
    if (found?.state !== "trusted") throw new NetworkError("NOT_TRUSTED", `"${ref}" is not a trusted peer`);
    return this.#set(found, { state: "revoked" });
  }

  async send(hostname: string, text: string): Promise<{ messageId: string }> {
    this.#throwIfFailing();
    if (this.transport === "none")
      throw new NetworkError("NO_TRANSPORT", "messaging is off (transport none)");
    if (this.unavailable) throw new NetworkError("TRANSPORT_UNAVAILABLE", this.unavailable);
    if (this.#find(hostname)?.state !== "trusted") {
      throw new NetworkError("NOT_TRUSTED", `"${hostname}" has not approved a handshake with you`);
    }
    const messageId = `msg-${this.#nextId++}`;
    this.sent.push({ to: hostname, text, messageId });
    return { messageId };
  }

  inbox(): InboxReport {
    return this.inboxReport;
  }

  counters(): NetworkCounters {
    return {
      dispatched: 3,
      refused: { untrusted: 2 },
      deadLettered: this.inboxReport.deadLettered.length,
      duplicates: 1,
      sent: this.sent.length,
      lastInboundAt: null,
      lastOutboundAt: null,
    };
  }
}

export interface TestRuntime extends AccountRuntime {
  readonly network: TestNetwork;
}

const stateDirs: string[] = [];

/** A temp state directory, removed by removeStateDirs(). */
export function tempStateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "ar-tool-"));
  stateDirs.push(dir);
  return dir;
}

/** An AccountRuntime around any network; lifecycle methods are not used by these tests and say so. */
export function runtimeAround<N extends AccountNetwork>(
  account: ResolvedAccount,
  registry: RegistryClient,
  network: N,
): AccountRuntime & { readonly network: N } {
  const { accountId } = account;
  const unused = (name: string) => () => {
    throw new Error(`${name} is not used in tool tests`);
  };
  const status = (): AccountRuntimeStatus => ({
    lifecycle: "online",
    agentId: `agent-${accountId}`,
    discoverable: true,
    lastHeartbeatAt: null,
    heartbeatFailures: 0,
    lastError: null,
    nextRetryDelayMs: null,
    accountId,
    hostname: account.hostname,
    peerId: null,
    registryUrl: account.registryUrl,
    visibilitySource: "config",
    visibilityError: null,
  });
  return {
    accountId,
    account,
    registry,
    state: createAccountStateStore(tempStateDir()),
    network,
    status,
    metadata: unused("metadata"),
    refresh: unused("refresh"),
    setDiscoverable: unused("setDiscoverable"),
    setTransportInfo: unused("setTransportInfo"),
    stop: async () => {},
  };
}

/** A resolved account as the config would give it: hostname = account id unless config says otherwise. */
export function testAccount(
  accountId: string,
  registryUrl: string,
  config: Record<string, unknown> = {},
): ResolvedAccount {
  return resolveAccount(
    { accounts: { [accountId]: { hostname: accountId, registryUrl, ...config } } },
    accountId,
    {},
  );
}

/** An AccountRuntime around a TestNetwork backed by the registry at `registryUrl`. */
export function testRuntime(
  accountId: string,
  registryUrl: string,
  config: Record<string, unknown> = {},
): TestRuntime {
  const registry = createRegistryClient({ baseUrl: registryUrl, timeoutMs: 5_000 });
  return runtimeAround(testAccount(accountId, registryUrl, config), registry, new TestNetwork(registry));
}

export function removeStateDirs(): void {
  for (const dir of stateDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
