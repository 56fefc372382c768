-- What replicas share besides the rows of the registry: spent proof nonces (a proof replayed at another replica
-- must be refused as at the first) and the record of the last purge sweep (one replica sweeps per interval).

-- Nonces of X-Agent-Proof headers already used, as sha256 hex (fixed size whatever the client sent), each kept
-- until `expires_at` (epoch ms: twice the proof window); the sweep deletes expired ones.
CREATE TABLE proof_nonces (
  nonce_hash text COLLATE "C" PRIMARY KEY,
  expires_at bigint NOT NULL
);
CREATE INDEX proof_nonces_expiry ON proof_nonces (expires_at);

-- One row per periodic job: when a replica last started it (database clock, so replicas' clocks do not matter)
-- and how often it ran (operators and tests read it).
CREATE TABLE registry_sweeps (
  name text PRIMARY KEY,
  last_run timestamptz NOT NULL,
  runs bigint NOT NULL
);
INSERT INTO registry_sweeps (name, last_run, runs) VALUES ('purge', '-infinity', 0);
