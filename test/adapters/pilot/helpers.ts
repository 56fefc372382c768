// Shared setup for the Pilot adapter tests: a fake network plus one adapter per node.
import { createPilotctl, type Pilotctl, type PilotctlOptions } from "../../../src/adapters/pilot/pilotctl.js";
import {
  createFakePilotNetwork,
  type FakePilotNetwork,
  type FakePilotNetworkOptions,
  type FakePilotNode,
} from "../../fixtures/fake-pilot/network.js";

export interface Peer {
  node: FakePilotNode;
  ctl: Pilotctl;
}

export function adapterFor(
  net: FakePilotNetwork,
  node: FakePilotNode,
  extra: Partial<PilotctlOptions> = {},
): Pilotctl {
  return createPilotctl({
    binary: net.pilotctlPath,
    home: node.home,
    socket: node.socket,
    // Generous: on a loaded 2-core CI machine one node process can take seconds to start.
    timeoutMs: 30_000,
    env: net.env(node.home),
    ...extra,
  });
}

export function setupNetwork(options: FakePilotNetworkOptions, hostnames: string[]) {
  const net = createFakePilotNetwork(options);
  const peers = hostnames.map((h) => {
    const node = net.addNode(h);
    return { node, ctl: adapterFor(net, node) };
  });
  return { net, peers };
}

/** Polls `check` until it returns true; bounded by `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Mutual trust the way users get it: A asks, B approves. */
export async function trustEachOther(a: Peer, b: Peer): Promise<void> {
  const aInfo = await a.ctl.info();
  await a.ctl.handshake(b.node.hostname, "test: please trust me");
  await waitFor(async () => (await b.ctl.pending()).some((p) => p.nodeId === aInfo.nodeId), 30_000);
  await b.ctl.approve(aInfo.nodeId);
  const bInfo = await b.ctl.info();
  await waitFor(async () => (await a.ctl.trust()).some((t) => t.nodeId === bInfo.nodeId), 30_000);
}

/** The Pilot inbox loop as the receiver tests start it (the poll machine driving the Pilot inbox adapter). */
export {
  type PilotReceiver,
  type PilotReceiverOptions,
  startPilotReceiver,
} from "../../support/inbox-loops.js";
