-- Back-pressure, batches of runs, retries of dead runs.
--
-- A tenant may have at most its tier's max_queued runs queued (created or
-- pending: not started). Whatever creates or requeues runs asks
-- assay_queue_room first, in the transaction that then inserts them: it
-- takes the tenant's turn (a transaction-scoped advisory lock, another
-- than the claim's, so that creates never make executors skip a tenant),
-- so that the depth it reads stays exact until that transaction ends and
-- concurrent creates can never pass the limit.
--
-- The depth is kept, not counted: every change of a run between queued
-- and not queued appends its delta for the tenant to queue_deltas
-- (triggers: a row per statement for inserts and deletes, a row per run
-- whose status crosses the line), an append that takes no lock, so that
-- executors' claims and settles never wait for each other or for
-- creates there. assay_queue_room folds a tenant's deltas into one row
-- before it reads them: reading the depth costs the same at a depth of
-- 10 or of 100,000.
CREATE TABLE queue_deltas (
    tenant_id  bigint NOT NULL,
    delta      integer NOT NULL
);
CREATE INDEX queue_deltas_tenant ON queue_deltas (tenant_id);
-- Counted with no run changing until the triggers below exist (this
-- migration's transaction holds the lock): an API or executor still
-- running during the upgrade waits instead of slipping between the count
-- and the first delta.
LOCK TABLE analysis_jobs IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO queue_deltas (tenant_id, delta)
    SELECT tenant_id, count(*) FROM analysis_jobs
    WHERE status IN ('created', 'pending') GROUP BY tenant_id;

CREATE FUNCTION assay_queue_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_deltas (tenant_id, delta)
        SELECT n.tenant_id, count(*) FROM new_runs n
        WHERE n.status IN ('created', 'pending') GROUP BY n.tenant_id;
    RETURN NULL;
END
$$;
CREATE FUNCTION assay_queue_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_deltas (tenant_id, delta)
        SELECT o.tenant_id, -count(*) FROM old_runs o
        WHERE o.status IN ('created', 'pending') GROUP BY o.tenant_id;
    RETURN NULL;
END
$$;
CREATE FUNCTION assay_queue_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_deltas (tenant_id, delta)
    VALUES (NEW.tenant_id, CASE WHEN NEW.status IN ('created', 'pending') THEN 1 ELSE -1 END);
    RETURN NULL;
END
$$;
CREATE TRIGGER analysis_jobs_queue_inserted AFTER INSERT ON analysis_jobs
    REFERENCING NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION assay_queue_inserted();
CREATE TRIGGER analysis_jobs_queue_deleted AFTER DELETE ON analysis_jobs
    REFERENCING OLD TABLE AS old_runs
    FOR EACH STATEMENT EXECUTE FUNCTION assay_queue_deleted();
CREATE TRIGGER analysis_jobs_queue_changed AFTER UPDATE OF status ON analysis_jobs
    FOR EACH ROW
    WHEN ((OLD.status IN ('created', 'pending')) <> (NEW.status IN ('created', 'pending')))
    EXECUTE FUNCTION assay_queue_changed();

-- The runs tenant p_tenant has queued, as the committed deltas say (no lock).
CREATE FUNCTION assay_queue_depth(p_tenant bigint) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(d.delta), 0)::integer FROM queue_deltas d
    WHERE d.tenant_id = p_tenant
$$;

-- Fold tenant p_tenant's deltas into one row: what it deletes is what it
-- adds up; rows another transaction is folding are left to it (never
-- waits), and stay visible, with their sum, until it commits.
CREATE FUNCTION assay_queue_fold(p_tenant bigint) RETURNS void
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM queue_deltas d WHERE d.ctid IN
                  (SELECT q.ctid FROM queue_deltas q WHERE q.tenant_id = p_tenant
                   FOR UPDATE SKIP LOCKED)
                  RETURNING d.delta)
    INSERT INTO queue_deltas (tenant_id, delta)
        SELECT p_tenant, sum(gone.delta) FROM gone HAVING count(*) > 0
$$;

-- How many more runs project p_project's tenant may queue, with at most
-- p_max queued (0: no limit, then a large number and no lock); zero or
-- less when its queue is full. Holds the tenant's turn until the
-- transaction ends: insert the runs in the same transaction. Folds the
-- tenant's deltas either way, so that they stay few.
CREATE FUNCTION assay_queue_room(p_project bigint, p_max integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_tenant bigint;
BEGIN
    SELECT p.tenant_id INTO v_tenant FROM projects p WHERE p.id = p_project;
    IF p_max > 0 THEN
        PERFORM pg_advisory_xact_lock(1936290402, (v_tenant & 2147483647)::integer);
    END IF;
    PERFORM assay_queue_fold(v_tenant);
    IF p_max <= 0 THEN
        RETURN 2147483647;
    END IF;
    RETURN p_max - assay_queue_depth(v_tenant);
END
$$;

-- Create runs in project p_project: p_runs is a JSON array of
-- {n, analysis_id, name, input, tags (a JSON array), client_token, start,
-- priority, callback_url}, validated, their client_tokens already claimed
-- (idempotency_keys rows without a run) in this transaction. Each item's
-- outcome, in the order of n: 'created' with its run; 'no_analysis' when
-- its analysis is not active in the project; 'queue_full' past the
-- tenant's room (p_max, as assay_queue_room) with the queue's depth.
-- Claimed keys are tied to their new runs, and released for items not
-- created; a few expired keys are pruned. The analyses used are locked
-- (FOR SHARE) until commit.
CREATE FUNCTION assay_create_runs(p_project bigint, p_max integer, p_runs jsonb)
RETURNS TABLE (n integer, outcome text, id uuid, run jsonb, queue_depth integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_tenant bigint;
    v_room integer := assay_queue_room(p_project, p_max);
BEGIN
    SELECT p.tenant_id INTO v_tenant FROM projects p WHERE p.id = p_project;
    RETURN QUERY
    WITH d AS MATERIALIZED (
        SELECT x.*, gen_random_uuid() AS id FROM jsonb_to_recordset(p_runs)
            AS x(n integer, analysis_id uuid, name text, input jsonb, tags jsonb,
                 client_token text, start boolean, priority integer,
                 callback_url text)),
    a AS (SELECT a.id, a.version, a.max_attempts FROM analyses a
          WHERE a.id IN (SELECT d.analysis_id FROM d) AND a.project_id = p_project
            AND a.is_active FOR SHARE),
    ok AS (SELECT d.*, a.version, a.max_attempts,
                  row_number() OVER (ORDER BY d.n) AS k
           FROM d JOIN a ON a.id = d.analysis_id),
    ins AS (INSERT INTO analysis_jobs (id, project_id, analysis_id, analysis_version,
                name, input, tags, client_token, status, priority, max_attempts,
                callback_url)
            SELECT ok.id, p_project, ok.analysis_id, ok.version, ok.name, ok.input,
                ARRAY(SELECT jsonb_array_elements_text(ok.tags)), ok.client_token,
                CASE WHEN ok.start THEN 'pending' ELSE 'created' END, ok.priority,
                ok.max_attempts, ok.callback_url
            FROM ok WHERE ok.k <= v_room ORDER BY ok.n
            RETURNING analysis_jobs.*),
    bound AS (UPDATE idempotency_keys k SET job_id = ins.id FROM ins
              WHERE k.tenant_id = v_tenant AND k.key = ins.client_token),
    freed AS (DELETE FROM idempotency_keys k USING d
              WHERE k.tenant_id = v_tenant AND k.key = d.client_token
                AND d.id NOT IN (SELECT ins.id FROM ins)),
    -- Expired keys are pruned as we go: a small batch per keyed create.
    pruned AS (DELETE FROM idempotency_keys WHERE ctid IN
               (SELECT k.ctid FROM idempotency_keys k WHERE k.expires_at < now()
                  AND EXISTS (SELECT 1 FROM d WHERE d.client_token IS NOT NULL)
                  AND NOT (k.tenant_id = v_tenant
                           AND k.key IN (SELECT d.client_token FROM d))
                LIMIT 100))
    SELECT d.n, CASE WHEN ins.id IS NOT NULL THEN 'created'
                     WHEN ok.id IS NULL THEN 'no_analysis' ELSE 'queue_full' END,
        ins.id, CASE WHEN ins.id IS NOT NULL THEN assay_run_json(ins) END,
        CASE WHEN ins.id IS NULL AND ok.id IS NOT NULL
             THEN assay_queue_depth(v_tenant) + (SELECT count(*)::integer FROM ins) END
    FROM d LEFT JOIN ok ON ok.id = d.id LEFT JOIN ins ON ins.id = d.id
    ORDER BY d.n;
END
$$;

-- A dead run (failed its last attempt, or canceled) gets a new set of
-- attempts: pending again at once, as many more attempts as its analysis
-- now allows, its error, result and cancel request cleared. Of p_ids, the
-- dead runs of project p_project are retried, oldest first, as many as the
-- tenant's queue has room for (p_max, as assay_queue_room); each gets a
-- 'retried' event (what it was, who asked) before its 'pending' one.
-- Returns the runs retried.
CREATE FUNCTION assay_retry(p_project bigint, p_ids uuid[], p_max integer, p_by text)
RETURNS SETOF analysis_jobs
LANGUAGE plpgsql AS $$
DECLARE
    v_room integer := assay_queue_room(p_project, p_max);
    v_ids uuid[];
    v_events jsonb;
BEGIN
    SELECT array_agg(d.id ORDER BY d.finished_at, d.id),
           jsonb_agg(jsonb_build_array(d.id, 'retried', jsonb_build_object(
               'previous_status', d.status, 'attempts', d.attempts,
               'error_message', d.error_message, 'by', p_by)))
        INTO v_ids, v_events
        FROM (SELECT j.id, j.status, j.attempts, j.error_message, j.finished_at
              FROM analysis_jobs j
              WHERE j.id = ANY (p_ids) AND j.project_id = p_project
                AND j.status IN ('failed', 'canceled')
              ORDER BY j.finished_at, j.id LIMIT greatest(v_room, 0)
              FOR UPDATE) d;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    PERFORM assay_events(v_events);
    RETURN QUERY
    UPDATE analysis_jobs j SET status = 'pending', run_after = now(),
        max_attempts = j.attempts + a.max_attempts, finished_at = NULL,
        error_message = NULL, result = NULL, cancel_requested_at = NULL,
        worker_id = NULL, lease_expires_at = NULL
    FROM analyses a WHERE j.id = ANY (v_ids) AND a.id = j.analysis_id
    RETURNING j.*;
END
$$;
