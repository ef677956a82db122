-- Fair claiming. Executors take runs from tenants in turn: the tenants
-- with runnable work are served fewest running jobs first (priority still
-- orders a tenant's own runs), and each tier has a cap on its running
-- jobs across all executors. A run carries its tenant (set from its
-- project when inserted) so that the tenants with pending runs, and one
-- tenant's pending and running runs, are an index probe each. Claims for
-- one tenant take turns (a transaction-scoped advisory lock), so that the
-- count of its running jobs a claim sees is exact.

ALTER TABLE analysis_jobs ADD COLUMN tenant_id bigint;
UPDATE analysis_jobs j SET tenant_id = p.tenant_id FROM projects p WHERE p.id = j.project_id;
ALTER TABLE analysis_jobs ALTER COLUMN tenant_id SET NOT NULL;

CREATE FUNCTION assay_job_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT p.tenant_id INTO NEW.tenant_id FROM projects p WHERE p.id = NEW.project_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER analysis_jobs_tenant BEFORE INSERT ON analysis_jobs
    FOR EACH ROW EXECUTE FUNCTION assay_job_tenant();

DROP INDEX analysis_jobs_claim;
CREATE INDEX analysis_jobs_claim ON analysis_jobs (tenant_id, priority DESC, run_after, created_at)
    WHERE status = 'pending';
-- Running runs by tenant (the caps) serve lease recovery too: one index
-- fewer for every change of a run's status to maintain.
DROP INDEX analysis_jobs_lease;
CREATE INDEX analysis_jobs_running ON analysis_jobs (tenant_id, lease_expires_at)
    WHERE status = 'running';

-- Claim up to p_limit runs for executor p_worker with a lease of p_lease
-- seconds. p_caps: the running jobs allowed to a free, pro and enterprise
-- tenant. Each tenant with runnable work, fewest running first, is given
-- at most its share of p_limit, within its cap.
CREATE FUNCTION assay_claim(p_worker text, p_limit integer, p_lease integer,
                            p_caps integer[])
RETURNS TABLE (id uuid, attempts integer, max_attempts integer, input text,
               script text, timeout_ms integer, memory_mb integer, runtime text,
               project_id bigint, tenant_id bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_tenants bigint[];
    v_tenant bigint;
    v_room integer;
    v_share integer;
    v_left integer := p_limit;
    v_got integer;
BEGIN
    WITH RECURSIVE r AS (
        (SELECT j.tenant_id FROM analysis_jobs j WHERE j.status = 'pending'
         ORDER BY j.tenant_id LIMIT 1)
        UNION ALL
        SELECT (SELECT j.tenant_id FROM analysis_jobs j
                WHERE j.status = 'pending' AND j.tenant_id > r.tenant_id
                ORDER BY j.tenant_id LIMIT 1)
        FROM r WHERE r.tenant_id IS NOT NULL)
    SELECT array_agg(r.tenant_id ORDER BY
                     (SELECT count(*) FROM analysis_jobs j
                      WHERE j.tenant_id = r.tenant_id AND j.status = 'running'),
                     random())
        INTO v_tenants
        FROM r WHERE r.tenant_id IS NOT NULL;
    IF v_tenants IS NULL THEN
        RETURN;
    END IF;
    v_share := greatest(1, ceil(p_limit::numeric / cardinality(v_tenants)));
    FOREACH v_tenant IN ARRAY v_tenants LOOP
        EXIT WHEN v_left <= 0;
        -- Another executor is claiming for this tenant: its turn is taken.
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(1936290401, (v_tenant & 2147483647)::integer);
        SELECT p_caps[CASE tn.tier WHEN 'free' THEN 1 WHEN 'pro' THEN 2 ELSE 3 END]
               - (SELECT count(*) FROM analysis_jobs j
                  WHERE j.tenant_id = v_tenant AND j.status = 'running')
            INTO v_room
            FROM tenants tn WHERE tn.id = v_tenant;
        v_room := least(v_room, v_share, v_left);
        CONTINUE WHEN v_room IS NULL OR v_room <= 0;
        RETURN QUERY
        WITH c AS (
            SELECT j.id FROM analysis_jobs j
            WHERE j.tenant_id = v_tenant AND j.status = 'pending' AND j.run_after <= now()
            ORDER BY j.priority DESC, j.run_after, j.created_at
            LIMIT v_room FOR UPDATE SKIP LOCKED)
        UPDATE analysis_jobs j SET status = 'running', worker_id = p_worker,
            attempts = j.attempts + 1, started_at = now(), error_message = NULL,
            lease_expires_at = now() + p_lease * interval '1 second'
        FROM c, analyses a, analysis_versions v
        WHERE j.id = c.id AND a.id = j.analysis_id
          AND v.analysis_id = j.analysis_id AND v.version = j.analysis_version
        RETURNING j.id, j.attempts, j.max_attempts, coalesce(j.input::text, 'null'),
            v.script_content, a.timeout_ms, a.memory_limit_mb, a.runtime,
            j.project_id, j.tenant_id;
        GET DIAGNOSTICS v_got = ROW_COUNT;
        v_left := v_left - v_got;
    END LOOP;
END
$$;

-- Events of many runs in one call, in the order given: a JSON array of
-- [job id, type, data] (the executor writes a batch of them at a time).
CREATE FUNCTION assay_events(p_events jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
BEGIN
    FOR e IN SELECT x FROM jsonb_array_elements(p_events) WITH ORDINALITY AS a(x, n)
             ORDER BY n LOOP
        PERFORM assay_event((e->>0)::uuid, e->>1, e->2);
    END LOOP;
END
$$;

-- The executor's round trip: record the ends of attempts (a JSON array of
-- {id, error, result: [value], backoff}; each only while p_worker holds
-- the run's lease) and claim up to p_limit more, the claim seeing the ends.
-- Rows with claimed false are the ends recorded (only their id is set).
CREATE FUNCTION assay_settle(p_worker text, p_outcomes jsonb, p_limit integer,
                             p_lease integer, p_caps integer[])
RETURNS TABLE (claimed boolean, id uuid, attempts integer, max_attempts integer,
               input text, script text, timeout_ms integer, memory_mb integer,
               runtime text, project_id bigint, tenant_id bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH d AS (SELECT * FROM jsonb_to_recordset(p_outcomes)
                   AS x(id uuid, error text, result jsonb, backoff bigint)),
    o AS (SELECT j.id, d.error, d.result, d.backoff, CASE
            WHEN j.cancel_requested_at IS NOT NULL OR d.error = 'canceled' THEN 'canceled'
            WHEN d.error IS NULL THEN 'completed'
            WHEN j.attempts < j.max_attempts THEN 'pending' ELSE 'failed' END AS next
          FROM analysis_jobs j JOIN d ON d.id = j.id
          WHERE j.worker_id = p_worker AND j.status = 'running' FOR UPDATE OF j)
    UPDATE analysis_jobs j SET status = o.next, lease_expires_at = NULL,
        worker_id = CASE WHEN o.next = 'pending' THEN NULL ELSE j.worker_id END,
        result = CASE WHEN o.next = 'completed' THEN o.result -> 0 END,
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
