/*
 * Project files: PUT, GET (ETag, If-None-Match, one byte range), HEAD and
 * DELETE of /api/v1/files/{path}, and GET /api/v1/files, which lists a
 * project's files by path or searches the text of its text files. A file
 * belongs to the caller's default project.
 *
 * Content lives in PostgreSQL in pieces of FILE_CHUNK bytes (file_chunks,
 * sql/0009_files.sql): a PUT reads the body from FastCGI one piece at a
 * time and inserts it, a GET reads and writes one piece at a time, in
 * libpq's binary format. A worker never holds a whole file: at most one
 * piece in its buffer and one in libpq's result. A file's metadata is
 * read through the cache (cache.c; "file:<sha256 of its path>"), which
 * PUT and DELETE forget after they commit, as the run's writers do. Every operation is
 * audited (audit.c).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "apikey.h"
#include "cfg.h"
#include "db.h"
#include "extern.h"
#include "xalloc.h"

#define FILE_CHUNK    262144 /* bytes of one row of file_chunks */
#define FILE_PATH_MAX 512
#define FILE_TYPE_MAX 255

const struct vfield files_query[FQ__MAX] = {
    [FQ_LIMIT] = {"limit", V_INT, false, 1, 100, NULL, "20"},
    [FQ_CURSOR] = {"cursor", V_TEXT, false, 1, FILE_PATH_MAX, NULL, NULL},
    [FQ_PREFIX] = {"prefix", V_TEXT, false, 1, FILE_PATH_MAX, NULL, NULL},
    [FQ_SEARCH] = {"q", V_TEXT, false, 1, 256, NULL, NULL},
};

static void
file_not_found(struct req *r)
{
	http_problem(r, 404, "FILE_NOT_FOUND", NULL, "no file %s", r->match.params[0]);
}

/* 400 INVALID_PARAMETER naming one parameter, as the query checks answer. */
static void
file_bad_parameter(struct req *r, const char *name, const char *detail)
{
	struct json_object *extra = json_object_new_object(),
	                   *errors = json_object_new_array(),
	                   *e = json_object_new_object();

	json_object_object_add(e, "parameter", json_object_new_string(name));
	json_object_object_add(e, "detail", json_object_new_string(detail));
	json_object_array_add(errors, e);
	json_object_object_add(extra, "errors", errors);
	http_problem_with(r, 400, "INVALID_PARAMETER", NULL, extra, "%s %s", name,
	                  detail);
}

/* Why path cannot name a file, or NULL: [A-Za-z0-9._/-], at most 512 bytes,
 * segments that are neither empty (no leading, trailing or double slash)
 * nor "." or "..". */
static const char *
file_path_problem(const char *path)
{
	const char *seg = path, *p;
	size_t n;

	if (strlen(path) > FILE_PATH_MAX)
		return "must be at most 512 bytes";
	for (p = path; *p; p++)
		if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		           "0123456789._/-",
		           *p) == NULL)
			return "may contain only letters, digits, '.', '_', '/' and '-'";
	for (;;) {
		n = strcspn(seg, "/");
		if (n == 0)
			return "may not start or end with '/' or contain '//'";
		if ((n == 1 && seg[0] == '.') || (n == 2 && strncmp(seg, "..", 2) == 0))
			return "may not contain a '.' or '..' segment";
		if (seg[n] == '\0')
			return NULL;
		seg += n + 1;
	}
}

/* The path of the request's file, or NULL after answering 400. */
static const char *
file_path(struct req *r)
{
	const char *why = file_path_problem(r->match.params[0]);

	if (why == NULL)
		return r->match.params[0];
	file_bad_parameter(r, "path", why);
	return NULL;
}

/*
 * How many leading bytes of buf are UTF-8 text without NUL, or -1 when it
 * is not text. more: the file goes on past buf, so a character cut at its
 * end is left out rather than refused.
 */
static long
file_text_len(const unsigned char *buf, size_t len, bool more)
{
	size_t i = 0, n, k;

	while (i < len) {
		if (buf[i] == 0)
			return -1;
		n = buf[i] < 0x80             ? 1
		    : (buf[i] & 0xe0) == 0xc0 ? 2
		    : (buf[i] & 0xf0) == 0xe0 ? 3
		    : (buf[i] & 0xf8) == 0xf0 ? 4
		                              : 0;
		if (n == 0 || (n == 2 && buf[i] < 0xc2) || (n == 4 && buf[i] > 0xf4))
			return -1;
		for (k = 1; k < n; k++) {
			if (i + k == len)
				return more ? (long)i : -1;
			if ((buf[i + k] & 0xc0) != 0x80)
				return -1;
		}
		if ((n == 3 && buf[i] == 0xe0 && buf[i + 1] < 0xa0) ||
		    (n == 3 && buf[i] == 0xed && buf[i + 1] >= 0xa0) ||
		    (n == 4 && buf[i] == 0xf0 && buf[i + 1] < 0x90) ||
		    (n == 4 && buf[i] == 0xf4 && buf[i + 1] >= 0x90))
			return -1;
		i += n;
	}
	return (long)i;
}

/* Run a statement with binary parameters (lengths given) on the worker's
 * connection inside the open transaction; the result or NULL after
 * rolling back and answering 503. */
static PGresult *
file_exec(struct req *r, const char *sql, int n, const char *const *params,
          const int *lens, const int *formats)
{
	PGconn *conn = db_conn(r->app->db);
	PGresult *res;

	if (conn == NULL) {
		db_rollback(r->app->db);
		http_db_failure(r, DB_DOWN);
		return NULL;
	}
	res = PQexecParams(conn, sql, n, NULL, params, lens, formats, 0);
	if (PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK)
		return res;
	PQclear(res);
	db_rollback(r->app->db);
	http_db_failure(r, DB_ERROR);
	return NULL;
}

/* Is there room for len more bytes in the tenant's quota, besides what
 * the file at path holds now (a replacement frees it)? Inside the
 * transaction, which holds the tenant's file lock; false after answering
 * 413 or 503. */
static bool
file_quota_room(struct req *r, const char *path, long len)
{
	long quota = tier_limit(r->app->cfg, tier_index(r->tenant->tier), TF_FILE_QUOTA),
	     used;
	const char *params[3] = {r->tenant->id, r->tenant->project_id, path};
	struct json_object *extra;
	PGresult *res;

	/* One writer of a tenant's files at a time; the sum, in a statement
	 * of its own, sees what the writer before committed. */
	if ((res = http_query_db(r, "SELECT pg_advisory_xact_lock(1717, $1::int)", 1,
	                         params)) == NULL)
		return false;
	PQclear(res);
	res =
	    http_query_db(r,
	                  "SELECT coalesce(sum(f.size), 0) FROM files f"
	                  " JOIN projects p ON p.id = f.project_id WHERE p.tenant_id = $1"
	                  " AND NOT (f.project_id = $2 AND f.path = $3)",
	                  3, params);
	if (res == NULL)
		return false;
	used = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (quota == 0 || used + len <= quota)
		return true;
	db_rollback(r->app->db);
	extra = json_object_new_object();
	json_object_object_add(extra, "quota_bytes", json_object_new_int64(quota));
	json_object_object_add(extra, "used_bytes", json_object_new_int64(used));
	http_problem_with(
	    r, 413, "FILE_QUOTA_EXCEEDED", NULL, extra,
	    "the %s tier stores at most %ld bytes of files; %ld are used and "
	    "the file is %ld",
	    r->tenant->tier, quota, used, len);
	return false;
}

/* Read the body (len bytes) into file id piece by piece, with its SHA-256
 * in hex; *text is the length of its first piece's leading text, -1 when
 * it is not text. false after answering. */
static bool
file_store(struct req *r, const char *id, long len, char hex[65], long *text)
{
	static const char *ins = "INSERT INTO file_chunks (file_id, seq, data)"
	                         " VALUES ($1, $2::int, $3)";
	unsigned char *buf = xmalloc(FILE_CHUNK), md[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	const char *params[3];
	int lens[3] = {0, 0, 0}, formats[3] = {0, 0, 1}, got, want;
	char seq[24];
	long done = 0, i;
	unsigned n;
	bool ok = false;
	PGresult *res;

	if (sha == NULL)
		abort();
	EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
	*text = len == 0 ? 0 : -1;
	for (i = 0; done < len; i++) {
		want = (int)(len - done < FILE_CHUNK ? len - done : FILE_CHUNK);
		got = FCGX_GetStr((char *)buf, want, r->fcgi->in);
		if (got != want) {
			db_rollback(r->app->db);
			http_problem(r, 400, "INCOMPLETE_BODY", NULL,
			             "the body ended after %ld of %ld bytes",
			             done + (got > 0 ? got : 0), len);
			goto out;
		}
		if (i == 0)
			*text = file_text_len(buf, (size_t)got, got < len);
		EVP_DigestUpdate(sha, buf, (size_t)got);
		snprintf(seq, sizeof seq, "%ld", i);
		params[0] = id;
		params[1] = seq;
		params[2] = (const char *)buf;
		lens[2] = got;
		if ((res = file_exec(r, ins, 3, params, lens, formats)) == NULL)
			goto out;
		PQclear(res);
		done += got;
	}
	EVP_DigestFinal_ex(sha, md, &n);
	for (i = 0; i < (long)n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	ok = true;
out:
	EVP_MD_CTX_free(sha);
	free(buf);
	return ok;
}

/* The name of the cache entry of the file at path (paths are too long
 * for memcached's keys). */
static void
file_cache_name(const char *path, char name[70])
{
	memcpy(name, "file:", 5);
	apikey_sha256_hex(path, strlen(path), name + 5);
}

void
files_put(struct req *r)
{
	const char *path = file_path(r), *ct = http_param(r, "CONTENT_TYPE"),
	           *cl = http_param(r, "CONTENT_LENGTH"), *params[5];
	long max = cfg_int(r->app->cfg, API_FILE_MAX), len, text;
	char hex[65], id[24], textlen[24], size[24], name[70], *members, headers[1400];
	PGresult *res;
	bool created;
	int rc;

	if (path == NULL)
		return;
	if (ct == NULL || *ct == '\0')
		ct = "application/octet-stream";
	if (strlen(ct) > FILE_TYPE_MAX) {
		file_bad_parameter(r, "Content-Type", "must be at most 255 bytes");
		return;
	}
	if (cl == NULL || *cl == '\0') {
		http_problem(r, 411, "LENGTH_REQUIRED", NULL,
		             "send the file with a Content-Length");
		return;
	}
	if ((len = strtol(cl, NULL, 10)) < 0) {
		file_bad_parameter(r, "Content-Length", "must be a number of bytes");
		return;
	}
	if (len > max) {
		http_problem(r, 413, "BODY_TOO_LARGE", NULL,
		             "the file is %ld bytes; the limit is %ld", len, max);
		return;
	}
	if ((rc = db_begin(r->app->db)) != DB_OK) {
		http_db_failure(r, rc);
		return;
	}
	if (!file_quota_room(r, path, len))
		return;
	params[0] = r->tenant->project_id;
	params[1] = path;
	res = http_query_db(
	    r,
	    "INSERT INTO files AS f (project_id, path, size, sha256, content_type)"
	    " VALUES ($1, $2, 0, repeat('0', 64), '') ON CONFLICT (project_id, path)"
	    " DO UPDATE SET updated_at = now() RETURNING f.id, f.xmax = 0",
	    2, params);
	if (res == NULL)
		return;
	snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
	created = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	params[0] = id;
	if ((res = http_query_db(r, "DELETE FROM file_chunks WHERE file_id = $1", 1,
	                         params)) == NULL)
		return;
	PQclear(res);
	if (!file_store(r, id, len, hex, &text))
		return;
	snprintf(textlen, sizeof textlen, "%ld", text);
	snprintf(size, sizeof size, "%ld", len);
	params[1] = hex;
	params[2] = ct;
	params[3] = textlen;
	params[4] = size;
	res = http_query_db(
	    r,
	    "UPDATE files f SET size = $5::bigint, sha256 = $2, content_type = $3,"
	    " updated_at = now(), search_text = CASE WHEN $4::int < 0 THEN NULL"
	    "  WHEN $4::int = 0 THEN '' ELSE (SELECT convert_from(substring(c.data"
	    "  FROM 1 FOR $4::int), 'UTF8') FROM file_chunks c"
	    "  WHERE c.file_id = f.id AND c.seq = 0) END"
	    " WHERE f.id = $1::bigint RETURNING assay_file_json(f)",
	    5, params);
	if (res == NULL)
		return;
	if ((rc = db_commit(r->app->db)) != DB_OK) {
		PQclear(res);
		http_db_failure(r, rc);
		return;
	}
	members = xasprintf("\"file\":%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	file_cache_name(path, name);
	cache_forget(r, name);
	snprintf(headers, sizeof headers, "ETag: \"%s\"\r\n%s%s%s", hex,
	         created ? "Location: /api/v1/files/" : "", created ? path : "",
	         created ? "\r\n" : "");
	http_success(r, created ? 201 : 200, headers, members);
	free(members);
}

/*
 * The range a Range header asks of a file of size bytes: one range,
 * "bytes=a-b", "bytes=a-" or "bytes=-n". 0: no usable range (answer the
 * whole file; a header that is not one range is ignored, as RFC 9110
 * allows); 1: [*from, *to]; -1: unsatisfiable.
 */
static int
file_range(const char *h, long size, long *from, long *to)
{
	char *end;
	long a, b;

	if (h == NULL || strncmp(h, "bytes=", 6) != 0 || strchr(h, ',') != NULL)
		return 0;
	h += 6;
	if (*h == '-') {
		b = strtol(h + 1, &end, 10);
		if (end == h + 1 || *end != '\0' || b < 0)
			return 0;
		if (b == 0 || size == 0)
			return -1;
		*from = b >= size ? 0 : size - b;
		*to = size - 1;
		return 1;
	}
	if (*h < '0' || *h > '9')
		return 0;
	a = strtol(h, &end, 10);
	if (*end != '-')
		return 0;
	h = end + 1;
	b = *h == '\0' ? size - 1 : strtol(h, &end, 10);
	if (*h != '\0' && (*end != '\0' || *h < '0' || *h > '9'))
		return 0;
	if (a >= size)
		return -1;
	if (b < a)
		return 0;
	*from = a;
	*to = b >= size ? size - 1 : b;
	return 1;
}

/* What a GET needs of a file, through the cache. */
struct file_meta {
	char id[24];
	long size;
	char sha[65];
	char ctype[FILE_TYPE_MAX + 1];
};

/* The metadata of the file at path in the caller's project, read through
 * the cache; on CACHE_FAILED 503 was answered. */
static enum cache_rc
file_meta(struct req *r, const char *path, struct file_meta *m)
{
	const char *params[2] = {r->tenant->project_id, path};
	char name[70], *text;
	enum cache_rc rc;
	int used = 0;

	file_cache_name(path, name);
	rc =
	    cache_query(r, name, TTL_MEDIUM,
	                "SELECT id || ' ' || size || ' ' || sha256 || ' ' || content_type"
	                " FROM files WHERE project_id = $1 AND path = $2",
	                2, params, &text);
	if (rc != CACHE_FOUND)
		return rc;
	if (sscanf(text, "%23s %ld %64s %n", m->id, &m->size, m->sha, &used) != 3 ||
	    used == 0)
		abort(); /* the query above made it */
	snprintf(m->ctype, sizeof m->ctype, "%s", text + used);
	free(text);
	return CACHE_FOUND;
}

/* Bytes [pos, pos + n) of the file, all in one piece, in one statement
 * that also checks the file is still the version m describes; NULL when
 * it is not (it was replaced or deleted) or the database failed. Answers
 * nothing: the caller may have sent the head already. */
static PGresult *
file_piece(struct req *r, const struct file_meta *m, long pos, long n)
{
	char seq[24], start[24], count[24];
	const char *params[5] = {m->id, seq, start, count, m->sha};
	PGconn *conn = db_conn(r->app->db);
	PGresult *res;

	if (conn == NULL)
		return NULL;
	snprintf(seq, sizeof seq, "%ld", pos / FILE_CHUNK);
	snprintf(start, sizeof start, "%ld", pos % FILE_CHUNK + 1);
	snprintf(count, sizeof count, "%ld", n);
	res = PQexecParams(conn,
	                   "SELECT substring(c.data FROM $3::int FOR $4::int)"
	                   " FROM file_chunks c JOIN files f ON f.id = c.file_id"
	                   " WHERE c.file_id = $1 AND c.seq = $2::int AND f.sha256 = $5",
	                   5, NULL, params, NULL, NULL, 1);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    PQgetlength(res, 0, 0) == n)
		return res;
	PQclear(res);
	return NULL;
}

/* The length of the piece that starts at pos, up to to. */
static long
file_piece_len(long pos, long to)
{
	long left = FILE_CHUNK - pos % FILE_CHUNK;

	return left < to - pos + 1 ? left : to - pos + 1;
}

/* Send the head, then bytes [from, to] of the file piece by piece, the
 * first of them read already. Once the head is out nothing else can be
 * answered: should a later piece be gone (the file was replaced) or the
 * database fail, the body ends short of its Content-Length. */
static void
file_send(struct req *r, const struct file_meta *m, int status, const char *headers,
          long from, long to, PGresult *first)
{
	long pos = from, n;
	PGresult *res = first;

	http_send_head(r, status, m->ctype, headers, (uint64_t)(to - from + 1));
	while (res != NULL) {
		n = PQgetlength(res, 0, 0);
		FCGX_PutStr(PQgetvalue(res, 0, 0), (int)n, r->fcgi->out);
		PQclear(res);
		pos += n;
		res = pos <= to ? file_piece(r, m, pos, file_piece_len(pos, to)) : NULL;
	}
}

/* GET and HEAD: the file, or one range of it. Its metadata comes through
 * the cache (If-None-Match and HEAD need nothing else); each piece is read
 * with a check that the file is still that version. A first piece that is
 * not means the cache was behind another host's write: the entry is
 * forgotten and the metadata read again. */
void
files_get(struct req *r)
{
	const char *path = file_path(r), *inm = http_param(r, "HTTP_IF_NONE_MATCH");
	char etag[72], headers[600], name[70];
	struct file_meta m;
	PGresult *first = NULL;
	long from, to;
	int ranged, tries;

	if (strcmp(r->method, "HEAD") == 0)
		audit_note(r, "file.head", r->match.params[0]);
	if (path == NULL)
		return;
	for (tries = 0; tries < 2; tries++) {
		switch (file_meta(r, path, &m)) {
		case CACHE_NONE:
			file_not_found(r);
			return;
		case CACHE_FAILED:
			return;
		case CACHE_FOUND:
			break;
		}
		snprintf(etag, sizeof etag, "\"%s\"", m.sha);
		if (inm != NULL && (strstr(inm, etag) != NULL || strcmp(inm, "*") == 0)) {
			snprintf(headers, sizeof headers, "ETag: %s\r\n", etag);
			http_send(r, 304, m.ctype, headers, "", 0);
			return;
		}
		from = 0;
		to = m.size - 1;
		ranged = file_range(http_param(r, "HTTP_RANGE"), m.size, &from, &to);
		if (ranged < 0) {
			snprintf(headers, sizeof headers,
			         "Content-Range: bytes */%ld\r\n", m.size);
			http_problem(r, 416, "RANGE_NOT_SATISFIABLE", headers,
			             "the file is %ld bytes; the range is beyond it",
			             m.size);
			return;
		}
		if (ranged)
			snprintf(
			    headers, sizeof headers,
			    "ETag: %s\r\nAccept-Ranges: bytes\r\nContent-Range: bytes "
			    "%ld-%ld/%ld\r\n",
			    etag, from, to, m.size);
		else
			snprintf(headers, sizeof headers,
			         "ETag: %s\r\nAccept-Ranges: bytes\r\n", etag);
		if (strcmp(r->method, "HEAD") == 0 || m.size == 0 ||
		    (first = file_piece(r, &m, from, file_piece_len(from, to))) != NULL) {
			file_send(r, &m, ranged ? 206 : 200, headers, from, to, first);
			return;
		}
		file_cache_name(path, name);
		cache_forget(r, name);
	}
	http_db_failure(r, DB_DOWN);
}

void
files_delete(struct req *r)
{
	const char *path = file_path(r), *params[2] = {r->tenant->project_id, path};
	char name[70];
	PGresult *res;

	if (path == NULL)
		return;
	res = http_query_db(r, "DELETE FROM files WHERE project_id = $1 AND path = $2", 2,
	                    params);
	if (res == NULL)
		return;
	file_cache_name(path, name);
	cache_forget(r, name);
	http_deleted(r, res, file_not_found);
}

/* GET /api/v1/files: a page of the files under ?prefix= by path, after
 * ?cursor= (the last path of the previous page); or, with ?q=, the best
 * ?limit= text files for the words, each with a snippet and its rank. */
void
files_list(struct req *r)
{
	char limit[24];
	const char *params[4] = {r->tenant->project_id, r->q[FQ_CURSOR].str,
	                         r->q[FQ_PREFIX].str, list_fetch(r, limit)};
	PGresult *res;

	audit_note(r, r->q[FQ_SEARCH].present ? "file.search" : "file.list",
	           r->q[FQ_SEARCH].present ? r->q[FQ_SEARCH].str : r->q[FQ_PREFIX].str);
	if (r->q[FQ_SEARCH].present && r->q[FQ_CURSOR].present) {
		file_bad_parameter(r, "cursor",
		                   "is not taken with q: a search has one page");
		return;
	}
	if (r->q[FQ_SEARCH].present) {
		params[1] = r->q[FQ_SEARCH].str;
		snprintf(limit, sizeof limit, "%ld", r->q[FQ_LIMIT].num);
		res = http_query_db(
		    r,
		    "SELECT assay_file_json(s.f) || jsonb_build_object('snippet',"
		    "  ts_headline('english', (s.f).search_text, s.q, 'MaxFragments=1,"
		    "  MaxWords=20, MinWords=5, StartSel=<mark>, StopSel=</mark>'),"
		    "  'rank', s.rank), NULL"
		    " FROM (SELECT f, q, ts_rank(f.search, q) AS rank"
		    "  FROM files f, websearch_to_tsquery('english', $2) q"
		    "  WHERE f.project_id = $1 AND f.search @@ q"
		    "  AND ($3::text IS NULL OR starts_with(f.path, $3))"
		    "  ORDER BY rank DESC, f.path LIMIT $4::int) s"
		    " ORDER BY s.rank DESC, (s.f).path",
		    4, params);
	} else {
		res = http_query_db(r,
		                    "SELECT assay_file_json(f), f.path FROM files f"
		                    " WHERE f.project_id = $1"
		                    " AND ($2::text IS NULL OR f.path > $2)"
		                    " AND ($3::text IS NULL OR starts_with(f.path, $3))"
		                    " ORDER BY f.path LIMIT $4::int",
		                    4, params);
	}
	list_send(r, "files", res);
}
