/*
 * Internals of assay-stream, the Server-Sent Events responder. One
 * process, one thread, one epoll loop (main.c) holds every stream; it
 * speaks FastCGI framing itself (fcgi.c), because libfcgi serves one
 * blocking connection at a time. A connection (conn.c) reads its request
 * and is admitted by API key or token (request.c), then joins its run's
 * topic (topic.c). Events come from PostgreSQL: a LISTEN on assay_events
 * says which run has news, and one query per run fetches it for all of
 * that run's subscribers (pg.c, asynchronous libpq). A long-poll (GET
 * /api/v1/runs/{id}?wait=N) joins the topic as a waiter: it is answered
 * with the run once a notice says the run may have ended and one query
 * per run confirms it, or when its N seconds are up (wait.c). Everything
 * here runs on the loop's thread; nothing may block it.
 */
#ifndef ASSAY_STREAM_EXTERN_H
#define ASSAY_STREAM_EXTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

struct json_object;

/* FastCGI framing (fcgi.c). */
enum {
	FCGI_BEGIN_REQUEST = 1,
	FCGI_ABORT_REQUEST = 2,
	FCGI_END_REQUEST = 3,
	FCGI_PARAMS = 4,
	FCGI_STDIN = 5,
	FCGI_STDOUT = 6,
	FCGI_GET_VALUES = 9,
	FCGI_GET_VALUES_RESULT = 10,
	FCGI_UNKNOWN_TYPE = 11,
};
#define FCGI_HEADER_LEN 8

struct fcgi_record {
	unsigned type;
	unsigned request_id;
	const unsigned char *content;
	size_t len;
};

/*
 * The first complete record in buf[0..len): its size (header, content
 * and padding), 0 if more bytes are needed, -1 if the bytes are not
 * FastCGI.
 */
long fcgi_parse(const unsigned char *buf, size_t len, struct fcgi_record *);
/* The value of name in a PARAMS stream (name-value pairs), or NULL. */
const char *fcgi_param(const unsigned char *params, size_t len, const char *name,
                       size_t *vlen);
/* Append records carrying data as type (STDOUT) to *out; grows it. */
void fcgi_append(char **out, size_t *len, size_t *cap, unsigned type, unsigned id,
                 const char *data, size_t dlen);
/* Append an END_REQUEST record. */
void fcgi_append_end(char **out, size_t *len, size_t *cap, unsigned id);

/*
 * A connection from the web server, one stream or one wait. It goes
 * through these states:
 *   C_PARAMS  reading the request (FastCGI BEGIN_REQUEST and PARAMS)
 *   C_AUTH    its API key or token is being checked by PostgreSQL
 *   C_LIVE    subscribed to its run: every event is written as it comes
 *   C_WAIT    a waiter of its run: answered once it ends or time is up
 * and C_DONE once its answer or the run's terminal event is queued
 * (closed when sent).
 */
enum cstate { C_PARAMS, C_AUTH, C_LIVE, C_WAIT, C_DONE };

struct topic;

struct conn {
	int fd;
	enum cstate state;
	unsigned req_id;
	bool streaming;    /* the 200 header went out: counted as a stream */
	bool want_write;   /* EPOLLOUT is registered */
	bool query_held;   /* a queued or running query points here */
	bool closed;       /* closed while query_held: freed when it returns */
	bool paused;       /* its buffer is full: behind until it drains */
	bool waits;        /* GET /api/v1/runs/{id}?wait=N, not a stream */
	bool head;         /* a HEAD: the answer without its body */
	bool due_asked;    /* its time is up and its run is being read */
	unsigned char *in; /* unparsed input */
	size_t inlen;
	unsigned char *params; /* PARAMS content, until the request is handled */
	size_t plen;
	char *out; /* FastCGI records not yet written */
	size_t outlen, outoff, outcap;
	struct topic *topic;
	struct conn *prev, *next; /* the topic's subscribers */
	long last;                /* id of the last event sent */
	char run[37];
	char request_id[65];
	char origin[256]; /* an allowed Origin (cors_allow_origins), or "" */
	uint64_t start_us, last_write_us;
	uint64_t due_us; /* a waiter: when its wait is up */
	char inm[256];   /* a waiter: its If-None-Match, or "" */
	unsigned long sent;
	size_t slot;        /* index in st.all */
	struct conn *grave; /* next closed connection to free */
};

/* All of a run's subscribers and waiters. */
struct topic {
	char run[37];
	struct topic *hnext;
	struct conn *subs;
	size_t nsubs;
	struct conn *waiters; /* linked like subs */
	size_t nwaiters;
	long fetched;        /* highest event id fetched */
	bool queued;         /* a fetch is queued or running */
	bool delivering;     /* events are being handed out */
	bool again;          /* news arrived while it was */
	bool to_read;        /* its waiters want the run read (in the next Q_RUN) */
	bool reading;        /* a Q_RUN reading it is running */
	bool reread;         /* news arrived while it was */
	struct topic *rnext; /* the next topic to read, or in the same Q_RUN */
	int row;             /* its row in the Q_RUN's answer, or -1 */
};

/* A query waiting for, or holding, the PostgreSQL connection. */
enum qkind { Q_KEY, Q_TOKEN, Q_FETCH, Q_WAIT, Q_RUN };

struct query {
	struct query *next;
	enum qkind kind;
	struct conn *conn;   /* Q_KEY, Q_TOKEN, Q_WAIT */
	struct topic *topic; /* Q_FETCH; Q_RUN: the first of the topics it reads */
	char p[3][100];      /* its parameters */
	char *arg;           /* Q_RUN: its parameter, the runs' ids (freed with it) */
	char digest[65];     /* Q_KEY, Q_WAIT: the SHA-256 of the key presented */
};

/* The loop's state, shared by every file. */
struct stream {
	const struct cfg *cfg;
	int ep;
	struct conn **all; /* every connection, for heartbeats and shutdown */
	size_t nall, capall;
	bool stopping;
	unsigned long opened, closed, messages, refused;
	size_t active;    /* streams open now */
	size_t waiting;   /* waiters now */
	size_t admitting; /* admitted, their key or token being checked */
	unsigned long waits_ended, waits_timed_out; /* waits answered, by why */
};
extern struct stream st;

/* conn.c: a connection's buffer and its answers. Nothing is written to
 * the socket but by conn_flush; conn_write and conn_end only queue. */
void conn_open(int fd);
void conn_write(struct conn *, const char *data, size_t len);
void conn_end(struct conn *);
/* Write what is pending; close when done with a finished request. */
void conn_flush(struct conn *);
/* Close at once; c stays allocated until conn_bury_all. */
void conn_close(struct conn *);
/* Free the connections closed during the loop's round. */
void conn_bury(struct conn *);
void conn_bury_all(void);
/* A complete HTTP answer (not a stream) and the end of the request;
 * headers (CRLF-terminated lines) may be NULL. */
/* OPTIONS: 204 with Allow: GET, and the CORS preflight headers for an
 * allowed origin. */
void conn_options(struct conn *, const char *allow);
void conn_answer(struct conn *, int status, const char *code, const char *headers,
                 const char *detail);
/* The same with extra's members in the problem (extra stays the caller's). */
void conn_answer_with(struct conn *, int status, const char *code, const char *headers,
                      struct json_object *extra, const char *detail);
/* The CORS headers of a response to c: "" unless its origin is allowed. */
const char *conn_cors(const struct conn *);
/* Queue one event; false when the client's buffer is full (it is paused
 * and takes this event from a later fetch). */
bool conn_event(struct conn *, long seq, const char *type, const char *data);
/* Authorized: send the header and join the run's topic. */
void conn_start(struct conn *, const char *status, long event_seq);

/* request.c: read what the web server sends and admit the request. */
void req_readable(struct conn *);
/* The answer to a Q_KEY or Q_TOKEN query (res NULL: none came). */
void req_checked(struct query *, PGresult *res);

/* The answer to a query admitting q->conn (res NULL: none came): true
 * when it is in and the connection still open; otherwise the connection
 * is freed, or answered 503. */
bool req_answer_in(struct query *, PGresult *res);
/* Is the key's row (res row 0: its digest in hex, whether revoked) that
 * of the key whose digest is given? Answers 401 when not. */
bool req_key_accepted(struct conn *, PGresult *res, const char *digest);

/* wait.c: GET /api/v1/runs/{id}?wait=N, a long-poll for the run's end. */
/* The seconds of a wait's query string (0 without wait), or -1 after
 * answering 400. */
long wait_seconds(struct conn *, const char *query);
/* The answer to a Q_WAIT: the key, and the run if it may be seen (res
 * NULL: none came). */
void wait_checked(struct query *, PGresult *res);
/* A waiter and its run read by Q_RUN, row row of res (res NULL: none
 * came; row -1: the run is gone): answered if the run has ended or its
 * time is up. */
void wait_result(struct conn *, PGresult *res, int row);
/* Have the runs of waiters whose time is up read, or answer them 503
 * while PostgreSQL is away; returns the milliseconds until the next
 * one's time is up (at most max_ms). */
int wait_due(int max_ms);
/* Answer a waiter, or a connection being admitted as one, with a problem. */
void wait_refuse(struct conn *, int status, const char *code, const char *headers,
                 const char *detail);

/* topic.c: runs' subscribers. */
bool topic_terminal(const char *status);
/* Subscribe c, which has sent event c->last of event_seq so far. */
void topic_join(struct conn *c, long event_seq);
void topic_leave(struct conn *c);
/* Have the topic fetch what its subscribers lack (now, or after the
 * running fetch). */
void topic_fetch(struct topic *);
/* Every topic with subscribers fetches (after reconnecting). */
void topic_catch_up(void);
/* Has the topic a subscriber that can take events now? */
bool topic_wants(const struct topic *);
/* The parameters of a Q_FETCH, just before it is sent. */
void topic_prepare(struct query *);
/* The answer to a Q_FETCH (res NULL: none came). */
void topic_fetched(struct query *, PGresult *res);
/* A NOTIFY's payload. */
void topic_notified(const char *payload);
/* Waiters: join and leave the run's topic, and have it read the run for
 * them (in the next Q_RUN, or again after the running one): one Q_RUN
 * reads the runs of every topic that asked since the last was sent. */
void topic_wait(struct conn *c);
void topic_read_run(struct topic *);
/* The parameter of a Q_RUN, just before it is sent; false when no topic
 * wants its run read any more. */
bool topic_prepare_read(struct query *);
/* The answer to a Q_RUN (res NULL: none came): handed to each waiter. */
void topic_read(struct query *, PGresult *res);

/* pg.c: the one PostgreSQL connection, its LISTEN and the query queue. */
void pg_connect(void);
/* Reconnect when disconnected and the retry time has come. */
void pg_retry(void);
bool pg_connected(void);
/* Is ptr the epoll tag of the connection's socket? */
bool pg_owns(const void *ptr);
void pg_readable(void);
/* Queue q (the queue owns it) and send what can be sent. */
void pg_push(struct query *q);
void pg_close(void);

#endif
