/*
 * Lazily connected, self-healing PostgreSQL connection: see db.h. Logs a
 * state change (up to down, down to up) once, not on every request.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "util.h"
#include "xalloc.h"

#define DB_MAX_PREPARED 64

struct db {
	char *conninfo;
	PGconn *conn;
	bool down_logged;
	bool in_tx;
	/* Statements prepared on this connection: the index is the name. */
	const char *prepared[DB_MAX_PREPARED];
	size_t nprepared;
};

struct db *
db_new(const char *conninfo)
{
	struct db *db = xcalloc(1, sizeof *db);

	db->conninfo = xstrdup(conninfo);
	return db;
}

void
db_free(struct db *db)
{
	if (db == NULL)
		return;
	if (db->conn != NULL)
		PQfinish(db->conn);
	free(db->conninfo);
	free(db);
}

const char *
db_strerror(enum db_rc rc)
{
	switch (rc) {
	case DB_OK:
		return "ok";
	case DB_DOWN:
		return "database unavailable";
	case DB_ERROR:
		return "database error";
	}
	return "unknown";
}

static void
db_drop(struct db *db)
{
	if (db->conn != NULL)
		PQfinish(db->conn);
	db->conn = NULL;
	db->in_tx = false;
	db->nprepared = 0;
}

int
db_connected(const struct db *db)
{
	return db != NULL && db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK;
}

PGconn *
db_conn(struct db *db)
{
	/* The conninfo's own connect_timeout, if any, wins: it comes later. */
	static const char *const kw[] = {"connect_timeout", "application_name", "dbname",
	                                 NULL};
	const char *val[] = {"3", "assay", db->conninfo, NULL};

	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		return db->conn;
	db_drop(db);
	db->conn = PQconnectdbParams(kw, val, 1);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		if (!db->down_logged)
			log_msg(LOG_ERROR, "database connection failed: %s",
			        strtok(PQerrorMessage(db->conn), "\n"));
		db->down_logged = true;
		db_drop(db);
		return NULL;
	}
	if (db->down_logged)
		log_msg(LOG_INFO, "database connection restored");
	db->down_logged = false;
	return db->conn;
}

/*
 * Run sql as a prepared statement, preparing it on first use on this
 * connection, so each statement is parsed and planned once per worker.
 */
static PGresult *
db_exec_prepared(struct db *db, const char *sql, int n, const char *const *params)
{
	char name[16];
	PGresult *res;
	size_t i;

	for (i = 0;
	     i < db->nprepared && db->prepared[i] != sql && strcmp(db->prepared[i], sql);
	     i++)
		;
	snprintf(name, sizeof name, "s%zu", i);
	if (i == DB_MAX_PREPARED) /* table full: an unnamed statement */
		return PQexecParams(db->conn, sql, n, NULL, params, NULL, NULL, 0);
	if (i == db->nprepared) {
		res = PQprepare(db->conn, name, sql, n, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			return res;
		PQclear(res);
		db->prepared[db->nprepared++] = sql;
	}
	return PQexecPrepared(db->conn, name, n, params, NULL, NULL, 0);
}

static void (*db_observer)(uint64_t, enum db_rc);

void
db_observe(void (*fn)(uint64_t, enum db_rc))
{
	db_observer = fn;
}

static enum db_rc
db_query_once(struct db *db, PGresult **res, const char *sql, int n,
              const char *const *params)
{
	ExecStatusType st;
	PGconn *conn;
	int attempt;

	*res = NULL;
	for (attempt = 0; attempt < (db->in_tx ? 1 : 2); attempt++) {
		conn = db_conn(db);
		if (conn == NULL)
			return DB_DOWN;
		*res = db_exec_prepared(db, sql, n, params);
		st = PQresultStatus(*res);
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
			return DB_OK;
		PQclear(*res);
		*res = NULL;
		if (PQstatus(conn) == CONNECTION_OK) {
			log_msg(LOG_ERROR, "query failed: %s",
			        strtok(PQerrorMessage(conn), "\n"));
			return DB_ERROR;
		}
		db_drop(db); /* broken: reconnect and try once more */
	}
	return DB_DOWN;
}

enum db_rc
db_query(struct db *db, PGresult **res, const char *sql, int n, const char *const *params)
{
	uint64_t t0 = db_observer ? util_now_us() : 0;
	enum db_rc rc = db_query_once(db, res, sql, n, params);

	if (db_observer)
		db_observer(util_now_us() - t0, rc);
	return rc;
}

static enum db_rc
db_simple(struct db *db, const char *sql)
{
	PGresult *res;
	enum db_rc rc = db_query(db, &res, sql, 0, NULL);

	PQclear(res);
	return rc;
}

enum db_rc
db_begin(struct db *db)
{
	enum db_rc rc = db_simple(db, "BEGIN");

	db->in_tx = rc == DB_OK;
	return rc;
}

enum db_rc
db_commit(struct db *db)
{
	enum db_rc rc = db_simple(db, "COMMIT");

	db->in_tx = false;
	return rc;
}

void
db_rollback(struct db *db)
{
	if (db->in_tx && db->conn != NULL)
		PQclear(PQexec(db->conn, "ROLLBACK"));
	db->in_tx = false;
}
