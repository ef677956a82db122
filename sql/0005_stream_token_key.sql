-- A stream token dies with the API key that made it: each token names its
-- key, and assay-stream refuses a token whose key is revoked (or deleted).
-- Tokens live minutes; those made before this migration are dropped.
DELETE FROM stream_tokens;
ALTER TABLE stream_tokens
    ADD COLUMN api_key_id bigint NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE;
CREATE INDEX stream_tokens_key ON stream_tokens (api_key_id);
