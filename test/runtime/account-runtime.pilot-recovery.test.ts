// A Pilot account started before pilotctl exists runs discovery-only and says why; once the (fake) pilotctl is
// installed at the configured path, the account gets messaging back without a gateway restart: at once through
// the operator's agent-registry.refresh, or by itself at the daemon's next absent recheck. Real child processes:
// the fake pilotctl and its daemon, the reference registry on 127.0.0.1.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayMethodSpecs } from "../../src/adapters/openclaw/gateway-methods.js";
import { resolveAccounts } from "../../src/config.js";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import type { PilotDaemonTiming } from "../../src/runtime/account-runtime.js";
import { type AccountRuntime, startAccountRuntime } from "../../src/runtime/account-runtime.js";
import { AccountRuntimes } from "../../src/runtime/account-runtimes.js";
import { createFakePilotNetwork, type FakePilotNetwork } from "../fixtures/fake-pilot/network.js";
import { quiet, until } from "./support/until.js";

describe("Pilot account recovers when pilotctl is installed later", () => {
  let registry: RegistryServerHandle;
  let pilot: FakePilotNetwork;
  const dir = mkdtempSync(join(tmpdir(), "ar-pilot-recovery-"));
  const runtimes = new AccountRuntimes();
  const savedEnv = { ...process.env };

  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: ":memory:" });
    pilot = createFakePilotNetwork({ shape: "new" });
    // The runtime's pilotctl calls inherit this process's environment: point them at this fake network.
    const { HOME: _home, PILOT_SOCKET: _socket, ...shared } = pilot.env(dir);
    Object.assign(process.env, shared);
  });

  afterAll(async () => {
    for (const runtime of runtimes.list()) await runtime.stop();
    await registry?.close();
    // Kills exactly this network's fake daemons, by PID.
    pilot?.close();
    process.env = savedEnv;
    rmSync(dir, { recursive: true, force: true });
  });

  /** An account whose pilotctl path does not exist yet; the plugin manages the daemon. */
  async function startWithoutPilotctl(name: string, pilotDaemon: PilotDaemonTiming) {
    const node = pilot.addNode(name, { start: false });
    const pilotctl = join(dir, name, "bin", "pilotctl");
    const [account] = resolveAccounts(
      {
        registryUrl: registry.url,
        transport: "pilot",
        accounts: {
          [name]: {
            hostname: name,
            // All pilot settings here: an account's own pilot object replaces the channel-level one.
            pilot: {
              pilotctl,
              home: node.home,
              socket: node.socket,
              manageDaemon: true,
              pollIntervalSeconds: 1,
            },
          },
        },
      },
      {},
    );
    const runtime = await startAccountRuntime({
      account: account!,
      stateRoot: join(dir, name, "state"),
      log: quiet,
      createDispatcher: () => async () => {},
      pilotDaemon,
    });
    runtimes.add(runtime);
    const install = () => {
      mkdirSync(join(dir, name, "bin"), { recursive: true });
      symlinkSync(pilot.pilotctlPath, pilotctl);
    };
    return { runtime, install };
  }

  const method = (name: string) => gatewayMethodSpecs(runtimes).find((spec) => spec.name === name)!;

  async function expectDiscoveryOnly(runtime: AccountRuntime) {
    // "starting" first, while the daemon actor looks for pilotctl; then why not, and what to do.
    const reason = await until(
      () =>
        /pilotctl was not found/.test(runtime.network.unavailableReason() ?? "") &&
        runtime.network.unavailableReason(),
      "the reason messaging is off",
    );
    expect(reason).toMatch(/set pilot\.pilotctl to its path.*at once with agent-registry\.refresh/);
    await until(() => runtime.status().lifecycle === "online", "registration without Pilot (discovery-only)");
    expect(runtime.metadata().pilotNodeId).toBeNull();
  }

  async function expectMessagingBack(runtime: AccountRuntime, name: string) {
    await until(() => runtime.network.unavailableReason() === null, "messaging available", 20_000);
    const { accounts } = (await method("agent-registry.status").run({ accountId: name })) as {
      accounts: Array<{ unavailableReason: string | null; transport: string }>;
    };
    expect(accounts[0]).toMatchObject({ transport: "pilot", unavailableReason: null });
    // The daemon the plugin started is a real process of this fake network, and its node reached the registry.
    expect(pilot.daemonPids().length).toBeGreaterThan(0);
    const nodeId = await until(() => runtime.metadata().pilotNodeId, "the daemon's node id in the metadata");
    await until(
      async () => String((await runtime.registry.byHostname(name))?.pilotNodeId) === String(nodeId),
      "the node id registered",
    );
  }

  it("agent-registry.refresh brings it back at once", async () => {
    // The recheck timer is far away: only the refresh can bring this account back within the test.
    const { runtime, install } = await startWithoutPilotctl("carol", { absentRecheckMs: 3_600_000 });
    await expectDiscoveryOnly(runtime);

    install();
    await method("agent-registry.refresh").run({ accountId: "carol" });
    await expectMessagingBack(runtime, "carol");
  }, 60_000);

  it("without a refresh, the next absent recheck brings it back", async () => {
    const { runtime, install } = await startWithoutPilotctl("dave", { absentRecheckMs: 1_000 });
    await expectDiscoveryOnly(runtime);
    // A recheck that still finds nothing leaves it discovery-only and says so again.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(runtime.network.unavailableReason()).toMatch(/pilotctl was not found/);

    install();
    await expectMessagingBack(runtime, "dave");
  }, 60_000);

  it("a crashed daemon shows at the account's status, and its own child restarts it", async () => {
    const { runtime, install } = await startWithoutPilotctl("erin", {
      absentRecheckMs: 3_600_000,
      watchIntervalMs: 200,
      restartBackoff: { initialMs: 100, maxMs: 100, factor: 1 },
    });
    await expectDiscoveryOnly(runtime);
    install();
    await method("agent-registry.refresh").run({ accountId: "erin" });
    await expectMessagingBack(runtime, "erin");
    // The daemon is a child of the account, in one tree.
    expect(Object.keys(runtime.actor.getSnapshot().children)).toContain("daemon");
    const before = runtime.status().messaging.daemon!;
    expect(before).toMatchObject({ phase: "running", managed: true });

    // Crash it (a process this test's fake network started, ended by its PID).
    const pids = pilot.daemonPids();
    for (const pid of pids) process.kill(pid, "SIGKILL");
    const lost = await until(() => {
      const daemon = runtime.status().messaging.daemon;
      return daemon && daemon.phase !== "running" ? runtime.status().messaging : null;
    }, "the crash at erin's status");
    expect(lost.ready).toBe(false);
    expect(lost.reason).toMatch(/Pilot daemon/);
    // Restarted by the daemon child, with one restart used.
    const back = await until(
      () => {
        const daemon = runtime.status().messaging.daemon;
        return daemon?.phase === "running" ? daemon : null;
      },
      "erin's daemon restarted",
      20_000,
    );
    expect(back.restartsLeft).toBeLessThan(back.restartBudget);
    expect(runtime.status().messaging.ready).toBe(true);
  }, 60_000);
});
