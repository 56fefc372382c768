// What the network page shows of one account, as plain bounded JSON: lifecycle and registration, peers by
// handshake state, pending requests, the outbox, refusals, and the live actor tree (each actor's machine and its
// active states). Strings from peers and the registry pass through as data: the browser inserts them as text,
// never as markup. Lists are capped so a gateway with 10,000 peers sends a page, not a dump.
import type { AccountNetwork, PeerView } from "../../../runtime/account-network.js";
import type { AccountRuntimeStatus } from "../../../runtime/account-runtime.js";
import type { OutboxView } from "../../../runtime/outbox.js";
import { activePaths } from "./diagram-layout.js";

export const LIMITS = {
  peers: 200,
  pending: 100,
  outbox: 50,
  awake: 50,
  text: 500,
} as const;

/** What the page reads of an account runtime (the real one, or a test's). */
export interface PageAccount {
  readonly accountId: string;
  status(): AccountRuntimeStatus;
  /** Missing while the transport is still being set up. */
  readonly network: AccountNetwork | undefined;
  readonly actor: PageActor;
}

export interface PageActor {
  getSnapshot(): {
    value?: unknown;
    status: string;
    children?: Record<string, unknown>;
    context?: { peers?: { size: number } };
  };
}

export interface ActorView {
  /** The actor's id in the tree: "account:<id>", "daemon", "inbox", "handshake:<peer>"... */
  id: string;
  /** Which machine's diagram it runs (a key of the page's layouts), or null for a non-machine actor. */
  machine: string | null;
  status: string;
  active: string[];
}

export interface AccountView {
  accountId: string;
  lifecycle: string;
  registration: {
    hostname: string | null;
    agentId: string | null;
    peerId: string | null;
    fingerprint: string;
    registryUrl: string;
    /** With several registry URLs: which one is in use (1-based) of how many, and the last failover. */
    registryFailover: {
      inUse: number;
      configured: number;
      lastAt: string | null;
      lastFrom: string | null;
    } | null;
    discoverable: boolean;
    lastHeartbeatAt: string | null;
    lastError: string | null;
  };
  transport: string | null;
  unavailableReason: string | null;
  peers: {
    counts: Record<string, number>;
    total: number;
    shown: PeerView[];
  };
  pending: PeerView[];
  outbox: { counts: Record<string, number>; messages: OutboxView[] } | null;
  refusals: {
    refused: Record<string, number>;
    unreadable: Record<string, number>;
    alerts: Array<{ peer: string; kind: string; fingerprint: string; at: string }>;
  };
  actors: { root: ActorView; children: ActorView[]; awakePeers: number; restingPeers: number };
}

/**
 * Peer states in the order the page lists them, with the words it shows for each: sent to the browser with the
 * state (`peerStates`), so the page holds no copy of either.
 */
export const PEER_STATES = [
  { state: "pendingApproval", name: "pending approval" },
  { state: "suspended", name: "suspended (new key)" },
  { state: "requested", name: "requested" },
  { state: "trusted", name: "trusted" },
  { state: "rejected", name: "rejected" },
  { state: "revoked", name: "revoked" },
  { state: "unknown", name: "unknown" },
] as const;

const STATE_ORDER: readonly string[] = PEER_STATES.map((entry) => entry.state);

function clip(text: string | null, max: number = LIMITS.text): string | null {
  if (text === null) return null;
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function peerOut(peer: PeerView): PeerView {
  return { ...peer, introduction: clip(peer.introduction) };
}

function machineOf(actor: unknown): string | null {
  const logic = (actor as { logic?: { id?: unknown; root?: unknown } }).logic;
  return logic && typeof logic.id === "string" && logic.root ? logic.id : null;
}

function actorView(id: string, actor: unknown): ActorView | null {
  const getSnapshot = (actor as { getSnapshot?: () => { value?: unknown; status?: string } }).getSnapshot;
  if (typeof getSnapshot !== "function") return null;
  const snapshot = getSnapshot.call(actor);
  return {
    id,
    machine: machineOf(actor),
    status: snapshot.status ?? "active",
    active: activePaths(snapshot.value),
  };
}

function actorsOf(account: PageAccount): AccountView["actors"] {
  const snapshot = account.actor.getSnapshot();
  const root: ActorView = {
    id: `account:${account.accountId}`,
    machine: machineOf(account.actor) ?? "account",
    status: snapshot.status,
    active: activePaths(snapshot.value),
  };
  const loops: ActorView[] = [];
  const handshakes: ActorView[] = [];
  for (const [id, child] of Object.entries(snapshot.children ?? {})) {
    const view = actorView(id, child);
    if (!view) continue;
    (id.startsWith("handshake:") ? handshakes : loops).push(view);
  }
  handshakes.sort((a, b) => a.id.localeCompare(b.id));
  const totalPeers = snapshot.context?.peers?.size ?? 0;
  return {
    root,
    children: [...loops, ...handshakes.slice(0, LIMITS.awake)],
    awakePeers: handshakes.length,
    restingPeers: Math.max(0, totalPeers - handshakes.length),
  };
}

export function projectAccount(account: PageAccount): AccountView {
  const status = account.status();
  const network = account.network;
  const peers = network?.peers() ?? [];
  const counts: Record<string, number> = Object.fromEntries(STATE_ORDER.map((state) => [state, 0]));
  for (const peer of peers) counts[peer.state] = (counts[peer.state] ?? 0) + 1;
  const rank = (peer: PeerView) => STATE_ORDER.indexOf(peer.state);
  const ordered = [...peers].sort(
    (a, b) => rank(a) - rank(b) || (a.hostname ?? "").localeCompare(b.hostname ?? ""),
  );
  const counters = network?.counters();
  const identity = network?.identity();
  return {
    accountId: account.accountId,
    lifecycle: status.lifecycle,
    registration: {
      hostname: status.hostname,
      agentId: status.agentId,
      peerId: status.peerId,
      fingerprint: status.fingerprint,
      registryUrl: status.registryUrl,
      registryFailover:
        status.registry.configured > 1
          ? {
              inUse: status.registry.index + 1,
              configured: status.registry.configured,
              lastAt: status.registry.lastFailover?.at ?? null,
              lastFrom: status.registry.lastFailover?.from ?? null,
            }
          : null,
      discoverable: status.discoverable,
      lastHeartbeatAt: status.lastHeartbeatAt,
      lastError: status.lastError ? clip(status.lastError.message) : null,
    },
    transport: network?.transport ?? null,
    unavailableReason: network ? network.unavailableReason() : "starting",
    peers: { counts, total: peers.length, shown: ordered.slice(0, LIMITS.peers).map(peerOut) },
    pending: ordered
      .filter((peer) => peer.state === "pendingApproval")
      .slice(0, LIMITS.pending)
      .map(peerOut),
    outbox:
      network && counters?.outbox
        ? { counts: counters.outbox, messages: network.outbox({ finished: 10 }).slice(0, LIMITS.outbox) }
        : null,
    refusals: {
      refused: counters?.refused ?? {},
      unreadable: counters?.unreadable ?? {},
      alerts: (identity?.alerts ?? []).slice(0, LIMITS.pending),
    },
    actors: actorsOf(account),
  };
}
