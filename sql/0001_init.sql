-- Core schema: tenants and their keys, projects, analyses with their
-- versions, runs (analysis_jobs) with their event log, and idempotency keys.
-- Applied by `assayctl migrate` inside one transaction.

CREATE TABLE tenants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    tier        text NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'pro', 'enterprise')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only a SHA-256 of each key is stored; prefix identifies a key for humans.
CREATE TABLE api_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    prefix        text NOT NULL UNIQUE,
    hash          bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE projects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE analyses (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id       bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title            text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description      text NOT NULL DEFAULT '',
    runtime          text NOT NULL DEFAULT 'js' CHECK (runtime IN ('js', 'node')),
    script_content   text NOT NULL,
    version          integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    is_active        boolean NOT NULL DEFAULT true,
    timeout_ms       integer NOT NULL DEFAULT 30000 CHECK (timeout_ms > 0),
    memory_limit_mb  integer NOT NULL DEFAULT 64 CHECK (memory_limit_mb > 0),
    max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX analyses_project_created ON analyses (project_id, created_at DESC, id DESC)
    WHERE is_active;

CREATE TABLE analysis_versions (
    analysis_id     uuid NOT NULL REFERENCES analyses (id) ON DELETE CASCADE,
    version         integer NOT NULL,
    script_content  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (analysis_id, version)
);

-- One row per run.
CREATE TABLE analysis_jobs (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id           bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    analysis_id          uuid NOT NULL REFERENCES analyses (id),
    analysis_version     integer NOT NULL,
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    input                jsonb,
    tags                 text[] NOT NULL DEFAULT '{}',
    client_token         text,
    status               text NOT NULL DEFAULT 'created'
                         CHECK (status IN ('created', 'pending', 'running',
                                           'completed', 'failed', 'canceled')),
    priority             integer NOT NULL DEFAULT 0,
    attempts             integer NOT NULL DEFAULT 0,
    max_attempts         integer NOT NULL DEFAULT 3,
    run_after            timestamptz NOT NULL DEFAULT now(),
    lease_expires_at     timestamptz,
    worker_id            text,
    triggered_by         text NOT NULL DEFAULT 'api'
                         CHECK (triggered_by IN ('api', 'schedule', 'manual')),
    error_message        text,
    result               jsonb,
    callback_url         text,
    cancel_requested_at  timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    finished_at          timestamptz
);
-- Listing newest first per project (keyset on created_at, id), with filters.
CREATE INDEX analysis_jobs_project_created ON analysis_jobs (project_id, created_at DESC, id DESC);
CREATE INDEX analysis_jobs_project_status ON analysis_jobs (project_id, status, created_at DESC, id DESC);
CREATE INDEX analysis_jobs_analysis ON analysis_jobs (analysis_id, created_at DESC);
CREATE INDEX analysis_jobs_tags ON analysis_jobs USING gin (tags);
-- The claim query: highest priority, then oldest, among runnable pending work.
CREATE INDEX analysis_jobs_claim ON analysis_jobs (priority DESC, run_after, created_at)
    WHERE status = 'pending';
-- Lease recovery scans only running jobs.
CREATE INDEX analysis_jobs_lease ON analysis_jobs (lease_expires_at) WHERE status = 'running';

CREATE TABLE job_events (
    job_id      uuid NOT NULL REFERENCES analysis_jobs (id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    type        text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE idempotency_keys (
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    job_id        uuid REFERENCES analysis_jobs (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
