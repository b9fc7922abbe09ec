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
    {"a=0123456789012345678901234567890123456789012345678901234567abcd\r\n\r\n", 0, NULL, 1},
    {"a=0123456789012345678901234567890123456789012345678901234567abcde\n", 0,
     "line longer than 64", 0},
    {"a=0123456789012345678901234567890123456789012345678901234567abcd\r\r\n", 0,
     "line longer than 64", 0},
    /* the first offending byte decides: an over-long line before a NUL, a NUL before it */
    {"a=0123456789012345678901234567890123456789012345678901234567abcdef\0\n", 68,
     "line longer than 64", 0},
    {"a=0123456789\0"
     "0123456789012345678901234567890123456789012345678901234567\n",
     72, "NUL byte", 0},
    {"a=1\nb=2\n\0\n", 11, "NUL byte", 0},
    {"\r\n", 0, "empty request", 0},
    {"a=1\nA=2\n\n", 0, NULL, 2}, /* names are case-sensitive */
    {"ab=1\nb=2\na=3\nab=4\n\n", 0, "given twice", 0},
    /* exactly 256 bytes of request (every LF and the blank line count), then one more */
    {"a=012345678901234567890123456789012345678901234567890123456789xy\n"
     "b=012345678901234567890123456789012345678901234567890123456789xy\n"
     "c=012345678901234567890123456789012345678901234567890123456789xy\n"
     "d=012345678901234567890123456789012345678901234567890123456\n\n",
     0, NULL, 4},
    {"a=012345678901234567890123456789012345678901234567890123456789xy\n"
     "b=012345678901234567890123456789012345678901234567890123456789xy\n"
     "c=012345678901234567890123456789012345678901234567890123456789xy\n"
     "d=0123456789012345678901234567890123456789012345678901234567\n\n",
     0, "request larger than 256", 0},
    {"a=012345678901234567890123456789012345678901234567890123456789xy\n"
     "b=012345678901234567890123456789012345678901234567890123456789xy\n"
     "c=012345678901234567890123456789012345678901234567890123456789xy\n"
     "d=012345678901234567890123456789012345678901234567890123456\r\n\n",
     0, "request larger than 256", 0},
    /* 256 bytes stored before the blank line (the old count let the next line overflow) */
    {"a=012345678901234567890123456789012345678901234567890123456789xy\n"
     "b=012345678901234567890123456789012345678901234567890123456789xy\n"
     "c=012345678901234567890123456789012345678901234567890123456789xy\n"
     "d=01234567890123456789012345678901234567890123456789012345678\n"
     "e=0123456789012345678901234567890123456789012345678901234567\n\n",
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
				fail_msg("case %zu (chunk %zu): r=%d err=%s", i, chunks[bytewise],
				         r, err.msg);
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
	    "request",   "protocol_state", "client_address",  "sasl_username", "sender",
	    "recipient", "instance",       "recipient_count", "size",          "policy_context"};
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

/* ---- the size rule at its edges, and requests split anywhere ------------------------ */

/* A small deterministic generator (xorshift64*): the same pieces on every run. */
static uint64_t rng_state = 0x2545F4914F6CDD1DULL;

/* rng - the next pseudo-random number */
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

struct outcome {
	int r;       /* 1 complete, 0 incomplete, -1 refused */
	size_t used; /* bytes of the input consumed when r == 1 */
	char err[sizeof(((mw_error *)0)->msg)];
	unsigned count;
	char flat[20000]; /* the attributes as "name=value\n" */
};

/* feed_pieces - feed in[0..len) in pieces (sizes[] cycled; 0 = the rest) and record what
   came out; the parser must never consume more than it was given */
static void feed_pieces(const struct pd_proto_limits *lim, const char *in, size_t len,
                        const size_t *sizes, size_t nsizes, struct outcome *o)
{
	struct pd_proto p;
	size_t off = 0, k = 0;
	mw_error err = {""};
	o->r = 0;
	o->used = 0;
	o->err[0] = '\0';
	o->count = 0;
	o->flat[0] = '\0';
	pd_proto_init(&p, lim);
	while (off < len) {
		size_t want = nsizes > 0 ? sizes[k++ % nsizes] : 0;
		size_t n = want != 0 && want < len - off ? want : len - off, used = 0;
		/* an exact-size copy: ASan sees any read past the piece */
		char *piece = mw_malloc(n);
		memcpy(piece, in + off, n);
		o->r = pd_proto_feed(&p, piece, n, &used, &err);
		free(piece);
		if (o->r < 0) {
			(void)mw_strlcpy(o->err, err.msg, sizeof(o->err));
			break;
		}
		if (used > n)
			fail_msg("feed consumed %zu of %zu bytes", used, n);
		off += used;
		if (o->r == 1)
			break;
		assert_int_equal(used, n);
	}
	if (o->r == 1) {
		struct pd_request req;
		mw_str flat;
		unsigned i;
		o->used = off;
		pd_proto_request(&p, &req);
		o->count = req.count;
		mw_str_init(&flat, sizeof(o->flat));
		for (i = 0; i < req.count; i++)
			assert_int_equal(
			    mw_str_appendf(&flat, "%s=%s\n", req.attrs[i].name, req.attrs[i].value),
			    0);
		assert_int_equal(mw_strlcpy(o->flat, mw_str_c(&flat), sizeof(o->flat)), 0);
		mw_str_free(&flat);
		assert_true(pd_proto_pending(&p));
		pd_proto_reset(&p);
		assert_false(pd_proto_pending(&p));
	}
	pd_proto_free(&p);
}

/* same_outcome - b (fed in pieces) is exactly a (fed whole) */
static void same_outcome(const struct outcome *a, const struct outcome *b, const char *what)
{
	if (a->r != b->r || strcmp(a->err, b->err) != 0 || a->count != b->count ||
	    a->used != b->used || strcmp(a->flat, b->flat) != 0)
		fail_msg("%s: whole r=%d used=%zu n=%u err=%s; in pieces r=%d used=%zu n=%u err=%s",
		         what, a->r, a->used, a->count, a->err, b->r, b->used, b->count, b->err);
}

/* build_request - a request of exactly total bytes (line ends and the final blank line
   included) with lines of at most line bytes; crlf ends lines with CR LF */
static size_t build_request(char *out, size_t size, size_t total, size_t line, bool crlf)
{
	size_t eol = crlf ? 2 : 1, off = 0;
	unsigned n = 0;
	assert_true(total + 1 <= size && total >= 3 + 2 * eol);
	while (total - off > eol) {
		size_t left = total - off - eol; /* room before the final blank line */
		size_t body = left - eol;        /* bytes of this line's name=value */
		size_t i, nlen;
		char name[16];
		if (body > line)
			body = line;
		/* never leave a remainder too short for a line of its own */
		if (left - (body + eol) != 0 && left - (body + eol) < 3 + eol)
			body -= 3 + eol;
		nlen = (size_t)snprintf(name, sizeof(name), "n%u", n++);
		assert_true(body >= nlen + 1);
		memcpy(out + off, name, nlen);
		out[off + nlen] = '=';
		for (i = nlen + 1; i < body; i++)
			out[off + i] = (char)('a' + (off + i) % 26);
		off += body;
		if (crlf)
			out[off++] = '\r';
		out[off++] = '\n';
	}
	if (crlf)
		out[off++] = '\r';
	out[off++] = '\n';
	assert_int_equal(off, total);
	out[off] = '\0';
	return off;
}

/* The reproducer of issue 9 (item 2) with the daemon's default limits: lines that fill
   max_request_size exactly (one NUL stored per LF), then one more full line, were copied
   past the buffer (heap-buffer-overflow WRITE of size 2048). */
static void test_overflow_reproducer(void **state)
{
	static const struct pd_proto_limits dflt = {2048, 16384, 64};
	static char in[20000];
	struct outcome whole;
	size_t off = 0, i;
	(void)state;
	for (i = 0; i < 8; i++) { /* 7 lines of 2047 bytes and one of 2048: 16384 bytes */
		size_t body = i < 7 ? 2047 : 2048, k;
		off += (size_t)snprintf(in + off, 8, "a%zu=", i);
		for (k = 3; k < body; k++)
			in[off++] = 'x';
		in[off++] = '\n';
	}
	in[off++] = 'z';
	in[off++] = '=';
	for (i = 2; i < 2048; i++)
		in[off++] = 'y';
	in[off++] = '\n';
	in[off++] = '\n';
	feed_pieces(&dflt, in, off, NULL, 0, &whole);
	assert_int_equal(whole.r, -1);
	assert_string_equal(whole.err, "request larger than 16384 bytes");
}

/* A request of exactly max_request bytes (LF or CR LF line ends) passes, one byte more is
   refused, whatever the pieces it arrives in: whole, byte by byte, split in two at every
   offset, and in random pieces (sizes 1, exactly max_line, exactly max_request, and
   anything between). */
static void test_size_edges_in_pieces(void **state)
{
	static const struct pd_proto_limits lims[] = {
	    {64, 256, 16}, {64, 1024, PD_ATTRS_MAX}, {2048, 16384, 64}, {200, 300, 4}};
	static char in[20000];
	size_t li;
	(void)state;
	for (li = 0; li < MW_N_ELEMENTS(lims); li++) {
		const struct pd_proto_limits *lim = &lims[li];
		int delta, crlf;
		for (crlf = 0; crlf < 2; crlf++)
			for (delta = -2; delta <= 2; delta++) {
				size_t total = lim->max_request + (size_t)(ssize_t)delta, len, cut;
				struct outcome whole, part;
				size_t one = 1, rounds;
				char what[128];
				len =
				    build_request(in, sizeof(in), total, lim->max_line, crlf != 0);
				/* a line of the next request follows: it must not be consumed */
				memcpy(in + len, "next=1\n", 7);
				feed_pieces(lim, in, len + 7, NULL, 0, &whole);
				snprintf(what, sizeof(what), "limits %zu/%zu, %zu bytes%s",
				         lim->max_line, lim->max_request, total,
				         crlf ? " CRLF" : "");
				if (delta <= 0) {
					if (whole.r != 1 || whole.used != len)
						fail_msg("%s: r=%d used=%zu err=%s", what, whole.r,
						         whole.used, whole.err);
				} else if (whole.r != -1 ||
				           strstr(whole.err, "request larger than") == NULL) {
					fail_msg("%s: r=%d err=%s", what, whole.r, whole.err);
				}
				feed_pieces(lim, in, len + 7, &one, 1, &part);
				same_outcome(&whole, &part, what);
				/* every offset of the small requests; of the big ones, every
				   61st and each of the last 32 (around the limit) */
				for (cut = 1; cut < len + 7;
				     cut +=
				     lim->max_request <= 1024 || cut + 32 >= len + 7 ? 1 : 61) {
					size_t two[2] = {cut, 0};
					feed_pieces(lim, in, len + 7, two, 2, &part);
					same_outcome(&whole, &part, what);
				}
				for (rounds = 0; rounds < (lim->max_request <= 1024 ? 200u : 20u);
				     rounds++) {
					size_t sizes[16], k;
					for (k = 0; k < MW_N_ELEMENTS(sizes); k++) {
						switch (rng() % 5) {
						case 0:
							sizes[k] = 1;
							break;
						case 1:
							sizes[k] = lim->max_line;
							break;
						case 2:
							sizes[k] = lim->max_request;
							break;
						default:
							sizes[k] = 1 + rng() % (lim->max_line + 2);
						}
					}
					feed_pieces(lim, in, len + 7, sizes, MW_N_ELEMENTS(sizes),
					            &part);
					same_outcome(&whole, &part, what);
				}
			}
	}
}

/* Every case of the table, and random hostile inputs built from request-like pieces, give
   the same outcome in random pieces as whole (and never touch memory outside the buffer:
   ASan). */
static void test_random_pieces(void **state)
{
	static const char *const atoms[] = {"a=1\n",
	                                    "b=2\n",
	                                    "\n",
	                                    "\r\n",
	                                    "=",
	                                    "x",
	                                    "\r",
	                                    "request=smtpd_access_policy\n",
	                                    "sender=",
	                                    "a=1\n",
	                                    "name with space=1\n",
	                                    "\0",
	                                    "0123456789012345678901234567",
	                                    "c=",
	                                    "d=x=y\n",
	                                    "\n\n"};
	static const struct pd_proto_limits lims[] = {{64, 256, 4}, {64, 1024, 8}};
	static char in[4096];
	size_t i, round;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		size_t len = cases[i].len != 0 ? cases[i].len : strlen(cases[i].in), k;
		struct outcome whole, part;
		feed_pieces(&limits, cases[i].in, len, NULL, 0, &whole);
		for (k = 0; k < 50; k++) {
			size_t sizes[8], j;
			for (j = 0; j < MW_N_ELEMENTS(sizes); j++)
				sizes[j] = 1 + rng() % 70;
			feed_pieces(&limits, cases[i].in, len, sizes, MW_N_ELEMENTS(sizes), &part);
			same_outcome(&whole, &part, cases[i].in);
		}
	}
	for (round = 0; round < 3000; round++) {
		const struct pd_proto_limits *lim = &lims[round % 2];
		struct outcome whole, part;
		size_t len = 0, target = rng() % (lim->max_request + 80), sizes[8], j;
		while (len < target) {
			const char *a = atoms[rng() % MW_N_ELEMENTS(atoms)];
			size_t alen = a[0] == '\0' ? 1 : strlen(a);
			if (len + alen > sizeof(in))
				break;
			memcpy(in + len, a, alen);
			len += alen;
		}
		feed_pieces(lim, in, len, NULL, 0, &whole);
		for (j = 0; j < MW_N_ELEMENTS(sizes); j++)
			sizes[j] = rng() % 3 == 0 ? 1 : 1 + rng() % (lim->max_request + 1);
		feed_pieces(lim, in, len, sizes, MW_N_ELEMENTS(sizes), &part);
		same_outcome(&whole, &part, "random input");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_values_and_pipelining),
	    cmocka_unit_test(test_duplicates_with_collisions),
	    cmocka_unit_test(test_many_attributes),
	    cmocka_unit_test(test_known_index),
	    cmocka_unit_test(test_overflow_reproducer),
	    cmocka_unit_test(test_size_edges_in_pieces),
	    cmocka_unit_test(test_random_pieces),
	};
	MW_RUN_TESTS(tests);
}
