/*
 * The route table of assay-api: every endpoint it serves, in one place.
 * `/api/...` is rewritten to `/api/v1/...` before matching (worker.c).
 * Routes marked auth are only reached with a valid API key.
 */
#include "config.h"

#include "extern.h"

const struct route api_routes[] = {
    {M_GET, "/live", health_live, false},
    {M_GET, "/ready", health_ready, false},
    {M_GET, "/health", health_summary, false},
    {M_GET, "/health/detailed", health_detailed, false},

    {M_POST, "/api/v1/analyses", analyses_create, true},
    {M_GET, "/api/v1/analyses", analyses_list, true},
    {M_GET, "/api/v1/analyses/{id}", analyses_get, true},
    {M_PATCH, "/api/v1/analyses/{id}", analyses_update, true},
    {M_DELETE, "/api/v1/analyses/{id}", analyses_delete, true},
    {M_GET, "/api/v1/analyses/{id}/versions", analyses_versions, true},

    {M_POST, "/api/v1/runs", runs_create, true},
    {M_GET, "/api/v1/runs", runs_list, true},
    {M_GET, "/api/v1/runs/{id}", runs_get, true},
    {M_POST, "/api/v1/runs/{id}/start", runs_start, true},
    {M_POST, "/api/v1/runs/{id}/cancel", runs_cancel, true},
    {M_GET, "/api/v1/runs/{id}/result", runs_result, true},
};

const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
