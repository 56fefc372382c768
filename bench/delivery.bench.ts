// Delivery bench (`npm run bench:delivery`, issue #12): two Pilot accounts (alice, bob) in this process, each its
// own actor tree with a daemon it manages, on the fake Pilot network behaving as real daemons were seen to: 2 % of
// inbox files vanish after the sender got its ACK, and a daemon restart breaks the pair both ways until the other
// end restarts too. alice sends BENCH_DELIVERY_MESSAGES (default 500) messages to bob, 4 at a time; a third of the
// way in, bob's daemon is killed (bob's plugin restarts it).
//
// Prints one JSON line: sent, delivered (receipts back at alice), duplicates (messages bob's session got more than
// once: must be 0), lost (sent but never delivered: must be 0), delivery_p50_ms / delivery_p99_ms (from the send
// call to alice's outbox taking bob's receipt), outbox_overhead_ms_p50 (what the outbox adds to a send on a
// healthy path: the same submit with a transport that answers at once, on a real account database; target < 5 ms),
// the same for the messages sent before the kill, recovery_s (from the kill to the first delivery of a message
// sent after it: bob's daemon restarts, alice's sends fail until her daemon is restarted for it, which waits
// until it has run 60 s), and the settings that shape the figures (receipt window, drop share).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openAccountDb } from "../src/adapters/state/account-db.js";
import type { Transport } from "../src/adapters/transport/transport.js";
import { resolveAccounts } from "../src/config.js";
import { startRegistryServer } from "../src/registry-server/server.js";
import { type AccountRuntime, startAccountRuntime } from "../src/runtime/account-runtime.js";
import { createOutbox } from "../src/runtime/outbox.js";
import type { PeerNetwork } from "../src/runtime/peer-network.js";
import {
  createFakePilotNetwork,
  type FakePilotNetwork,
  type FakePilotNode,
} from "../test/fixtures/fake-pilot/network.js";

const MESSAGES = Number(process.env.BENCH_DELIVERY_MESSAGES ?? 500);
const DROP_PERCENT = 2;
const RECEIPT_TIMEOUT_SECONDS = 5;
const CONCURRENCY = 4;
const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] ?? Number.NaN;
}

async function until<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  ms: number,
) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** What the outbox adds on a healthy path: submit (two row writes) and the receipt, with a transport that answers at once. */
async function outboxOverheadMs(samples = 500): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "bench-outbox-"));
  const db = openAccountDb(dir);
  try {
    const instant = { kind: "pilot", send: async () => ({ messageId: "x" }) } as unknown as Transport;
    const outbox = createOutbox({
      table: db.outbox(),
      hostname: "alice",
      transport: () => instant,
      unavailableReason: () => null,
      resolve: async (hostname) => ({ hostname, nodeId: 7, installationId: null }),
      isTrusted: () => true,
      log: quiet,
      policy: { maxPerPeer: samples + 1, maxTotal: samples + 1 },
    });
    const times: number[] = [];
    for (let i = 0; i < samples; i++) {
      const start = performance.now();
      const { messageId } = await outbox.submit({ peer: "bob", body: `m${i}`, origin: "send" });
      outbox.onReceipt({ for: messageId, status: "delivered" }, "bob");
      times.push(performance.now() - start);
    }
    return percentile(times, 0.5);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const overhead = await outboxOverheadMs();
  const dir = mkdtempSync(join(tmpdir(), "bench-delivery-"));
  const registry = await startRegistryServer({ port: 0, db: ":memory:" });
  let pilot: FakePilotNetwork | null = null;
  const runtimes: AccountRuntime[] = [];
  const savedEnv = { ...process.env };
  try {
    pilot = createFakePilotNetwork({
      shape: "new",
      unreachableMs: 2_000,
      extraEnv: {
        FAKE_PILOT_DROP_PERCENT: String(DROP_PERCENT),
        FAKE_PILOT_RESTART_BREAKS_PAIR: "1",
        FAKE_PILOT_BROKEN_DIAL_MS: "500",
      },
    });
    const { HOME: _home, PILOT_SOCKET: _socket, ...shared } = pilot.env(dir);
    Object.assign(process.env, shared);
    const seen = new Map<string, number>();
    const nodes: Record<string, FakePilotNode> = {};
    const start = async (name: string) => {
      const node = pilot!.addNode(name, { start: false });
      nodes[name] = node;
      const [account] = resolveAccounts(
        {
          registryUrl: registry.url,
          transport: "pilot",
          accounts: {
            [name]: {
              hostname: name,
              pilot: {
                pilotctl: pilot!.pilotctlPath,
                home: node.home,
                socket: node.socket,
                manageDaemon: true,
                pollIntervalSeconds: 5,
              },
              inbound: { ratePerMinute: 10_000, autoReplyBudget: 0 },
              outbound: {
                receiptTimeoutSeconds: RECEIPT_TIMEOUT_SECONDS,
                maxResends: 20,
                maxQueuedPerPeer: MESSAGES,
                maxQueued: MESSAGES,
              },
            },
          },
        },
        {},
      );
      const runtime = await startAccountRuntime({
        account: account!,
        stateRoot: join(dir, name),
        log: quiet,
        createDispatcher: () => async (message) => {
          const id = message.envelope?.id ?? message.key;
          seen.set(id, (seen.get(id) ?? 0) + 1);
        },
      });
      runtimes.push(runtime);
      await until(() => runtime.status().messaging.ready, `${name}'s daemon`, 60_000);
      await until(
        async () => (await runtime.registry.byHostname(name))?.pilotNodeId,
        `${name} registered`,
        30_000,
      );
      return runtime;
    };
    const alice = await start("alice");
    const bob = await start("bob");
    await alice.network.handshake("bob", "bench");
    await until(async () => (await bob.network.pending()).length > 0, "bob to see the request", 60_000);
    await bob.network.approve("alice");
    await until(
      () => alice.network.peers().some((p) => p.hostname === "bob" && p.state === "trusted"),
      "alice to trust bob",
      60_000,
    );

    const outbox = (alice.network as PeerNetwork).outboxQueue;
    const latencies: number[] = [];
    /** Sends the outbox would not take (it fails only what a retry cannot fix): must stay empty. */
    const refusedSends: string[] = [];
    const settled: Array<Promise<unknown>> = [];
    let next = 0;
    let killed = false;
    let killedAt = Number.NaN;
    /** Send-to-receipt of the messages sent before the kill (a healthy path but for the dropped files). */
    const beforeKill: number[] = [];
    /** When the first message sent after the kill was delivered. */
    let firstAfterKill = Number.NaN;
    const benchStart = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < MESSAGES) {
          const i = next++;
          if (!killed && i >= MESSAGES / 3) {
            // bob's daemon dies; bob's plugin restarts it, and the pair stays broken until alice's restarts too.
            killed = true;
            killedAt = performance.now();
            const { pid } = pilot!.run(nodes.bob!, ["daemon", "status"]) as { pid: number };
            process.kill(pid, "SIGKILL");
          }
          const sentAt = performance.now();
          let messageId: string;
          try {
            ({ messageId } = await alice.network.send("bob", `bench-${i}`));
          } catch (error) {
            refusedSends.push((error as Error).message);
            continue;
          }
          const afterKill = killed;
          settled.push(
            outbox.settled(messageId).then((view) => {
              if (view.state !== "delivered") return;
              const at = performance.now();
              latencies.push(at - sentAt);
              if (!afterKill) beforeKill.push(at - sentAt);
              else if (!(firstAfterKill <= at)) firstAfterKill = at;
            }),
          );
        }
      }),
    );
    await Promise.race([Promise.all(settled), new Promise((resolve) => setTimeout(resolve, 10 * 60_000))]);
    const duplicates = [...seen.values()].filter((count) => count > 1).length;
    console.log(
      JSON.stringify({
        sent: MESSAGES,
        delivered: latencies.length,
        duplicates,
        lost: MESSAGES - latencies.length,
        delivery_p50_ms: Math.round(percentile(latencies, 0.5)),
        delivery_p99_ms: Math.round(percentile(latencies, 0.99)),
        before_restart_p50_ms: Math.round(percentile(beforeKill, 0.5)),
        before_restart_p99_ms: Math.round(percentile(beforeKill, 0.99)),
        recovery_s: Math.round((firstAfterKill - killedAt) / 100) / 10,
        outbox_overhead_ms_p50: Math.round(overhead * 1000) / 1000,
        refused_sends: refusedSends.length,
        wall_s: Math.round((performance.now() - benchStart) / 100) / 10,
        receipt_timeout_s: RECEIPT_TIMEOUT_SECONDS,
        dropped_inbox_files_percent: DROP_PERCENT,
      }),
    );
  } finally {
    for (const runtime of runtimes) await runtime.stop().catch(() => {});
    pilot?.close();
    await registry.close();
    process.env = savedEnv;
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
