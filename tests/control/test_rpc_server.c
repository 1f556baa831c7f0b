/* control/rpc_server.c: the server runs in a forked child on a socket in a mkdtemp
 * directory with a few fake methods; the test process is the client. Every wait is a
 * poll with a deadline. The child logs to server.log in that directory. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <jansson.h>

#include "rpc.h"

enum {
	WAIT_MS = 5000,		/* a reply that should come */
	QUIET_MS = 150,		/* a reply that should not */
	CHILD_LIFE_MS = 60000,	/* an orphaned server gives up by itself */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the server child and its fake methods ---- */

static struct cp_rpc_server *child_server;
static volatile sig_atomic_t child_stop;
static int bumps;

static void on_term(int sig)
{
	child_stop = 1;
}

static int m_echo(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	*result = params ? json_incref(params) : json_null();
	return 0;
}

static int m_need_x(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	json_t *x = json_object_get(params, "x");

	if (!json_is_integer(x))
		return cp_rpc_invalid(err, "$.params.x", "expected an integer, got %s",
				      x ? "something else" : "nothing");
	*result = json_pack("{s:I}", "x", json_integer_value(x));
	return 0;
}

static int m_broken(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	return -1;	/* forgets to say why */
}

static int m_app_error(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	return cp_rpc_fail(err, CP_RPC_NOT_FOUND, NULL, "no egress %s", "nyc");
}

static int m_bump(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	bumps++;
	*result = json_object();
	return 0;
}

static int m_bumps(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	*result = json_pack("{s:i}", "bumps", bumps);
	return 0;
}

/* {"n": N} -> a string of N 'x' */
static int m_blob(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	json_int_t n = json_integer_value(json_object_get(params, "n"));
	char *b;

	if (n <= 0 || n > (64 << 20))
		return cp_rpc_invalid(err, "$.params.n", "out of range");
	b = malloc((size_t)n);
	memset(b, 'x', (size_t)n);
	*result = json_stringn_nocheck(b, (size_t)n);
	free(b);
	return 0;
}

/* {"type": T, "params": P} -> cp_rpc_server_notify(T, P) */
static int m_emit(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	const char *type = json_string_value(json_object_get(params, "type"));

	if (!type)
		return cp_rpc_invalid(err, "$.params.type", "expected a string");
	cp_rpc_server_notify(child_server, type, json_deep_copy(json_object_get(params, "params")));
	*result = json_object();
	return 0;
}

static int m_clients(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	*result = json_pack("{s:i}", "clients", (int)cp_rpc_server_clients(child_server));
	return 0;
}

static const struct cp_rpc_method methods[] = {
	{ "echo", m_echo, "returns its params" },
	{ "need_x", m_need_x, "wants {\"x\": integer}" },
	{ "broken", m_broken, "fails without a reason" },
	{ "app_error", m_app_error, "fails with -32002" },
	{ "bump", m_bump, "counts calls" },
	{ "bumps", m_bumps, "how many bumps" },
	{ "blob", m_blob, "a big result" },
	{ "emit", m_emit, "sends a notification" },
	{ "clients", m_clients, "connected clients" },
	{ NULL },
};

struct srv {
	pid_t pid;
	char dir[64];
	char path[PATH_MAX];
	char log[PATH_MAX];
};

static struct srv S;

/* too_many_clients needs CP_RPC_MAX_CLIENTS fds and then some, on both sides */
static bool raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return false;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= CP_RPC_MAX_CLIENTS + 128;
}

static pid_t spawn_server(const char *path, const char *log)
{
	struct pollfd p;
	int fds[2], e = -1;
	pid_t pid;

	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct cp_rpc_server_opts o = { .path = path, .mode = 0660, .methods = methods };
		struct sigaction sa = { .sa_handler = on_term };
		int64_t deadline = now_ms() + CHILD_LIFE_MS;
		int fd;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		raise_fd_limit();
		close(fds[0]);
		sigaction(SIGTERM, &sa, NULL);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
		child_server = cp_rpc_server_open(&o);
		e = child_server ? 0 : errno;
		if (write(fds[1], &e, sizeof(e)) != sizeof(e) || !child_server)
			_exit(1);
		close(fds[1]);
		while (!child_stop && now_ms() < deadline)
			if (cp_rpc_server_poll(child_server, 50) < 0)
				_exit(2);
		cp_rpc_server_close(child_server);
		_exit(0);
	}
	close(fds[1]);
	p = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	cr_assert_eq(poll(&p, 1, WAIT_MS), 1, "server did not start");
	cr_assert_eq(read(fds[0], &e, sizeof(e)), (ssize_t)sizeof(e));
	close(fds[0]);
	cr_assert_eq(e, 0, "cp_rpc_server_open: %s", strerror(e));
	return pid;
}

static int reap(pid_t pid, int sig)
{
	int st = 0;
	int64_t deadline = now_ms() + WAIT_MS;

	kill(pid, sig);
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		poll(NULL, 0, 5);
	}
	return st;
}

static void setup(void)
{
	strcpy(S.dir, "/tmp/test_rpc_server.XXXXXX");
	cr_assert(mkdtemp(S.dir));
	/* two levels the server has to create */
	snprintf(S.path, sizeof(S.path), "%s/run/egress/ctl.sock", S.dir);
	snprintf(S.log, sizeof(S.log), "%s/server.log", S.dir);
	S.pid = spawn_server(S.path, S.log);
}

static void teardown(void)
{
	char cmd[PATH_MAX + 16];

	if (S.pid > 0)
		reap(S.pid, SIGTERM);
	S.pid = 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", S.dir);
	if (getenv("RPC_TEST_KEEP"))
		fprintf(stderr, "kept %s\n", S.dir);
	else if (S.dir[0] && system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", S.dir);
}

static long status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	cr_assert(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, strlen(field)) == 0)
			kb = strtol(line + strlen(field), NULL, 10);
	fclose(f);
	cr_assert(kb >= 0, "no %s in %s", field, path);
	return kb;
}

/* ---- the client side ---- */

struct conn {
	int fd;
	char *buf;
	size_t len, cap;
};

static int try_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0);
	cr_assert(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void conn_open(struct conn *c)
{
	*c = (struct conn){ .fd = try_connect(S.path) };
	cr_assert(c->fd >= 0, "connect %s: %s", S.path, strerror(errno));
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	*c = (struct conn){ .fd = -1 };
}

static void send_raw(struct conn *c, const void *p, size_t n)
{
	int64_t deadline = now_ms() + WAIT_MS;
	struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
	ssize_t k;

	while (n) {
		cr_assert(now_ms() < deadline, "send stalled");
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		k = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		cr_assert(k > 0, "send: %s", strerror(errno));
		p = (const char *)p + k;
		n -= (size_t)k;
	}
}

/* Sends until done or the server hangs up; returns what the kernel took. */
static size_t send_until_hangup(struct conn *c, const char *p, size_t n)
{
	int64_t deadline = now_ms() + WAIT_MS;
	struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
	size_t sent = 0;
	ssize_t k;

	while (sent < n) {
		cr_assert(now_ms() < deadline, "stuck after %zu bytes", sent);
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		k = send(c->fd, p + sent, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (k < 0 && (errno == EPIPE || errno == ECONNRESET))
			break;
		cr_assert(k > 0, "send: %s", strerror(errno));
		sent += (size_t)k;
	}
	return sent;
}

static void send_str(struct conn *c, const char *s)
{
	send_raw(c, s, strlen(s));
}

/* 1: a line in *out (malloc'd, without '\n'); 0: none within timeout_ms; -1: hung up */
static int read_line(struct conn *c, int timeout_ms, char **out)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	char *nl;
	ssize_t n;
	int left;

	for (;;) {
		nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			size_t k = (size_t)(nl - c->buf);

			*out = strndup(c->buf, k);
			memmove(c->buf, nl + 1, c->len - k - 1);
			c->len -= k + 1;
			return 1;
		}
		left = (int)(deadline - now_ms());
		if (poll(&pfd, 1, left > 0 ? left : 0) == 0)
			return 0;
		if (c->cap - c->len < 65536) {
			c->cap = c->cap ? c->cap * 2 : 65536;
			c->buf = realloc(c->buf, c->cap);
			cr_assert(c->buf);
		}
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return -1;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		cr_assert(n > 0, "recv: %s", strerror(errno));
		c->len += (size_t)n;
	}
}

static char *recv_line(struct conn *c)
{
	char *line = NULL;
	int rc = read_line(c, WAIT_MS, &line);

	cr_assert_eq(rc, 1, "%s", rc ? "connection closed, expected a line" : "no reply in time");
	return line;
}

static json_t *recv_json(struct conn *c)
{
	char *line = recv_line(c);
	json_error_t jerr;
	json_t *j = json_loads(line, 0, &jerr);

	cr_assert(j, "reply is not JSON (%s): %.200s", jerr.text, line);
	free(line);
	return j;
}

static json_t *call(struct conn *c, const char *req)
{
	send_str(c, req);
	send_str(c, "\n");
	return recv_json(c);
}

static void expect_quiet(struct conn *c)
{
	char *line = NULL;
	int rc = read_line(c, QUIET_MS, &line);

	cr_assert_eq(rc, 0, "expected silence, got %s", rc > 0 ? line : "a hangup");
}

static void expect_hangup(struct conn *c)
{
	char *line = NULL;
	int rc;

	while ((rc = read_line(c, WAIT_MS, &line)) == 1)
		free(line);
	cr_assert_eq(rc, -1, "the server did not close the connection");
}

static char *dump(const json_t *j)
{
	return j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("(absent)");
}

/* id_json: the expected id as JSON text; data NULL when the error must carry none */
static void expect_error(json_t *r, const char *id_json, int code, const char *data)
{
	json_t *e = json_object_get(r, "error");
	char *id = dump(json_object_get(r, "id")), *all = dump(r);

	cr_assert_str_eq(json_string_value(json_object_get(r, "jsonrpc")), "2.0", "%s", all);
	cr_assert_str_eq(id, id_json, "%s", all);
	cr_assert(json_is_object(e), "no error in %s", all);
	cr_assert_null(json_object_get(r, "result"), "%s", all);
	cr_assert_eq(json_integer_value(json_object_get(e, "code")), code, "%s", all);
	cr_assert(json_string_length(json_object_get(e, "message")) > 0, "%s", all);
	if (data)
		cr_assert_str_eq(json_string_value(json_object_get(e, "data")), data, "%s", all);
	else
		cr_assert_null(json_object_get(e, "data"), "%s", all);
	free(id);
	free(all);
}

static json_t *expect_result(json_t *r, const char *id_json)
{
	char *id = dump(json_object_get(r, "id")), *all = dump(r);

	cr_assert_str_eq(id, id_json, "%s", all);
	cr_assert_null(json_object_get(r, "error"), "%s", all);
	cr_assert(json_object_get(r, "result"), "%s", all);
	free(id);
	free(all);
	return json_object_get(r, "result");
}

static int clients_now(struct conn *c)
{
	json_t *r = call(c, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"clients\"}");
	int n = (int)json_integer_value(json_object_get(expect_result(r, "0"), "clients"));

	json_decref(r);
	return n;
}

/* ---- tests ---- */

TestSuite(rpc_server, .init = setup, .fini = teardown, .timeout = 15);

Test(rpc_server, request_response)
{
	struct conn c;
	char *line;

	conn_open(&c);
	send_str(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":{\"a\":1}}\n");
	line = recv_line(&c);
	cr_assert_str_eq(line, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":1}}");
	free(line);

	send_str(&c, "{\"id\":\"x\",\"method\":\"need_x\",\"jsonrpc\":\"2.0\",\"params\":{\"x\":\"no\"}}\n");
	line = recv_line(&c);
	cr_assert_str_eq(line, "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"error\":{\"code\":-32602,"
			 "\"message\":\"expected an integer, got something else\",\"data\":\"$.params.x\"}}");
	free(line);
	conn_close(&c);
}

Test(rpc_server, peer_logged_at_accept)
{
	char want[64], text[4096] = "";
	struct conn c;
	json_t *r;
	FILE *f;

	conn_open(&c);
	r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}");
	expect_result(r, "1");
	json_decref(r);
	f = fopen(S.log, "r");
	cr_assert(f);
	cr_assert(fread(text, 1, sizeof(text) - 1, f) > 0);
	fclose(f);
	snprintf(want, sizeof(want), "uid %u gid %u pid %d", (unsigned)getuid(),
		 (unsigned)getgid(), (int)getpid());
	cr_assert(strstr(text, want), "no \"%s\" in the log:\n%s", want, text);
	conn_close(&c);
}

Test(rpc_server, pipelined_in_order)
{
	static const char reqs[] =
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"one\"]}\n"
		"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"nope\"}\r\n"
		"\n"
		"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\",\"params\":[\"three\"]}\r\n"
		"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"need_x\",\"params\":{\"x\":4}}\n";
	struct conn c;
	json_t *r;

	conn_open(&c);
	send_str(&c, reqs);
	r = recv_json(&c);
	cr_assert_str_eq(json_string_value(json_array_get(expect_result(r, "1"), 0)), "one");
	json_decref(r);
	r = recv_json(&c);
	expect_error(r, "2", CP_RPC_METHOD_NOT_FOUND, "nope");
	json_decref(r);
	r = recv_json(&c);
	cr_assert_str_eq(json_string_value(json_array_get(expect_result(r, "3"), 0)), "three");
	json_decref(r);
	r = recv_json(&c);
	cr_assert_eq(json_integer_value(json_object_get(expect_result(r, "4"), "x")), 4);
	json_decref(r);
	expect_quiet(&c);	/* the blank line is not a request */
	conn_close(&c);
}

Test(rpc_server, many_pipelined)
{
	enum { N = 2000 };
	char *all = malloc(N * 64), *p = all, *line;
	struct conn c;

	for (int i = 0; i < N; i++)
		p += sprintf(p, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"echo\"}\n", i);
	conn_open(&c);
	send_raw(&c, all, (size_t)(p - all));
	for (int i = 0; i < N; i++) {
		char want[64];

		snprintf(want, sizeof(want), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":null}", i);
		line = recv_line(&c);
		cr_assert_str_eq(line, want);
		free(line);
	}
	free(all);
	conn_close(&c);
}

Test(rpc_server, notifications_get_no_reply)
{
	struct conn c;
	json_t *r;

	conn_open(&c);
	send_str(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"bump\"}\n"
		     "{\"jsonrpc\":\"2.0\",\"method\":\"bump\",\"params\":{}}\n"
		     "{\"jsonrpc\":\"2.0\",\"method\":\"no.such.method\"}\n"
		     "{\"jsonrpc\":\"2.0\",\"method\":\"need_x\",\"params\":{}}\n");
	r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"bumps\"}");
	cr_assert_eq(json_integer_value(json_object_get(expect_result(r, "7"), "bumps")), 2);
	json_decref(r);
	expect_quiet(&c);

	/* "id": null is a request, not a notification */
	r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"bump\"}");
	expect_result(r, "null");
	json_decref(r);
	conn_close(&c);
}

Test(rpc_server, parse_errors)
{
	static const char *const bad[] = {
		/* 0 */ "{\"jsonrpc\":\"2.0\",",
		/* 1 */ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"\xff\xfe\"]}",
		/* 2 */ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"\xc3\"]}",
		/* 3 */ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"\xed\xa0\x80\"]}",
		/* 4 */ "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"echo\"}",
		/* 5 */ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"} trailing",
		/* 6 */ "nul",
		/* 7 */ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"\\u0000\"]}",
	};
	struct conn c;
	json_t *r;

	conn_open(&c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = call(&c, bad[i]);
		expect_error(r, "null", CP_RPC_PARSE_ERROR, NULL);
		json_decref(r);
	}
	/* the connection survives all of them */
	r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":\"ok\",\"method\":\"echo\",\"params\":[\"\xc3\xa9\"]}");
	cr_assert_str_eq(json_string_value(json_array_get(expect_result(r, "\"ok\""), 0)), "\xc3\xa9");
	json_decref(r);
	conn_close(&c);
}

Test(rpc_server, invalid_requests)
{
	static const struct {
		const char *req, *id, *data;
	} bad[] = {
		/* 0 */ { "[1,2]", "null", "$" },
		/* 1 */ { "[]", "null", "$" },
		/* 2 */ { "\"status\"", "null", "$" },
		/* 3 */ { "42", "null", "$" },
		/* 4 */ { "{\"id\":1,\"method\":\"echo\"}", "1", "$.jsonrpc" },
		/* 5 */ { "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"echo\"}", "1", "$.jsonrpc" },
		/* 6 */ { "{\"jsonrpc\":2.0,\"id\":1,\"method\":\"echo\"}", "1", "$.jsonrpc" },
		/* 7 */ { "{\"jsonrpc\":\"2.0\",\"id\":1}", "1", "$.method" },
		/* 8 */ { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", "1", "$.method" },
		/* 9 */ { "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"echo\"}", "null", "$.id" },
		/* 10 */ { "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"echo\"}", "null", "$.id" },
		/* 11 */ { "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"echo\"}", "null", "$.id" },
		/* 12 */ { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":\"x\"}", "1", "$.params" },
		/* 13 */ { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":3}", "1", "$.params" },
		/* 14 */ { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":null}", "1", "$.params" },
		/* 15: invalid even without an id, so answered */
		/* 15 */ { "{\"jsonrpc\":\"2.0\",\"method\":5}", "null", "$.method" },
		/* 16 */ { "{\"jsonrpc\":\"2.0\",\"id\":2.5,\"method\":5}", "2.5", "$.method" },
	};
	struct conn c;
	json_t *r;

	conn_open(&c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = call(&c, bad[i].req);
		expect_error(r, bad[i].id, CP_RPC_INVALID_REQUEST, bad[i].data);
		json_decref(r);
	}
	conn_close(&c);
}

Test(rpc_server, method_errors)
{
	struct conn c;
	json_t *r;

	conn_open(&c);
	r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"policy.frobnicate\"}");
	expect_error(r, "1", CP_RPC_METHOD_NOT_FOUND, "policy.frobnicate");
	json_decref(r);

	r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"need_x\",\"params\":{\"y\":1}}");
	expect_error(r, "2", CP_RPC_INVALID_PARAMS, "$.params.x");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
			 "expected an integer, got nothing");
	json_decref(r);

	r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"need_x\"}");
	expect_error(r, "3", CP_RPC_INVALID_PARAMS, "$.params.x");
	json_decref(r);

	r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"app_error\"}");
	expect_error(r, "4", CP_RPC_NOT_FOUND, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
			 "no egress nyc");
	json_decref(r);

	r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"broken\"}");
	expect_error(r, "5", CP_RPC_INTERNAL_ERROR, NULL);
	json_decref(r);

	r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"rpc.methods\"}");
	{
		json_t *list = json_object_get(expect_result(r, "6"), "methods"), *m;
		size_t i;
		bool echo = false, sub = false;

		json_array_foreach(list, i, m) {
			const char *name = json_string_value(json_object_get(m, "name"));

			echo |= name && strcmp(name, "echo") == 0;
			sub |= name && strcmp(name, "events.subscribe") == 0;
			cr_assert(json_is_string(json_object_get(m, "help")));
		}
		cr_assert(echo && sub);
	}
	json_decref(r);
	conn_close(&c);
}

static char *nested(size_t levels, const char *id)
{
	size_t n = levels * 2 + 128;
	char *s = malloc(n), *p = s;

	p += sprintf(p, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"echo\",\"params\":", id);
	memset(p, '[', levels);
	p += levels;
	memset(p, ']', levels);
	p += levels;
	strcpy(p, "}");
	return s;
}

Test(rpc_server, nesting_depth)
{
	struct conn c;
	char *req;
	json_t *r;

	conn_open(&c);
	/* the request object is level 1: params of 63 levels make 64 in all */
	req = nested(CP_RPC_MAX_DEPTH - 1, "1");
	r = call(&c, req);
	expect_result(r, "1");
	json_decref(r);
	free(req);

	req = nested(CP_RPC_MAX_DEPTH, "2");
	r = call(&c, req);
	expect_error(r, "null", CP_RPC_INVALID_REQUEST, NULL);
	json_decref(r);
	free(req);

	req = nested(400000, "3");	/* 800 kB of brackets: refused without recursion */
	r = call(&c, req);
	expect_error(r, "null", CP_RPC_INVALID_REQUEST, NULL);
	json_decref(r);
	free(req);

	/* brackets inside strings, escaped quotes included, are not nesting */
	{
		char s[512] = "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"echo\",\"params\":[\"\\\"";

		memset(s + strlen(s), '[', 200);
		strcat(s, "\"]}");
		r = call(&c, s);
		expect_result(r, "4");
		json_decref(r);
	}
	conn_close(&c);
}

Test(rpc_server, long_line_refused_and_closed)
{
	enum { TOTAL = 4 << 20 };	/* a server that buffered it all would grow by this */
	static char chunk[64 << 10];
	struct conn a, b;
	struct pollfd pfd;
	long rss0, hwm0, hwm1;
	size_t sent = 0;
	int64_t deadline;
	json_t *r;
	ssize_t k;

	conn_open(&b);
	r = call(&b, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}");
	json_decref(r);
	rss0 = status_kb(S.pid, "VmRSS:");
	hwm0 = status_kb(S.pid, "VmHWM:");

	conn_open(&a);
	memset(chunk, 'a', sizeof(chunk));
	deadline = now_ms() + WAIT_MS;
	pfd = (struct pollfd){ .fd = a.fd, .events = POLLOUT | POLLIN };
	/* send up to 4 MiB with no newline until the server answers or hangs up */
	while (sent < TOTAL) {
		cr_assert(now_ms() < deadline, "stuck after %zu bytes", sent);
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (pfd.revents & POLLIN)
			break;
		k = send(a.fd, chunk, sizeof(chunk), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (k < 0 && (errno == EPIPE || errno == ECONNRESET))
			break;
		cr_assert(k > 0, "send: %s", strerror(errno));
		sent += (size_t)k;
	}
	cr_assert(sent > CP_RPC_MAX_LINE, "server answered after only %zu bytes", sent);
	r = recv_json(&a);
	expect_error(r, "null", CP_RPC_INVALID_REQUEST, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
			 "request line exceeds 1 MiB");
	json_decref(r);
	expect_hangup(&a);
	conn_close(&a);

	/* the other client was served throughout and still is */
	r = call(&b, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}");
	expect_result(r, "2");
	json_decref(r);
	hwm1 = status_kb(S.pid, "VmHWM:");
#ifndef __SANITIZE_ADDRESS__	/* ASan's quarantine keeps every realloc'd buffer resident */
	/* 1 MiB + one read chunk is the bound; allow for allocator slack */
	cr_assert(hwm1 - (rss0 > hwm0 ? hwm0 : rss0) < 2560,
		  "server peak RSS grew by %ld kB for one long line", hwm1 - rss0);
#else
	(void)rss0, (void)hwm0, (void)hwm1;
#endif
	conn_close(&b);
}

Test(rpc_server, oversized_complete_line)
{
	size_t n = CP_RPC_MAX_LINE + 100;
	char *req = malloc(n + 1);
	struct conn a;
	json_t *r;

	/* a complete line arriving in one go is measured too */
	memset(req, ' ', n);
	memcpy(req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}",
	       strlen("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}"));
	req[n - 1] = '\n';
	req[n] = '\0';
	conn_open(&a);
	send_until_hangup(&a, req, n);
	r = recv_json(&a);
	expect_error(r, "null", CP_RPC_INVALID_REQUEST, NULL);
	json_decref(r);
	expect_hangup(&a);
	conn_close(&a);
	free(req);
}

Test(rpc_server, stalled_half_line)
{
	struct conn a, b;
	int64_t t0;
	json_t *r;

	conn_open(&a);
	conn_open(&b);
	send_str(&a, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"echo\",\"params\":[");
	t0 = now_ms();
	r = call(&b, "{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"method\":\"echo\"}");
	expect_result(r, "\"b\"");
	json_decref(r);
	cr_assert(now_ms() - t0 < 1000, "b waited %lld ms", (long long)(now_ms() - t0));
	expect_quiet(&a);
	send_str(&a, "1]}\n");
	r = recv_json(&a);
	cr_assert_eq(json_integer_value(json_array_get(expect_result(r, "\"a\""), 0)), 1);
	json_decref(r);
	conn_close(&a);
	conn_close(&b);
}

/* A client that connects and hangs up without a byte: its EOF comes before it has any input
 * buffer, and the server must not scan that absent buffer (UBSan, which halts the server in
 * the sanitized run, caught memchr on a null pointer there). */
Test(rpc_server, hangup_before_any_byte)
{
	struct conn b;
	json_t *r;

	for (int i = 0; i < 3; i++) {
		int fd = try_connect(S.path);

		cr_assert(fd >= 0);
		close(fd);
	}
	conn_open(&b);
	r = call(&b, "{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"method\":\"echo\"}");
	expect_result(r, "\"b\"");
	json_decref(r);
	conn_close(&b);
}

Test(rpc_server, last_line_without_newline_at_eof)
{
	struct conn a;
	json_t *r;

	conn_open(&a);
	send_str(&a, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}\n"
		     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}");
	shutdown(a.fd, SHUT_WR);
	r = recv_json(&a);
	expect_result(r, "1");
	json_decref(r);
	r = recv_json(&a);
	expect_result(r, "2");
	json_decref(r);
	expect_hangup(&a);
	conn_close(&a);
}

Test(rpc_server, everything_sent_before_eof_runs)
{
	enum { N = 500 };	/* many rounds' worth of lines */
	static char reqs[N * 48];
	struct conn a, b;
	json_t *r;

	conn_open(&a);
	conn_open(&b);
	for (int i = 0; i < N; i++)
		strcat(reqs, "{\"jsonrpc\":\"2.0\",\"method\":\"bump\"}\n");
	send_str(&a, reqs);
	shutdown(a.fd, SHUT_WR);
	expect_hangup(&a);	/* notifications only: no replies, then the close */
	r = call(&b, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"bumps\"}");
	cr_assert_eq(json_integer_value(json_object_get(expect_result(r, "1"), "bumps")), N);
	json_decref(r);
	conn_close(&a);
	conn_close(&b);
}

Test(rpc_server, client_that_never_reads_is_dropped)
{
	enum { N = 24 };	/* 24 MiB of replies, three times the output cap */
	struct conn a, b;
	int64_t deadline;
	char *line = NULL;
	int n = -1, lines = 0, rc;
	static char reqs[N * 80];

	conn_open(&b);
	conn_open(&a);
	json_decref(call(&a, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"echo\"}"));
	cr_assert_eq(clients_now(&b), 2);
	/* in one send: the server may drop a before a second one */
	for (int i = 0; i < N; i++)
		strcat(reqs, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"blob\",\"params\":{\"n\":1048576}}\n");
	send_str(&a, reqs);
	deadline = now_ms() + WAIT_MS;
	while (now_ms() < deadline) {
		int64_t t0 = now_ms();

		n = clients_now(&b);
		cr_assert(now_ms() - t0 < 1000, "b waited %lld ms", (long long)(now_ms() - t0));
		if (n == 1)
			break;
		poll(NULL, 0, 20);
	}
	cr_assert_eq(n, 1, "the non-reading client is still connected");
	while ((rc = read_line(&a, WAIT_MS, &line)) == 1) {
		free(line);
		lines++;
	}
	cr_assert_eq(rc, -1, "rc %d after %d lines, %zu bytes pending", rc, lines, a.len);
	cr_assert(lines < N, "all %d replies arrived", lines);
	conn_close(&a);
	conn_close(&b);
}

Test(rpc_server, events_subscribe)
{
	struct conn sub, all, e;
	json_t *r, *p;
	char *line;

	conn_open(&sub);
	conn_open(&all);
	conn_open(&e);
	r = call(&sub, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\","
		       "\"params\":{\"types\":[\"egress.state\",\"wg.handshake\"]}}");
	line = json_dumps(expect_result(r, "1"), JSON_COMPACT);
	cr_assert_str_eq(line, "{\"subscribed\":[\"egress.state\",\"wg.handshake\"]}");
	free(line);
	json_decref(r);
	r = call(&all, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}");
	cr_assert_str_eq(json_string_value(json_object_get(expect_result(r, "1"), "subscribed")), "all");
	json_decref(r);

	r = call(&e, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"emit\",\"params\":"
		     "{\"type\":\"policy.applied\",\"params\":{\"generation\":3}}}");
	expect_result(r, "2");
	json_decref(r);
	r = call(&e, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"emit\",\"params\":"
		     "{\"type\":\"egress.state\",\"params\":{\"name\":\"wg-fra\",\"state\":\"down\"}}}");
	expect_result(r, "3");
	json_decref(r);

	line = recv_line(&sub);
	cr_assert_str_eq(line, "{\"jsonrpc\":\"2.0\",\"method\":\"egress.state\","
			       "\"params\":{\"name\":\"wg-fra\",\"state\":\"down\"}}");
	free(line);
	expect_quiet(&sub);

	r = recv_json(&all);
	cr_assert_str_eq(json_string_value(json_object_get(r, "method")), "policy.applied");
	cr_assert_null(json_object_get(r, "id"));
	json_decref(r);
	r = recv_json(&all);
	cr_assert_str_eq(json_string_value(json_object_get(r, "method")), "egress.state");
	json_decref(r);
	expect_quiet(&e);	/* not subscribed */

	/* a subscribed connection still takes requests */
	r = call(&sub, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"echo\",\"params\":[4]}");
	expect_result(r, "4");
	json_decref(r);

	/* bad subscriptions name the field */
	r = call(&e, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"events.subscribe\",\"params\":{\"types\":\"x\"}}");
	expect_error(r, "5", CP_RPC_INVALID_PARAMS, "$.params.types");
	json_decref(r);
	r = call(&e, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"events.subscribe\",\"params\":{\"types\":[\"a\",2]}}");
	expect_error(r, "6", CP_RPC_INVALID_PARAMS, "$.params.types[1]");
	json_decref(r);
	r = call(&e, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"events.subscribe\",\"params\":{\"types\":[]}}");
	expect_error(r, "7", CP_RPC_INVALID_PARAMS, "$.params.types");
	json_decref(r);
	r = call(&e, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"events.subscribe\",\"params\":{\"typo\":[]}}");
	expect_error(r, "8", CP_RPC_INVALID_PARAMS, "$.params.typo");
	json_decref(r);

	/* a failed subscribe left e unsubscribed */
	send_str(&sub, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"emit\",\"params\":"
		       "{\"type\":\"wg.handshake\",\"params\":{\"peer\":\"fra\"}}}\n");
	p = recv_json(&sub);	/* raised inside the call: it comes before the reply */
	cr_assert_str_eq(json_string_value(json_object_get(p, "method")), "wg.handshake");
	json_decref(p);
	r = recv_json(&sub);
	expect_result(r, "9");
	json_decref(r);
	expect_quiet(&e);

	conn_close(&sub);
	conn_close(&all);
	conn_close(&e);
}

Test(rpc_server, socket_file)
{
	char dir[PATH_MAX];
	struct stat st;

	cr_assert_eq(stat(S.path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0660, "mode %o", st.st_mode & 07777);
	snprintf(dir, sizeof(dir), "%s/run/egress", S.dir);
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0750, "dir mode %o", st.st_mode & 07777);

	/* SIGTERM: the child closes the server, which unlinks the socket */
	reap(S.pid, SIGTERM);
	S.pid = 0;
	cr_assert_eq(stat(S.path, &st), -1);
	cr_assert_eq(errno, ENOENT);
}

Test(rpc_server, stale_and_live_sockets)
{
	struct cp_rpc_server_opts o = { .path = S.path, .mode = 0660, .methods = methods };
	struct cp_rpc_server *s;
	char other[PATH_MAX];
	struct stat st;
	int fd;

	/* a live server keeps its socket */
	errno = 0;
	cr_assert_null(cp_rpc_server_open(&o));
	cr_assert_eq(errno, EADDRINUSE);

	/* a dead one leaves a stale file, which is replaced */
	reap(S.pid, SIGKILL);
	S.pid = 0;
	cr_assert_eq(stat(S.path, &st), 0, "SIGKILL should leave the socket file");
	s = cp_rpc_server_open(&o);
	cr_assert_not_null(s);
	fd = try_connect(S.path);
	cr_assert(fd >= 0);
	cr_assert_eq(cp_rpc_server_poll(s, 100), 0);
	cr_assert_eq(cp_rpc_server_clients(s), 1);
	close(fd);
	cp_rpc_server_close(s);
	cr_assert_eq(stat(S.path, &st), -1);

	/* a regular file is not ours to remove */
	snprintf(other, sizeof(other), "%s/plain", S.dir);
	fd = open(other, O_WRONLY | O_CREAT, 0600);
	cr_assert(fd >= 0);
	close(fd);
	o.path = other;
	errno = 0;
	cr_assert_null(cp_rpc_server_open(&o));
	cr_assert_eq(errno, EEXIST);
	cr_assert_eq(stat(other, &st), 0);

	snprintf(other, sizeof(other), "%s/g.sock", S.dir);
	o.group = "no-such-group-egress-test";
	cr_assert_null(cp_rpc_server_open(&o));
	cr_assert_eq(stat(other, &st), -1);
}

Test(rpc_server, too_many_clients, .timeout = 20)
{
	enum { N = CP_RPC_MAX_CLIENTS };
	static int fds[N];
	struct conn c, extra;
	char text[1 << 16] = "";
	int64_t deadline;
	char *line = NULL;
	size_t len;
	FILE *f;

	if (!raise_fd_limit())
		cr_skip_test("RLIMIT_NOFILE too low for %d clients", N);
	conn_open(&c);		/* client 1 */
	for (int i = 1; i < N; i++) {
		fds[i] = try_connect(S.path);
		cr_assert(fds[i] >= 0, "connect %d: %s", i, strerror(errno));
	}
	deadline = now_ms() + WAIT_MS;
	while (clients_now(&c) < N)
		cr_assert(now_ms() < deadline, "server did not take %d clients", N);

	/* the extras are accepted and closed at once */
	for (int k = 0; k < 3; k++) {
		extra = (struct conn){ .fd = try_connect(S.path) };
		cr_assert(extra.fd >= 0);
		cr_assert_eq(read_line(&extra, WAIT_MS, &line), -1, "extra client %d not closed", k);
		conn_close(&extra);
	}
	/* everyone else is still served */
	cr_assert_eq(clients_now(&c), N);

	/* a freed slot is usable again */
	close(fds[N - 1]);
	deadline = now_ms() + WAIT_MS;
	while (clients_now(&c) >= N)
		cr_assert(now_ms() < deadline, "server did not notice a hangup");
	conn_open(&extra);
	cr_assert_eq(clients_now(&extra), N);
	conn_close(&extra);
	for (int i = 1; i < N - 1; i++)
		close(fds[i]);
	conn_close(&c);

	/* the log holds over 64 KiB of accept lines; the refusals are in its tail */
	f = fopen(S.log, "r");
	cr_assert(f);
	fseek(f, 0, SEEK_END);
	fseek(f, ftell(f) > (long)sizeof(text) - 1 ? ftell(f) - (long)(sizeof(text) - 1) : 0, SEEK_SET);
	len = fread(text, 1, sizeof(text) - 1, f);
	text[len] = '\0';
	fclose(f);
	{
		const char *first = strstr(text, "refusing new connections");

		cr_assert(first, "no refusal logged");
		cr_assert_null(strstr(first + 1, "refusing new connections"), "refusal logged twice");
		cr_assert(strstr(text, "refused 3 connections while full"));
	}
}
