/*
 * The route table of assay-api: every endpoint it serves, in one place.
 * `/api/...` is rewritten to `/api/v1/...` before matching (worker.c).
 * Each row also says who may call the route (a job token only the few
 * marked for it), which limits it counts against, and how its query string and body are
 * checked; the dispatcher (worker.c) applies them before the handler runs (struct route
 * in extern.h).
 */
#include "config.h"

#include "extern.h"

#define NO_QUERY      NULL, 0
#define RUNS_QUERY    list_query, QF__MAX
#define PAGE_QUERY    list_query, QF_PAGE
#define FILES_QUERY   files_query, FQ__MAX
#define AUDIT_QUERY   audit_query, AQ__MAX
#define NO_BODY_AS(a) NULL, 0, false, NULL, a /* no body; audited as a (or NULL) */
#define NO_JOB        J_NONE, NULL, 0         /* job tokens get 403; body_limit_bytes */
#define NO_BODY       NO_BODY_AS(NULL), NO_JOB
#define NO_INPUT      NO_QUERY, NO_BODY
#define RUN_BODY      NO_QUERY, run_fields, RF__MAX
#define ANALYSIS_BODY NO_QUERY, analysis_fields, AF__MAX
#define SCHEDULE_BODY NO_QUERY, schedule_fields, SF__MAX

const struct route api_routes[] = {
    /* method, path, handler, access, limit, query fields, body fields,
     * partial, check, audit action, what a job token may do (J_NONE: 403)
     * and its audit action there, the body's limit (0: body_limit_bytes) */
    {M_GET, "/live", health_live, A_PROBE, L_NONE, NO_INPUT},
    {M_GET, "/ready", health_ready, A_PROBE, L_NONE, NO_INPUT},
    {M_GET, "/health", health_summary, A_PUBLIC, L_REQUESTS, NO_INPUT},
    {M_GET, "/health/detailed", health_detailed, A_PUBLIC, L_REQUESTS, NO_INPUT},
    {M_GET, "/internal/cache-stats", health_cache_stats, A_PUBLIC, L_REQUESTS, NO_INPUT},
    {M_GET, "/metrics", metrics_serve, A_PUBLIC, L_REQUESTS, NO_INPUT},
    {M_GET, "/openapi.json", docs_serve, A_PUBLIC, L_REQUESTS, NO_INPUT},
    {M_GET, "/api-docs", docs_serve, A_PUBLIC, L_REQUESTS, NO_INPUT},
    {M_GET, "/api-docs/", docs_serve, A_PUBLIC, L_REQUESTS, NO_INPUT},
    {M_GET, "/api-docs/index.html", docs_serve, A_PUBLIC, L_REQUESTS, NO_INPUT},

    {M_POST, "/api/v1/analyses", analyses_create, A_TENANT, L_REQUESTS, ANALYSIS_BODY,
     false, analyses_check, NULL, NO_JOB},
    {M_GET, "/api/v1/analyses", analyses_list, A_TENANT, L_REQUESTS, PAGE_QUERY, NO_BODY},
    {M_POST, "/api/v1/analyses/check", checks_post, A_TENANT, L_REQUESTS, NO_QUERY,
     analysis_fields, AF_CHECK, false, analyses_check, NULL, NO_JOB},
    {M_GET, "/api/v1/analyses/{id}", analyses_get, A_TENANT, L_REQUESTS, NO_INPUT},
    {M_PATCH, "/api/v1/analyses/{id}", analyses_update, A_TENANT, L_REQUESTS,
     ANALYSIS_BODY, true, analyses_check, NULL, NO_JOB},
    {M_DELETE, "/api/v1/analyses/{id}", analyses_delete, A_TENANT, L_REQUESTS, NO_INPUT},
    {M_GET, "/api/v1/analyses/{id}/versions", analyses_versions, A_TENANT, L_REQUESTS,
     NO_INPUT},
    {M_POST, "/api/v1/analyses/{id}/schedules", schedules_create, A_TENANT, L_REQUESTS,
     SCHEDULE_BODY, false, schedules_check, NULL, NO_JOB},
    {M_GET, "/api/v1/analyses/{id}/schedules", schedules_list, A_TENANT, L_REQUESTS,
     PAGE_QUERY, NO_BODY},
    {M_GET, "/api/v1/analyses/{id}/schedules/{sid}", schedules_get, A_TENANT, L_REQUESTS,
     NO_INPUT},
    {M_PATCH, "/api/v1/analyses/{id}/schedules/{sid}", schedules_update, A_TENANT,
     L_REQUESTS, SCHEDULE_BODY, true, schedules_check, NULL, NO_JOB},
    {M_DELETE, "/api/v1/analyses/{id}/schedules/{sid}", schedules_delete, A_TENANT,
     L_REQUESTS, NO_INPUT},

    {M_POST, "/api/v1/runs", runs_create, A_TENANT, L_RUNS, RUN_BODY, false, runs_check,
     NULL, NO_JOB},
    {M_GET, "/api/v1/runs", runs_list, A_TENANT, L_REQUESTS, RUNS_QUERY, NO_BODY},
    {M_POST, "/api/v1/runs/batch", batch_create, A_TENANT, L_RUNS, NO_QUERY, batch_fields,
     BF__MAX, false, NULL, NULL, J_NONE, NULL, API_BATCH_BODY_LIMIT},
    {M_GET, "/api/v1/runs/{id}", runs_get, A_TENANT, L_REQUESTS, NO_QUERY,
     NO_BODY_AS(NULL), J_OWN_RUN, "run.get", 0},
    {M_POST, "/api/v1/runs/{id}/start", runs_start, A_TENANT, L_REQUESTS, NO_INPUT},
    {M_POST, "/api/v1/runs/{id}/cancel", runs_cancel, A_TENANT, L_REQUESTS, NO_INPUT},
    {M_POST, "/api/v1/runs/{id}/retry", runs_retry, A_TENANT, L_REQUESTS, NO_INPUT},
    {M_GET, "/api/v1/runs/{id}/result", runs_result, A_TENANT, L_REQUESTS, NO_INPUT},
    {M_POST, "/api/v1/runs/{id}/events/token", runs_events_token, A_TENANT, L_REQUESTS,
     NO_INPUT},
    {M_GET, "/api/v1/runs/{id}/deliveries", webhooks_deliveries, A_TENANT, L_REQUESTS,
     NO_INPUT},
    {M_POST, "/api/v1/runs/{id}/deliveries/redeliver", webhooks_redeliver, A_TENANT,
     L_REQUESTS, NO_INPUT},

    {M_GET, "/api/v1/files", files_list, A_TENANT, L_REQUESTS, FILES_QUERY,
     NO_BODY_AS("file.list"), J_PROJECT, NULL, 0},
    {M_PUT, "/api/v1/files/{path}", files_put, A_TENANT, L_REQUESTS, NO_QUERY,
     NO_BODY_AS("file.put"), NO_JOB},
    {M_GET, "/api/v1/files/{path}", files_get, A_TENANT, L_REQUESTS, NO_QUERY,
     NO_BODY_AS("file.get"), J_PROJECT, NULL, 0},
    {M_DELETE, "/api/v1/files/{path}", files_delete, A_TENANT, L_REQUESTS, NO_QUERY,
     NO_BODY_AS("file.delete"), NO_JOB},

    {M_GET, "/api/v1/audit", audit_list, A_TENANT, L_REQUESTS, AUDIT_QUERY, NO_BODY},
};

const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
