/*
 * Tiers: their names and what assay.conf's [tiers] section allows each.
 * Shared by assay-api (limits, history) and assayctl prune.
 */
#include "config.h"

#include <string.h>

#include "cfg.h"
#include "extern.h"

const char *const tier_names[] = {"free", "pro", "enterprise", NULL};

enum tier
tier_index(const char *name)
{
	int i;

	for (i = 0; i < TIER__MAX; i++)
		if (strcmp(tier_names[i], name) == 0)
			return (enum tier)i;
	return TIER_FREE;
}

long
tier_limit(const struct cfg *cfg, enum tier t, enum tier_field f)
{
	return cfg_int(cfg, API_TIER_FIRST + (size_t)t * TF__MAX + (size_t)f);
}
