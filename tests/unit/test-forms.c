/* test-forms.c - lib/mw-forms: [forms] lines (and each malformed one refused, naming its line),
   the token (round trip, expiry, forgery, another form's token, a tampered one), field
   validation (unknown, required, too long, line breaks, email), the message (HTML-escaped,
   no line break from a field reaches a header, RFC 2047 subject) and the spool (durable
   write, list in order, read back, done and failed). */
#include "mw-build.h"
#include "mw-forms.h"
#include "mw-test.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char conf[] = "[forms]\n"
                           "form = contact info@example.com https://www.example.com "
                           "https://example.com\n"
                           "field = contact name required max=20\n"
                           "field = contact email email\n"
                           "field = contact message required multiline max=200\n"
                           "subject = contact Contact from {name}: {message}\n"
                           "limit = contact per_ip 5/10m\n"
                           "limit = contact per_form 100/1h\n"
                           "honeypot = contact website\n";

/* load - the forms of text (NULL on error, message in err) */
static struct mw_forms *load(const char *text, mw_error *err)
{
	mw_config *cfg = mw_config_load_string(text, strlen(text), "t.conf", err);
	struct mw_forms *f = NULL;
	if (cfg == NULL)
		return NULL;
	if (mw_forms_load(cfg, &f, err) < 0)
		f = NULL;
	mw_config_unref(&cfg);
	return f;
}

static void test_config(void **state)
{
	mw_error err = {""};
	struct mw_forms *f = load(conf, &err);
	const struct mw_form *c;
	(void)state;
	assert_non_null(f);
	c = mw_forms_find(f, "contact");
	assert_non_null(c);
	assert_null(mw_forms_find(f, "other"));
	assert_string_equal(c->to, "info@example.com");
	assert_int_equal(c->norigins, 2);
	assert_true(mw_form_origin_allowed(c, "https://example.com"));
	assert_false(mw_form_origin_allowed(c, "https://evil.example"));
	assert_false(mw_form_origin_allowed(c, NULL));
	assert_int_equal(c->nfields, 3);
	assert_true(c->fields[0].required);
	assert_int_equal(c->fields[0].max, 20);
	assert_true(c->fields[1].email);
	assert_int_equal(c->fields[1].max, MW_FORM_DEFAULT_MAX);
	assert_true(c->fields[2].multiline);
	assert_int_equal(c->ip_count, 5);
	assert_int_equal(c->ip_window, 600);
	assert_int_equal(c->form_count, 100);
	assert_int_equal(c->form_window, 3600);
	assert_string_equal(c->honeypot, "website");
	assert_string_equal(c->subject, "Contact from {name}: {message}");
	mw_forms_free(&f);
}

static void test_config_errors(void **state)
{
	static const char *const bad[] = {
	    "[forms]\nform = Contact info@example.com https://a.example\nfield = Contact a\n",
	    "[forms]\nform = c notanaddress https://a.example\nfield = c a\n",
	    "[forms]\nform = c info@example.com\nfield = c a\n",
	    "[forms]\nform = c info@example.com https://a.example/path\nfield = c a\n",
	    "[forms]\nform = c info@example.com ftp://a.example\nfield = c a\n",
	    "[forms]\nform = c info@example.com https://a.example\n",
	    "[forms]\nform = c info@example.com https://a.example\nfield = d a\n",
	    "[forms]\nform = c info@example.com https://a.example\nfield = c a bogus\n",
	    "[forms]\nform = c info@example.com https://a.example\nfield = c a max=0\n",
	    "[forms]\nform = c info@example.com https://a.example\nfield = c a\nfield = c a\n",
	    "[forms]\nform = c info@example.com https://a.example\nfield = c a\nlimit = c per_ip "
	    "5\n",
	    "[forms]\nform = c info@example.com https://a.example\nfield = c a\nlimit = c x 5/1m\n",
	    "[forms]\nform = c info@example.com https://a.example\nfield = c a\nhoneypot = c a\n",
	    "[forms]\nform = c info@example.com https://a.example\nform = c x@example.com "
	    "https://a.example\nfield = c a\n",
	    "[forms]\nform = c info@example.com https://a.example\nfield = c a email multiline\n",
	    "[forms]\nsender = \"a b@example.com\"\nform = c info@example.com https://a.example\n"
	    "field = c a\n",
	    "[forms]\nsender = nodomain\nform = c info@example.com https://a.example\nfield = c "
	    "a\n",
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(bad); i++) {
		mw_error err = {""};
		struct mw_forms *f = load(bad[i], &err);
		if (f != NULL)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(strstr(err.msg, "[forms]"));
	}
	{ /* the error names the line */
		mw_error err = {""};
		assert_null(load("[forms]\nform = c info@example.com https://a.example\n"
		                 "field = c a\nlimit = c per_ip nope\n",
		                 &err));
		assert_non_null(strstr(err.msg, "t.conf:4"));
	}
}

static void test_token(void **state)
{
	mw_master_key mk, other;
	mw_form_key k, k2;
	char tok[MW_FORM_TOKEN_MAX + 1];
	mw_error err = {""};
	(void)state;
	memset(&mk, 7, sizeof(mk));
	memset(&other, 8, sizeof(other));
	mw_form_key_derive(&mk, &k);
	mw_form_key_derive(&other, &k2);
	assert_memory_not_equal(k.bytes, mk.bytes, sizeof(k.bytes));
	assert_int_equal(mw_form_token_make(&k, "contact", 1000, 3600, tok, &err), 0);
	assert_int_equal(mw_form_token_check(&k, "contact", tok, 1000, 3600, &err), 0);
	assert_int_equal(mw_form_token_check(&k, "contact", tok, 4599, 3600, &err), 0);
	/* expired */
	assert_int_equal(mw_form_token_check(&k, "contact", tok, 4600, 3600, &err), -1);
	assert_non_null(strstr(err.msg, "expired"));
	/* another form, another key: forged */
	assert_int_equal(mw_form_token_check(&k, "other", tok, 1000, 3600, &err), -1);
	assert_non_null(strstr(err.msg, "forged"));
	assert_int_equal(mw_form_token_check(&k2, "contact", tok, 1000, 3600, &err), -1);
	/* a longer expiry written in: the MAC no longer matches */
	{
		char t2[MW_FORM_TOKEN_MAX + 8];
		(void)snprintf(t2, sizeof(t2), "9%s", tok);
		assert_int_equal(mw_form_token_check(&k, "contact", t2, 1000, 3600, &err), -1);
	}
	/* dated too far ahead (made with a longer lifetime) */
	assert_int_equal(mw_form_token_make(&k, "contact", 1000, 86400, tok, &err), 0);
	assert_int_equal(mw_form_token_check(&k, "contact", tok, 1000, 3600, &err), -1);
	/* malformed */
	assert_int_equal(mw_form_token_check(&k, "contact", "", 1000, 3600, &err), -1);
	assert_int_equal(mw_form_token_check(&k, "contact", "1.2.3", 1000, 3600, &err), -1);
	assert_int_equal(mw_form_token_check(&k, "contact", NULL, 1000, 3600, &err), -1);
}

static void test_validate(void **state)
{
	mw_error err = {""};
	struct mw_forms *f = load(conf, &err);
	const struct mw_form *c = mw_forms_find(f, "contact");
	char field[MW_FORM_NAME_MAX + 1];
	struct mw_form_value ok[] = {{"_token", "x"},
	                             {"name", "Zoë"},
	                             {"email", "zoe@example.org"},
	                             {"message", "line 1\r\nline 2"},
	                             {"website", ""}};
	struct mw_form_value v[3];
	char longname[64];
	(void)state;
	assert_int_equal(mw_form_validate(c, ok, MW_N_ELEMENTS(ok), field, &err), 0);
	/* unknown field */
	v[0] = (struct mw_form_value){"name", "a"};
	v[1] = (struct mw_form_value){"message", "m"};
	v[2] = (struct mw_form_value){"phone", "1"};
	assert_int_equal(mw_form_validate(c, v, 3, field, &err), -1);
	assert_string_equal(field, "phone");
	/* required missing, and blank */
	assert_int_equal(mw_form_validate(c, v, 1, field, &err), -1);
	assert_string_equal(field, "message");
	v[1].value = "  \n ";
	assert_int_equal(mw_form_validate(c, v, 2, field, &err), -1);
	assert_string_equal(field, "message");
	/* too long: 20 characters fit (UTF-8 counted as characters), 21 do not */
	v[1].value = "m";
	v[0].value = "ééééééééééééééééééée";
	assert_int_equal(mw_form_validate(c, v, 2, field, &err), 0);
	memset(longname, 'a', 21);
	longname[21] = '\0';
	v[0].value = longname;
	assert_int_equal(mw_form_validate(c, v, 2, field, &err), -1);
	assert_string_equal(field, "name");
	assert_non_null(strstr(err.msg, "longer than 20"));
	/* header injection: a line break in a one-line field */
	v[0].value = "x\r\nBcc: victim@example.net";
	assert_int_equal(mw_form_validate(c, v, 2, field, &err), -1);
	assert_string_equal(field, "name");
	v[0].value = "x\nBcc: victim@example.net";
	assert_int_equal(mw_form_validate(c, v, 2, field, &err), -1);
	/* email */
	v[0].value = "a";
	v[2] = (struct mw_form_value){"email", "a@b.example>\r\nBcc: x@y.example"};
	assert_int_equal(mw_form_validate(c, v, 3, field, &err), -1);
	assert_string_equal(field, "email");
	v[2].value = "not an address";
	assert_int_equal(mw_form_validate(c, v, 3, field, &err), -1);
	v[2].value = "";
	assert_int_equal(mw_form_validate(c, v, 3, field, &err), 0);
	/* invalid UTF-8, control characters */
	v[0].value = "\xff";
	assert_int_equal(mw_form_validate(c, v, 2, field, &err), -1);
	v[0].value = "a\x01";
	assert_int_equal(mw_form_validate(c, v, 2, field, &err), -1);
	mw_forms_free(&f);
}

/* header_block - the header of msg (up to the blank line) */
static char *header_block(const mw_str *msg)
{
	const char *end = strstr(msg->buf, "\r\n\r\n");
	assert_non_null(end);
	return mw_strndup(msg->buf, (size_t)(end - msg->buf) + 2);
}

/* decoded_part - the base64 body of the part whose Content-Type starts with type */
static char *decoded_part(const mw_str *msg, const char *type)
{
	const char *p = strstr(msg->buf, type), *start, *end;
	unsigned char *bin;
	size_t binlen = 0;
	assert_non_null(p);
	start = strstr(p, "\r\n\r\n") + 4;
	end = strstr(start, "--=_mwform");
	bin = mw_malloc((size_t)(end - start) + 1);
	assert_int_equal(sodium_base642bin(bin, (size_t)(end - start), start, (size_t)(end - start),
	                                   "\r\n", &binlen, NULL, sodium_base64_VARIANT_ORIGINAL),
	                 0);
	bin[binlen] = '\0';
	return (char *)bin;
}

static void test_message(void **state)
{
	mw_error err = {""};
	struct mw_forms *f = load(conf, &err);
	const struct mw_form *c = mw_forms_find(f, "contact");
	struct mw_form_value v[] = {
	    {"name", "<b>Bob</b> & \"co\""},
	    {"email", "bob@example.org"},
	    {"message", "Hi\r\nBcc: victim@example.net\r\n<script>x</script>"}};
	mw_str msg;
	char *head, *html, *text;
	(void)state;
	mw_str_init(&msg, MW_FORM_MESSAGE_MAX);
	assert_int_equal(
	    mw_form_message(c, v, 3, "forms@example.com", "192.0.2.7", "00ab-cd", 0, &msg, &err),
	    0);
	head = header_block(&msg);
	assert_non_null(strstr(head, "From: <forms@example.com>\r\n"));
	assert_non_null(strstr(head, "To: <info@example.com>\r\n"));
	assert_non_null(strstr(head, "Reply-To: <bob@example.org>\r\n"));
	assert_non_null(strstr(head, "Message-ID: <form.00ab-cd@example.com>\r\n"));
	/* the message's line breaks became blanks in the subject: no Bcc header anywhere */
	assert_non_null(strstr(
	    head, "Subject: Contact from <b>Bob</b> & \"co\": Hi  Bcc: victim@example.net  "));
	assert_null(strstr(head, "\nBcc:"));
	html = decoded_part(&msg, "Content-Type: text/html");
	assert_non_null(strstr(html, "&lt;b&gt;Bob&lt;/b&gt; &amp; &quot;co&quot;"));
	assert_non_null(strstr(html, "&lt;script&gt;x&lt;/script&gt;"));
	assert_null(strstr(html, "<script>"));
	text = decoded_part(&msg, "Content-Type: text/plain");
	assert_non_null(strstr(text, "name: <b>Bob</b>"));
	free(head);
	free(html);
	free(text);
	/* a subject that is not ASCII is RFC 2047 encoded */
	mw_str_reset(&msg);
	v[0].value = "Zoë";
	v[2].value = "x";
	assert_int_equal(
	    mw_form_message(c, v, 3, "forms@example.com", "192.0.2.7", "00ab-ce", 0, &msg, &err),
	    0);
	assert_non_null(strstr(msg.buf, "Subject: =?UTF-8?B?"));
	mw_str_free(&msg);
	mw_forms_free(&f);
}

static void test_spool(void **state)
{
	char dir[] = "/tmp/mw-test-forms-XXXXXX", id1[MW_FORM_SPOOL_ID_MAX + 1],
	     id2[MW_FORM_SPOOL_ID_MAX + 1], s[320], r[320], path[600];
	char **ids;
	size_t n;
	mw_error err = {""};
	mw_str msg;
	struct stat st;
	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(mw_form_spool_init(dir, &err), 0);
	mw_form_spool_id(id1);
	usleep(2000);
	mw_form_spool_id(id2);
	assert_true(strcmp(id1, id2) < 0);
	assert_int_equal(
	    mw_form_spool_write(dir, id2, "f@example.com", "t@example.com", "B\r\n", 3, &err), 0);
	assert_int_equal(mw_form_spool_write(dir, id1, "f@example.com", "t@example.com",
	                                     "A\r\n\r\nbody\r\n", 11, &err),
	                 0);
	/* an id twice is refused (O_EXCL in tmp/ is not the guard: new/ is replaced by rename;
	   ids are unique by construction) */
	assert_int_equal(
	    mw_form_spool_write(dir, "../x", "f@example.com", "t@example.com", "x", 1, &err), -1);
	assert_int_equal(
	    mw_form_spool_write(dir, id1, "f@example.com\nto x", "t@example.com", "x", 1, &err),
	    -1);
	assert_int_equal(mw_form_spool_list(dir, &ids, &n, 100, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], id1);
	assert_string_equal(ids[1], id2);
	mw_str_init(&msg, 0);
	assert_int_equal(mw_form_spool_read(dir, ids[0], s, sizeof(s), r, sizeof(r), &msg, &err),
	                 0);
	assert_string_equal(s, "f@example.com");
	assert_string_equal(r, "t@example.com");
	assert_string_equal(msg.buf, "A\r\n\r\nbody\r\n");
	assert_int_equal(mw_form_spool_done(dir, ids[0], false, &err), 0);
	assert_int_equal(mw_form_spool_done(dir, ids[1], true, &err), 0);
	(void)snprintf(path, sizeof(path), "%s/failed/%s", dir, id2);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(ids[0]);
	free(ids[1]);
	free(ids);
	assert_int_equal(mw_form_spool_list(dir, &ids, &n, 100, &err), 0);
	assert_int_equal(n, 0);
	free(ids);
	mw_str_free(&msg);
	(void)unlink(path);
	(void)snprintf(path, sizeof(path), "%s/failed", dir);
	(void)rmdir(path);
	(void)snprintf(path, sizeof(path), "%s/new", dir);
	(void)rmdir(path);
	(void)snprintf(path, sizeof(path), "%s/tmp", dir);
	(void)rmdir(path);
	(void)rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config),  cmocka_unit_test(test_config_errors),
	    cmocka_unit_test(test_token),   cmocka_unit_test(test_validate),
	    cmocka_unit_test(test_message), cmocka_unit_test(test_spool),
	};
	if (sodium_init() < 0)
		return 1;
	MW_RUN_TESTS(tests);
}
