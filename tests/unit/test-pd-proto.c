/* test-pd-proto.c - the policy protocol parser on good and hostile input: every rule refuses
   its input (with a reason), good requests parse whole, in one piece or byte by byte. */
#include "mw-build.h"
#include "pd-proto.h"

#include "mw-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct pd_proto_limits limits = {64, 256, 4};

/* Hostile (or good) inputs: err NULL = a complete request of nattrs attributes. */
static const struct {
	const char *in;
	size_t len; /* 0 = strlen */
	const char *err;
	unsigned nattrs;
} cases[] = {
    {"request=smtpd_access_policy\n\n", 0, NULL, 1},
    {"request=smtpd_access_policy\r\nsender=\r\n\r\n", 0, NULL, 2},
    {"a=1\nb=2\nc=x=y\nd=\n\n", 0, NULL, 4},
    {"a=1\nb=2\nc=3\nd=4\ne=5\n\n", 0, "more than 4 attributes", 0},
    {"\n", 0, "empty request", 0},
    {"garbage\n\n", 0, "without '='", 0},
    {"=value\n\n", 0, "empty name", 0},
    {"na me=v\n\n", 0, "forbidden character", 0},
    {"a=1\na=2\n\n", 0, "given twice", 0},
    {"a=b\0c\n\n", 6, "NUL byte", 0},
    {"a=0123456789012345678901234567890123456789012345678901234567890123456789\n", 0,
     "line longer than 64", 0},
    {"a=0123456789012345678901234567890123456789012345678901234567890123456789", 0,
     "line longer than 64", 0}, /* refused before any line end arrives */
    {"a=01234567890123456789012345678901234567890123456789\n"
     "b=01234567890123456789012345678901234567890123456789\n"
     "c=01234567890123456789012345678901234567890123456789\n"
     "d=01234567890123456789012345678901234567890123456789\n"
     "e=01234567890123456789012345678901234567890123456789\n",
     0, "request larger than 256", 0},
    /* limits at their exact edges: 64 bytes (+ CR) pass, 65 do not */
    {"a=0123456789012345678901234567890123456789012345678901234567abcd\n\n", 0, NULL, 1},
    {"a=0123456789012345678901234567890123456789012345678901234567abcd\r\n\r\n", 0, NULL,
     1},
    {"a=0123456789012345678901234567890123456789012345678901234567abcde\n", 0,
     "line longer than 64", 0},
    {"a=0123456789012345678901234567890123456789012345678901234567abcd\r\r\n", 0,
     "line longer than 64", 0},
    /* the first offending byte decides: an over-long line before a NUL, a NUL before it */
    {"a=0123456789012345678901234567890123456789012345678901234567abcdef\0\n", 68,
     "line longer than 64", 0},
    {"a=0123456789\0" "0123456789012345678901234567890123456789012345678901234567\n", 72,
     "NUL byte", 0},
    {"a=1\nb=2\n\0\n", 11, "NUL byte", 0},
    {"\r\n", 0, "empty request", 0},
    {"a=1\nA=2\n\n", 0, NULL, 2}, /* names are case-sensitive */
    {"ab=1\nb=2\na=3\nab=4\n\n", 0, "given twice", 0},
    /* exactly 256 bytes of request (each LF stored as a NUL), then one more */
    {"a=012345678901234567890123456789012345678901234567890123456789xy\n"
     "b=012345678901234567890123456789012345678901234567890123456789xy\n"
     "c=012345678901234567890123456789012345678901234567890123456789xy\n"
     "d=01234567890123456789012345678901234567890123456789012345678\n\n",
     0, NULL, 4},
    {"a=012345678901234567890123456789012345678901234567890123456789xy\n"
     "b=012345678901234567890123456789012345678901234567890123456789xy\n"
     "c=012345678901234567890123456789012345678901234567890123456789xy\n"
     "d=01234567890123456789012345678901234567890123456789012345678z\n\n",
     0, "request larger than 256", 0},
};

/* run - feed in (all at once, or in pieces of chunk bytes); 1, 0 or -1 and the error */
static int run(const char *in, size_t len, size_t chunk, struct pd_request *req, mw_error *err)
{
	struct pd_proto p;
	size_t off = 0, used;
	int r = 0;
	pd_proto_init(&p, &limits);
	while (off < len) {
		size_t n = chunk != 0 && chunk < len - off ? chunk : len - off;
		r = pd_proto_feed(&p, in + off, n, &used, err);
		if (r < 0)
			break;
		off += used;
		if (r == 1)
			break;
	}
	if (r == 1)
		pd_proto_request(&p, req);
	if (r == 1 && req->count > 0) /* values are checked before the buffer goes */
		assert_non_null(pd_request_get(req, req->attrs[0].name));
	pd_proto_free(&p);
	return r;
}

static void test_cases(void **state)
{
	static const size_t chunks[] = {0, 1, 2, 7, 63};
	size_t i, bytewise;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++)
		for (bytewise = 0; bytewise < MW_N_ELEMENTS(chunks); bytewise++) {
			struct pd_request req;
			mw_error err = {""};
			size_t len = cases[i].len != 0 ? cases[i].len : strlen(cases[i].in);
			int r = run(cases[i].in, len, chunks[bytewise], &req, &err);
			if (cases[i].err == NULL) {
				if (r != 1 || req.count != cases[i].nattrs)
					fail_msg("case %zu: r=%d count=%u err=%s", i, r, req.count,
					         err.msg);
			} else if (r != -1 || strstr(err.msg, cases[i].err) == NULL) {
				fail_msg("case %zu (chunk %zu): r=%d err=%s", i, chunks[bytewise], r,
				         err.msg);
			}
		}
}

static void test_values_and_pipelining(void **state)
{
	static const char in[] = "request=smtpd_access_policy\nsender=a@b\nc=x=y\n\nnext=1\n\n";
	struct pd_proto p;
	struct pd_request req;
	size_t used;
	mw_error err;
	(void)state;
	pd_proto_init(&p, &limits);
	assert_int_equal(pd_proto_feed(&p, in, sizeof(in) - 1, &used, &err), 1);
	assert_int_equal(used, strlen("request=smtpd_access_policy\nsender=a@b\nc=x=y\n\n"));
	pd_proto_request(&p, &req);
	assert_string_equal(pd_request_get(&req, "request"), "smtpd_access_policy");
	assert_string_equal(pd_request_get(&req, "sender"), "a@b");
	assert_string_equal(pd_request_get(&req, "c"), "x=y");
	assert_string_equal(pd_request_get(&req, "missing"), "");
	pd_proto_reset(&p);
	assert_false(pd_proto_pending(&p));
	assert_int_equal(pd_proto_feed(&p, in + used, 3, &used, &err), 0);
	assert_true(pd_proto_pending(&p));
	pd_proto_free(&p);
}

static const struct pd_proto_limits big = {200, 65536, PD_ATTRS_MAX};

/* feed_all - one whole request into p; the result of pd_proto_feed */
static int feed_all(struct pd_proto *p, const char *in, mw_error *err)
{
	size_t used;
	return pd_proto_feed(p, in, strlen(in), &used, err);
}

/* two_in_one_slot - two distinct names whose hashes share a slot of the duplicate table */
static void two_in_one_slot(char a[16], char b[16])
{
	unsigned short seen[PD_NAME_SLOTS];
	unsigned i;
	memset(seen, 0, sizeof(seen));
	for (i = 1;; i++) {
		char name[16];
		unsigned slot;
		snprintf(name, sizeof(name), "x%u", i);
		slot = pd_name_hash(name, strlen(name)) & (PD_NAME_SLOTS - 1);
		if (seen[slot] != 0) {
			snprintf(a, 16, "x%u", seen[slot]);
			snprintf(b, 16, "%s", name);
			return;
		}
		seen[slot] = (unsigned short)i;
	}
}

struct hname {
	uint32_t h;
	unsigned i;
};

/* hname_cmp - qsort by hash */
static int hname_cmp(const void *a, const void *b)
{
	const struct hname *x = a, *y = b;
	return x->h < y->h ? -1 : x->h > y->h;
}

/* collision_name - the i-th name of a fixed pseudo-random sequence of 8 letters */
static void collision_name(unsigned i, char name[16])
{
	uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ULL;
	unsigned k;
	for (k = 0; k < 8; k++) {
		x ^= x >> 29;
		x *= 0xBF58476D1CE4E5B9ULL;
		name[k] = (char)('a' + (x >> 40) % 26);
	}
	name[8] = '\0';
}

/* full_collision - two distinct names with the same 32-bit hash (birthday search) */
static void full_collision(char a[16], char b[16])
{
	enum { N = 300000 };
	struct hname *v = mw_calloc(N, sizeof(*v));
	unsigned i;
	for (i = 0; i < N; i++) {
		char name[16];
		collision_name(i, name);
		v[i].h = pd_name_hash(name, strlen(name));
		v[i].i = i;
	}
	qsort(v, N, sizeof(*v), hname_cmp);
	for (i = 1; i < N; i++)
		if (v[i].h == v[i - 1].h) {
			collision_name(v[i - 1].i, a);
			collision_name(v[i].i, b);
			free(v);
			return;
		}
	free(v);
	fail_msg("no 32-bit hash collision among %d names", N);
}

/* Distinct names that collide (in a slot, or in the whole hash) are not duplicates; the same
   name twice still is, and a reset parser forgets the names of the last request. */
static void test_duplicates_with_collisions(void **state)
{
	char a[16], b[16], in[256];
	int pass;
	(void)state;
	for (pass = 0; pass < 2; pass++) {
		struct pd_proto p;
		struct pd_request req;
		mw_error err = {""};
		if (pass == 0)
			two_in_one_slot(a, b);
		else
			full_collision(a, b);
		assert_string_not_equal(a, b);
		if (pass == 1)
			assert_int_equal(pd_name_hash(a, strlen(a)), pd_name_hash(b, strlen(b)));
		pd_proto_init(&p, &big);
		snprintf(in, sizeof(in), "%s=1\n%s=2\n\n", a, b);
		assert_int_equal(feed_all(&p, in, &err), 1);
		pd_proto_request(&p, &req);
		assert_string_equal(pd_request_get(&req, a), "1");
		assert_string_equal(pd_request_get(&req, b), "2");
		pd_proto_reset(&p);
		/* the same names again in the next request: no longer seen */
		snprintf(in, sizeof(in), "%s=3\n%s=4\n\n", b, a);
		assert_int_equal(feed_all(&p, in, &err), 1);
		pd_proto_reset(&p);
		snprintf(in, sizeof(in), "%s=1\n%s=2\n%s=3\n\n", a, b, b);
		assert_int_equal(feed_all(&p, in, &err), -1);
		assert_non_null(strstr(err.msg, "given twice"));
		pd_proto_free(&p);
		pd_proto_init(&p, &big);
		snprintf(in, sizeof(in), "%s=1\n%s=2\n%s=3\n\n", b, a, a);
		assert_int_equal(feed_all(&p, in, &err), -1);
		assert_non_null(strstr(err.msg, "given twice"));
		pd_proto_free(&p);
	}
}

/* A full table: PD_ATTRS_MAX distinct names pass, one repeated name among them does not. */
static void test_many_attributes(void **state)
{
	struct pd_proto p;
	struct pd_request req;
	mw_error err = {""};
	char line[32];
	size_t used;
	unsigned i, round;
	(void)state;
	pd_proto_init(&p, &big);
	for (round = 0; round < 3; round++) {
		for (i = 0; i < PD_ATTRS_MAX; i++) {
			snprintf(line, sizeof(line), "k%u=%u\n", i * 7 + round, i);
			assert_int_equal(pd_proto_feed(&p, line, strlen(line), &used, &err), 0);
		}
		assert_int_equal(pd_proto_feed(&p, "\n", 1, &used, &err), 1);
		pd_proto_request(&p, &req);
		assert_int_equal(req.count, PD_ATTRS_MAX);
		snprintf(line, sizeof(line), "k%u", 100 * 7 + round);
		assert_string_equal(pd_request_get(&req, line), "100");
		pd_proto_reset(&p);
	}
	for (i = 0; i < PD_ATTRS_MAX - 1; i++) {
		snprintf(line, sizeof(line), "k%u=%u\n", i, i);
		assert_int_equal(pd_proto_feed(&p, line, strlen(line), &used, &err), 0);
	}
	assert_int_equal(pd_proto_feed(&p, "k77=x\n", 6, &used, &err), -1);
	assert_non_null(strstr(err.msg, "k77 given twice"));
	pd_proto_free(&p);
}

/* The known-attribute index agrees with a lookup by name, also when built by hand. */
static void test_known_index(void **state)
{
	static const char in[] = "request=smtpd_access_policy\nprotocol_state=RCPT\n"
	                         "sasl_username=u@example.org\nsenderx=no\nsender=s@x\n"
	                         "recipient=r@y\nsize=12\nSIZE=13\npolicy_context=\n\n";
	static const char *const names[PD_A_COUNT] = {
	    "request",  "protocol_state",  "client_address", "sasl_username",  "sender",
	    "recipient", "instance", "recipient_count", "size",           "policy_context"};
	struct pd_proto p;
	struct pd_request req, manual;
	mw_error err = {""};
	unsigned i;
	(void)state;
	pd_proto_init(&p, &big);
	assert_int_equal(feed_all(&p, in, &err), 1);
	pd_proto_request(&p, &req);
	assert_true(req.indexed);
	for (i = 0; i < PD_A_COUNT; i++) {
		assert_int_equal(pd_known_attr_find(names[i], strlen(names[i])), (int)i);
		assert_string_equal(pd_request_known(&req, (enum pd_known_attr)i),
		                    pd_request_get(&req, names[i]));
	}
	assert_string_equal(pd_request_known(&req, PD_A_SIZE), "12");
	assert_string_equal(pd_request_known(&req, PD_A_SENDER), "s@x");
	assert_string_equal(pd_request_known(&req, PD_A_CLIENT_ADDRESS), "");
	assert_int_equal(pd_known_attr_find("sizes", 5), -1);
	assert_int_equal(pd_known_attr_find("Size", 4), -1);
	/* a request built by hand: unindexed lookups scan, pd_request_index indexes */
	memset(&manual, 0, sizeof(manual));
	manual.attrs[0].name = "sender";
	manual.attrs[0].value = "m@x";
	manual.attrs[1].name = "size";
	manual.attrs[1].value = "7";
	manual.count = 2;
	assert_string_equal(pd_request_known(&manual, PD_A_SENDER), "m@x");
	assert_string_equal(pd_request_known(&manual, PD_A_INSTANCE), "");
	pd_request_index(&manual);
	assert_true(manual.indexed);
	assert_string_equal(pd_request_known(&manual, PD_A_SIZE), "7");
	assert_string_equal(pd_request_known(&manual, PD_A_REQUEST), "");
	/* the next request starts with an empty index */
	pd_proto_reset(&p);
	assert_int_equal(feed_all(&p, "instance=9\n\n", &err), 1);
	pd_proto_request(&p, &req);
	assert_string_equal(pd_request_known(&req, PD_A_INSTANCE), "9");
	assert_string_equal(pd_request_known(&req, PD_A_SENDER), "");
	pd_proto_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_values_and_pipelining),
	    cmocka_unit_test(test_duplicates_with_collisions),
	    cmocka_unit_test(test_many_attributes),
	    cmocka_unit_test(test_known_index),
	};
	MW_RUN_TESTS(tests);
}
