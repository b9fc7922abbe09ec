/* mw-dmarc-report.c - DMARC aggregate reports as other receivers send them: the mail, the
 * compressed attachment, the XML (RFC 7489 Appendix C), each field checked.
 *
 * Layers, outside in: the message is walked with GMime (into attached messages: a
 * forwarded report) for its one report part
 * (application/gzip or x-gzip, application/zip or x-zip-compressed, text/xml or
 * application/xml, or application/octet-stream named *.xml.gz, *.zip or *.xml); the part is
 * transfer-decoded (at most MW_DMARC_RPT_COMPRESSED_MAX bytes) and unpacked with zlib (a gzip
 * stream, or a zip read through its central directory: exactly one stored or deflated
 * *.xml entry with a plain name, sizes and CRC checked) into at most MW_DMARC_RPT_XML_MAX
 * bytes; the XML is parsed by libxml2 with network access off, no entity substitution, no
 * DTD loading, and a document carrying a DOCTYPE is stopped at its DOCTYPE (no entity is
 * ever declared, so none can be expanded: XXE and "billion laughs" are refused). The tree
 * is then read field by field: a single-valued element given twice, a missing required
 * one, element content where text belongs, a value out of its range or set: refused.
 *
 * Public: mw_dmarc_disposition_name, mw_dmarc_rpt_parse_xml, mw_dmarc_rpt_unpack,
 * mw_dmarc_rpt_parse_message, mw_dmarc_rpt_free, mw_dmarc_rpt_ours, mw_dmarc_summary_json,
 * mw_dmarc_rpt_info_json.
 *
 * Diagnostics: through error_r: "ATTACHMENT: line N: feedback/record[3]/row/count: ...".
 */
#include "mw-build.h"
#include "mw-dmarc-report.h"
#include "mw-dnsrec.h"
#include "mw-log.h"
#include "mw-mime.h"

#include <arpa/inet.h>
#include <gmime/gmime.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MIN_TIME 946684800LL  /* 2000-01-01 */
#define MAX_TIME 4102444800LL /* 2100-01-01 */

static const char *const disp_names[] = {"none", "quarantine", "reject"};

/* mw_dmarc_disposition_name - "none", "quarantine", "reject" */
const char *mw_dmarc_disposition_name(enum mw_dmarc_disposition d)
{
	return (unsigned)d < MW_N_ELEMENTS(disp_names) ? disp_names[d] : "?";
}

/* ---- decompression ---------------------------------------------------------------------- */

/* inflate_bounded - inflate (windowbits: 16+15 gzip, -15 raw deflate) all of in into out,
   refusing output past MW_DMARC_RPT_XML_MAX and input left over after the stream */
static int inflate_bounded(const unsigned char *in, size_t len, int windowbits, mw_str *out,
                           const char *what, mw_error *error_r)
{
	z_stream z;
	unsigned char buf[65536];
	int zr;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, windowbits) != Z_OK) {
		mw_error_set(error_r, "%s: cannot start zlib", what);
		return -1;
	}
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)len;
	do {
		size_t got;
		z.next_out = buf;
		z.avail_out = sizeof(buf);
		zr = inflate(&z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END) {
			mw_error_set(error_r, "%s: corrupt compressed data (%s)", what,
			             z.msg != NULL ? z.msg : "zlib error");
			inflateEnd(&z);
			return -1;
		}
		got = sizeof(buf) - z.avail_out;
		if (out->len + got > MW_DMARC_RPT_XML_MAX ||
		    mw_str_append(out, (char *)buf, got) < 0) {
			mw_error_set(error_r,
			             "%s: decompressed data larger than %u bytes (refused: a "
			             "compression bomb?)",
			             what, MW_DMARC_RPT_XML_MAX);
			inflateEnd(&z);
			return -1;
		}
		if (zr == Z_OK && got == 0 && z.avail_in == 0) {
			mw_error_set(error_r, "%s: compressed data ends early", what);
			inflateEnd(&z);
			return -1;
		}
	} while (zr != Z_STREAM_END);
	inflateEnd(&z);
	if (z.avail_in != 0) {
		mw_error_set(error_r, "%s: %u bytes after the end of the compressed data", what,
		             z.avail_in);
		return -1;
	}
	return 0;
}

/* le16, le32 - little-endian fields of a zip header */
static unsigned le16(const unsigned char *p)
{
	return (unsigned)p[0] | ((unsigned)p[1] << 8);
}
static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

/* zip_name_ok - one file name, no directory, ending .xml, printable ASCII */
static bool zip_name_ok(const unsigned char *n, size_t len)
{
	size_t i;
	if (len < 5 || len > 255 || mw_ascii_strncasecmp((const char *)n + len - 4, ".xml", 4) != 0)
		return false;
	if (n[0] == '.')
		return false;
	for (i = 0; i < len; i++)
		if (n[i] < 0x20 || n[i] > 0x7e || n[i] == '/' || n[i] == '\\' || n[i] == ':')
			return false;
	return true;
}

/* unzip_one - the single .xml entry of a zip archive, read through its central directory */
static int unzip_one(const unsigned char *d, size_t len, mw_str *out, mw_error *error_r)
{
	size_t eocd, i, lo, name_len, data_at;
	unsigned entries, method, flags;
	uint32_t cd_size, cd_off, csize, usize, crc, loff;
	const unsigned char *c;
	char shown[80];
	if (len < 22) {
		mw_error_set(error_r, "zip: too short to be a zip archive");
		return -1;
	}
	/* the end-of-central-directory record: the last signature within 64 KiB + 22 */
	eocd = len - 22;
	lo = len > 22 + 65535 ? len - 22 - 65535 : 0;
	for (i = eocd + 1; i-- > lo;)
		if (le32(d + i) == 0x06054b50 && i + 22 + le16(d + i + 20) == len)
			break;
	if (i + 1 == lo || i < lo || le32(d + i) != 0x06054b50) {
		mw_error_set(error_r, "zip: no end of central directory (not a zip archive)");
		return -1;
	}
	eocd = i;
	entries = le16(d + eocd + 10);
	cd_size = le32(d + eocd + 12);
	cd_off = le32(d + eocd + 16);
	if (le16(d + eocd + 4) != 0 || le16(d + eocd + 6) != 0 || le16(d + eocd + 8) != entries) {
		mw_error_set(error_r, "zip: multi-part archives are refused");
		return -1;
	}
	if (entries != 1) {
		mw_error_set(error_r, "zip: holds %u files; a report zip holds exactly one .xml",
		             entries);
		return -1;
	}
	if ((size_t)cd_off + cd_size > eocd || cd_size < 46) {
		mw_error_set(error_r, "zip: central directory out of bounds");
		return -1;
	}
	c = d + cd_off;
	if (le32(c) != 0x02014b50) {
		mw_error_set(error_r, "zip: bad central directory entry");
		return -1;
	}
	flags = le16(c + 8);
	method = le16(c + 10);
	crc = le32(c + 16);
	csize = le32(c + 20);
	usize = le32(c + 24);
	name_len = le16(c + 28);
	loff = le32(c + 42);
	if (46 + name_len > cd_size) {
		mw_error_set(error_r, "zip: central directory entry out of bounds");
		return -1;
	}
	if (!zip_name_ok(c + 46, name_len)) {
		size_t k, m = 0;
		for (k = 0; k < name_len && m + 5 < sizeof(shown); k++)
			shown[m++] = c[46 + k] >= 0x20 && c[46 + k] < 0x7f ? (char)c[46 + k] : '?';
		shown[m] = '\0';
		mw_error_set(error_r,
		             "zip: file name \"%s\" refused (one plain name ending .xml, no "
		             "directory or path)",
		             shown);
		return -1;
	}
	if ((flags & 1) != 0) {
		mw_error_set(error_r, "zip: encrypted entries are refused");
		return -1;
	}
	if (csize == 0xffffffffu || usize == 0xffffffffu || loff == 0xffffffffu) {
		mw_error_set(error_r, "zip: zip64 archives are refused");
		return -1;
	}
	if (usize > MW_DMARC_RPT_XML_MAX) {
		mw_error_set(error_r,
		             "zip: the file claims %u bytes uncompressed, more than %u (refused: a "
		             "compression bomb?)",
		             usize, MW_DMARC_RPT_XML_MAX);
		return -1;
	}
	if ((size_t)loff + 30 > cd_off || le32(d + loff) != 0x04034b50) {
		mw_error_set(error_r, "zip: bad local file header");
		return -1;
	}
	data_at = (size_t)loff + 30 + le16(d + loff + 26) + le16(d + loff + 28);
	if (data_at > cd_off || (size_t)csize > cd_off - data_at) {
		mw_error_set(error_r, "zip: file data out of bounds");
		return -1;
	}
	if (le16(d + loff + 26) != name_len || memcmp(d + loff + 30, c + 46, name_len) != 0) {
		mw_error_set(error_r, "zip: local and central file names differ");
		return -1;
	}
	if (method == 0) {
		if (csize != usize || mw_str_append(out, (const char *)d + data_at, csize) < 0) {
			mw_error_set(error_r, "zip: stored entry sizes disagree");
			return -1;
		}
	} else if (method == 8) {
		if (inflate_bounded(d + data_at, csize, -15, out, "zip", error_r) < 0)
			return -1;
	} else {
		mw_error_set(error_r, "zip: compression method %u refused (stored or deflate only)",
		             method);
		return -1;
	}
	if (out->len != usize) {
		mw_error_set(error_r, "zip: %zu bytes decompressed, the archive says %u", out->len,
		             usize);
		return -1;
	}
	if ((uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)mw_str_c(out), (uInt)out->len) !=
	    crc) {
		mw_error_set(error_r, "zip: CRC mismatch (corrupt archive)");
		return -1;
	}
	return 0;
}

/* mw_dmarc_rpt_unpack - the XML of a gzip or zip attachment */
int mw_dmarc_rpt_unpack(const char *data, size_t len, bool zip, mw_str *xml_r, mw_error *error_r)
{
	mw_str_reset(xml_r);
	if (len > MW_DMARC_RPT_COMPRESSED_MAX) {
		mw_error_set(error_r, "compressed report larger than %u bytes",
		             MW_DMARC_RPT_COMPRESSED_MAX);
		return -1;
	}
	if (zip)
		return unzip_one((const unsigned char *)data, len, xml_r, error_r);
	if (len < 18 || (unsigned char)data[0] != 0x1f || (unsigned char)data[1] != 0x8b) {
		mw_error_set(error_r, "gzip: not gzip data");
		return -1;
	}
	return inflate_bounded((const unsigned char *)data, len, 16 + 15, xml_r, "gzip", error_r);
}

/* ---- XML -------------------------------------------------------------------------------- */

struct xp {
	const char *name; /* the attachment, for messages */
	mw_error *err;
	bool doctype;
};

/* xp_fail - "NAME: line N: PATH: message" */
static int xp_fail(struct xp *x, const xmlNode *n, const char *path, const char *fmt, ...)
    MW_PRINTF(4, 5);
static int xp_fail(struct xp *x, const xmlNode *n, const char *path, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n != NULL)
		mw_error_set(x->err, "%s: line %ld: %s: %s", x->name, xmlGetLineNo(n), path, msg);
	else
		mw_error_set(x->err, "%s: %s: %s", x->name, path, msg);
	return -1;
}

/* is_elem - an element called name (namespaces ignored: RFC 7489 has none, DMARCbis one) */
static bool is_elem(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

/* child - the one child element called name; NULL when absent (-1 in *bad when twice) */
static const xmlNode *child(struct xp *x, const xmlNode *parent, const char *name, const char *path,
                            bool required, int *bad)
{
	const xmlNode *c, *found = NULL;
	for (c = parent->children; c != NULL; c = c->next) {
		if (!is_elem(c, name))
			continue;
		if (found != NULL) {
			*bad = xp_fail(x, c, path, "<%s> appears twice", name);
			return NULL;
		}
		found = c;
	}
	if (found == NULL && required)
		*bad = xp_fail(x, parent, path, "<%s> is missing", name);
	return found;
}

/* text_of - the trimmed text of an element with no element children, valid UTF-8 without
   control characters, at most max bytes, into out */
static int text_of(struct xp *x, const xmlNode *n, const char *path, char *out, size_t max)
{
	const xmlNode *c;
	mw_str s;
	size_t b, e, i;
	mw_str_init(&s, MW_DMARC_RPT_XML_MAX);
	for (c = n->children; c != NULL; c = c->next) {
		if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
			if (c->content != NULL)
				(void)mw_str_appends(&s, (const char *)c->content);
		} else if (c->type == XML_ELEMENT_NODE || c->type == XML_ENTITY_REF_NODE) {
			mw_str_free(&s);
			return xp_fail(x, c, path, "element content where a value belongs");
		}
	}
	b = 0;
	e = s.len;
	while (b < e && strchr(" \t\r\n", s.buf[b]) != NULL)
		b++;
	while (e > b && strchr(" \t\r\n", s.buf[e - 1]) != NULL)
		e--;
	if (e - b > max) {
		mw_str_free(&s);
		return xp_fail(x, n, path, "value longer than %zu bytes", max);
	}
	if (!mw_utf8_valid(s.buf != NULL ? s.buf + b : "", e - b, NULL)) {
		mw_str_free(&s);
		return xp_fail(x, n, path, "value is not valid UTF-8");
	}
	for (i = b; i < e;) {
		uint32_t cp = 0;
		size_t l = mw_utf8_decode(s.buf + i, e - i, &cp);
		if (l == 0 || mw_unichar_is_control(cp)) {
			mw_str_free(&s);
			return xp_fail(x, n, path, "control character in the value");
		}
		i += l;
	}
	if (e > b)
		memcpy(out, s.buf + b, e - b);
	out[e - b] = '\0';
	mw_str_free(&s);
	return 0;
}

/* field - the text of child NAME into out ("" when absent and optional) */
static int field(struct xp *x, const xmlNode *parent, const char *ppath, const char *name,
                 bool required, char *out, size_t max)
{
	char path[160];
	int bad = 0;
	const xmlNode *c;
	(void)snprintf(path, sizeof(path), "%s/%s", ppath, name);
	out[0] = '\0';
	c = child(x, parent, name, ppath, required, &bad);
	if (bad < 0)
		return -1;
	if (c == NULL)
		return 0;
	if (text_of(x, c, path, out, max) < 0)
		return -1;
	if (required && out[0] == '\0')
		return xp_fail(x, c, path, "empty");
	return 0;
}

/* number - a decimal integer in [min, max] */
static int number(struct xp *x, const xmlNode *parent, const char *ppath, const char *name,
                  bool required, int64_t min, int64_t max, int64_t *v_r, bool *present_r)
{
	char buf[64], path[160];
	const char *p;
	int64_t v = 0;
	if (field(x, parent, ppath, name, required, buf, 40) < 0)
		return -1;
	*present_r = buf[0] != '\0';
	if (buf[0] == '\0')
		return 0;
	(void)snprintf(path, sizeof(path), "%s/%s", ppath, name);
	for (p = buf; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || v > (max - (*p - '0')) / 10)
			return xp_fail(x, parent, path, "\"%s\" is not a number from %lld to %lld",
			               buf, (long long)min, (long long)max);
		v = v * 10 + (*p - '0');
	}
	if (v < min)
		return xp_fail(x, parent, path, "\"%s\" is not a number from %lld to %lld", buf,
		               (long long)min, (long long)max);
	*v_r = v;
	return 0;
}

/* one_of - the field's value (lower-cased) is one of names ("" allowed when optional) */
static int one_of(struct xp *x, const xmlNode *parent, const char *ppath, const char *name,
                  bool required, const char *const *names, char *out, size_t max)
{
	char path[160];
	size_t i;
	if (field(x, parent, ppath, name, required, out, max) < 0)
		return -1;
	if (out[0] == '\0')
		return 0;
	mw_ascii_lower(out);
	for (i = 0; names[i] != NULL; i++)
		if (strcmp(out, names[i]) == 0)
			return 0;
	(void)snprintf(path, sizeof(path), "%s/%s", ppath, name);
	return xp_fail(x, parent, path, "\"%s\" is not a valid value", out);
}

/* domain_field - a domain name, normalised */
static int domain_field(struct xp *x, const xmlNode *parent, const char *ppath, const char *name,
                        char *out)
{
	char raw[MW_DMARC_RPT_TEXT_MAX + 1], path[160];
	mw_error e = {""};
	if (field(x, parent, ppath, name, true, raw, MW_DMARC_RPT_TEXT_MAX) < 0)
		return -1;
	if (mw_dnsrec_domain(raw, out, MW_DMARC_RPT_DOMAIN_MAX + 1, &e) < 0) {
		(void)snprintf(path, sizeof(path), "%s/%s", ppath, name);
		return xp_fail(x, parent, path, "\"%s\": %s", raw, e.msg);
	}
	return 0;
}

/* under - is d the domain top or a subdomain of it? */
static bool under(const char *d, const char *top)
{
	size_t dl = strlen(d), tl = strlen(top);
	return strcmp(d, top) == 0 ||
	       (dl > tl && d[dl - tl - 1] == '.' && strcmp(d + dl - tl, top) == 0);
}

static const char *const pass_fail[] = {"pass", "fail", NULL};
static const char *const dispositions[] = {"none", "quarantine", "reject", NULL};
static const char *const policies[] = {"none", "quarantine", "reject", NULL};
static const char *const alignments[] = {"r", "s", NULL};
static const char *const dkim_results[] = {"none",    "pass",      "fail",      "policy",
                                           "neutral", "temperror", "permerror", NULL};
static const char *const spf_results[] = {"none",     "neutral",   "pass",      "fail",
                                          "softfail", "temperror", "permerror", NULL};
static const char *const spf_scopes[] = {"helo", "mfrom", NULL};
static const char *const reason_types[] = {
    "forwarded",    "sampled_out", "trusted_forwarder", "mailing_list",
    "local_policy", "other",       "policy_test_mode",  NULL};

/* auth_results - a record's auth_results as JSON text */
static int auth_results(struct xp *x, const xmlNode *ar, const char *rpath, char **json_r)
{
	json_t *dkim = json_array(), *spf = json_array();
	const xmlNode *c;
	char path[160], dom[MW_DMARC_RPT_TEXT_MAX + 1], sel[MW_DMARC_RPT_TEXT_MAX + 1], res[16],
	    scope[8];
	unsigned n = 0;
	int ret = 0;
	for (c = ar->children; c != NULL && ret == 0; c = c->next) {
		bool is_dkim = is_elem(c, "dkim");
		if (!is_dkim && !is_elem(c, "spf"))
			continue;
		(void)snprintf(path, sizeof(path), "%s/auth_results/%s", rpath, c->name);
		if (++n > MW_DMARC_RPT_AUTH_MAX) {
			ret = xp_fail(x, c, path, "more than %d results", MW_DMARC_RPT_AUTH_MAX);
			break;
		}
		if (field(x, c, path, "domain", false, dom, MW_DMARC_RPT_TEXT_MAX) < 0 ||
		    one_of(x, c, path, "result", true, is_dkim ? dkim_results : spf_results, res,
		           sizeof(res) - 1) < 0) {
			ret = -1;
			break;
		}
		if (is_dkim) {
			if (field(x, c, path, "selector", false, sel, MW_DMARC_RPT_TEXT_MAX) < 0) {
				ret = -1;
				break;
			}
			json_array_append_new(dkim, json_pack("{s:s,s:s,s:s}", "domain", dom,
			                                      "selector", sel, "result", res));
		} else {
			if (one_of(x, c, path, "scope", false, spf_scopes, scope,
			           sizeof(scope) - 1) < 0) {
				ret = -1;
				break;
			}
			json_array_append_new(
			    spf, json_pack("{s:s,s:s,s:s}", "domain", dom, "scope",
			                   scope[0] != '\0' ? scope : "mfrom", "result", res));
		}
	}
	if (ret == 0) {
		json_t *o = json_pack("{s:o,s:o}", "dkim", dkim, "spf", spf);
		*json_r = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		if (*json_r == NULL)
			mw_panic("out of memory");
		return 0;
	}
	json_decref(dkim);
	json_decref(spf);
	return -1;
}

/* record - one <record> into row */
static int record(struct xp *x, const xmlNode *rec, unsigned idx, const char *pdomain,
                  struct mw_dmarc_rpt_row *row)
{
	char rpath[64], path[128], buf[MW_DMARC_RPT_TEXT_MAX + 1];
	const xmlNode *r, *pe, *ids, *ar, *c;
	unsigned char addr[16];
	int bad = 0;
	bool present;
	(void)snprintf(rpath, sizeof(rpath), "feedback/record[%u]", idx);
	r = child(x, rec, "row", rpath, true, &bad);
	if (r == NULL)
		return -1;
	(void)snprintf(path, sizeof(path), "%s/row", rpath);
	if (field(x, r, path, "source_ip", true, buf, MW_DMARC_RPT_IP_MAX) < 0)
		return -1;
	if (inet_pton(AF_INET, buf, addr) == 1)
		(void)inet_ntop(AF_INET, addr, row->source_ip, sizeof(row->source_ip));
	else if (inet_pton(AF_INET6, buf, addr) == 1)
		(void)inet_ntop(AF_INET6, addr, row->source_ip, sizeof(row->source_ip));
	else {
		(void)snprintf(path, sizeof(path), "%s/row/source_ip", rpath);
		return xp_fail(x, r, path, "\"%s\" is not an IP address", buf);
	}
	if (number(x, r, path, "count", true, 0, MW_DMARC_RPT_COUNT_MAX, &row->count, &present) < 0)
		return -1;
	pe = child(x, r, "policy_evaluated", path, true, &bad);
	if (pe == NULL)
		return -1;
	(void)snprintf(path, sizeof(path), "%s/row/policy_evaluated", rpath);
	if (one_of(x, pe, path, "disposition", true, dispositions, buf, 16) < 0)
		return -1;
	row->disposition = (enum mw_dmarc_disposition)mw_name_index(disp_names, 3, buf);
	if (one_of(x, pe, path, "dkim", true, pass_fail, buf, 8) < 0)
		return -1;
	row->dkim_pass = strcmp(buf, "pass") == 0;
	if (one_of(x, pe, path, "spf", true, pass_fail, buf, 8) < 0)
		return -1;
	row->spf_pass = strcmp(buf, "pass") == 0;
	for (c = pe->children; c != NULL; c = c->next) {
		char type[32];
		char rp[160];
		if (!is_elem(c, "reason"))
			continue;
		(void)snprintf(rp, sizeof(rp), "%s/reason", path);
		if (one_of(x, c, rp, "type", true, reason_types, type, sizeof(type) - 1) < 0)
			return -1;
		if (strstr(row->reasons, type) != NULL)
			continue;
		{
			size_t l = strlen(row->reasons);
			int w = snprintf(row->reasons + l, sizeof(row->reasons) - l, "%s%s",
			                 l > 0 ? "," : "", type);
			if (w < 0 || (size_t)w >= sizeof(row->reasons) - l)
				return xp_fail(x, c, rp, "too many reasons");
		}
	}
	ids = child(x, rec, "identifiers", rpath, true, &bad);
	if (ids == NULL)
		return -1;
	(void)snprintf(path, sizeof(path), "%s/identifiers", rpath);
	if (domain_field(x, ids, path, "header_from", row->header_from) < 0 ||
	    field(x, ids, path, "envelope_from", false, row->envelope_from,
	          MW_DMARC_RPT_DOMAIN_MAX) < 0 ||
	    field(x, ids, path, "envelope_to", false, row->envelope_to, MW_DMARC_RPT_DOMAIN_MAX) <
	        0)
		return -1;
	if (!under(row->header_from, pdomain))
		return xp_fail(x, ids, path,
		               "header_from %s is not the policy domain %s or under it",
		               row->header_from, pdomain);
	ar = child(x, rec, "auth_results", rpath, true, &bad);
	if (ar == NULL)
		return -1;
	return auth_results(x, ar, rpath, &row->auth_results);
}

/* metadata - report_metadata and policy_published into rpt */
static int metadata(struct xp *x, const xmlNode *root, struct mw_dmarc_rpt *rpt)
{
	const xmlNode *md, *dr, *pp;
	int bad = 0;
	int64_t v = 0;
	bool present;
	md = child(x, root, "report_metadata", "feedback", true, &bad);
	if (md == NULL)
		return -1;
	if (field(x, md, "report_metadata", "org_name", true, rpt->org_name,
	          MW_DMARC_RPT_TEXT_MAX) < 0 ||
	    field(x, md, "report_metadata", "email", true, rpt->email, MW_DMARC_RPT_TEXT_MAX) < 0 ||
	    field(x, md, "report_metadata", "report_id", true, rpt->report_id,
	          MW_DMARC_RPT_TEXT_MAX) < 0)
		return -1;
	dr = child(x, md, "date_range", "report_metadata", true, &bad);
	if (dr == NULL)
		return -1;
	if (number(x, dr, "report_metadata/date_range", "begin", true, MIN_TIME, MAX_TIME,
	           &rpt->date_begin, &present) < 0 ||
	    number(x, dr, "report_metadata/date_range", "end", true, MIN_TIME, MAX_TIME,
	           &rpt->date_end, &present) < 0)
		return -1;
	if (rpt->date_end < rpt->date_begin ||
	    rpt->date_end - rpt->date_begin > MW_DMARC_RPT_MAX_SPAN)
		return xp_fail(x, dr, "report_metadata/date_range",
		               "end %lld before begin %lld or more than 31 days after it",
		               (long long)rpt->date_end, (long long)rpt->date_begin);
	pp = child(x, root, "policy_published", "feedback", true, &bad);
	if (pp == NULL)
		return -1;
	if (domain_field(x, pp, "policy_published", "domain", rpt->domain) < 0 ||
	    one_of(x, pp, "policy_published", "adkim", false, alignments, rpt->adkim, 1) < 0 ||
	    one_of(x, pp, "policy_published", "aspf", false, alignments, rpt->aspf, 1) < 0 ||
	    one_of(x, pp, "policy_published", "p", true, policies, rpt->p, 10) < 0 ||
	    one_of(x, pp, "policy_published", "sp", false, policies, rpt->sp, 10) < 0 ||
	    one_of(x, pp, "policy_published", "np", false, policies, rpt->np, 10) < 0 ||
	    number(x, pp, "policy_published", "pct", false, 0, 100, &v, &present) < 0)
		return -1;
	rpt->pct = present ? (int)v : -1;
	return 0;
}

/* on_doctype - SAX internalSubset: a report has no DTD; stop before any declaration */
static void on_doctype(void *ctx, const xmlChar *name, const xmlChar *ext, const xmlChar *sys)
{
	xmlParserCtxtPtr c = ctx;
	struct xp *x = c->_private;
	x->doctype = true;
	xmlStopParser(c);
}

/* mw_dmarc_rpt_parse_xml - the report in an XML document */
int mw_dmarc_rpt_parse_xml(const char *xml, size_t len, const char *name,
                           struct mw_dmarc_rpt **rpt_r, mw_error *error_r)
{
	struct xp x = {name != NULL ? name : "report", error_r, false};
	xmlParserCtxtPtr ctxt;
	xmlDocPtr doc;
	const xmlNode *root, *c;
	struct mw_dmarc_rpt *rpt;
	size_t cap = 0;
	unsigned idx = 0;
	int ret = 0;
	*rpt_r = NULL;
	if (len > MW_DMARC_RPT_XML_MAX) {
		mw_error_set(error_r, "%s: XML larger than %u bytes", x.name, MW_DMARC_RPT_XML_MAX);
		return -1;
	}
	if (len == 0) {
		mw_error_set(error_r, "%s: empty", x.name);
		return -1;
	}
	ctxt = xmlNewParserCtxt();
	if (ctxt == NULL)
		mw_panic("out of memory");
	ctxt->_private = &x;
	ctxt->sax->internalSubset = on_doctype;
	ctxt->sax->externalSubset = NULL;
	ctxt->sax->entityDecl = NULL;
	ctxt->sax->getEntity = NULL;
	ctxt->sax->resolveEntity = NULL;
	doc = xmlCtxtReadMemory(ctxt, xml, (int)len, NULL, NULL,
	                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (x.doctype) {
		mw_error_set(error_r,
		             "%s: line %d: a DOCTYPE (entity declarations) is refused in a report",
		             x.name, ctxt->input != NULL ? ctxt->input->line : 0);
		xmlFreeDoc(doc);
		xmlFreeParserCtxt(ctxt);
		return -1;
	}
	if (doc == NULL || !ctxt->wellFormed) {
		const xmlError *e = xmlCtxtGetLastError(ctxt);
		char msg[200];
		size_t l;
		(void)mw_strlcpy(msg,
		                 e != NULL && e->message != NULL ? e->message : "not well-formed",
		                 sizeof(msg));
		l = strlen(msg);
		while (l > 0 && (msg[l - 1] == '\n' || msg[l - 1] == ' '))
			msg[--l] = '\0';
		mw_error_set(error_r, "%s: line %d: malformed XML: %s", x.name,
		             e != NULL ? e->line : 0, msg);
		xmlFreeDoc(doc);
		xmlFreeParserCtxt(ctxt);
		return -1;
	}
	xmlFreeParserCtxt(ctxt);
	root = xmlDocGetRootElement(doc);
	if (root == NULL || !is_elem(root, "feedback")) {
		mw_error_set(error_r, "%s: the root element is <%s>, not <feedback>", x.name,
		             root != NULL ? (const char *)root->name : "");
		xmlFreeDoc(doc);
		return -1;
	}
	rpt = mw_calloc(1, sizeof(*rpt));
	ret = metadata(&x, root, rpt);
	for (c = root->children; c != NULL && ret == 0; c = c->next) {
		if (!is_elem(c, "record"))
			continue;
		idx++;
		if (rpt->nrows >= MW_DMARC_RPT_ROWS_MAX) {
			ret = xp_fail(&x, c, "feedback/record", "more than %d records",
			              MW_DMARC_RPT_ROWS_MAX);
			break;
		}
		if (rpt->nrows == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			rpt->rows = mw_realloc(rpt->rows, cap * sizeof(*rpt->rows));
		}
		memset(&rpt->rows[rpt->nrows], 0, sizeof(rpt->rows[0]));
		rpt->nrows++;
		ret = record(&x, c, idx, rpt->domain, &rpt->rows[rpt->nrows - 1]);
		if (ret == 0)
			rpt->messages += rpt->rows[rpt->nrows - 1].count;
	}
	if (ret == 0 && rpt->nrows == 0)
		ret = xp_fail(&x, root, "feedback", "no <record>");
	xmlFreeDoc(doc);
	if (ret < 0) {
		mw_dmarc_rpt_free(&rpt);
		return -1;
	}
	*rpt_r = rpt;
	return 0;
}

/* mw_dmarc_rpt_free - free a report and clear the pointer */
void mw_dmarc_rpt_free(struct mw_dmarc_rpt **rpt)
{
	size_t i;
	if (*rpt == NULL)
		return;
	for (i = 0; i < (*rpt)->nrows; i++)
		free((*rpt)->rows[i].auth_results);
	free((*rpt)->rows);
	free(*rpt);
	*rpt = NULL;
}

/* mw_dmarc_rpt_ours - the policy domain is a local domain or under one */
bool mw_dmarc_rpt_ours(const mw_config *cfg, const struct mw_dmarc_rpt *rpt)
{
	const char *d = rpt->domain;
	while (d != NULL && *d != '\0') {
		const char *dot;
		if (mw_dnsrec_domain_served(cfg, d))
			return true;
		dot = strchr(d, '.');
		d = dot != NULL ? dot + 1 : NULL;
	}
	return false;
}

/* ---- the message ------------------------------------------------------------------------ */

enum kind { K_NONE, K_XML, K_GZIP, K_ZIP };

/* ends_with - case-insensitive suffix */
static bool ends_with(const char *s, const char *suffix)
{
	size_t l = strlen(s), sl = strlen(suffix);
	return l >= sl && mw_ascii_strcasecmp(s + l - sl, suffix) == 0;
}

/* part_kind - what a leaf part holds, by its type (or its name for octet-stream) */
static enum kind part_kind(GMimeObject *part)
{
	GMimeContentType *ct = g_mime_object_get_content_type(part);
	const char *type = ct != NULL ? g_mime_content_type_get_media_type(ct) : "";
	const char *sub = ct != NULL ? g_mime_content_type_get_media_subtype(ct) : "";
	const char *fn = GMIME_IS_PART(part) ? g_mime_part_get_filename(GMIME_PART(part)) : NULL;
	if (type == NULL || sub == NULL)
		return K_NONE;
	if (mw_ascii_strcasecmp(type, "application") == 0 &&
	    (mw_ascii_strcasecmp(sub, "gzip") == 0 || mw_ascii_strcasecmp(sub, "x-gzip") == 0 ||
	     mw_ascii_strcasecmp(sub, "gzip-compressed") == 0))
		return K_GZIP;
	if (mw_ascii_strcasecmp(type, "application") == 0 &&
	    (mw_ascii_strcasecmp(sub, "zip") == 0 ||
	     mw_ascii_strcasecmp(sub, "x-zip-compressed") == 0 ||
	     mw_ascii_strcasecmp(sub, "x-zip") == 0))
		return K_ZIP;
	if ((mw_ascii_strcasecmp(type, "text") == 0 ||
	     mw_ascii_strcasecmp(type, "application") == 0) &&
	    mw_ascii_strcasecmp(sub, "xml") == 0)
		return K_XML;
	if (fn != NULL && mw_ascii_strcasecmp(type, "application") == 0 &&
	    mw_ascii_strcasecmp(sub, "octet-stream") == 0) {
		if (ends_with(fn, ".xml.gz") || ends_with(fn, ".gz"))
			return K_GZIP;
		if (ends_with(fn, ".zip"))
			return K_ZIP;
		if (ends_with(fn, ".xml"))
			return K_XML;
	}
	return K_NONE;
}

struct found {
	GMimePart *part;
	enum kind kind;
	unsigned count, parts;
};

/* find_report - the leaf parts that can hold a report (bounded walk) */
static void find_report(GMimeObject *obj, unsigned depth, struct found *f)
{
	if (obj == NULL || depth > 8 || ++f->parts > 100)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int i, n = g_mime_multipart_get_count(mp);
		for (i = 0; i < n; i++)
			find_report(g_mime_multipart_get_part(mp, i), depth + 1, f);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		/* a report forwarded as an attached message (message/rfc822) */
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (inner != NULL)
			find_report(g_mime_message_get_mime_part(inner), depth + 1, f);
	} else if (GMIME_IS_PART(obj)) {
		enum kind k = part_kind(obj);
		if (k != K_NONE) {
			if (f->count++ == 0) {
				f->part = GMIME_PART(obj);
				f->kind = k;
			}
		}
	}
}

/* part_bytes - the transfer-decoded content of a part, bounded */
static int part_bytes(GMimePart *part, mw_str *out, mw_error *error_r)
{
	GMimeDataWrapper *content = g_mime_part_get_content(part);
	GMimeStream *mem;
	GByteArray *bytes;
	int ret = 0;
	if (content == NULL) {
		mw_error_set(error_r, "the report part is empty");
		return -1;
	}
	mem = g_mime_stream_mem_new();
	(void)g_mime_data_wrapper_write_to_stream(content, mem);
	bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	if (bytes->len > MW_DMARC_RPT_COMPRESSED_MAX) {
		mw_error_set(error_r, "the report part is larger than %u bytes",
		             MW_DMARC_RPT_COMPRESSED_MAX);
		ret = -1;
	} else if (mw_str_append(out, (const char *)bytes->data, bytes->len) < 0) {
		mw_error_set(error_r, "the report part is too large");
		ret = -1;
	}
	g_object_unref(mem);
	return ret;
}

/* mw_dmarc_rpt_parse_message - the report in a mail */
int mw_dmarc_rpt_parse_message(const char *msg, size_t len, struct mw_dmarc_rpt **rpt_r,
                               mw_error *error_r)
{
	GMimeMessage *message;
	struct found f = {NULL, K_NONE, 0, 0};
	mw_str raw, xml;
	const char *fn;
	char name[128];
	int ret;
	*rpt_r = NULL;
	if (len > MW_DMARC_RPT_MESSAGE_MAX) {
		mw_error_set(error_r, "message larger than %u bytes", MW_DMARC_RPT_MESSAGE_MAX);
		return -1;
	}
	if (mw_mime_gmime_parse(msg, len, MW_DMARC_RPT_MIME_MAX, &message) < 0) {
		mw_error_set(error_r, "more than %d MIME parts", MW_DMARC_RPT_MIME_MAX);
		return -1;
	}
	if (message == NULL) {
		mw_error_set(error_r, "not a mail message");
		return -1;
	}
	find_report(g_mime_message_get_mime_part(message), 0, &f);
	if (f.count == 0) {
		mw_error_set(error_r, "no report in the message (no application/gzip, "
		                      "application/zip or text/xml part)");
		g_object_unref(message);
		return -1;
	}
	if (f.count > 1) {
		mw_error_set(error_r, "%u report parts in one message (one expected)", f.count);
		g_object_unref(message);
		return -1;
	}
	fn = g_mime_part_get_filename(f.part);
	(void)snprintf(name, sizeof(name), "%s", fn != NULL && fn[0] != '\0' ? fn : "report");
	{
		char *p;
		for (p = name; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
	}
	mw_str_init(&raw, MW_DMARC_RPT_COMPRESSED_MAX);
	mw_str_init(&xml, MW_DMARC_RPT_XML_MAX);
	ret = part_bytes(f.part, &raw, error_r);
	g_object_unref(message);
	if (ret == 0 && f.kind != K_XML) {
		ret = mw_dmarc_rpt_unpack(raw.buf != NULL ? raw.buf : "", raw.len, f.kind == K_ZIP,
		                          &xml, error_r);
		if (ret < 0)
			mw_error_prefix(error_r, "%s", name);
	}
	if (ret == 0) {
		const mw_str *doc = f.kind == K_XML ? &raw : &xml;
		ret = mw_dmarc_rpt_parse_xml(doc->buf != NULL ? doc->buf : "", doc->len, name,
		                             rpt_r, error_r);
	}
	mw_str_free(&raw);
	mw_str_free(&xml);
	return ret;
}

/* ---- JSON ------------------------------------------------------------------------------- */

/* share - fail / messages, 0 when there are none */
static double share(int64_t fail, int64_t total)
{
	return total > 0 ? (double)fail / (double)total : 0.0;
}

/* mw_dmarc_summary_json - the summary rows grouped by domain */
json_t *mw_dmarc_summary_json(const struct mw_dmarc_sum_row *rows, size_t n)
{
	json_t *domains = json_array(), *totals;
	int64_t t_msgs = 0, t_pass = 0;
	size_t i, j;
	bool *done = mw_calloc(n > 0 ? n : 1, sizeof(bool));
	/* rows come most messages first: a domain's first row places it; its rows follow */
	for (i = 0; i < n; i++) {
		json_t *sources, *d;
		int64_t msgs = 0, pass = 0;
		if (done[i])
			continue;
		sources = json_array();
		for (j = i; j < n; j++) {
			const struct mw_dmarc_sum_row *r = &rows[j];
			if (done[j] || strcmp(r->domain, rows[i].domain) != 0)
				continue;
			done[j] = true;
			msgs += r->messages;
			pass += r->dmarc_pass;
			json_array_append_new(
			    sources,
			    json_pack(
			        "{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I},s:I}",
			        "source_ip", r->source_ip, "org_name", r->org_name, "messages",
			        (json_int_t)r->messages, "dkim_pass", (json_int_t)r->dkim_pass,
			        "dkim_fail", (json_int_t)(r->messages - r->dkim_pass), "spf_pass",
			        (json_int_t)r->spf_pass, "spf_fail",
			        (json_int_t)(r->messages - r->spf_pass), "dmarc_pass",
			        (json_int_t)r->dmarc_pass, "dmarc_fail",
			        (json_int_t)(r->messages - r->dmarc_pass), "disposition", "none",
			        (json_int_t)(r->messages - r->quarantined - r->rejected),
			        "quarantine", (json_int_t)r->quarantined, "reject",
			        (json_int_t)r->rejected, "reports", (json_int_t)r->reports));
		}
		d = json_pack("{s:s,s:I,s:I,s:I,s:f,s:o}", "domain", rows[i].domain, "messages",
		              (json_int_t)msgs, "dmarc_pass", (json_int_t)pass, "dmarc_fail",
		              (json_int_t)(msgs - pass), "fail_share", share(msgs - pass, msgs),
		              "sources", sources);
		json_array_append_new(domains, d);
		t_msgs += msgs;
		t_pass += pass;
	}
	free(done);
	totals = json_pack("{s:I,s:I,s:I,s:f,s:I}", "messages", (json_int_t)t_msgs, "dmarc_pass",
	                   (json_int_t)t_pass, "dmarc_fail", (json_int_t)(t_msgs - t_pass),
	                   "fail_share", share(t_msgs - t_pass, t_msgs), "sources", (json_int_t)n);
	return json_pack("{s:o,s:o}", "domains", domains, "totals", totals);
}

/* mw_dmarc_rpt_info_json - one stored report */
json_t *mw_dmarc_rpt_info_json(const struct mw_dmarc_rpt_info *r)
{
	return json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "id",
	                 (json_int_t)r->id, "org_name", r->org_name, "email", r->email, "report_id",
	                 r->report_id, "domain", r->domain, "policy", r->policy, "date_begin",
	                 (json_int_t)r->date_begin, "date_end", (json_int_t)r->date_end,
	                 "imported_at", (json_int_t)r->imported_at, "messages",
	                 (json_int_t)r->messages, "dmarc_fail", (json_int_t)r->dmarc_fail, "rows",
	                 (json_int_t)r->rows);
}
