/* egressctl nat [ADDRESS] [-e EGRESS] [-n LIMIT]: source NAT counts, pool addresses and
 * sessions (nat.sessions), as tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egressctl.h"

static json_int_t num(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

int cmd_nat(struct ctl *c, int argc, char **argv)
{
	static const char *const addr_head[] = {"POOL_ADDRESS", "EGRESS", "STATE", "HOSTS", "BLOCKS"};
	static const char *const sess_head[] = {"PROTO", "INSIDE", "OUTSIDE", "REMOTE", "EGRESS", "STATE", "IDLE_S",
						"AGE_S", "TIMEOUT_S"};
	json_t *params = json_object(), *r, *v;
	unsigned long limit;
	struct table t;
	size_t i;

	for (int a = 0; a < argc; a++) {
		if (strcmp(argv[a], "-n") == 0 && a + 1 < argc) {
			if (!parse_uint(argv[++a], 10000, &limit))
				return -1;
			json_object_set_new(params, "limit", json_integer((json_int_t)limit));
		} else if (strcmp(argv[a], "-e") == 0 && a + 1 < argc) {
			json_object_set_new(params, "egress", json_string(argv[++a]));
		} else if (argv[a][0] != '-' && !json_object_get(params, "address")) {
			json_object_set_new(params, "address", json_string(argv[a]));
		} else {
			json_decref(params);
			return -1;
		}
	}
	r = rpc_call(c, "nat.sessions", params);
	json_decref(params);
	if (c->json) {
		print_json(r);
		json_decref(r);
		return 0;
	}
	if (!json_is_true(json_object_get(r, "attached"))) {
		printf("the dataplane is not attached\n");
		json_decref(r);
		return 0;
	}
	const json_t *pk = json_object_get(r, "packets");

	printf("sessions %lld  mappings %lld  hosts %lld  blocks %lld  (made %lld, expired %lld, ended %lld)\n",
	       (long long)num(r, "sessions"), (long long)num(r, "mappings"), (long long)num(r, "hosts"),
	       (long long)num(r, "blocks"), (long long)num(r, "created"), (long long)num(r, "expired"),
	       (long long)num(r, "ended"));
	printf("packets out %lld  in %lld  (in on another worker's queue %lld)\n\n", (long long)num(pk, "out"),
	       (long long)num(pk, "in"), (long long)num(pk, "in_other_worker"));
	table_init(&t, "lllrr", addr_head);
	json_array_foreach(json_object_get(r, "addresses"), i, v) {
		char *b;

		table_add(&t, cell(json_object_get(v, "address")));
		table_add(&t, cell(json_object_get(v, "egress")));
		table_add(&t, cell(json_object_get(v, "state")));
		table_add(&t, cell(json_object_get(v, "hosts")));
		if (asprintf(&b, "%lld/%lld", (long long)num(v, "blocks_used"), (long long)num(v, "blocks")) < 0)
			die(2, "out of memory");
		table_add(&t, b);
	}
	table_print(&t);
	printf("\n");
	table_init(&t, "llllllrrr", sess_head);
	json_array_foreach(json_object_get(r, "sessions_listed"), i, v) {
		static const char *const keys[] = {"proto", "inside", "outside", "remote", "egress", "state",
						   "idle_s", "age_s", "timeout_s"};

		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			table_add(&t, cell(json_object_get(v, keys[k])));
	}
	table_print(&t);
	if (json_is_true(json_object_get(r, "truncated")))
		printf("(%lld sessions match; -n raises the %zu listed)\n", (long long)num(r, "matched"),
		       json_array_size(json_object_get(r, "sessions_listed")));
	json_decref(r);
	return 0;
}
