/*
 * The bodies and query strings the API accepts, as validation tables (see
 * valid.c). Data only. Limits that come from the configuration (input
 * string size, script size) are set from it before each use (body.c).
 */
#include "config.h"

#include "cron.h"
#include "extern.h"

static const char *const runtimes[] = {"js", "node", NULL};
const char *const run_statuses[] = {"created", "pending",  "running", "completed",
                                    "failed",  "canceled", NULL};

struct vfield run_fields[RF__MAX] = {
    [RF_NAME] = {"name", V_TEXT, true, 1, 128, NULL, NULL},
    [RF_ANALYSIS] = {"analysis_id", V_UUID, true, 0, 0, NULL, NULL},
    [RF_INPUT] = {"input", V_INPUT, false, 0, 65536, NULL, NULL},
    [RF_TOKEN] = {"client_token", V_TOKEN, false, 8, 128, NULL, NULL},
    [RF_TAGS] = {"tags", V_TAGS, false, 0, 16, NULL, "[]"},
    [RF_PRIORITY] = {"priority", V_INT, false, -1000, 1000, NULL, "0"},
    [RF_CALLBACK] = {"callback_url", V_URL, false, 0, 2048, NULL, NULL},
    [RF_START] = {"start", V_BOOL, false, 0, 0, NULL, "true"},
};

/* POST /api/v1/runs/batch: its items are checked by its handler (batch.c),
 * each against run_fields. */
struct vfield batch_fields[BF__MAX] = {
    [BF_RUNS] = {"runs", V_ITEMS, true, 1, BATCH_MAX, NULL, NULL},
};

struct vfield analysis_fields[AF__MAX] = {
    [AF_SCRIPT] = {"script", V_TEXT, true, 1, 131072, NULL, NULL},
    [AF_RUNTIME] = {"runtime", V_ENUM, false, 0, 0, runtimes, "js"},
    [AF_TITLE] = {"title", V_TEXT, true, 1, 200, NULL, NULL},
    [AF_DESCRIPTION] = {"description", V_TEXT, false, 0, 2000, NULL, ""},
    [AF_TIMEOUT] = {"timeout_ms", V_INT, false, 100, 3600000, NULL, "30000"},
    [AF_MEMORY] = {"memory_limit_mb", V_INT, false, 16, 4096, NULL, "64"},
    [AF_ATTEMPTS] = {"max_attempts", V_INT, false, 1, 10, NULL, "3"},
};

struct vfield schedule_fields[SF__MAX] = {
    [SF_CRON] = {"cron", V_TEXT, true, 1, CRON_EXPR_MAX, NULL, NULL},
    [SF_TIMEZONE] = {"timezone", V_TEXT, false, 1, CRON_ZONE_MAX, NULL, "UTC"},
    [SF_NAME] = {"name", V_TEXT, false, 1, 128, NULL, "scheduled run"},
    [SF_INPUT] = {"input", V_INPUT, false, 0, 65536, NULL, NULL},
    [SF_ENABLED] = {"enabled", V_BOOL, false, 0, 0, NULL, "true"},
    [SF_CATCH_UP] = {"catch_up", V_BOOL, false, 0, 0, NULL, "false"},
};

const struct vfield list_query[QF__MAX] = {
    [QF_LIMIT] = {"limit", V_INT, false, 1, 100, NULL, "20"},
    [QF_CURSOR] = {"cursor", V_CURSOR, false, 0, 0, NULL, NULL},
    [QF_STATUS] = {"status", V_ENUMS, false, 1, 6, run_statuses, NULL},
    [QF_TAG] = {"tag", V_TEXT, false, 1, 64, NULL, NULL},
    [QF_ANALYSIS] = {"analysis_id", V_UUID, false, 0, 0, NULL, NULL},
    [QF_SINCE] = {"since", V_SINCE, false, 0, 0, NULL, NULL},
};
