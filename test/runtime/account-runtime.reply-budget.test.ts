// Two real account runtimes on the fake Pilot network with the reference registry: the agent's automatic replies
// to a peer are limited by inbound.autoReplyBudget, and a reply that could not be sent (the peer's daemon down,
// a pilotctl timeout on a loaded host) does not use up the budget: only replies that left count.
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { resolveAccounts } from "../../src/config.js";
import { startAccountRuntime } from "../../src/runtime/account-runtime.js";
import type { ReplyOutcome } from "../../src/runtime/reply-budget.js";
import type { FakePilotNode } from "../fixtures/fake-pilot/network.js";
import { usePilotWorld } from "./support/pilot-world.js";

const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };
const BUDGET = 2;

async function until<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
): Promise<T> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

type Reply = (hostname: string, text: string, replyTo: string | null) => Promise<ReplyOutcome>;

describe("auto-reply budget over Pilot", () => {
  // A send to a trusted peer whose daemon is down fails quickly here (the real one blocks ~30 s).
  const world = usePilotWorld("reply-budget", { unreachableMs: 100 });
  const nodes: Record<string, FakePilotNode> = {};
  let aliceReply: Reply | undefined;

  const start = async (name: "alice" | "bob") => {
    const [account] = resolveAccounts(
      {
        registryUrl: world.registry.url,
        transport: "pilot",
        inbound: { autoReplyBudget: BUDGET },
        pilot: { pollIntervalSeconds: 1, sendTimeoutMs: 2_000 },
        accounts: {
          [name]: {
            hostname: name,
            pilot: {
              pilotctl: world.pilot.pilotctlPath,
              home: nodes[name]!.home,
              socket: nodes[name]!.socket,
            },
          },
        },
      },
      {},
    );
    const runtime = await startAccountRuntime({
      account: account!,
      stateRoot: join(world.dir, name),
      log: quiet,
      createDispatcher: (helpers) => {
        if (name === "alice") aliceReply = helpers.reply;
        return async () => {};
      },
    });
    world.runtimes.push(runtime);
    return runtime;
  };

  beforeAll(() => {
    for (const name of ["alice", "bob"]) nodes[name] = world.pilot.addNode(name);
    world.pilot.run(nodes.alice!, ["handshake", "bob", "test"]);
    world.pilot.run(nodes.bob!, ["handshake", "alice", "test"]);
  });

  it("counts a reply that waits in the outbox for a peer that is down: it will be delivered", async () => {
    const alice = await start("alice");
    await start("bob");
    await until(
      () => alice.network.peers().some((p) => p.hostname === "bob" && p.state === "trusted"),
      "alice to trust bob",
    );
    const reply = aliceReply!;

    world.pilot.run(nodes.bob!, ["daemon", "stop"]);
    expect(await reply("bob", "ping 1 (bob is down)", null)).toBe("sent");
    expect(alice.network.outbox()).toMatchObject([{ peer: "bob", state: "queued", origin: "reply" }]);
    world.pilot.run(nodes.bob!, ["daemon", "start", "--hostname", "bob"]);

    const outcomes: ReplyOutcome[] = [];
    for (let i = 0; i < BUDGET; i++) outcomes.push(await reply("bob", `ping ${i + 2}`, null));
    expect(outcomes).toEqual([...Array.from({ length: BUDGET - 1 }, () => "sent"), "budget_spent"]);
  }, 90_000);
});
