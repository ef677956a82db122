/*
 * The route table of assay-api: every endpoint it serves, in one place.
 * `/api/...` is rewritten to `/api/v1/...` before matching (worker.c).
 * The last column says who may call a route and which limit applies.
 */
#include "config.h"

#include "extern.h"

const struct route api_routes[] = {
    {M_GET, "/live", health_live, A_PROBE},
    {M_GET, "/ready", health_ready, A_PROBE},
    {M_GET, "/health", health_summary, A_PUBLIC},
    {M_GET, "/health/detailed", health_detailed, A_PUBLIC},
    {M_GET, "/internal/cache-stats", health_cache_stats, A_PUBLIC},
    {M_GET, "/metrics", metrics_serve, A_PUBLIC},

    {M_POST, "/api/v1/analyses", analyses_create, A_TENANT},
    {M_GET, "/api/v1/analyses", analyses_list, A_TENANT},
    {M_GET, "/api/v1/analyses/{id}", analyses_get, A_TENANT},
    {M_PATCH, "/api/v1/analyses/{id}", analyses_update, A_TENANT},
    {M_DELETE, "/api/v1/analyses/{id}", analyses_delete, A_TENANT},
    {M_GET, "/api/v1/analyses/{id}/versions", analyses_versions, A_TENANT},

    {M_POST, "/api/v1/runs", runs_create, A_TENANT},
    {M_GET, "/api/v1/runs", runs_list, A_TENANT},
    {M_GET, "/api/v1/runs/{id}", runs_get, A_TENANT},
    {M_POST, "/api/v1/runs/{id}/start", runs_start, A_TENANT},
    {M_POST, "/api/v1/runs/{id}/cancel", runs_cancel, A_TENANT},
    {M_GET, "/api/v1/runs/{id}/result", runs_result, A_TENANT},
    {M_POST, "/api/v1/runs/{id}/events/token", runs_events_token, A_TENANT},
};

const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
