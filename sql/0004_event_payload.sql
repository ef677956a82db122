-- NOTIFY assay_events carries the event itself when it is small enough:
-- '<job id> <seq> <type> <data>', so that assay-stream can hand it to the
-- run's watchers without reading it back. Larger events (NOTIFY payloads
-- stop at 8000 bytes) keep the short form '<job id> <seq>' and are read
-- from job_events.

CREATE FUNCTION assay_notify_event(p_job uuid, p_seq integer, p_type text, p_data jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_long text := p_job::text || ' ' || p_seq || ' ' || p_type || ' ' || p_data::text;
BEGIN
    PERFORM pg_notify('assay_events', CASE WHEN octet_length(v_long) < 7900 THEN v_long
                                           ELSE p_job::text || ' ' || p_seq END);
END
$$;

CREATE OR REPLACE FUNCTION assay_event(p_job uuid, p_type text, p_data jsonb DEFAULT '{}')
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
    PERFORM assay_notify_event(p_job, v_seq, p_type, p_data);
    RETURN v_seq;
END
$$;

CREATE OR REPLACE FUNCTION assay_job_record_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_type text := assay_job_event_type(CASE WHEN TG_OP = 'UPDATE' THEN OLD END, NEW);
    v_data jsonb;
BEGIN
    IF v_type IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.status <> 'created' THEN
        v_data := jsonb_build_object('status', 'created', 'attempts', 0);
        INSERT INTO job_events (job_id, seq, type, data) VALUES (NEW.id, 1, 'created', v_data);
        PERFORM assay_notify_event(NEW.id, 1, 'created', v_data);
    END IF;
    v_data := jsonb_strip_nulls(jsonb_build_object('status', NEW.status,
                                                   'attempts', NEW.attempts,
                                                   'error_message', NEW.error_message));
    INSERT INTO job_events (job_id, seq, type, data)
    VALUES (NEW.id, NEW.event_seq, v_type, v_data);
    PERFORM assay_notify_event(NEW.id, NEW.event_seq, v_type, v_data);
    IF v_type = 'pending' THEN
        PERFORM pg_notify('assay_jobs', '');
    ELSIF v_type = 'cancel_requested' THEN
        PERFORM pg_notify('assay_cancel', NEW.id::text);
    END IF;
    RETURN NULL;
END
$$;
