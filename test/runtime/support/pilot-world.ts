// A reference registry on 127.0.0.1 and a fake Pilot network for runtime tests, set up and torn down by the
// describe block that calls `usePilotWorld`: the runtimes' pilotctl calls inherit this process's environment,
// which points at this network until the block ends. Runtimes pushed on `runtimes` are stopped at the end.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { type RegistryServerHandle, startRegistryServer } from "../../../src/registry-server/server.js";
import type { AccountRuntime } from "../../../src/runtime/account-runtime.js";
import {
  createFakePilotNetwork,
  type FakePilotNetwork,
  type FakePilotNetworkOptions,
} from "../../fixtures/fake-pilot/network.js";

export interface PilotWorld {
  readonly registry: RegistryServerHandle;
  readonly pilot: FakePilotNetwork;
  readonly dir: string;
  readonly runtimes: AccountRuntime[];
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
  };
}
