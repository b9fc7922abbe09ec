/* FUZZ_SOURCES: policy-daemon/pd-proto.c */
/*
 * fuzz-pdproto.c - fuzz target for the policy protocol parser (libFuzzer entry point).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * The input is a small header and the bytes a client would send:
 *   byte 0       which limits (a table: tiny, small, the daemon's defaults)
 *   byte 1       k, the number of piece-size bytes that follow (k % 16)
 *   bytes 2..    k piece sizes, used in turn (0 = exactly max_request, 255 = exactly
 *                max_line, anything else that many bytes); none = the whole input at once
 *   the rest     the stream, fed to pd_proto_feed in those pieces; every complete request
 *                is taken, checked and reset, and the parser goes on with what follows
 *                (pipelining), as mailwarden-policyd does.
 * Each piece is a copy of exactly its size, so ASan sees a read past it. The same stream is
 * then fed whole, and both runs must give the same requests and the same error: how bytes
 * are split between reads must never change what the parser decides. A complete request
 * must satisfy what the parser promises (attribute count within max_attrs, names of
 * [A-Za-z0-9_-], no name twice, values without LF or NUL, the request no larger than
 * max_request).
 * The same target runs under libFuzzer (scripts/fuzz) and over tests/fuzz/corpus-pdproto in
 * make check (replay-main.c).
 *
 * Diagnostics: a broken invariant prints what broke on stderr and aborts.
 */
#include "mw-build.h"
#include "../../policy-daemon/pd-proto.h" /* found without -Ipolicy-daemon */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct pd_proto_limits fuzz_limits[] = {
    {64, 256, 4},
    {64, 1024, 16},
    {2048, 16384, 64},
    {100, 150, PD_ATTRS_MAX},
};

#define FUZZ_TRACE_MAX 8192

/* A run's outcome, as a flat transcript: each request's attributes, then the error. */
struct trace {
	char text[FUZZ_TRACE_MAX];
	size_t len;
	bool truncated;
};

/* broken - report a broken invariant and abort */
static void broken(const char *what)
{
	fprintf(stderr, "fuzz-pdproto: invariant broken: %s\n", what);
	abort();
}

/* trace_add - append n bytes (the transcript is bounded: a long run compares a prefix and
   its length in requests) */
static void trace_add(struct trace *t, const char *s, size_t n)
{
	if (t->truncated || n > sizeof(t->text) - t->len) {
		t->truncated = true;
		return;
	}
	memcpy(t->text + t->len, s, n);
	t->len += n;
}

/* check_request - what a complete request promises; recorded in t */
static void check_request(const struct pd_proto_limits *lim, struct pd_proto *p, struct trace *t,
                          size_t request_bytes)
{
	struct pd_request req;
	unsigned i, j;
	pd_proto_request(p, &req);
	if (req.count == 0 || req.count > lim->max_attrs)
		broken("attribute count outside 1..max_attrs");
	if (request_bytes > lim->max_request)
		broken("request larger than max_request accepted");
	for (i = 0; i < req.count; i++) {
		const char *n = req.attrs[i].name, *v = req.attrs[i].value;
		size_t nlen = strlen(n), vlen = strlen(v);
		if (nlen == 0 || strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                           "0123456789_-") != nlen)
			broken("attribute name empty or with a forbidden byte");
		if (memchr(v, '\n', vlen) != NULL)
			broken("LF inside a value");
		if (nlen + 1 + vlen > lim->max_line)
			broken("line longer than max_line accepted");
		for (j = 0; j < i; j++)
			if (strcmp(req.attrs[j].name, n) == 0)
				broken("a name twice");
		if (strcmp(pd_request_get(&req, n), v) != 0)
			broken("pd_request_get disagrees with the attribute list");
		trace_add(t, n, nlen);
		trace_add(t, "=", 1);
		trace_add(t, v, vlen);
		trace_add(t, "\n", 1);
	}
	trace_add(t, "\n", 1);
}

/* run - feed stream[0..len) in pieces (sizes[0..nsizes) in turn; none = whole) */
static void run(const struct pd_proto_limits *lim, const uint8_t *stream, size_t len,
                const uint8_t *sizes, size_t nsizes, struct trace *t)
{
	struct pd_proto p;
	size_t off = 0, k = 0, request_start = 0;
	mw_error err = {""};
	pd_proto_init(&p, lim);
	memset(t, 0, sizeof(*t));
	while (off < len) {
		size_t want = len - off, n, used = 0, done = 0;
		char *piece;
		if (nsizes > 0) {
			uint8_t b = sizes[k++ % nsizes];
			want = b == 0 ? lim->max_request : b == 255 ? lim->max_line : b;
		}
		n = want < len - off ? want : len - off;
		piece = malloc(n > 0 ? n : 1);
		if (piece == NULL)
			abort();
		memcpy(piece, stream + off, n);
		while (done < n) {
			int r = pd_proto_feed(&p, piece + done, n - done, &used, &err);
			if (r < 0) {
				trace_add(t, "error: ", 7);
				trace_add(t, err.msg, strlen(err.msg));
				free(piece);
				pd_proto_free(&p);
				return;
			}
			if (used > n - done)
				broken("feed consumed more than it was given");
			done += used;
			if (r == 0) {
				if (done != n)
					broken("an incomplete request left bytes unconsumed");
				break;
			}
			check_request(lim, &p, t, off + done - request_start);
			request_start = off + done;
			pd_proto_reset(&p);
			if (pd_proto_pending(&p))
				broken("pending after reset");
		}
		free(piece);
		off += n;
	}
	trace_add(t, pd_proto_pending(&p) ? "incomplete" : "end", pd_proto_pending(&p) ? 10 : 3);
	pd_proto_free(&p);
}

/* LLVMFuzzerTestOneInput - one stream, fed in the pieces its header names and whole */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct trace pieces, whole;
	const struct pd_proto_limits *lim;
	size_t nsizes;
	if (size < 2)
		return 0;
	lim = &fuzz_limits[data[0] % (sizeof(fuzz_limits) / sizeof(fuzz_limits[0]))];
	nsizes = data[1] % 16;
	if (size < 2 + nsizes)
		return 0;
	run(lim, data + 2 + nsizes, size - 2 - nsizes, data + 2, nsizes, &pieces);
	run(lim, data + 2 + nsizes, size - 2 - nsizes, NULL, 0, &whole);
	if (pieces.len != whole.len || pieces.truncated != whole.truncated ||
	    memcmp(pieces.text, whole.text, whole.len) != 0) {
		fprintf(stderr, "fuzz-pdproto: in pieces:\n%.*s\nwhole:\n%.*s\n", (int)pieces.len,
		        pieces.text, (int)whole.len, whole.text);
		broken("the outcome depends on how the input was split");
	}
	return 0;
}
