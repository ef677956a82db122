-- Run webhooks. When a run with a callback_url reaches a terminal state, a
-- delivery is written to the outbox (webhook_deliveries) by a trigger, in
-- the transaction that changes the state: no crash of any program can end a
-- run without its delivery. Executors take due deliveries with SKIP LOCKED
-- and hold each for a lease while they send it (next_attempt_at moves past
-- the lease when taken), so two executors never send one delivery at the
-- same time; one that dies while sending leaves it to be sent again when
-- the lease ends (at least once: receivers de-duplicate by webhook-id).
-- Every attempt is kept in the delivery's attempt_log.
--   The outbox row is written on the runs' hot path, so it is kept small:
-- its body is made, from the run, when it is first taken (and kept, so
-- every attempt sends the same body), and it has no foreign key (a check
-- per row would cost a run more than the row itself): a delivery whose run
-- is gone is deleted when it comes due.
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
    job_id           uuid NOT NULL,
    url              text NOT NULL,
    type             text NOT NULL
                     CHECK (type IN ('run.completed', 'run.failed', 'run.canceled')),
    payload          jsonb, -- the body, made when first taken
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    -- [{attempt, started_at, status_code, duration_ms, error}], in order
    attempt_log      jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, created_at);

-- Endpoints (scheme://host[:port]) whose circuit breaker an executor found
-- open, until when: a delivery to one is written due then, not now, so a
-- dead receiver's deliveries are not taken, refused and put back one by
-- one while it stays down. Rows past open_until mean nothing.
CREATE TABLE webhook_endpoints (
    endpoint    text PRIMARY KEY,
    open_until  timestamptz NOT NULL
);

CREATE FUNCTION assay_endpoint(url text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT lower(substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]+'))
$$;

-- When a new delivery to url is first due.
CREATE FUNCTION assay_webhook_due(url text) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT greatest(now(), (SELECT e.open_until FROM webhook_endpoints e
                            WHERE e.endpoint = assay_endpoint(url)))
$$;

-- A new delivery of the run's state to its callback_url (its body is made
-- when it is first taken); the executors hear of it at commit.
CREATE FUNCTION assay_webhook_enqueue(j analysis_jobs) RETURNS uuid
LANGUAGE sql AS $$
    SELECT pg_notify('assay_webhooks', '');
    INSERT INTO webhook_deliveries (job_id, url, type, next_attempt_at)
    VALUES (j.id, j.callback_url, 'run.' || j.status, assay_webhook_due(j.callback_url))
    RETURNING id;
$$;

-- The same, from the trigger at a terminal state (inline: this runs for
-- every finished run that has a callback).
CREATE FUNCTION assay_webhook_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (job_id, url, type, next_attempt_at)
    VALUES (NEW.id, NEW.callback_url, 'run.' || NEW.status,
            assay_webhook_due(NEW.callback_url));
    PERFORM pg_notify('assay_webhooks', '');
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
-- Deliveries whose run is gone are deleted instead. (PL/pgSQL, not SQL:
-- its plans are kept for the session, where an SQL function's statements
-- would be planned again at every call, which costs more than the work.)
CREATE FUNCTION assay_webhook_take(p_limit integer, p_lease integer)
RETURNS TABLE (id uuid, url text, body text, attempt integer, secrets text[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH c AS (
        SELECT d.id, d.job_id FROM webhook_deliveries d
        WHERE d.status = 'pending' AND d.next_attempt_at <= now()
        ORDER BY d.next_attempt_at LIMIT p_limit FOR UPDATE SKIP LOCKED),
    gone AS (
        DELETE FROM webhook_deliveries d USING c
        WHERE d.id = c.id AND NOT EXISTS (SELECT 1 FROM analysis_jobs j WHERE j.id = c.job_id))
    UPDATE webhook_deliveries d SET attempts = d.attempts + 1,
        next_attempt_at = now() + p_lease * interval '1 second',
        payload = coalesce(d.payload, jsonb_build_object(
            'type', d.type, 'timestamp', assay_ts(coalesce(j.finished_at, d.created_at)),
            'data', jsonb_build_object('run', assay_run_json(j))))
    FROM c, analysis_jobs j, tenants t
    WHERE d.id = c.id AND j.id = c.job_id AND t.id = j.tenant_id
    RETURNING d.id, d.url, d.payload::text, d.attempts,
        array_remove(ARRAY[encode(t.webhook_secret, 'hex'),
                           CASE WHEN t.webhook_secret_rotated_at > now() - interval '24 hours'
                                THEN encode(t.webhook_secret_previous, 'hex') END], NULL);
END
$$;

-- The outcomes of attempts, a JSON array of {id, attempt, started_at
-- (epoch ms), status_code, duration_ms, error, ok, defer}: ok ends the
-- delivery; a failure schedules the next attempt after p_schedule[attempt]
-- seconds (plus up to 10%), or fails the delivery after the last; defer
-- (seconds) gives back an attempt that was not made (the endpoint's
-- breaker is open: new deliveries to it are written due after it too).
-- Only the holder of the attempt (the same attempt
-- number, still pending) changes the delivery and logs the attempt.
CREATE FUNCTION assay_webhook_record(p_outcomes jsonb, p_schedule integer[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_endpoints AS e (endpoint, open_until)
    SELECT assay_endpoint(d.url), max(now() + o.defer * interval '1 second')
    FROM jsonb_to_recordset(p_outcomes) AS o(id uuid, defer integer)
    JOIN webhook_deliveries d ON d.id = o.id
    WHERE o.defer IS NOT NULL
    GROUP BY 1
    ON CONFLICT (endpoint) DO UPDATE SET open_until = greatest(e.open_until, EXCLUDED.open_until);
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
                           THEN now() END,
        attempt_log = CASE WHEN o.defer IS NOT NULL THEN d.attempt_log
            ELSE d.attempt_log || jsonb_build_array(jsonb_build_object(
                'attempt', o.attempt,
                'started_at', assay_ts(to_timestamp(o.started_at / 1000.0)),
                'status_code', o.status_code, 'duration_ms', o.duration_ms,
                'error', o.error)) END
    FROM jsonb_to_recordset(p_outcomes)
        AS o(id uuid, attempt integer, started_at bigint, status_code integer,
             duration_ms integer, error text, ok boolean, defer integer)
    WHERE d.id = o.id AND d.attempts = o.attempt AND d.status = 'pending';
END
$$;

-- The executor's round trip: record the attempts that ended, then take up
-- to p_limit due deliveries.
CREATE FUNCTION assay_webhook_settle(p_outcomes jsonb, p_schedule integer[],
                                     p_limit integer, p_lease integer)
RETURNS TABLE (id uuid, url text, body text, attempt integer, secrets text[])
LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_array_length(p_outcomes) > 0 THEN
        PERFORM assay_webhook_record(p_outcomes, p_schedule);
    END IF;
    IF p_limit > 0 THEN
        RETURN QUERY SELECT * FROM assay_webhook_take(p_limit, p_lease);
    END IF;
END
$$;

-- A delivery as clients see it, with its attempts.
CREATE FUNCTION assay_delivery_json(d webhook_deliveries) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', 'msg_' || replace(d.id::text, '-', ''), 'type', d.type, 'url', d.url,
        'status', d.status, 'attempts', d.attempts,
        'next_attempt_at', CASE WHEN d.status = 'pending' THEN assay_ts(d.next_attempt_at) END,
        'created_at', assay_ts(d.created_at), 'finished_at', assay_ts(d.finished_at),
        'attempt_log', d.attempt_log)
$$;
