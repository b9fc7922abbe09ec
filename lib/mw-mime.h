/* mw-mime.h - what spam scoring needs from a message, walked with GMime 3.
 *
 * mw_mime_parse turns a raw message in memory into plain data (no GMime types leak out):
 * the top-level header fields (RFC 2047 decoded, unfolded, valid UTF-8), the decoded text
 * of every text/plain and text/html part converted to UTF-8 (HTML crudely turned into
 * text: tags dropped, script/style skipped, entities decoded, hidden-text markers noted),
 * the content type of every leaf part, attachment names and types, and the URLs found in
 * text and in HTML href/src attributes.
 *
 * Limits (struct mw_mime_limits, mw_mime_default_limits):
 *   - input larger than max_input: refused (-1);
 *   - more Content-Type header lines than max_content_types anywhere in the input:
 *     refused (-1) before GMime parses it, which bounds the nesting GMime's recursive
 *     parser can reach;
 *   - parts past max_parts, nesting past max_depth: not walked (MW_MIME_PARTS_LIMIT,
 *     MW_MIME_DEPTH_LIMIT);
 *   - decoded text past max_part_text per part or max_total_text per message, headers
 *     past max_headers, a header value past max_header_value, URLs past max_urls,
 *     attachments past max_attachments: truncated (MW_MIME_TRUNCATED).
 * A message GMime cannot make sense of still yields what it could parse (GMime is lenient
 * by design); a charset iconv does not know is decoded as bytes with invalid UTF-8
 * replaced (MW_MIME_BAD_CHARSET).
 *
 * Threads: mw_mime_parse may run in many threads at once (GMime is initialised once).
 */
#ifndef MW_MIME_H
#define MW_MIME_H

#include "mw-util.h"

struct mw_mime_limits {
	size_t max_input;
	unsigned max_content_types;
	unsigned max_parts;
	unsigned max_depth;
	size_t max_part_text;
	size_t max_total_text;
	unsigned max_headers;
	size_t max_header_value;
	unsigned max_urls;
	size_t max_url_len;
	unsigned max_attachments;
};
extern const struct mw_mime_limits mw_mime_default_limits;

enum mw_mime_flag {
	MW_MIME_TRUNCATED = 1 << 0,
	MW_MIME_PARTS_LIMIT = 1 << 1,
	MW_MIME_DEPTH_LIMIT = 1 << 2,
	MW_MIME_BAD_CHARSET = 1 << 3,
	MW_MIME_HIDDEN_TEXT = 1 << 4, /* HTML with display:none, visibility:hidden, tiny font... */
	MW_MIME_HTML_ONLY = 1 << 5,   /* HTML text and no text/plain */
	MW_MIME_BAD_UTF8 = 1 << 6,    /* decoded text held invalid UTF-8 (replaced) */
	MW_MIME_UNPARSED = 1 << 7,    /* no message structure: the raw bytes as one text */
};

struct mw_mime_header {
	char *name;  /* as written */
	char *value; /* decoded, unfolded, valid UTF-8 */
};
struct mw_mime_text {
	char *text; /* valid UTF-8, NUL-terminated */
	size_t len;
	bool html; /* came from text/html */
};
struct mw_mime_part {
	char *content_type; /* "type/subtype", lower case */
	char *charset;      /* lower case, "" when none */
	char *encoding;     /* content-transfer-encoding, lower case, "" when none */
};
struct mw_mime_attachment {
	char *filename; /* decoded, "" when none */
	char *content_type;
};

struct mw_mime_msg {
	struct mw_mime_header *headers;
	size_t nheaders;
	struct mw_mime_text *texts;
	size_t ntexts;
	struct mw_mime_part *parts;
	size_t nparts;
	struct mw_mime_attachment *attachments;
	size_t nattachments;
	char **urls;
	size_t nurls;
	unsigned flags; /* enum mw_mime_flag */
};

/* For the lib/ modules that walk GMime themselves (mw-dmarc-report.c): GMime's parse of a raw
   message into *message_r (a GMimeMessage to g_object_unref; NULL when GMime finds no
   message), after the check that bounds GMime's recursion: -1 (nothing parsed) when the
   input holds more than max_content_types Content-Type header lines. */
struct _GMimeMessage;
int mw_mime_gmime_parse(const char *raw, size_t len, unsigned max_content_types,
                        struct _GMimeMessage **message_r);

/* 0 with *msg_r (free with mw_mime_free), -1 when refused (error_r says why). limits may be
   NULL for the defaults. */
int mw_mime_parse(const char *raw, size_t len, const struct mw_mime_limits *limits,
                  struct mw_mime_msg **msg_r, mw_error *error_r);
void mw_mime_free(struct mw_mime_msg **msg);
/* The first header field called name (ASCII case-insensitive), or NULL. */
const char *mw_mime_header(const struct mw_mime_msg *msg, const char *name);

/* HTML to text (exposed for tests): appends the text to out (bounded by out->max: the rest
   is dropped and *truncated_r set), URLs of href/src attributes through url_cb; *hidden_r
   set when hidden-text styles occur. */
typedef void mw_mime_url_cb(void *ctx, const char *url, size_t len);
void mw_mime_html_to_text(const char *html, size_t len, mw_str *out, mw_mime_url_cb *url_cb,
                          void *ctx, bool *hidden_r, bool *truncated_r);
/* URLs (http://, https://, www.) in plain text, through cb. */
void mw_mime_text_urls(const char *text, size_t len, mw_mime_url_cb *cb, void *ctx);

#endif
