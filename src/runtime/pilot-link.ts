// Pilot transport of one account (placeholder until the Pilot transport adapter lands).
import type { LinkDeps, TransportLink } from "./transport-link.js";
import { noneLink } from "./transport-link.js";

export async function startPilotLink(deps: LinkDeps): Promise<TransportLink> {
  const link = noneLink(deps.account);
  return {
    ...link,
    unavailableReason: () => "The Pilot transport is not wired yet in this build; use transport relay",
  };
}
