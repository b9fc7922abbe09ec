/* test-plugin-header.c - the plugin's in-memory header reader (dovecot-plugin/
   mw-plugin-header.c) against Dovecot's own message header parser (libdovecot), read the
   way the plugin read every delivered header before (each wanted field's lines joined
   with LF, the blanks at its start skipped, the last LF dropped): hand-written blocks with
   their expected values, then random blocks of names, colons, blanks, CRs, NULs, stray LFs,
   continuation lines and over-long names, where both must give the same values for the
   same fields in the same order. */
#include "lib.h"
#include "buffer.h"
#include "str.h"
#include "message-header-parser.h"
/* istream.h declares functions with () that -Wstrict-prototypes refuses */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include "istream.h"
#pragma GCC diagnostic pop

#include "mw-plugin-header.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#define N_NAMES 6

static char long_name[1001]; /* 1000 bytes: the longest name Dovecot returns */
static const char *names[N_NAMES] = {"Subject",           "X-Team", "List-Id", "To",
                                     "X-Mailwarden-Spam", long_name};

/* dump_value - one found value into the dump: the name's index, its length, its bytes */
static void dump_value(buffer_t *dump, unsigned int idx, const void *data, size_t len)
{
	str_printfa(dump, "[%u:%zu:", idx, len);
	buffer_append(dump, data, len);
	buffer_append_c(dump, ']');
}

/* reference - the values of names in block, through Dovecot's parser as the plugin read
   them before mw-plugin-header.c */
static void reference(const unsigned char *block, size_t len, buffer_t *dump)
{
	struct istream *input = i_stream_create_from_data(block, len);
	struct message_header_parser_ctx *parser;
	struct message_header_line *hdr;
	string_t *lines = str_new(default_pool, 256);
	int cur = -1, ret;
	unsigned int i;

	parser = message_parse_header_init(input, NULL,
	                                   MESSAGE_HEADER_PARSER_FLAG_SKIP_INITIAL_LWSP |
	                                       MESSAGE_HEADER_PARSER_FLAG_DROP_CR);
	for (;;) {
		ret = message_parse_header_next(parser, &hdr);
		if (ret <= 0 || !hdr->continued) {
			if (cur >= 0) {
				const unsigned char *p = str_data(lines);
				size_t n = str_len(lines);
				while (n > 0 && IS_LWSP(*p)) {
					p++;
					n--;
				}
				if (n > 0 && p[n - 1] == '\n')
					n--;
				dump_value(dump, (unsigned int)cur, p, n);
			}
			cur = -1;
			if (ret <= 0)
				break;
			if (hdr->eoh || hdr->middle_len == 0)
				continue;
			for (i = 0; i < N_NAMES; i++)
				if (strcasecmp(names[i], hdr->name) == 0)
					break;
			if (i == N_NAMES)
				continue;
			cur = (int)i;
			str_truncate(lines, 0);
		}
		if (cur < 0)
			continue;
		str_append_data(lines, hdr->value, hdr->value_len);
		if (!hdr->no_newline)
			str_append_c(lines, '\n');
	}
	message_parse_header_deinit(&parser);
	str_free(&lines);
	i_stream_unref(&input);
}

/* candidate - the same through mw-plugin-header.c, as the plugin reads them now */
static void candidate(const unsigned char *block, size_t len, buffer_t *dump)
{
	struct mw_hdr_field f;
	size_t pos = 0;
	unsigned int i;
	while (mw_hdr_next(block, len, &pos, &f) > 0) {
		unsigned char *out;
		size_t n;
		for (i = 0; i < N_NAMES; i++)
			if (f.name_len == strlen(names[i]) && f.name_len > 0 &&
			    i_memcasecmp(f.name, names[i], f.name_len) == 0)
				break;
		if (i == N_NAMES)
			continue;
		out = i_malloc(f.value_len + 1);
		n = mw_hdr_value(&f, out);
		assert_true(n <= f.value_len);
		dump_value(dump, i, out, n);
		i_free(out);
	}
}

/* check_block - both readers agree on the header block at the start of data; returns the
   block's length */
static size_t check_block(const unsigned char *data, size_t size)
{
	size_t len = mw_hdr_block_end(data, size);
	buffer_t *want = buffer_create_dynamic(default_pool, 256);
	buffer_t *got = buffer_create_dynamic(default_pool, 256);
	assert_true(len > 0);
	reference(data, len, want);
	candidate(data, len, got);
	if (!buffer_cmp(want, got)) {
		print_error("block (%zu bytes): ", len);
		for (size_t i = 0; i < len; i++)
			print_error(data[i] >= 32 && data[i] < 127 ? "%c" : "\\x%02x", data[i]);
		print_error("\nDovecot: %.*s\nours:    %.*s\n", (int)want->used,
		            (const char *)want->data, (int)got->used, (const char *)got->data);
		fail_msg("the readers disagree");
	}
	buffer_free(&want);
	buffer_free(&got);
	return len;
}

/* block_of - "NAME" SEP ": v" and the empty line into buf (sized for it) */
static size_t block_of(char *buf, size_t cap, const char *name, const char *sep)
{
	int n = snprintf(buf, cap, "%s%s: v\n\n", name, sep);
	assert_true(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

/* expect - the values our reader finds in text (a whole message), as a dump */
static void expect(const char *text, size_t size, const char *dump_text, size_t dump_len)
{
	buffer_t *got = buffer_create_dynamic(default_pool, 256);
	size_t len = check_block((const unsigned char *)text, size);
	candidate((const unsigned char *)text, len, got);
	if (got->used != dump_len || memcmp(got->data, dump_text, dump_len) != 0)
		print_error("found %.*s\n", (int)got->used, (const char *)got->data);
	assert_int_equal(got->used, dump_len);
	assert_memory_equal(got->data, dump_text, dump_len);
	buffer_free(&got);
}
#define EXPECT(text, dump) expect(text, sizeof(text) - 1, dump, sizeof(dump) - 1)

static void test_known_blocks(void **state)
{
	(void)state;
	memset(long_name, 'n', sizeof(long_name) - 1);
	/* folded: the line end and the blank after it stay (LF, blank) */
	EXPECT("Subject: quarterly\r\n report due\r\n\r\nbody", "[0:21:quarterly\n report due]");
	/* lower-case names, blanks before the colon, two occurrences in order */
	EXPECT("list-id: <a.example>\nList-Id\t : <b.example>\n\n",
	       "[2:11:<a.example>][2:11:<b.example>]");
	/* a value of blanks only is empty; an empty value is empty */
	EXPECT("X-Team:   \r\nTo:\r\n\r\n", "[1:0:][3:0:]");
	/* no colon: no field (and its continuation is not one either) */
	EXPECT("Subject\r\n To: x\r\nTo: y\r\n\r\n", "[3:1:y]");
	/* a name ends at its first NUL; a NUL in a value is kept (the caller replaces it) */
	EXPECT("To\0x: a\0b\n\n", "[3:3:a\0b]");
	/* an empty first line before a continuation: the value starts with the line end */
	EXPECT("Subject:\r\n\tnext\r\n\r\n", "[0:6:\n\tnext]");
	/* a CR not before the line end stays; CR CR LF keeps one CR */
	EXPECT("Subject: a\rb\r\r\n\r\n", "[0:4:a\rb\r]");
	/* the header block of a message without one */
	EXPECT("\r\nSubject: body\r\n", "");
	/* a leading blank on the first line is part of the name */
	EXPECT(" To: x\n\n", "");
}

static void test_long_names(void **state)
{
	char buf[2200];
	size_t n;
	(void)state;
	memset(long_name, 'n', sizeof(long_name) - 1);
	/* 1000 bytes: a field; 1001: none (Dovecot returns the line as a value) */
	n = block_of(buf, sizeof(buf), long_name, "");
	expect(buf, n, "[5:1:v]", 7);
	n = block_of(buf, sizeof(buf), long_name, "n");
	expect(buf, n, "", 0);
	/* the limit is on the name without the blanks before the colon */
	n = block_of(buf, sizeof(buf), long_name, " \t");
	expect(buf, n, "[5:1:v]", 7);
}

/* rnd - a small deterministic generator (xorshift), so a failure can be replayed */
static uint32_t rnd_state = 2463534242u;
static uint32_t rnd(uint32_t n)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state % n;
}

static void append_random_text(buffer_t *b, unsigned int max)
{
	static const char alphabet[] = "ab  \t\t\r:=?\0\xc3\xa9Z";
	unsigned int i, n = rnd(max + 1);
	for (i = 0; i < n; i++) {
		if (rnd(40) == 0)
			buffer_append_c(b, '\n'); /* a stray line end inside a value */
		else
			buffer_append_c(b, (unsigned char)alphabet[rnd(sizeof(alphabet) - 1)]);
	}
}

static void test_random_blocks(void **state)
{
	static const char *const rnames[] = {
	    "Subject",
	    "subject",
	    "SUBJECT",
	    "X-Team",
	    "x-team",
	    "List-Id",
	    "To",
	    "",
	    "Sub\0ject",
	    "To\0",
	    " To",
	    "Subject ",
	    "X-Mailwarden-Spam",
	    "Received",
	    "T",
	};
	static const char *const seps[] = {":", " :", "\t:", "::", "", " \t :", ": "};
	static const char *const ends[] = {"\n", "\r\n", "\r\r\n"};
	unsigned int iter, lines, l, k;
	(void)state;
	memset(long_name, 'n', sizeof(long_name) - 1);
	for (iter = 0; iter < 30000; iter++) {
		buffer_t *b = buffer_create_dynamic(default_pool, 512);
		lines = rnd(12);
		for (l = 0; l < lines; l++) {
			unsigned int r = rnd(40);
			if (r == 0)
				buffer_append(b, long_name, 1000 - rnd(2) + rnd(2));
			else if (r == 1)
				append_random_text(b, 6); /* a line of anything */
			else {
				const char *nm = rnames[rnd(N_ELEMENTS(rnames))];
				/* names with a NUL inside: their full length */
				size_t nl = nm[0] == 'S' && nm[3] == '\0'          ? 8
				            : strcmp(nm, "To") == 0 && rnd(4) == 0 ? 3
				                                                   : strlen(nm);
				buffer_append(b, nm, nl);
			}
			str_append(b, seps[rnd(N_ELEMENTS(seps))]);
			append_random_text(b, 10);
			str_append(b, ends[rnd(N_ELEMENTS(ends))]);
			for (k = rnd(4) == 0 ? rnd(3) + 1 : 0; k > 0; k--) {
				buffer_append_c(b, rnd(2) == 0 ? ' ' : '\t');
				append_random_text(b, 8);
				str_append(b, ends[rnd(N_ELEMENTS(ends))]);
			}
		}
		/* the empty line (an earlier one may end the block first), then a body */
		str_append(b, rnd(2) == 0 ? "\r\n" : "\n");
		str_append(b, "body\r\n");
		(void)check_block(b->data, b->used);
		buffer_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_blocks),
	    cmocka_unit_test(test_long_names),
	    cmocka_unit_test(test_random_blocks),
	};
	int ret;
	lib_init();
	cmocka_set_message_output(CM_OUTPUT_TAP);
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	lib_deinit();
	return ret;
}
