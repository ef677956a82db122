/*
 * The route table of assay-api: every endpoint it serves, in one place.
 * `/api/...` is rewritten to `/api/v1/...` before matching (worker.c).
 */
#include "config.h"

#include "extern.h"

const struct route api_routes[] = {
	{M_GET, "/live", health_live},
	{M_GET, "/ready", health_ready},
	{M_GET, "/health", health_summary},
	{M_GET, "/health/detailed", health_detailed},
};

const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
