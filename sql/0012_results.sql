-- Large results. A result whose JSON text is longer than the executor's
-- result_inline_max is not kept in the run's row: the executor writes its
-- text to analysis_result_storage in pieces of at most 256 KiB as it reads
-- it from the worker, each piece only while it holds the run's lease (for
-- the attempt it runs, which the run's row then names), and the run
-- records its size and SHA-256 when it completes. assay-api reads it back
-- piece by piece. Pieces belong to an attempt: when an attempt that wrote
-- some stops running, however it ends (completed, failed, retried,
-- canceled, recovered after its executor died, requeued at shutdown), a
-- trigger deletes every piece but those of the result the run keeps, so
-- no retry or crash leaves orphan or mixed pieces. Pruned runs take theirs
-- with them (the foreign key cascades).

-- result_attempt: the attempt whose pieces analysis_result_storage holds
-- (being written, or the result kept), or NULL: none. The executor sets it
-- with each piece it writes, in the same statement.
ALTER TABLE analysis_jobs
    ADD COLUMN result_size bigint CHECK (result_size >= 0),
    ADD COLUMN result_sha256 text CHECK (result_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN result_attempt integer;

CREATE TABLE analysis_result_storage (
    job_id   uuid NOT NULL REFERENCES analysis_jobs (id) ON DELETE CASCADE,
    attempt  integer NOT NULL,
    seq      integer NOT NULL CHECK (seq >= 0),
    data     bytea NOT NULL,
    PRIMARY KEY (job_id, attempt, seq)
);

-- An attempt that wrote pieces has stopped running: only the pieces of the
-- result the run keeps (its last attempt's, once completed) remain. Runs
-- that wrote none (nearly all) never call it.
CREATE FUNCTION assay_result_storage_trim() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'completed' AND NEW.result_size IS NOT NULL THEN
        DELETE FROM analysis_result_storage s
        WHERE s.job_id = NEW.id AND s.attempt <> NEW.attempts;
        NEW.result_attempt := NEW.attempts;
    ELSE
        DELETE FROM analysis_result_storage s WHERE s.job_id = NEW.id;
        NEW.result_attempt := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER analysis_jobs_result_storage BEFORE UPDATE OF status ON analysis_jobs
    FOR EACH ROW
    WHEN (OLD.status = 'running' AND NEW.status <> 'running' AND OLD.result_attempt IS NOT NULL)
    EXECUTE FUNCTION assay_result_storage_trim();

-- A run as clients see it: a stored result is not inlined; its size and
-- where to read it are given instead. It says where it came from
-- (triggered_by; a schedule's run also its schedule and tick).
CREATE OR REPLACE FUNCTION assay_run_json(j analysis_jobs) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', j.id, 'name', j.name, 'analysis_id', j.analysis_id,
        'analysis_version', j.analysis_version, 'status', j.status,
        'input', j.input, 'tags', to_jsonb(j.tags), 'client_token', j.client_token,
        'priority', j.priority, 'attempts', j.attempts, 'max_attempts', j.max_attempts,
        'callback_url', j.callback_url, 'result', j.result, 'error_message', j.error_message,
        'triggered_by', j.triggered_by,
        'cancel_requested_at', assay_ts(j.cancel_requested_at),
        'created_at', assay_ts(j.created_at), 'started_at', assay_ts(j.started_at),
        'finished_at', assay_ts(j.finished_at))
        || CASE WHEN j.schedule_id IS NULL THEN '{}'::jsonb
                ELSE jsonb_build_object('schedule_id', j.schedule_id,
                                        'scheduled_for', assay_ts(j.scheduled_for))
           END
        || CASE WHEN j.result_size IS NULL THEN '{}'::jsonb
                ELSE jsonb_build_object('result_size', j.result_size,
                                        'result_url', '/api/v1/runs/' || j.id || '/result')
           END
$$;

-- The executor's round trip, as in 0007_fair_claim.sql; an outcome may
-- name a stored result instead of giving one: {stored: size, sha256}.
CREATE OR REPLACE FUNCTION assay_settle(p_worker text, p_outcomes jsonb, p_limit integer,
                                        p_lease integer, p_caps integer[])
RETURNS TABLE (claimed boolean, id uuid, attempts integer, max_attempts integer,
               input text, script text, timeout_ms integer, memory_mb integer,
               runtime text, project_id bigint, tenant_id bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH d AS (SELECT * FROM jsonb_to_recordset(p_outcomes)
                   AS x(id uuid, error text, result jsonb, backoff bigint,
                        stored bigint, sha256 text)),
    o AS (SELECT j.id, d.error, d.result, d.backoff, d.stored, d.sha256, CASE
            WHEN j.cancel_requested_at IS NOT NULL OR d.error = 'canceled' THEN 'canceled'
            WHEN d.error IS NULL THEN 'completed'
            WHEN j.attempts < j.max_attempts THEN 'pending' ELSE 'failed' END AS next
          FROM analysis_jobs j JOIN d ON d.id = j.id
          WHERE j.worker_id = p_worker AND j.status = 'running' FOR UPDATE OF j)
    UPDATE analysis_jobs j SET status = o.next, lease_expires_at = NULL,
        worker_id = CASE WHEN o.next = 'pending' THEN NULL ELSE j.worker_id END,
        result = CASE WHEN o.next = 'completed' THEN o.result -> 0 END,
        result_size = CASE WHEN o.next = 'completed' THEN o.stored END,
        result_sha256 = CASE WHEN o.next = 'completed' THEN o.sha256 END,
        error_message = CASE WHEN o.next = 'canceled' THEN 'canceled' ELSE o.error END,
        run_after = CASE WHEN o.next = 'pending'
            THEN now() + o.backoff * interval '1 millisecond' ELSE j.run_after END,
        finished_at = CASE WHEN o.next = 'pending' THEN NULL ELSE now() END
    FROM o WHERE j.id = o.id
    RETURNING false, j.id, NULL::integer, NULL::integer, NULL::text, NULL::text,
        NULL::integer, NULL::integer, NULL::text, j.project_id, j.tenant_id;
    IF p_limit > 0 THEN
        RETURN QUERY SELECT true, c.* FROM assay_claim(p_worker, p_limit, p_lease, p_caps) c;
    END IF;
END
$$;
