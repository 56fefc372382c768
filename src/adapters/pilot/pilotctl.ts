// pilotctl adapter: runs the Pilot Protocol CLI for one account (its own HOME and PILOT_SOCKET) with execa,
// array arguments, `--json`, a killing timeout, and zod-parses both known output shapes into small domain types.
// Every failure becomes a PilotError whose code comes from pilotctl's JSON error envelope (never its message
// text), plus `binary_missing`, `timeout`, `usage`, `ack_error` and `bad_output` for what the CLI cannot say.
import { execa } from "execa";
import { z } from "zod";

export type PilotErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "not_running"
  | "connection_failed"
  | "timeout"
  | "internal"
  | "unavailable"
  | "trust_required"
  | "auth_required"
  | "permission_denied"
  | "not_implemented"
  | "usage"
  | "binary_missing"
  | "ack_error"
  | "bad_output"
  | "aborted";

export type PilotOperation =
  | "info"
  | "daemon.status"
  | "daemon.start"
  | "daemon.stop"
  | "send-message"
  | "inbox"
  | "pending"
  | "trust"
  | "handshake"
  | "approve"
  | "reject"
  | "untrust"
  | "find"
  | "address";

export class PilotError extends Error {
  override readonly name = "PilotError";
  readonly operation: PilotOperation;
  readonly code: PilotErrorCode;
  /** pilotctl's own hint, when it gave one. */
  readonly hint?: string;
  /** pilotctl's own message (not user-facing guidance). */
  readonly detail?: string;
  readonly exitCode?: number;

  constructor(
    operation: PilotOperation,
    code: PilotErrorCode,
    message: string,
    extra: { hint?: string; detail?: string; exitCode?: number; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.operation = operation;
    this.code = code;
    if (extra.hint !== undefined) this.hint = extra.hint;
    if (extra.detail !== undefined) this.detail = extra.detail;
    if (extra.exitCode !== undefined) this.exitCode = extra.exitCode;
  }
}

const KNOWN_CODES = new Set<string>([
  "invalid_argument",
  "not_found",
  "already_exists",
  "not_running",
  "connection_failed",
  "timeout",
  "internal",
  "unavailable",
  "trust_required",
  "auth_required",
  "permission_denied",
  "not_implemented",
  "usage",
]);

// ---------- addresses ----------

const ADDRESS_RE = /^(\d+):([0-9A-Fa-f]{4})\.([0-9A-Fa-f]{4})\.([0-9A-Fa-f]{4})$/;

/** Node id of a Pilot address `N:NNNN.HHHH.LLLL`: all 32 bits (high and low groups), never only the last group. */
export function parseAddress(address: string): number {
  const m = ADDRESS_RE.exec(address.trim());
  if (!m) {
    throw new PilotError("address", "invalid_argument", `not a Pilot address: ${JSON.stringify(address)}`);
  }
  return Number.parseInt(`${m[3]}${m[4]}`, 16);
}

/** The address of a node id in network 0 (uppercase hex, as pilotctl prints it). */
export function formatAddress(nodeId: number, network = 0): string {
  const hex = (nodeId >>> 0).toString(16).toUpperCase().padStart(8, "0");
  return `${network}:0000.${hex.slice(0, 4)}.${hex.slice(4)}`;
}

// ---------- output schemas (unknown keys are stripped, so new-build additions are ignored) ----------

const okEnvelope = z.object({ status: z.literal("ok"), data: z.unknown() });
const errorEnvelope = z.object({
  status: z.literal("error"),
  code: z.string(),
  message: z.string().optional().default(""),
  hint: z.string().optional(),
});

const nodeIdSchema = z.number().int().nonnegative();

const infoSchema = z.object({
  node_id: nodeIdSchema,
  address: z.string(),
  hostname: z.string().optional().default(""),
  uptime_secs: z.number().optional(),
  peers: z.number().optional(),
  connections: z.number().optional(),
  public_key: z.string().optional(),
});
export interface PilotInfo {
  nodeId: number;
  address: string;
  hostname: string;
  uptimeSecs?: number;
  peers?: number;
  connections?: number;
  publicKey?: string;
}

const daemonStatusSchema = z.object({
  running: z.boolean(),
  responsive: z.boolean().optional(),
  pid: z.number().optional(),
  socket: z.string().optional(),
  node_id: nodeIdSchema.optional(),
  address: z.string().optional(),
  hostname: z.string().optional(),
});
export interface DaemonStatus {
  running: boolean;
  responsive: boolean;
  pid?: number;
  socket?: string;
  nodeId?: number;
  address?: string;
  hostname?: string;
}

const daemonStartSchema = z.object({
  pid: z.number(),
  node_id: nodeIdSchema,
  address: z.string(),
  hostname: z.string().optional().default(""),
  socket: z.string().optional(),
  log_file: z.string().optional(),
});
export interface DaemonStarted {
  pid: number;
  nodeId: number;
  address: string;
  hostname: string;
  socket?: string;
  logFile?: string;
}

const daemonStopSchema = z.object({ pid: z.number(), forced: z.boolean().optional() });
export interface DaemonStopped {
  pid: number;
  forced: boolean;
}

const sendSchema = z.object({
  target: z.string().optional(),
  type: z.string().optional(),
  bytes: z.number().optional(),
  ack: z.string().optional().default(""),
});
export interface SendResult {
  target: string;
  bytes?: number;
  ack: string;
}

const inboxMessageSchema = z.object({
  id: z.string().optional(),
  type: z.string(),
  from: z.string(),
  data: z.string().optional(),
  data_b64: z.string().optional(),
  preview: z.string().optional(),
  bytes: z.number().optional(),
  received_at: z.union([z.string(), z.number()]).optional(),
});
const inboxSchema = z.object({
  messages: z.array(inboxMessageSchema).nullable().optional(),
  total: z.number().optional(),
  dir: z.string().optional(),
});
export interface InboxMessage {
  /** File name without `.json` (new build only). */
  id?: string;
  type: string;
  from: string;
  fromNodeId?: number;
  /** Payload text (decoded from `data_b64` when the daemon wrote that). */
  data: string;
  bytes?: number;
  receivedAt?: string | number;
}

const pendingSchema = z.object({
  pending: z
    .array(
      z.object({
        node_id: nodeIdSchema,
        public_key: z.string().optional(),
        justification: z.string().optional().default(""),
        received_at: z.number().optional(),
      }),
    )
    .nullable()
    .optional(),
});
export interface PendingRequest {
  nodeId: number;
  publicKey?: string;
  justification: string;
  /** Unix seconds. */
  receivedAt?: number;
}

const trustSchema = z.object({
  trusted: z
    .array(
      z.object({
        node_id: nodeIdSchema,
        public_key: z.string().optional(),
        approved_at: z.number().optional(),
        mutual: z.boolean().optional(),
        network: z.number().optional(),
      }),
    )
    .nullable()
    .optional(),
});
export interface TrustedPeer {
  nodeId: number;
  publicKey?: string;
  /** Unix seconds. */
  approvedAt?: number;
  /** As reported by pilotctl: NOT a reliable "both sides approved" flag. */
  mutual?: boolean;
}

const nodeStatusSchema = z.object({ node_id: nodeIdSchema, status: z.string().optional().default("") });
export interface NodeStatus {
  nodeId: number;
  status: string;
}

const findSchema = z.object({
  hostname: z.string().optional().default(""),
  node_id: nodeIdSchema,
  address: z.string().optional(),
  public: z.boolean().optional(),
});
export interface FoundNode {
  hostname: string;
  nodeId: number;
  address: string;
  public?: boolean;
}

// ---------- the adapter ----------

export type PilotctlShape = "old" | "new" | "auto";

export interface PilotctlOptions {
  /** Path (or PATH name) of the pilotctl binary. */
  binary: string;
  /** HOME shared with this account's daemon: the inbox is `<home>/.pilot/inbox`. */
  home: string;
  /** PILOT_SOCKET of this account's daemon. */
  socket?: string;
  /** Default per-call timeout; the process is killed (SIGTERM, then SIGKILL) on expiry. */
  timeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL. */
  killGraceMs?: number;
  /** Which output build to expect for `inbox`; "auto" tries the new flags and falls back on a usage error. */
  shape?: PilotctlShape;
  /** Extra environment (e.g. PILOT_REGISTRY, or a fake's settings in tests). */
  env?: Record<string, string>;
}

export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

export type MessageType = "text" | "json" | "binary";

export interface DaemonStartArgs {
  hostname?: string;
  /**
   * The identity key file (`--identity`). Without it the daemon uses `~/.pilot/identity.key` of whatever HOME it
   * runs with, and a node started under another HOME comes back with another node id.
   */
  identityFile?: string;
  /** Registry address host:port (`--registry`); else the daemon's env PILOT_REGISTRY, its config, the public one. */
  registry?: string;
  /** Beacon address host:port (`--beacon`); the daemon's default is 127.0.0.1:9001. */
  beacon?: string;
  extraArgs?: string[];
}

export interface Pilotctl {
  readonly home: string;
  info(opts?: CallOptions): Promise<PilotInfo>;
  daemonStatus(opts?: CallOptions): Promise<DaemonStatus>;
  daemonStart(args?: DaemonStartArgs, opts?: CallOptions): Promise<DaemonStarted>;
  daemonStop(opts?: CallOptions): Promise<DaemonStopped>;
  /** `target` = hostname, address or node id. Rejects with PilotError (an `ERR ` ack -> code `ack_error`). */
  sendMessage(
    target: string | number,
    data: string,
    opts?: CallOptions & { type?: MessageType },
  ): Promise<SendResult>;
  /** All messages pilotctl lists (prefer reading inbox files; this is for reconciliation and tests). */
  listInbox(opts?: CallOptions): Promise<InboxMessage[]>;
  pending(opts?: CallOptions): Promise<PendingRequest[]>;
  trust(opts?: CallOptions): Promise<TrustedPeer[]>;
  handshake(target: string | number, justification: string, opts?: CallOptions): Promise<NodeStatus>;
  approve(nodeId: number, opts?: CallOptions): Promise<NodeStatus>;
  reject(nodeId: number, reason?: string, opts?: CallOptions): Promise<NodeStatus>;
  untrust(nodeId: number, opts?: CallOptions): Promise<{ nodeId: number }>;
  find(hostname: string, opts?: CallOptions): Promise<FoundNode>;
}

const DEFAULT_TIMEOUT_MS = 15_000;
// `daemon start` itself may wait up to 15 s for the daemon to come up.
const DAEMON_START_TIMEOUT_MS = 20_000;

function guidance(op: PilotOperation, code: PilotErrorCode, target?: string): string {
  const peer = target === undefined ? "the peer" : `peer ${target}`;
  switch (code) {
    case "trust_required":
      return `${peer} has not trusted us yet: run a handshake first and wait for the peer to approve`;
    case "connection_failed":
      if (op === "send-message") {
        return `could not reach ${peer}: not trusted yet (run a handshake first and wait for the peer to approve) or the peer is offline`;
      }
      if (op === "untrust") return `${peer} is not in the trust list: nothing to untrust`;
      return `pilotctl ${op} could not connect: check the Pilot daemon and the network, then retry`;
    case "not_running":
      return "Pilot daemon not running: start it with `pilotctl daemon start` (or set pilot.manageDaemon), then retry";
    case "timeout":
      return op === "send-message"
        ? `sending to ${peer} timed out: the peer may be offline; retry later`
        : `pilotctl ${op} timed out: check \`pilotctl daemon status\` and retry`;
    case "not_found":
      if (op === "find") {
        return `${peer} is not known to the Pilot registry: check the hostname or ask the peer to start its daemon`;
      }
      return op === "send-message" || op === "handshake"
        ? `could not resolve ${peer}: the Pilot registry does not list it now; check the hostname, or the peer is offline (try again later)`
        : `pilotctl ${op}: nothing found`;
    case "already_exists":
      return op === "daemon.start"
        ? "a Pilot daemon is already running for this HOME: use it, or stop it first"
        : `pilotctl ${op}: already exists`;
    case "binary_missing":
      return "pilotctl not found or not executable: install Pilot Protocol or set pilot.pilotctl to the binary's path";
    case "usage":
      return `pilotctl rejected the arguments of ${op} (usage error): this pilotctl build may be incompatible; check its version`;
    case "ack_error":
      return `${peer} received the message but failed to save it: retry later or ask the peer to check its inbox`;
    case "bad_output":
      return `pilotctl ${op} printed output this plugin cannot read: check the pilotctl version`;
    case "aborted":
      return `pilotctl ${op} was cancelled`;
    case "auth_required":
    case "permission_denied":
      return `pilotctl ${op} was refused (${code}): check the daemon's registry credentials`;
    case "invalid_argument":
      return `pilotctl ${op} rejected an argument: check the node id or hostname`;
    default:
      return `pilotctl ${op} failed (${code}): check \`pilotctl daemon status\` and the daemon log, then retry`;
  }
}

function lastJsonLine(text: string): unknown {
  const lines = text.split("\n").map((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i];
    if (!line?.startsWith("{")) continue;
    try {
      return JSON.parse(line);
    } catch {
      // Not JSON after all (a log line starting with "{"): keep looking upwards.
    }
  }
  return undefined;
}

/** A free-text positional must not look like a flag: the new build acts on a lone `-h` token anywhere. */
function positional(text: string): string {
  if (text.trim() === "") return "(no text)";
  return text.startsWith("-") ? ` ${text}` : text;
}

/** Linux caps one argv string at 128 KiB (MAX_ARG_STRLEN), and argv cannot carry NUL bytes. */
export const MAX_PAYLOAD_BYTES = 128 * 1024 - 64;

function checkPayload(data: string): void {
  if (data === "") {
    // pilotctl answers "--data is required" to an empty value.
    throw new PilotError(
      "send-message",
      "invalid_argument",
      "an empty message cannot be sent: write some text",
    );
  }
  if (data.includes("\0")) {
    throw new PilotError(
      "send-message",
      "invalid_argument",
      "the message contains a NUL byte, which a command line cannot carry: remove it or encode the payload (e.g. base64)",
    );
  }
  const size = Buffer.byteLength(data);
  if (size > MAX_PAYLOAD_BYTES) {
    throw new PilotError(
      "send-message",
      "invalid_argument",
      `the message is ${size} bytes; pilotctl takes at most ${MAX_PAYLOAD_BYTES} bytes per message: shorten or split it`,
    );
  }
}

function checkTarget(op: PilotOperation, target: string): string {
  if (target === "" || target.startsWith("-")) {
    throw new PilotError(
      op,
      "invalid_argument",
      `not a Pilot hostname, address or node id: ${JSON.stringify(target)}`,
    );
  }
  return target;
}

export function createPilotctl(options: PilotctlOptions): Pilotctl {
  const defaultTimeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const killGraceMs = options.killGraceMs ?? 2_000;
  let inboxShape = options.shape === "old" || options.shape === "new" ? options.shape : undefined;

  const env: Record<string, string> = { ...options.env, HOME: options.home };
  if (options.socket !== undefined) env.PILOT_SOCKET = options.socket;

  async function call<T>(
    op: PilotOperation,
    args: string[],
    schema: z.ZodType<T>,
    opts: CallOptions = {},
    target?: string,
    fallbackTimeout = defaultTimeout,
  ): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? fallbackTimeout;
    const result = await execa(options.binary, ["--json", ...args], {
      env,
      extendEnv: true,
      reject: false,
      shell: false,
      stdin: "ignore",
      timeout: timeoutMs,
      killSignal: "SIGTERM",
      forceKillAfterDelay: killGraceMs,
      ...(opts.signal ? { cancelSignal: opts.signal } : {}),
      maxBuffer: 64 * 1024 * 1024,
      stripFinalNewline: true,
    });
    if (result.timedOut) {
      throw new PilotError(
        op,
        "timeout",
        `${guidance(op, "timeout", target)} (no answer within ${timeoutMs} ms)`,
      );
    }
    if (result.isCanceled) throw new PilotError(op, "aborted", guidance(op, "aborted", target));
    const spawnCode = (result.cause as NodeJS.ErrnoException | undefined)?.code;
    if (spawnCode === "ENOENT" || spawnCode === "EACCES") {
      throw new PilotError(
        op,
        "binary_missing",
        `${guidance(op, "binary_missing")} (tried ${options.binary})`,
        {
          cause: result.cause,
        },
      );
    }
    if (result.exitCode === 2) {
      throw new PilotError(op, "usage", guidance(op, "usage", target), {
        detail: String(result.stderr).slice(0, 500),
        exitCode: 2,
      });
    }
    if (result.exitCode !== 0) {
      const parsed = errorEnvelope.safeParse(lastJsonLine(String(result.stderr)));
      if (parsed.success) {
        const code = (KNOWN_CODES.has(parsed.data.code) ? parsed.data.code : "internal") as PilotErrorCode;
        throw new PilotError(op, code, guidance(op, code, target), {
          detail: parsed.data.message,
          ...(parsed.data.hint === undefined ? {} : { hint: parsed.data.hint }),
          ...(result.exitCode === undefined ? {} : { exitCode: result.exitCode }),
        });
      }
      const signal = result.signal ? ` (killed by ${result.signal})` : "";
      throw new PilotError(op, "internal", `${guidance(op, "internal", target)}${signal}`, {
        detail: String(result.stderr).slice(0, 500),
        ...(result.exitCode === undefined ? {} : { exitCode: result.exitCode }),
      });
    }
    const envelope = okEnvelope.safeParse(lastJsonLine(String(result.stdout)));
    if (!envelope.success) {
      throw new PilotError(op, "bad_output", guidance(op, "bad_output"), {
        detail: String(result.stdout).slice(0, 500),
      });
    }
    const data = schema.safeParse(envelope.data.data);
    if (!data.success) {
      throw new PilotError(op, "bad_output", guidance(op, "bad_output"), { detail: data.error.message });
    }
    return data.data;
  }

  const toInbox = (m: z.infer<typeof inboxMessageSchema>): InboxMessage => {
    let fromNodeId: number | undefined;
    try {
      fromNodeId = parseAddress(m.from);
    } catch {
      // A sender address we cannot parse is still listed; the caller maps it (or refuses it) itself.
      fromNodeId = undefined;
    }
    const data =
      m.data ?? (m.data_b64 !== undefined ? Buffer.from(m.data_b64, "base64").toString("utf8") : "");
    return {
      ...(m.id === undefined ? {} : { id: m.id }),
      type: m.type,
      from: m.from,
      ...(fromNodeId === undefined ? {} : { fromNodeId }),
      data,
      ...(m.bytes === undefined ? {} : { bytes: m.bytes }),
      ...(m.received_at === undefined ? {} : { receivedAt: m.received_at }),
    };
  };

  const nodeStatus = (d: z.infer<typeof nodeStatusSchema>): NodeStatus => ({
    nodeId: d.node_id,
    status: d.status,
  });

  return {
    home: options.home,

    async info(opts) {
      const d = await call("info", ["info"], infoSchema, opts);
      return {
        nodeId: d.node_id,
        address: d.address,
        hostname: d.hostname,
        ...(d.uptime_secs === undefined ? {} : { uptimeSecs: d.uptime_secs }),
        ...(d.peers === undefined ? {} : { peers: d.peers }),
        ...(d.connections === undefined ? {} : { connections: d.connections }),
        ...(d.public_key === undefined ? {} : { publicKey: d.public_key }),
      };
    },

    async daemonStatus(opts) {
      const d = await call("daemon.status", ["daemon", "status"], daemonStatusSchema, opts);
      return {
        running: d.running,
        responsive: d.responsive ?? d.running,
        ...(d.pid ? { pid: d.pid } : {}),
        ...(d.socket === undefined ? {} : { socket: d.socket }),
        ...(d.node_id === undefined ? {} : { nodeId: d.node_id }),
        ...(d.address === undefined ? {} : { address: d.address }),
        ...(d.hostname === undefined ? {} : { hostname: d.hostname }),
      };
    },

    async daemonStart(args = {}, opts) {
      const argv = ["daemon", "start"];
      if (args.hostname !== undefined) argv.push(`--hostname=${args.hostname}`);
      if (args.identityFile !== undefined) argv.push(`--identity=${args.identityFile}`);
      if (args.registry !== undefined) argv.push(`--registry=${args.registry}`);
      if (args.beacon !== undefined) argv.push(`--beacon=${args.beacon}`);
      argv.push(...(args.extraArgs ?? []));
      const d = await call("daemon.start", argv, daemonStartSchema, opts, undefined, DAEMON_START_TIMEOUT_MS);
      return {
        pid: d.pid,
        nodeId: d.node_id,
        address: d.address,
        hostname: d.hostname,
        ...(d.socket === undefined ? {} : { socket: d.socket }),
        ...(d.log_file === undefined ? {} : { logFile: d.log_file }),
      };
    },

    async daemonStop(opts) {
      const d = await call("daemon.stop", ["daemon", "stop"], daemonStopSchema, opts);
      return { pid: d.pid, forced: d.forced ?? false };
    },

    async sendMessage(target, data, opts = {}) {
      const t = String(target);
      // Target first, the payload as ONE token: a separate `--data <v>` mangles values starting with "--".
      checkPayload(data);
      const argv = ["send-message", checkTarget("send-message", t), `--data=${data}`];
      if (opts.type !== undefined) argv.push(`--type=${opts.type}`);
      const d = await call("send-message", argv, sendSchema, opts, t);
      if (d.ack.startsWith("ERR ")) {
        throw new PilotError("send-message", "ack_error", guidance("send-message", "ack_error", t), {
          detail: d.ack,
        });
      }
      return { target: d.target ?? t, ...(d.bytes === undefined ? {} : { bytes: d.bytes }), ack: d.ack };
    },

    async listInbox(opts) {
      if (inboxShape !== "old") {
        try {
          const d = await call("inbox", ["inbox", "--full", "--limit", "0"], inboxSchema, opts);
          inboxShape = "new";
          return (d.messages ?? []).map(toInbox);
        } catch (err) {
          // An old build does not know --full/--limit (usage error): remember that and use plain `inbox`.
          if (!(err instanceof PilotError && err.code === "usage" && inboxShape === undefined)) throw err;
          inboxShape = "old";
        }
      }
      const d = await call("inbox", ["inbox"], inboxSchema, opts);
      return (d.messages ?? []).map(toInbox);
    },

    async pending(opts) {
      const d = await call("pending", ["pending"], pendingSchema, opts);
      return (d.pending ?? []).map((p) => ({
        nodeId: p.node_id,
        justification: p.justification,
        ...(p.public_key === undefined ? {} : { publicKey: p.public_key }),
        ...(p.received_at === undefined ? {} : { receivedAt: p.received_at }),
      }));
    },

    async trust(opts) {
      const d = await call("trust", ["trust"], trustSchema, opts);
      return (d.trusted ?? []).map((t) => ({
        nodeId: t.node_id,
        ...(t.public_key === undefined ? {} : { publicKey: t.public_key }),
        ...(t.approved_at === undefined ? {} : { approvedAt: t.approved_at }),
        ...(t.mutual === undefined ? {} : { mutual: t.mutual }),
      }));
    },

    async handshake(target, justification, opts) {
      const t = String(target);
      const d = await call(
        "handshake",
        ["handshake", checkTarget("handshake", t), positional(justification)],
        nodeStatusSchema,
        opts,
        t,
      );
      return nodeStatus(d);
    },

    async approve(nodeId, opts) {
      return nodeStatus(
        await call("approve", ["approve", String(nodeId)], nodeStatusSchema, opts, String(nodeId)),
      );
    },

    async reject(nodeId, reason, opts) {
      const argv = ["reject", String(nodeId)];
      if (reason !== undefined && reason !== "") argv.push(positional(reason));
      return nodeStatus(await call("reject", argv, nodeStatusSchema, opts, String(nodeId)));
    },

    async untrust(nodeId, opts) {
      const d = await call(
        "untrust",
        ["untrust", String(nodeId)],
        z.object({ node_id: nodeIdSchema }),
        opts,
        String(nodeId),
      );
      return { nodeId: d.node_id };
    },

    async find(hostname, opts) {
      const d = await call("find", ["find", checkTarget("find", hostname)], findSchema, opts, hostname);
      return {
        hostname: d.hostname || hostname,
        nodeId: d.node_id,
        address: d.address ?? formatAddress(d.node_id),
        ...(d.public === undefined ? {} : { public: d.public }),
      };
    },
  };
}
