/* mw-plugin-header.c - the fields of a delivered message's header block, read from memory
 * as Dovecot 2.3's message header parser (lib-mail/message-header-parser.c, with the
 * SKIP_INITIAL_LWSP flag Dovecot's mail parsing uses) and mail_get_headers() return them.
 *
 * Why not Dovecot's parser itself: the plugin's decision reads a handful of fields of every
 * delivered message; the parser allocates and clears a 4 kB value buffer per message and
 * copies every line of the header, which cost more than the rest of the decision's header
 * work together (bench/README.md, "Dovecot plugin"). Here a line is one memchr for its line
 * end and one for its colon, and only the fields asked for are copied (by the caller).
 * The plugin keeps Dovecot's parser for a header block it cannot hold in memory.
 *
 * What the parser does with a complete block, and so what this does: each line ends at LF
 * (a CR before it is not part of the line); a line starting with a blank (space or tab)
 * continues the line before it; the first empty line ends the header. A field's name is
 * the first line up to its first colon, blanks before the colon cut off; a line without a
 * colon, or whose name is over 1000 bytes, is no field (its name is empty). Callers
 * compare names as C strings, so a name ends at its first NUL. The value starts after the
 * colon with every blank skipped, or one blank skipped when the value is only blanks.
 * mail_get_headers() then joins a field's lines with LF and skips the blanks at the start
 * of the whole value. tests/unit/test-plugin-header.c checks all this against Dovecot's
 * own parser on hand-written and random header blocks.
 *
 * Public: mw_hdr_block_end, mw_hdr_next, mw_hdr_value (mw-plugin-header.h).
 * Diagnostics: none (pure functions over memory).
 */
#include "mw-plugin-header.h"

#include <string.h>

#define HDR_NAME_MAX 1000 /* Dovecot's MESSAGE_HEADER_NAME_MAX_LEN */

#define IS_BLANK(c) ((c) == ' ' || (c) == '\t')

/* mw_hdr_block_end - the header block's length with its empty line, 0 when not all here */
size_t mw_hdr_block_end(const unsigned char *data, size_t size)
{
	const unsigned char *p = data, *end = data + size, *nl;
	if (size > 0 && data[0] == '\n')
		return 1;
	if (size > 1 && data[0] == '\r' && data[1] == '\n')
		return 2;
	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (nl + 1 < end && nl[1] == '\n')
			return (size_t)(nl + 2 - data);
		if (nl + 2 < end && nl[1] == '\r' && nl[2] == '\n')
			return (size_t)(nl + 3 - data);
		p = nl + 1;
	}
	return 0;
}

/* line_content - the length of the line at p without its line end (LF, or CR LF); *next_r
   the start of the next line. The block ends with an LF, so there is one. */
static size_t line_content(const unsigned char *p, const unsigned char *end,
                           const unsigned char **next_r)
{
	const unsigned char *lf = memchr(p, '\n', (size_t)(end - p));
	size_t n;
	if (lf == NULL) { /* not a block as mw_hdr_block_end returns it: the rest */
		*next_r = end;
		return (size_t)(end - p);
	}
	n = (size_t)(lf - p);
	*next_r = lf + 1;
	return n > 0 && p[n - 1] == '\r' ? n - 1 : n;
}

/* mw_hdr_next - the field at *pos and its continuation lines */
int mw_hdr_next(const unsigned char *data, size_t len, size_t *pos, struct mw_hdr_field *field_r)
{
	const unsigned char *line = data + *pos, *end = data + len, *next, *colon, *last;
	size_t size, v, name_end;

	if (*pos >= len)
		return 0;
	size = line_content(line, end, &next);
	if (size == 0)
		return 0; /* the empty line: the end of the header */
	memset(field_r, 0, sizeof(*field_r));
	colon = memchr(line, ':', size);
	if (colon == NULL) {
		field_r->value = line;
		v = 0;
	} else {
		/* every blank after the colon skipped, or one when the value is only blanks */
		v = (size_t)(colon - line) + 1;
		while (v < size && IS_BLANK(line[v]))
			v++;
		if (v == size && size > (size_t)(colon - line) + 1)
			v = (size_t)(colon - line) + 2;
		name_end = (size_t)(colon - line);
		while (name_end > 0 && IS_BLANK(line[name_end - 1]))
			name_end--;
		if (name_end <= HDR_NAME_MAX) {
			const unsigned char *nul = memchr(line, '\0', name_end);
			field_r->name = line;
			field_r->name_len = nul != NULL ? (size_t)(nul - line) : name_end;
		}
	}
	field_r->value = line + v;
	last = line + size;
	/* continuation lines: each starts with a blank (and so is never the empty line) */
	while (next < end && IS_BLANK(*next)) {
		const unsigned char *start = next;
		size = line_content(start, end, &next);
		last = start + size;
		field_r->folded = true;
	}
	field_r->value_len = (size_t)(last - field_r->value);
	*pos = (size_t)(next - data);
	return 1;
}

/* mw_hdr_value - the value as mail_get_headers() returns it (NULs aside) */
size_t mw_hdr_value(const struct mw_hdr_field *field, unsigned char *out)
{
	const unsigned char *p = field->value, *end = p + field->value_len, *lf;
	size_t n = 0, seg;

	while (p < end && IS_BLANK(*p))
		p++;
	if (!field->folded) {
		memcpy(out, p, (size_t)(end - p));
		return (size_t)(end - p);
	}
	/* inner line ends: LF, or CR LF whose CR the parser leaves out of the line */
	while ((lf = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		seg = (size_t)(lf - p);
		if (seg > 0 && p[seg - 1] == '\r')
			seg--;
		memcpy(out + n, p, seg);
		n += seg;
		out[n++] = '\n';
		p = lf + 1;
	}
	memcpy(out + n, p, (size_t)(end - p));
	return n + (size_t)(end - p);
}
