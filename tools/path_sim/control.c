#include "control.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORDS 16
/* How much of a bad word an error quotes back. */
#define QUOTE_MAX 48

/* Appends to a fixed reply buffer; once it has run out of room it stays truncated rather
 * than overflowing (the buffer is sized so that it never does). */
struct reply {
	char *buf;
	size_t cap, used;
};

static void put(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct reply *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->used >= r->cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(r->buf + r->used, r->cap - r->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->used += (size_t)n < r->cap - r->used ? (size_t)n : r->cap - r->used - 1;
}

/* A word from the request inside a JSON string: it is the client's text, so escaped, and
 * cut short so that a long one cannot crowd out the message. */
static void put_quoted(struct reply *r, const char *word)
{
	size_t n = 0;

	put(r, "\\\"");
	for (const unsigned char *c = (const unsigned char *)word; *c && n < QUOTE_MAX; c++, n++) {
		if (*c == '"' || *c == '\\')
			put(r, "\\%c", *c);
		else if (*c < 0x20 || *c >= 0x7f)
			put(r, "\\u%04x", *c);
		else
			put(r, "%c", *c);
	}
	if (strlen(word) > QUOTE_MAX)
		put(r, "...");
	put(r, "\\\"");
}

/* An error reply: message parts before and after one quoted word from the request. */
static void error_about(struct reply *r, const char *before, const char *word, const char *after)
{
	r->used = 0;
	put(r, "{\"error\": \"%s", before);
	if (word)
		put_quoted(r, word);
	put(r, "%s\"}\n", after ? after : "");
}

enum { TO_A2B = 1, TO_B2A = 2 };

static int parse_direction(const char *word)
{
	if (strcmp(word, "a2b") == 0)
		return TO_A2B;
	if (strcmp(word, "b2a") == 0)
		return TO_B2A;
	if (strcmp(word, "both") == 0)
		return TO_A2B | TO_B2A;
	return 0;
}

/* A decimal number in [low, high], the whole word and nothing else: strtod alone would
 * also take hex, "inf", "nan" and leading blanks. */
static bool parse_number(const char *text, double low, double high, double *out)
{
	char *end;
	double v;

	if (!*text || text[strspn(text, "0123456789.eE+-")] != '\0')
		return false;
	v = strtod(text, &end);
	if (*end || !isfinite(v) || v < low || v > high)
		return false;
	*out = v;
	return true;
}

/* What a "set" asks for, collected and checked before any of it is applied. */
struct change {
	bool has_delay, has_jitter, has_loss, has_blackhole;
	struct impairment to;
};

static bool parse_setting(struct reply *r, const char *word, struct change *c)
{
	char key[32];
	const char *eq = strchr(word, '='), *value;
	size_t key_len;
	bool *seen;
	double v;

	if (!eq) {
		error_about(r, "expected key=value, got ", word, NULL);
		return false;
	}
	key_len = (size_t)(eq - word);
	value = eq + 1;
	if (key_len >= sizeof(key)) {
		error_about(r, "unknown key ", word, " (keys: delay_ms, jitter_ms, loss_pct, blackhole)");
		return false;
	}
	memcpy(key, word, key_len);
	key[key_len] = '\0';

	if (strcmp(key, "delay_ms") == 0) {
		seen = &c->has_delay;
		if (!parse_number(value, 0, IMPAIRMENT_MAX_MS, &v))
			goto bad_ms;
		c->to.delay_ms = v;
	} else if (strcmp(key, "jitter_ms") == 0) {
		seen = &c->has_jitter;
		if (!parse_number(value, 0, IMPAIRMENT_MAX_MS, &v))
			goto bad_ms;
		c->to.jitter_ms = v;
	} else if (strcmp(key, "loss_pct") == 0) {
		seen = &c->has_loss;
		if (!parse_number(value, 0, 100, &v)) {
			error_about(r, "loss_pct must be a number from 0 to 100, got ", value, NULL);
			return false;
		}
		c->to.loss_pct = v;
	} else if (strcmp(key, "blackhole") == 0) {
		seen = &c->has_blackhole;
		if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0) {
			error_about(r, "blackhole must be 0 or 1, got ", value, NULL);
			return false;
		}
		c->to.blackhole = value[0] == '1';
	} else {
		error_about(r, "unknown key ", key, " (keys: delay_ms, jitter_ms, loss_pct, blackhole)");
		return false;
	}
	/* Two values for one key is a mistake in the request, not a request for the last. */
	if (*seen) {
		error_about(r, "key ", key, " given twice");
		return false;
	}
	*seen = true;
	return true;

bad_ms:
	r->used = 0;
	put(r, "{\"error\": \"%s must be a number of milliseconds from 0 to %.0f, got ", key, IMPAIRMENT_MAX_MS);
	put_quoted(r, value);
	put(r, "\"}\n");
	return false;
}

static void apply(const struct change *c, struct impairment *to)
{
	if (c->has_delay)
		to->delay_ms = c->to.delay_ms;
	if (c->has_jitter)
		to->jitter_ms = c->to.jitter_ms;
	if (c->has_loss)
		to->loss_pct = c->to.loss_pct;
	if (c->has_blackhole)
		to->blackhole = c->to.blackhole;
}

static void put_impairment(struct reply *r, const struct impairment *i)
{
	put(r, "\"delay_ms\": %.15g, \"jitter_ms\": %.15g, \"loss_pct\": %.15g, \"blackhole\": %s",
	    i->delay_ms, i->jitter_ms, i->loss_pct, i->blackhole ? "true" : "false");
}

/* The reply to a set or reset: what is now in force, both directions. */
static void put_settings(struct reply *r, const struct control_target *t)
{
	put(r, "{\"ok\": true, \"a2b\": {");
	put_impairment(r, &t->a2b->impairment);
	put(r, "}, \"b2a\": {");
	put_impairment(r, &t->b2a->impairment);
	put(r, "}}\n");
}

static void put_direction(struct reply *r, const struct direction *d)
{
	const struct direction_counters *c = &d->counters;

	put(r, "\"%s\": {\"settings\": {", d->name);
	put_impairment(r, &d->impairment);
	put(r, "}, \"held\": %zu, \"counters\": {\"in\": %llu, \"forwarded\": %llu, \"lost\": %llu, "
	       "\"blackholed\": %llu, \"queue_overflow\": %llu, \"oversized\": %llu, \"tx_errors\": %llu, "
	       "\"kernel_drops\": %llu}}",
	    d->held.count, (unsigned long long)c->in, (unsigned long long)c->forwarded,
	    (unsigned long long)c->lost, (unsigned long long)c->blackholed,
	    (unsigned long long)c->queue_overflow, (unsigned long long)c->oversized,
	    (unsigned long long)c->tx_errors, (unsigned long long)c->kernel_drops);
}

static void show(struct reply *r, const struct control_target *t)
{
	put(r, "{\"seed\": %llu, \"queue_max\": %zu, ", (unsigned long long)t->seed, t->queue_max);
	put_direction(r, t->a2b);
	put(r, ", ");
	put_direction(r, t->b2a);
	put(r, "}\n");
}

static void set(struct reply *r, const struct control_target *t, int directions, char **settings, int count)
{
	struct change c = { 0 };

	if (count == 0) {
		error_about(r, "set needs at least one key=value after the direction", NULL, NULL);
		return;
	}
	for (int i = 0; i < count; i++)
		if (!parse_setting(r, settings[i], &c))
			return;
	if (directions & TO_A2B)
		apply(&c, &t->a2b->impairment);
	if (directions & TO_B2A)
		apply(&c, &t->b2a->impairment);
	put_settings(r, t);
}

static void reset(struct reply *r, const struct control_target *t, int directions)
{
	if (directions & TO_A2B)
		t->a2b->impairment = (struct impairment){ 0 };
	if (directions & TO_B2A)
		t->b2a->impairment = (struct impairment){ 0 };
	put_settings(r, t);
}

void control_handle(const struct control_target *t, const char *request, char *out, size_t cap)
{
	char line[CONTROL_REQUEST_MAX];
	char *words[MAX_WORDS], *save = NULL;
	int count = 0, directions;
	bool is_set;
	struct reply r = { .buf = out, .cap = cap };

	snprintf(line, sizeof(line), "%s", request);
	for (char *w = strtok_r(line, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
		if (count == MAX_WORDS) {
			error_about(&r, "too many words in the request", NULL, NULL);
			return;
		}
		words[count++] = w;
	}
	if (count == 0) {
		error_about(&r, "empty request (expected set, reset or show)", NULL, NULL);
		return;
	}
	if (strcmp(words[0], "show") == 0) {
		if (count > 1)
			error_about(&r, "show takes no arguments, got ", words[1], NULL);
		else
			show(&r, t);
		return;
	}
	is_set = strcmp(words[0], "set") == 0;
	if (!is_set && strcmp(words[0], "reset") != 0) {
		error_about(&r, "unknown command ", words[0], " (expected set, reset or show)");
		return;
	}
	if (count < 2) {
		error_about(&r, is_set ? "set needs a direction: a2b, b2a or both"
				       : "reset needs a direction: a2b, b2a or both", NULL, NULL);
		return;
	}
	directions = parse_direction(words[1]);
	if (!directions) {
		error_about(&r, "unknown direction ", words[1], " (expected a2b, b2a or both)");
		return;
	}
	if (is_set)
		set(&r, t, directions, words + 2, count - 2);
	else if (count > 2)
		error_about(&r, "reset takes only a direction, got ", words[2], NULL);
	else
		reset(&r, t, directions);
}
