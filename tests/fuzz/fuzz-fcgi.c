/* FUZZ_SOURCES: webapi/api-fcgi.c */
/*
 * fuzz-fcgi.c - fuzz target for the API's FastCGI record parser (libFuzzer entry point).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * The first byte picks where the input is split; both halves are fed to one connection as
 * nginx's bytes would arrive. Checks what the loop promises: every answer it writes is a
 * whole sequence of well-formed version-1 records; the handler only ever sees
 * NUL-terminated parameters it can look up, and a body no longer than max_body; the same
 * input fed in one piece gives the same answers. The same target runs under libFuzzer
 * (scripts/fuzz) and over tests/fuzz/corpus-fcgi in make check (replay-main.c).
 *
 * Diagnostics: a broken invariant prints what broke on stderr and aborts.
 */
#include "mw-build.h"
#include "api-fcgi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY 512

/* broken - report a broken invariant and abort */
static void broken(const char *what)
{
	fprintf(stderr, "fuzz-fcgi: invariant broken: %s\n", what);
	abort();
}

/* handler - look at everything the loop hands over, answer with what it saw */
static void handler(void *ctx, const struct api_fcgi_request *r, mw_str *out)
{
	size_t i;
	(void)ctx;
	if (r->body_len > MAX_BODY || (r->body_too_large && r->body_len != 0))
		broken("body over max_body");
	if (r->nparams > API_FCGI_NPARAMS)
		broken("too many parameters");
	for (i = 0; i < r->nparams; i++)
		if (api_fcgi_param(r, r->names[i]) == NULL)
			broken("a parameter cannot be looked up");
	(void)mw_str_appendf(out, "Status: 200 OK\r\n\r\n%zu %zu %d", r->nparams, r->body_len,
	                     r->bad != NULL);
}

static const struct api_fcgi_conf conf = {.max_body = MAX_BODY, .handler = handler};

/* check_records - out is whole, well-formed records */
static void check_records(const mw_str *out)
{
	const unsigned char *p = (const unsigned char *)out->buf;
	size_t pos = 0;
	while (pos < out->len) {
		size_t clen;
		if (out->len - pos < 8 || p[pos] != 1)
			broken("answer is not a version-1 record");
		clen = ((size_t)p[pos + 4] << 8) | p[pos + 5];
		pos += 8 + clen + p[pos + 6];
		if (pos > out->len)
			broken("answer record longer than what was written");
	}
}

/* run - feed data in two pieces; the answers and whether the connection closed */
static int run(const uint8_t *data, size_t size, size_t cut, mw_str *out)
{
	struct api_fcgi_conn *c = NULL;
	int ret = api_fcgi_feed(&c, &conf, data, cut, out);
	if (ret == 0 && size > cut)
		ret = api_fcgi_feed(&c, &conf, data + cut, size - cut, out);
	api_fcgi_feed_end(&c);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mw_str a, b;
	size_t cut;
	int ra, rb;
	if (size < 1)
		return 0;
	cut = data[0] % size;
	data++;
	size--;
	if (cut > size)
		cut = size;
	mw_str_init(&a, 0);
	mw_str_init(&b, 0);
	ra = run(data, size, cut, &a);
	rb = run(data, size, size, &b);
	check_records(&a);
	check_records(&b);
	if (ra == 0 && rb == 0 &&
	    (a.len != b.len || (a.len > 0 && memcmp(a.buf, b.buf, a.len) != 0)))
		broken("split input answered differently");
	mw_str_free(&a);
	mw_str_free(&b);
	return 0;
}
