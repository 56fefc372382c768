-- Bounded search (postgres-store.ts, searchAgents): a broad query examines a bounded sample of candidates taken
-- in a stable order and estimates its total, instead of walking every match.
--
-- Each agent's exact capabilities join its words in agent_words, keyed U+0001 || capability. U+0001 sorts
-- before every letter and digit, so no word's prefix range reaches these keys; and a capability's holders become
-- a btree range in seq order, which a query can LIMIT (a GIN index hands out all its matches at once, unordered).
INSERT INTO agent_words (word, seq)
SELECT DISTINCT E'\x01' || c, a.seq FROM agents a CROSS JOIN LATERAL unnest(a.capabilities) AS c
ON CONFLICT DO NOTHING;

-- How many rows of agent_words a key range holds, as the planner estimates it from the table's statistics
-- (most common values and histogram, kept by autovacuum's ANALYZE): the size of a broad query's candidate source,
-- for its estimated total, without counting it. Bounds are quoted as literals (%L), never spliced as SQL.
-- VOLATILE because PostgreSQL runs EXPLAIN only in volatile functions.
CREATE FUNCTION registry_words_estimate(lo text, hi text) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  plan json;
BEGIN
  EXECUTE format('EXPLAIN (FORMAT JSON) SELECT 1 FROM agent_words WHERE word >= %L AND word < %L', lo, hi)
    INTO plan;
  RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::bigint;
END $$;
