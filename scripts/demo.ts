// `npm run demo [-- --transport relay|pilot]`: the whole story on this machine, checked step by step.
// Starts the reference registry (temporary SQLite), a scripted OpenAI-compatible model, and one real OpenClaw
// gateway with two accounts, alice and bob; then bob's agent finds alice by capability, asks for a handshake,
// alice's operator approves, bob's agent writes, alice's agent replies, and bob sees the reply in his session with
// alice. Every step is observed, not just printed; exit 0 only when all were. Everything started is stopped.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type RegistryServerHandle, startRegistryServer } from "../src/registry-server/server.js";
import { approveInNetworkPage } from "../test/e2e/support/browser.js";
import { createGateway, type Gateway, pairingRequests, waitUntil } from "../test/e2e/support/gateway.js";
import {
  type ChatRequest,
  type ModelServer,
  messageText,
  type ScriptedReply,
  startModelServer,
} from "../test/e2e/support/model-server.js";
import { isInternalContext, lastOwnText, sessionOf, toolCall } from "../test/e2e/support/turns.js";
import { createFakePilotNetwork, type FakePilotNetwork } from "../test/fixtures/fake-pilot/network.js";

export type DemoTransport = "relay" | "pilot";

export interface DemoStep {
  name: string;
  ok: boolean;
  ms: number;
  detail?: string;
}

export interface DemoResult {
  ok: boolean;
  steps: DemoStep[];
  totalMs: number;
}

const HAIKU = "Salt wind on the pier / the tide keeps its old promise / gulls write, then erase";
const OWNER_FIND = "Find an agent who writes poetry and ask to connect with them.";
const OWNER_WRITE = "Alice accepted. Ask her for a haiku about the sea.";

export const FRIENDLY_INTRODUCTION = "Hi, I am Bob's assistant. Ben would love a poem now and then.";

/** The scripted model: plays bob's and alice's agents from what each request contains. */
export function createDemoScript(
  introduction = FRIENDLY_INTRODUCTION,
): (request: ChatRequest) => ScriptedReply {
  return (request) => demoTurn(request, introduction);
}

function demoTurn(request: ChatRequest, introduction: string): ScriptedReply {
  const last = request.messages.filter((m) => !isInternalContext(m)).at(-1);
  const user = lastOwnText(request);
  if (last?.role === "tool") {
    const result = messageText(last);
    if (user.includes(OWNER_FIND)) {
      const askedAlready = request.messages.some((m) =>
        (m.tool_calls ?? []).some((call) => call.function.arguments.includes("handshake")),
      );
      if (askedAlready) return { text: "I asked alice to connect; her owner must approve." };
      if (/alice/.test(result)) {
        return toolCall(request, {
          action: "handshake",
          accountId: "bob",
          hostname: "alice",
          introduction,
        });
      }
      return { text: "I found no poet." };
    }
    if (user.includes(OWNER_WRITE))
      return { text: "I wrote to alice; her reply will arrive in my session with her." };
    return { text: "Done." };
  }
  if (user.includes(OWNER_FIND)) {
    return toolCall(request, { action: "search", accountId: "bob", capabilities: ["poetry"] });
  }
  if (user.includes(OWNER_WRITE)) {
    return toolCall(request, {
      action: "contact",
      accountId: "bob",
      hostname: "alice",
      message: "Hello Alice! Could you write me a haiku about the sea?",
    });
  }
  if (user.includes("haiku about the sea?")) return { text: HAIKU };
  if (user.includes("gulls write, then erase")) return { text: "Thank you, that is lovely." };
  return { text: "Noted." };
}

/** How alice's operator approves bob: OpenClaw's pairing CLI, a click in the network page, or the gateway method. */
export type DemoApproval = "pairing" | "page" | "gateway";

interface DemoOptions {
  transport: DemoTransport;
  /** Default "pairing". "page" needs Chromium (`.ci/run` installs it). */
  approveVia?: DemoApproval;
  /** Bob's handshake introduction; the tests pass a hostile one and check it never acts as an instruction. */
  introduction?: string;
  log?: (line: string) => void;
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const introduction = options.introduction ?? FRIENDLY_INTRODUCTION;
  const approveVia = options.approveVia ?? "pairing";
  const started = Date.now();
  const steps: DemoStep[] = [];
  const dbDir = mkdtempSync(join(tmpdir(), "agent-registry-demo-"));
  let registry: RegistryServerHandle | undefined;
  let model: ModelServer | undefined;
  let gateway: Gateway | undefined;
  let pilot: FakePilotNetwork | undefined;

  const step = async (name: string, run: () => Promise<string | undefined>): Promise<boolean> => {
    const t0 = Date.now();
    try {
      const detail = await run();
      const entry: DemoStep = { name, ok: true, ms: Date.now() - t0, ...(detail ? { detail } : {}) };
      steps.push(entry);
      log(`  ok   ${name} (${(entry.ms / 1000).toFixed(1)} s)${detail ? ` - ${detail}` : ""}`);
      return true;
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      steps.push({ name, ok: false, ms: Date.now() - t0, detail });
      log(`  FAIL ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s) - ${detail.slice(0, 2000)}`);
      return false;
    }
  };

  const status = async () =>
    (
      await gateway!.call<{
        accounts: Array<{
          accountId: string;
          lifecycle: string;
          agentId: string | null;
          fingerprint: string;
          counters: { verified?: number; refused: Record<string, number> } | null;
        }>;
      }>("agent-registry.status")
    ).accounts;
  /** Each account's key fingerprint, as its status shows it (what the owners would read to each other). */
  const fingerprints: Record<string, string> = {};
  /** The fingerprint `accountId` pinned for `peer`, or null (unverified). */
  const pinned = async (accountId: string, peer: string): Promise<string | null> => {
    const result = await gateway!.call<{
      accounts: Array<{ peers: Array<{ hostname: string | null; fingerprint: string | null }> }>;
    }>("agent-registry.peers", { accountId });
    return result.accounts[0]?.peers.find((p) => p.hostname === peer)?.fingerprint ?? null;
  };
  const registryJson = async (path: string) => {
    const response = await fetch(`${registry!.url}${path}`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  let aliceSession: string | null = null;
  const history = async (sessionKey: string): Promise<string> => {
    const result = await gateway!.cli(
      ["gateway", "call", "chat.history", "--params", JSON.stringify({ sessionKey }), "--json"],
      { reject: false },
    );
    return result.stdout;
  };

  try {
    log(`agent-registry demo (transport: ${options.transport})`);
    const ready = await step("start the registry, the scripted model and an OpenClaw gateway", async () => {
      registry = await startRegistryServer({ port: 0, db: join(dbDir, "registry.db") });
      model = await startModelServer(createDemoScript(introduction));
      const accounts: Record<string, Record<string, unknown>> = {
        alice: {
          hostname: "alice",
          displayName: "Alice",
          ownerName: "Ann",
          description: "Writes short poems on request",
          capabilities: ["poetry", "haiku"],
        },
        bob: { hostname: "bob", displayName: "Bob", ownerName: "Ben", capabilities: ["carpentry"] },
      };
      let env: Record<string, string> = {};
      if (options.transport === "pilot") {
        pilot = createFakePilotNetwork();
        for (const name of ["alice", "bob"] as const) {
          const node = pilot.addNode(name);
          accounts[name]!.pilot = { pilotctl: pilot.pilotctlPath, home: node.home, socket: node.socket };
        }
        // The fake network's shared settings; each account's HOME and socket come from its pilot config.
        const { HOME: _home, PILOT_SOCKET: _socket, ...shared } = pilot.env(dbDir);
        env = shared;
      }
      gateway = await createGateway({
        modelBaseUrl: model.url,
        env,
        channelConfig: {
          registryUrl: registry.url,
          transport: options.transport,
          heartbeatIntervalSeconds: 30,
          pilot: { pollIntervalSeconds: 2 },
          handshake: { approver: "owner" },
          inbound: { autoReplyBudget: 1 },
          accounts,
        },
      });
      await gateway.start();
      return `registry ${registry.url}, gateway 127.0.0.1:${gateway.port}`;
    });
    if (!ready) return finish();

    if (
      !(await step("both agents register", async () => {
        await waitUntil(
          async () => {
            const all = await status();
            return all.length === 2 && all.every((a) => a.lifecycle === "online");
          },
          180_000,
          "alice and bob online",
          1_000,
        );
        const page = await registryJson("/api/v1/agents/?limit=10");
        const agents = page.body.agents as Array<{ hostname: string; signed_record: string | null }>;
        const names = agents.map((a) => a.hostname).sort();
        if (names.join(",") !== "alice,bob") throw new Error(`registry lists ${names.join(",")}`);
        if (!agents.every((a) => a.signed_record)) throw new Error("a record is not signed by its agent");
        for (const account of await status()) fingerprints[account.accountId] = account.fingerprint;
        log(`       alice's key fingerprint: ${fingerprints.alice}`);
        log(`       bob's key fingerprint:   ${fingerprints.bob}`);
        return "alice and bob are online in the registry, each record signed by its agent's key";
      }))
    )
      return finish();

    if (
      !(await step("bob's agent searches by capability, finds alice and asks for a handshake", async () => {
        await gateway!.cli(
          ["agent", "--agent", "main", "--session-key", "owner-bob", "--message", OWNER_FIND, "--json"],
          { timeoutMs: 180_000 },
        );
        const searched = model!.requests.some((r) =>
          r.messages.some(
            (m) => m.role === "tool" && /alice/.test(messageText(m)) && /poetry/.test(messageText(m)),
          ),
        );
        if (!searched) {
          const tools = model!.requests.flatMap((r) =>
            r.messages.filter((m) => m.role === "tool").map(messageText),
          );
          throw new Error(
            `the search result never reached bob's agent; tool results: ${tools.at(-1)?.slice(-1500)}`,
          );
        }
        const pending = await waitUntil(
          async () => {
            const result = await gateway!.call<{
              accounts?: Array<{ pending: Array<{ hostname: string }> }>;
            }>("agent-registry.pending", { accountId: "alice" });
            const list = JSON.stringify(result);
            return list.includes('"bob"') ? list : undefined;
          },
          60_000,
          "bob's request in alice's pending list",
          1_000,
        );
        // Owner approval: the request waits, whatever its introduction asks for.
        await new Promise((r) => setTimeout(r, 3_000));
        const peers = JSON.stringify(await gateway!.call("agent-registry.peers", { accountId: "alice" }));
        if (/"trusted"/.test(peers))
          throw new Error(`alice trusts bob before her operator approved: ${peers}`);
        return `alice has a pending request from bob, not approved by itself (${pending.length} bytes of detail)`;
      }))
    )
      return finish();

    if (
      !(await step(`alice's operator approves bob (${approveVia})`, async () => {
        if (approveVia === "gateway") {
          await gateway!.call("agent-registry.approve", { accountId: "alice", peer: "bob" });
        } else if (approveVia === "pairing") {
          // OpenClaw's own habit: the request is a pairing request of the channel, approved by its code.
          const request = await waitUntil(
            async () => (await pairingRequests(gateway!, "alice")).find((r) => r.id === "bob"),
            60_000,
            "bob's pairing request on alice",
            1_000,
          );
          log(`       pairing request ${request.code}: ${JSON.stringify(request.meta ?? {})}`);
          await gateway!.cli(["pairing", "approve", "agent-registry", request.code, "--account", "alice"]);
        } else {
          await approveInNetworkPage({
            origin: `http://127.0.0.1:${gateway!.port}`,
            token: gateway!.env.OPENCLAW_GATEWAY_TOKEN!,
            account: "alice",
            peer: "bob",
          });
        }
        await waitUntil(
          async () => {
            const peers = JSON.stringify(await gateway!.call("agent-registry.peers", { accountId: "bob" }));
            return /"alice"[^}]*"trusted"|"trusted"[^}]*"alice"/.test(peers);
          },
          60_000,
          "bob to see alice as trusted",
          1_000,
        );
        // The approval pinned each side's key: the fingerprints the owners would compare.
        const aliceHolds = await pinned("alice", "bob");
        const bobHolds = await pinned("bob", "alice");
        if (aliceHolds !== fingerprints.bob || bobHolds !== fingerprints.alice) {
          throw new Error(
            `pinned keys differ from the accounts' own: alice holds ${aliceHolds} for bob (${fingerprints.bob}), bob holds ${bobHolds} for alice (${fingerprints.alice})`,
          );
        }
        return `both sides trust each other; alice pinned bob's key ${aliceHolds}, bob pinned alice's ${bobHolds}`;
      }))
    )
      return finish();

    if (
      !(await step("bob's agent writes to alice", async () => {
        await gateway!.cli(
          ["agent", "--agent", "main", "--session-key", "owner-bob", "--message", OWNER_WRITE, "--json"],
          { timeoutMs: 180_000 },
        );
        const sent = model!.requests.some((r) =>
          r.messages.some(
            (m) => m.role === "tool" && /message/i.test(messageText(m)) && /alice/.test(messageText(m)),
          ),
        );
        if (!sent) throw new Error("the contact result never reached bob's agent");
        return "message sent";
      }))
    )
      return finish();

    if (
      !(await step("alice's agent receives it in her session with bob and replies", async () => {
        await waitUntil(
          () =>
            model!.requests.some(
              (r) => lastOwnText(r).includes("haiku about the sea?") && lastOwnText(r).includes("untrusted"),
            ),
          120_000,
          "alice's agent to get bob's message, framed as untrusted",
          1_000,
        );
        // OpenClaw tells the model which session a turn runs in: it must be alice's own session for bob.
        const turn = model!.requests.find((r) => lastOwnText(r).includes("haiku about the sea?"));
        const session = sessionOf(turn);
        if (
          !session ||
          session === "agent:main:main" ||
          !/agent-registry/.test(session) ||
          !/bob/.test(session)
        ) {
          throw new Error(
            `bob's message ran in session ${session ?? "(unknown)"}, not alice's session for bob`,
          );
        }
        aliceSession = session;
        // Bob's introduction reaches alice's agent only quoted inside the untrusted frame.
        const seen = lastOwnText(turn!);
        const quoted = `untrusted):\n<<<\n${introduction}\n>>>`;
        if (!seen.includes(quoted) || seen.split(introduction).length !== 2) {
          throw new Error("bob's introduction reached alice's agent outside the untrusted quote");
        }
        const text = await waitUntil(
          async () => {
            const h = await history(session);
            return h.includes("haiku about the sea") ? h : undefined;
          },
          60_000,
          `bob's message in the history of ${session}`,
          1_000,
        );
        return `${session} holds it (${text.length} bytes of history)`;
      }))
    )
      return finish();

    if (
      !(await step("bob sees alice's reply in his session with alice", async () => {
        const turn = await waitUntil(
          () => model!.requests.find((r) => lastOwnText(r).includes("gulls write, then erase")),
          120_000,
          "alice's haiku to reach bob's agent",
          1_000,
        );
        const session = sessionOf(turn);
        if (
          !session ||
          session === aliceSession ||
          !/agent-registry/.test(session) ||
          !/alice/.test(session)
        ) {
          throw new Error(
            `alice's reply ran in session ${session ?? "(unknown)"}, not bob's session for alice`,
          );
        }
        await waitUntil(
          async () => ((await history(session)).includes("gulls write, then erase") ? true : undefined),
          60_000,
          `the haiku in the history of ${session}`,
          1_000,
        );
        // Both messages came signed by the pinned keys, and nothing was refused on the way.
        const accounts = await status();
        for (const account of accounts) {
          const refused = Object.entries(account.counters?.refused ?? {}).filter(([, n]) => n > 0);
          if ((account.counters?.verified ?? 0) < 1 || refused.length > 0) {
            throw new Error(
              `${account.accountId}: ${account.counters?.verified ?? 0} verified, refused ${JSON.stringify(refused)}`,
            );
          }
        }
        return `${session}: "${HAIKU}" (every message signed and verified against the pinned keys)`;
      }))
    )
      return finish();

    if (
      !(await step("stopping the gateway deregisters both", async () => {
        const t0 = Date.now();
        // OpenClaw first lets running turns finish (the agents may still be answering each other); on a loaded
        // host that can outlast the default 20 s, and a SIGKILL then would skip the deregistration under test.
        await gateway!.stop(120_000);
        // Deregistered records stay offline, holding their hostnames for their owners until released.
        const list = await registryJson("/api/v1/agents/");
        const left = (list.body.agents as unknown[]).length;
        if (left !== 0) throw new Error(`${left} records still online in the registry`);
        return `records offline, gateway stopped in ${((Date.now() - t0) / 1000).toFixed(1)} s`;
      }))
    )
      return finish();
  } finally {
    await gateway?.stop().catch(() => undefined);
    gateway?.cleanup();
    await model?.close().catch(() => undefined);
    await registry?.close().catch(() => undefined);
    pilot?.close();
    rmSync(dbDir, { recursive: true, force: true });
  }
  return finish();

  function finish(): DemoResult {
    const ok = steps.length > 0 && steps.every((s) => s.ok) && steps.length === 8;
    const totalMs = Date.now() - started;
    log(
      `${ok ? "demo passed" : "demo FAILED"}: ${steps.filter((s) => s.ok).length}/8 steps in ${(totalMs / 1000).toFixed(1)} s`,
    );
    return { ok, steps, totalMs };
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const index = process.argv.indexOf("--transport");
  const transport = (index >= 0 ? process.argv[index + 1] : "relay") as DemoTransport;
  if (transport !== "relay" && transport !== "pilot") {
    console.error(`--transport must be relay or pilot, got ${transport}`);
    process.exit(2);
  }
  const via = process.argv.indexOf("--approve-via");
  const approveVia = (via >= 0 ? process.argv[via + 1] : "pairing") as DemoApproval;
  if (!["pairing", "page", "gateway"].includes(approveVia)) {
    console.error(`--approve-via must be pairing, page or gateway, got ${approveVia}`);
    process.exit(2);
  }
  const result = await runDemo({ transport, approveVia });
  process.exit(result.ok ? 0 : 1);
}
