/*
 * libFuzzer target for request body handling: the JSON parser settings
 * the API uses, then validation against the run and analysis tables, as a
 * POST or PATCH body goes through them. Built with --enable-fuzz (clang).
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "extern.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vvalue rv[RF__MAX], av[AF__MAX];
	struct json_object *obj, *errors;
	char err[256];

	obj = valid_parse((const char *)data, size, err, sizeof err);
	if (obj == NULL || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return 0;
	}
	errors = json_object_new_array();
	valid_check(obj, run_fields, RF__MAX, false, rv, errors);
	valid_check(obj, analysis_fields, AF__MAX, true, av, errors);
	json_object_to_json_string(errors);
	json_object_put(errors);
	json_object_put(obj);
	return 0;
}
