-- Run webhooks. When a run with a callback_url reaches a terminal state, a
-- delivery is written to the outbox (webhook_deliveries) by a trigger, in
-- the transaction that changes the state: no crash of any program can end a
-- run without its delivery. Executors take due deliveries with SKIP LOCKED
-- and hold each for a lease while they send it (next_attempt_at moves past
-- the lease when taken), so two executors never send one delivery at the
-- same time; one that dies while sending leaves it to be sent again when
-- the lease ends (at least once: receivers de-duplicate by webhook-id).
-- Every attempt is kept in webhook_attempts.

-- 32 random bytes for a signing secret, from the server's strong random
-- source (two version 4 UUIDs: 244 random bits).
CREATE FUNCTION assay_random_secret() RETURNS bytea
LANGUAGE sql VOLATILE AS $$
    SELECT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''),
                  'hex')
$$;

-- Each tenant signs its deliveries with its secret; after a rotation the
-- previous one signs too, for 24 hours.
ALTER TABLE tenants
    ADD COLUMN webhook_secret bytea NOT NULL DEFAULT assay_random_secret(),
    ADD COLUMN webhook_secret_previous bytea,
    ADD COLUMN webhook_secret_rotated_at timestamptz;

CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id           uuid NOT NULL REFERENCES analysis_jobs (id) ON DELETE CASCADE,
    tenant_id        bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url              text NOT NULL,
    type             text NOT NULL
                     CHECK (type IN ('run.completed', 'run.failed', 'run.canceled')),
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    status_code  integer,
    duration_ms  integer NOT NULL,
    error        text,
    PRIMARY KEY (delivery_id, attempt)
);

-- A new delivery of the run's current state to its callback_url; the
-- executors hear of it at commit.
CREATE FUNCTION assay_webhook_enqueue(j analysis_jobs) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
BEGIN
    INSERT INTO webhook_deliveries (job_id, tenant_id, url, type, payload)
    VALUES (j.id, j.tenant_id, j.callback_url, 'run.' || j.status,
            jsonb_build_object('type', 'run.' || j.status,
                               'timestamp', assay_ts(coalesce(j.finished_at, now())),
                               'data', jsonb_build_object('run', assay_run_json(j))))
    RETURNING id INTO v_id;
    PERFORM pg_notify('assay_webhooks', '');
    RETURN v_id;
END
$$;

CREATE FUNCTION assay_webhook_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM assay_webhook_enqueue(NEW);
    RETURN NULL;
END
$$;

CREATE TRIGGER analysis_jobs_webhook AFTER UPDATE OF status ON analysis_jobs
    FOR EACH ROW
    WHEN (NEW.callback_url IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status
          AND NEW.status IN ('completed', 'failed', 'canceled'))
    EXECUTE FUNCTION assay_webhook_outbox();

-- An executor takes up to p_limit due deliveries for p_lease seconds: each
-- with its attempt's number, its body and the tenant's signing secrets in
-- hex (the current one first; the previous one within 24 h of a rotation).
CREATE FUNCTION assay_webhook_take(p_limit integer, p_lease integer)
RETURNS TABLE (id uuid, url text, body text, attempt integer, secrets text[])
LANGUAGE sql AS $$
    WITH c AS (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.status = 'pending' AND d.next_attempt_at <= now()
        ORDER BY d.next_attempt_at LIMIT p_limit FOR UPDATE SKIP LOCKED)
    UPDATE webhook_deliveries d SET attempts = d.attempts + 1,
        next_attempt_at = now() + p_lease * interval '1 second'
    FROM c, tenants t
    WHERE d.id = c.id AND t.id = d.tenant_id
    RETURNING d.id, d.url, d.payload::text, d.attempts,
        array_remove(ARRAY[encode(t.webhook_secret, 'hex'),
                           CASE WHEN t.webhook_secret_rotated_at > now() - interval '24 hours'
                                THEN encode(t.webhook_secret_previous, 'hex') END], NULL)
$$;

-- The outcomes of attempts, a JSON array of {id, attempt, started_at
-- (epoch ms), status_code, duration_ms, error, ok, defer}: ok ends the
-- delivery; a failure schedules the next attempt after p_schedule[attempt]
-- seconds (plus up to 10%), or fails the delivery after the last; defer
-- (seconds) gives back an attempt that was not made (the endpoint's
-- breaker is open). Only the holder of the attempt (the same attempt
-- number, still pending) changes the delivery; every attempt made is kept.
CREATE FUNCTION assay_webhook_record(p_outcomes jsonb, p_schedule integer[])
RETURNS void LANGUAGE sql AS $$
    WITH o AS (SELECT * FROM jsonb_to_recordset(p_outcomes)
                   AS x(id uuid, attempt integer, started_at bigint, status_code integer,
                        duration_ms integer, error text, ok boolean, defer integer)),
    a AS (INSERT INTO webhook_attempts (delivery_id, attempt, started_at, status_code,
                                        duration_ms, error)
          SELECT o.id, o.attempt, to_timestamp(o.started_at / 1000.0), o.status_code,
                 o.duration_ms, o.error
          FROM o JOIN webhook_deliveries d ON d.id = o.id
          WHERE o.defer IS NULL
          ON CONFLICT DO NOTHING)
    UPDATE webhook_deliveries d SET
        attempts = CASE WHEN o.defer IS NOT NULL THEN d.attempts - 1 ELSE d.attempts END,
        status = CASE WHEN o.defer IS NOT NULL THEN 'pending'
                      WHEN o.ok THEN 'delivered'
                      WHEN o.attempt > cardinality(p_schedule) THEN 'failed'
                      ELSE 'pending' END,
        next_attempt_at = CASE
            WHEN o.defer IS NOT NULL THEN now() + o.defer * interval '1 second'
            WHEN NOT o.ok AND o.attempt <= cardinality(p_schedule)
                THEN now() + p_schedule[o.attempt] * (1 + random() / 10) * interval '1 second'
            ELSE d.next_attempt_at END,
        finished_at = CASE WHEN o.defer IS NULL
                            AND (o.ok OR o.attempt > cardinality(p_schedule))
                           THEN now() END
    FROM o
    WHERE d.id = o.id AND d.attempts = o.attempt AND d.status = 'pending'
$$;

-- A delivery as clients see it, with its attempts.
CREATE FUNCTION assay_delivery_json(d webhook_deliveries) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', 'msg_' || replace(d.id::text, '-', ''), 'type', d.type, 'url', d.url,
        'status', d.status, 'attempts', d.attempts,
        'next_attempt_at', CASE WHEN d.status = 'pending' THEN assay_ts(d.next_attempt_at) END,
        'created_at', assay_ts(d.created_at), 'finished_at', assay_ts(d.finished_at),
        'attempt_log', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'attempt', a.attempt, 'started_at', assay_ts(a.started_at),
                       'status_code', a.status_code, 'duration_ms', a.duration_ms,
                       'error', a.error) ORDER BY a.attempt)
            FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]'))
$$;
