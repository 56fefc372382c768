// Transport "auto" as an account's link: the Pilot link (its daemon child, its inbox files read by the `inbox`
// loop) and the relay link (its inbox read by the `relayInbox` loop) feeding ONE inbound pipeline, so a message
// that arrives over both paths (a resend after Pilot failed) meets the same processed keys and is dispatched once,
// and is answered with a receipt either way. Outbound goes through the fallback transport: Pilot first, the relay
// when Pilot to that peer fails.
import { createFallbackTransport } from "../adapters/transport/fallback-transport.js";
import { createPipeline } from "./inbound.js";
import { createPilotLink, type PilotLink, type PilotLinkDeps } from "./pilot-link.js";
import { createRelayLink, type RelayLinkDeps } from "./relay-link.js";
import type { TransportLink } from "./transport-link.js";

export type AutoLinkDeps = PilotLinkDeps & RelayLinkDeps;

export function createAutoLink(deps: AutoLinkDeps): PilotLink {
  const pipeline = createPipeline(deps);
  const pilot = createPilotLink({ ...deps, pipeline });
  const relay: TransportLink = createRelayLink({ ...deps, pipeline });
  const transport = createFallbackTransport({
    pilot: () => pilot.transport(),
    relay: () => relay.transport(),
    log: deps.log,
  });
  return {
    pilotctl: pilot.pilotctl,
    daemonStart: pilot.daemonStart,
    transport: () => (pilot.transport() || relay.transport() ? transport : null),
    unavailableReason: () => {
      const pilotReason = pilot.unavailableReason();
      const relayReason = relay.unavailableReason();
      if (pilotReason === null || relayReason === null) return null;
      return `Neither path works now. Pilot: ${pilotReason}. Relay: ${relayReason}`;
    },
    inbox: pilot.inbox,
    relayInbox: relay.inbox,
    report: () => relay.report(),
    // One pipeline: the relay link's counters are its counters, plus what the relay inbox could not read.
    counters: () => ({ ...relay.counters(), paths: transport.counters() }),
    async close() {
      await pilot.close();
      await relay.close();
      pipeline.close();
    },
  };
}
