-- A run says where it came from: triggered_by (api, schedule, manual) and,
-- for a schedule's run, the schedule and the tick it was made for.
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

-- A schedule never piles up runs that wait: when ten of its runs are
-- created or pending (not started: the tenant is at its running cap, or
-- no executor can take them), its ticks make no run until some start, and
-- next_run_at moves on as for any tick. Ten, not one, so that a run an
-- executor has not claimed yet never costs the next tick its run (when
-- there is room for fewer ticks than are due, the latest get it). The
-- queue's depth counts the schedules' runs like any other, so the API's
-- max_queued sees them.
CREATE OR REPLACE FUNCTION assay_schedule_fire(p_fires jsonb)
RETURNS TABLE (run_id uuid, tenant_id bigint)
LANGUAGE sql AS $$
    WITH f AS (
        SELECT * FROM jsonb_to_recordset(p_fires) AS f(id uuid, ticks bigint[], next bigint)),
    ins AS (
        INSERT INTO analysis_jobs (project_id, analysis_id, analysis_version, name, input,
                                   status, max_attempts, triggered_by, schedule_id,
                                   scheduled_for)
        SELECT s.project_id, a.id, a.version, s.name, s.input, 'pending', a.max_attempts,
               'schedule', s.id, to_timestamp(t.tick)
        FROM f JOIN analysis_schedules s ON s.id = f.id
        JOIN analyses a ON a.id = s.analysis_id AND a.is_active
        CROSS JOIN LATERAL (
            SELECT 10 - count(*) AS room FROM (
                SELECT 1 FROM analysis_jobs w
                WHERE w.schedule_id = s.id AND w.status IN ('created', 'pending')
                LIMIT 10) w) r
        CROSS JOIN LATERAL (
            SELECT tick FROM unnest(f.ticks) AS t(tick) ORDER BY tick DESC
            LIMIT r.room) t
        ORDER BY t.tick
        ON CONFLICT (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL DO NOTHING
        RETURNING id, schedule_id, scheduled_for, tenant_id),
    upd AS (
        UPDATE analysis_schedules s SET next_run_at = to_timestamp(f.next),
            last_scheduled_for = coalesce(l.scheduled_for, s.last_scheduled_for),
            last_run_id = coalesce(l.id, s.last_run_id)
        FROM f LEFT JOIN LATERAL (
            SELECT i.id, i.scheduled_for FROM ins i WHERE i.schedule_id = f.id
            ORDER BY i.scheduled_for DESC LIMIT 1) l ON true
        WHERE s.id = f.id)
    SELECT ins.id, ins.tenant_id FROM ins
$$;

-- The count above reads only a schedule's waiting runs.
CREATE INDEX analysis_jobs_schedule_waiting ON analysis_jobs (schedule_id)
    WHERE schedule_id IS NOT NULL AND status IN ('created', 'pending');
