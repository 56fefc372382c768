// The page's live feed: Server-Sent Events over one HTTP response. It watches each account's root actor and its
// children (the loops, awake handshakes), and sends an account's projection only when it changed, at most once
// per throttle interval; a slow tick catches what no actor announces (counters, accounts that came or went).
// A slow reader is not queued for: while the socket is full, changes are coalesced and the latest goes when it
// drains. Each stream ends after a while, so a revoked credential stops reading; the browser reconnects.
import type { ServerResponse } from "node:http";
import { getPeer, type PeerTable, peerKeyOfChild } from "../../../machines/peers.js";
import { activePaths } from "./diagram-layout.js";
import { type AccountView, type PageAccount, projectAccount } from "./projection.js";

export interface StreamOptions {
  /** Least time between two sends (default 250 ms). */
  throttleMs?: number;
  /** Re-projection without an actor event (default 3 s). */
  tickMs?: number;
  /** A comment line that keeps proxies from closing an idle stream (default 20 s). */
  pingMs?: number;
  /** The stream ends after this long (default 5 min). */
  maxMs?: number;
}

interface Subscribable {
  subscribe(observer: { next: (snapshot: unknown) => void; error: () => void }): { unsubscribe(): void };
  getSnapshot(): { value?: unknown; status?: string; children?: Record<string, unknown> };
}

const isSubscribable = (value: unknown): value is Subscribable =>
  typeof (value as Subscribable | null)?.subscribe === "function" &&
  typeof (value as Subscribable | null)?.getSnapshot === "function";

/** One change of an actor's active states, as the page's "recent transitions" list shows it. */
export interface TransitionView {
  accountId: string;
  actor: string;
  /** Dot paths of the deepest active states, e.g. "pendingApproval.waiting"; "(start)" / "(rests)" at the ends. */
  from: string;
  to: string;
  at: number;
}

/** At most this many transitions wait for the next send; older ones are dropped (the diagrams show the rest). */
const MAX_PENDING_TRANSITIONS = 100;

function leafLabel(snapshot: { value?: unknown; status?: string } | undefined): string {
  if (!snapshot || snapshot.value === undefined) return "(none)";
  const paths = activePaths(snapshot.value);
  const leaves = paths.filter((path) => !paths.some((other) => other.startsWith(`${path}.`)));
  const label = leaves.join(", ");
  return snapshot.status === "done" ? `${label} (done)` : label;
}

export function sseFrame(event: string, data: unknown): string {
  // JSON has no raw newlines, so one data line carries it.
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * Streams the accounts' projections into `res` until the client goes away or `maxMs` passes. Returns a function
 * that ends the stream (the server's shutdown, tests).
 */
export function openAccountStream(
  res: ServerResponse,
  accounts: () => PageAccount[],
  options: StreamOptions = {},
  project: (account: PageAccount) => AccountView = projectAccount,
): () => void {
  const throttleMs = options.throttleMs ?? 250;
  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
    "X-Content-Type-Options": "nosniff",
  });
  res.write(`retry: 2000\n\n`);

  const sent = new Map<string, string>();
  const watched = new Map<unknown, { accountId: string; unsubscribe(): void; gone(): void }>();
  let timer: NodeJS.Timeout | null = null;
  let blocked = false;
  let closed = false;
  let lastFlush = 0;

  const markDirty = () => {
    if (closed || timer || blocked) return;
    const wait = Math.max(0, lastFlush + throttleMs - Date.now());
    timer = setTimeout(flush, wait);
  };

  const transitions: TransitionView[] = [];
  const note = (entry: TransitionView) => {
    transitions.push(entry);
    if (transitions.length > MAX_PENDING_TRANSITIONS) transitions.shift();
  };

  /** Subscribes to the account's root and its current children; ends what left the tree (a handshake at rest). */
  const watchAccount = (account: PageAccount) => {
    const { accountId } = account;
    const seen = new Set<unknown>();
    const add = (id: string, actor: unknown, isRoot: boolean) => {
      if (!isSubscribable(actor)) return;
      seen.add(actor);
      if (watched.has(actor)) return;
      let last = leafLabel(actor.getSnapshot());
      const next = (snapshot: unknown) => {
        const now = leafLabel(snapshot as { value?: unknown; status?: string });
        if (now !== last) {
          note({ accountId, actor: id, from: last, to: now, at: Date.now() });
          last = now;
        }
        // A child woken and put to rest within one throttle interval is caught here, not at the next send.
        if (isRoot && !closed) watchAccount(account);
        markDirty();
      };
      // A handshake that settled is stopped by the root within the root's own reaction to its last snapshot, often
      // before this observer hears of it: where it ended is its record in the root's table.
      const gone = () => {
        const key = peerKeyOfChild(id);
        if (key === null) return;
        const peers = (account.actor.getSnapshot().context as { peers?: PeerTable } | undefined)?.peers;
        const record = peers?.buckets ? getPeer(peers, key) : undefined;
        const to = record ? `${record.state} (rests)` : "(rests)";
        note({ accountId, actor: id, from: last, to, at: Date.now() });
      };
      // An actor that already stopped cannot be subscribed to; it is gone from the next snapshot anyway.
      try {
        const subscription = actor.subscribe({ next, error: markDirty });
        watched.set(actor, { accountId, unsubscribe: () => subscription.unsubscribe(), gone });
      } catch {
        watched.set(actor, { accountId, unsubscribe() {}, gone() {} });
      }
    };
    add(`account:${accountId}`, account.actor, true);
    const children = (account.actor as Partial<Subscribable>).getSnapshot?.().children ?? {};
    for (const [id, child] of Object.entries(children)) add(id, child, false);
    for (const [actor, entry] of watched) {
      if (entry.accountId !== accountId || seen.has(actor)) continue;
      entry.unsubscribe();
      entry.gone();
      watched.delete(actor);
    }
  };

  const watch = (live: PageAccount[]) => {
    for (const account of live) watchAccount(account);
    const ids = new Set(live.map((account) => account.accountId));
    for (const [actor, entry] of watched) {
      if (ids.has(entry.accountId)) continue;
      entry.unsubscribe();
      watched.delete(actor);
    }
  };

  const send = (frame: string) => {
    if (!res.write(frame)) {
      blocked = true;
      res.once("drain", () => {
        blocked = false;
        markDirty();
      });
    }
  };

  function flush() {
    timer = null;
    if (closed) return;
    lastFlush = Date.now();
    const live = accounts();
    watch(live);
    const ids = new Set<string>();
    for (const account of live) {
      ids.add(account.accountId);
      let json: string;
      try {
        json = JSON.stringify(project(account));
      } catch (error) {
        // A runtime stopping under our feet: skip it this round, the tick tries again.
        json = JSON.stringify({ accountId: account.accountId, error: (error as Error).message });
      }
      if (sent.get(account.accountId) === json) continue;
      sent.set(account.accountId, json);
      send(`event: account\ndata: ${json}\n\n`);
      if (blocked) return;
    }
    if (transitions.length > 0) {
      send(sseFrame("transitions", transitions.splice(0)));
      if (blocked) return;
    }
    for (const id of [...sent.keys()]) {
      if (ids.has(id)) continue;
      sent.delete(id);
      send(sseFrame("removed", { accountId: id }));
    }
  }

  const tick = setInterval(markDirty, options.tickMs ?? 3_000);
  const ping = setInterval(() => {
    if (!blocked) res.write(": ping\n\n");
  }, options.pingMs ?? 20_000);
  const limit = setTimeout(() => end(), options.maxMs ?? 5 * 60_000);

  function end() {
    if (closed) return;
    closed = true;
    if (timer) clearTimeout(timer);
    clearInterval(tick);
    clearInterval(ping);
    clearTimeout(limit);
    for (const subscription of watched.values()) subscription.unsubscribe();
    watched.clear();
    if (!res.writableEnded) res.end();
  }
  res.on("close", end);
  flush();
  return end;
}
