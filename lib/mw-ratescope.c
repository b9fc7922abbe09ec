/* mw-ratescope.c - the scope word of a rate limit: [DIRECTION:]NAME[/V4[/V6]].
 *
 * The one parser and printer of that word (see mw-ratescope.h); the policy daemon, the store's
 * check, mailwardenctl and the API all go through it, so a direction or prefix is spelled and
 * refused the same way everywhere.
 *
 * Public: mw_rate_scope_name, mw_rate_dir_name, mw_rate_dir_parse, mw_rate_scope_parse,
 * mw_rate_scope_format.
 * Diagnostics: through error_r, naming the part that is wrong.
 */
#include "mw-build.h"
#include "mw-ratescope.h"

#include <stdio.h>
#include <string.h>

static const char *const scope_names[MW_RATE_SCOPE_NAMES] = {
    "sasl_username", "client_address", "sender", "sender_domain", "recipient", "recipient_domain",
};
static const char *const dir_names[MW_RATE_DIR_COUNT] = {"outbound", "inbound", "both"};

/* mw_rate_scope_name - a scope name by index */
const char *mw_rate_scope_name(unsigned i)
{
	return i < MW_RATE_SCOPE_NAMES ? scope_names[i] : "?";
}

/* mw_rate_dir_name - a direction's word */
const char *mw_rate_dir_name(enum mw_rate_dir d)
{
	return (unsigned)d < MW_RATE_DIR_COUNT ? dir_names[d] : "?";
}

/* mw_rate_dir_parse - outbound, inbound or both */
int mw_rate_dir_parse(const char *s, size_t len, enum mw_rate_dir *dir_r, mw_error *error_r)
{
	unsigned i;
	for (i = 0; i < MW_RATE_DIR_COUNT; i++)
		if (strlen(dir_names[i]) == len && memcmp(dir_names[i], s, len) == 0) {
			*dir_r = (enum mw_rate_dir)i;
			return 0;
		}
	mw_error_set(error_r, "unknown direction \"%.*s\" (expected outbound, inbound or both)",
	             (int)(len > 32 ? 32 : len), s);
	return -1;
}

/* prefix_parse - one "/N" part: a decimal number in [min, max] */
static int prefix_parse(const char *s, size_t len, unsigned min, unsigned max, unsigned *n_r)
{
	unsigned n = 0;
	size_t i;
	if (len == 0 || len > 3)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (unsigned)(s[i] - '0');
	}
	if (n < min || n > max)
		return -1;
	*n_r = n;
	return 0;
}

/* mw_rate_scope_parse - [DIRECTION:]NAME[/V4[/V6]] */
int mw_rate_scope_parse(const char *s, size_t len, struct mw_rate_scope *scope_r, mw_error *error_r)
{
	const char *colon = memchr(s, ':', len), *name = s, *slash, *end = s + len;
	unsigned i;
	memset(scope_r, 0, sizeof(*scope_r));
	if (colon != NULL) {
		if (mw_rate_dir_parse(s, (size_t)(colon - s), &scope_r->dir, error_r) < 0)
			return -1;
		name = colon + 1;
	}
	slash = memchr(name, '/', (size_t)(end - name));
	for (i = 0; i < MW_RATE_SCOPE_NAMES; i++) {
		size_t n = (size_t)((slash != NULL ? slash : end) - name);
		if (strlen(scope_names[i]) == n && memcmp(scope_names[i], name, n) == 0)
			break;
	}
	if (i == MW_RATE_SCOPE_NAMES) {
		mw_error_set(error_r, "unknown scope (expected sasl_username, client_address, "
		                      "sender, sender_domain, recipient or recipient_domain)");
		return -1;
	}
	scope_r->name = i;
	if (slash != NULL) {
		const char *slash2 = memchr(slash + 1, '/', (size_t)(end - slash - 1));
		if (strcmp(scope_names[i], "client_address") != 0) {
			mw_error_set(error_r, "a /PREFIX is for client_address only");
			return -1;
		}
		if (prefix_parse(slash + 1, (size_t)((slash2 != NULL ? slash2 : end) - slash - 1),
		                 8, 32, &scope_r->v4_prefix) < 0 ||
		    (slash2 != NULL && prefix_parse(slash2 + 1, (size_t)(end - slash2 - 1), 16, 128,
		                                    &scope_r->v6_prefix) < 0)) {
			mw_error_set(error_r,
			             "client_address/V4[/V6]: V4 must be 8..32, V6 16..128");
			return -1;
		}
	}
	if (i == 0 && scope_r->dir != MW_RATE_OUTBOUND) {
		mw_error_set(error_r, "direction %s: sasl_username limits count outbound mail only",
		             dir_names[scope_r->dir]);
		return -1;
	}
	return 0;
}

/* mw_rate_scope_format - the scope word (outbound implied) */
int mw_rate_scope_format(const struct mw_rate_scope *sc, char *buf, size_t size)
{
	char v4[16] = "", v6[16] = "";
	int n;
	if (sc->v4_prefix != 0)
		(void)snprintf(v4, sizeof(v4), "/%u", sc->v4_prefix);
	if (sc->v6_prefix != 0)
		(void)snprintf(v6, sizeof(v6), "/%u", sc->v6_prefix);
	n = snprintf(buf, size, "%s%s%s%s%s",
	             sc->dir != MW_RATE_OUTBOUND ? mw_rate_dir_name(sc->dir) : "",
	             sc->dir != MW_RATE_OUTBOUND ? ":" : "", mw_rate_scope_name(sc->name), v4, v6);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}
