// Public peer ids. An installation id proves who an agent is (it names its inbox and its trust records), so it
// stays secret; everyone else addresses the agent by a peer id derived from it one way: stable across
// registrations, computable by the owner, and useless for recovering the installation id.
import { createHash } from "node:crypto";

/** `p_` + 32 hex digits (128 bits of sha256). */
export const PEER_ID_PATTERN = /^p_[0-9a-f]{32}$/;

export function peerIdOf(installationId: string): string {
  return `p_${createHash("sha256").update(`agent-registry peer:${installationId}`, "utf8").digest("hex").slice(0, 32)}`;
}

export const isPeerId = (id: string): boolean => PEER_ID_PATTERN.test(id);
