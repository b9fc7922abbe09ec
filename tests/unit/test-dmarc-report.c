/* test-dmarc-report.c - DMARC aggregate reports received (lib/mw-dmarc-report.c, the
 * store's lib/store/dmarcreports.c).
 *
 * Parser: the report mails of tests/data/dmarc/ (shaped as Google, Microsoft, Yahoo and a
 * text/xml body send them) read field by field; a table of hostile or broken XML each
 * refused with its message (malformed XML, XXE, billion laughs, external DTD, wrong schema,
 * huge and negative counts, bad IPs and values, element content in a value); compressed
 * input: a gzip bomb, a zip bomb (claimed and unclaimed size), a zip with two files, path
 * traversal and directory names, a CRC mismatch, trailing data. Store (both backends): a
 * report stored once (the second import is a duplicate and counts nothing), the summary by
 * domain / source / reporter sorted by volume, domain and date filters, the report list.
 */
#include "mw-build.h"
#include "mw-dmarc-report.h"
#include "mw-test-db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* read_data - a file of tests/data/dmarc/ into memory */
static char *read_data(const char *name, size_t *len_r)
{
	char rel[1024];
	char *buf;
	(void)snprintf(rel, sizeof(rel), "tests/data/dmarc/%s", name);
	buf = mw_test_srcdir_file(rel, len_r);
	if (buf == NULL)
		fail_msg("%s: cannot open", rel);
	assert_true(*len_r > 0);
	return buf;
}

/* parse_file - a report mail of tests/data/dmarc/, which must parse */
static struct mw_dmarc_rpt *parse_file(const char *name)
{
	size_t len;
	char *msg = read_data(name, &len);
	struct mw_dmarc_rpt *rpt = NULL;
	mw_error err = {""};
	if (mw_dmarc_rpt_parse_message(msg, len, &rpt, &err) < 0)
		fail_msg("%s: %s", name, err.msg);
	free(msg);
	return rpt;
}

/* ---- the reporters' shapes ---- */

static void test_google_zip(void **state)
{
	struct mw_dmarc_rpt *r = parse_file("google.eml");
	assert_string_equal(r->org_name, "google.com");
	assert_string_equal(r->email, "noreply-dmarc-support@google.com");
	assert_string_equal(r->report_id, "4185902836130592311");
	assert_int_equal(r->date_begin, 1796515200);
	assert_int_equal(r->date_end, 1796601599);
	assert_string_equal(r->domain, "example.org");
	assert_string_equal(r->p, "quarantine");
	assert_string_equal(r->np, "quarantine");
	assert_string_equal(r->adkim, "r");
	assert_int_equal(r->pct, 100);
	assert_int_equal(r->nrows, 2);
	assert_int_equal(r->messages, 127);
	assert_string_equal(r->rows[0].source_ip, "192.0.2.25");
	assert_int_equal(r->rows[0].count, 120);
	assert_true(r->rows[0].dkim_pass && r->rows[0].spf_pass);
	assert_int_equal(r->rows[0].disposition, MW_DMARC_DISP_NONE);
	assert_string_equal(r->rows[0].auth_results,
	                    "{\"dkim\":[{\"domain\":\"example.org\",\"selector\":\"202612\","
	                    "\"result\":\"pass\"}],\"spf\":[{\"domain\":\"example.org\","
	                    "\"scope\":\"mfrom\",\"result\":\"pass\"}]}");
	assert_string_equal(r->rows[1].source_ip, "203.0.113.77");
	assert_int_equal(r->rows[1].disposition, MW_DMARC_DISP_QUARANTINE);
	assert_false(r->rows[1].dkim_pass || r->rows[1].spf_pass);
	assert_non_null(strstr(r->rows[1].auth_results, "\"softfail\""));
	mw_dmarc_rpt_free(&r);
	assert_null(r);
}

static void test_microsoft_gzip(void **state)
{
	struct mw_dmarc_rpt *r = parse_file("microsoft.eml");
	assert_string_equal(r->org_name, "Enterprise Outlook");
	assert_int_equal(r->nrows, 2);
	assert_int_equal(r->messages, 43);
	assert_string_equal(r->rows[0].envelope_to, "outlook.com");
	assert_string_equal(r->rows[0].envelope_from, "example.org");
	/* IPv6 written long-hand comes back in its canonical form */
	assert_string_equal(r->rows[1].source_ip, "2001:db8::5");
	assert_string_equal(r->rows[1].header_from, "news.example.org");
	assert_string_equal(r->rows[1].reasons, "forwarded");
	assert_true(r->rows[1].dkim_pass);
	assert_false(r->rows[1].spf_pass);
	mw_dmarc_rpt_free(&r);
}

static void test_yahoo_gzip_and_body(void **state)
{
	struct mw_dmarc_rpt *r = parse_file("yahoo.eml");
	assert_string_equal(r->org_name, "Yahoo");
	assert_string_equal(r->report_id, "1796601600.661203");
	assert_string_equal(r->sp, "");
	assert_int_equal(r->nrows, 1);
	assert_int_equal(r->rows[0].disposition, MW_DMARC_DISP_REJECT);
	assert_string_equal(r->rows[0].source_ip, "198.51.100.9");
	mw_dmarc_rpt_free(&r);
	r = parse_file("body.eml");
	assert_string_equal(r->report_id, "mw-20261207-1");
	assert_int_equal(r->messages, 12);
	mw_dmarc_rpt_free(&r);
}

/* what mailwarden's own sender (mailwardenctl dmarc send-reports) writes: the null sender's
   SPF domain ".", a t=y evaluation as reason other */
/* a report forwarded by a person (the original mail attached as message/rfc822) */
static void test_forwarded(void **state)
{
	size_t len;
	char *orig = read_data("yahoo.eml", &len);
	struct mw_dmarc_rpt *r = NULL;
	mw_error err = {""};
	mw_str fwd;
	mw_str_init(&fwd, 0);
	assert_int_equal(mw_str_appends(&fwd, "From: admin@example.org\r\nSubject: Fwd: report\r\n"
	                                      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
	                                      "boundary=FW\r\n\r\n--FW\r\nContent-Type: text/plain"
	                                      "\r\n\r\nsee attached\r\n--FW\r\nContent-Type: "
	                                      "message/rfc822\r\n\r\n"),
	                 0);
	assert_int_equal(mw_str_append(&fwd, orig, len), 0);
	assert_int_equal(mw_str_appends(&fwd, "\r\n--FW--\r\n"), 0);
	if (mw_dmarc_rpt_parse_message(fwd.buf, fwd.len, &r, &err) < 0)
		fail_msg("forwarded: %s", err.msg);
	assert_string_equal(r->report_id, "1796601600.661203");
	mw_dmarc_rpt_free(&r);
	mw_str_free(&fwd);
	free(orig);
}

static void test_mailwarden_gzip(void **state)
{
	struct mw_dmarc_rpt *r = parse_file("mailwarden.eml");
	assert_string_equal(r->org_name, "mail.example.net");
	assert_string_equal(r->report_id, "example.org.1796515200");
	assert_string_equal(r->p, "reject");
	assert_int_equal(r->nrows, 2);
	assert_int_equal(r->messages, 11);
	assert_string_equal(r->rows[1].reasons, "other");
	assert_string_equal(r->rows[1].auth_results,
	                    "{\"dkim\":[],\"spf\":[{\"domain\":\".\",\"scope\":\"helo\","
	                    "\"result\":\"none\"}]}");
	mw_dmarc_rpt_free(&r);
}

/* ---- XML refused ---- */

#define HEAD                                                                                       \
	"<feedback><report_metadata><org_name>r.example</org_name><email>a@r.example</email>"      \
	"<report_id>1</report_id><date_range><begin>1796515200</begin><end>1796601599</end>"       \
	"</date_range></report_metadata><policy_published><domain>example.org</domain>"            \
	"<p>none</p></policy_published>"
#define ROW(ip, count, disp, from)                                                                 \
	"<record><row><source_ip>" ip "</source_ip><count>" count "</count><policy_evaluated>"     \
	"<disposition>" disp "</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated>"   \
	"</row><identifiers><header_from>" from "</header_from></identifiers><auth_results><spf>"  \
	"<domain>example.org</domain><result>pass</result></spf></auth_results></record>"
#define GOOD_ROW ROW("192.0.2.1", "5", "none", "example.org")
#define TAIL     "</feedback>"
#define LAUGHS                                                                                     \
	"<?xml version=\"1.0\"?><!DOCTYPE feedback [<!ENTITY a \"aaaaaaaaaa\">"                    \
	"<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c "                                \
	"\"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"                                                      \
	"<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\"><!ENTITY e "                                \
	"\"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">"                                                      \
	"<!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\"><!ENTITY g "                                \
	"\"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">"                                                      \
	"]>"

static const struct bad_xml {
	const char *what, *xml, *error;
} bad_xml[] = {
    {"good (the table's baseline)", HEAD GOOD_ROW TAIL, NULL},
    {"not well-formed", HEAD GOOD_ROW "</feedbac>", "malformed XML"},
    {"truncated", HEAD "<record><row>", "malformed XML"},
    {"XXE (external entity)",
     "<?xml version=\"1.0\"?><!DOCTYPE feedback [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
     "<feedback><report_metadata><org_name>&xxe;</org_name></report_metadata></feedback>",
     "DOCTYPE"},
    {"billion laughs",
     LAUGHS "<feedback><report_metadata><org_name>&g;</org_name></report_metadata></feedback>",
     "DOCTYPE"},
    {"external DTD", "<!DOCTYPE feedback SYSTEM \"http://192.0.2.1/x.dtd\">" HEAD GOOD_ROW TAIL,
     "DOCTYPE"},
    {"undeclared entity", HEAD "<record>&x;</record>" TAIL, "malformed XML"},
    {"wrong root", "<report>" GOOD_ROW "</report>", "not <feedback>"},
    {"no report_id",
     "<feedback><report_metadata><org_name>r</org_name><email>a@b</email></report_metadata>"
     "</feedback>",
     "<report_id> is missing"},
    {"org_name twice",
     "<feedback><report_metadata><org_name>r</org_name><org_name>s</org_name>"
     "</report_metadata></feedback>",
     "<org_name> appears twice"},
    {"no records", HEAD TAIL, "no <record>"},
    {"huge count", HEAD ROW("192.0.2.1", "99999999999999999999999", "none", "example.org") TAIL,
     "record[1]/row/count: \"99999999999999999999999\" is not a number from 0 to 4294967295"},
    {"count over the limit", HEAD ROW("192.0.2.1", "4294967296", "none", "example.org") TAIL,
     "is not a number"},
    {"negative count", HEAD ROW("192.0.2.1", "-1", "none", "example.org") TAIL, "is not a number"},
    {"count with a sign", HEAD ROW("192.0.2.1", "+5", "none", "example.org") TAIL,
     "is not a number"},
    {"empty count", HEAD ROW("192.0.2.1", "", "none", "example.org") TAIL, "count: empty"},
    {"bad IP", HEAD ROW("192.0.2.300", "5", "none", "example.org") TAIL,
     "\"192.0.2.300\" is not an IP address"},
    {"bad disposition", HEAD ROW("192.0.2.1", "5", "allow", "example.org") TAIL,
     "disposition: \"allow\" is not a valid value"},
    {"header_from elsewhere", HEAD ROW("192.0.2.1", "5", "none", "example.com") TAIL,
     "header_from example.com is not the policy domain example.org"},
    {"header_from a suffix lookalike", HEAD ROW("192.0.2.1", "5", "none", "badexample.org") TAIL,
     "not the policy domain"},
    {"element in a value", HEAD ROW("192.0.2.1", "<b>5</b>", "none", "example.org") TAIL,
     "element content where a value belongs"},
    {"second record bad (line and index)",
     HEAD GOOD_ROW "\n" ROW("x", "5", "none", "example.org") TAIL,
     "line 2: feedback/record[2]/row/source_ip"},
    {"dates reversed",
     "<feedback><report_metadata><org_name>r</org_name><email>a@b</email><report_id>1"
     "</report_id><date_range><begin>1796601599</begin><end>1796515200</end></date_range>"
     "</report_metadata></feedback>",
     "date_range: end"},
    {"date in 1970",
     "<feedback><report_metadata><org_name>r</org_name><email>a@b</email><report_id>1"
     "</report_id><date_range><begin>5</begin><end>6</end></date_range></report_metadata>"
     "</feedback>",
     "begin: \"5\" is not a number"},
    {"policy domain not a domain",
     "<feedback><report_metadata><org_name>r</org_name><email>a@b</email><report_id>1"
     "</report_id><date_range><begin>1796515200</begin><end>1796601599</end></date_range>"
     "</report_metadata><policy_published><domain>exa mple.org</domain><p>none</p>"
     "</policy_published>" GOOD_ROW TAIL,
     "policy_published/domain"},
    {"pct over 100",
     "<feedback><report_metadata><org_name>r</org_name><email>a@b</email><report_id>1"
     "</report_id><date_range><begin>1796515200</begin><end>1796601599</end></date_range>"
     "</report_metadata><policy_published><domain>example.org</domain><p>none</p><pct>101"
     "</pct></policy_published>" GOOD_ROW TAIL,
     "pct: \"101\""},
    {"control character", "<feedback><report_metadata><org_name>a\tb</org_name>", "malformed"},
    {"tab inside a value",
     "<feedback><report_metadata><org_name>a\tb</org_name><email>a@b</email><report_id>1"
     "</report_id></report_metadata></feedback>",
     "org_name: control character"},
    {"C1 control (a terminal's CSI) inside a value",
     "<feedback><report_metadata><org_name>a\xc2\x9b"
     "2Jb</org_name><email>a@b</email>"
     "<report_id>1</report_id></report_metadata></feedback>",
     "org_name: control character"},
    {"envelope_from longer than a domain",
     HEAD "<record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated>"
          "<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>"
          "</row><identifiers><header_from>example.org</header_from><envelope_from>"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "</envelope_from></identifiers><auth_results/></record>" TAIL,
     "envelope_from: value longer than 253 bytes"},
    {"empty document", "", "empty"},
};

static void test_bad_xml(void **state)
{
	size_t i;
	for (i = 0; i < MW_N_ELEMENTS(bad_xml); i++) {
		const struct bad_xml *t = &bad_xml[i];
		struct mw_dmarc_rpt *r = NULL;
		mw_error err = {""};
		int ret = mw_dmarc_rpt_parse_xml(t->xml, strlen(t->xml), "t.xml", &r, &err);
		if (t->error == NULL) {
			if (ret != 0)
				fail_msg("%s: refused: %s", t->what, err.msg);
			mw_dmarc_rpt_free(&r);
			continue;
		}
		if (ret == 0)
			fail_msg("%s: accepted", t->what);
		assert_null(r);
		if (strstr(err.msg, t->error) == NULL || strncmp(err.msg, "t.xml: ", 7) != 0)
			fail_msg("%s: message \"%s\" does not say \"%s\"", t->what, err.msg,
			         t->error);
	}
}

/* ---- compressed input ---- */

/* deflate_raw - data deflated (raw: zip; gzip: 16+15) into a new buffer */
static unsigned char *deflate_buf(const void *data, size_t len, int windowbits, size_t *out_r)
{
	z_stream z;
	size_t cap = compressBound((uLong)len) + 64;
	unsigned char *out = mw_malloc(cap);
	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, windowbits, 9, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (unsigned char *)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*out_r = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

static void put16(mw_str *s, unsigned v)
{
	char b[2] = {(char)(v & 0xff), (char)(v >> 8)};
	assert_int_equal(mw_str_append(s, b, 2), 0);
}
static void put32(mw_str *s, uint32_t v)
{
	put16(s, v & 0xffff);
	put16(s, v >> 16);
}

struct zentry {
	const char *name;
	const char *data;
	size_t len;
	uint32_t claim_size; /* 0: the real size */
	bool bad_crc;
};

/* make_zip - a zip archive of deflated entries */
static void make_zip(mw_str *z, const struct zentry *e, size_t n)
{
	size_t i, cd_at, cd_size;
	uint32_t offs[8];
	size_t csizes[8];
	unsigned char *comp[8];
	mw_str_init(z, 0);
	for (i = 0; i < n; i++) {
		comp[i] = deflate_buf(e[i].data, e[i].len, -15, &csizes[i]);
		offs[i] = (uint32_t)z->len;
		put32(z, 0x04034b50);
		put16(z, 20), put16(z, 0), put16(z, 8), put16(z, 0), put16(z, 0);
		put32(z, (uint32_t)crc32(0, (const Bytef *)e[i].data, (uInt)e[i].len) ^
		             (e[i].bad_crc ? 1u : 0u));
		put32(z, (uint32_t)csizes[i]);
		put32(z, e[i].claim_size != 0 ? e[i].claim_size : (uint32_t)e[i].len);
		put16(z, (unsigned)strlen(e[i].name)), put16(z, 0);
		assert_int_equal(mw_str_appends(z, e[i].name), 0);
		assert_int_equal(mw_str_append(z, (const char *)comp[i], csizes[i]), 0);
	}
	cd_at = z->len;
	for (i = 0; i < n; i++) {
		put32(z, 0x02014b50);
		put16(z, 20), put16(z, 20), put16(z, 0), put16(z, 8), put16(z, 0), put16(z, 0);
		put32(z, (uint32_t)crc32(0, (const Bytef *)e[i].data, (uInt)e[i].len) ^
		             (e[i].bad_crc ? 1u : 0u));
		put32(z, (uint32_t)csizes[i]);
		put32(z, e[i].claim_size != 0 ? e[i].claim_size : (uint32_t)e[i].len);
		put16(z, (unsigned)strlen(e[i].name)), put16(z, 0), put16(z, 0), put16(z, 0),
		    put16(z, 0);
		put32(z, 0), put32(z, offs[i]);
		assert_int_equal(mw_str_appends(z, e[i].name), 0);
		free(comp[i]);
	}
	cd_size = z->len - cd_at;
	put32(z, 0x06054b50);
	put16(z, 0), put16(z, 0), put16(z, (unsigned)n), put16(z, (unsigned)n);
	put32(z, (uint32_t)cd_size), put32(z, (uint32_t)cd_at);
	put16(z, 0);
}

/* unpack_zip - mw_dmarc_rpt_unpack of a made zip: NULL when it unpacked, else the message */
static const char *unpack_zip(const struct zentry *e, size_t n, mw_error *err, mw_str *xml)
{
	mw_str z;
	int ret;
	make_zip(&z, e, n);
	mw_str_init(xml, 0);
	ret = mw_dmarc_rpt_unpack(z.buf, z.len, true, xml, err);
	mw_str_free(&z);
	return ret == 0 ? NULL : err->msg;
}

static void test_zip(void **state)
{
	static const char doc[] = HEAD GOOD_ROW TAIL;
	mw_error err = {""};
	mw_str xml;
	const char *msg;
	struct zentry one = {"report.xml", doc, sizeof(doc) - 1, 0, false};
	struct zentry two[2] = {{"a.xml", doc, sizeof(doc) - 1, 0, false},
	                        {"b.xml", doc, sizeof(doc) - 1, 0, false}};
	static const char *const bad_names[] = {"../../etc/cron.d/x.xml",
	                                        "/tmp/x.xml",
	                                        "dir/r.xml",
	                                        "..\\win.xml",
	                                        "report.txt",
	                                        ".hidden.xml"};
	size_t i;
	char *zeros;

	msg = unpack_zip(&one, 1, &err, &xml);
	if (msg != NULL)
		fail_msg("good zip: %s", msg);
	assert_int_equal(xml.len, sizeof(doc) - 1);
	assert_memory_equal(xml.buf, doc, xml.len);
	mw_str_free(&xml);

	msg = unpack_zip(two, 2, &err, &xml);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "holds 2 files"));
	mw_str_free(&xml);

	for (i = 0; i < MW_N_ELEMENTS(bad_names); i++) {
		struct zentry e = {bad_names[i], doc, sizeof(doc) - 1, 0, false};
		msg = unpack_zip(&e, 1, &err, &xml);
		if (msg == NULL || strstr(msg, "file name") == NULL)
			fail_msg("zip entry named %s: %s", bad_names[i],
			         msg != NULL ? msg : "accepted");
		mw_str_free(&xml);
	}

	one.bad_crc = true;
	msg = unpack_zip(&one, 1, &err, &xml);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "CRC"));
	mw_str_free(&xml);

	/* a bomb: 40 MiB of zeros that claims the truth is refused before inflating */
	zeros = mw_calloc(40u << 20, 1);
	{
		struct zentry bomb = {"bomb.xml", zeros, 40u << 20, 0, false};
		msg = unpack_zip(&bomb, 1, &err, &xml);
		assert_non_null(msg);
		assert_non_null(strstr(msg, "compression bomb"));
		mw_str_free(&xml);
		/* ... and one that lies about its size is stopped while inflating */
		bomb.claim_size = 1000;
		msg = unpack_zip(&bomb, 1, &err, &xml);
		assert_non_null(msg);
		assert_non_null(strstr(msg, "compression bomb"));
		assert_true(xml.len <= MW_DMARC_RPT_XML_MAX);
		mw_str_free(&xml);
	}
	free(zeros);

	/* not a zip at all, and a truncated one */
	mw_str_init(&xml, 0);
	assert_int_equal(mw_dmarc_rpt_unpack("PK\003\004garbage", 11, true, &xml, &err), -1);
	assert_non_null(strstr(err.msg, "zip"));
	mw_str_free(&xml);
}

static void test_gzip(void **state)
{
	static const char doc[] = HEAD GOOD_ROW TAIL;
	mw_error err = {""};
	mw_str xml, trail;
	size_t n;
	unsigned char *gz = deflate_buf(doc, sizeof(doc) - 1, 16 + 15, &n);
	char *zeros;

	mw_str_init(&xml, 0);
	assert_int_equal(mw_dmarc_rpt_unpack((char *)gz, n, false, &xml, &err), 0);
	assert_int_equal(xml.len, sizeof(doc) - 1);
	/* corrupt data and data after the stream */
	gz[n / 2] ^= 0x55;
	assert_int_equal(mw_dmarc_rpt_unpack((char *)gz, n, false, &xml, &err), -1);
	gz[n / 2] ^= 0x55;
	mw_str_init(&trail, 0);
	assert_int_equal(mw_str_append(&trail, (char *)gz, n), 0);
	assert_int_equal(mw_str_appends(&trail, "trailing"), 0);
	assert_int_equal(mw_dmarc_rpt_unpack(trail.buf, trail.len, false, &xml, &err), -1);
	assert_non_null(strstr(err.msg, "after the end"));
	mw_str_free(&trail);
	assert_int_equal(mw_dmarc_rpt_unpack(doc, sizeof(doc) - 1, false, &xml, &err), -1);
	assert_non_null(strstr(err.msg, "not gzip"));
	free(gz);

	/* the gzip bomb: 40 MiB of zeros in about 40 KiB */
	zeros = mw_calloc(40u << 20, 1);
	gz = deflate_buf(zeros, 40u << 20, 16 + 15, &n);
	free(zeros);
	assert_true(n < 100000);
	assert_int_equal(mw_dmarc_rpt_unpack((char *)gz, n, false, &xml, &err), -1);
	if (strstr(err.msg, "decompressed data larger than") == NULL ||
	    strstr(err.msg, "compression bomb") == NULL)
		fail_msg("gzip bomb: %s", err.msg);
	assert_true(xml.len <= MW_DMARC_RPT_XML_MAX);
	free(gz);
	mw_str_free(&xml);
}

/* ---- messages ---- */

static void test_messages_refused(void **state)
{
	static const char plain[] = "From: a@b\r\nSubject: hi\r\n\r\nno report here\r\n";
	static const char two[] =
	    "From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
	    "--XX\r\nContent-Type: text/xml\r\n\r\n<feedback/>\r\n"
	    "--XX\r\nContent-Type: text/xml\r\n\r\n<feedback/>\r\n--XX--\r\n";
	static const char named[] =
	    "From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream; "
	    "name=r.zip\r\nContent-Disposition: attachment; filename=\"r.zip\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nUEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==\r\n";
	struct mw_dmarc_rpt *r = NULL;
	mw_error err = {""};
	mw_str deep;
	int i;
	/* nesting GMime would have to recurse through is refused before it parses */
	mw_str_init(&deep, 0);
	assert_int_equal(mw_str_appends(&deep, "From: a@b\r\nMIME-Version: 1.0\r\n"), 0);
	for (i = 0; i < 201; i++)
		assert_int_equal(
		    mw_str_appendf(&deep,
		                   "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n"
		                   "--b%d\r\n",
		                   i, i),
		    0);
	assert_int_equal(mw_dmarc_rpt_parse_message(deep.buf, deep.len, &r, &err), -1);
	assert_non_null(strstr(err.msg, "more than 200 MIME parts"));
	mw_str_free(&deep);
	assert_int_equal(mw_dmarc_rpt_parse_message(plain, strlen(plain), &r, &err), -1);
	assert_non_null(strstr(err.msg, "no report in the message"));
	assert_int_equal(mw_dmarc_rpt_parse_message(two, strlen(two), &r, &err), -1);
	assert_non_null(strstr(err.msg, "2 report parts"));
	/* octet-stream named .zip is read as a zip (an empty one: refused, naming the file) */
	assert_int_equal(mw_dmarc_rpt_parse_message(named, strlen(named), &r, &err), -1);
	if (strstr(err.msg, "r.zip: zip: holds 0 files") == NULL)
		fail_msg("%s", err.msg);
	assert_null(r);
}

static void test_ours(void **state)
{
	mw_error err = {""};
	static const char conf[] = "[milter]\nlocal_domains = example.org, Example.NET\n";
	mw_config *cfg = mw_config_load_string(conf, strlen(conf), "t.conf", &err);
	struct mw_dmarc_rpt *r = parse_file("google.eml");
	struct mw_dmarc_rpt *n = parse_file("notours.eml");
	assert_non_null(cfg);
	assert_true(mw_dmarc_rpt_ours(cfg, r));
	assert_false(mw_dmarc_rpt_ours(cfg, n));
	(void)mw_strlcpy(r->domain, "mail.example.net", sizeof(r->domain));
	assert_true(mw_dmarc_rpt_ours(cfg, r));
	(void)mw_strlcpy(r->domain, "notexample.net", sizeof(r->domain));
	assert_false(mw_dmarc_rpt_ours(cfg, r));
	(void)mw_strlcpy(r->domain, "org", sizeof(r->domain));
	assert_false(mw_dmarc_rpt_ours(cfg, r));
	mw_dmarc_rpt_free(&r);
	mw_dmarc_rpt_free(&n);
	mw_config_unref(&cfg);
}

/* ---- store, both backends ---- */

/* add_file - store a report mail; the store status */
static int add_file(mw_store *store, const char *name)
{
	struct mw_dmarc_rpt *r = parse_file(name);
	mw_error err = {""};
	int64_t id = 0;
	int ret = mw_store_dmarc_report_add(store, r, &id, &err);
	if (ret == MW_STORE_ERROR)
		fail_msg("%s: %s", name, err.msg);
	if (ret == MW_STORE_OK)
		assert_true(id > 0);
	mw_dmarc_rpt_free(&r);
	return ret;
}

static void test_store_reports(void **state)
{
	struct mw_test_store_fx *f = *state;
	struct mw_dmarc_filter all = {NULL, 0, 0, 0};
	struct mw_dmarc_sum_row *s = NULL;
	struct mw_dmarc_rpt_info *v = NULL;
	size_t n = 0;
	mw_error err = {""};
	json_t *j;

	assert_int_equal(add_file(f->store, "google.eml"), MW_STORE_OK);
	assert_int_equal(add_file(f->store, "microsoft.eml"), MW_STORE_OK);
	assert_int_equal(add_file(f->store, "yahoo.eml"), MW_STORE_OK);
	/* the same report again: refused, nothing counted twice */
	assert_int_equal(add_file(f->store, "google.eml"), MW_STORE_EXISTS);
	assert_int_equal(add_file(f->store, "yahoo.eml"), MW_STORE_EXISTS);

	assert_int_equal(mw_store_dmarc_summary(f->store, &all, &s, &n, &err), MW_STORE_OK);
	assert_int_equal(n, 5);
	/* most messages first: google's 120 from 192.0.2.25, then Outlook's 40 from it */
	assert_string_equal(s[0].domain, "example.org");
	assert_string_equal(s[0].source_ip, "192.0.2.25");
	assert_string_equal(s[0].org_name, "google.com");
	assert_int_equal(s[0].messages, 120);
	assert_int_equal(s[0].dmarc_pass, 120);
	assert_int_equal(s[1].messages, 40);
	assert_string_equal(s[1].org_name, "Enterprise Outlook");
	assert_string_equal(s[2].source_ip, "198.51.100.9");
	assert_int_equal(s[2].messages, 12);
	assert_int_equal(s[2].rejected, 12);
	assert_int_equal(s[2].dmarc_pass, 0);
	assert_int_equal(s[3].messages, 7);
	assert_int_equal(s[3].quarantined, 7);
	assert_string_equal(s[4].domain, "news.example.org");
	assert_int_equal(s[4].dkim_pass, 3);
	assert_int_equal(s[4].spf_pass, 0);
	assert_int_equal(s[4].dmarc_pass, 3);

	j = mw_dmarc_summary_json(s, n);
	{
		json_t *t = json_object_get(j, "totals"),
		       *d0 = json_array_get(json_object_get(j, "domains"), 0);
		assert_int_equal(json_integer_value(json_object_get(t, "messages")), 182);
		assert_int_equal(json_integer_value(json_object_get(t, "dmarc_fail")), 19);
		assert_int_equal(json_array_size(json_object_get(j, "domains")), 2);
		assert_string_equal(json_string_value(json_object_get(d0, "domain")),
		                    "example.org");
		assert_int_equal(json_integer_value(json_object_get(d0, "messages")), 179);
		assert_int_equal(json_array_size(json_object_get(d0, "sources")), 4);
		assert_true(json_real_value(json_object_get(t, "fail_share")) > 0.104 &&
		            json_real_value(json_object_get(t, "fail_share")) < 0.105);
	}
	json_decref(j);
	free(s);

	/* a header_from filter, and a date range that misses every report */
	{
		struct mw_dmarc_filter fd = {"news.example.org", 0, 0, 0};
		struct mw_dmarc_filter late = {NULL, 1796601601, 0, 0};
		struct mw_dmarc_filter early = {NULL, 0, 1796515200, 0};
		struct mw_dmarc_filter lim = {"example.org", 1796515200, 1796601600, 2};
		assert_int_equal(mw_store_dmarc_summary(f->store, &fd, &s, &n, &err), MW_STORE_OK);
		assert_int_equal(n, 1);
		assert_string_equal(s[0].domain, "news.example.org");
		free(s);
		assert_int_equal(mw_store_dmarc_summary(f->store, &late, &s, &n, &err),
		                 MW_STORE_OK);
		assert_int_equal(n, 0);
		free(s);
		assert_int_equal(mw_store_dmarc_summary(f->store, &early, &s, &n, &err),
		                 MW_STORE_OK);
		assert_int_equal(n, 0);
		free(s);
		assert_int_equal(mw_store_dmarc_summary(f->store, &lim, &s, &n, &err), MW_STORE_OK);
		assert_int_equal(n, 2);
		free(s);
	}

	assert_int_equal(mw_store_dmarc_report_list(f->store, &all, &v, &n, &err), MW_STORE_OK);
	assert_int_equal(n, 3);
	{
		size_t i;
		int seen = 0;
		for (i = 0; i < n; i++) {
			if (strcmp(v[i].org_name, "google.com") == 0) {
				assert_int_equal(v[i].messages, 127);
				assert_int_equal(v[i].dmarc_fail, 7);
				assert_int_equal(v[i].rows, 2);
				assert_string_equal(v[i].policy,
				                    "p=quarantine sp=quarantine adkim=r aspf=r "
				                    "pct=100");
				seen++;
			}
			if (strcmp(v[i].org_name, "Yahoo") == 0) {
				assert_string_equal(v[i].policy,
				                    "p=quarantine adkim=r aspf=r pct=100");
				assert_int_equal(v[i].dmarc_fail, 12);
				seen++;
			}
		}
		assert_int_equal(seen, 2);
	}
	free(v);
}

/* a report whose second row breaks a check is stored not at all (one transaction) */
static void test_store_atomic(void **state)
{
	struct mw_test_store_fx *f = *state;
	struct mw_dmarc_rpt *r = parse_file("google.eml");
	struct mw_dmarc_filter all = {NULL, 0, 0, 0};
	struct mw_dmarc_sum_row *s = NULL;
	size_t n = 0;
	mw_error err = {""};
	r->rows[1].count = -5;
	assert_int_equal(mw_store_dmarc_report_add(f->store, r, NULL, &err), MW_STORE_ERROR);
	assert_non_null(strstr(err.msg, "row 2"));
	r->rows[1].count = 7;
	(void)mw_strlcpy(r->org_name, "bad\001name", sizeof(r->org_name));
	assert_int_equal(mw_store_dmarc_report_add(f->store, r, NULL, &err), MW_STORE_ERROR);
	assert_int_equal(mw_store_dmarc_summary(f->store, &all, &s, &n, &err), MW_STORE_OK);
	assert_int_equal(n, 0);
	free(s);
	mw_dmarc_rpt_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_google_zip),
	    cmocka_unit_test(test_microsoft_gzip),
	    cmocka_unit_test(test_yahoo_gzip_and_body),
	    cmocka_unit_test(test_mailwarden_gzip),
	    cmocka_unit_test(test_forwarded),
	    cmocka_unit_test(test_bad_xml),
	    cmocka_unit_test(test_zip),
	    cmocka_unit_test(test_gzip),
	    cmocka_unit_test(test_messages_refused),
	    cmocka_unit_test(test_ours),
	    MW_TEST_DB_BOTH(test_store_reports, mw_test_store_setup, mw_test_store_teardown),
	    MW_TEST_DB_BOTH(test_store_atomic, mw_test_store_setup, mw_test_store_teardown),
	};
	MW_RUN_TESTS(tests);
}
