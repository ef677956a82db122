/*
 * The audit log (audit_log, sql/0010_audit.sql): a handler or the
 * authentication notes what the request does (audit_note); once it has
 * been answered the dispatcher appends the entry with its outcome
 * (audit_append), so an entry says what was answered. GET /api/v1/audit
 * lists the caller's tenant's entries, newest first. Never records a
 * secret: the actor is the presented key's prefix, never the key, or
 * "job:<run id>" for a job token, never the token.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "apikey.h"
#include "db.h"
#include "extern.h"
#include "log.h"

const char *const audit_actions[] = {
    "file.put",    "file.get",     "file.head",      "file.list", "file.search",
    "file.delete", "auth.failure", "auth.job_token", "run.get",   NULL};

const struct vfield audit_query[AQ__MAX] = {
    [AQ_LIMIT] = {"limit", V_INT, false, 1, 100, NULL, "20"},
    [AQ_CURSOR] = {"cursor", V_INT, false, 1, 9000000000000000000, NULL, NULL},
    [AQ_ACTION] = {"action", V_ENUM, false, 0, 0, audit_actions, NULL},
};

void
audit_note(struct req *r, const char *action, const char *target)
{
	r->audit_action = action;
	snprintf(r->audit_target, sizeof r->audit_target, "%s", target ? target : "");
}

/* What the status says of the operation. */
static const char *
audit_outcome(int status)
{
	if (status < 400)
		return "success";
	if (status == 401 || status == 403)
		return "denied";
	if (status == 404)
		return "not_found";
	return status < 500 ? "refused" : "error";
}

void
audit_append(struct req *r)
{
	char prefix[APIKEY_PREFIX_LEN + 1], status[16], client[64];
	const char *params[8];
	PGresult *res;

	snprintf(status, sizeof status, "%d", r->status);
	limit_client_address(r, client, sizeof client);
	params[0] = r->tenant            ? r->tenant->id
	            : r->audit_tenant[0] ? r->audit_tenant
	                                 : NULL;
	params[1] = r->audit_actor[0]            ? r->audit_actor
	            : auth_key_prefix(r, prefix) ? prefix
	                                         : NULL;
	params[2] = r->audit_action;
	params[3] = r->audit_target[0] ? r->audit_target : NULL;
	params[4] = audit_outcome(r->status);
	params[5] = status;
	params[6] = r->request_id;
	params[7] = client;
	if (db_query(r->app->db, &res,
	             "INSERT INTO audit_log (tenant_id, actor, action, target, outcome,"
	             " status, request_id, client)"
	             " VALUES ($1::bigint, $2, $3, $4, $5, $6::int, $7, $8)",
	             8, params) != DB_OK) {
		log_msg(LOG_ERROR, "audit entry not written: %s %s, request %s",
		        r->audit_action, audit_outcome(r->status), r->request_id);
		return;
	}
	PQclear(res);
}

void
audit_list(struct req *r)
{
	char limit[24];
	const char *params[4] = {r->tenant->id, r->q[AQ_CURSOR].str, r->q[AQ_ACTION].str,
	                         list_fetch(r, limit)};
	PGresult *res = http_query_db(
	    r,
	    "SELECT assay_audit_json(a), a.id FROM audit_log a WHERE a.tenant_id = $1"
	    " AND ($2::bigint IS NULL OR a.id < $2::bigint)"
	    " AND ($3::text IS NULL OR a.action = $3)"
	    " ORDER BY a.id DESC LIMIT $4::int",
	    4, params);

	list_send(r, "entries", res);
}
