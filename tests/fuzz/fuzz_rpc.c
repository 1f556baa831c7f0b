/* libFuzzer harness for the control socket: the JSON-RPC request parser and every method's
 * parameter validation, as egress-control runs them. One control state (a config with
 * ports, egresses with a source NAT pool, policies, SAs and WireGuard peers; no dataplane
 * attached) serves a real socket in a temporary directory; each input is written to it by a
 * fresh client as request lines, with a newline appended and the write side shut.
 *
 * What must hold, whatever the lines say: every reply is one line of JSON-RPC 2.0 (a result
 * or an error with a code and message, and for invalid params a JSON path in "data"); the
 * server keeps serving (the next client is answered); and nothing crashes or leaks.
 *
 * The first input byte picks the method the line is sent to when it is not a request
 * object itself: then the rest is that method's "params", so that the fuzzer spends its
 * time in parameter validation rather than in finding method names. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "methods.h"
#include "rpc.h"
#include "state.h"

#define DIE(...) do { fprintf(stderr, "fuzz-rpc: " __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)

static struct cp_state st;
static char dir[64], sock[128];
static unsigned n_methods;

static const char config_fmt[] =
	"{\"instance\": \"fuzzrpc\","
	" \"dataplane\": {\"ports\": ["
	"  {\"name\": \"lan0\", \"role\": \"site\", \"device\": \"net_null0\", \"ipv4\": \"10.10.0.1/24\", \"ipv6\": \"fd00::1/64\"},"
	"  {\"name\": \"wan0\", \"role\": \"uplink\", \"device\": \"net_null1\", \"ipv4\": \"192.0.2.1/24\", \"gateway\": \"192.0.2.254\"}]},"
	" \"control\": {\"socket\": \"%s\", \"state_file\": \"%s/state.json\", \"publish_timeout_ms\": 10},"
	" \"ipsec\": {\"sas\": ["
	"  {\"spi\": 4096, \"direction\": \"out\", \"local\": \"192.0.2.1\", \"remote\": \"198.51.100.7\", \"aead\": \"aes-gcm-128\","
	"   \"key\": \"000102030405060708090a0b0c0d0e0fa0a1a2a3\"},"
	"  {\"spi\": 8192, \"direction\": \"in\", \"local\": \"192.0.2.1\", \"remote\": \"198.51.100.7\", \"aead\": \"aes-gcm-128\","
	"   \"key\": \"000102030405060708090a0b0c0d0e0fa0a1a2a3\"}]},"
	" \"wireguard\": {\"private_key\": \"0BKc8qw9F5m+FFQ6q0P4QTDXTyPcZN07LHrw5Znc3G8=\", \"listen_port\": 51820,"
	"  \"peers\": [{\"name\": \"fra\", \"public_key\": \"3Fs5UY9v5otH4pfY5gghORWGlrxEWLvTnGeniDSCWV0=\","
	"   \"endpoint\": \"192.0.2.9:51820\", \"allowed_ips\": [\"10.20.0.0/16\"]}]},"
	" \"egresses\": [{\"name\": \"direct-wan0\", \"type\": \"direct\", \"port\": \"wan0\", \"snat\": {\"pool\": [\"192.0.2.100\"]}},"
	"  {\"name\": \"wg-fra\", \"type\": \"wireguard\", \"peer\": \"fra\"},"
	"  {\"name\": \"esp-nyc\", \"type\": \"ipsec\", \"sa_out\": 4096, \"sa_in\": 8192}],"
	" \"policies\": [{\"name\": \"default\", \"priority\": 100, \"egresses\": [\"direct-wan0\", \"wg-fra\"]}]}";

static void cleanup(void)
{
	if (st.rpc)
		cp_rpc_server_close(st.rpc);
	st.rpc = NULL;
	cp_state_free(&st);
	char path[160];

	snprintf(path, sizeof(path), "%s/state.json", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/egress.json", dir);
	unlink(path);
	unlink(sock);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct eg_error err = {0};
	char path[160];
	FILE *f;

	(void)argc, (void)argv;
	if (sodium_init() < 0)
		abort();
	snprintf(dir, sizeof(dir), "/tmp/fuzz-rpc.XXXXXX");
	if (!mkdtemp(dir))
		DIE("mkdtemp: %s", strerror(errno));
	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	snprintf(path, sizeof(path), "%s/egress.json", dir);
	f = fopen(path, "w");
	if (!f)
		DIE("cannot write %s", path);
	fprintf(f, config_fmt, sock, dir);
	fclose(f);
	/* The config path must outlive init: the state keeps it. */
	static char config[160];

	snprintf(config, sizeof(config), "%s", path);
	if (cp_state_init(&st, config, &err) != 0)
		DIE("config: %s: %s", err.path, err.msg);
	struct cp_rpc_server_opts opts = {.path = sock, .mode = 0600, .methods = cp_methods, .ctx = &st};

	st.rpc = cp_rpc_server_open(&opts);
	if (!st.rpc)
		DIE("cannot serve %s", sock);
	atexit(cleanup);
	for (n_methods = 0; cp_methods[n_methods].name; n_methods++)
		;
	return 0;
}

/* Every reply line is a JSON-RPC 2.0 response with a result or a well-formed error. */
static void check_reply(const char *line, size_t len)
{
	json_error_t je;
	json_t *r = json_loadb(line, len, 0, &je), *e;

	if (!r || !json_is_object(r))
		DIE("a reply that is not a JSON object: %.*s", (int)(len > 200 ? 200 : len), line);
	if (!json_is_string(json_object_get(r, "jsonrpc")) || strcmp(json_string_value(json_object_get(r, "jsonrpc")), "2.0"))
		DIE("a reply without jsonrpc 2.0");
	e = json_object_get(r, "error");
	if (!json_object_get(r, "result") && !e && !json_object_get(r, "method"))
		DIE("a reply with neither result nor error");
	if (e) {
		json_t *code = json_object_get(e, "code"), *msg = json_object_get(e, "message");

		if (!json_is_integer(code) || !json_is_string(msg) || !json_string_length(msg))
			DIE("an error without code or message");
		if (json_integer_value(code) == CP_RPC_INVALID_PARAMS) {
			json_t *data = json_object_get(e, "data");

			/* Invalid params name the field, as a JSON path. */
			if (data && (!json_is_string(data) || json_string_value(data)[0] != '$'))
				DIE("invalid params whose data is not a JSON path");
		}
	}
	json_decref(r);
}

/* Sends text to the server as a new client and reads every reply until the server closes
 * or has nothing more to say. */
static unsigned exchange(const char *text, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	static char in[1 << 16];
	size_t have = 0, sent = 0;
	unsigned replies = 0, quiet = 0;
	bool eof = false;

	if (fd < 0)
		DIE("socket: %s", strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS)
		DIE("connect: %s", strerror(errno));
	for (unsigned round = 0; round < 2000 && !eof && quiet < 20; round++) {
		ssize_t n;

		if (sent < len) {
			n = send(fd, text + sent, len - sent, MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				sent = len;	/* the server closed: it may refuse what it read */
			if (sent == len)
				shutdown(fd, SHUT_WR);
		}
		cp_rpc_server_poll(st.rpc, 0);
		n = recv(fd, in + have, sizeof(in) - have, 0);
		if (n == 0) {
			eof = true;
		} else if (n > 0) {
			have += (size_t)n;
			quiet = 0;
		} else if (sent == len) {
			quiet++;
		}
		char *nl;

		while ((nl = memchr(in, '\n', have))) {
			check_reply(in, (size_t)(nl - in));
			replies++;
			have -= (size_t)(nl + 1 - in);
			memmove(in, nl + 1, have);
		}
		if (have == sizeof(in))
			DIE("a reply line longer than %zu bytes", sizeof(in));
	}
	close(fd);
	cp_rpc_server_poll(st.rpc, 0);	/* the server sees the close */
	return replies;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;
	size_t len;

	if (size == 0)
		return 0;
	/* A request object: sent as it is. Anything else: params for the method the first
	 * byte picks. */
	if (data[0] == '{' || data[0] == '[') {
		text = malloc(size + 1);
		memcpy(text, data, size);
		len = size;
	} else {
		const char *m = cp_methods[data[0] % n_methods].name;

		text = malloc(size + 128);
		len = (size_t)sprintf(text, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":", m);
		memcpy(text + len, data + 1, size - 1);
		len += size - 1;
		text[len++] = '}';
	}
	text[len++] = '\n';
	exchange(text, len);
	free(text);
	/* And the server still answers. */
	static const char status[] = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"status\"}\n";

	if (exchange(status, sizeof(status) - 1) != 1)
		DIE("the server stopped answering");
	return 0;
}
