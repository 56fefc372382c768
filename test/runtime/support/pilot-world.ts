// A reference registry on 127.0.0.1 and a fake Pilot network for runtime tests, set up and torn down by the
// describe block that calls `usePilotWorld`: the runtimes' pilotctl calls inherit this process's environment,
// which points at this network until the block ends. Runtimes pushed on `runtimes` are stopped at the end.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { resolveAccounts } from "../../../src/config.js";
import { type RegistryServerHandle, startRegistryServer } from "../../../src/registry-server/server.js";
import {
  type AccountRuntime,
  type AccountRuntimeOptions,
  startAccountRuntime,
} from "../../../src/runtime/account-runtime.js";
import {
  createFakePilotNetwork,
  type FakePilotNetwork,
  type FakePilotNetworkOptions,
  type FakePilotNode,
} from "../../fixtures/fake-pilot/network.js";
import { quiet } from "./until.js";

export interface PilotWorld {
  readonly registry: RegistryServerHandle;
  readonly pilot: FakePilotNetwork;
  readonly dir: string;
  readonly runtimes: AccountRuntime[];
  /**
   * Starts account `name` on `node` of this world (its pilotctl, HOME and socket; `pilot` adds or overrides
   * fields), registered in this world's registry; stopped when the block ends. Does not wait for it to be online.
   */
  startAccount(
    name: string,
    node: FakePilotNode,
    options?: {
      transport?: "pilot" | "auto";
      pilot?: Record<string, unknown>;
      runtime?: Partial<Omit<AccountRuntimeOptions, "account" | "stateRoot">>;
    },
  ): Promise<AccountRuntime>;
}

export function usePilotWorld(prefix: string, options: Partial<FakePilotNetworkOptions> = {}): PilotWorld {
  const dir = mkdtempSync(join(tmpdir(), `ar-${prefix}-`));
  const runtimes: AccountRuntime[] = [];
  const savedEnv = { ...process.env };
  let registry: RegistryServerHandle | undefined;
  let pilot: FakePilotNetwork | undefined;
  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: ":memory:" });
    pilot = createFakePilotNetwork({ shape: "new", ...options });
    const { HOME: _home, PILOT_SOCKET: _socket, ...shared } = pilot.env(dir);
    Object.assign(process.env, shared);
  });
  afterAll(async () => {
    for (const runtime of runtimes) await runtime.stop();
    await registry?.close();
    // Kills exactly this network's fake daemons, by PID.
    pilot?.close();
    process.env = savedEnv;
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    get registry() {
      if (!registry) throw new Error("the pilot world starts in beforeAll");
      return registry;
    },
    get pilot() {
      if (!pilot) throw new Error("the pilot world starts in beforeAll");
      return pilot;
    },
    dir,
    runtimes,
    async startAccount(name, node, options = {}) {
      const [account] = resolveAccounts(
        {
          registryUrl: this.registry.url,
          transport: options.transport ?? "pilot",
          accounts: {
            [name]: {
              hostname: name,
              pilot: {
                pilotctl: this.pilot.pilotctlPath,
                home: node.home,
                socket: node.socket,
                ...options.pilot,
              },
            },
          },
        },
        {},
      );
      const runtime = await startAccountRuntime({
        log: quiet,
        ...options.runtime,
        account: account!,
        stateRoot: join(dir, name, "state"),
      });
      runtimes.push(runtime);
      return runtime;
    },
  };
}
