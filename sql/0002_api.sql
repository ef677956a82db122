-- The API's view of runs and analyses, and the run event log.
--
-- Every state change of a run appends one row to job_events, whoever makes
-- it (API, executor, operator), because a trigger does it:
--   * insert -> 'created', then the status if it is another (e.g. pending)
--   * a status change -> event named after the new status
--   * cancel_requested_at set while the status stays -> 'cancel_requested'
-- and announces it: NOTIFY assay_events '<job id> <seq>'; a run becoming
-- pending also wakes executors (NOTIFY assay_jobs), a cancel request tells
-- the executor running it (NOTIFY assay_cancel '<job id>').
-- Events of other kinds (log, progress, ...) go through assay_event().

ALTER TABLE analysis_jobs ADD COLUMN event_seq integer NOT NULL DEFAULT 0;

-- STABLE, like to_char: a function declared stricter than its body is
-- never inlined, and then costs a planning step per call.
CREATE FUNCTION assay_ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- Append an event to a run's log (taking the run's row lock) and announce it.
CREATE FUNCTION assay_event(p_job uuid, p_type text, p_data jsonb DEFAULT '{}')
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_seq integer;
BEGIN
    UPDATE analysis_jobs SET event_seq = event_seq + 1 WHERE id = p_job
        RETURNING event_seq INTO v_seq;
    IF v_seq IS NULL THEN
        RAISE EXCEPTION 'no run %', p_job;
    END IF;
    INSERT INTO job_events (job_id, seq, type, data) VALUES (p_job, v_seq, p_type, p_data);
    PERFORM pg_notify('assay_events', p_job::text || ' ' || v_seq);
    RETURN v_seq;
END
$$;

CREATE FUNCTION assay_job_event_type(o analysis_jobs, n analysis_jobs) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN o IS NULL OR o.status IS DISTINCT FROM n.status THEN n.status
        WHEN o.cancel_requested_at IS NULL AND n.cancel_requested_at IS NOT NULL
            THEN 'cancel_requested'
    END
$$;

CREATE FUNCTION assay_job_number_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.event_seq := CASE WHEN NEW.status = 'created' THEN 1 ELSE 2 END;
    ELSIF assay_job_event_type(OLD, NEW) IS NOT NULL THEN
        NEW.event_seq := OLD.event_seq + 1;
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION assay_job_record_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_type text := assay_job_event_type(CASE WHEN TG_OP = 'UPDATE' THEN OLD END, NEW);
BEGIN
    IF v_type IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.status <> 'created' THEN
        INSERT INTO job_events (job_id, seq, type, data)
        VALUES (NEW.id, 1, 'created', jsonb_build_object('status', 'created', 'attempts', 0));
    END IF;
    INSERT INTO job_events (job_id, seq, type, data)
    VALUES (NEW.id, NEW.event_seq, v_type,
            jsonb_strip_nulls(jsonb_build_object('status', NEW.status,
                                                 'attempts', NEW.attempts,
                                                 'error_message', NEW.error_message)));
    PERFORM pg_notify('assay_events', NEW.id::text || ' ' || NEW.event_seq);
    IF v_type = 'pending' THEN
        PERFORM pg_notify('assay_jobs', '');
    ELSIF v_type = 'cancel_requested' THEN
        PERFORM pg_notify('assay_cancel', NEW.id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER analysis_jobs_number_event
    BEFORE INSERT OR UPDATE OF status, cancel_requested_at ON analysis_jobs
    FOR EACH ROW EXECUTE FUNCTION assay_job_number_event();
CREATE TRIGGER analysis_jobs_record_event
    AFTER INSERT OR UPDATE OF status, cancel_requested_at ON analysis_jobs
    FOR EACH ROW EXECUTE FUNCTION assay_job_record_event();

-- A run as clients see it.
CREATE FUNCTION assay_run_json(j analysis_jobs) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', j.id, 'name', j.name, 'analysis_id', j.analysis_id,
        'analysis_version', j.analysis_version, 'status', j.status,
        'input', j.input, 'tags', to_jsonb(j.tags), 'client_token', j.client_token,
        'priority', j.priority, 'attempts', j.attempts, 'max_attempts', j.max_attempts,
        'callback_url', j.callback_url, 'result', j.result, 'error_message', j.error_message,
        'cancel_requested_at', assay_ts(j.cancel_requested_at),
        'created_at', assay_ts(j.created_at), 'started_at', assay_ts(j.started_at),
        'finished_at', assay_ts(j.finished_at))
$$;

-- An analysis as clients see it.
CREATE FUNCTION assay_analysis_json(a analyses) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', a.id, 'title', a.title, 'description', a.description, 'runtime', a.runtime,
        'script', a.script_content, 'version', a.version, 'timeout_ms', a.timeout_ms,
        'memory_limit_mb', a.memory_limit_mb, 'max_attempts', a.max_attempts,
        'created_at', assay_ts(a.created_at), 'updated_at', assay_ts(a.updated_at))
$$;

-- Keyset position of a row in newest-first listings: "<epoch µs>_<id>".
CREATE FUNCTION assay_cursor(t timestamptz, id uuid) RETURNS text
LANGUAGE sql STABLE STRICT AS $$
    SELECT (extract(epoch FROM t) * 1000000)::bigint::text || '_' || id::text
$$;
CREATE FUNCTION assay_cursor_time(c text) RETURNS timestamptz
LANGUAGE sql STABLE STRICT AS $$
    SELECT 'epoch'::timestamptz + split_part(c, '_', 1)::bigint * interval '1 microsecond'
$$;
