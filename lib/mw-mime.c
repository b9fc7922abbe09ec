/* mw-mime.c - MIME walking for spam scoring, over GMime 3.
 *
 * Public: mw_mime_parse, mw_mime_free, mw_mime_header, mw_mime_html_to_text,
 * mw_mime_text_urls, mw_mime_default_limits (see mw-mime.h for the limits),
 * mw_mime_gmime_parse (for the lib/ modules that walk GMime themselves).
 *
 * GMime is initialised once per process (pthread_once) and never shut down; each call
 * builds and drops its own GMime objects, so threads share nothing but GMime's own
 * internally locked caches. Everything handed back is plain malloc'd C data.
 *
 * Diagnostics: through error_r: "message too large", "too many Content-Type header lines".
 * Input GMime finds no message in (empty, no header block) is not an error: it comes back
 * as one plain text of the raw bytes, flagged MW_MIME_UNPARSED.
 */
#include "mw-build.h"
#include "mw-mime.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

const struct mw_mime_limits mw_mime_default_limits = {
    .max_input = 64u * 1024 * 1024,
    .max_content_types = 256,
    .max_parts = 100,
    .max_depth = 12,
    .max_part_text = 256 * 1024,
    .max_total_text = 1024 * 1024,
    .max_headers = 200,
    .max_header_value = 2048,
    .max_urls = 200,
    .max_url_len = 1024,
    .max_attachments = 50,
};

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

/* gmime_init_once - GMime's global set-up, done once whatever thread comes first */
static void gmime_init_once(void)
{
	g_mime_init();
}

struct walk {
	const struct mw_mime_limits *lim;
	struct mw_mime_msg *msg;
	size_t total_text;
	unsigned parts_seen;
	size_t cap_texts, cap_parts, cap_atts, cap_urls;
	bool have_plain, have_html;
};

/* grow - the array v with room for one more element (returned, not through a void **:
   that would pun the element pointer types) */
static void *grow(void *v, size_t count, size_t *cap, size_t size)
{
	if (count < *cap)
		return v;
	*cap = *cap == 0 ? 8 : *cap * 2;
	return mw_realloc(v, *cap * size);
}

/* utf8_clean - append s as valid UTF-8 (bad bytes become U+FFFD, controls a space) to
   out, up to room bytes; true when everything fitted */
static bool utf8_clean(mw_str *out, const char *s, size_t len, size_t room, bool *bad_r)
{
	size_t i = 0, start = out->len;
	bool bulk = true;
	while (i < len) {
		uint32_t cp;
		size_t n, plen;
		const char *p;
		if (bulk) {
			/* a run of printable ASCII, tab and newline stays as it is: one append
			   instead of a decode and an append per byte (the text of every scanned
			   message passes here); a run that does not fit whole goes byte by byte
			   as before, so the cut is the same */
			size_t end = i;
			while (end < len &&
			       ((unsigned char)s[end] >= 0x20 ? (unsigned char)s[end] < 0x7f
			                                      : s[end] == '\n' || s[end] == '\t'))
				end++;
			if (end > i) {
				if (out->len - start + (end - i) <= room &&
				    mw_str_append(out, s + i, end - i) == 0) {
					i = end;
					continue;
				}
				bulk = false;
			}
		}
		n = mw_utf8_decode(s + i, len - i, &cp);
		p = s + i;
		plen = n;
		if (n == 0) {
			p = "\xEF\xBF\xBD";
			plen = 3;
			n = 1;
			if (bad_r != NULL)
				*bad_r = true;
		} else if (cp != '\n' && cp != '\t' && mw_unichar_is_control(cp)) {
			p = " ";
			plen = 1;
		}
		if (out->len - start + plen > room)
			return false;
		if (mw_str_append(out, p, plen) < 0)
			return false;
		i += n;
	}
	return true;
}

/* dup_clean - a malloc'd valid-UTF-8 copy of s cut at max bytes (*cut_r set when cut) */
static char *dup_clean(const char *s, size_t max, bool *cut_r)
{
	mw_str out;
	mw_str_init(&out, 0);
	if (s == NULL)
		s = "";
	if (!utf8_clean(&out, s, strlen(s), max, NULL) && cut_r != NULL)
		*cut_r = true;
	if (out.buf == NULL)
		return mw_strdup("");
	return mw_str_steal(&out);
}

/* dup_lower - a malloc'd lower-case copy, cut at 255 bytes */
static char *dup_lower(const char *s)
{
	char *r = dup_clean(s, 255, NULL);
	mw_ascii_lower(r);
	return r;
}

/* add_url - record one URL (trimmed of trailing punctuation), within the limits */
static void add_url(void *ctx, const char *url, size_t len)
{
	struct walk *w = ctx;
	struct mw_mime_msg *m = w->msg;
	bool cut = false;
	char *u;
	size_t i;
	while (len > 0 && strchr(" \t\r\n", url[0]) != NULL) {
		url++;
		len--;
	}
	while (len > 0 && strchr(".,;:!?)]}'\"> \t\r\n", url[len - 1]) != NULL)
		len--;
	if (len == 0)
		return;
	if (m->nurls >= w->lim->max_urls) {
		m->flags |= MW_MIME_TRUNCATED;
		return;
	}
	if (len > w->lim->max_url_len) {
		len = w->lim->max_url_len;
		m->flags |= MW_MIME_TRUNCATED;
	}
	{
		char *tmp = mw_strndup(url, len);
		u = dup_clean(tmp, w->lim->max_url_len, &cut);
		free(tmp);
	}
	for (i = 0; i < m->nurls; i++)
		if (strcmp(m->urls[i], u) == 0) {
			free(u);
			return;
		}
	m->urls = grow(m->urls, m->nurls, &w->cap_urls, sizeof(*m->urls));
	m->urls[m->nurls++] = u;
}

/* ---- HTML to text ---- */

static const struct {
	const char *name;
	uint32_t cp;
} html_entities[] = {
    {"amp", '&'},       {"lt", '<'},       {"gt", '>'},     {"quot", '"'},     {"apos", '\''},
    {"nbsp", 0xA0},     {"copy", 0xA9},    {"reg", 0xAE},   {"euro", 0x20AC},  {"pound", 0xA3},
    {"shy", 0xAD},      {"zwnj", 0x200C},  {"zwj", 0x200D}, {"mdash", 0x2014}, {"ndash", 0x2013},
    {"hellip", 0x2026}, {"trade", 0x2122}, {"laquo", 0xAB}, {"raquo", 0xBB},
};

/* put_cp - append one code point as UTF-8 (bounded); false when out is full */
static bool put_cp(mw_str *out, uint32_t cp)
{
	char b[4];
	size_t n;
	if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
		cp = 0xFFFD;
	if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0xA0)
		cp = ' ';
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xC0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xE0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		b[0] = (char)(0xF0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	if (out->max != 0 && out->len + n > out->max)
		return false;
	return mw_str_append(out, b, n) == 0;
}

/* put_space - one space, never two in a row */
static bool put_space(mw_str *out)
{
	if (out->len == 0 || out->buf[out->len - 1] == ' ')
		return true;
	return put_cp(out, ' ');
}

/* entity - decode the entity at s[0] == '&'; its length, 0 when not one */
static size_t entity(const char *s, size_t len, uint32_t *cp_r)
{
	size_t i = 1, j;
	if (len > 2 && s[1] == '#') {
		uint32_t v = 0;
		bool hex = len > 3 && (s[2] == 'x' || s[2] == 'X');
		i = hex ? 3 : 2;
		for (j = i; j < len && j < i + 8; j++) {
			char c = s[j];
			if (c >= '0' && c <= '9')
				v = v * (hex ? 16 : 10) + (uint32_t)(c - '0');
			else if (hex && ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'))
				v = v * 16 + (uint32_t)((c | 0x20) - 'a' + 10);
			else
				break;
		}
		if (j == i)
			return 0;
		*cp_r = v > 0x10FFFF ? 0xFFFD : v;
		return j < len && s[j] == ';' ? j + 1 : j;
	}
	for (j = 1; j < len && j < 10 && ((s[j] | 0x20) >= 'a' && (s[j] | 0x20) <= 'z'); j++)
		;
	for (i = 0; i < MW_N_ELEMENTS(html_entities); i++) {
		size_t n = strlen(html_entities[i].name);
		if (n == j - 1 && memcmp(s + 1, html_entities[i].name, n) == 0) {
			*cp_r = html_entities[i].cp;
			return j < len && s[j] == ';' ? j + 1 : j;
		}
	}
	return 0;
}

/* ci_find - first case-insensitive occurrence of needle in s[0..len), or NULL */
static const char *ci_find(const char *s, size_t len, const char *needle)
{
	size_t n = strlen(needle), i;
	for (i = 0; i + n <= len; i++)
		if (mw_ascii_strncasecmp(s + i, needle, n) == 0)
			return s + i;
	return NULL;
}

/* tag_hidden - the tag's text (spaces removed) asks for hidden text */
static bool tag_hidden(const char *t, size_t len)
{
	static const char *const marks[] = {"display:none",  "visibility:hidden", "font-size:0",
	                                    "font-size:1px", "font-size:2px",     "opacity:0"};
	char buf[1024];
	size_t i, n = 0;
	for (i = 0; i < len && n < sizeof(buf) - 1; i++)
		if (t[i] != ' ' && t[i] != '\t' && t[i] != '\r' && t[i] != '\n')
			buf[n++] = t[i];
	for (i = 0; i < MW_N_ELEMENTS(marks); i++)
		if (ci_find(buf, n, marks[i]) != NULL)
			return true;
	return false;
}

/* tag_urls - href= and src= attribute values of one tag, to cb (entities in them kept) */
static void tag_urls(const char *t, size_t len, mw_mime_url_cb *cb, void *ctx)
{
	static const char *const attrs[] = {"href", "src", "action"};
	size_t a;
	for (a = 0; a < MW_N_ELEMENTS(attrs); a++) {
		const char *p = t, *end = t + len;
		size_t n = strlen(attrs[a]);
		while ((p = ci_find(p, (size_t)(end - p), attrs[a])) != NULL) {
			const char *q = p + n, *v;
			bool before_ok = p == t || strchr(" \t\r\n\"'/", p[-1]) != NULL;
			p = q;
			while (q < end && (*q == ' ' || *q == '\t'))
				q++;
			if (!before_ok || q >= end || *q != '=')
				continue;
			q++;
			while (q < end && (*q == ' ' || *q == '\t'))
				q++;
			if (q < end && (*q == '"' || *q == '\'')) {
				char quote = *q++;
				v = q;
				while (q < end && *q != quote)
					q++;
			} else {
				v = q;
				while (q < end && strchr(" \t\r\n>", *q) == NULL)
					q++;
			}
			if (q > v && cb != NULL && (size_t)(q - v) >= 4 &&
			    (mw_ascii_strncasecmp(v, "http", 4) == 0 ||
			     mw_ascii_strncasecmp(v, "www.", 4) == 0))
				cb(ctx, v, (size_t)(q - v));
			p = q;
		}
	}
}

/* mw_mime_html_to_text - crude, safe HTML to text (see mw-mime.h) */
void mw_mime_html_to_text(const char *html, size_t len, mw_str *out, mw_mime_url_cb *url_cb,
                          void *ctx, bool *hidden_r, bool *truncated_r)
{
	size_t i = 0;
	bool full = false;
	while (i < len && !full) {
		unsigned char c = (unsigned char)html[i];
		if (c == '<') {
			const char *t = html + i + 1, *end;
			size_t rest = len - i - 1, tl, nl;
			if (rest == 0)
				break; /* a '<' as the last byte: nothing follows */
			if (rest >= 3 && memcmp(t, "!--", 3) == 0) {
				const char *e = ci_find(t + 3, rest - 3, "-->");
				i = e == NULL ? len : (size_t)(e - html) + 3;
				continue;
			}
			end = memchr(t, '>', rest);
			tl = end == NULL ? rest : (size_t)(end - t);
			i += tl + 2;
			for (nl = (t[0] == '/') ? 1 : 0;
			     nl < tl && ((t[nl] | 0x20) >= 'a' && (t[nl] | 0x20) <= 'z'); nl++)
				;
			if (tag_hidden(t, tl) && hidden_r != NULL)
				*hidden_r = true;
			tag_urls(t, tl, url_cb, ctx);
			if (t[0] != '/' &&
			    ((nl == 6 && mw_ascii_strncasecmp(t, "script", 6) == 0) ||
			     (nl == 5 && mw_ascii_strncasecmp(t, "style", 5) == 0))) {
				const char *e =
				    ci_find(html + (i > len ? len : i), i > len ? 0 : len - i,
				            nl == 6 ? "</script" : "</style");
				i = e == NULL ? len : (size_t)(e - html);
				continue;
			}
			full = !put_space(out);
			continue;
		}
		if (c == '&') {
			uint32_t cp;
			size_t n = entity(html + i, len - i, &cp);
			if (n > 0) {
				full = !put_cp(out, cp);
				i += n;
				continue;
			}
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			full = !put_space(out);
			i++;
			continue;
		}
		{
			uint32_t cp;
			size_t n = mw_utf8_decode(html + i, len - i, &cp);
			if (n == 0) {
				cp = 0xFFFD;
				n = 1;
			}
			full = !put_cp(out, cp);
			i += n;
		}
	}
	if (full && truncated_r != NULL)
		*truncated_r = true;
}

/* mw_mime_text_urls - http(s):// and www. URLs in plain text */
void mw_mime_text_urls(const char *text, size_t len, mw_mime_url_cb *cb, void *ctx)
{
	size_t i = 0;
	while (i + 4 <= len) {
		size_t start = i, j;
		bool hit = false;
		if ((text[i] | 0x20) == 'h' && i + 8 <= len &&
		    (mw_ascii_strncasecmp(text + i, "http://", 7) == 0 ||
		     mw_ascii_strncasecmp(text + i, "https://", 8) == 0))
			hit = true;
		else if ((text[i] | 0x20) == 'w' &&
		         mw_ascii_strncasecmp(text + i, "www.", 4) == 0 &&
		         (i == 0 || strchr(" \t\r\n(<\"'", text[i - 1]) != NULL))
			hit = true;
		if (!hit) {
			i++;
			continue;
		}
		for (j = start; j < len && strchr(" \t\r\n<>\"'`{}|\\^", text[j]) == NULL &&
		                (unsigned char)text[j] >= 0x20;
		     j++)
			;
		if (j - start > 7)
			cb(ctx, text + start, j - start);
		i = j;
	}
}

/* ---- walking the parts ---- */

/* part_text - decode one text part (transfer encoding, charset to UTF-8) into the message */
static void part_text(struct walk *w, GMimePart *part, bool html, const char *charset)
{
	struct mw_mime_msg *m = w->msg;
	GMimeDataWrapper *content = g_mime_part_get_content(part);
	GMimeStream *mem, *dst;
	GByteArray *bytes;
	mw_str text;
	size_t room;
	bool bad = false;
	if (content == NULL)
		return;
	if (w->total_text >= w->lim->max_total_text) {
		m->flags |= MW_MIME_TRUNCATED;
		return;
	}
	mem = g_mime_stream_mem_new();
	dst = mem;
	if (charset != NULL && charset[0] != '\0' && mw_ascii_strcasecmp(charset, "utf-8") != 0 &&
	    mw_ascii_strcasecmp(charset, "us-ascii") != 0) {
		GMimeFilter *f = g_mime_filter_charset_new(charset, "UTF-8");
		if (f != NULL) {
			dst = g_mime_stream_filter_new(mem);
			g_mime_stream_filter_add(GMIME_STREAM_FILTER(dst), f);
			g_object_unref(f);
		} else {
			m->flags |= MW_MIME_BAD_CHARSET;
		}
	}
	(void)g_mime_data_wrapper_write_to_stream(content, dst);
	(void)g_mime_stream_flush(dst);
	bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	room = w->lim->max_total_text - w->total_text;
	if (room > w->lim->max_part_text)
		room = w->lim->max_part_text;
	mw_str_init(&text, room);
	if (html) {
		bool hidden = false, cut = false;
		mw_str raw;
		mw_str_init(&raw, 0);
		(void)utf8_clean(&raw, (const char *)bytes->data, bytes->len, bytes->len * 3 + 16,
		                 &bad);
		if (raw.len > 0)
			mw_mime_html_to_text(raw.buf, raw.len, &text, add_url, w, &hidden, &cut);
		if (text.len > 0) /* URLs written as text, not as links */
			mw_mime_text_urls(text.buf, text.len, add_url, w);
		mw_str_free(&raw);
		if (hidden)
			m->flags |= MW_MIME_HIDDEN_TEXT;
		if (cut)
			m->flags |= MW_MIME_TRUNCATED;
	} else {
		if (!utf8_clean(&text, (const char *)bytes->data, bytes->len, room, &bad))
			m->flags |= MW_MIME_TRUNCATED;
		if (text.len > 0)
			mw_mime_text_urls(text.buf, text.len, add_url, w);
	}
	if (bad)
		m->flags |= MW_MIME_BAD_UTF8;
	if (dst != mem)
		g_object_unref(dst);
	g_object_unref(mem);
	w->total_text += text.len;
	m->texts = grow(m->texts, m->ntexts, &w->cap_texts, sizeof(*m->texts));
	m->texts[m->ntexts].len = text.len;
	m->texts[m->ntexts].html = html;
	m->texts[m->ntexts].text = text.buf == NULL ? mw_strdup("") : mw_str_steal(&text);
	m->ntexts++;
	if (html)
		w->have_html = true;
	else
		w->have_plain = true;
}

/* walk_leaf - one non-multipart part: its type, attachment, text */
static void walk_leaf(struct walk *w, GMimePart *part)
{
	struct mw_mime_msg *m = w->msg;
	GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
	const char *type = ct != NULL ? g_mime_content_type_get_media_type(ct) : NULL;
	const char *sub = ct != NULL ? g_mime_content_type_get_media_subtype(ct) : NULL;
	const char *charset = ct != NULL ? g_mime_content_type_get_parameter(ct, "charset") : NULL;
	const char *filename = g_mime_part_get_filename(part);
	GMimeContentEncoding enc = g_mime_part_get_content_encoding(part);
	struct mw_mime_part *p;
	char ctype[256];
	bool text_type;
	if (type == NULL)
		type = "text";
	if (sub == NULL)
		sub = "plain";
	if (snprintf(ctype, sizeof(ctype), "%s/%s", type, sub) >= (int)sizeof(ctype))
		mw_strlcpy(ctype, "application/octet-stream", sizeof(ctype));
	m->parts = grow(m->parts, m->nparts, &w->cap_parts, sizeof(*m->parts));
	p = &m->parts[m->nparts++];
	p->content_type = dup_lower(ctype);
	p->charset = dup_lower(charset);
	p->encoding = dup_lower(
	    enc == GMIME_CONTENT_ENCODING_DEFAULT ? "" : g_mime_content_encoding_to_string(enc));
	text_type =
	    strcmp(p->content_type, "text/plain") == 0 || strcmp(p->content_type, "text/html") == 0;
	if ((filename != NULL && filename[0] != '\0') || g_mime_part_is_attachment(part)) {
		if (m->nattachments < w->lim->max_attachments) {
			struct mw_mime_attachment *a;
			m->attachments = grow(m->attachments, m->nattachments, &w->cap_atts,
			                      sizeof(*m->attachments));
			a = &m->attachments[m->nattachments++];
			a->filename = dup_clean(filename, 255, NULL);
			a->content_type = mw_strdup(p->content_type);
		} else {
			m->flags |= MW_MIME_TRUNCATED;
		}
		if (filename != NULL && filename[0] != '\0')
			text_type = false; /* a text file attached is not the message's text */
	}
	if (text_type)
		part_text(w, part, strcmp(p->content_type, "text/html") == 0, charset);
}

/* walk - depth-first over the MIME tree, within the part and depth limits */
static void walk(struct walk *w, GMimeObject *obj, unsigned depth)
{
	if (obj == NULL)
		return;
	if (depth > w->lim->max_depth) {
		w->msg->flags |= MW_MIME_DEPTH_LIMIT;
		return;
	}
	if (w->parts_seen >= w->lim->max_parts) {
		w->msg->flags |= MW_MIME_PARTS_LIMIT;
		return;
	}
	w->parts_seen++;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int i, n = g_mime_multipart_get_count(mp);
		for (i = 0; i < n; i++)
			walk(w, g_mime_multipart_get_part(mp, i), depth + 1);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (inner != NULL)
			walk(w, g_mime_message_get_mime_part(inner), depth + 1);
	} else if (GMIME_IS_PART(obj)) {
		walk_leaf(w, GMIME_PART(obj));
	}
}

/* count_content_types - Content-Type header lines anywhere in raw (case-insensitive) */
static unsigned count_content_types(const char *raw, size_t len, unsigned stop)
{
	unsigned n = 0;
	size_t i = 0;
	while (i < len) {
		if (len - i >= 12 && (raw[i] | 0x20) == 'c' &&
		    mw_ascii_strncasecmp(raw + i, "content-type", 12) == 0) {
			size_t j = i + 12;
			while (j < len && (raw[j] == ' ' || raw[j] == '\t'))
				j++;
			if (j < len && raw[j] == ':' && ++n > stop)
				return n;
		}
		{
			const char *nl = memchr(raw + i, '\n', len - i);
			if (nl == NULL)
				break;
			i = (size_t)(nl - raw) + 1;
		}
	}
	return n;
}

/* mw_mime_gmime_parse - GMime's parse of a message of bounded nesting */
int mw_mime_gmime_parse(const char *raw, size_t len, unsigned max_content_types,
                        GMimeMessage **message_r)
{
	GMimeStream *stream;
	GMimeParser *parser;
	*message_r = NULL;
	if (count_content_types(raw, len, max_content_types) > max_content_types)
		return -1;
	pthread_once(&gmime_once, gmime_init_once);
	stream = g_mime_stream_mem_new_with_buffer(raw, len);
	parser = g_mime_parser_new_with_stream(stream);
	g_object_unref(stream);
	*message_r = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	return 0;
}

/* mw_mime_parse - a raw message into headers, texts, parts, attachments and URLs */
int mw_mime_parse(const char *raw, size_t len, const struct mw_mime_limits *limits,
                  struct mw_mime_msg **msg_r, mw_error *error_r)
{
	struct walk w;
	struct mw_mime_msg *m;
	GMimeMessage *message;
	GMimeHeaderList *hl;
	size_t cap_headers = 0;
	int i, n;
	*msg_r = NULL;
	if (limits == NULL)
		limits = &mw_mime_default_limits;
	if (len > limits->max_input) {
		mw_error_set(error_r, "message too large (%zu bytes, limit %zu)", len,
		             limits->max_input);
		return -1;
	}
	if (mw_mime_gmime_parse(raw, len, limits->max_content_types, &message) < 0) {
		mw_error_set(error_r, "too many Content-Type header lines (limit %u)",
		             limits->max_content_types);
		return -1;
	}
	m = mw_calloc(1, sizeof(*m));
	memset(&w, 0, sizeof(w));
	w.lim = limits;
	w.msg = m;
	if (message == NULL) {
		/* no header block GMime accepts (empty input, garbage): the bytes as plain text */
		mw_str text;
		size_t room = limits->max_part_text < limits->max_total_text
		                  ? limits->max_part_text
		                  : limits->max_total_text;
		bool bad = false;
		m->flags |= MW_MIME_UNPARSED;
		mw_str_init(&text, room);
		if (!utf8_clean(&text, raw, len, room, &bad))
			m->flags |= MW_MIME_TRUNCATED;
		if (bad)
			m->flags |= MW_MIME_BAD_UTF8;
		if (text.len > 0)
			mw_mime_text_urls(text.buf, text.len, add_url, &w);
		m->texts = grow(m->texts, m->ntexts, &w.cap_texts, sizeof(*m->texts));
		m->texts[0].len = text.len;
		m->texts[0].html = false;
		m->texts[0].text = text.buf == NULL ? mw_strdup("") : mw_str_steal(&text);
		m->ntexts = 1;
		*msg_r = m;
		return 0;
	}
	hl = g_mime_object_get_header_list(GMIME_OBJECT(message));
	n = hl != NULL ? g_mime_header_list_get_count(hl) : 0;
	for (i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		bool cut = false;
		if (m->nheaders >= limits->max_headers) {
			m->flags |= MW_MIME_TRUNCATED;
			break;
		}
		m->headers = grow(m->headers, m->nheaders, &cap_headers, sizeof(*m->headers));
		m->headers[m->nheaders].name = dup_clean(g_mime_header_get_name(h), 255, NULL);
		m->headers[m->nheaders].value =
		    dup_clean(g_mime_header_get_value(h), limits->max_header_value, &cut);
		if (cut)
			m->flags |= MW_MIME_TRUNCATED;
		m->nheaders++;
	}
	walk(&w, g_mime_message_get_mime_part(message), 0);
	if (w.have_html && !w.have_plain)
		m->flags |= MW_MIME_HTML_ONLY;
	g_object_unref(message);
	*msg_r = m;
	return 0;
}

/* mw_mime_header - the first header field of that name */
const char *mw_mime_header(const struct mw_mime_msg *msg, const char *name)
{
	size_t i;
	for (i = 0; i < msg->nheaders; i++)
		if (mw_ascii_strcasecmp(msg->headers[i].name, name) == 0)
			return msg->headers[i].value;
	return NULL;
}

/* mw_mime_free - free a parsed message and clear the pointer */
void mw_mime_free(struct mw_mime_msg **msg)
{
	struct mw_mime_msg *m = *msg;
	size_t i;
	if (m == NULL)
		return;
	for (i = 0; i < m->nheaders; i++) {
		free(m->headers[i].name);
		free(m->headers[i].value);
	}
	for (i = 0; i < m->ntexts; i++)
		free(m->texts[i].text);
	for (i = 0; i < m->nparts; i++) {
		free(m->parts[i].content_type);
		free(m->parts[i].charset);
		free(m->parts[i].encoding);
	}
	for (i = 0; i < m->nattachments; i++) {
		free(m->attachments[i].filename);
		free(m->attachments[i].content_type);
	}
	for (i = 0; i < m->nurls; i++)
		free(m->urls[i]);
	free(m->headers);
	free(m->texts);
	free(m->parts);
	free(m->attachments);
	free(m->urls);
	free(m);
	*msg = NULL;
}
