/* mw-rfc2047.h - RFC 2047 encoded-words decoded to UTF-8, as a mail reader shows them. */
#ifndef MW_RFC2047_H
#define MW_RFC2047_H

#include "mw-util.h"

#define MW_RFC2047_CHARSET_MAX 64 /* a longer charset name is refused */

/* Appends S[0..len) to OUT with every encoded-word "=?charset[*lang]?B|Q?text?=" decoded
   and converted to UTF-8 (glibc iconv, any charset it knows); white space between two
   encoded-words is dropped (RFC 2047 6.2). Readers decode encoded-words wherever they find
   them, so this does too: inside words and quoted strings, not only where RFC 2047 allows
   them. Text outside encoded-words is copied unchanged. Returns -1 with error_r (naming
   the problem and the byte offset, never the input) when "=?" starts something that is
   not a decodable encoded-word: malformed, an unknown charset, bad base64 or hex, bytes
   invalid in the charset, a result that is not valid UTF-8, or OUT's bound reached. On
   failure OUT holds a partial result. */
int mw_rfc2047_decode(const char *s, size_t len, mw_str *out, mw_error *error_r);

#endif
