/*
 * One PostgreSQL connection per process, connected lazily and replaced
 * after failures. Every query goes through db_query with parameters only.
 * A worker whose database is down gets DB_DOWN quickly and answers 503;
 * it never blocks longer than the connect timeout and never crashes.
 */
#ifndef ASSAY_DB_H
#define ASSAY_DB_H

#include <stdint.h>

#include <libpq-fe.h>

enum db_rc {
	DB_OK = 0, /* *res holds tuples or a command status; caller PQclears */
	DB_DOWN,   /* no connection could be made or it broke; *res is NULL */
	DB_ERROR,  /* the server rejected the statement; logged; *res is NULL */
};

struct db;

struct db *db_new(const char *conninfo);
void db_free(struct db *);
const char *db_strerror(enum db_rc);
/*
 * Run sql with n text parameters. If the connection turns out to be
 * broken outside a transaction, it is re-established and the statement
 * sent once more, so such statements must be safe to repeat. Statements
 * are prepared once per connection and looked up by their text, so sql
 * should be a constant string (values go in params).
 */
enum db_rc db_query(struct db *, PGresult **res, const char *sql, int n,
                    const char *const *params);
/*
 * Explicit transactions. Inside one, a broken connection is never retried:
 * db_query returns DB_DOWN and the transaction is gone. After any failure
 * call db_rollback (harmless when nothing is open).
 */
enum db_rc db_begin(struct db *);
enum db_rc db_commit(struct db *);
void db_rollback(struct db *);
/* Call fn after every db_query of this process with its duration and outcome. */
void db_observe(void (*fn)(uint64_t us, enum db_rc));
/* Whether the connection is open now (without connecting). */
int db_connected(const struct db *);
/* The connection, connecting first if needed; NULL when down. */
PGconn *db_conn(struct db *);

#endif
