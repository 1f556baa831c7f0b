/* egressctl: the operator's client for the egress control socket (../shared/API.md).
 *
 * One JSON-RPC 2.0 request per invocation, one line each way. Subcommands come from one
 * {name, fn, args, help} table that also prints the usage. Exit status: 0 on a result,
 * 1 on an error reply, 2 when the socket cannot be reached, the reply is unreadable or
 * the command line is wrong. Standalone on purpose: it must not link control/ code. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <jansson.h>

#include "egressctl.h"

#ifndef EG_VERSION
#define EG_VERSION "unknown"
#endif

volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = 1;
}

void die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("egressctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* ---- transport ---- */

static void ctl_connect(struct ctl *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(c->socket);
	const char *hint = "";

	if (n >= sizeof(sa.sun_path))
		die(EXIT_LOCAL, "socket path too long: %s", c->socket);
	memcpy(sa.sun_path, c->socket, n + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die(EXIT_LOCAL, "socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return;
	if (errno == ENOENT || errno == ECONNREFUSED)
		hint = " (is egress-control running? -s or EGRESS_SOCKET name another socket)";
	else if (errno == EACCES)
		hint = " (the socket is mode 0660: run as its owner or a member of its group)";
	die(EXIT_LOCAL, "cannot connect to %s: %s%s", c->socket, strerror(errno), hint);
}

/* Sends s and its '\n'. A peer that hangs up mid-send may still have answered (a refusal
 * of the request, say), so that case is left to the read that follows. */
static void ctl_send_line(struct ctl *c, const char *s)
{
	size_t n = strlen(s), off = 0;
	char *line = malloc(n + 1);
	ssize_t k;

	if (!line)
		die(EXIT_LOCAL, "out of memory");
	memcpy(line, s, n);
	line[n++] = '\n';
	while (off < n) {
		k = send(c->fd, line + off, n - off, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EPIPE || errno == ECONNRESET))
			break;
		if (k < 0)
			die(EXIT_LOCAL, "send to %s: %s", c->socket, strerror(errno));
		off += (size_t)k;
	}
	free(line);
}

/* One line from the socket, '\n' and a trailing '\r' cut. Returns a malloc'd string, or
 * NULL at EOF; dies on a timeout or an error. An interrupted wait returns NULL too. */
char *ctl_read_line(struct ctl *c, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	struct timespec t0;
	size_t scanned = 0, k;
	char *nl, *line;
	ssize_t n;
	int left = timeout_ms, rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		nl = c->len > scanned ? memchr(c->buf + scanned, '\n', c->len - scanned) : NULL;
		if (nl) {
			k = (size_t)(nl - c->buf);
			line = malloc(k + 1);
			if (!line)
				die(EXIT_LOCAL, "out of memory");
			memcpy(line, c->buf, k);
			line[k && line[k - 1] == '\r' ? k - 1 : k] = '\0';
			memmove(c->buf, nl + 1, c->len - k - 1);
			c->len -= k + 1;
			return line;
		}
		scanned = c->len;
		if (timeout_ms >= 0) {
			struct timespec t;

			clock_gettime(CLOCK_MONOTONIC, &t);
			left = timeout_ms - (int)((t.tv_sec - t0.tv_sec) * 1000 +
						  (t.tv_nsec - t0.tv_nsec) / 1000000);
			if (left <= 0)
				die(EXIT_LOCAL, "no reply from %s within %d s", c->socket,
				    timeout_ms / 1000);
		}
		rc = poll(&pfd, 1, left);
		if (rc < 0 && errno == EINTR) {
			if (interrupted)
				return NULL;
			continue;
		}
		if (rc < 0)
			die(EXIT_LOCAL, "poll: %s", strerror(errno));
		if (rc == 0)
			continue;
		if (c->cap - c->len < CTL_READ_CHUNK) {
			if (c->cap >= CTL_MAX_REPLY)
				die(EXIT_LOCAL, "reply from %s exceeds %d MiB", c->socket,
				    CTL_MAX_REPLY >> 20);
			c->cap = c->cap ? c->cap * 2 : 2 * CTL_READ_CHUNK;
			c->buf = realloc(c->buf, c->cap);
			if (!c->buf)
				die(EXIT_LOCAL, "out of memory");
		}
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != ECONNRESET)
			die(EXIT_LOCAL, "read from %s: %s", c->socket, strerror(errno));
		if (n <= 0)
			return NULL;
		c->len += (size_t)n;
	}
}

static void print_error(json_t *e)
{
	json_t *data = json_object_get(e, "data");
	const char *msg = json_string_value(json_object_get(e, "message"));

	fprintf(stderr, "error %" JSON_INTEGER_FORMAT ": %s",
		json_integer_value(json_object_get(e, "code")), msg ? msg : "(no message)");
	if (json_is_string(data) && json_string_length(data))
		fprintf(stderr, " (at %s)", json_string_value(data));
	else if (data && !json_is_null(data)) {
		char *s = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);

		fprintf(stderr, " (%s)", s ? s : "?");
		free(s);
	}
	fputc('\n', stderr);
}

/* Sends method(params) and waits for its reply. Steals params (NULL: none). Returns the
 * result (a new reference); on an error reply prints it and exits 1. */
json_t *rpc_call(struct ctl *c, const char *method, json_t *params)
{
	json_t *req, *reply, *id, *result, *err;
	json_error_t jerr;
	char *s, *line;

	if (c->fd < 0)
		ctl_connect(c);
	req = json_pack("{s:s, s:i, s:s}", "jsonrpc", "2.0", "id", 1, "method", method);
	if (!req)
		die(EXIT_LOCAL, "out of memory");
	if (params)
		json_object_set_new(req, "params", params);
	s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!s)
		die(EXIT_LOCAL, "cannot encode the request");
	ctl_send_line(c, s);
	free(s);

	for (;;) {
		line = ctl_read_line(c, c->timeout_ms);
		if (!line && interrupted)
			die(EXIT_LOCAL, "interrupted");
		if (!line)
			die(EXIT_LOCAL, "%s closed the connection without a reply", c->socket);
		reply = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
		if (!reply)
			die(EXIT_LOCAL, "unreadable reply (%s): %.200s", jerr.text, line);
		free(line);
		if (!json_object_get(reply, "method"))
			break;
		json_decref(reply);	/* a notification, not our reply */
	}
	id = json_object_get(reply, "id");
	result = json_object_get(reply, "result");
	err = json_object_get(reply, "error");
	if (!(json_is_integer(id) && json_integer_value(id) == 1) && !json_is_null(id))
		die(EXIT_LOCAL, "reply for another request");
	if (json_is_object(err)) {
		print_error(err);
		json_decref(reply);
		exit(EXIT_REPLY_ERROR);
	}
	if (!result)
		die(EXIT_LOCAL, "reply has neither result nor error");
	json_incref(result);
	json_decref(reply);
	return result;
}

/* ---- argument helpers ---- */

/* JSON from an argument: "-" is stdin, "@PATH" a file, anything else the text itself. */
static json_t *json_arg(const char *arg)
{
	json_error_t e;
	json_t *j;

	if (strcmp(arg, "-") == 0)
		j = json_loadf(stdin, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
	else if (arg[0] == '@')
		j = json_load_file(arg + 1, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
	else
		j = json_loads(arg, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
	if (!j) {
		if (strcmp(arg, "-") != 0 && arg[0] != '@')
			die(EXIT_LOCAL, "not JSON (%s at column %d): %s", e.text, e.column, arg);
		if (e.line < 0)		/* could not open it: the text says why */
			die(EXIT_LOCAL, "%s", e.text);
		die(EXIT_LOCAL, "%s:%d:%d: %s", arg[0] == '@' ? arg + 1 : "stdin", e.line, e.column,
		    e.text);
	}
	return j;
}

bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return !errno && !*end && *out <= max;
}

/* ---- output ---- */

void print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);

	if (!s)
		die(EXIT_LOCAL, "cannot encode the result");
	puts(s);
	free(s);
}

/* A value as a table cell: absent and null are "-". */
char *cell(const json_t *v)
{
	char *s = NULL;

	if (!v || json_is_null(v))
		s = strdup("-");
	else if (json_is_string(v))
		s = strdup(json_string_value(v));
	else if (json_is_integer(v)) {
		if (asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0)
			s = NULL;
	} else if (json_is_real(v)) {
		if (asprintf(&s, "%g", json_real_value(v)) < 0)
			s = NULL;
	} else if (json_is_boolean(v))
		s = strdup(json_is_true(v) ? "yes" : "no");
	else
		s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		die(EXIT_LOCAL, "out of memory");
	return s;
}

void table_add(struct table *t, char *s)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->cells = realloc(t->cells, t->cap * sizeof(*t->cells));
		if (!t->cells)
			die(EXIT_LOCAL, "out of memory");
	}
	t->cells[t->n++] = s;
}

void table_str(struct table *t, const char *s)
{
	char *d = strdup(s);

	if (!d)
		die(EXIT_LOCAL, "out of memory");
	table_add(t, d);
}

void table_init(struct table *t, const char *align, const char *const *head)
{
	*t = (struct table){ .ncols = strlen(align), .align = align };
	for (size_t i = 0; head && i < t->ncols; i++)
		table_str(t, head[i]);
}

/* display width: UTF-8 continuation bytes take no column */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

void table_print(struct table *t)
{
	size_t *w = calloc(t->ncols, sizeof(*w)), i, col, pad;

	if (!w)
		die(EXIT_LOCAL, "out of memory");
	for (i = 0; i < t->n; i++)
		if (width(t->cells[i]) > w[i % t->ncols])
			w[i % t->ncols] = width(t->cells[i]);
	for (i = 0; i < t->n; i++) {
		col = i % t->ncols;
		pad = w[col] - width(t->cells[i]);
		if (t->align[col] == 'r')
			printf("%*s%s", (int)pad, "", t->cells[i]);
		else if (col + 1 < t->ncols)
			printf("%s%*s", t->cells[i], (int)pad, "");
		else
			fputs(t->cells[i], stdout);	/* no trailing blanks */
		fputs(col + 1 < t->ncols ? "  " : "\n", stdout);
		free(t->cells[i]);
	}
	free(t->cells);
	free(w);
	*t = (struct table){ 0 };
}

/* one row of obj's keys, in order */
static void table_row(struct table *t, const json_t *obj, const char *const *keys)
{
	for (size_t i = 0; i < t->ncols; i++)
		table_add(t, cell(json_object_get(obj, keys[i])));
}

static void print_rows(const json_t *rows, const char *align, const char *const *head,
		       const char *const *keys)
{
	struct table t;
	const json_t *row;
	size_t i;

	table_init(&t, align, head);
	json_array_foreach(rows, i, row)
		table_row(&t, row, keys);
	table_print(&t);
}

static char *fmt_duration(json_int_t s)
{
	char *out;
	int rc;

	if (s < 0)
		s = 0;
	if (s >= 86400)
		rc = asprintf(&out, "%" JSON_INTEGER_FORMAT "d %02d:%02d:%02d", s / 86400,
			      (int)(s % 86400 / 3600), (int)(s % 3600 / 60), (int)(s % 60));
	else
		rc = asprintf(&out, "%02d:%02d:%02d", (int)(s / 3600), (int)(s % 3600 / 60),
			      (int)(s % 60));
	if (rc < 0)
		die(EXIT_LOCAL, "out of memory");
	return out;
}

/* ---- subcommands ---- */

static int cmd_status(struct ctl *c, int argc, char **argv)
{
	static const char *const known[] = { "version", "instance", "uptime_s", "generation",
					     "dataplane", NULL };
	json_t *r, *dp, *v;
	struct table t;
	const char *key;
	char *s;

	if (argc)
		return -1;
	r = rpc_call(c, "status", NULL);
	if (c->json) {
		print_json(r);
		goto out;
	}
	table_init(&t, "ll", NULL);
	table_str(&t, "version");
	table_add(&t, cell(json_object_get(r, "version")));
	table_str(&t, "instance");
	table_add(&t, cell(json_object_get(r, "instance")));
	table_str(&t, "uptime");
	v = json_object_get(r, "uptime_s");
	table_add(&t, json_is_integer(v) ? fmt_duration(json_integer_value(v)) : cell(v));
	table_str(&t, "generation");
	table_add(&t, cell(json_object_get(r, "generation")));
	table_str(&t, "dataplane");
	dp = json_object_get(r, "dataplane");
	if (json_is_object(dp) && json_is_true(json_object_get(dp, "attached"))) {
		char *pid = cell(json_object_get(dp, "pid")), *epoch = cell(json_object_get(dp, "epoch"));
		char *workers = cell(json_object_get(dp, "workers"));
		char *hb = cell(json_object_get(dp, "heartbeat_age_ms"));

		if (asprintf(&s, "attached: pid %s, epoch %s, %s workers, heartbeat %s ms ago", pid,
			     epoch, workers, hb) < 0)
			die(EXIT_LOCAL, "out of memory");
		table_add(&t, s);
		free(pid);
		free(epoch);
		free(workers);
		free(hb);
	} else {
		table_str(&t, dp ? "not attached" : "-");
	}
	/* whatever else the daemon reports, as it comes */
	json_object_foreach(r, key, v) {
		const char *const *k;

		for (k = known; *k && strcmp(*k, key) != 0; k++)
			;
		if (*k)
			continue;
		table_str(&t, key);
		table_add(&t, cell(v));
	}
	table_print(&t);
out:
	json_decref(r);
	return 0;
}

static int cmd_stats(struct ctl *c, int argc, char **argv)
{
	static const char *const port_head[] = { "PORT", "ROLE", "LINK", "RX_PACKETS", "RX_BYTES",
						 "TX_PACKETS", "TX_BYTES", "DROPS" };
	static const char *const port_keys[] = { "name", "role", "link", "rx_packets", "rx_bytes",
						  "tx_packets", "tx_bytes", "drops" };
	static const char *const worker_head[] = { "WORKER", "RX_PACKETS", "TX_PACKETS", "DROPS",
						   "BUSY_LOOPS", "IDLE_LOOPS" };
	static const char *const worker_keys[] = { "id", "rx_packets", "tx_packets", "drops",
						   "busy_loops", "idle_loops" };
	static const char *const egress_head[] = { "EGRESS", "TX_PACKETS", "TX_BYTES" };
	static const char *const egress_keys[] = { "name", "tx_packets", "tx_bytes" };
	static const char *const policy_head[] = { "POLICY", "HITS" };
	static const char *const policy_keys[] = { "name", "hits" };
	static const char *const drop_head[] = { "DROP_REASON", "PACKETS" };
	json_t *r, *ports, *v;
	struct table t;
	const char *key;
	bool gap = false;
	size_t i;

	if (argc > 1)
		return -1;
	r = rpc_call(c, "stats.get", argc ? json_pack("{s:s}", "port", argv[0]) : NULL);
	if (c->json) {
		print_json(r);
		goto out;
	}
	ports = json_object_get(r, "ports");
	if (json_is_array(ports)) {
		/* link is a bool or a word */
		table_init(&t, "lllrrrrr", port_head);
		json_array_foreach(ports, i, v) {
			json_t *link = json_object_get(v, "link");

			table_row(&t, v, port_keys);
			if (json_is_boolean(link)) {
				free(t.cells[t.n - 6]);	/* the LINK cell of this row */
				t.cells[t.n - 6] = strdup(json_is_true(link) ? "up" : "down");
				if (!t.cells[t.n - 6])
					die(EXIT_LOCAL, "out of memory");
			}
		}
		table_print(&t);
		gap = true;
	}
	if (json_is_array(json_object_get(r, "workers"))) {
		if (gap)
			putchar('\n');
		print_rows(json_object_get(r, "workers"), "lrrrrr", worker_head, worker_keys);
		gap = true;
	}
	if (json_object_size(json_object_get(r, "drops"))) {
		bool any = false;

		if (gap)
			putchar('\n');
		/* Only the reasons that happened; --json has them all. */
		table_init(&t, "lr", drop_head);
		json_object_foreach(json_object_get(r, "drops"), key, v) {
			if (json_is_integer(v) && json_integer_value(v) == 0)
				continue;
			table_str(&t, key);
			table_add(&t, cell(v));
			any = true;
		}
		if (any)
			table_print(&t);
		else
			printf("no drops\n");
		gap = true;
	}
	if (json_array_size(json_object_get(r, "egresses"))) {
		if (gap)
			putchar('\n');
		print_rows(json_object_get(r, "egresses"), "lrr", egress_head, egress_keys);
		gap = true;
	}
	if (json_array_size(json_object_get(r, "policies"))) {
		if (gap)
			putchar('\n');
		print_rows(json_object_get(r, "policies"), "lr", policy_head, policy_keys);
	}
out:
	json_decref(r);
	return 0;
}

static int cmd_egress_list(struct ctl *c, int argc, char **argv)
{
	static const char *const head[] = { "NAME", "TYPE", "PORT", "STATE", "TX_PACKETS", "TX_BYTES" };
	static const char *const keys[] = { "name", "type", "port", "state", "tx_packets", "tx_bytes" };
	json_t *r;

	if (argc)
		return -1;
	r = rpc_call(c, "egress.list", NULL);
	if (c->json)
		print_json(r);
	else
		print_rows(json_object_get(r, "egresses"), "llllrr", head, keys);
	json_decref(r);
	return 0;
}

/* RTT as min/avg/p99 and the rest with one decimal: what an operator scans for. */
static char *fmt_ms(const json_t *path, const char *key)
{
	const json_t *v = json_object_get(path, key);
	char *s;
	int rc;

	if (json_is_object(v))
		rc = asprintf(&s, "%.1f/%.1f/%.1f", json_number_value(json_object_get(v, "min")),
			      json_number_value(json_object_get(v, "avg")),
			      json_number_value(json_object_get(v, "p99")));
	else if (json_is_number(v))
		rc = asprintf(&s, "%.1f", json_number_value(v));
	else
		rc = asprintf(&s, "-");
	if (rc < 0)
		die(EXIT_LOCAL, "out of memory");
	return s;
}

static int cmd_path_list(struct ctl *c, int argc, char **argv)
{
	static const char *const head[] = { "NAME", "STATE", "PROBE", "RTT_MS(MIN/AVG/P99)", "JITTER_MS",
					    "LOSS_%", "LAST_PROBE_MS", "LAST_ANSWER_MS" };
	const json_t *path;
	struct table t;
	json_t *r;
	size_t i;

	if (argc)
		return -1;
	r = rpc_call(c, "path.list", NULL);
	if (c->json) {
		print_json(r);
		json_decref(r);
		return 0;
	}
	table_init(&t, "lllrrrrr", head);
	json_array_foreach(json_object_get(r, "paths"), i, path) {
		const json_t *method = json_object_get(path, "method");

		table_add(&t, cell(json_object_get(path, "name")));
		table_add(&t, cell(json_object_get(path, "state")));
		table_add(&t, cell(method));
		table_add(&t, method ? fmt_ms(path, "rtt_ms") : cell(NULL));
		table_add(&t, method ? fmt_ms(path, "jitter_ms") : cell(NULL));
		table_add(&t, method ? fmt_ms(path, "loss_pct") : cell(NULL));
		table_add(&t, cell(json_object_get(path, "last_probe_age_ms")));
		table_add(&t, cell(json_object_get(path, "last_answer_age_ms")));
	}
	table_print(&t);
	json_decref(r);
	return 0;
}

static int cmd_egress_add(struct ctl *c, int argc, char **argv)
{
	json_t *eg, *r;

	if (argc != 1)
		return -1;
	eg = json_arg(argv[0]);
	if (!json_is_object(eg))
		die(EXIT_LOCAL, "egress add: expected an egress object, like "
				"{\"name\":\"direct-wan0\",\"type\":\"direct\",\"port\":\"wan0\"}");
	r = rpc_call(c, "egress.add", eg);
	if (c->json)
		print_json(r);
	json_decref(r);
	return 0;
}

static int cmd_egress_remove(struct ctl *c, int argc, char **argv)
{
	json_t *r;

	if (argc != 1)
		return -1;
	r = rpc_call(c, "egress.remove", json_pack("{s:s}", "name", argv[0]));
	if (c->json)
		print_json(r);
	json_decref(r);
	return 0;
}

/* "dst=10.20.0.0/16,10.30.0.0/16 proto=udp"; an empty match is "any" */
static char *fmt_match(const json_t *m)
{
	const char *key;
	json_t *v, *e;
	char *out = NULL, *val;
	size_t len = 0, i;
	FILE *f;

	if (!json_is_object(m))
		return cell(m);
	if (!json_object_size(m))
		return strdup("any");
	f = open_memstream(&out, &len);
	if (!f)
		die(EXIT_LOCAL, "out of memory");
	json_object_foreach((json_t *)m, key, v) {
		fprintf(f, "%s%s=", ftell(f) ? " " : "", key);
		if (json_is_array(v)) {
			json_array_foreach(v, i, e) {
				val = cell(e);
				fprintf(f, "%s%s", i ? "," : "", val);
				free(val);
			}
		} else {
			val = cell(v);
			fputs(val, f);
			free(val);
		}
	}
	fclose(f);
	return out;
}

static int cmd_policy_list(struct ctl *c, int argc, char **argv)
{
	static const char *const head[] = { "PRIO", "NAME", "ACTION", "STRATEGY", "EGRESSES",
					    "HITS", "MATCH" };
	json_t *r, *p, *egs, *e;
	struct table t;
	size_t i, j;

	if (argc)
		return -1;
	r = rpc_call(c, "policy.list", NULL);
	if (c->json) {
		print_json(r);
		goto out;
	}
	if (json_object_get(r, "generation")) {
		char *g = cell(json_object_get(r, "generation"));

		printf("generation %s\n", g);
		free(g);
	}
	table_init(&t, "rllllrl", head);
	json_array_foreach(json_object_get(r, "policies"), i, p) {
		table_add(&t, cell(json_object_get(p, "priority")));
		table_add(&t, cell(json_object_get(p, "name")));
		table_add(&t, cell(json_object_get(p, "action")));
		table_add(&t, cell(json_object_get(p, "strategy")));
		egs = json_object_get(p, "egresses");
		if (json_array_size(egs)) {
			char *s = NULL;
			size_t len = 0;
			FILE *f = open_memstream(&s, &len);

			if (!f)
				die(EXIT_LOCAL, "out of memory");
			json_array_foreach(egs, j, e)
				fprintf(f, "%s%s", j ? "," : "", json_is_string(e) ? json_string_value(e) : "?");
			fclose(f);
			table_add(&t, s);
		} else {
			table_str(&t, "-");
		}
		table_add(&t, cell(json_object_get(p, "hits")));
		table_add(&t, fmt_match(json_object_get(p, "match")));
	}
	table_print(&t);
out:
	json_decref(r);
	return 0;
}

static int cmd_policy_set(struct ctl *c, int argc, char **argv)
{
	json_t *doc, *params, *r;
	char *arg;

	if (argc != 1)
		return -1;
	/* a file name; "@FILE" is accepted too, like egress add */
	if (strcmp(argv[0], "-") == 0 || argv[0][0] == '@') {
		doc = json_arg(argv[0]);
	} else {
		if (asprintf(&arg, "@%s", argv[0]) < 0)
			die(EXIT_LOCAL, "out of memory");
		doc = json_arg(arg);
		free(arg);
	}
	if (json_is_array(doc)) {
		params = json_pack("{s:o}", "policies", doc);
	} else if (json_is_object(doc) && json_is_array(json_object_get(doc, "policies"))) {
		params = doc;
	} else {
		die(EXIT_LOCAL, "policy set: %s holds neither {\"policies\": [...]} nor an array",
		    argv[0]);
	}
	r = rpc_call(c, "policy.set", params);
	if (c->json) {
		print_json(r);
	} else {
		char *g = cell(json_object_get(r, "generation"));

		printf("generation %s\n", g);
		free(g);
	}
	json_decref(r);
	return 0;
}

static int cmd_flow_lookup(struct ctl *c, int argc, char **argv)
{
	static const char *const keys[] = { "policy", "action", "egress", "generation" };
	const char *pos[5], *port = NULL, *dscp = NULL;
	unsigned long v;
	json_t *params, *r;
	struct table t;
	int npos = 0;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--dscp") == 0 && i + 1 < argc)
			dscp = argv[++i];
		else if (strncmp(argv[i], "--dscp=", 7) == 0)
			dscp = argv[i] + 7;
		else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port = argv[++i];
		else if (strncmp(argv[i], "--port=", 7) == 0)
			port = argv[i] + 7;
		else if (argv[i][0] == '-' && argv[i][1] == '-')
			return -1;
		else if (npos < 5)
			pos[npos++] = argv[i];
		else
			return -1;
	}
	if (npos != 3 && npos != 5)
		return -1;
	params = json_pack("{s:s, s:s}", "src", pos[0], "dst", pos[1]);
	if (parse_uint(pos[2], 255, &v))
		json_object_set_new(params, "proto", json_integer((json_int_t)v));
	else
		json_object_set_new(params, "proto", json_string(pos[2]));
	if (npos == 5) {
		for (int i = 3; i < 5; i++) {
			if (!parse_uint(pos[i], 65535, &v))
				die(EXIT_LOCAL, "flow lookup: bad port \"%s\" (0-65535)", pos[i]);
			json_object_set_new(params, i == 3 ? "sport" : "dport",
					    json_integer((json_int_t)v));
		}
	}
	if (dscp) {
		if (!parse_uint(dscp, 63, &v))
			die(EXIT_LOCAL, "flow lookup: bad DSCP \"%s\" (0-63)", dscp);
		json_object_set_new(params, "dscp", json_integer((json_int_t)v));
	}
	if (port)
		json_object_set_new(params, "port", json_string(port));
	r = rpc_call(c, "flow.lookup", params);
	if (c->json) {
		print_json(r);
	} else {
		table_init(&t, "ll", NULL);
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			table_str(&t, keys[i]);
			table_add(&t, cell(json_object_get(r, keys[i])));
		}
		table_print(&t);
	}
	json_decref(r);
	return 0;
}

static int cmd_events(struct ctl *c, int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART: poll returns */
	json_t *types = NULL, *r, *n;
	char *line, *p, stamp[16];
	struct tm tm;
	time_t now;

	if (argc) {
		types = json_array();
		for (int i = 0; i < argc; i++)
			json_array_append_new(types, json_string(argv[i]));
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	r = rpc_call(c, "events.subscribe", types ? json_pack("{s:o}", "types", types) : NULL);
	json_decref(r);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (!interrupted && (line = ctl_read_line(c, -1))) {
		if (c->json) {
			puts(line);
		} else if ((n = json_loads(line, 0, NULL))) {
			now = time(NULL);
			localtime_r(&now, &tm);
			strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
			p = json_dumps(json_object_get(n, "params"), JSON_COMPACT | JSON_ENCODE_ANY);
			printf("%s %s %s\n", stamp,
			       json_string_value(json_object_get(n, "method")) ?: "?", p ? p : "");
			free(p);
			json_decref(n);
		} else {
			puts(line);
		}
		free(line);
	}
	if (!interrupted)
		fprintf(stderr, "egressctl: %s closed the connection\n", c->socket);
	return 0;
}

static int cmd_call(struct ctl *c, int argc, char **argv)
{
	json_t *r;

	if (argc < 1 || argc > 2)
		return -1;
	r = rpc_call(c, argv[0], argc == 2 ? json_arg(argv[1]) : NULL);
	print_json(r);
	json_decref(r);
	return 0;
}

/* Bytes the way wg(8) prints them. */
static void print_bytes(uint64_t b)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)b;
	unsigned u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		printf("%llu B", (unsigned long long)b);
	else
		printf("%.2f %s", v, unit[u]);
}

static void print_ago(int64_t secs)
{
	int64_t part[] = {secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60};
	static const char *const name[] = {"day", "hour", "minute", "second"};
	bool any = false;

	for (unsigned i = 0; i < 4; i++) {
		if (!part[i] && (i < 3 || any))
			continue;
		printf("%s%lld %s%s", any ? ", " : "", (long long)part[i], name[i], part[i] == 1 ? "" : "s");
		any = true;
	}
	printf(" ago");
}

/* What `wg show` prints, from wg.show. */
static int cmd_wg_show(struct ctl *c, int argc, char **argv)
{
	json_t *r, *peers, *p;
	size_t i;

	if (argc)
		return -1;
	r = rpc_call(c, "wg.show", NULL);
	if (c->json) {
		print_json(r);
		json_decref(r);
		return 0;
	}
	printf("interface: egress\n  public key: %s\n  listening port: %lld\n",
	       json_string_value(json_object_get(r, "public_key")),
	       (long long)json_integer_value(json_object_get(r, "listen_port")));
	peers = json_object_get(r, "peers");
	json_array_foreach(peers, i, p) {
		json_t *a, *ips = json_object_get(p, "allowed_ips");
		int64_t hs = json_integer_value(json_object_get(p, "latest_handshake"));
		int64_t ka = json_integer_value(json_object_get(p, "persistent_keepalive"));
		size_t j;

		printf("\npeer: %s\n", json_string_value(json_object_get(p, "public_key")));
		if (json_object_get(p, "endpoint"))
			printf("  endpoint: %s\n", json_string_value(json_object_get(p, "endpoint")));
		printf("  allowed ips: ");
		json_array_foreach(ips, j, a)
			printf("%s%s", j ? ", " : "", json_string_value(a));
		printf("%s\n", json_array_size(ips) ? "" : "(none)");
		if (hs > 0) {
			printf("  latest handshake: ");
			print_ago((int64_t)time(NULL) - hs);
			printf("\n");
		}
		printf("  transfer: ");
		print_bytes((uint64_t)json_integer_value(json_object_get(p, "rx_bytes")));
		printf(" received, ");
		print_bytes((uint64_t)json_integer_value(json_object_get(p, "tx_bytes")));
		printf(" sent\n");
		if (ka > 0)
			printf("  persistent keepalive: every %lld second%s\n", (long long)ka, ka == 1 ? "" : "s");
	}
	json_decref(r);
	return 0;
}

static int cmd_wg_peer_add(struct ctl *c, int argc, char **argv)
{
	json_t *r;

	if (argc != 1)
		return -1;
	r = rpc_call(c, "wg.peer.add", json_arg(argv[0]));
	print_json(r);
	json_decref(r);
	return 0;
}

static int cmd_wg_peer_remove(struct ctl *c, int argc, char **argv)
{
	json_t *r;

	if (argc != 1)
		return -1;
	/* A base64 key is 44 characters ending in '='; anything else is a peer name. */
	r = rpc_call(c, "wg.peer.remove",
		     strlen(argv[0]) == 44 && argv[0][43] == '=' ? json_pack("{s:s}", "public_key", argv[0])
								  : json_pack("{s:s}", "name", argv[0]));
	print_json(r);
	json_decref(r);
	return 0;
}

static int cmd_help(struct ctl *c, int argc, char **argv);

struct command {
	const char *name;	/* one or two words */
	int (*fn)(struct ctl *c, int argc, char **argv);	/* -1: bad arguments */
	const char *args;
	const char *help;
};

static const struct command commands[] = {
	{ "status", cmd_status, "", "daemon and dataplane status" },
	{ "stats", cmd_stats, "[PORT]", "port, worker, drop, egress and policy counters" },
	{ "egress list", cmd_egress_list, "", "egresses with their state and traffic" },
	{ "egress add", cmd_egress_add, "JSON|@FILE", "add an egress (an object as in the config)" },
	{ "egress remove", cmd_egress_remove, "NAME", "remove an egress" },
	{ "path list", cmd_path_list, "", "each egress's probe figures: RTT, jitter, loss, ages" },
	{ "policy list", cmd_policy_list, "", "the policies in force, in priority order" },
	{ "policy set", cmd_policy_set, "FILE|-",
	  "replace every policy from {\"policies\":[...]} or a bare array" },
	{ "flow lookup", cmd_flow_lookup, "SRC DST PROTO [SPORT DPORT] [--dscp N] [--port NAME]",
	  "the policy and egress a flow gets now" },
	{ "events", cmd_events, "[TYPE...]", "print notifications (all types by default) until ^C" },
	{ "wg show", cmd_wg_show, "", "WireGuard interface and peers, as wg show prints them" },
	{ "wg add", cmd_wg_peer_add, "JSON|@FILE", "add a WireGuard peer (an object as in the config)" },
	{ "wg remove", cmd_wg_peer_remove, "PUBKEY|NAME", "remove a WireGuard peer" },
	{ "capture", cmd_capture,
	  "PORT|EGRESS -w FILE|- [-c COUNT] [-d SECONDS] [-s SNAPLEN] [--decrypted] [--port|--egress]",
	  "write what a port or egress sends and receives to a pcapng file (default 1000 packets, 60 s)" },
	{ "nat", cmd_nat, "[ADDRESS] [-e EGRESS] [-n LIMIT]",
	  "source NAT: counts, pool addresses and sessions (of ADDRESS: inside, outside or remote)" },
	{ "top", cmd_top, "[-n ITERATIONS] [-i SECONDS]", "live rates per port and egress, and path quality" },
	{ "call", cmd_call, "METHOD [JSON|@FILE|-]", "send any request, print the raw result" },
	{ "help", cmd_help, "", "this text" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	size_t w = 0, n;
	char buf[128];

	for (size_t i = 0; i < NCOMMANDS; i++) {
		n = strlen(commands[i].name) + (*commands[i].args ? 1 + strlen(commands[i].args) : 0);
		if (n > w && n <= 40)
			w = n;
	}
	fprintf(f, "Usage: egressctl [-s SOCKET] [-c CONFIG] [-t SECONDS] [--json] COMMAND [ARGS...]\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		snprintf(buf, sizeof(buf), "%s%s%s", commands[i].name, *commands[i].args ? " " : "",
			 commands[i].args);
		if (strlen(buf) > w)
			fprintf(f, "  %s\n  %-*s  %s\n", buf, (int)w, "", commands[i].help);
		else
			fprintf(f, "  %-*s  %s\n", (int)w, buf, commands[i].help);
	}
	fprintf(f, "\nOptions:\n"
		   "  -s, --socket SOCKET    the control socket; else $EGRESS_SOCKET, else CONFIG's\n"
		   "                         control.socket (or /run/egress/egress.sock), else\n"
		   "                         " DEFAULT_SOCKET "\n"
		   "  -c, --config CONFIG    the daemon's config file, for the socket path\n"
		   "  -t, --timeout SECONDS  wait this long for a reply (default %d, 0: forever)\n"
		   "  -j, --json             print results as JSON\n"
		   "  -h, --help             this text\n"
		   "  -V, --version          the version\n\n"
		   "Exit status: 0 on a result, 1 on an error reply, 2 when the daemon cannot be\n"
		   "reached, the reply is unreadable or the command line is wrong.\n",
		CTL_TIMEOUT_S);
}

static int cmd_help(struct ctl *c, int argc, char **argv)
{
	usage(stdout);
	return 0;
}

/* Only the two keys we need: the config need not be valid as a whole. */
static char *socket_from_config(const char *path)
{
	json_t *cfg, *v;
	json_error_t e;
	char *s;

	cfg = json_load_file(path, 0, &e);
	if (!cfg && e.line < 0)
		die(EXIT_LOCAL, "%s", e.text);
	if (!cfg)
		die(EXIT_LOCAL, "%s:%d:%d: %s", path, e.line, e.column, e.text);
	v = json_object_get(json_object_get(cfg, "control"), "socket");
	s = strdup(json_is_string(v) && json_string_length(v) ? json_string_value(v) : DEFAULT_SOCKET);
	json_decref(cfg);
	if (!s)
		die(EXIT_LOCAL, "out of memory");
	return s;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c = { .fd = -1, .timeout_ms = CTL_TIMEOUT_S * 1000 };
	const char *config = NULL, *env;
	const struct command *cmd = NULL;
	unsigned long secs;
	int opt, words = 0, nargs, rc;
	char **args;

	while ((opt = getopt_long(argc, argv, "+s:c:t:jhV", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			c.socket = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 't':
			if (!parse_uint(optarg, INT_MAX / 1000, &secs))
				die(EXIT_LOCAL, "bad timeout \"%s\" (seconds)", optarg);
			c.timeout_ms = secs ? (int)secs * 1000 : -1;
			break;
		case 'j':
			c.json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			puts("egressctl " EG_VERSION);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_LOCAL;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return EXIT_LOCAL;
	}
	/* --json is also taken after the command, where it is easy to append */
	nargs = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 && strcmp(argv[0], "call") != 0)
			c.json = true;
		else
			argv[nargs++] = argv[i];
	}
	argc = nargs;

	for (size_t i = 0; i < NCOMMANDS && !cmd; i++) {
		const char *name = commands[i].name, *sp = strchr(name, ' ');

		if (!sp && strcmp(argv[0], name) == 0) {
			cmd = &commands[i];
			words = 1;
		} else if (sp && argc >= 2 && strncmp(argv[0], name, (size_t)(sp - name)) == 0 &&
			   argv[0][sp - name] == '\0' && strcmp(argv[1], sp + 1) == 0) {
			cmd = &commands[i];
			words = 2;
		}
	}
	if (!cmd) {
		size_t len = strlen(argv[0]);
		bool noun = false;

		/* "egress" or "egress frob": show what egress takes */
		for (size_t i = 0; i < NCOMMANDS; i++) {
			if (strncmp(commands[i].name, argv[0], len) != 0 || commands[i].name[len] != ' ')
				continue;
			if (!noun)
				fprintf(stderr, "egressctl: %s%s%s: expected one of:\n", argv[0],
					argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
			noun = true;
			fprintf(stderr, "  egressctl %s%s%s\n", commands[i].name,
				*commands[i].args ? " " : "", commands[i].args);
		}
		if (!noun) {
			fprintf(stderr, "egressctl: unknown command \"%s\"\n\n", argv[0]);
			usage(stderr);
		}
		return EXIT_LOCAL;
	}

	if (!c.socket && (env = getenv("EGRESS_SOCKET")) && *env)
		c.socket = env;
	if (!c.socket)
		c.socket = config ? socket_from_config(config) : DEFAULT_SOCKET;

	args = argv + words;
	rc = cmd->fn(&c, argc - words, args);
	if (c.fd >= 0)
		close(c.fd);
	free(c.buf);
	if (rc < 0) {
		fprintf(stderr, "Usage: egressctl [options] %s%s%s\n", cmd->name,
			*cmd->args ? " " : "", cmd->args);
		return EXIT_LOCAL;
	}
	if (fflush(stdout) == EOF)
		die(EXIT_LOCAL, "stdout: %s", strerror(errno));
	return EXIT_OK;
}
