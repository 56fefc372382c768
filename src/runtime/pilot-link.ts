// Pilot Protocol as an account's transport: the daemon child's actors bound to pilotctl, outbound through
// pilotctl, and the inbox files (read by the root's `inbox` loop, woken by a directory watcher) into the
// pipeline. pilotctl missing = discovery-only: the registry still works, messaging says why. Sends that keep
// failing to trusted, online peers are reported to the daemon child (DAEMON.SUSPECT), which restarts a managed
// daemon: a restarted peer breaks the pair until both ends restart (docs/pilot.md).
import { homedir } from "node:os";
import { join } from "node:path";
import { fromPromise } from "xstate";
import { createPilotInbox } from "../adapters/pilot/pilot-inbox.js";
import { createPilotTransport } from "../adapters/pilot/pilot-transport.js";
import {
  createPilotctl,
  type DaemonStartArgs,
  type Pilotctl,
  PilotError,
} from "../adapters/pilot/pilotctl.js";
import type { Log } from "../log.js";
import {
  type BinaryCheck,
  type DaemonIdentity,
  type DaemonStatus,
  type StartDaemonInput,
  type StopDaemonInput,
  spokenDelay,
} from "../machines/daemon.machine.js";
import type { DaemonStatusView } from "../machines/daemon.status.js";
import { createPipeline, type InboundDeps, inboundCounters } from "./inbound.js";
import { toPlain } from "./plain-error.js";
import { idleSummary, type TransportLink } from "./transport-link.js";

export interface PilotLinkDeps extends InboundDeps {
  /** The daemon child as status shows it (null before it started). */
  daemon(): DaemonStatusView | null;
  /** Tells the daemon child that sends keep failing (DAEMON.SUSPECT); it restarts a managed daemon. */
  suspectDaemon?(reason: string): void;
}

export interface PilotLink extends TransportLink {
  pilotctl: Pilotctl;
  /** What a managed daemon is started with besides its hostname: the same identity file every time. */
  daemonStart: Omit<DaemonStartArgs, "hostname">;
}

/** Suspicion: this many failed sends to trusted, online peers in a row, within the window, restart a managed daemon. */
export const SUSPECT_AFTER_FAILURES = 3;
export const SUSPECT_WINDOW_MS = 10 * 60_000;

export const FOREIGN_DAEMON =
  "Pilot daemon is running but was not started by pilotctl (its PID file is missing), so this plugin cannot stop " +
  "or restart it: restart it the way it was started (its service manager, or its process), or set " +
  "pilot.manageDaemon to false to only observe it; then run agent-registry.refresh";

/** The daemon child's actors (src/machines/daemon.machine.ts) over pilotctl. */
export function daemonActors(
  pilotctl: Pilotctl,
  options: {
    pilotctlPath: string;
    absentRecheckMs: number;
    start?: Omit<DaemonStartArgs, "hostname">;
    log?: Pick<Log, "warn">;
  },
) {
  return {
    checkBinary: fromPromise<BinaryCheck, Record<string, never>>(async () => {
      try {
        await pilotctl.daemonStatus();
        return { present: true };
      } catch (error) {
        if (error instanceof PilotError && error.code === "binary_missing") {
          return {
            present: false,
            reason:
              `pilotctl was not found ("${options.pilotctlPath}"): discovery works, messaging does not. ` +
              'Install Pilot Protocol, set pilot.pilotctl to its path, or use transport "relay". ' +
              `It is looked for again in ${spokenDelay(options.absentRecheckMs)}, or at once with agent-registry.refresh`,
          };
        }
        return { present: true };
      }
    }),
    startDaemon: fromPromise<DaemonIdentity, StartDaemonInput>(async ({ input }) => {
      try {
        const started = await pilotctl.daemonStart({ ...options.start, hostname: input.hostname });
        return { nodeId: started.nodeId, address: started.address };
      } catch (error) {
        if (error instanceof PilotError && error.code === "already_exists") {
          const info = await pilotctl.info();
          return { nodeId: info.nodeId, address: info.address };
        }
        throw toPlain(error, "pilot.daemon.start");
      }
    }),
    readStatus: fromPromise<DaemonStatus, Record<string, never>>(async () => {
      try {
        const status = await pilotctl.daemonStatus();
        let nodeId = status.nodeId ?? null;
        let address = status.address ?? null;
        if (status.running && nodeId === null) {
          const info = await pilotctl.info();
          nodeId = info.nodeId;
          address = info.address;
        }
        return { running: status.running, responsive: status.responsive, nodeId, address };
      } catch (error) {
        throw toPlain(error, "pilot.daemon.status");
      }
    }),
    stopDaemon: fromPromise<unknown, StopDaemonInput>(async () => {
      try {
        await pilotctl.daemonStop();
      } catch (error) {
        if (!(error instanceof PilotError && error.code === "not_running")) {
          throw toPlain(error, "pilot.daemon.stop");
        }
        // pilotctl answers not_running also for a daemon it did not start (no PID file), which keeps running: not
        // stopped, and a start now would only attach to it again.
        const status = await pilotctl.daemonStatus().catch(() => null);
        if (status?.running) {
          options.log?.warn(`agent-registry: ${FOREIGN_DAEMON}`);
          throw { kind: "conflict", operation: "pilot.daemon.stop", message: FOREIGN_DAEMON };
        }
      }
    }),
  };
}

export function createPilotLink(deps: PilotLinkDeps): PilotLink {
  const { account, log } = deps;
  const home = account.pilot.home ?? homedir();
  const pilotctl = createPilotctl({
    binary: account.pilot.pilotctl,
    home,
    ...(account.pilot.socket ? { socket: account.pilot.socket } : {}),
    // pilotctl's own registry lookups use the same registry as the daemon.
    ...(account.pilot.registry ? { env: { PILOT_REGISTRY: account.pilot.registry } } : {}),
    timeoutMs: 20_000,
  });
  // Named explicitly, so every managed start uses this file whatever HOME the daemon would resolve: the node id
  // stays the same across restarts.
  const daemonStart: Omit<DaemonStartArgs, "hostname"> = {
    identityFile: join(home, ".pilot", "identity.key"),
    ...(account.pilot.registry ? { registry: account.pilot.registry } : {}),
    ...(account.pilot.beacon ? { beacon: account.pilot.beacon } : {}),
  };
  const running = () => deps.daemon()?.messagingAvailable === true;
  const transport = createPilotTransport({
    pilotctl,
    sendTimeoutMs: account.pilot.sendTimeoutMs,
    suspicion: {
      after: SUSPECT_AFTER_FAILURES,
      windowMs: SUSPECT_WINDOW_MS,
      report: (reason) => {
        const managed = deps.daemon()?.managed === true;
        log.warn(
          managed
            ? `agent-registry: ${account.accountId}: ${reason}; restarting the Pilot daemon (once its hold allows)`
            : `agent-registry: ${account.accountId}: ${reason}. A restarted peer breaks the pair until both daemons restart: restart this Pilot daemon, or set pilot.manageDaemon to let the plugin do it`,
        );
        deps.suspectDaemon?.(reason);
      },
    },
    resolveNodeId: async (hostname) => {
      const record = await deps.registry.byHostname(hostname);
      const id = record?.pilotNodeId == null ? null : Number(record.pilotNodeId);
      return id !== null && Number.isSafeInteger(id) ? id : null;
    },
    log,
  });
  const pipeline = deps.pipeline ?? createPipeline(deps);
  const inbox = createPilotInbox({ home, sink: pipeline, log });
  return {
    pilotctl,
    daemonStart,
    transport: () => (running() ? transport : null),
    unavailableReason: () => {
      if (running()) return null;
      return deps.daemon()?.reason ?? "The Pilot daemon is starting; try again in a few seconds";
    },
    inbox: {
      // Files wait in the inbox while the daemon is down; the loop is woken when it comes up (DAEMON.READY).
      runCycle: (input, signal) =>
        running() ? inbox.runCycle(input, signal) : Promise.resolve(idleSummary(input.trigger)),
      watch: (onWake) => inbox.watch(onWake),
      close: () => inbox.close(),
    },
    report: () => ({ undelivered: [], deadLettered: [] }),
    counters: () => inboundCounters(pipeline),
    async close() {
      await inbox.close();
      if (!deps.pipeline) pipeline.close();
    },
  };
}
