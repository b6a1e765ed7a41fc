/*
 * Headers exchange: a binding matches on the message's headers table.
 *
 * As RabbitMQ: x-match = all (default) | any | all-with-x | any-with-x;
 * binding arguments starting with "x-" take part only in the -with-x
 * kinds; a void binding value matches any value of a present header;
 * otherwise values match as RabbitMQ's Erlang `==` on the decoded values
 * (see values_match): numbers by value across all integer and float types,
 * 'S' and 'x' by bytes, anything else only within its own type.
 */
#include <math.h>
#include <string.h>

#include "exchange.h"
#include "field_table.h"

enum xmatch { XMATCH_ALL, XMATCH_ANY, XMATCH_ALL_X, XMATCH_ANY_X, XMATCH_BAD };

static enum xmatch binding_xmatch(const struct field_table *args)
{
	const struct field_value *v = ftable_get(args, "x-match");

	if (v == NULL)
		return XMATCH_ALL;
	if (v->type != 'S')
		return XMATCH_BAD;
	if (bytes_eq_str(v->v.str, "all"))
		return XMATCH_ALL;
	if (bytes_eq_str(v->v.str, "any"))
		return XMATCH_ANY;
	if (bytes_eq_str(v->v.str, "all-with-x"))
		return XMATCH_ALL_X;
	if (bytes_eq_str(v->v.str, "any-with-x"))
		return XMATCH_ANY_X;
	return XMATCH_BAD;
}

bool headers_xmatch_valid(const struct field_table *args);
bool headers_xmatch_valid(const struct field_table *args)
{
	return binding_xmatch(args) != XMATCH_BAD;
}

/*
 * RabbitMQ compares a binding value with a header value by Erlang's `==`
 * on the decoded values, types dropped: every integer type (including 'T'
 * timestamps, and 'L', which RabbitMQ reads as a *signed* 64-bit integer)
 * and both float types compare as numbers (1 == 1.0); 'S' and 'x' are both
 * binaries and compare by bytes; tables and arrays keep their element types.
 */

/* An integer as sign and magnitude; false when v is not an integer. */
static bool int_value(const struct field_value *v, bool *neg, uint64_t *mag)
{
	int64_t i;

	switch (v->type) {
	case 'b': case 's': case 'I': case 'l':
		i = v->v.i;
		break;
	case 'L':
		i = (int64_t)v->v.u;
		break;
	case 'B': case 'u': case 'i': case 'T':
		*neg = false;
		*mag = v->v.u;
		return true;
	default:
		return false;
	}
	*neg = i < 0;
	*mag = *neg ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
	return true;
}

static bool float_value(const struct field_value *v, double *d)
{
	if (v->type == 'f')
		*d = (double)v->v.f;
	else if (v->type == 'd')
		*d = v->v.d;
	else
		return false;
	return true;
}

/* Exact comparison of an integer with a double, as Erlang's `==`. */
static bool int_eq_float(bool neg, uint64_t mag, double d)
{
	if (!isfinite(d))
		return false;
	if (d >= 0)		/* -0.0 too: 0 == -0.0 */
		return !neg && d < 18446744073709551616.0 &&
		    (double)(uint64_t)d == d && (uint64_t)d == mag;
	if (!neg || -d > 9223372036854775808.0)
		return false;
	return (double)(uint64_t)-d == -d && (uint64_t)-d == mag;
}

static bool values_match(const struct field_value *a,
    const struct field_value *b)
{
	bool an = false, bn = false;
	uint64_t am = 0, bm = 0;
	double ad = 0, bd = 0;
	bool ai = int_value(a, &an, &am), bi = int_value(b, &bn, &bm);
	bool af = float_value(a, &ad), bf = float_value(b, &bd);

	if (ai && bi)
		return an == bn && am == bm;
	if (ai && bf)
		return int_eq_float(an, am, bd);
	if (af && bi)
		return int_eq_float(bn, bm, ad);
	if (af && bf)
		return ad == bd;
	if (ai || bi || af || bf)
		return false;
	if ((a->type == 'S' || a->type == 'x') &&
	    (b->type == 'S' || b->type == 'x'))
		return bytes_eq(a->v.str, b->v.str);
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case 't':
		return a->v.b == b->v.b;
	case 'D':
		return a->v.dec.scale == b->v.dec.scale &&
		    a->v.dec.value == b->v.dec.value;
	case 'V':
		return true;
	case 'F': {
		return ftable_equal(a->v.table, b->v.table);
	}
	case 'A': {
		struct field_table ta = { 0 }, tb = { 0 };

		/* Arrays: compare element-wise through one-entry tables
		 * (element types count, as in RabbitMQ). */
		if (a->v.array->n != b->v.array->n)
			return false;
		for (uint32_t i = 0; i < a->v.array->n; i++) {
			struct field_entry ea = { { (const uint8_t *)"", 0 },
			    a->v.array->items[i] };
			struct field_entry eb = { { (const uint8_t *)"", 0 },
			    b->v.array->items[i] };

			ta.n = tb.n = 1;
			ta.entries = &ea;
			tb.entries = &eb;
			if (!ftable_equal(&ta, &tb))
				return false;
		}
		return true;
	}
	}
	return false;
}

static bool binding_matches(const struct field_table *args,
    const struct field_table *headers)
{
	enum xmatch kind = binding_xmatch(args);
	bool with_x = kind == XMATCH_ALL_X || kind == XMATCH_ANY_X;
	bool all = kind == XMATCH_ALL || kind == XMATCH_ALL_X;
	bool any_matched = false;

	for (uint32_t i = 0; args && i < args->n; i++) {
		const struct field_entry *e = &args->entries[i];
		const struct field_value *h;
		bool ok;

		if (bytes_eq_str(e->key, "x-match"))
			continue;
		if (!with_x && e->key.len >= 2 && memcmp(e->key.ptr, "x-", 2) == 0)
			continue;
		h = NULL;
		for (uint32_t j = 0; headers && j < headers->n; j++) {
			if (bytes_eq(headers->entries[j].key, e->key)) {
				h = &headers->entries[j].value;
				break;
			}
		}
		ok = h && (e->value.type == 'V' || values_match(&e->value, h));
		if (all && !ok)
			return false;
		if (!all && ok)
			return true;
		any_matched = any_matched || ok;
	}
	return all ? true : any_matched;
}

static void *headers_create(struct exchange *x)
{
	return x;
}

static void headers_nothing(void *state)
{
}

static void headers_bind(void *state, struct binding *b)
{
	/* Every binding is checked on each message: no index. */
}

static void headers_route(void *state, struct route_result *r)
{
	struct exchange *x = state;
	const struct field_table *headers = route_headers(r);
	struct binding *b;

	TAILQ_FOREACH(b, &x->bindings, src_link)
		if (binding_matches(b->args_tree, headers))
			route_binding(r, b);
}

const struct exchange_type exchange_headers = {
	"headers", headers_create, headers_nothing, headers_bind, headers_bind,
	headers_route,
};
