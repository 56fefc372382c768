// Pilot transport of one account: the daemon actor (src/machines/daemon.machine.ts) bound to pilotctl, the
// inbox receiver feeding the inbound pipeline, and the poll actor that scans missed files and reconciles
// pending handshakes and trust. pilotctl missing = discovery-only: the registry still works, messaging says why.
import { homedir } from "node:os";
import { type Actor, createActor, fromPromise } from "xstate";
import { startPilotReceiver } from "../adapters/pilot/pilot-receiver.js";
import { createPilotTransport } from "../adapters/pilot/pilot-transport.js";
import { createPilotctl, PilotError } from "../adapters/pilot/pilotctl.js";
import { type BinaryCheck, DAEMON_DEFAULTS, daemonMachine, spokenDelay } from "../machines/daemon.machine.js";
import type { PlainError } from "../machines/types.js";
import {
  createPipeline,
  inboundCounters,
  type LinkDeps,
  startPollActor,
  type TransportLink,
} from "./transport-link.js";

function plainPilotError(error: unknown, operation: string): PlainError {
  const message = error instanceof Error ? error.message : String(error);
  const kind = error instanceof PilotError && error.code === "timeout" ? "timeout" : "unreachable";
  return { kind, operation, message };
}

export async function startPilotLink(deps: LinkDeps): Promise<TransportLink> {
  const { account, log } = deps;
  const absentRecheckMs = deps.pilotDaemon?.absentRecheckMs ?? DAEMON_DEFAULTS.absentRecheckMs;
  const home = account.pilot.home ?? homedir();
  const pilotctl = createPilotctl({
    binary: account.pilot.pilotctl,
    home,
    ...(account.pilot.socket ? { socket: account.pilot.socket } : {}),
    timeoutMs: 20_000,
  });

  const daemon: Actor<typeof daemonMachine> = createActor(
    daemonMachine.provide({
      actors: {
        checkBinary: fromPromise(async (): Promise<BinaryCheck> => {
          try {
            await pilotctl.daemonStatus();
            return { present: true };
          } catch (error) {
            if (error instanceof PilotError && error.code === "binary_missing") {
              return {
                present: false,
                reason:
                  `pilotctl was not found ("${account.pilot.pilotctl}"): discovery works, messaging does not. ` +
                  'Install Pilot Protocol, set pilot.pilotctl to its path, or use transport "relay". ' +
                  `It is looked for again in ${spokenDelay(absentRecheckMs)}, or at once with agent-registry.refresh`,
              };
            }
            return { present: true };
          }
        }),
        startDaemon: fromPromise(async ({ input }) => {
          try {
            const started = await pilotctl.daemonStart({ hostname: input.hostname });
            return { nodeId: started.nodeId, address: started.address };
          } catch (error) {
            if (error instanceof PilotError && error.code === "already_exists") {
              const info = await pilotctl.info();
              return { nodeId: info.nodeId, address: info.address };
            }
            throw plainPilotError(error, "pilot.daemon.start");
          }
        }),
        readStatus: fromPromise(async () => {
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
            throw plainPilotError(error, "pilot.daemon.status");
          }
        }),
        stopDaemon: fromPromise<unknown, { graceMs: number }>(async () => {
          try {
            await pilotctl.daemonStop();
          } catch (error) {
            if (!(error instanceof PilotError && error.code === "not_running")) {
              throw plainPilotError(error, "pilot.daemon.stop");
            }
          }
        }),
      },
    }),
    {
      id: `daemon:${account.accountId}`,
      systemId: `daemon:${account.accountId}`,
      input: {
        manageDaemon: account.pilot.manageDaemon,
        hostname: account.hostname,
        ...deps.pilotDaemon,
        absentRecheckMs,
      },
      ...(deps.inspect ? { inspect: deps.inspect } : {}),
    },
  );

  const running = () => {
    const snapshot = daemon.getSnapshot();
    const top = typeof snapshot.value === "string" ? snapshot.value : Object.keys(snapshot.value)[0];
    return top === "running" && snapshot.context.nodeId !== null;
  };

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
  const receiver = startPilotReceiver({ home, sink: pipeline, log });
  const poll = startPollActor(deps, async () => {
    if (!running()) return {};
    const summary = await receiver.scan();
    await deps.reconcile();
    return { dispatched: summary.dispatched, refused: summary.refused, deferred: summary.retried };
  });

  let lastNode: number | null = null;
  daemon.subscribe({
    next: (snapshot) => {
      const nodeId = running() ? snapshot.context.nodeId : null;
      if (nodeId !== lastNode) {
        lastNode = nodeId;
        if (nodeId !== null) {
          log.info(
            `agent-registry: ${account.accountId}: Pilot daemon up (node ${nodeId}, ${snapshot.context.address})`,
          );
          deps.onNodeInfo?.({ pilotNodeId: nodeId, pilotAddress: snapshot.context.address });
          poll.send({ type: "INBOX.WAKE" });
        }
      }
    },
    error: (error) => log.error(`agent-registry: daemon actor failed: ${String(error)}`),
  });
  daemon.start();

  return {
    transport: () => (running() ? transport : null),
    unavailableReason: () => {
      if (running()) return null;
      const { reason } = daemon.getSnapshot().context;
      return reason ?? "The Pilot daemon is starting; try again in a few seconds";
    },
    inbox: () => ({ undelivered: [], deadLettered: [] }),
    counters: () => inboundCounters(pipeline),
    nodeInfo: () => ({
      pilotNodeId: running() ? daemon.getSnapshot().context.nodeId : null,
      pilotAddress: running() ? daemon.getSnapshot().context.address : null,
    }),
    // Only absent, failed and a detached daemon's wait react; elsewhere the machine ignores it (already trying).
    retry: () => {
      if (daemon.getSnapshot().status === "active") daemon.send({ type: "DAEMON.RETRY" });
    },
    async stop() {
      poll.send({ type: "STOP" });
      poll.stop();
      await receiver.close();
      pipeline.close();
      // A managed daemon is stopped (SIGTERM, then SIGKILL, bounded); an observed one is left running.
      const done = new Promise<void>((resolve) => {
        const sub = daemon.subscribe({
          next: (snapshot) => {
            if (snapshot.status !== "active") {
              sub.unsubscribe();
              resolve();
            }
          },
          complete: () => resolve(),
        });
      });
      daemon.send({ type: "STOP" });
      await Promise.race([done, new Promise((r) => setTimeout(r, 12_000).unref())]);
      daemon.stop();
    },
  };
}
