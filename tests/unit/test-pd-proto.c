/* test-pd-proto.c - the policy protocol parser on good and hostile input: every rule refuses
   its input (with a reason), good requests parse whole, in one piece or byte by byte. */
#include "mw-build.h"
#include "pd-proto.h"

#include "mw-test.h"

#include <stdio.h>
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
};

/* run - feed in (all at once or byte by byte); 1, 0 or -1 and the error */
static int run(const char *in, size_t len, bool bytewise, struct pd_request *req, mw_error *err)
{
	struct pd_proto p;
	size_t off = 0, used;
	int r = 0;
	pd_proto_init(&p, &limits);
	while (off < len) {
		size_t n = bytewise ? 1 : len - off;
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
	size_t i;
	int bytewise;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++)
		for (bytewise = 0; bytewise < 2; bytewise++) {
			struct pd_request req;
			mw_error err = {""};
			size_t len = cases[i].len != 0 ? cases[i].len : strlen(cases[i].in);
			int r = run(cases[i].in, len, bytewise, &req, &err);
			if (cases[i].err == NULL) {
				if (r != 1 || req.count != cases[i].nattrs)
					fail_msg("case %zu: r=%d count=%u err=%s", i, r, req.count,
					         err.msg);
			} else if (r != -1 || strstr(err.msg, cases[i].err) == NULL) {
				fail_msg("case %zu (bytewise %d): r=%d err=%s", i, bytewise, r,
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_values_and_pipelining),
	};
	MW_RUN_TESTS(tests);
}
