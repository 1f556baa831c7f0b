/* What egressctl's subcommands share: the connection to the control socket, JSON-RPC
 * calls, argument parsing and column output (egressctl.c). */
#ifndef EGRESSCTL_H
#define EGRESSCTL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define DEFAULT_SOCKET "/run/egress/egress.sock"

enum {
	EXIT_OK = 0,
	EXIT_REPLY_ERROR = 1,		/* the daemon answered with an error */
	EXIT_LOCAL = 2,			/* no daemon, no reply, or a bad command line */
	CTL_TIMEOUT_S = 30,		/* policy.set waits for workers; be patient */
	CTL_MAX_REPLY = 256 << 20,	/* a "line" longer than this is not a reply */
	CTL_READ_CHUNK = 64 << 10,
};

struct ctl {
	const char *socket;
	bool json;
	int timeout_ms;			/* -1: wait forever */
	int fd;
	char *buf;			/* bytes received past the last line returned */
	size_t len, cap;
};

extern volatile sig_atomic_t interrupted;	/* SIGINT/SIGTERM while waiting for a reply */

void die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
/* Sends method(params) and waits for its reply. Steals params (NULL: none). Returns the
 * result (a new reference); on an error reply prints it and exits 1. */
json_t *rpc_call(struct ctl *c, const char *method, json_t *params);
/* One line from the socket, or NULL at EOF or when interrupted is set. */
char *ctl_read_line(struct ctl *c, int timeout_ms);
bool parse_uint(const char *s, unsigned long max, unsigned long *out);

/* Columns sized to their widest cell; 'r' in align right-aligns a (numeric) column. */
struct table {
	size_t ncols, n, cap;
	const char *align;
	char **cells;
};

/* A cell's text for a JSON value: "-" for none, yes/no for booleans. */
char *cell(const json_t *v);
void table_add(struct table *t, char *s);	/* takes s */
void table_str(struct table *t, const char *s);
void table_init(struct table *t, const char *align, const char *const *head);
void table_print(struct table *t);

/* The result as indented JSON on stdout (--json). */
void print_json(const json_t *j);

int cmd_capture(struct ctl *c, int argc, char **argv);
int cmd_nat(struct ctl *c, int argc, char **argv);
int cmd_top(struct ctl *c, int argc, char **argv);

#endif
