-- Broad searches estimate their total from the planner's statistics on agent_words.word (registry_words_estimate,
-- 0003). With the default statistics target (100) only the 100 most common keys get their own frequency; a key
-- outside that list, such as a capability held by 2% of agents at 1,000,000 agents, was estimated from the
-- histogram at a few rows, and its search answered a total of 501 for 19,943 holders. A target of 1,000 keeps the
-- 1,000 most common keys (from a sample of 300,000 rows), so every key with more holders than the exact bound of a
-- search (500) has its own frequency at that size.
ALTER TABLE agent_words ALTER COLUMN word SET STATISTICS 1000;
ANALYZE agent_words;
