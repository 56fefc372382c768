-- Heartbeats write last_seen and nothing else. While last_seen was indexed (agents_last_seen, and the second
-- column of agents_node), every heartbeat wrote a new entry into each of the agents table's nine indexes. With no
-- index on it, PostgreSQL writes the new row version into the same page (a heap-only tuple, HOT) and touches no
-- index: at 1,000,000 agents, 48-64 us of database CPU per heartbeat instead of 180-230 us (batches of 12 rows
-- from 6 connections).
--
-- The purge sweep finds long-offline agents through seen_day, the day of last_seen (a stored generated column):
-- it changes once a day per agent, so every heartbeat of a day but the first stays heap-only.
-- Lookups by node id read that node's records and sort them, as the SQLite store does.
-- New row versions need room in their page: pages are filled to 85% (this ALTER rewrites the table, once).
DROP INDEX agents_last_seen;
DROP INDEX agents_node;
ALTER TABLE agents SET (fillfactor = 85);
ALTER TABLE agents ADD COLUMN seen_day bigint GENERATED ALWAYS AS (last_seen / 86400000) STORED;
CREATE INDEX agents_seen_day ON agents (seen_day);
CREATE INDEX agents_node ON agents (pilot_node_id);
