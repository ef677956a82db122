-- Schedules: an analysis run on a cron expression in a time zone. The API
-- writes a schedule with its first tick (next_run_at, computed by
-- lib/cron.c); executors take due schedules with SKIP LOCKED and, in one
-- transaction each, insert the tick's run and move next_run_at on. A run
-- made by a schedule names it and its tick (schedule_id, scheduled_for),
-- and a unique index on the two makes a second run of one tick impossible,
-- whatever executors do at the same time.
--   Ticks missed while no executor ran are told apart by schedule_clock:
-- every executor beats it on each pass (assay_schedule_beat); a beat that
-- finds the previous one older than its window records the time between
-- them as the latest gap, and the ticks within it are missed (catch_up:
-- one run for the latest of them; otherwise none).

CREATE TABLE analysis_schedules (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id          bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    analysis_id         uuid NOT NULL REFERENCES analyses (id) ON DELETE CASCADE,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    cron                text NOT NULL CHECK (length(cron) BETWEEN 1 AND 128),
    timezone            text NOT NULL DEFAULT 'UTC',
    input               jsonb,
    enabled             boolean NOT NULL DEFAULT true,
    catch_up            boolean NOT NULL DEFAULT false,
    next_run_at         timestamptz, -- NULL: it never fires again
    last_scheduled_for  timestamptz, -- the latest tick that made a run
    last_run_id         uuid,        -- that run (no foreign key: runs are pruned)
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX analysis_schedules_due ON analysis_schedules (next_run_at) WHERE enabled;
CREATE INDEX analysis_schedules_analysis
    ON analysis_schedules (analysis_id, created_at DESC, id DESC);

-- A run's schedule and tick; no foreign key (a deleted schedule leaves its
-- runs), and only scheduled runs are in the index.
ALTER TABLE analysis_jobs ADD COLUMN schedule_id uuid, ADD COLUMN scheduled_for timestamptz;
CREATE UNIQUE INDEX analysis_jobs_schedule_tick ON analysis_jobs (schedule_id, scheduled_for)
    WHERE schedule_id IS NOT NULL;

-- A schedule as clients see it (a disabled one has no next run).
CREATE FUNCTION assay_schedule_json(s analysis_schedules) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', s.id, 'analysis_id', s.analysis_id, 'name', s.name, 'cron', s.cron,
        'timezone', s.timezone, 'input', s.input, 'enabled', s.enabled,
        'catch_up', s.catch_up,
        'next_run_at', CASE WHEN s.enabled THEN assay_ts(s.next_run_at) END,
        'last_scheduled_for', assay_ts(s.last_scheduled_for),
        'last_run_id', s.last_run_id,
        'created_at', assay_ts(s.created_at), 'updated_at', assay_ts(s.updated_at))
$$;

-- The API wrote a schedule (it sets updated_at; executors never do): the
-- executors look again for the next due time.
CREATE FUNCTION assay_schedule_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('assay_schedules', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER analysis_schedules_changed
    AFTER INSERT OR UPDATE OF updated_at ON analysis_schedules
    FOR EACH STATEMENT EXECUTE FUNCTION assay_schedule_changed();

-- A deleted (deactivated) analysis takes its schedules with it, whoever
-- deletes it; a removed one cascades.
CREATE FUNCTION assay_analysis_unschedule() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM analysis_schedules WHERE analysis_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER analyses_unschedule AFTER UPDATE OF is_active ON analyses
    FOR EACH ROW WHEN (OLD.is_active AND NOT NEW.is_active)
    EXECUTE FUNCTION assay_analysis_unschedule();

-- The executors' clock: the latest beat of any of them, and the latest gap
-- between two beats longer than the beating executor's window.
CREATE TABLE schedule_clock (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    beat_at   timestamptz NOT NULL DEFAULT now(),
    gap_from  timestamptz NOT NULL DEFAULT '-infinity',
    gap_to    timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO schedule_clock DEFAULT VALUES;

-- An executor's beat, once per pass: the latest gap (epoch seconds; ticks
-- in (gap_from, gap_to] were missed), and the milliseconds until the next
-- schedule is due, rounded up (NULL: none is enabled; 0 or less: one is due
-- now).
CREATE FUNCTION assay_schedule_beat(p_window_ms integer)
RETURNS TABLE (gap_from double precision, gap_to double precision, wait_ms bigint)
LANGUAGE sql AS $$
    WITH c AS (
        UPDATE schedule_clock c SET
            gap_from = CASE WHEN now() - c.beat_at > p_window_ms * interval '1 ms'
                            THEN c.beat_at ELSE c.gap_from END,
            gap_to = CASE WHEN now() - c.beat_at > p_window_ms * interval '1 ms'
                          THEN now() ELSE c.gap_to END,
            beat_at = greatest(c.beat_at, now())
        RETURNING c.gap_from, c.gap_to)
    SELECT extract(epoch FROM c.gap_from)::double precision,
           extract(epoch FROM c.gap_to)::double precision,
           (SELECT ceil(extract(epoch FROM min(s.next_run_at) - clock_timestamp()) * 1000)
            FROM analysis_schedules s WHERE s.enabled)::bigint
    FROM c
$$;

-- Fire schedules the caller holds (taken FOR UPDATE): p_fires is a JSON
-- array of {id, ticks: [epoch seconds], next: epoch seconds or null}. Each
-- tick becomes a pending run of the schedule's analysis (its current
-- version) with the schedule's name and input, unless that tick has one
-- already; the schedule's next_run_at becomes next. Returns the runs made.
--   A schedule never piles up runs that wait: when ten of its runs are
-- created or pending (not started: the tenant is at its running cap, or
-- no executor can take them), its ticks make no run until some start, and
-- next_run_at moves on as for any tick. Ten, not one, so that a run an
-- executor has not claimed yet never costs the next tick its run (when
-- there is room for fewer ticks than are due, the latest get it). The
-- queue's depth counts the schedules' runs like any other, so the API's
-- max_queued sees them.
CREATE FUNCTION assay_schedule_fire(p_fires jsonb)
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

-- The count in assay_schedule_fire reads only a schedule's waiting runs.
CREATE INDEX analysis_jobs_schedule_waiting ON analysis_jobs (schedule_id)
    WHERE schedule_id IS NOT NULL AND status IN ('created', 'pending');
