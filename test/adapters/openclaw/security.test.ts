// Doctor and security-audit findings of an account: each one from the config or state that causes it, with a
// remediation, and none for the safe defaults.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  collectGlobalFindings,
  collectSecurityFindings,
  type SecurityContext,
} from "../../../src/adapters/openclaw/security.js";
import { accountStateDir } from "../../../src/adapters/state/account-state.js";
import { resolveAccount } from "../../../src/config.js";
import type { DaemonStatusView } from "../../../src/machines/daemon.status.js";
import { testTempDir } from "../../support/temp-dir.js";

const found = () => "/usr/bin/pilotctl";
const missing = () => null;

function context(own: Record<string, unknown>, patch: Partial<SecurityContext> = {}): SecurityContext {
  const section = { accounts: { alice: { hostname: "alice", transport: "relay", ...own } } };
  const env = patch.env ?? {};
  return {
    account: resolveAccount(section, "alice", env),
    cfg: { channels: { "agent-registry": section } },
    env,
    stateDir: null,
    live: null,
    which: found,
    ...patch,
  };
}

const ids = (ctx: SecurityContext) => collectSecurityFindings(ctx).map((f) => f.checkId.split(".").at(-1));

describe("security findings", () => {
  it("has none for a relay account on a loopback registry approved by its owner", () => {
    expect(collectSecurityFindings(context({}))).toEqual([]);
  });

  it("a registry key written in openclaw.json, but not one OpenClaw substituted from the environment", () => {
    const [finding] = collectSecurityFindings(context({ registryApiKey: "sk-secret" }));
    expect(finding).toMatchObject({
      checkId: "channels.agent-registry.registry_key_in_config",
      severity: "warn",
    });
    expect(finding?.remediation).toContain("AGENT_REGISTRY_API_KEY");
    expect(JSON.stringify(finding)).not.toContain("sk-secret");
    expect(ids(context({ registryApiKey: "sk-env" }, { env: { AGENT_REGISTRY_API_KEY: "sk-env" } }))).toEqual(
      [],
    );
    // biome-ignore lint/suspicious/noTemplateCurlyInString: OpenClaw's env substitution syntax, written literally
    expect(ids(context({ registryApiKey: "${AGENT_REGISTRY_API_KEY}" }))).toEqual([]);
  });

  it("a registry over plain HTTP off this machine; critical when a key travels with it", () => {
    expect(ids(context({ registryUrl: "https://registry.example" }))).toEqual([]);
    expect(ids(context({ registryUrl: "http://localhost:8001" }))).toEqual([]);
    const plain = collectSecurityFindings(context({ registryUrl: "http://registry.example" }));
    expect(plain.map((f) => [f.checkId, f.severity])).toEqual([
      ["channels.agent-registry.registry_not_https", "warn"],
    ]);
    const keyed = collectSecurityFindings(
      context({ registryUrl: "http://10.0.0.5:8001" }, { env: { AGENT_REGISTRY_API_KEY: "k" } }),
    );
    expect(keyed[0]?.severity).toBe("critical");
  });

  it("checks every registry URL listed for failover, naming the plain ones without credentials", () => {
    expect(
      ids(context({ registryUrl: ["https://a.registry.example", "https://b.registry.example"] })),
    ).toEqual([]);
    const [finding, ...rest] = collectSecurityFindings(
      context({
        registryUrl: [
          "https://a.registry.example",
          "http://b.registry.example/reg/?token=secret",
          "http://127.0.0.1:8001",
        ],
      }),
    );
    expect(rest).toEqual([]);
    expect(finding).toMatchObject({
      checkId: "channels.agent-registry.registry_not_https",
      severity: "warn",
    });
    expect(finding?.detail).toContain("http://b.registry.example/reg is neither https nor loopback");
    expect(finding?.detail).not.toContain("a.registry.example");
    expect(finding?.detail).not.toContain("127.0.0.1");
    expect(JSON.stringify(finding)).not.toContain("secret");
  });

  it("the agent as handshake approver", () => {
    const [finding] = collectSecurityFindings(context({ handshake: { approver: "agent" } }));
    expect(finding?.checkId).toBe("channels.agent-registry.handshake_agent_approver");
    expect(finding?.remediation).toContain('"owner"');
  });

  it("a registry that registered the account without an agent token (live, or from identity.json offline)", () => {
    expect(ids(context({}, { live: { registered: true, hasAgentToken: false, daemon: null } }))).toEqual([
      "registry_without_agent_tokens",
    ]);
    expect(ids(context({}, { live: { registered: true, hasAgentToken: true, daemon: null } }))).toEqual([]);
    const stateDir = testTempDir("ar-security-");
    const dir = accountStateDir(stateDir, "alice");
    mkdirSync(dir, { recursive: true });
    const registryUrl = "http://127.0.0.1:8001";
    writeFileSync(
      join(dir, "identity.json"),
      JSON.stringify({ agentId: "a1", agentToken: null, registryUrl }),
    );
    expect(ids(context({ registryUrl }, { stateDir }))).toEqual(["registry_without_agent_tokens"]);
    writeFileSync(
      join(dir, "identity.json"),
      JSON.stringify({ agentId: "a1", agentToken: "t", registryUrl }),
    );
    expect(ids(context({ registryUrl }, { stateDir }))).toEqual([]);
  });

  it("pilotctl missing for a pilot account (info only for auto, which still has the relay)", () => {
    expect(ids(context({ transport: "pilot" }, { which: missing }))).toEqual(["pilot_missing"]);
    const auto = collectSecurityFindings(context({ transport: "auto" }, { which: missing }));
    expect(auto.map((f) => f.severity)).toEqual(["info"]);
    expect(ids(context({ transport: "relay" }, { which: missing }))).toEqual([]);
  });

  it("a Pilot daemon that is not running, as the daemon actor reports it", () => {
    const daemon: DaemonStatusView = {
      phase: "failed",
      managed: true,
      messagingAvailable: false,
      nodeId: null,
      address: null,
      reason: "Pilot daemon failed 5 times: see its log",
      restartsLeft: 0,
      restartBudget: 5,
      lastError: null,
    };
    const [finding] = collectSecurityFindings(
      context({ transport: "pilot" }, { live: { registered: false, hasAgentToken: false, daemon } }),
    );
    expect(finding).toMatchObject({
      checkId: "channels.agent-registry.pilot_daemon_stale",
      detail: daemon.reason,
    });
    expect(finding?.remediation).toContain("agent-registry.refresh");
    const running = { ...daemon, phase: "running" as const, messagingAvailable: true };
    expect(
      ids(
        context(
          { transport: "pilot" },
          { live: { registered: false, hasAgentToken: false, daemon: running } },
        ),
      ),
    ).toEqual([]);
  });

  it("a peer agent made command owner (OpenClaw's pairing approve bootstraps the first owner)", () => {
    expect(collectGlobalFindings({ commands: { ownerAllowFrom: ["telegram:1"] } })).toEqual([]);
    // No owner yet: the first approval through `openclaw pairing approve` would make the peer the owner.
    for (const cfg of [{}, { commands: { ownerAllowFrom: [] } }]) {
      expect(collectGlobalFindings(cfg)).toMatchObject([
        { checkId: "channels.agent-registry.no_command_owner", severity: "warn" },
      ]);
    }
    const [finding] = collectGlobalFindings({ commands: { ownerAllowFrom: ["agent-registry:bob"] } });
    expect(finding).toMatchObject({
      checkId: "channels.agent-registry.peer_is_command_owner",
      severity: "critical",
    });
  });
});
