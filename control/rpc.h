/* The control socket: JSON-RPC 2.0 over a Unix stream socket, one request per line and
 * one response per line, in order, many requests per connection (../shared/API.md).
 *
 * The server is driven by the daemon's own loop (cp_rpc_server_poll) so that publishing,
 * attaching and probing run between requests on the same thread: no locks in control/. */
#ifndef CP_RPC_H
#define CP_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>
#include <poll.h>

enum cp_rpc_code {
	CP_RPC_PARSE_ERROR = -32700,
	CP_RPC_INVALID_REQUEST = -32600,
	CP_RPC_METHOD_NOT_FOUND = -32601,
	CP_RPC_INVALID_PARAMS = -32602,
	CP_RPC_INTERNAL_ERROR = -32603,
	/* application errors, -32000 down */
	CP_RPC_NOT_ATTACHED = -32000,		/* the dataplane is not running */
	CP_RPC_PUBLISH_TIMEOUT = -32001,	/* workers did not pass a quiescent state in time */
	CP_RPC_NOT_FOUND = -32002,		/* a named object does not exist */
	CP_RPC_EXISTS = -32003,			/* a named object exists already */
	CP_RPC_CONFLICT = -32004,		/* the change would break a reference */
	CP_RPC_PERSIST_FAILED = -32005,		/* applied but could not be saved */
	CP_RPC_UNSUPPORTED = -32006,		/* valid, but this build cannot do it */
	CP_RPC_RESOURCE = -32007,		/* table or memory too small */
};

enum {
	CP_RPC_MAX_LINE = 1 << 20,		/* a request line longer than 1 MiB is refused */
	CP_RPC_MAX_OUTBUF = 8 << 20,		/* a client that does not read its replies is cut off */
	CP_RPC_MAX_CLIENTS = 1024,
	CP_RPC_MAX_DEPTH = 64,			/* JSON nesting */
};

struct cp_rpc_error {
	int code;
	char message[192];
	char data[256];		/* JSON path of the offending field ("$.params.name"), "" for none */
};

/* Fills err with -32602 naming path; returns -1 so handlers can `return cp_rpc_invalid(...)`. */
int cp_rpc_invalid(struct cp_rpc_error *err, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Methods that take nothing accept an absent, empty-object or empty-array params: 0, or
 * -1 with err filled. */
int cp_rpc_no_params(const json_t *params, struct cp_rpc_error *err);
/* params must be an object whose keys are all in allowed (NULL-terminated). */
int cp_rpc_object_params(const json_t *params, const char *const *allowed, struct cp_rpc_error *err);
/* An optional integer member key in min..max: *out is left alone when it is absent. */
int cp_rpc_int_param(const json_t *params, const char *key, long min, long max, long *out,
		     struct cp_rpc_error *err);
/* Fills err with any code; returns -1. data may be NULL. */
int cp_rpc_fail(struct cp_rpc_error *err, int code, const char *data, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A method: params is the request's "params" (NULL when absent, borrowed). On success
 * returns 0 and sets *result to a new reference (the server sends and frees it); on
 * failure returns -1 with err filled. */
typedef int (*cp_rpc_fn)(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err);

struct cp_rpc_method {
	const char *name;
	cp_rpc_fn fn;
	const char *help;
};

struct cp_rpc_server;

struct cp_rpc_server_opts {
	const char *path;		/* socket path; a stale socket file there is replaced */
	mode_t mode;			/* 0660 */
	const char *group;		/* NULL or "": leave the group as created */
	const struct cp_rpc_method *methods;	/* terminated by {NULL} */
	void *ctx;			/* passed to every method */
};

/* Creates the socket (its directory too, mode 0750, when missing). NULL with errno set
 * and a message on stderr on failure. */
struct cp_rpc_server *cp_rpc_server_open(const struct cp_rpc_server_opts *opts);
/* Waits up to timeout_ms for activity, then accepts, reads, dispatches and writes what
 * is ready without blocking on any one client. Returns 0, or -errno on a fatal error. */
int cp_rpc_server_poll(struct cp_rpc_server *s, int timeout_ms);
/* The same, waiting on the n_also descriptors in also as well (their revents are filled
 * in), so that other servers of the control loop wake it too. */
int cp_rpc_server_poll_also(struct cp_rpc_server *s, int timeout_ms, struct pollfd *also, unsigned n_also);
/* Sends a JSON-RPC notification {"jsonrpc":"2.0","method":type,"params":params} to each
 * client subscribed to type (events.subscribe with no types means all). Steals params. */
void cp_rpc_server_notify(struct cp_rpc_server *s, const char *type, json_t *params);
/* Closes every client and unlinks the socket. */
void cp_rpc_server_close(struct cp_rpc_server *s);
unsigned cp_rpc_server_clients(const struct cp_rpc_server *s);

#endif
