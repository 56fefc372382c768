// The persisted shape of one peer's record (the plain state a handshake actor resumes from), validated wherever
// it is read back: rows of the account database and the legacy peers.json. Text in a record came from disk and
// partly from other agents, so nothing is trusted until it parses.
import { z } from "zod";
import { isPublicKey } from "../../identity/keys.js";
import { PEER_STATES } from "../../machines/handshake.machine.js";

export const peerRecordSchema = z.object({
  hostname: z.string().nullable(),
  nodeId: z.number().nullable(),
  installationId: z.string().nullable().default(null),
  state: z.enum(PEER_STATES),
  introduction: z.string().nullable().default(null),
  justification: z.string().nullable().default(null),
  assistantName: z.string().nullable().default(null),
  humanName: z.string().nullable().default(null),
  announcedAt: z.number().nullable().default(null),
  updatedAt: z.number().nullable().default(null),
  key: z.string().refine(isPublicKey).nullable().default(null),
  offeredKey: z.string().refine(isPublicKey).nullable().default(null),
});

/** peers.json (before the account database): the peer table, one record per handshake actor. */
export const peersFileSchema = z.object({ peers: z.array(peerRecordSchema).default([]) });
