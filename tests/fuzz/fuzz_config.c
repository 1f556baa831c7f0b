/* libFuzzer harness for the config loader (lib/config.c, with lib/sa_config.c and
 * lib/wg_config.c behind it): the input is a config file's text. Whatever it holds:
 *
 * - a refusal names a JSON path ("$..." ) and says something, and leaves the config zeroed;
 * - an accepted config's egresses and policies go back to JSON (what egress.list,
 *   policy.list and the state file print) and that JSON parses again to the same thing;
 * - the same text as a single egress or policy object (the control socket's parsers) is
 *   accepted or refused with a path under "$.params". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "config.h"

#define DIE(...) do { fprintf(stderr, "fuzz-config: " __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	if (sodium_init() < 0)
		abort();
	return 0;
}

static bool zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static void check_error(const struct eg_error *err, const char *prefix)
{
	if (strncmp(err->path, prefix, strlen(prefix)) != 0 || !err->msg[0])
		DIE("refusal without a path under %s or a message: \"%s\": \"%s\"", prefix, err->path, err->msg);
}

/* Through JSON text and back, as the state file does it. */
static json_t *via_text(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_t *back = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;

	free(s);
	json_decref(j);
	if (!back)
		DIE("our own JSON does not parse");
	return back;
}

static void round_trip(const struct eg_config *c)
{
	struct eg_error err;

	for (unsigned i = 0; i < c->n_egresses; i++) {
		struct eg_egress_cfg back;
		json_t *j = eg_config_egress_to_json(&c->egresses[i]), *j2;

		if (!j)
			DIE("egress %u has no JSON", i);
		j = via_text(j);
		if (eg_config_parse_egress(j, "$", &back, &err) != 0)
			DIE("egress %u does not parse back: %s: %s", i, err.path, err.msg);
		/* Printed again, it says the same. */
		j2 = eg_config_egress_to_json(&back);
		if (!json_equal(j, j2))
			DIE("egress %u changed on its way back", i);
		json_decref(j);
		json_decref(j2);
	}
	for (unsigned i = 0; i < c->n_policies; i++) {
		struct eg_policy_cfg back;
		json_t *j = eg_config_policy_to_json(&c->policies[i]), *j2;

		if (!j)
			DIE("policy %u has no JSON", i);
		j = via_text(j);
		if (eg_config_parse_policy(j, "$", &back, &err) != 0)
			DIE("policy %u does not parse back: %s: %s", i, err.path, err.msg);
		j2 = eg_config_policy_to_json(&back);
		if (!json_equal(j, j2))
			DIE("policy %u changed on its way back", i);
		eg_policy_cfg_free(&back);
		json_decref(j);
		json_decref(j2);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t je;
	json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	struct eg_config c;
	struct eg_error err;

	if (!doc)
		return 0;
	memset(&c, 0xa5, sizeof(c));
	if (eg_config_from_json(doc, &c, &err) == 0) {
		round_trip(&c);
		eg_config_free(&c);
	} else {
		check_error(&err, "$");
		if (!zero(&c, sizeof(c)))
			DIE("a refused config is not left zeroed");
	}
	/* The control socket's parsers see objects like the config's elements. */
	struct eg_egress_cfg e;
	struct eg_policy_cfg p;

	if (eg_config_parse_egress(doc, "$.params", &e, &err) != 0)
		check_error(&err, "$.params");
	if (eg_config_parse_policy(doc, "$.params", &p, &err) != 0)
		check_error(&err, "$.params");
	else
		eg_policy_cfg_free(&p);
	json_decref(doc);
	return 0;
}
