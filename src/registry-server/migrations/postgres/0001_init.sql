-- The registry's first PostgreSQL schema: the rows of the SQLite store, plus what search needs in the database
-- (every replica searches the same rows, so there is no in-memory index to keep in step across processes).
-- Times are epoch milliseconds (bigint), as in the SQLite store; ids compare byte-wise (COLLATE "C").

CREATE TABLE agents (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text COLLATE "C" NOT NULL UNIQUE,
  hostname text COLLATE "C" NOT NULL UNIQUE,
  installation_id text COLLATE "C" UNIQUE,
  peer_id text COLLATE "C" UNIQUE,
  pilot_node_id bigint,
  pilot_address text,
  display_name text,
  description text,
  -- Lowercase, de-duplicated, in registration order.
  capabilities text[] COLLATE "C" NOT NULL,
  token_hash text,
  public_key text,
  signed_record text,
  last_seen bigint NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  -- Lowercase hostname, display name, description and capabilities, one a line: verbatim query terms
  -- (alpha-bot, c++) must occur in it.
  search_text text NOT NULL
);
CREATE INDEX agents_last_seen ON agents (last_seen);
CREATE INDEX agents_created ON agents (created_at, id);
CREATE INDEX agents_node ON agents (pilot_node_id, last_seen DESC);
-- Capability filters (&& for any, @> for all) and the ranking's exact-capability tier.
CREATE INDEX agents_capabilities ON agents USING gin (capabilities);

-- The words of each agent's search text (split at punctuation, lowercase): a query word must be a prefix of one
-- of them, which is a range scan of the primary key (word >= w AND word < w || U+10FFFF, byte order).
CREATE TABLE agent_words (
  word text COLLATE "C" NOT NULL,
  seq bigint NOT NULL REFERENCES agents (seq) ON DELETE CASCADE,
  PRIMARY KEY (word, seq)
);
CREATE INDEX agent_words_seq ON agent_words (seq);

CREATE TABLE messages (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id text COLLATE "C" NOT NULL,
  to_installation_id text COLLATE "C" NOT NULL,
  from_installation_id text NOT NULL,
  from_hostname text NOT NULL,
  body_json text NOT NULL,
  created_at bigint NOT NULL,
  body_bytes integer NOT NULL,
  UNIQUE (to_installation_id, message_id)
);
CREATE INDEX messages_inbox ON messages (to_installation_id, seq);
CREATE INDEX messages_created ON messages (created_at);

-- Per-inbox counts for the relay quota, kept by triggers in the same transaction as every insert and delete.
-- A send locks its inbox's row before its message takes a seq, so an inbox's seqs commit in order: a reader
-- that has seen seq n never sees a smaller one appear later.
CREATE TABLE inbox_usage (
  to_installation_id text COLLATE "C" PRIMARY KEY,
  messages bigint NOT NULL,
  bytes bigint NOT NULL
);

CREATE FUNCTION messages_usage_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO inbox_usage (to_installation_id, messages, bytes)
  VALUES (NEW.to_installation_id, 1, NEW.body_bytes)
  ON CONFLICT (to_installation_id) DO UPDATE
  SET messages = inbox_usage.messages + 1, bytes = inbox_usage.bytes + excluded.bytes;
  RETURN NULL;
END $$;

CREATE FUNCTION messages_usage_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE inbox_usage
  SET messages = messages - 1, bytes = bytes - OLD.body_bytes
  WHERE to_installation_id = OLD.to_installation_id;
  RETURN NULL;
END $$;

CREATE TRIGGER messages_usage_insert AFTER INSERT ON messages
  FOR EACH ROW EXECUTE FUNCTION messages_usage_insert();
CREATE TRIGGER messages_usage_delete AFTER DELETE ON messages
  FOR EACH ROW EXECUTE FUNCTION messages_usage_delete();

CREATE TABLE trust (
  requester_id text COLLATE "C" NOT NULL,
  target_id text COLLATE "C" NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'blocked')),
  introduction text,
  assistant_name text,
  human_name text,
  created_at bigint NOT NULL,
  approved_at bigint,
  updated_at bigint NOT NULL,
  change_seq bigint NOT NULL,
  PRIMARY KEY (requester_id, target_id)
);
CREATE INDEX trust_target ON trust (target_id, status);
CREATE INDEX trust_requester_change ON trust (requester_id, change_seq);
CREATE INDEX trust_target_change ON trust (target_id, change_seq);

-- Registry-wide counters bumped in the same transaction as the write they number. A trust write holds the
-- counter's row until it commits, so change sequences become visible in order.
CREATE TABLE counters (
  name text PRIMARY KEY,
  value bigint NOT NULL
);
INSERT INTO counters (name, value) VALUES ('trust_change', 0);
