-- The audit log: one row per file operation and per failed
-- authentication with a presented key, appended by assay-api after it
-- answered. Never a secret: the actor is a key's prefix (or, later, a job's
-- id), the target a file's path, a listing's prefix or a search's words,
-- or the request's path for an authentication failure.

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time        timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant_id   bigint REFERENCES tenants (id) ON DELETE CASCADE, -- NULL: not known
    actor       text,          -- "assay_1a2b3c4d", the presented key's prefix; NULL: none
    action      text NOT NULL, -- file.put|get|head|list|search|delete, auth.failure
    target      text,
    outcome     text NOT NULL CHECK (outcome IN ('success', 'denied', 'not_found',
                                                 'refused', 'error')),
    status      integer NOT NULL, -- the HTTP status answered
    request_id  text NOT NULL,
    client      text           -- the client's address as assay-api saw it
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id DESC);
CREATE INDEX audit_log_time ON audit_log (time);

-- An entry as GET /api/v1/audit shows it.
CREATE FUNCTION assay_audit_json(a audit_log) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', a.id::text, 'time', assay_ts(a.time), 'actor', a.actor,
        'action', a.action, 'target', a.target, 'outcome', a.outcome,
        'status', a.status, 'request_id', a.request_id, 'client', a.client)
$$;
