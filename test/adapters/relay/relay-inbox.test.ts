// One relay inbox cycle at a time, against the reference registry on 127.0.0.1: what a cycle does and what it
// asks the poll machine to do next (the loop around it is tested in relay-receiver*.test.ts and the machine's own
// tests).
import { afterEach, describe, expect, it } from "vitest";
import { createMemoryCursorStore, createRelayInbox } from "../../../src/adapters/relay/relay-inbox.js";
import { createRelayTransport } from "../../../src/adapters/relay/relay-transport.js";
import { createEnvelope } from "../../../src/adapters/transport/envelope.js";
import type { RunCycleInput } from "../../../src/machines/poll.machine.js";
import { RecordingSink, type RelayWorld, startRelayWorld } from "./helpers.js";

let world: RelayWorld | undefined;
afterEach(async () => {
  await world?.cleanup();
  world = undefined;
});

const toBeta = { hostname: "beta", nodeId: null, installationId: "inst-beta" };
const quick: RunCycleInput = { trigger: "start", wait: 0, rescan: false };

function inboxOf(w: RelayWorld, sink: RecordingSink) {
  const cursorStore = createMemoryCursorStore();
  const inbox = createRelayInbox({
    client: w.beta.client,
    installationId: w.beta.installationId,
    agentToken: () => w.beta.token,
    sink,
    cursorStore,
  });
  return { inbox, cursorStore };
}

async function send(w: RelayWorld, count: number): Promise<string[]> {
  const transport = createRelayTransport({
    client: w.alpha.client,
    self: { installationId: w.alpha.installationId, hostname: "alpha", agentToken: () => w.alpha.token },
  });
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const env = createEnvelope({ fromHostname: "alpha", body: `m ${i}` });
    await transport.send(toBeta, env);
    ids.push(env.id);
  }
  return ids;
}

async function betaInbox(w: RelayWorld): Promise<string[]> {
  const page = await w.beta.client.readInbox({ installationId: "inst-beta" }, { token: w.beta.token });
  return page.messages.map((m) => m.messageId);
}

describe("relay inbox cycle", () => {
  it("dispatches a page, acks it within the same cycle and persists the cursor, then asks to go again", async () => {
    world = await startRelayWorld({ trusted: true });
    const sink = new RecordingSink();
    const { inbox, cursorStore } = inboxOf(world, sink);
    const ids = await send(world, 3);
    const summary = await inbox.runCycle(quick, new AbortController().signal);
    expect(summary).toEqual({
      trigger: "start",
      dispatched: 3,
      refused: 0,
      deferred: 0,
      peers: null,
      next: "again",
    });
    expect(sink.dispatched.map((r) => r.ref)).toEqual(ids);
    // No timer left to ack later: the registry has nothing more for us once the cycle resolved.
    expect(await betaInbox(world)).toEqual([]);
    expect(cursorStore.current).not.toBeNull();
    expect(inbox.status().cursor).toBe(cursorStore.current);
    await inbox.close();
    expect(inbox.status().state).toBe("stopped");
  });

  it("a message the sink wants retried holds back the page: acks what came before it and asks for a retry", async () => {
    world = await startRelayWorld({ trusted: true });
    const sink = new RecordingSink();
    sink.script.push("dispatched", "retry");
    const { inbox } = inboxOf(world, sink);
    const ids = await send(world, 3);
    const summary = await inbox.runCycle(quick, new AbortController().signal);
    expect(summary).toMatchObject({ dispatched: 1, deferred: 1, next: "retry" });
    expect(await betaInbox(world)).toEqual(ids.slice(1));
    expect(inbox.status().retrying).toMatchObject({ messageId: ids[1], attempts: 1 });
    const again = await inbox.runCycle(
      { trigger: "deferred", wait: 0, rescan: false },
      new AbortController().signal,
    );
    expect(again).toMatchObject({ dispatched: 2, next: "again" });
    expect(inbox.status().retrying).toBeNull();
  });

  it("a registry that does not answer fails the cycle with a PlainError naming the read, counted in status", async () => {
    world = await startRelayWorld({ trusted: true });
    const { inbox } = inboxOf(world, new RecordingSink());
    await world.stop();
    await expect(inbox.runCycle(quick, new AbortController().signal)).rejects.toMatchObject({
      kind: "unreachable",
      operation: "relay.readInbox",
    });
    expect(inbox.status()).toMatchObject({ consecutiveFailures: 1, state: "backoff" });
    expect(inbox.status().lastError).toMatch(/^reading the inbox: /);
  });

  it("an abort ends the long-poll at once and the cycle goes idle", async () => {
    world = await startRelayWorld({ trusted: true });
    const { inbox } = inboxOf(world, new RecordingSink());
    const controller = new AbortController();
    const started = Date.now();
    const cycle = inbox.runCycle({ trigger: "start", wait: 25, rescan: false }, controller.signal);
    await new Promise((r) => setTimeout(r, 50));
    controller.abort();
    await expect(cycle).resolves.toMatchObject({ next: "idle" });
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
