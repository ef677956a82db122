-- Tokens for following one run's events from a browser (EventSource cannot
-- send headers): POST /api/v1/runs/{id}/events/token makes one, assay-stream
-- accepts it as ?token= for that run only. Only the SHA-256 is stored.
CREATE TABLE stream_tokens (
    token_hash  bytea PRIMARY KEY,
    job_id      uuid NOT NULL REFERENCES analysis_jobs (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stream_tokens_expires ON stream_tokens (expires_at);
CREATE INDEX stream_tokens_job ON stream_tokens (job_id);
