/* mw-plugin-header.h - a delivered message's header block read from memory the way
   Dovecot 2.3's message header parser reads it (mw-plugin-header.c). */
#ifndef MW_PLUGIN_HEADER_H
#define MW_PLUGIN_HEADER_H

#include <stdbool.h>
#include <stddef.h>

/* One field of a header block: its first line and the continuation lines after it. */
struct mw_hdr_field {
	/* the name as the parser's callers compare it (up to its first NUL); len 0: a line
	   Dovecot returns as no field (no colon, an empty name, a name over 1000 bytes) */
	const unsigned char *name;
	size_t name_len;
	/* from the first line's value (the blanks after the colon skipped as the parser's
	   SKIP_INITIAL_LWSP does) to the end of the last line, without its line end */
	const unsigned char *value;
	size_t value_len;
	bool folded; /* continuation lines follow the first line */
};

/* The length of the header block at the start of data, with the empty line that ends it;
   0 when data does not hold the whole of it. */
size_t mw_hdr_block_end(const unsigned char *data, size_t size);

/* The field at *pos of the block data[0..len) (len as mw_hdr_block_end returns it): 1,
 *field_r and *pos past the field; 0 at the empty line that ends the block. */
int mw_hdr_next(const unsigned char *data, size_t len, size_t *pos, struct mw_hdr_field *field_r);

/* The field's value as Dovecot's mail_get_headers() returns it, NULs aside (the caller
   replaces them as message_header_strdup does): its lines joined with LF (a CR before
   a line end dropped) and the blanks at its start skipped. Writes at most
   field->value_len bytes into out and returns how many. */
size_t mw_hdr_value(const struct mw_hdr_field *field, unsigned char *out);

#endif
