#include "metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net_addr.h"

#define REQUEST_MAX 4096	/* a scrape's request is a few hundred bytes */
#define CLIENT_TIMEOUT_MS 5000	/* to ask and to read the answer, together */

struct client {
	int fd;
	size_t in_len;
	char *out;		/* the whole answer once the request is in */
	size_t out_len, out_off;
	int64_t deadline_ms;
	char in[REQUEST_MAX];
};

struct cp_metrics_http {
	int fd;
	cp_metrics_render_fn render;
	void *ctx;
	struct client *clients[CP_METRICS_MAX_CLIENTS];
	unsigned n;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "host:port" or "[v6]:port" (the config checked the form; a host may be a name, such
 * as localhost) into a bound, listening socket. */
static int listen_on(const char *spec)
{
	char host[EG_ADDR_STR_LEN + 2];
	const char *port;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
	struct addrinfo *ai;
	int fd, one = 1, rc;

	if (eg_hostport_split(spec, host, sizeof(host), &port))
		return -EINVAL;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 16)) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return rc;
	}
	freeaddrinfo(ai);
	return fd;
}

struct cp_metrics_http *cp_metrics_http_open(const char *listen, cp_metrics_render_fn render, void *ctx)
{
	struct cp_metrics_http *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->fd = listen_on(listen);
	if (m->fd < 0) {
		fprintf(stderr, "egress-control: cannot serve metrics on %s: %s\n", listen, strerror(-m->fd));
		free(m);
		return NULL;
	}
	m->render = render;
	m->ctx = ctx;
	return m;
}

static void drop_client(struct cp_metrics_http *m, unsigned i)
{
	struct client *c = m->clients[i];

	close(c->fd);
	free(c->out);
	free(c);
	m->clients[i] = m->clients[--m->n];
}

static void answer(struct client *c, const char *status, const char *extra, const char *body, size_t body_len,
		   bool with_body)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return;
	fprintf(f, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n", status, extra, body_len);
	if (with_body)
		fwrite(body, 1, body_len, f);
	if (fclose(f) == 0) {
		c->out = out;
		c->out_len = len;
	} else {
		free(out);
	}
}

/* The request is in: GET (or HEAD) /metrics gets the exposition, anything else an error. */
static void respond(struct cp_metrics_http *m, struct client *c)
{
	char method[8] = "", target[64] = "";
	static const char not_found[] = "egress-control serves /metrics only\n";
	bool head;

	c->in[c->in_len < REQUEST_MAX ? c->in_len : REQUEST_MAX - 1] = '\0';
	if (sscanf(c->in, "%7s %63s HTTP/1.%*c", method, target) != 2) {
		answer(c, "400 Bad Request", "", "", 0, false);
		return;
	}
	head = strcmp(method, "HEAD") == 0;
	if (strcmp(method, "GET") != 0 && !head) {
		answer(c, "405 Method Not Allowed", "Allow: GET, HEAD\r\n", "", 0, false);
		return;
	}
	if (strcmp(target, "/metrics") != 0 && strncmp(target, "/metrics?", 9) != 0) {
		answer(c, "404 Not Found", "Content-Type: text/plain; charset=utf-8\r\n", not_found,
		       sizeof(not_found) - 1, true);
		return;
	}
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);

	if (!f) {
		answer(c, "500 Internal Server Error", "", "", 0, false);
		return;
	}
	m->render(m->ctx, f);
	if (fclose(f) != 0) {
		free(body);
		answer(c, "500 Internal Server Error", "", "", 0, false);
		return;
	}
	answer(c, "200 OK", "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n", body, len, !head);
	free(body);
}

static bool request_complete(const struct client *c)
{
	return memmem(c->in, c->in_len, "\r\n\r\n", 4) || memmem(c->in, c->in_len, "\n\n", 2);
}

/* false: the client is done with (answered in full, gone, or broken). */
static bool serve(struct cp_metrics_http *m, struct client *c, short revents)
{
	if (!c->out && (revents & (POLLIN | POLLHUP | POLLERR))) {
		ssize_t r = recv(c->fd, c->in + c->in_len, REQUEST_MAX - 1 - c->in_len, 0);

		if (r < 0)
			return errno == EAGAIN || errno == EINTR;
		if (r == 0)
			return false;	/* gone before asking */
		c->in_len += (size_t)r;
		if (request_complete(c))
			respond(m, c);
		else if (c->in_len >= REQUEST_MAX - 1)
			answer(c, "431 Request Header Fields Too Large", "", "", 0, false);
		if (!c->out)
			return c->in_len < REQUEST_MAX - 1;
	}
	if (c->out && c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (w < 0)
			return errno == EAGAIN || errno == EINTR;
		c->out_off += (size_t)w;
	}
	return !(c->out && c->out_off == c->out_len);
}

unsigned cp_metrics_http_pollfds(struct cp_metrics_http *m, struct pollfd *out)
{
	out[0] = (struct pollfd){.fd = m->n < CP_METRICS_MAX_CLIENTS ? m->fd : -1, .events = POLLIN};
	for (unsigned i = 0; i < m->n; i++)
		out[i + 1] = (struct pollfd){.fd = m->clients[i]->fd, .events = m->clients[i]->out ? POLLOUT : POLLIN};
	return m->n + 1;
}

void cp_metrics_http_handle(struct cp_metrics_http *m, const struct pollfd *pfds, unsigned n)
{
	int64_t now = now_ms();
	unsigned polled = n ? n - 1 : 0;	/* clients in pfds, after the listener */

	if (polled > m->n)
		polled = m->n;
	/* Clients first, from the last, so dropping one (swapped with the last) keeps the
	 * indexes of those still to look at. */
	for (unsigned i = polled; i-- > 0;) {
		struct client *c = m->clients[i];

		if ((pfds[i + 1].revents && !serve(m, c, pfds[i + 1].revents)) || now > c->deadline_ms)
			drop_client(m, i);
	}
	if (n && (pfds[0].revents & POLLIN)) {
		while (m->n < CP_METRICS_MAX_CLIENTS) {
			int fd = accept4(m->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			struct client *c;

			if (fd < 0)
				break;
			c = malloc(sizeof(*c));
			if (!c) {
				close(fd);
				break;
			}
			c->fd = fd;
			c->in_len = 0;
			c->out = NULL;
			c->out_len = c->out_off = 0;
			c->deadline_ms = now + CLIENT_TIMEOUT_MS;
			m->clients[m->n++] = c;
		}
	}
}


void cp_metrics_http_close(struct cp_metrics_http *m)
{
	if (!m)
		return;
	while (m->n)
		drop_client(m, m->n - 1);
	close(m->fd);
	free(m);
}
