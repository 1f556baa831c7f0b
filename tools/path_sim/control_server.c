#include "control_server.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *path, const char *what)
{
	snprintf(err, errlen, "%s: %s: %s", path ? path : "?", what, strerror(errno));
	return -1;
}

/* A socket file is stale when nothing accepts on it any more (a simulator that was
 * killed): connect() is refused then. */
static bool is_stale_socket(const struct sockaddr_un *addr)
{
	struct stat st;
	int fd, refused;

	if (lstat(addr->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	refused = connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 && errno == ECONNREFUSED;
	close(fd);
	return refused;
}

int control_server_open(struct control_server *s, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old_umask;
	int rc;

	memset(s, 0, sizeof(*s));
	s->listen_fd = -1;
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "%s: control socket path too long (at most %zu bytes)", path,
			 sizeof(addr.sun_path) - 1);
		return -1;
	}
	strcpy(addr.sun_path, path);
	strcpy(s->path, path);

	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0)
		return fail(err, errlen, path, "socket");
	/* The mode is set by bind() itself: a chmod() afterwards would leave a moment in
	 * which anyone could connect and change the path. */
	old_umask = umask(0177);
	rc = bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr));
	if (rc < 0 && errno == EADDRINUSE && is_stale_socket(&addr) && unlink(path) == 0)
		rc = bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old_umask);
	if (rc < 0) {
		fail(err, errlen, path, errno == EADDRINUSE ? "bind (in use by a live process, or not a socket)" : "bind");
		goto close;
	}
	if (lstat(path, &st) < 0 || listen(s->listen_fd, CONTROL_MAX_CLIENTS) < 0) {
		fail(err, errlen, path, "listen");
		unlink(path);
		goto close;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	return 0;

close:
	close(s->listen_fd);
	s->listen_fd = -1;
	return -1;
}

void control_server_pollfds(const struct control_server *s, struct pollfd *pfds)
{
	pfds[0] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		pfds[1 + i] = (struct pollfd){ .fd = s->clients[i].fd, .events = POLLIN };
}

static void hang_up(struct control_client *c)
{
	close(c->fd);
	c->fd = -1;
	c->used = 0;
}

/* Replies are small and the socket buffer empty in any sane exchange: a client that lets
 * replies pile up unread is dropped rather than waited for. */
static bool reply_to(struct control_client *c, const char *reply)
{
	size_t len = strlen(reply);

	return send(c->fd, reply, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len;
}

static void accept_client(struct control_server *s)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		if (s->clients[i].fd < 0) {
			s->clients[i].fd = fd;
			s->clients[i].used = 0;
			return;
		}
	}
	struct control_client refused = { .fd = fd };

	reply_to(&refused, "{\"error\": \"too many control clients at once\"}\n");
	hang_up(&refused);
}

/* Answers every complete line buffered; returns false when the client must go. */
static bool answer_lines(struct control_client *c, control_answer_fn *answer, void *ctx)
{
	char reply[CONTROL_REPLY_MAX];
	char *start = c->pending, *newline;

	while ((newline = memchr(start, '\n', c->used - (size_t)(start - c->pending)))) {
		*newline = '\0';
		answer(ctx, start, reply, sizeof(reply));
		if (!reply_to(c, reply))
			return false;
		start = newline + 1;
	}
	c->used -= (size_t)(start - c->pending);
	memmove(c->pending, start, c->used);
	if (c->used == sizeof(c->pending)) {
		snprintf(reply, sizeof(reply), "{\"error\": \"request longer than %d bytes\"}\n",
			 CONTROL_REQUEST_MAX - 1);
		reply_to(c, reply);
		return false;
	}
	return true;
}

static void read_client(struct control_client *c, control_answer_fn *answer, void *ctx)
{
	char reply[CONTROL_REPLY_MAX];
	ssize_t n = read(c->fd, c->pending + c->used, sizeof(c->pending) - c->used);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* A last request without its newline is still a request ("printf show | nc"). */
		if (n == 0 && c->used > 0 && c->used < sizeof(c->pending)) {
			c->pending[c->used] = '\0';
			answer(ctx, c->pending, reply, sizeof(reply));
			reply_to(c, reply);
		}
		hang_up(c);
		return;
	}
	c->used += (size_t)n;
	if (!answer_lines(c, answer, ctx))
		hang_up(c);
}

void control_server_service(struct control_server *s, const struct pollfd *pfds,
			    control_answer_fn *answer, void *ctx)
{
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct control_client *c = &s->clients[i];

		if (c->fd < 0 || pfds[1 + i].fd != c->fd || !pfds[1 + i].revents)
			continue;
		if (pfds[1 + i].revents & (POLLIN | POLLHUP | POLLERR))
			read_client(c, answer, ctx);
		else
			hang_up(c);
	}
	/* After the clients: a slot freed and taken again in one pass would be read with
	 * the old slot's poll result. */
	if (pfds[0].revents & POLLIN)
		accept_client(s);
}

void control_server_close(struct control_server *s)
{
	struct stat st;

	/* Never opened (the simulator failed earlier): there are no clients either. */
	if (s->listen_fd < 0)
		return;
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0)
			hang_up(&s->clients[i]);
	close(s->listen_fd);
	s->listen_fd = -1;
	/* Only our own socket: another simulator may have taken the path over since. */
	if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
}
