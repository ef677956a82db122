-- What every claim and every settle pays, made lighter: a run's change of
-- status is recorded by one trigger function doing three things in turn
-- (the event, its announcement, the change of its tenant's queue depth),
-- where three trigger and function calls did it. Behaviour is unchanged:
-- the same events, the same NOTIFY payloads (0004_event_payload.sql), the
-- same queue_deltas rows (0013_batch.sql).

CREATE OR REPLACE FUNCTION assay_job_record_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_type text := assay_job_event_type(CASE WHEN TG_OP = 'UPDATE' THEN OLD END, NEW);
    v_data jsonb;
    v_long text;
BEGIN
    IF v_type IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.status <> 'created' THEN
        v_data := jsonb_build_object('status', 'created', 'attempts', 0);
        INSERT INTO job_events (job_id, seq, type, data) VALUES (NEW.id, 1, 'created', v_data);
        PERFORM pg_notify('assay_events', NEW.id::text || ' 1 created ' || v_data::text);
    END IF;
    v_data := jsonb_strip_nulls(jsonb_build_object('status', NEW.status,
                                                   'attempts', NEW.attempts,
                                                   'error_message', NEW.error_message));
    INSERT INTO job_events (job_id, seq, type, data)
    VALUES (NEW.id, NEW.event_seq, v_type, v_data);
    v_long := NEW.id::text || ' ' || NEW.event_seq || ' ' || v_type || ' ' || v_data::text;
    PERFORM pg_notify('assay_events', CASE WHEN octet_length(v_long) < 7900 THEN v_long
                                           ELSE NEW.id::text || ' ' || NEW.event_seq END);
    IF v_type = 'pending' THEN
        PERFORM pg_notify('assay_jobs', '');
    ELSIF v_type = 'cancel_requested' THEN
        PERFORM pg_notify('assay_cancel', NEW.id::text);
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.status IN ('created', 'pending')) <> (NEW.status IN ('created', 'pending')) THEN
        INSERT INTO queue_deltas (tenant_id, delta)
        VALUES (NEW.tenant_id, CASE WHEN NEW.status IN ('created', 'pending') THEN 1 ELSE -1 END);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER analysis_jobs_queue_changed ON analysis_jobs;
DROP FUNCTION assay_queue_changed();
