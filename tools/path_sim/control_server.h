/* The control socket: a Unix stream socket that takes request lines from a few clients at
 * once and answers each with one line, without ever blocking the frames' loop. */
#ifndef PATH_SIM_CONTROL_SERVER_H
#define PATH_SIM_CONTROL_SERVER_H

#include <poll.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/un.h>

#include "control.h"

#define CONTROL_MAX_CLIENTS 8
/* The listening socket, then one slot per client (fd -1 when the slot is free). */
#define CONTROL_POLLFDS (1 + CONTROL_MAX_CLIENTS)

/* Answers one request line: writes the reply, newline included, into reply. */
typedef void control_answer_fn(void *ctx, const char *request, char *reply, size_t cap);

struct control_client {
	int fd;
	size_t used;
	char pending[CONTROL_REQUEST_MAX];
};

struct control_server {
	int listen_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;		/* which file we bound, so that we unlink only that */
	ino_t ino;
	struct control_client clients[CONTROL_MAX_CLIENTS];
};

/* Binds SOCKET with mode 0600. Replaces a stale socket file nobody listens on; refuses
 * one that is live, and any other kind of file. */
int control_server_open(struct control_server *s, const char *path, char *err, size_t errlen);
/* Fills CONTROL_POLLFDS entries. */
void control_server_pollfds(const struct control_server *s, struct pollfd *pfds);
/* Accepts, reads and answers what those entries reported. */
void control_server_service(struct control_server *s, const struct pollfd *pfds,
			    control_answer_fn *answer, void *ctx);
/* Closes every connection and removes the socket file. */
void control_server_close(struct control_server *s);

#endif
