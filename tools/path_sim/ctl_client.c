#include "ctl_client.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"

/* The simulator answers at once unless it is stuck; do not hang a test script on it. */
#define CTL_TIMEOUT_S 5

static bool write_all(int fd, const char *bytes, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, bytes, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		bytes += n;
		len -= (size_t)n;
	}
	return true;
}

/* Reads up to the first newline; false when the connection ends or times out first. */
static bool read_line(int fd, char *buf, size_t cap)
{
	size_t used = 0;

	while (used + 1 < cap) {
		ssize_t n = recv(fd, buf + used, cap - 1 - used, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		used += (size_t)n;
		buf[used] = '\0';
		if (memchr(buf, '\n', used))
			return true;
	}
	return false;
}

int ctl_client_run(const char *socket_path, int nwords, char **words)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval timeout = { .tv_sec = CTL_TIMEOUT_S };
	char request[CONTROL_REQUEST_MAX], reply[CONTROL_REPLY_MAX];
	size_t used = 0;
	int fd;

	if (strlen(socket_path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "egress-pathsim ctl: %s: socket path too long\n", socket_path);
		return CTL_EXIT_NO_SIMULATOR;
	}
	strcpy(addr.sun_path, socket_path);
	for (int i = 0; i < nwords; i++) {
		int n = snprintf(request + used, sizeof(request) - used, "%s%s", i ? " " : "", words[i]);

		if (n < 0 || (size_t)n >= sizeof(request) - used - 1) {
			fprintf(stderr, "egress-pathsim ctl: request longer than %d bytes\n", CONTROL_REQUEST_MAX - 1);
			return CTL_EXIT_NO_SIMULATOR;
		}
		used += (size_t)n;
	}
	request[used++] = '\n';

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fprintf(stderr, "egress-pathsim ctl: cannot connect to %s: %s\n", socket_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return CTL_EXIT_NO_SIMULATOR;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
	if (!write_all(fd, request, used) || !read_line(fd, reply, sizeof(reply))) {
		fprintf(stderr, "egress-pathsim ctl: no reply from %s\n", socket_path);
		close(fd);
		return CTL_EXIT_NO_SIMULATOR;
	}
	close(fd);
	fputs(reply, stdout);
	/* The simulator writes every error reply, and only those, starting so. */
	return strncmp(reply, "{\"error\"", 8) == 0 ? CTL_EXIT_ERROR_REPLY : CTL_EXIT_OK;
}
