// Pilot Protocol as an account's transport: the daemon child's actors bound to pilotctl, outbound through
// pilotctl, and the inbox files (read by the root's `inbox` loop, woken by a directory watcher) into the
// pipeline. pilotctl missing = discovery-only: the registry still works, messaging says why.
import { homedir } from "node:os";
import { fromPromise } from "xstate";
import { createPilotInbox } from "../adapters/pilot/pilot-inbox.js";
import { createPilotTransport } from "../adapters/pilot/pilot-transport.js";
import { createPilotctl, type Pilotctl, PilotError } from "../adapters/pilot/pilotctl.js";
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
}

export interface PilotLink extends TransportLink {
  pilotctl: Pilotctl;
}

/** The daemon child's actors (src/machines/daemon.machine.ts) over pilotctl. */
export function daemonActors(pilotctl: Pilotctl, options: { pilotctlPath: string; absentRecheckMs: number }) {
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
        const started = await pilotctl.daemonStart({ hostname: input.hostname });
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
    timeoutMs: 20_000,
  });
  const running = () => deps.daemon()?.messagingAvailable === true;
  const transport = createPilotTransport({
    pilotctl,
    sendTimeoutMs: account.pilot.sendTimeoutMs,
    resolveNodeId: async (hostname) => {
      const record = await deps.registry.byHostname(hostname);
      const id = record?.pilotNodeId == null ? null : Number(record.pilotNodeId);
      return id !== null && Number.isSafeInteger(id) ? id : null;
    },
    log,
  });
  const pipeline = createPipeline(deps);
  const inbox = createPilotInbox({ home, sink: pipeline, log });
  return {
    pilotctl,
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
      pipeline.close();
    },
  };
}
