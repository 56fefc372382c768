// What `openclaw doctor` and `openclaw security audit` say about an agent-registry account: the channel's
// security.collectWarnings findings, and the DM policy that tells OpenClaw who may write (peers whose handshake
// the owner approved; the pairing allow list only carries approvals to the gateway and admits nobody).
//
// Findings come from the config (any process) and, where this process runs the account (the gateway), from its
// live state; in a CLI process the account's identity.json tells whether the registry issues agent tokens.
import { existsSync, readFileSync, statSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";
import { CHANNEL_ID, type ResolvedAccount } from "../../config.js";
import type { DaemonStatusView } from "../../machines/daemon.status.js";
import { accountStateDir } from "../state/account-state.js";

export interface SecurityFinding {
  checkId: string;
  severity: "info" | "warn" | "critical";
  title: string;
  detail: string;
  remediation: string;
}

/** What a running account can tell about itself (absent in a CLI process). */
export interface LiveAccountFacts {
  registered: boolean;
  hasAgentToken: boolean;
  daemon: DaemonStatusView | null;
}

export interface SecurityContext {
  account: ResolvedAccount;
  /** The whole OpenClaw config (for commands.ownerAllowFrom and the raw channel section). */
  cfg: { channels?: Record<string, unknown>; commands?: { ownerAllowFrom?: unknown } };
  env: Record<string, string | undefined>;
  /** OpenClaw's state directory (the account's identity.json is below it). */
  stateDir: string | null;
  live: LiveAccountFacts | null;
  /** Finds an executable the way a shell does (tests replace it). */
  which?: (command: string, env: Record<string, string | undefined>) => string | null;
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "::1", "[::1]"]);

function isLoopback(hostname: string): boolean {
  return LOOPBACK.has(hostname) || /^127\.\d+\.\d+\.\d+$/.test(hostname) || hostname.endsWith(".localhost");
}

export function whichExecutable(command: string, env: Record<string, string | undefined>): string | null {
  const isFile = (path: string) => {
    try {
      return statSync(path).isFile();
    } catch {
      return false; // Missing or unreadable: not usable as pilotctl either way.
    }
  };
  if (isAbsolute(command) || command.includes("/")) return isFile(command) ? command : null;
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir && isFile(join(dir, command))) return join(dir, command);
  }
  return null;
}

/** The account's own config object and the channel's top-level one, as written in openclaw.json. */
function rawSections(cfg: SecurityContext["cfg"], accountId: string) {
  const section = (cfg.channels?.[CHANNEL_ID] ?? {}) as Record<string, unknown>;
  const accounts = section.accounts;
  let own: Record<string, unknown> = {};
  if (Array.isArray(accounts)) {
    own = (accounts.find((a) => (a as { id?: unknown })?.id === accountId) ?? {}) as Record<string, unknown>;
  } else if (accounts && typeof accounts === "object") {
    own = ((accounts as Record<string, unknown>)[accountId] ?? {}) as Record<string, unknown>;
  }
  return { section, own };
}

/** Whether the registry gave this account no agent token at its last registration (identity.json). */
function registeredWithoutToken(ctx: SecurityContext): boolean | null {
  if (ctx.live) return ctx.live.registered ? !ctx.live.hasAgentToken : null;
  if (!ctx.stateDir) return null;
  const path = join(accountStateDir(ctx.stateDir, ctx.account.accountId), "identity.json");
  if (!existsSync(path)) return null;
  try {
    const saved = JSON.parse(readFileSync(path, "utf8")) as {
      agentId?: unknown;
      agentToken?: unknown;
      registryUrl?: unknown;
    };
    if (saved.registryUrl !== ctx.account.registryUrl || typeof saved.agentId !== "string") return null;
    return typeof saved.agentToken !== "string" || saved.agentToken.length === 0;
  } catch {
    return null; // A file being rewritten or damaged: the account reports that itself when it starts.
  }
}

export function collectSecurityFindings(ctx: SecurityContext): SecurityFinding[] {
  const { account } = ctx;
  const id = account.accountId;
  const path = `channels.${CHANNEL_ID}.accounts.${id}`;
  const label = `Agent Registry account "${id}"`;
  const findings: SecurityFinding[] = [];
  const { section, own } = rawSections(ctx.cfg, id);

  const written = own.registryApiKey ?? section.registryApiKey;
  const fromEnv = ctx.env.AGENT_REGISTRY_API_KEY?.trim();
  // A value equal to the env var is most likely OpenClaw's ${VAR} substitution, not a key in the file.
  if (
    typeof written === "string" &&
    written.trim() &&
    !written.includes("${") &&
    written.trim() !== fromEnv
  ) {
    findings.push({
      checkId: `channels.${CHANNEL_ID}.registry_key_in_config`,
      severity: "warn",
      title: `${label}: the registry key is written in openclaw.json`,
      detail:
        "registryApiKey is stored in the config file in clear, where backups, diffs and config dumps carry it.",
      remediation: `Remove registryApiKey from ${own.registryApiKey !== undefined ? path : `channels.${CHANNEL_ID}`} and set AGENT_REGISTRY_API_KEY in the gateway's environment instead.`,
    });
  }

  // Every URL listed for failover carries the same key, token and messages when requests move to it.
  const plain = account.registryUrls.flatMap((url) => {
    let registry: URL;
    try {
      registry = new URL(url);
    } catch {
      return []; // The config schema already refuses it; nothing to add here.
    }
    if (registry.protocol === "https:" || isLoopback(registry.hostname)) return [];
    // Shown without credentials: the audit's output is read and pasted elsewhere.
    return [`${registry.protocol}//${registry.host}${registry.pathname.replace(/\/+$/, "")}`];
  });
  if (plain.length > 0) {
    const several = plain.length > 1;
    findings.push({
      checkId: `channels.${CHANNEL_ID}.registry_not_https`,
      severity: account.registryApiKey ? "critical" : "warn",
      title: `${label}: the registry is reached over plain HTTP`,
      detail: `${plain.join(", ")} ${several ? "are" : "is"} neither https nor loopback: the registry key, the agent token and relayed messages cross the network readable and alterable by anyone on the path.`,
      remediation: `Use ${several ? "https:// URLs" : "an https:// URL"} for registryUrl in ${path} (or a registry on 127.0.0.1).`,
    });
  }

  if (account.handshake.approver === "agent") {
    findings.push({
      checkId: `channels.${CHANNEL_ID}.handshake_agent_approver`,
      severity: "warn",
      title: `${label}: the agent approves handshakes itself`,
      detail:
        'handshake.approver is "agent": the model decides which peers become trusted, from text those peers wrote. A persuasive introduction can talk it into trusting a stranger.',
      remediation: `Set ${path}.handshake.approver to "owner" and approve with \`openclaw pairing approve ${CHANNEL_ID} <code> --account ${id}\`.`,
    });
  }

  if (registeredWithoutToken(ctx)) {
    findings.push({
      checkId: `channels.${CHANNEL_ID}.registry_without_agent_tokens`,
      severity: "warn",
      title: `${label}: the registry issues no agent tokens`,
      detail: `${account.registryUrl} registered this agent without an agent token: anyone holding the registry's shared key can heartbeat, change or delete this agent's record and send relay messages in its name (a record bound to this installation's key still resists rewriting).`,
      remediation:
        "Run a registry with agent tokens (the reference `agent-registry` server issues them), or keep the shared key to parties you trust.",
    });
  }

  if (account.transport === "pilot" || account.transport === "auto") {
    const which = ctx.which ?? whichExecutable;
    if (!which(account.pilot.pilotctl, ctx.env)) {
      findings.push({
        checkId: `channels.${CHANNEL_ID}.pilot_missing`,
        severity: account.transport === "pilot" ? "warn" : "info",
        title: `${label}: pilotctl not found`,
        detail: `transport "${account.transport}" needs Pilot's pilotctl ("${account.pilot.pilotctl}"), which is not on this PATH: ${account.transport === "pilot" ? "the account is discoverable but cannot message" : "messages go by the registry's relay only"}.`,
        remediation: `Install Pilot Protocol (pilotctl) for the gateway's user, or set ${path}.pilot.pilotctl to its path, or use transport "relay".`,
      });
    }
    const daemon = ctx.live?.daemon;
    if (daemon && (daemon.phase === "crashed" || daemon.phase === "failed" || daemon.phase === "detached")) {
      findings.push({
        checkId: `channels.${CHANNEL_ID}.pilot_daemon_stale`,
        severity: "warn",
        title: `${label}: the Pilot daemon is not running (${daemon.phase})`,
        detail: daemon.reason ?? `The Pilot daemon is ${daemon.phase}.`,
        remediation: daemon.managed
          ? `Check the daemon's log, then \`openclaw gateway call agent-registry.refresh --params '{"accountId":"${id}"}'\` to restart it now.`
          : "Start the Pilot daemon (`pilotctl daemon start`) or set pilot.manageDaemon to true so the gateway supervises it.",
      });
    }
  }
  return findings;
}

/** Findings about the whole install, once (not per account). */
export function collectGlobalFindings(cfg: SecurityContext["cfg"]): SecurityFinding[] {
  const owners = Array.isArray(cfg.commands?.ownerAllowFrom) ? cfg.commands.ownerAllowFrom : [];
  const peers = owners.map(String).filter((o) => o.toLowerCase().startsWith(`${CHANNEL_ID}:`));
  if (owners.length === 0) {
    return [
      {
        checkId: `channels.${CHANNEL_ID}.no_command_owner`,
        severity: "warn",
        title: "No command owner is configured",
        detail:
          "commands.ownerAllowFrom is empty: the first peer agent approved with `openclaw pairing approve` would become this installation's command owner, and that config write restarts the gateway.",
        remediation:
          "Make your own chat account the owner before approving a peer (`openclaw config set commands.ownerAllowFrom '[\"telegram:<your id>\"]'`), or approve peers with `openclaw agent-registry approve` or the network page, which write no config.",
      },
    ];
  }
  if (peers.length === 0) return [];
  return [
    {
      checkId: `channels.${CHANNEL_ID}.peer_is_command_owner`,
      severity: "critical",
      title: "A peer agent is a command owner",
      detail: `commands.ownerAllowFrom names ${peers.join(", ")}: another assistant would be treated as this installation's owner. \`openclaw pairing approve\` writes the first approved sender there when no owner is configured.`,
      remediation: `Replace ${peers.join(", ")} in commands.ownerAllowFrom with your own account on a chat channel (\`openclaw config set commands.ownerAllowFrom '["telegram:<your id>"]'\`).`,
    },
  ];
}
