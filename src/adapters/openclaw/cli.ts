// `openclaw agent-registry <command>`: the operator's gateway methods from a terminal. Every command calls one
// method through OpenClaw's own gateway client (so scopes, auth and error codes are the methods'), prints a short
// human summary or, with --json, the method's payload as is. Exit codes: 0 ok, 1 the method failed (its code
// on stderr), 2 bad usage. Peer text (names, introductions) is printed cleaned of control characters.
import type { OpenClawPluginApi } from "openclaw/plugin-sdk/channel-core";
import { cleanText } from "./pairing.js";

type Registrar = Parameters<OpenClawPluginApi["registerCli"]>[0];
export type Program = Parameters<Registrar>[0]["program"];
type Command = ReturnType<Program["command"]>;

export const EXIT_OK = 0;
export const EXIT_METHOD_ERROR = 1;
export const EXIT_USAGE = 2;

/** Calls a gateway method; rejects with an error carrying `gatewayCode` when the method answers an error. */
export type GatewayCall = (
  method: string,
  options: Record<string, unknown>,
  params: Record<string, unknown>,
) => Promise<unknown>;

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  exit(code: number): void;
}

type Opts = Record<string, unknown>;

export interface CliCommand {
  name: string;
  /** Positional arguments in commander syntax, e.g. "<peer>" or "[query...]". */
  args: Array<{ spec: string; description: string }>;
  options: Array<{ flags: string; description: string; repeatable?: boolean }>;
  description: string;
  method: string;
  /** The method's params from positionals and options; throws UsageError for input the method cannot take. */
  params(args: unknown[], opts: Opts): Record<string, unknown>;
  /** Lines for a person. */
  render(payload: unknown): string[];
}

export class UsageError extends Error {}

const safe = (value: unknown, max = 120) => (value == null ? "-" : cleanText(String(value), max));

function withAccount(opts: Opts, params: Record<string, unknown>): Record<string, unknown> {
  return typeof opts.account === "string" && opts.account ? { accountId: opts.account, ...params } : params;
}

function intOption(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${String(value)}"`);
  }
  return n;
}

interface PeerRow {
  hostname?: string | null;
  nodeId?: number | null;
  state?: string;
  fingerprint?: string | null;
  offeredFingerprint?: string | null;
  assistantName?: string | null;
  introduction?: string | null;
}

function peerLine(peer: PeerRow): string {
  const name = peer.assistantName ? ` "${safe(peer.assistantName, 60)}"` : "";
  const key = peer.fingerprint
    ? `key ${peer.fingerprint}`
    : peer.offeredFingerprint
      ? `offers key ${peer.offeredFingerprint}`
      : "no key";
  return `  ${safe(peer.hostname ?? (peer.nodeId != null ? `node-${peer.nodeId}` : "?"), 64)}${name}  ${peer.state ?? "?"}  ${key}`;
}

function accountsOf(payload: unknown): Array<Record<string, unknown>> {
  const accounts = (payload as { accounts?: unknown })?.accounts;
  return Array.isArray(accounts) ? (accounts as Array<Record<string, unknown>>) : [];
}

/** With several registry URLs: which of them is in use and the last failover (empty with one). */
function registryFailover(registry: unknown): string {
  const r = registry as { index?: unknown; configured?: unknown; lastFailover?: { at?: unknown } | null };
  if (typeof r?.configured !== "number" || r.configured < 2) return "";
  const which = `${typeof r.index === "number" ? r.index + 1 : "?"} of ${r.configured} configured`;
  return ` (${which}; ${r.lastFailover ? `last failover ${safe(r.lastFailover.at)}` : "no failover"})`;
}

function peerDecision(verb: string) {
  return (payload: unknown) => {
    const p = payload as { accountId?: string; peer?: PeerRow };
    return [`${verb} ${safe(p.peer?.hostname)} on ${safe(p.accountId)}: now ${p.peer?.state ?? "?"}`];
  };
}

const peerArg = { spec: "<peer>", description: "the peer's hostname (or node id, or assistant name)" };

export const CLI_COMMANDS: CliCommand[] = [
  {
    name: "status",
    description: "Each account's registration, transport, peers and counters",
    method: "agent-registry.status",
    args: [],
    options: [],
    params: (_args, opts) => withAccount(opts, {}),
    render: (payload) =>
      accountsOf(payload).flatMap((a) => {
        const peers = (a.peers ?? {}) as Record<string, number>;
        const counts = Object.entries(peers)
          .filter(([, n]) => n > 0)
          .map(([state, n]) => `${n} ${state}`)
          .join(", ");
        return [
          `${safe(a.accountId)}: ${safe(a.lifecycle)}${a.agentId ? ` (agent ${safe(a.agentId)})` : ""}`,
          `  hostname ${safe(a.hostname)}, registry ${safe(a.registryUrl, 200)}${registryFailover(a.registry)}`,
          `  fingerprint ${safe(a.fingerprint)}`,
          `  transport ${safe(a.transport)}${a.unavailableReason ? `: ${safe(a.unavailableReason, 200)}` : " ready"}`,
          `  peers: ${counts || "none"}`,
        ];
      }),
  },
  {
    name: "peers",
    description: "Known peers with their handshake state and key fingerprint",
    method: "agent-registry.peers",
    args: [],
    options: [],
    params: (_args, opts) => withAccount(opts, {}),
    render: (payload) =>
      accountsOf(payload).flatMap((a) => {
        const peers = (a.peers ?? []) as PeerRow[];
        return [`${safe(a.accountId)}: ${peers.length} peer(s)`, ...peers.map(peerLine)];
      }),
  },
  {
    name: "pending",
    description: "Incoming handshake requests waiting for a decision",
    method: "agent-registry.pending",
    args: [],
    options: [],
    params: (_args, opts) => withAccount(opts, {}),
    render: (payload) =>
      accountsOf(payload).flatMap((a) => {
        const requests = (a.requests ?? []) as PeerRow[];
        if (requests.length === 0) return [`${safe(a.accountId)}: no pending requests`];
        return [
          `${safe(a.accountId)}: ${requests.length} pending (approver: ${safe(a.approver)})`,
          ...requests.flatMap((r) => [
            peerLine(r),
            ...(r.introduction ? [`    says: "${safe(r.introduction, 280)}"`] : []),
          ]),
        ];
      }),
  },
  {
    name: "approve",
    description: "Approve a peer's handshake as the owner (pins the key it offers)",
    method: "agent-registry.approve",
    args: [peerArg],
    options: [],
    params: ([peer], opts) => withAccount(opts, { peer }),
    render: peerDecision("approved"),
  },
  {
    name: "reject",
    description: "Reject a peer's handshake request",
    method: "agent-registry.reject",
    args: [peerArg],
    options: [{ flags: "--reason <text>", description: "why (sent to the peer)" }],
    params: ([peer], opts) =>
      withAccount(opts, { peer, ...(typeof opts.reason === "string" ? { reason: opts.reason } : {}) }),
    render: peerDecision("rejected"),
  },
  {
    name: "untrust",
    description: "Stop trusting a peer (its messages are refused from now on)",
    method: "agent-registry.untrust",
    args: [peerArg],
    options: [],
    params: ([peer], opts) => withAccount(opts, { peer }),
    render: peerDecision("untrusted"),
  },
  {
    name: "handshake",
    description: "Ask a peer to connect, with an introduction its owner reads",
    method: "agent-registry.handshake",
    args: [peerArg],
    options: [{ flags: "--intro <text>", description: "the introduction (default: built from the account)" }],
    params: ([peer], opts) =>
      withAccount(opts, { peer, ...(typeof opts.intro === "string" ? { introduction: opts.intro } : {}) }),
    render: peerDecision("asked"),
  },
  {
    name: "search",
    description: "Search the registry by text and capabilities",
    method: "agent-registry.search",
    args: [{ spec: "[query...]", description: "words to search for" }],
    options: [
      {
        flags: "--capability <name>",
        description: "a capability to match (repeat for more)",
        repeatable: true,
      },
      { flags: "--match <any|all>", description: "any or all of the capabilities (default any)" },
      { flags: "--limit <n>", description: "at most this many agents (1-50)" },
    ],
    params: ([query], opts) => {
      const words = Array.isArray(query) ? (query as string[]).join(" ").trim() : "";
      if (opts.match !== undefined && opts.match !== "any" && opts.match !== "all") {
        throw new UsageError(`--match must be "any" or "all", got "${String(opts.match)}"`);
      }
      const capabilities = (opts.capability as string[] | undefined) ?? [];
      const limit = intOption(opts.limit, "limit", 1, 50);
      return withAccount(opts, {
        ...(words ? { query: words } : {}),
        ...(capabilities.length ? { capabilities } : {}),
        ...(opts.match ? { match: opts.match } : {}),
        ...(limit !== undefined ? { limit } : {}),
      });
    },
    render: (payload) => {
      const p = payload as { total?: number; agents?: Array<Record<string, unknown>>; caveats?: string[] };
      const agents = p.agents ?? [];
      return [
        `${agents.length} of ${p.total ?? agents.length} agent(s)`,
        ...agents.map(
          (a) =>
            `  ${safe(a.hostname, 64)}  ${safe(a.displayName ?? a.display_name, 60)}  [${((a.capabilities as string[] | undefined) ?? []).map((c) => safe(c, 40)).join(", ")}]`,
        ),
        ...(p.caveats ?? []).map((c) => `note: ${safe(c, 200)}`),
      ];
    },
  },
  {
    name: "send",
    description: "Send a message to a trusted peer",
    method: "agent-registry.send",
    args: [
      { spec: "<peer>", description: "the peer's hostname" },
      { spec: "<text...>", description: "the message" },
    ],
    options: [],
    params: ([to, text], opts) =>
      withAccount(opts, { to, text: Array.isArray(text) ? (text as string[]).join(" ") : String(text) }),
    render: (payload) => {
      const p = payload as { to?: string; messageId?: string; state?: string; reason?: string | null };
      return [
        `${p.state ?? "?"}: message ${safe(p.messageId)} to ${safe(p.to)}${p.reason ? ` (${safe(p.reason, 200)})` : ""}`,
      ];
    },
  },
  {
    name: "outbox",
    description: "Undelivered outgoing messages (and, with --finished, the latest finished ones)",
    method: "agent-registry.outbox",
    args: [],
    options: [
      { flags: "--peer <hostname>", description: "only messages to this peer" },
      { flags: "--finished <n>", description: "also the latest n finished messages (0-200)" },
    ],
    params: (_args, opts) => {
      const finished = intOption(opts.finished, "finished", 0, 200);
      return withAccount(opts, {
        ...(typeof opts.peer === "string" ? { peer: opts.peer } : {}),
        ...(finished !== undefined ? { finished } : {}),
      });
    },
    render: (payload) =>
      accountsOf(payload).flatMap((a) => {
        const messages = (a.messages ?? []) as Array<Record<string, unknown>>;
        return [
          `${safe(a.accountId)}: ${messages.length} message(s)`,
          ...messages.map(
            (m) =>
              `  ${safe(m.id ?? m.messageId)} to ${safe(m.to ?? m.peer)}  ${safe(m.state)}${m.reason ? `  ${safe(m.reason, 160)}` : ""}`,
          ),
        ];
      }),
  },
];

/** The error of a failed call as `CODE: message` (the gateway's code when it sent one). */
export function describeFailure(error: unknown): string {
  const e = error as { gatewayCode?: unknown; message?: unknown } | null;
  const code = typeof e?.gatewayCode === "string" ? e.gatewayCode : "UNAVAILABLE";
  const message = typeof e?.message === "string" ? e.message : String(error);
  return `${code}: ${cleanText(message, 1000)}`;
}

/** Runs one command: params, the call, the output and the exit code. */
export async function runCommand(
  spec: CliCommand,
  args: unknown[],
  opts: Opts,
  call: GatewayCall,
  io: CliIo,
): Promise<void> {
  let params: Record<string, unknown>;
  try {
    params = spec.params(args, opts);
  } catch (error) {
    io.err(`openclaw agent-registry ${spec.name}: ${(error as Error).message}`);
    io.exit(EXIT_USAGE);
    return;
  }
  let payload: unknown;
  try {
    payload = await call(spec.method, opts, params);
  } catch (error) {
    io.err(describeFailure(error));
    io.exit(EXIT_METHOD_ERROR);
    return;
  }
  if (opts.json) io.out(JSON.stringify(payload, null, 2));
  else io.out(spec.render(payload).join("\n"));
  io.exit(EXIT_OK);
}

const processIo: CliIo = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  exit: (code) => {
    // Leave through the host CLI's normal path on success; a failure must reach the shell as its code.
    if (code === EXIT_OK) return;
    process.exitCode = code;
    process.stdout.write("", () => process.exit(code));
  },
};

async function gatewayCall(
  method: string,
  options: Record<string, unknown>,
  params: Record<string, unknown>,
) {
  const { callGatewayFromCli } = await import("openclaw/plugin-sdk/gateway-runtime");
  const { json: _json, account: _account, ...rpc } = options;
  return callGatewayFromCli(method, { ...rpc, json: true }, params);
}

export interface RegisterOptions {
  call?: GatewayCall;
  io?: CliIo;
  /** Adds the gateway connection flags (--url, --token, --timeout...); the host's helper by default. */
  addGatewayOptions?: (command: Command) => void;
}

/** Adds `agent-registry` and its commands to the host's program. */
export async function registerAgentRegistryCommands(
  program: Program,
  options: RegisterOptions = {},
): Promise<void> {
  const call = options.call ?? gatewayCall;
  const io = options.io ?? processIo;
  let addGatewayOptions = options.addGatewayOptions;
  if (!addGatewayOptions) {
    const { addGatewayClientOptions } = await import("openclaw/plugin-sdk/gateway-runtime");
    addGatewayOptions = (command) => {
      addGatewayClientOptions(command as never);
    };
  }
  const root = program
    .command("agent-registry")
    .description("Operate Agent Registry accounts: status, peers, handshakes, search, messages")
    .addHelpText(
      "after",
      "\nEach command calls the gateway method agent-registry.<command>. --json prints its payload.\nExit codes: 0 ok, 1 the method failed (its code on stderr), 2 bad usage.\nDocs: docs/cli.md\n",
    );
  for (const spec of CLI_COMMANDS) {
    const command = root.command(spec.name).description(spec.description);
    for (const arg of spec.args) command.argument(arg.spec, arg.description);
    for (const option of spec.options) {
      if (option.repeatable) {
        command.option(option.flags, option.description, (value: string, previous: string[] = []) => [
          ...previous,
          value,
        ]);
      } else command.option(option.flags, option.description);
    }
    command.option("--account <id>", "the account (default: all, or the only one)");
    command.option("--json", "print the method's JSON payload", false);
    addGatewayOptions(command);
    // Bad usage (missing argument, unknown option) exits 2, as scripts expect; help and version stay 0.
    command.exitOverride((error) => {
      const code = error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
      process.exit(code);
    });
    command.action(async (...received: unknown[]) => {
      // Commander passes the positionals, then the options object, then the command.
      const opts = received[received.length - 2] as Opts;
      const args = received.slice(0, received.length - 2);
      await runCommand(spec, args, opts, call, io);
    });
  }
}
