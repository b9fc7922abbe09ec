/*
 * mw-forms.c - contact forms (issue 18): configuration, token, field checks, the message,
 * the spool.
 *
 * Public: mw_forms_load, mw_forms_free, mw_forms_find, mw_form_origin_allowed,
 * mw_form_key_derive, mw_form_token_make, mw_form_token_check, mw_form_validate,
 * mw_form_value_get, mw_form_message, mw_form_subject,
 * mw_form_spool_init, mw_form_spool_id, mw_form_spool_write, mw_form_spool_read,
 * mw_form_spool_list, mw_form_spool_done.
 *
 * Configuration. mailwarden.conf has no named sections, so a form is a set of repeatable
 * lines in [forms], each starting with the form's name (as [policyd] limit lines are):
 *   form     = NAME RECIPIENT ORIGIN [ORIGIN...]
 *   field    = NAME FIELD [required] [email] [multiline] [max=N]
 *   subject  = NAME TEMPLATE...            (the rest of the line; {field} is replaced)
 *   limit    = NAME per_ip|per_form COUNT/WINDOW
 *   honeypot = NAME FIELD
 * Every line other than form must name a form declared by a form line; a form needs at least
 * one field. Errors name the line (mw_config_list_origin).
 *
 * The token is "EXPIRY.NONCE.MAC": MAC = HMAC-SHA256 over "mwform1", the form, EXPIRY and
 * NONCE (NUL separated) with a key derived from the master key (libsodium's KDF, context
 * "mwforms1"), compared in constant time. It is not single-use: it proves the submitter
 * fetched it from us recently (with the form page's Origin), which with the Origin check
 * stops cross-site posting; flooding is the rate limits' job.
 *
 * The spool is a maildir-like directory: a form is written to tmp/, fsync'd, renamed into
 * new/ and new/ fsync'd before the API answers 202; the flusher removes it (or moves it to
 * failed/ on a permanent refusal) only after Postfix answered. A spool file is
 * "mwform 1\nfrom SENDER\nto RCPT\n\n" followed by the message with CRLF lines.
 *
 * Diagnostics: every failure comes back in error_r; submitted values are never echoed.
 */
#include "mw-build.h"
#include "mw-forms.h"
#include "mw-addr.h"
#include "mw-log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_NONCE_BYTES 12

/* ---- configuration ----------------------------------------------------------------- */

/* name_ok - a form or field name: 1..MW_FORM_NAME_MAX of [a-z0-9_-], starting alnum */
static bool name_ok(const char *s, size_t n)
{
	size_t i;
	if (n == 0 || n > MW_FORM_NAME_MAX ||
	    !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '-'))
			return false;
	return true;
}

/* next_word - the next blank-separated word of *p (advancing it); false at the end */
static bool next_word(const char **p, const char **w, size_t *n)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0')
		return false;
	*w = s;
	while (*s != '\0' && *s != ' ' && *s != '\t')
		s++;
	*n = (size_t)(s - *w);
	*p = s;
	return true;
}

/* find_n - the form named s[0..n) */
static struct mw_form *find_n(struct mw_forms *f, const char *s, size_t n)
{
	size_t i;
	for (i = 0; i < f->n; i++)
		if (strlen(f->forms[i].name) == n && memcmp(f->forms[i].name, s, n) == 0)
			return &f->forms[i];
	return NULL;
}

/* parse_rate - COUNT/WINDOW (a duration) */
static int parse_rate(const char *w, size_t n, int64_t *count_r, int64_t *window_r)
{
	char buf[64];
	const char *slash;
	long long c = 0, win;
	size_t i;
	mw_error err;
	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, w, n);
	buf[n] = '\0';
	slash = strchr(buf, '/');
	if (slash == NULL || slash == buf)
		return -1;
	for (i = 0; buf + i < slash; i++) {
		if (buf[i] < '0' || buf[i] > '9' || c > 100000000)
			return -1;
		c = c * 10 + (buf[i] - '0');
	}
	if (c < 1 || mw_config_parse_duration(slash + 1, &win, &err) < 0 || win < 1 ||
	    win > 31 * 86400)
		return -1;
	*count_r = c;
	*window_r = win;
	return 0;
}

/* origin_ok - http(s)://host[:port] as a browser sends it: no path, no user info */
static bool origin_ok(const char *w, size_t n)
{
	size_t i, skip;
	if (n > MW_FORM_ORIGIN_MAX)
		return false;
	if (n > 8 && memcmp(w, "https://", 8) == 0)
		skip = 8;
	else if (n > 7 && memcmp(w, "http://", 7) == 0)
		skip = 7;
	else
		return false;
	for (i = skip; i < n; i++)
		if (!((w[i] >= 'a' && w[i] <= 'z') || (w[i] >= '0' && w[i] <= '9') || w[i] == '.' ||
		      w[i] == '-' || w[i] == ':' || w[i] == '[' || w[i] == ']'))
			return false;
	return true;
}

/* load_forms - the form lines */
static int load_forms(const mw_config *cfg, struct mw_forms *f, mw_error *error_r)
{
	const char *list = mw_config_list(cfg, MWK_FORMS_FORM), *line = list, *p, *w;
	char where[128];
	size_t item = 0, n;
	while (*line != '\0') {
		const char *end = strchr(line, '\n');
		char buf[MW_CONFIG_MAX_LINE + 1];
		struct mw_form *form;
		struct mw_addr addr;
		mw_error err;
		size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
		const char *origin =
		    mw_config_list_origin(cfg, MWK_FORMS_FORM, item, where, sizeof(where));
		if (len > MW_CONFIG_MAX_LINE)
			len = MW_CONFIG_MAX_LINE;
		memcpy(buf, line, len);
		buf[len] = '\0';
		p = buf;
		if (!next_word(&p, &w, &n) || !name_ok(w, n)) {
			mw_error_set(error_r,
			             "%s: [forms] form: expected NAME RECIPIENT ORIGIN..., NAME of "
			             "a-z 0-9 _ -",
			             origin);
			return -1;
		}
		if (find_n(f, w, n) != NULL) {
			mw_error_set(error_r, "%s: [forms] form %.*s is declared twice", origin,
			             (int)n, w);
			return -1;
		}
		if (f->n == MW_FORMS_MAX) {
			mw_error_set(error_r, "%s: [forms] more than %d forms", origin,
			             MW_FORMS_MAX);
			return -1;
		}
		form = &f->forms[f->n];
		memset(form, 0, sizeof(*form));
		memcpy(form->name, w, n);
		if (!next_word(&p, &w, &n) || mw_addr_parse_envelope(w, n, true, &addr, &err) < 0 ||
		    addr.null_path || strchr(addr.domain, '.') == NULL) {
			mw_error_set(error_r,
			             "%s: [forms] form %s: the recipient is not an address", origin,
			             form->name);
			return -1;
		}
		(void)mw_strlcpy(form->to, addr.addr, sizeof(form->to));
		while (next_word(&p, &w, &n)) {
			if (!origin_ok(w, n) || form->norigins == MW_FORM_ORIGINS_MAX) {
				mw_error_set(
				    error_r,
				    "%s: [forms] form %s: an origin is http(s)://host[:port] "
				    "(lower case, no path; at most %d)",
				    origin, form->name, MW_FORM_ORIGINS_MAX);
				return -1;
			}
			memcpy(form->origins[form->norigins], w, n);
			form->origins[form->norigins++][n] = '\0';
		}
		if (form->norigins == 0) {
			mw_error_set(error_r, "%s: [forms] form %s: no allowed origin", origin,
			             form->name);
			return -1;
		}
		memcpy(form->subject, "Form ", 5);
		memcpy(form->subject + 5, form->name, strlen(form->name) + 1);
		f->n++;
		item++;
		line = end != NULL ? end + 1 : line + strlen(line);
	}
	return 0;
}

/* field_line - one field line */
static int field_line(struct mw_forms *f, const char *p, const char *origin, mw_error *error_r)
{
	const char *w;
	size_t n, i;
	struct mw_form *form;
	struct mw_form_field *fl;
	if (!next_word(&p, &w, &n) || (form = find_n(f, w, n)) == NULL) {
		mw_error_set(error_r, "%s: [forms] field: the first word must name a form line",
		             origin);
		return -1;
	}
	if (!next_word(&p, &w, &n) || !name_ok(w, n)) {
		mw_error_set(error_r,
		             "%s: [forms] field: expected FORM FIELD [required] [email] "
		             "[multiline] [max=N], FIELD of a-z 0-9 _ -",
		             origin);
		return -1;
	}
	for (i = 0; i < form->nfields; i++)
		if (strlen(form->fields[i].name) == n && memcmp(form->fields[i].name, w, n) == 0) {
			mw_error_set(error_r, "%s: [forms] field %.*s of %s given twice", origin,
			             (int)n, w, form->name);
			return -1;
		}
	if (form->nfields == MW_FORM_FIELDS_MAX) {
		mw_error_set(error_r, "%s: [forms] form %s: more than %d fields", origin,
		             form->name, MW_FORM_FIELDS_MAX);
		return -1;
	}
	fl = &form->fields[form->nfields];
	memset(fl, 0, sizeof(*fl));
	memcpy(fl->name, w, n);
	fl->max = MW_FORM_DEFAULT_MAX;
	while (next_word(&p, &w, &n)) {
		if (n == 8 && memcmp(w, "required", 8) == 0) {
			fl->required = true;
		} else if (n == 5 && memcmp(w, "email", 5) == 0) {
			fl->email = true;
		} else if (n == 9 && memcmp(w, "multiline", 9) == 0) {
			fl->multiline = true;
		} else if (n > 4 && memcmp(w, "max=", 4) == 0) {
			size_t v = 0, k;
			for (k = 4; k < n && w[k] >= '0' && w[k] <= '9' && v <= MW_FORM_VALUE_MAX;
			     k++)
				v = v * 10 + (size_t)(w[k] - '0');
			if (k != n || v < 1 || v > MW_FORM_VALUE_MAX) {
				mw_error_set(error_r, "%s: [forms] field %s: max=N with N 1..%d",
				             origin, fl->name, MW_FORM_VALUE_MAX);
				return -1;
			}
			fl->max = v;
		} else {
			mw_error_set(
			    error_r,
			    "%s: [forms] field %s: unknown word (required, email, multiline, "
			    "max=N)",
			    origin, fl->name);
			return -1;
		}
	}
	if (fl->email && fl->multiline) {
		mw_error_set(error_r, "%s: [forms] field %s: an email field is one line", origin,
		             fl->name);
		return -1;
	}
	form->nfields++;
	return 0;
}

/* other_line - a subject, limit or honeypot line */
static int other_line(struct mw_forms *f, enum mw_config_key_id id, const char *p,
                      const char *origin, mw_error *error_r)
{
	const char *w;
	size_t n;
	struct mw_form *form;
	if (!next_word(&p, &w, &n) || (form = find_n(f, w, n)) == NULL) {
		mw_error_set(error_r, "%s: [forms] the first word must name a form line", origin);
		return -1;
	}
	if (id == MWK_FORMS_SUBJECT) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || mw_strlcpy(form->subject, p, sizeof(form->subject)) < 0) {
			mw_error_set(error_r,
			             "%s: [forms] subject of %s: empty or longer than %d bytes",
			             origin, form->name, MW_FORM_SUBJECT_MAX);
			return -1;
		}
		return 0;
	}
	if (id == MWK_FORMS_HONEYPOT) {
		if (!next_word(&p, &w, &n) || !name_ok(w, n) || next_word(&p, &w, &n)) {
			mw_error_set(error_r, "%s: [forms] honeypot: expected FORM FIELD", origin);
			return -1;
		}
		memcpy(form->honeypot, w, n);
		form->honeypot[n] = '\0';
		return 0;
	}
	if (next_word(&p, &w, &n)) {
		bool ip = n == 6 && memcmp(w, "per_ip", 6) == 0;
		bool whole = n == 8 && memcmp(w, "per_form", 8) == 0;
		if ((ip || whole) && next_word(&p, &w, &n) &&
		    parse_rate(w, n, ip ? &form->ip_count : &form->form_count,
		               ip ? &form->ip_window : &form->form_window) == 0 &&
		    !next_word(&p, &w, &n))
			return 0;
	}
	mw_error_set(error_r,
	             "%s: [forms] limit: expected FORM per_ip|per_form COUNT/WINDOW (e.g. 5/10m)",
	             origin);
	return -1;
}

/* load_lines - every item of a STRLIST key through fn */
static int load_lines(const mw_config *cfg, struct mw_forms *f, enum mw_config_key_id id,
                      mw_error *error_r)
{
	const char *line = mw_config_list(cfg, id);
	char where[128], buf[MW_CONFIG_MAX_LINE + 1];
	size_t item = 0;
	while (*line != '\0') {
		const char *end = strchr(line, '\n');
		size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
		const char *origin = mw_config_list_origin(cfg, id, item, where, sizeof(where));
		int rc;
		if (len > MW_CONFIG_MAX_LINE)
			len = MW_CONFIG_MAX_LINE;
		memcpy(buf, line, len);
		buf[len] = '\0';
		rc = id == MWK_FORMS_FIELD ? field_line(f, buf, origin, error_r)
		                           : other_line(f, id, buf, origin, error_r);
		if (rc < 0)
			return -1;
		item++;
		line = end != NULL ? end + 1 : line + len;
	}
	return 0;
}

/* mw_forms_load - every form of the configuration */
int mw_forms_load(const mw_config *cfg, struct mw_forms **forms_r, mw_error *error_r)
{
	struct mw_forms *f = mw_calloc(1, sizeof(*f));
	size_t i, k;
	if (load_forms(cfg, f, error_r) < 0 || load_lines(cfg, f, MWK_FORMS_FIELD, error_r) < 0 ||
	    load_lines(cfg, f, MWK_FORMS_SUBJECT, error_r) < 0 ||
	    load_lines(cfg, f, MWK_FORMS_LIMIT, error_r) < 0 ||
	    load_lines(cfg, f, MWK_FORMS_HONEYPOT, error_r) < 0)
		goto fail;
	if (f->n > 0 && mw_config_str(cfg, MWK_FORMS_SENDER)[0] != '\0') {
		struct mw_addr a;
		const char *sender = mw_config_str(cfg, MWK_FORMS_SENDER);
		mw_error err;
		if (mw_addr_parse_envelope(sender, strlen(sender), true, &a, &err) < 0 ||
		    a.null_path || strchr(a.domain, '.') == NULL || a.local[0] == '"') {
			mw_error_set(error_r, "%s: [forms] sender is not a plain address",
			             mw_config_origin(cfg, MWK_FORMS_SENDER));
			goto fail;
		}
	}
	for (i = 0; i < f->n; i++) {
		if (f->forms[i].nfields == 0) {
			mw_error_set(error_r, "[forms] form %s has no field line",
			             f->forms[i].name);
			goto fail;
		}
		for (k = 0; k < f->forms[i].nfields; k++)
			if (strcmp(f->forms[i].fields[k].name, f->forms[i].honeypot) == 0) {
				mw_error_set(error_r, "[forms] form %s: the honeypot is a field",
				             f->forms[i].name);
				goto fail;
			}
	}
	*forms_r = f;
	return 0;
fail:
	free(f);
	return -1;
}

/* mw_forms_free - free a loaded set */
void mw_forms_free(struct mw_forms **forms)
{
	free(*forms);
	*forms = NULL;
}

/* mw_forms_find - the form NAME or NULL */
const struct mw_form *mw_forms_find(const struct mw_forms *forms, const char *name)
{
	size_t i;
	for (i = 0; forms != NULL && i < forms->n; i++)
		if (strcmp(forms->forms[i].name, name) == 0)
			return &forms->forms[i];
	return NULL;
}

/* mw_form_origin_allowed - ORIGIN is exactly one of the form's (NULL: never) */
bool mw_form_origin_allowed(const struct mw_form *form, const char *origin)
{
	size_t i;
	for (i = 0; origin != NULL && i < form->norigins; i++)
		if (strcmp(form->origins[i], origin) == 0)
			return true;
	return false;
}

/* ---- the token --------------------------------------------------------------------- */

/* mw_form_key_derive - the token key from the master key */
void mw_form_key_derive(const mw_master_key *master, mw_form_key *key_r)
{
	_Static_assert(crypto_kdf_KEYBYTES == MW_SECRET_KEY_BYTES, "kdf key size");
	if (crypto_kdf_derive_from_key(key_r->bytes, sizeof(key_r->bytes), 1, "mwforms1",
	                               master->bytes) != 0)
		mw_panic("forms: key derivation failed");
}

/* token_mac - the MAC of (form, expiry, nonce) */
static void token_mac(const mw_form_key *key, const char *form, const char *expiry,
                      const char *nonce, unsigned char mac[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256_state st;
	(void)crypto_auth_hmacsha256_init(&st, key->bytes, sizeof(key->bytes));
	(void)crypto_auth_hmacsha256_update(&st, (const unsigned char *)"mwform1", 8);
	(void)crypto_auth_hmacsha256_update(&st, (const unsigned char *)form, strlen(form) + 1);
	(void)crypto_auth_hmacsha256_update(&st, (const unsigned char *)expiry, strlen(expiry) + 1);
	(void)crypto_auth_hmacsha256_update(&st, (const unsigned char *)nonce, strlen(nonce));
	(void)crypto_auth_hmacsha256_final(&st, mac);
}

/* mw_form_token_make - a fresh token */
int mw_form_token_make(const mw_form_key *key, const char *form, int64_t now, int64_t lifetime,
                       char out[MW_FORM_TOKEN_MAX + 1], mw_error *error_r)
{
	unsigned char raw[TOKEN_NONCE_BYTES], mac[crypto_auth_hmacsha256_BYTES];
	char nonce[2 * TOKEN_NONCE_BYTES + 1], expiry[MW_I64_DIGITS], machex[2 * sizeof(mac) + 1];
	int n;
	randombytes_buf(raw, sizeof(raw));
	(void)sodium_bin2hex(nonce, sizeof(nonce), raw, sizeof(raw));
	(void)snprintf(expiry, sizeof(expiry), "%" PRId64, now + lifetime);
	token_mac(key, form, expiry, nonce, mac);
	(void)sodium_bin2hex(machex, sizeof(machex), mac, sizeof(mac));
	n = snprintf(out, MW_FORM_TOKEN_MAX + 1, "%s.%s.%s", expiry, nonce, machex);
	if (n < 0 || n > MW_FORM_TOKEN_MAX) {
		mw_error_set(error_r, "token too long");
		return -1;
	}
	return 0;
}

/* mw_form_token_check - ours, for this form, not expired */
int mw_form_token_check(const mw_form_key *key, const char *form, const char *token, int64_t now,
                        int64_t lifetime, mw_error *error_r)
{
	char buf[MW_FORM_TOKEN_MAX + 1], *d1, *d2, *end;
	unsigned char mac[crypto_auth_hmacsha256_BYTES], got[crypto_auth_hmacsha256_BYTES];
	size_t binlen = 0, i;
	long long expiry;
	if (token == NULL || mw_strlcpy(buf, token, sizeof(buf)) < 0) {
		mw_error_set(error_r, "malformed token");
		return -1;
	}
	d1 = strchr(buf, '.');
	d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
	if (d1 == NULL || d2 == NULL || d1 == buf || d1 - buf > 18 ||
	    d2 - d1 - 1 != 2 * TOKEN_NONCE_BYTES || strlen(d2 + 1) != 2 * sizeof(mac)) {
		mw_error_set(error_r, "malformed token");
		return -1;
	}
	*d1 = '\0';
	*d2 = '\0';
	for (i = 0; buf[i] != '\0'; i++)
		if (buf[i] < '0' || buf[i] > '9') {
			mw_error_set(error_r, "malformed token");
			return -1;
		}
	errno = 0;
	expiry = strtoll(buf, &end, 10);
	if (errno != 0 || *end != '\0' ||
	    sodium_hex2bin(got, sizeof(got), d2 + 1, strlen(d2 + 1), NULL, &binlen, NULL) != 0 ||
	    binlen != sizeof(got)) {
		mw_error_set(error_r, "malformed token");
		return -1;
	}
	token_mac(key, form, buf, d1 + 1, mac);
	if (crypto_verify_32(mac, got) != 0) {
		mw_error_set(error_r, "forged token (not ours or for another form)");
		return -1;
	}
	if (expiry <= now) {
		mw_error_set(error_r, "expired token");
		return -1;
	}
	if (expiry > now + lifetime + 60) { /* made with a longer lifetime, or a clock jump */
		mw_error_set(error_r, "token dated too far ahead");
		return -1;
	}
	return 0;
}

/* ---- validation -------------------------------------------------------------------- */

/* mw_form_value_get - the value of name */
const char *mw_form_value_get(const struct mw_form_value *v, size_t n, const char *name)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return v[i].value;
	return NULL;
}

/* field_of - the field NAME of form */
static const struct mw_form_field *field_of(const struct mw_form *form, const char *name)
{
	size_t i;
	for (i = 0; i < form->nfields; i++)
		if (strcmp(form->fields[i].name, name) == 0)
			return &form->fields[i];
	return NULL;
}

/* email_ok - a plain ASCII addr-spec with a dotted domain (it becomes Reply-To) */
static bool email_ok(const char *s)
{
	struct mw_addr a;
	mw_error err;
	size_t i;
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '<' ||
		    s[i] == '>' || s[i] == '"' || s[i] == '(' || s[i] == ')' || s[i] == ',' ||
		    s[i] == ';' || s[i] == '\\')
			return false;
	return i <= 254 && mw_addr_parse_envelope(s, i, true, &a, &err) == 0 && !a.null_path &&
	       a.local[0] != '"' && strchr(a.domain, '.') != NULL && a.domain[0] != '[';
}

/* blank - only white space */
static bool blank(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
			return false;
	return true;
}

/* mw_form_validate - the submission fits the form */
int mw_form_validate(const struct mw_form *form, const struct mw_form_value *v, size_t n,
                     char field_r[MW_FORM_NAME_MAX + 1], mw_error *error_r)
{
	size_t i, k;
	field_r[0] = '\0';
	for (i = 0; i < n; i++) {
		const struct mw_form_field *fl;
		size_t len = strlen(v[i].value), chars = 0, step;
		uint32_t cp;
		if (mw_strlcpy(field_r, v[i].name, MW_FORM_NAME_MAX + 1) < 0)
			(void)mw_strlcpy(field_r, "?", MW_FORM_NAME_MAX + 1);
		for (k = 0; k < i; k++)
			if (strcmp(v[k].name, v[i].name) == 0) {
				mw_error_set(error_r, "given twice");
				return -1;
			}
		if (strcmp(v[i].name, "_token") == 0 || strcmp(v[i].name, form->honeypot) == 0)
			continue;
		fl = field_of(form, v[i].name);
		if (fl == NULL) {
			if (!name_ok(v[i].name, strlen(v[i].name)))
				(void)mw_strlcpy(field_r, "?", MW_FORM_NAME_MAX + 1);
			mw_error_set(error_r, "not a field of this form");
			return -1;
		}
		for (k = 0; k < len; k += step) {
			step = mw_utf8_decode(v[i].value + k, len - k, &cp);
			if (step == 0 || cp == 0) {
				mw_error_set(error_r, "not valid UTF-8 text");
				return -1;
			}
			if ((cp == '\n' || cp == '\r' || cp == '\t') && !fl->multiline) {
				mw_error_set(error_r, "must be one line (no line breaks)");
				return -1;
			}
			if (mw_unichar_is_control(cp) && cp != '\n' && cp != '\r' && cp != '\t') {
				mw_error_set(error_r, "holds a control character");
				return -1;
			}
			chars++;
		}
		if (chars > fl->max) {
			mw_error_set(error_r, "longer than %zu characters", fl->max);
			return -1;
		}
		if (fl->email && !blank(v[i].value) && !email_ok(v[i].value)) {
			mw_error_set(error_r, "not an email address");
			return -1;
		}
	}
	for (k = 0; k < form->nfields; k++) {
		const char *val = mw_form_value_get(v, n, form->fields[k].name);
		if (form->fields[k].required && (val == NULL || blank(val))) {
			(void)mw_strlcpy(field_r, form->fields[k].name, MW_FORM_NAME_MAX + 1);
			mw_error_set(error_r, "required");
			return -1;
		}
	}
	field_r[0] = '\0';
	return 0;
}

/* ---- the message ------------------------------------------------------------------- */

/* mw_form_subject - the template with {field} replaced, one line, cut at a character */
int mw_form_subject(const struct mw_form *form, const struct mw_form_value *v, size_t n,
                    mw_str *out)
{
	const char *t = form->subject;
	mw_str s;
	size_t chars = 0, k, step;
	uint32_t cp;
	mw_str_init(&s, 0);
	while (*t != '\0') {
		const char *close = *t == '{' ? strchr(t, '}') : NULL;
		if (close != NULL) {
			char name[MW_FORM_NAME_MAX + 1];
			size_t len = (size_t)(close - t - 1);
			const char *val = NULL;
			if (len <= MW_FORM_NAME_MAX) {
				memcpy(name, t + 1, len);
				name[len] = '\0';
				if (field_of(form, name) != NULL)
					val = mw_form_value_get(v, n, name);
			}
			if (len <= MW_FORM_NAME_MAX && field_of(form, name) != NULL) {
				(void)mw_str_appends(&s, val != NULL ? val : "");
				t = close + 1;
				continue;
			}
		}
		(void)mw_str_appendc(&s, *t++);
	}
	/* one line, no control characters, at most MW_FORM_SUBJECT_OUT characters */
	for (k = 0; k < s.len && chars < MW_FORM_SUBJECT_OUT; k += step, chars++) {
		step = mw_utf8_decode(s.buf + k, s.len - k, &cp);
		if (step == 0) {
			step = 1;
			continue;
		}
		if (mw_unichar_is_control(cp) || cp == 0)
			(void)mw_str_appendc(out, ' ');
		else
			(void)mw_str_append(out, s.buf + k, step);
	}
	if (k < s.len)
		(void)mw_str_appends(out, "...");
	mw_str_free(&s);
	return 0;
}

/* ascii_printable - every byte printable ASCII */
static bool ascii_printable(const char *s, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* b64 - base64 of p[0..n) appended (wrap: lines of 76 with CRLF) */
static void b64(mw_str *out, const char *p, size_t n, bool wrap)
{
	size_t i;
	for (i = 0; i < n || (i == 0 && n == 0); i += 57) {
		size_t chunk = n - i < 57 ? n - i : 57;
		char enc[80];
		if (n == 0)
			break;
		(void)sodium_bin2base64(enc, sizeof(enc), (const unsigned char *)p + i, chunk,
		                        sodium_base64_VARIANT_ORIGINAL);
		(void)mw_str_appends(out, enc);
		if (wrap)
			(void)mw_str_appends(out, "\r\n");
	}
}

/* subject_header - "Subject: " with RFC 2047 words when not printable ASCII */
static void subject_header(mw_str *out, const char *s, size_t n)
{
	size_t i = 0;
	(void)mw_str_appends(out, "Subject: ");
	if (ascii_printable(s, n)) {
		(void)mw_str_append(out, s, n);
		(void)mw_str_appends(out, "\r\n");
		return;
	}
	while (i < n) {
		size_t take = 0, step;
		uint32_t cp;
		while (i + take < n) {
			step = mw_utf8_decode(s + i + take, n - i - take, &cp);
			if (step == 0)
				step = 1;
			if (take + step > 42)
				break;
			take += step;
		}
		if (i > 0)
			(void)mw_str_appends(out, "\r\n ");
		(void)mw_str_appends(out, "=?UTF-8?B?");
		b64(out, s + i, take, false);
		(void)mw_str_appends(out, "?=");
		i += take;
	}
	(void)mw_str_appends(out, "\r\n");
}

/* mw_form_message - the whole message of a submission */
int mw_form_message(const struct mw_form *form, const struct mw_form_value *v, size_t n,
                    const char *sender, const char *client, const char *id, int64_t now,
                    mw_str *out, mw_error *error_r)
{
	mw_str subj, text, html;
	char date[64], boundary[MW_FORM_SPOOL_ID_MAX + 16];
	const char *reply_to = NULL, *dom = strrchr(sender, '@');
	time_t t = (time_t)now;
	struct tm tm;
	size_t k;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0) {
		mw_error_set(error_r, "cannot format the date");
		return -1;
	}
	for (k = 0; k < form->nfields && reply_to == NULL; k++) {
		const char *val = mw_form_value_get(v, n, form->fields[k].name);
		if (form->fields[k].email && val != NULL && !blank(val) && email_ok(val))
			reply_to = val;
	}
	(void)snprintf(boundary, sizeof(boundary), "=_mwform_%s", id);
	mw_str_init(&subj, 0);
	mw_str_init(&text, 0);
	mw_str_init(&html, 0);
	(void)mw_form_subject(form, v, n, &subj);
	(void)mw_str_appendf(&text, "Form %s, sent from %s at %s\r\n\r\n", form->name, client,
	                     date);
	(void)mw_str_appends(&html, "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"></head>"
	                            "<body>\r\n<h1>Form ");
	(void)mw_str_append_markup(&html, form->name, MW_MARKUP_HTML);
	(void)mw_str_appends(&html, "</h1>\r\n<table>\r\n");
	for (k = 0; k < form->nfields; k++) {
		const char *val = mw_form_value_get(v, n, form->fields[k].name), *p;
		if (val == NULL)
			val = "";
		(void)mw_str_appendf(&text, "%s:%s", form->fields[k].name,
		                     form->fields[k].multiline ? "\r\n" : " ");
		for (p = val; *p != '\0'; p++) { /* CRLF line ends whatever was sent */
			if (*p == '\r')
				continue;
			if (*p == '\n')
				(void)mw_str_appends(&text, "\r\n");
			else
				(void)mw_str_appendc(&text, *p);
		}
		(void)mw_str_appends(&text, "\r\n\r\n");
		(void)mw_str_appends(&html, "<tr><th>");
		(void)mw_str_append_markup(&html, form->fields[k].name, MW_MARKUP_HTML);
		(void)mw_str_appends(&html, "</th><td>");
		(void)mw_str_append_markup(&html, val, MW_MARKUP_HTML);
		(void)mw_str_appends(&html, "</td></tr>\r\n");
	}
	(void)mw_str_appends(&html, "</table>\r\n<p>Sent from ");
	(void)mw_str_append_markup(&html, client, MW_MARKUP_HTML);
	(void)mw_str_appendf(&html, " at %s</p>\r\n</body></html>\r\n", date);

	(void)mw_str_appendf(out, "From: <%s>\r\nTo: <%s>\r\n", sender, form->to);
	if (reply_to != NULL)
		(void)mw_str_appendf(out, "Reply-To: <%s>\r\n", reply_to);
	subject_header(out, subj.buf != NULL ? subj.buf : "", subj.len);
	(void)mw_str_appendf(out,
	                     "Date: %s\r\nMessage-ID: <form.%s@%s>\r\nMIME-Version: 1.0\r\n"
	                     "X-Form: %s\r\n",
	                     date, id, dom != NULL ? dom + 1 : "localhost", form->name);
	(void)mw_str_appendf(out, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n",
	                     boundary);
	(void)mw_str_appendf(out,
	                     "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                     "Content-Transfer-Encoding: base64\r\n\r\n",
	                     boundary);
	b64(out, text.buf != NULL ? text.buf : "", text.len, true);
	(void)mw_str_appendf(out,
	                     "--%s\r\nContent-Type: text/html; charset=utf-8\r\n"
	                     "Content-Transfer-Encoding: base64\r\n\r\n",
	                     boundary);
	b64(out, html.buf, html.len, true);
	if (mw_str_appendf(out, "--%s--\r\n", boundary) < 0) {
		mw_error_set(error_r, "message longer than allowed");
		mw_str_free(&subj);
		mw_str_free(&text);
		mw_str_free(&html);
		return -1;
	}
	mw_str_free(&subj);
	mw_str_free(&text);
	mw_str_free(&html);
	return 0;
}

/* ---- the spool --------------------------------------------------------------------- */

/* sub_path - DIR/SUB[/ID] */
static int sub_path(char *buf, size_t size, const char *dir, const char *sub, const char *id)
{
	int n = id != NULL ? snprintf(buf, size, "%s/%s/%s", dir, sub, id)
	                   : snprintf(buf, size, "%s/%s", dir, sub);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* id_ok - a spool id as mw_form_spool_id makes them */
static bool id_ok(const char *id)
{
	size_t i;
	for (i = 0; id[i] != '\0'; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f') ||
		      id[i] == '-'))
			return false;
	return i > 0 && i <= MW_FORM_SPOOL_ID_MAX;
}

/* sync_dir - fsync a directory (a rename or unlink in it is durable) */
static int sync_dir(const char *path, mw_error *error_r)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		mw_error_set(error_r, "spool %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* mw_form_spool_init - the spool's directories */
int mw_form_spool_init(const char *dir, mw_error *error_r)
{
	static const char *const subs[] = {"tmp", "new", "failed"};
	char path[4096];
	size_t i;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		mw_error_set(error_r, "[forms] spool_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	for (i = 0; i < MW_N_ELEMENTS(subs); i++) {
		if (sub_path(path, sizeof(path), dir, subs[i], NULL) < 0 ||
		    (mkdir(path, 0700) < 0 && errno != EEXIST) || access(path, W_OK | X_OK) < 0) {
			mw_error_set(error_r, "[forms] spool_dir %s/%s: %s", dir, subs[i],
			             strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* mw_form_spool_id - time-ordered, unique */
void mw_form_spool_id(char id[MW_FORM_SPOOL_ID_MAX + 1])
{
	unsigned char r[8];
	char hex[17];
	struct timespec ts;
	randombytes_buf(r, sizeof(r));
	(void)sodium_bin2hex(hex, sizeof(hex), r, sizeof(r));
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	(void)snprintf(id, MW_FORM_SPOOL_ID_MAX + 1, "%016" PRIx64 "-%s",
	               (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u, hex);
}

/* mw_form_spool_write - durable before it returns */
int mw_form_spool_write(const char *dir, const char *id, const char *sender, const char *rcpt,
                        const char *message, size_t len, mw_error *error_r)
{
	char tmp[4096], dst[4096], newdir[4096];
	mw_str head;
	int fd;
	if (!id_ok(id) || sub_path(tmp, sizeof(tmp), dir, "tmp", id) < 0 ||
	    sub_path(dst, sizeof(dst), dir, "new", id) < 0 ||
	    sub_path(newdir, sizeof(newdir), dir, "new", NULL) < 0) {
		mw_error_set(error_r, "spool path too long");
		return -1;
	}
	mw_str_init(&head, 2048);
	if (mw_str_appendf(&head, "mwform 1\nfrom %s\nto %s\n\n", sender, rcpt) < 0 ||
	    strpbrk(sender, "\r\n") != NULL || strpbrk(rcpt, "\r\n") != NULL) {
		mw_str_free(&head);
		mw_error_set(error_r, "bad envelope");
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || mw_write_all(fd, head.buf, head.len) < 0 ||
	    mw_write_all(fd, message, len) < 0 || fsync(fd) < 0) {
		mw_error_set(error_r, "spool %s: %s", tmp, strerror(errno));
		if (fd >= 0) {
			close(fd);
			(void)unlink(tmp);
		}
		mw_str_free(&head);
		return -1;
	}
	mw_str_free(&head);
	if (close(fd) < 0 || rename(tmp, dst) < 0) {
		mw_error_set(error_r, "spool %s: %s", dst, strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	return sync_dir(newdir, error_r);
}

/* mw_form_spool_read - envelope and message of new/ID */
int mw_form_spool_read(const char *dir, const char *id, char *sender, size_t sender_size,
                       char *rcpt, size_t rcpt_size, mw_str *msg, mw_error *error_r)
{
	char path[4096], buf[8192];
	mw_str all;
	const char *p, *nl1, *nl2, *nl3;
	ssize_t r;
	int fd, rc = -1;
	if (!id_ok(id) || sub_path(path, sizeof(path), dir, "new", id) < 0) {
		mw_error_set(error_r, "bad spool id");
		return -1;
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		mw_error_set(error_r, "spool %s: %s", path, strerror(errno));
		return -1;
	}
	mw_str_init(&all, MW_FORM_MESSAGE_MAX + 4096);
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		if (mw_str_append(&all, buf, (size_t)r) < 0) {
			r = -1;
			errno = EFBIG;
			break;
		}
	close(fd);
	if (r < 0) {
		mw_error_set(error_r, "spool %s: %s", path, strerror(errno));
		goto done;
	}
	p = all.buf != NULL ? all.buf : "";
	nl1 = strchr(p, '\n');
	nl2 = nl1 != NULL ? strchr(nl1 + 1, '\n') : NULL;
	nl3 = nl2 != NULL ? strchr(nl2 + 1, '\n') : NULL;
	if (strncmp(p, "mwform 1\n", 9) != 0 || nl2 == NULL || nl3 == NULL || nl3[1] != '\n' ||
	    strncmp(nl1 + 1, "from ", 5) != 0 || strncmp(nl2 + 1, "to ", 3) != 0 ||
	    (size_t)(nl2 - nl1 - 6) >= sender_size || (size_t)(nl3 - nl2 - 4) >= rcpt_size) {
		mw_error_set(error_r, "spool %s: not a spooled form", path);
		goto done;
	}
	memcpy(sender, nl1 + 6, (size_t)(nl2 - nl1 - 6));
	sender[nl2 - nl1 - 6] = '\0';
	memcpy(rcpt, nl2 + 4, (size_t)(nl3 - nl2 - 4));
	rcpt[nl3 - nl2 - 4] = '\0';
	mw_str_reset(msg);
	if (mw_str_append(msg, nl3 + 2, all.len - (size_t)(nl3 + 2 - p)) < 0) {
		mw_error_set(error_r, "spool %s: message too long", path);
		goto done;
	}
	rc = 0;
done:
	mw_str_free(&all);
	return rc;
}

/* cmp_str - qsort of strings */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* mw_form_spool_list - the ids waiting in new/, oldest first */
int mw_form_spool_list(const char *dir, char ***ids_r, size_t *n_r, size_t max, mw_error *error_r)
{
	char path[4096];
	DIR *d;
	struct dirent *e;
	char **ids = NULL;
	size_t n = 0, cap = 0;
	if (sub_path(path, sizeof(path), dir, "new", NULL) < 0 || (d = opendir(path)) == NULL) {
		mw_error_set(error_r, "spool %s/new: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (!id_ok(e->d_name))
			continue;
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			ids = mw_realloc(ids, cap * sizeof(*ids));
		}
		ids[n++] = mw_strdup(e->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(ids, n, sizeof(*ids), cmp_str);
	while (n > max)
		free(ids[--n]);
	*ids_r = ids;
	*n_r = n;
	return 0;
}

/* mw_form_spool_done - delivered (removed) or failed (kept aside) */
int mw_form_spool_done(const char *dir, const char *id, bool failed, mw_error *error_r)
{
	char path[4096], dst[4096], newdir[4096];
	if (!id_ok(id) || sub_path(path, sizeof(path), dir, "new", id) < 0 ||
	    sub_path(dst, sizeof(dst), dir, "failed", id) < 0 ||
	    sub_path(newdir, sizeof(newdir), dir, "new", NULL) < 0) {
		mw_error_set(error_r, "bad spool id");
		return -1;
	}
	if ((failed ? rename(path, dst) : unlink(path)) < 0) {
		mw_error_set(error_r, "spool %s: %s", path, strerror(errno));
		return -1;
	}
	return sync_dir(newdir, error_r);
}
