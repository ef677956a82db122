/*
 * Unit tests for fcgi-app/route.c: literal and parameter segments, 404
 * versus 405 with the methods to allow, HEAD implied by GET, a final
 * {path} taking the rest of the path, a literal row owning its path.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "extern.h"
#include "unit.h"

static void
h_dummy(struct req *r)
{
	(void)r;
}

/* no query, body, audit, job; the default body limit */
#define NO_INPUT NULL, 0, NULL, 0, false, NULL, NULL, J_NONE, NULL, 0

static const struct route table[] = {
    {M_GET, "/health", h_dummy, A_PUBLIC, L_REQUESTS, NO_INPUT},
    {M_GET, "/api/v1/runs", h_dummy, A_PUBLIC, L_REQUESTS, NO_INPUT},
    {M_POST, "/api/v1/runs", h_dummy, A_PUBLIC, L_REQUESTS, NO_INPUT},
    {M_GET, "/api/v1/runs/{id}", h_dummy, A_PUBLIC, L_REQUESTS, NO_INPUT},
    {M_POST, "/api/v1/runs/{id}/cancel", h_dummy, A_PUBLIC, L_REQUESTS, NO_INPUT},
    {M_GET | M_DELETE, "/api/v1/analyses/{id}/versions/{version}", h_dummy, A_PUBLIC,
     L_REQUESTS, NO_INPUT},
    {M_PUT, "/api/v1/files/{path}", h_dummy, A_PUBLIC, L_REQUESTS, NO_INPUT},
    /* After /runs/{id}, which its path would match too. */
    {M_POST, "/api/v1/runs/batch", h_dummy, A_PUBLIC, L_REQUESTS, NO_INPUT},
};
#define N (sizeof table / sizeof table[0])

START_TEST(literal_and_method)
{
	struct route_match m;

	ck_assert_int_eq(route_match(table, N, "GET", "/health", &m), ROUTE_OK);
	ck_assert_ptr_eq(m.route, &table[0]);
	ck_assert_int_eq(route_match(table, N, "POST", "/api/v1/runs", &m), ROUTE_OK);
	ck_assert_ptr_eq(m.route, &table[2]);
	ck_assert_int_eq(route_match(table, N, "HEAD", "/api/v1/runs", &m), ROUTE_OK);
	ck_assert_ptr_eq(m.route, &table[1]);
}
END_TEST

START_TEST(parameters)
{
	struct route_match m;

	ck_assert_int_eq(route_match(table, N, "POST", "/api/v1/runs/abc/cancel", &m),
	                 ROUTE_OK);
	ck_assert_ptr_eq(m.route, &table[4]);
	ck_assert_int_eq(m.nparams, 1);
	ck_assert_str_eq(m.params[0], "abc");
	ck_assert_int_eq(
	    route_match(table, N, "DELETE", "/api/v1/analyses/a1/versions/3", &m),
	    ROUTE_OK);
	ck_assert_int_eq(m.nparams, 2);
	ck_assert_str_eq(m.params[0], "a1");
	ck_assert_str_eq(m.params[1], "3");
}
END_TEST

START_TEST(not_found)
{
	struct route_match m;

	ck_assert_int_eq(route_match(table, N, "GET", "/healthz", &m), ROUTE_NOT_FOUND);
	ck_assert_int_eq(route_match(table, N, "GET", "/health/", &m), ROUTE_NOT_FOUND);
	ck_assert_int_eq(route_match(table, N, "GET", "/api/v1/runs//cancel", &m),
	                 ROUTE_NOT_FOUND);
	ck_assert_int_eq(route_match(table, N, "GET", "/api/v1/runs/a/b", &m),
	                 ROUTE_NOT_FOUND);
	ck_assert_int_eq(route_match(table, N, "GET", "", &m), ROUTE_NOT_FOUND);
	ck_assert_int_eq(m.nparams, 0);
}
END_TEST

START_TEST(method_not_allowed)
{
	struct route_match m;
	char allow[64];

	ck_assert_int_eq(route_match(table, N, "DELETE", "/api/v1/runs", &m),
	                 ROUTE_BAD_METHOD);
	route_allow(m.allow, allow, sizeof allow);
	ck_assert_str_eq(allow, "GET, HEAD, POST");
	ck_assert_int_eq(route_match(table, N, "BREW", "/health", &m), ROUTE_BAD_METHOD);
	route_allow(m.allow, allow, sizeof allow);
	ck_assert_str_eq(allow, "GET, HEAD");
	ck_assert_int_eq(route_match(table, N, "GET", "/api/v1/runs/x/cancel", &m),
	                 ROUTE_BAD_METHOD);
	route_allow(m.allow, allow, sizeof allow);
	ck_assert_str_eq(allow, "POST");
}
END_TEST

/* A literal row owns its path, methods and all, over a row with a
 * parameter in its place. */
START_TEST(literal_before_parameter)
{
	static const struct route rows[] = {
	    {M_POST, "/api/v1/analyses/check", h_dummy, A_PUBLIC, L_REQUESTS, NO_INPUT},
	    {M_GET | M_PATCH, "/api/v1/analyses/{id}", h_dummy, A_PUBLIC, L_REQUESTS,
	     NO_INPUT},
	};
	struct route_match m;
	char allow[64];

	ck_assert_int_eq(route_match(rows, 2, "POST", "/api/v1/analyses/check", &m),
	                 ROUTE_OK);
	ck_assert_ptr_eq(m.route, &rows[0]);
	ck_assert_int_eq(route_match(rows, 2, "GET", "/api/v1/analyses/check", &m),
	                 ROUTE_BAD_METHOD);
	route_allow(m.allow, allow, sizeof allow);
	ck_assert_str_eq(allow, "POST");
	ck_assert_int_eq(route_match(rows, 2, "GET", "/api/v1/analyses/a1", &m),
	                 ROUTE_OK);
	ck_assert_ptr_eq(m.route, &rows[1]);
	ck_assert_str_eq(m.params[0], "a1");
	ck_assert_int_eq(route_match(rows, 2, "POST", "/api/v1/analyses/a1", &m),
	                 ROUTE_BAD_METHOD);
	route_allow(m.allow, allow, sizeof allow);
	ck_assert_str_eq(allow, "GET, HEAD, PATCH");
}
END_TEST

START_TEST(overlong_parameter)
{
	struct route_match m;
	char path[1100] = "/api/v1/runs/";
	size_t i;

	for (i = 13; i < sizeof path - 1; i++)
		path[i] = 'a';
	path[sizeof path - 1] = '\0';
	ck_assert_int_eq(route_match(table, N, "GET", path, &m), ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(rest_of_path)
{
	struct route_match m;

	ck_assert_int_eq(route_match(table, N, "PUT", "/api/v1/files/a/b/c.txt", &m),
	                 ROUTE_OK);
	ck_assert_ptr_eq(m.route, &table[6]);
	ck_assert_str_eq(m.params[0], "a/b/c.txt");
	ck_assert_int_eq(route_match(table, N, "PUT", "/api/v1/files/", &m),
	                 ROUTE_NOT_FOUND);
}
END_TEST

/* A path a literal pattern names is that row's alone, wherever it is. */
START_TEST(literal_before_parameters)
{
	struct route_match m;
	char allow[64];

	ck_assert_int_eq(route_match(table, N, "POST", "/api/v1/runs/batch", &m),
	                 ROUTE_OK);
	ck_assert_ptr_eq(m.route, &table[7]);
	ck_assert_int_eq(m.nparams, 0);
	ck_assert_int_eq(route_match(table, N, "GET", "/api/v1/runs/batch", &m),
	                 ROUTE_BAD_METHOD);
	route_allow(m.allow, allow, sizeof allow);
	ck_assert_str_eq(allow, "POST");
	ck_assert_int_eq(route_match(table, N, "GET", "/api/v1/runs/batches", &m),
	                 ROUTE_OK);
	ck_assert_ptr_eq(m.route, &table[3]);
	ck_assert_str_eq(m.params[0], "batches");
}
END_TEST

UNIT_MAIN("route", literal_and_method, parameters, not_found, method_not_allowed,
          literal_before_parameter, overlong_parameter, rest_of_path,
          literal_before_parameters)
