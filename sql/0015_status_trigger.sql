-- What every create, claim and settle pays, made lighter. New runs are
-- recorded once per statement (their events, announcements and queue
-- depth, set-wise: a batch of a hundred runs, or a schedule's tick, is
-- one trigger call, not a hundred); a run's later change of status by one
-- trigger function doing three things in turn (the event, its
-- announcement, the change of its tenant's queue depth), where three
-- trigger and function calls did it. Behaviour is unchanged: the same
-- events, the same NOTIFY payloads (0004_event_payload.sql), the same
-- queue depths (0013_batch.sql).

-- The NOTIFY assay_events payload of an event (see 0004_event_payload.sql);
-- one expression, so that PostgreSQL inlines it where it is called (STABLE,
-- as text || integer is: declared IMMUTABLE it would be called instead,
-- its body planned again in every transaction).
CREATE FUNCTION assay_event_payload(p_job uuid, p_seq integer, p_type text, p_data jsonb)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN 39 + octet_length(p_seq::text) + octet_length(p_type)
                     + octet_length(p_data::text) < 7900
                THEN p_job::text || ' ' || p_seq || ' ' || p_type || ' ' || p_data::text
                ELSE p_job::text || ' ' || p_seq END
$$;

CREATE OR REPLACE FUNCTION assay_notify_event(p_job uuid, p_seq integer, p_type text, p_data jsonb)
RETURNS void LANGUAGE sql AS $$
    SELECT pg_notify('assay_events', assay_event_payload(p_job, p_seq, p_type, p_data))
$$;

-- New runs: 'created', then their status when it is another (numbered by
-- assay_job_number_event), announced in that order; executors woken when
-- any is pending; their tenants' queue depths.
CREATE FUNCTION assay_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
BEGIN
    WITH e AS (
        SELECT n.id, 1 AS seq, 'created' AS type,
               jsonb_build_object('status', 'created', 'attempts', 0) AS data
        FROM new_runs n WHERE n.status <> 'created'
        UNION ALL
        SELECT n.id, n.event_seq, n.status,
               jsonb_strip_nulls(jsonb_build_object('status', n.status,
                                                    'attempts', n.attempts,
                                                    'error_message', n.error_message))
        FROM new_runs n),
    i AS (INSERT INTO job_events (job_id, seq, type, data)
          SELECT e.id, e.seq, e.type, e.data FROM e
          RETURNING job_id, seq, type, data)
    SELECT count(pg_notify('assay_events', assay_event_payload(o.job_id, o.seq, o.type, o.data)))
        INTO v_n
        FROM (SELECT * FROM i ORDER BY i.job_id, i.seq) o;
    IF EXISTS (SELECT 1 FROM new_runs n WHERE n.status = 'pending') THEN
        PERFORM pg_notify('assay_jobs', '');
    END IF;
    INSERT INTO queue_deltas (tenant_id, delta)
        SELECT n.tenant_id, count(*) FROM new_runs n
        WHERE n.status IN ('created', 'pending') GROUP BY n.tenant_id;
    RETURN NULL;
END
$$;

-- A run's change of status or cancel request (updates only now).
CREATE OR REPLACE FUNCTION assay_job_record_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_type text := assay_job_event_type(OLD, NEW);
    v_data jsonb;
BEGIN
    IF v_type IS NULL THEN
        RETURN NULL;
    END IF;
    v_data := jsonb_strip_nulls(jsonb_build_object('status', NEW.status,
                                                   'attempts', NEW.attempts,
                                                   'error_message', NEW.error_message));
    INSERT INTO job_events (job_id, seq, type, data)
    VALUES (NEW.id, NEW.event_seq, v_type, v_data);
    PERFORM pg_notify('assay_events', assay_event_payload(NEW.id, NEW.event_seq, v_type, v_data));
    IF v_type = 'pending' THEN
        PERFORM pg_notify('assay_jobs', '');
    ELSIF v_type = 'cancel_requested' THEN
        PERFORM pg_notify('assay_cancel', NEW.id::text);
    END IF;
    IF (OLD.status IN ('created', 'pending')) <> (NEW.status IN ('created', 'pending')) THEN
        INSERT INTO queue_deltas (tenant_id, delta)
        VALUES (NEW.tenant_id, CASE WHEN NEW.status IN ('created', 'pending') THEN 1 ELSE -1 END);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER analysis_jobs_record_event ON analysis_jobs;
CREATE TRIGGER analysis_jobs_record_event
    AFTER UPDATE OF status, cancel_requested_at ON analysis_jobs
    FOR EACH ROW EXECUTE FUNCTION assay_job_record_event();
DROP TRIGGER analysis_jobs_queue_changed ON analysis_jobs;
DROP FUNCTION assay_queue_changed();
DROP TRIGGER analysis_jobs_queue_inserted ON analysis_jobs;
DROP FUNCTION assay_queue_inserted();
CREATE TRIGGER analysis_jobs_inserted AFTER INSERT ON analysis_jobs
    REFERENCING NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION assay_jobs_inserted();
