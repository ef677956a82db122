-- Checks of a script (POST /api/v1/analyses/check): a queue between
-- assay-api, which may not start sandboxes, and the executors, which
-- compile the script in a sandboxed worker of its tenant without running
-- it. A row lives only until an executor takes it (or the API gives up
-- waiting); the answer travels back as a notification on the check's own
-- channel, which only the waiting API session listens to.

CREATE TABLE script_checks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    runtime     text NOT NULL CHECK (runtime IN ('js', 'node')),
    script      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL -- when the API stops waiting for it
);
CREATE INDEX script_checks_created ON script_checks (created_at);

-- The channel a check's answer is sent on.
CREATE FUNCTION assay_check_channel(p_id uuid) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'assay_check_' || replace(p_id::text, '-', '')
$$;

-- Ask for a check, waited for p_wait_ms: the calling session listens to its
-- channel from the commit on, and the executors are woken. Returns the
-- check's id.
CREATE FUNCTION assay_check_request(p_tenant bigint, p_runtime text, p_script text,
                                    p_wait_ms integer)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
BEGIN
    INSERT INTO script_checks (tenant_id, runtime, script, expires_at)
        VALUES (p_tenant, p_runtime, p_script,
                now() + p_wait_ms * interval '1 millisecond')
        RETURNING id INTO v_id;
    EXECUTE format('LISTEN %I', assay_check_channel(v_id));
    PERFORM pg_notify('assay_checks', '');
    RETURN v_id;
END
$$;

-- The waiting session is done with a check, answered or not: it stops
-- listening, and a check no executor took is withdrawn.
CREATE FUNCTION assay_check_end(p_id uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('UNLISTEN %I', assay_check_channel(p_id));
    DELETE FROM script_checks WHERE id = p_id;
END
$$;

-- An executor takes up to p_limit checks, oldest first, out of the queue.
-- fresh is false for one nobody waits for any more (its API session died
-- while waiting): it is dropped unchecked.
CREATE FUNCTION assay_check_take(p_limit integer)
RETURNS TABLE (id uuid, tenant_id bigint, runtime text, script text, fresh boolean)
LANGUAGE sql AS $$
    DELETE FROM script_checks c WHERE c.id IN (
        SELECT s.id FROM script_checks s ORDER BY s.created_at
        FOR UPDATE SKIP LOCKED LIMIT p_limit)
    RETURNING c.id, c.tenant_id, c.runtime, c.script, c.expires_at > now()
$$;

-- An executor's answers, one statement per pass: [{"id", "answer"}, ...],
-- each sent on its check's channel (answer: JSON text, at most a few KiB).
CREATE FUNCTION assay_check_answer(p_answers jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(assay_check_channel((a->>'id')::uuid), a->>'answer')
    FROM jsonb_array_elements(p_answers) a;
END
$$;
