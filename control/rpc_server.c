/* The control socket server: JSON-RPC 2.0 (https://www.jsonrpc.org/specification) over a
 * Unix stream socket, one request per line (../shared/API.md).
 *
 * Everything runs on the daemon's thread inside cp_rpc_server_poll() and never blocks on a
 * client: sockets are non-blocking, each ready client gets one read of RPC_READ_CHUNK per
 * poll, and replies go to a per-client output buffer that is flushed as the peer reads.
 * Memory per client is bounded: input by CP_RPC_MAX_LINE + RPC_READ_CHUNK, output by
 * CP_RPC_MAX_OUTBUF plus the one line being queued. A read lands in one server-wide buffer
 * and only what arrived is appended to the client's, so an idle connection holds a page,
 * not a chunk: a thousand of them had pinned 64 MiB once malloc had touched the chunks. */
#include "rpc.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

enum {
	RPC_READ_CHUNK = 64 << 10,	/* one recv per client per poll: fair, and bounds the input buffer */
	RPC_KEEP_BUF = 64 << 10,	/* an idle buffer larger than this is given back */
	RPC_ACCEPT_BURST = 64,		/* accepts per poll, so a connect storm cannot starve clients */
	RPC_ACCEPT_PAUSE_MS = 100,	/* out of fds: leave the listener alone this long, not spin */
	/* A storm of as many connections as we serve queues in the kernel rather than being
	 * refused (the kernel caps it at net.core.somaxconn). */
	RPC_BACKLOG = CP_RPC_MAX_CLIENTS,
	RPC_ROUND_LINES = 32,		/* requests run per client per poll before others get a turn */
	RPC_ROUND_OUT = 1 << 20,	/* ... or until this much of its output is unsent */
	RPC_MAX_SUB_TYPES = 64,		/* events.subscribe: types per connection */
	RPC_MAX_TYPE_LEN = 128,
};

struct rpc_buf {
	char *p;
	size_t len, cap;
};

struct rpc_client {
	int fd;
	unsigned seq;		/* connection number, for the log */
	struct rpc_buf in;
	size_t scanned;		/* in.p[0, scanned) holds no '\n' */
	struct rpc_buf out;
	size_t out_off;		/* out.p[0, out_off) is sent */
	bool backlog;		/* complete lines wait in `in` for the next round; no reading */
	bool eof;		/* the peer shut its side: nothing more to read */
	bool closing;		/* answer nothing more; close once out is flushed */
	bool dead;		/* close at the next sweep, unsent output dropped */
	bool subscribed;
	size_t ntypes;		/* subscribed with ntypes == 0: every type */
	char **types;
};

struct cp_rpc_server {
	int fd;
	char *path;
	dev_t dev;		/* the socket file we bound, so close unlinks only our own */
	ino_t ino;
	const struct cp_rpc_method *methods;
	void *ctx;
	struct rpc_client **clients;
	unsigned nclients, cap;
	struct pollfd *pfds;
	size_t npfds;
	unsigned seq;
	unsigned refused;	/* connections turned away since the table filled */
	bool accept_err_logged;
	int64_t accept_pause_until;	/* CLOCK_MONOTONIC ms */
	bool in_poll;		/* a handler may notify: no sweeping under the poll loop */
	char scratch[RPC_READ_CHUNK];	/* every read lands here first */
};

int cp_rpc_invalid(struct cp_rpc_error *err, const char *path, const char *fmt, ...)
{
	va_list ap;

	err->code = CP_RPC_INVALID_PARAMS;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	snprintf(err->data, sizeof(err->data), "%s", path ? path : "");
	return -1;
}

int cp_rpc_no_params(const json_t *params, struct cp_rpc_error *err)
{
	if (!params || (json_is_object(params) && json_object_size(params) == 0) ||
	    (json_is_array(params) && json_array_size(params) == 0))
		return 0;
	return cp_rpc_invalid(err, "$.params", "this method takes no parameters");
}

int cp_rpc_object_params(const json_t *params, const char *const *allowed, struct cp_rpc_error *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(params))
		return cp_rpc_invalid(err, "$.params", "expected an object");
	json_object_foreach((json_t *)params, key, v) {
		bool ok = false;

		for (unsigned i = 0; allowed[i]; i++)
			ok |= strcmp(key, allowed[i]) == 0;
		if (!ok)
			return cp_rpc_invalid(err, "$.params", "unknown key \"%.64s\"", key);
	}
	return 0;
}

int cp_rpc_int_param(const json_t *params, const char *key, long min, long max, long *out,
		     struct cp_rpc_error *err)
{
	json_t *v = json_object_get(params, key);
	char path[80];

	snprintf(path, sizeof(path), "$.params.%.64s", key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return cp_rpc_invalid(err, path, "expected an integer %ld..%ld", min, max);
	*out = (long)json_integer_value(v);
	return 0;
}

int cp_rpc_fail(struct cp_rpc_error *err, int code, const char *data, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	snprintf(err->data, sizeof(err->data), "%s", data ? data : "");
	return -1;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Grows b to hold need bytes, doubling but never past max (0: no bound) when that fits. */
static int buf_reserve(struct rpc_buf *b, size_t need, size_t max)
{
	size_t cap;
	char *p;

	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < need)
		cap *= 2;
	if (max && cap > max && need <= max)
		cap = max;
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* A 1 MiB line must not pin 1 MiB for the life of an idle connection. */
static void buf_trim(struct rpc_buf *b)
{
	char *p;

	if (b->len == 0 && b->cap > RPC_KEEP_BUF) {
		free(b->p);
		b->p = NULL;
		b->cap = 0;
	} else if (b->cap > RPC_KEEP_BUF && b->len <= RPC_KEEP_BUF / 2) {
		p = realloc(b->p, RPC_KEEP_BUF);
		if (p) {
			b->p = p;
			b->cap = RPC_KEEP_BUF;
		}
	}
}

static size_t out_pending(const struct rpc_client *c)
{
	return c->out.len - c->out_off;
}

static void client_flush(struct rpc_client *c)
{
	ssize_t n;

	while (!c->dead && c->out_off < c->out.len) {
		n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->dead = true;
			break;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out.len) {
		c->out.len = 0;
		c->out_off = 0;
		buf_trim(&c->out);
	}
}

/* Queues one line. A client whose unsent output is already past CP_RPC_MAX_OUTBUF is not
 * reading its replies: it is cut off rather than allowed to grow the daemon. */
static void client_queue(struct rpc_client *c, const char *line, size_t len)
{
	if (c->dead)
		return;
	if (out_pending(c) > CP_RPC_MAX_OUTBUF) {
		client_flush(c);
		if (out_pending(c) > CP_RPC_MAX_OUTBUF) {
			fprintf(stderr, "rpc: client %u: over %d MiB of replies unread, dropping it\n",
				c->seq, CP_RPC_MAX_OUTBUF >> 20);
			c->dead = true;
			return;
		}
	}
	if (c->out_off && c->out_off >= c->out.len / 2) {
		memmove(c->out.p, c->out.p + c->out_off, c->out.len - c->out_off);
		c->out.len -= c->out_off;
		c->out_off = 0;
	}
	if (buf_reserve(&c->out, c->out.len + len + 1, 0) < 0) {
		fprintf(stderr, "rpc: client %u: out of memory, dropping it\n", c->seq);
		c->dead = true;
		return;
	}
	memcpy(c->out.p + c->out.len, line, len);
	c->out.p[c->out.len + len] = '\n';
	c->out.len += len + 1;
}

/* Steals msg. */
static void send_msg(struct rpc_client *c, json_t *msg)
{
	static const char oom[] =
		"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,\"message\":\"cannot encode the reply\"}}";
	char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;

	if (s) {
		client_queue(c, s, strlen(s));
		free(s);
	} else {
		client_queue(c, oom, sizeof(oom) - 1);
	}
	json_decref(msg);
}

static json_t *envelope(json_t *id)
{
	json_t *msg = json_object();

	if (msg) {
		json_object_set_new(msg, "jsonrpc", json_string("2.0"));
		json_object_set(msg, "id", id ? id : json_null());
	}
	return msg;
}

/* Steals result. */
static void reply_result(struct rpc_client *c, json_t *id, json_t *result)
{
	json_t *msg = envelope(id);

	if (msg)
		json_object_set_new(msg, "result", result ? result : json_object());
	else
		json_decref(result);
	send_msg(c, msg);
}

static void reply_error(struct rpc_client *c, json_t *id, int code, const char *message,
			const char *data)
{
	json_t *msg = envelope(id), *e = json_object(), *text;
	char ascii[256];
	size_t i;

	/* a parser message may quote bytes that are not UTF-8; then send them as '?' */
	text = json_string(message);
	if (!text) {
		for (i = 0; message[i] && i < sizeof(ascii) - 1; i++)
			ascii[i] = (unsigned char)message[i] < 0x20 ||
				   (unsigned char)message[i] > 0x7e ? '?' : message[i];
		ascii[i] = '\0';
		text = json_string(ascii);
	}
	if (e) {
		json_object_set_new(e, "code", json_integer(code));
		json_object_set_new(e, "message", text);
		if (data && *data)
			json_object_set_new(e, "data", json_string(data));
	}
	if (msg)
		json_object_set_new(msg, "error", e);
	else
		json_decref(e);
	send_msg(c, msg);
}

static const char *default_message(int code)
{
	switch (code) {
	case CP_RPC_PARSE_ERROR: return "parse error";
	case CP_RPC_INVALID_REQUEST: return "invalid request";
	case CP_RPC_METHOD_NOT_FOUND: return "method not found";
	case CP_RPC_INVALID_PARAMS: return "invalid params";
	default: return "internal error";
	}
}

/* jansson recurses per nesting level; count levels first, outside strings, so a line of a
 * million '[' costs one linear scan and no stack. Malformed input may miscount, but then
 * jansson stops at the first bad token before it gets deep. */
static bool too_deep(const char *p, size_t n)
{
	bool in_str = false, esc = false;
	int depth = 0;

	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (in_str) {
			if (esc)
				esc = false;
			else if (ch == '\\')
				esc = true;
			else if (ch == '"')
				in_str = false;
		} else if (ch == '"') {
			in_str = true;
		} else if (ch == '[' || ch == '{') {
			if (++depth > CP_RPC_MAX_DEPTH)
				return true;
		} else if ((ch == ']' || ch == '}') && depth > 0) {
			depth--;
		}
	}
	return false;
}

static void free_types(struct rpc_client *c)
{
	for (size_t i = 0; i < c->ntypes; i++)
		free(c->types[i]);
	free(c->types);
	c->types = NULL;
	c->ntypes = 0;
}

static int events_subscribe(struct rpc_client *c, json_t *params, json_t **result,
			    struct cp_rpc_error *err)
{
	json_t *types = NULL, *v, *list;
	const char *key;
	char path[64];
	char **copy = NULL;
	size_t i, n = 0;

	if (params) {
		if (!json_is_object(params))
			return cp_rpc_invalid(err, "$.params", "expected an object");
		json_object_foreach(params, key, v) {
			if (strcmp(key, "types") != 0) {
				snprintf(path, sizeof(path), "$.params.%.40s", key);
				return cp_rpc_invalid(err, path, "unknown field");
			}
		}
		types = json_object_get(params, "types");
	}
	if (types) {
		n = json_array_size(types);
		if (!json_is_array(types) || n == 0)
			return cp_rpc_invalid(err, "$.params.types",
					      "expected a non-empty array of event types");
		if (n > RPC_MAX_SUB_TYPES)
			return cp_rpc_invalid(err, "$.params.types", "at most %d event types",
					      RPC_MAX_SUB_TYPES);
		json_array_foreach(types, i, v) {
			size_t len = json_string_length(v);

			if (!json_is_string(v) || len == 0 || len > RPC_MAX_TYPE_LEN) {
				snprintf(path, sizeof(path), "$.params.types[%zu]", i);
				return cp_rpc_invalid(err, path,
						      "expected an event type name (1 to %d characters)",
						      RPC_MAX_TYPE_LEN);
			}
		}
		copy = calloc(n, sizeof(*copy));
		if (!copy)
			goto nomem;
		for (i = 0; i < n; i++) {
			copy[i] = strdup(json_string_value(json_array_get(types, i)));
			if (!copy[i])
				goto nomem;
		}
	}
	*result = json_object();
	list = types ? json_deep_copy(types) : json_string("all");
	if (!*result || !list || json_object_set_new(*result, "subscribed", list) < 0) {
		json_decref(*result);
		*result = NULL;
		goto nomem;
	}
	free_types(c);
	c->types = copy;
	c->ntypes = n;
	c->subscribed = true;
	return 0;

nomem:
	for (i = 0; copy && i < n; i++)
		free(copy[i]);
	free(copy);
	return cp_rpc_fail(err, CP_RPC_RESOURCE, NULL, "out of memory");
}

static void add_method(json_t *list, const char *name, const char *help)
{
	json_t *m = json_object();

	json_object_set_new(m, "name", json_string(name));
	json_object_set_new(m, "help", json_string(help ? help : ""));
	json_array_append_new(list, m);
}

static int rpc_methods(struct cp_rpc_server *s, json_t **result)
{
	json_t *list = json_array();

	for (const struct cp_rpc_method *m = s->methods; m && m->name; m++)
		add_method(list, m->name, m->help);
	add_method(list, "events.subscribe",
		   "stream notifications on this connection; params {\"types\": [TYPE...]} (all when absent)");
	add_method(list, "rpc.methods", "list the methods and their help");
	*result = json_pack("{s:o}", "methods", list);
	return *result ? 0 : -1;
}

static const struct cp_rpc_method *find_method(const struct cp_rpc_server *s, const char *name)
{
	for (const struct cp_rpc_method *m = s->methods; m && m->name; m++)
		if (m->fn && strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

/* Runs one request line (no '\n') and queues its reply. */
static void handle_line(struct cp_rpc_server *s, struct rpc_client *c, const char *line,
			size_t len)
{
	struct cp_rpc_error err = { 0 };
	json_t *req, *id, *v, *params, *result = NULL;
	const struct cp_rpc_method *m;
	json_error_t jerr;
	const char *method;
	bool notification;
	char msg[256];
	int rc;

	if (len && line[len - 1] == '\r')
		len--;
	while (len && (*line == ' ' || *line == '\t' || *line == '\r')) {
		line++;
		len--;
	}
	if (len == 0)
		return;		/* a blank line is a keepalive, not a request */

	if (too_deep(line, len)) {
		snprintf(msg, sizeof(msg), "JSON nesting deeper than %d levels", CP_RPC_MAX_DEPTH);
		reply_error(c, NULL, CP_RPC_INVALID_REQUEST, msg, NULL);
		return;
	}
	req = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!req) {
		snprintf(msg, sizeof(msg), "parse error at column %d: %s", jerr.column, jerr.text);
		reply_error(c, NULL, CP_RPC_PARSE_ERROR, msg, NULL);
		return;
	}
	if (!json_is_object(req)) {
		reply_error(c, NULL, CP_RPC_INVALID_REQUEST, "a request must be a JSON object", "$");
		goto out;
	}
	id = json_object_get(req, "id");
	notification = !id;
	if (id && !json_is_string(id) && !json_is_number(id) && !json_is_null(id)) {
		reply_error(c, NULL, CP_RPC_INVALID_REQUEST, "id must be a string, a number or null",
			    "$.id");
		goto out;
	}
	v = json_object_get(req, "jsonrpc");
	if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0) {
		reply_error(c, id, CP_RPC_INVALID_REQUEST, "jsonrpc must be \"2.0\"", "$.jsonrpc");
		goto out;
	}
	v = json_object_get(req, "method");
	if (!json_is_string(v)) {
		reply_error(c, id, CP_RPC_INVALID_REQUEST, "method must be a string", "$.method");
		goto out;
	}
	method = json_string_value(v);
	params = json_object_get(req, "params");
	if (params && !json_is_object(params) && !json_is_array(params)) {
		reply_error(c, id, CP_RPC_INVALID_REQUEST, "params must be an object or an array",
			    "$.params");
		goto out;
	}

	/* events.subscribe is connection state, so it is ours; the daemon's table may supply
	 * its own rpc.methods or help. */
	if (strcmp(method, "events.subscribe") == 0) {
		rc = events_subscribe(c, params, &result, &err);
	} else if ((m = find_method(s, method))) {
		rc = m->fn(s->ctx, params, &result, &err);
	} else if (strcmp(method, "rpc.methods") == 0 || strcmp(method, "help") == 0) {
		rc = rpc_methods(s, &result);
	} else {
		if (!notification)
			reply_error(c, id, CP_RPC_METHOD_NOT_FOUND, "method not found", method);
		goto out;
	}

	if (rc != 0) {
		json_decref(result);
		if (notification)
			goto out;
		if (err.code == 0)
			err.code = CP_RPC_INTERNAL_ERROR;
		reply_error(c, id, err.code, err.message[0] ? err.message : default_message(err.code),
			    err.data);
	} else if (notification) {
		json_decref(result);
	} else {
		reply_result(c, id, result);
	}
out:
	json_decref(req);
}

static void refuse_long_line(struct rpc_client *c)
{
	fprintf(stderr, "rpc: client %u: request line exceeds %d MiB, closing\n", c->seq,
		CP_RPC_MAX_LINE >> 20);
	reply_error(c, NULL, CP_RPC_INVALID_REQUEST, "request line exceeds 1 MiB", NULL);
	c->closing = true;
	free(c->in.p);
	c->in = (struct rpc_buf){ 0 };
	c->scanned = 0;
}

/* Answers the complete lines in the input buffer, in order, up to one round's budget; at
 * EOF the tail counts as a line too, for clients that do not end the last request with
 * '\n'. Over budget, the rest waits (c->backlog) and the poll after this one returns at
 * once to continue it, so one client pipelining expensive requests cannot hold the others
 * up for more than a round. */
static void client_process(struct cp_rpc_server *s, struct rpc_client *c)
{
	size_t start = 0, end, rest;
	unsigned budget = RPC_ROUND_LINES;
	char *nl;

	c->backlog = false;
	while (!c->dead && !c->closing) {
		if (budget == 0 || (budget < RPC_ROUND_LINES && out_pending(c) > RPC_ROUND_OUT)) {
			c->backlog = true;
			break;
		}
		/* Nothing unscanned may mean no buffer at all (an EOF before any byte). */
		nl = c->in.len > c->scanned ? memchr(c->in.p + c->scanned, '\n', c->in.len - c->scanned) : NULL;
		if (!nl) {
			c->scanned = c->in.len;
			break;
		}
		end = (size_t)(nl - c->in.p);
		if (end - start > CP_RPC_MAX_LINE) {
			refuse_long_line(c);
			return;
		}
		handle_line(s, c, c->in.p + start, end - start);
		budget--;
		start = end + 1;
		c->scanned = start;
	}
	if (c->dead || c->closing)
		return;
	rest = c->in.len - start;
	if (!c->backlog && rest > CP_RPC_MAX_LINE) {
		refuse_long_line(c);
		return;
	}
	if (start) {
		memmove(c->in.p, c->in.p + start, rest);
		c->in.len = rest;
		c->scanned -= start;
	}
	if (c->eof && !c->backlog) {
		if (rest)
			handle_line(s, c, c->in.p, rest);
		c->in.len = 0;
		c->scanned = 0;
		c->closing = true;
	}
	buf_trim(&c->in);
}

static void client_read(struct cp_rpc_server *s, struct rpc_client *c)
{
	ssize_t n;

	do
		n = recv(c->fd, s->scratch, RPC_READ_CHUNK, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			c->dead = true;
		return;
	}
	if (n == 0)
		c->eof = true;
	if (c->closing) {		/* read only to keep a blocked sender moving until we hang up */
		if (c->eof)
			c->in.len = 0;
		return;
	}
	if (buf_reserve(&c->in, c->in.len + (size_t)n, CP_RPC_MAX_LINE + RPC_READ_CHUNK) < 0) {
		fprintf(stderr, "rpc: client %u: out of memory, dropping it\n", c->seq);
		c->dead = true;
		return;
	}
	if (n > 0)			/* an EOF may come before any buffer exists */
		memcpy(c->in.p + c->in.len, s->scratch, (size_t)n);
	c->in.len += (size_t)n;
	client_process(s, c);
}

static void client_free(struct rpc_client *c)
{
	close(c->fd);
	free(c->in.p);
	free(c->out.p);
	free_types(c);
	free(c);
}

static void sweep(struct cp_rpc_server *s)
{
	for (unsigned i = 0; i < s->nclients;) {
		struct rpc_client *c = s->clients[i];

		/* closing, not eof: it is set once the last line before the EOF has run */
		if (c->dead || (c->closing && out_pending(c) == 0)) {
			client_free(c);
			s->clients[i] = s->clients[--s->nclients];
		} else {
			i++;
		}
	}
}

static void server_accept(struct cp_rpc_server *s)
{
	struct rpc_client *c, **tab;
	struct ucred cred;
	socklen_t len;
	int fd;

	for (int i = 0; i < RPC_ACCEPT_BURST; i++) {
		fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				if (!s->accept_err_logged)
					fprintf(stderr, "rpc: accept: %s; pausing accepts\n",
						strerror(errno));
				s->accept_err_logged = true;
				s->accept_pause_until = now_ms() + RPC_ACCEPT_PAUSE_MS;
			}
			return;
		}
		s->accept_err_logged = false;
		if (s->nclients >= CP_RPC_MAX_CLIENTS) {
			if (s->refused++ == 0)
				fprintf(stderr, "rpc: %d clients connected; refusing new connections\n",
					CP_RPC_MAX_CLIENTS);
			close(fd);
			continue;
		}
		if (s->refused) {
			fprintf(stderr, "rpc: refused %u connections while full\n", s->refused);
			s->refused = 0;
		}
		if (s->nclients == s->cap) {
			unsigned cap = s->cap ? s->cap * 2 : 16;

			tab = realloc(s->clients, cap * sizeof(*tab));
			if (!tab) {
				close(fd);
				continue;
			}
			s->clients = tab;
			s->cap = cap;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->seq = ++s->seq;
		len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
			fprintf(stderr, "rpc: client %u connected: uid %u gid %u pid %d\n", c->seq,
				(unsigned)cred.uid, (unsigned)cred.gid, (int)cred.pid);
		else
			fprintf(stderr, "rpc: client %u connected: peer unknown (%s)\n", c->seq,
				strerror(errno));
		s->clients[s->nclients++] = c;
	}
}

int cp_rpc_server_poll(struct cp_rpc_server *s, int timeout_ms)
{
	return cp_rpc_server_poll_also(s, timeout_ms, NULL, 0);
}

int cp_rpc_server_poll_also(struct cp_rpc_server *s, int timeout_ms, struct pollfd *also, unsigned n_also)
{
	size_t n = s->nclients, i;
	struct rpc_client *c;
	int64_t pause = 0;
	short re;

	if (s->npfds < n + 1 + n_also) {
		struct pollfd *p = realloc(s->pfds, (n + 1 + n_also) * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->pfds = p;
		s->npfds = n + 1 + n_also;
	}
	if (s->accept_pause_until) {
		pause = s->accept_pause_until - now_ms();
		if (pause <= 0) {
			s->accept_pause_until = 0;
			pause = 0;
		} else if (timeout_ms < 0 || pause < timeout_ms) {
			timeout_ms = (int)pause;
		}
	}
	s->pfds[0] = (struct pollfd){ .fd = pause ? -1 : s->fd, .events = POLLIN };
	for (i = 0; i < n; i++) {
		c = s->clients[i];
		s->pfds[i + 1] = (struct pollfd){
			.fd = c->fd,
			.events = (short)((c->eof || c->backlog ? 0 : POLLIN) |
					  (out_pending(c) ? POLLOUT : 0)),
		};
		if (c->backlog)
			timeout_ms = 0;
	}
	if (n_also)
		memcpy(&s->pfds[n + 1], also, n_also * sizeof(*also));
	if (poll(s->pfds, n + 1 + n_also, timeout_ms) < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < n_also; i++)
		also[i].revents = s->pfds[n + 1 + i].revents;

	s->in_poll = true;
	for (i = 0; i < n; i++) {
		c = s->clients[i];
		re = s->pfds[i + 1].revents;
		if (re & POLLNVAL)
			c->dead = true;
		else if (c->backlog)
			client_process(s, c);	/* read on when it is done */
		else if (!c->eof && (re & (POLLIN | POLLHUP | POLLERR)))
			client_read(s, c);
		else if (re & (POLLHUP | POLLERR))
			c->dead = true;	/* gone both ways: what is unsent cannot arrive */
	}
	if (s->pfds[0].revents & POLLIN)
		server_accept(s);
	/* flush what this round queued; POLLOUT brings the rest later */
	for (i = 0; i < s->nclients; i++)
		if (out_pending(s->clients[i]))
			client_flush(s->clients[i]);
	s->in_poll = false;
	sweep(s);
	return 0;
}

static bool wants(const struct rpc_client *c, const char *type)
{
	if (!c->subscribed || c->dead || c->closing || c->eof)
		return false;
	if (c->ntypes == 0)
		return true;
	for (size_t i = 0; i < c->ntypes; i++)
		if (strcmp(c->types[i], type) == 0)
			return true;
	return false;
}

void cp_rpc_server_notify(struct cp_rpc_server *s, const char *type, json_t *params)
{
	json_t *msg;
	unsigned i;
	char *line;
	size_t len;

	if (!s || !type)
		goto out;
	for (i = 0; i < s->nclients; i++)
		if (wants(s->clients[i], type))
			break;
	if (i == s->nclients)
		goto out;	/* nobody listens: skip the encoding */

	msg = json_object();
	if (!msg)
		goto out;
	json_object_set_new(msg, "jsonrpc", json_string("2.0"));
	json_object_set_new(msg, "method", json_string(type));
	json_object_set_new(msg, "params", params ? params : json_object());
	params = NULL;
	line = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!line) {
		fprintf(stderr, "rpc: cannot encode a %s notification\n", type);
		goto out;
	}
	len = strlen(line);
	for (; i < s->nclients; i++) {
		struct rpc_client *c = s->clients[i];

		if (!wants(c, type))
			continue;
		client_queue(c, line, len);
		if (!s->in_poll)
			client_flush(c);
	}
	free(line);
	if (!s->in_poll)
		sweep(s);
out:
	json_decref(params);
}

unsigned cp_rpc_server_clients(const struct cp_rpc_server *s)
{
	unsigned n = 0;

	for (unsigned i = 0; s && i < s->nclients; i++)
		n += !s->clients[i]->dead;
	return n;
}

/* Gives path the group gid (-1: leave it), calling chown only when it has another: a
 * daemon whose own group is already the socket group needs no chown (and its unit may
 * forbid the call). */
static int set_group(const char *path, gid_t gid)
{
	struct stat st;

	if (gid == (gid_t)-1)
		return 0;
	if (stat(path, &st) < 0)
		return -1;
	return st.st_gid == gid ? 0 : chown(path, (uid_t)-1, gid);
}

/* mkdir -p of path's parent; directories we create get 0750 and, with a group, that
 * group, so its members can reach the socket. */
static int make_parent(const char *path, gid_t gid)
{
	char *dir = strdup(path), *p;
	int rc = 0;

	if (!dir)
		return -ENOMEM;
	p = strrchr(dir, '/');
	if (!p || p == dir)
		goto out;
	*p = '\0';
	for (p = dir + 1;; p++) {
		bool last = *p == '\0';

		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdir(dir, 0750) == 0) {
			/* umask may have narrowed it */
			if (chmod(dir, 0750) < 0 || set_group(dir, gid) < 0) {
				rc = -errno;
				fprintf(stderr, "rpc: %s: %s\n", dir, strerror(errno));
				goto out;
			}
		} else if (errno != EEXIST) {
			rc = -errno;
			fprintf(stderr, "rpc: cannot create %s: %s\n", dir, strerror(errno));
			goto out;
		}
		if (last)
			break;
		*p = '/';
	}
out:
	free(dir);
	return rc;
}

/* A socket file left by a dead server is replaced; one that still answers is not. */
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "rpc: %s exists and is not a socket\n", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? 0 : -errno;
	close(fd);
	if (rc == 0 || rc == -EAGAIN || rc == -EINPROGRESS) {
		fprintf(stderr, "rpc: another server is listening on %s\n", path);
		return -EADDRINUSE;
	}
	if (rc != -ECONNREFUSED) {
		fprintf(stderr, "rpc: cannot probe %s: %s\n", path, strerror(-rc));
		return rc;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		rc = -errno;
		fprintf(stderr, "rpc: cannot remove stale %s: %s\n", path, strerror(errno));
		return rc;
	}
	return 0;
}

static int lookup_group(const char *name, gid_t *gid)
{
	struct group *gr;
	char *end;
	unsigned long v;

	errno = 0;
	gr = getgrnam(name);
	if (gr) {
		*gid = gr->gr_gid;
		return 0;
	}
	v = strtoul(name, &end, 10);
	if (*name >= '0' && *name <= '9' && *end == '\0' && v < (gid_t)-1) {
		*gid = (gid_t)v;
		return 0;
	}
	fprintf(stderr, "rpc: unknown group \"%s\"\n", name);
	return errno ? -errno : -ENOENT;
}

struct cp_rpc_server *cp_rpc_server_open(const struct cp_rpc_server_opts *opts)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct cp_rpc_server *s = NULL;
	mode_t mode, old_umask;
	gid_t gid = (gid_t)-1;
	struct stat st;
	int rc, fd = -1;
	bool bound = false;

	if (!opts || !opts->path || !*opts->path) {
		fprintf(stderr, "rpc: no socket path\n");
		errno = EINVAL;
		return NULL;
	}
	if (strlen(opts->path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "rpc: socket path too long (max %zu): %s\n",
			sizeof(sa.sun_path) - 1, opts->path);
		errno = ENAMETOOLONG;
		return NULL;
	}
	memcpy(sa.sun_path, opts->path, strlen(opts->path) + 1);
	mode = opts->mode ? opts->mode : 0660;
	if (opts->group && *opts->group) {
		rc = lookup_group(opts->group, &gid);
		if (rc < 0)
			goto fail;
	}
	rc = make_parent(opts->path, gid);
	if (rc < 0)
		goto fail;
	rc = clear_stale(opts->path, &sa);
	if (rc < 0)
		goto fail;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		fprintf(stderr, "rpc: socket: %s\n", strerror(errno));
		goto fail;
	}
	/* no moment where the file is wider than owner-only: chmod comes after bind */
	old_umask = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
	umask(old_umask);
	if (rc < 0) {
		fprintf(stderr, "rpc: bind %s: %s\n", opts->path, strerror(-rc));
		goto fail;
	}
	bound = true;
	if (chmod(opts->path, mode) < 0 || set_group(opts->path, gid) < 0 || stat(opts->path, &st) < 0) {
		rc = -errno;
		fprintf(stderr, "rpc: %s: %s\n", opts->path, strerror(errno));
		goto fail;
	}
	if (listen(fd, RPC_BACKLOG) < 0) {
		rc = -errno;
		fprintf(stderr, "rpc: listen %s: %s\n", opts->path, strerror(errno));
		goto fail;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(opts->path))) {
		rc = -ENOMEM;
		goto fail;
	}
	s->fd = fd;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->methods = opts->methods;
	s->ctx = opts->ctx;
	return s;

fail:
	if (s)
		free(s->path);
	free(s);
	if (bound)
		unlink(opts->path);
	if (fd >= 0)
		close(fd);
	errno = -rc;
	return NULL;
}

void cp_rpc_server_close(struct cp_rpc_server *s)
{
	struct stat st;

	if (!s)
		return;
	for (unsigned i = 0; i < s->nclients; i++)
		client_free(s->clients[i]);
	free(s->clients);
	free(s->pfds);
	close(s->fd);
	/* a newer server may have taken the path over; leave its socket alone */
	if (stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
	free(s->path);
	free(s);
}
