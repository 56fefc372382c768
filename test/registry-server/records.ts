// Store-level fixtures: an agent record and a search query with plain defaults, for tests that talk to a store
// (or the search ranking) directly rather than through the HTTP API.
import type { AgentSearchQuery, StoredAgent } from "../../src/registry-server/store.js";

/** Agent `i` (id id-000i, hostname agent-i, installation inst-i, seen at 1000), with `fields` over that. */
export const storedAgent = (i: number, fields: Partial<StoredAgent> = {}): StoredAgent => ({
  id: `id-${String(i).padStart(4, "0")}`,
  hostname: `agent-${i}`,
  installationId: `inst-${i}`,
  peerId: null,
  pilotNodeId: null,
  pilotAddress: null,
  displayName: null,
  description: null,
  capabilities: [],
  tokenHash: null,
  publicKey: null,
  signedRecord: null,
  lastSeen: 1000,
  createdAt: 1000,
  updatedAt: 1000,
  ...fields,
});

/** A search for everything (no words, no capabilities, match=any, first 20), with `over` over that. */
export const searchQuery = (over: Partial<AgentSearchQuery> = {}): AgentSearchQuery => ({
  phrase: "",
  terms: [],
  capabilities: [],
  match: "any",
  limit: 20,
  offset: 0,
  ...over,
});
