-- A search checks every query word on each of its candidates with a probe of agent_words by (seq, word): is a
-- word of this agent in the query word's prefix range? (postgres-store.ts, RANKED_PAGE_SQL). An index on
-- (seq, word) answers it from the index alone. It replaces the index on seq (0001), whose work (an agent's
-- words deleted with it, or rewritten when it re-registers) it does as well. Built once, in about 20 s at
-- 1,000,000 agents (20,000,000 words), while registrations wait.
CREATE INDEX agent_words_seq_word ON agent_words (seq, word);
DROP INDEX agent_words_seq;
