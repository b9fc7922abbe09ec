/* mw-forms.h - contact forms: their configuration ([forms] lines), the signed token, field
   checks, the message a submission becomes, and the spool that keeps it until Postfix took it. */
#ifndef MW_FORMS_H
#define MW_FORMS_H

#include "mw-config.h"
#include "mw-secret.h"
#include "mw-util.h"

#define MW_FORMS_MAX         32    /* forms in one configuration */
#define MW_FORM_FIELDS_MAX   32    /* fields of one form */
#define MW_FORM_ORIGINS_MAX  8     /* allowed origins of one form */
#define MW_FORM_NAME_MAX     64    /* a form's or a field's name: [a-z0-9_-] */
#define MW_FORM_ORIGIN_MAX   255   /* http(s)://host[:port] */
#define MW_FORM_SUBJECT_MAX  400   /* a subject template (bytes) */
#define MW_FORM_VALUE_MAX    65536 /* most characters a field may be configured to take */
#define MW_FORM_DEFAULT_MAX  1000  /* characters of a field without max= */
#define MW_FORM_SUBJECT_OUT  200   /* characters of a subject made from the template */
#define MW_FORM_TOKEN_MAX    160   /* bytes of a token */
#define MW_FORM_SPOOL_ID_MAX 64
#define MW_FORM_MESSAGE_MAX  (4 * 1024 * 1024)

struct mw_form_field {
	char name[MW_FORM_NAME_MAX + 1];
	bool required;  /* absent or empty is a 422 */
	bool email;     /* an addr-spec; the first one filled becomes Reply-To */
	bool multiline; /* may hold line breaks (and tabs); other fields one line */
	size_t max;     /* characters (UTF-8 code points) */
};

struct mw_form {
	char name[MW_FORM_NAME_MAX + 1];
	char to[320 + 1]; /* the recipient */
	char origins[MW_FORM_ORIGINS_MAX][MW_FORM_ORIGIN_MAX + 1];
	size_t norigins;
	struct mw_form_field fields[MW_FORM_FIELDS_MAX];
	size_t nfields;
	char subject[MW_FORM_SUBJECT_MAX + 1]; /* template: {field} is the field's value */
	char honeypot[MW_FORM_NAME_MAX + 1];   /* "" = none */
	int64_t ip_count, ip_window;           /* per client address; count 0 = no limit */
	int64_t form_count, form_window;       /* per form */
};

struct mw_forms {
	size_t n;
	struct mw_form forms[MW_FORMS_MAX];
};

/* The forms of [forms] form/field/subject/limit/honeypot lines (see mw-forms.c): 0, or -1
   with "FILE:LINE: what" in error_r. *forms_r is owned by the caller (mw_forms_free). */
int mw_forms_load(const mw_config *cfg, struct mw_forms **forms_r, mw_error *error_r);
void mw_forms_free(struct mw_forms **forms);
const struct mw_form *mw_forms_find(const struct mw_forms *forms, const char *name);
bool mw_form_origin_allowed(const struct mw_form *form, const char *origin);

/* The token key: HMAC-SHA256 keyed with a key derived from the master key (never the master
   key itself, so a token tells nothing about it). */
typedef struct mw_form_key {
	unsigned char bytes[32];
} mw_form_key;
void mw_form_key_derive(const mw_master_key *master, mw_form_key *key_r);
/* A token for FORM valid until now + lifetime: "EXPIRY.NONCE.MAC" (decimal, hex, hex). */
int mw_form_token_make(const mw_form_key *key, const char *form, int64_t now, int64_t lifetime,
                       char out[MW_FORM_TOKEN_MAX + 1], mw_error *error_r);
/* 0 when TOKEN was made by us for FORM and has not expired at NOW (and is not dated further
   than lifetime ahead); -1 with the reason (expired, forged, malformed) in error_r. */
int mw_form_token_check(const mw_form_key *key, const char *form, const char *token, int64_t now,
                        int64_t lifetime, mw_error *error_r);

/* One submitted name/value pair (UTF-8, NUL-terminated). */
struct mw_form_value {
	const char *name;
	const char *value;
};

/* Checks a submission against FORM: every name is a field, the honeypot, or "_token"; every
   required field is there and not blank; values are valid UTF-8 without NUL, not longer than
   the field's max, one line unless multiline, addresses where email. -1 with the offending
   field's name in field_r and the reason in error_r. */
int mw_form_validate(const struct mw_form *form, const struct mw_form_value *v, size_t n,
                     char field_r[MW_FORM_NAME_MAX + 1], mw_error *error_r);
/* The value of NAME in v (NULL when absent). */
const char *mw_form_value_get(const struct mw_form_value *v, size_t n, const char *name);

/* The message (CRLF lines) a validated submission becomes: From sender, To the form's
   recipient, Reply-To the first email field, Subject from the template (line breaks become
   blanks, RFC 2047 when not ASCII), a text/plain and an HTML-escaped text/html part. */
int mw_form_message(const struct mw_form *form, const struct mw_form_value *v, size_t n,
                    const char *sender, const char *client, const char *id, int64_t now,
                    mw_str *out, mw_error *error_r);
/* The subject the template gives (no CR/LF, at most MW_FORM_SUBJECT_OUT characters). */
int mw_form_subject(const struct mw_form *form, const struct mw_form_value *v, size_t n,
                    mw_str *out);

/* The spool: DIR/tmp, DIR/new, DIR/failed. mw_form_spool_init makes them (0700). */
int mw_form_spool_init(const char *dir, mw_error *error_r);
/* A new spool id: "USEC-RANDOMHEX" (sorts by time). */
void mw_form_spool_id(char id[MW_FORM_SPOOL_ID_MAX + 1]);
/* Writes the envelope and message as DIR/new/ID: written to tmp/, fsync'd, renamed, the
   directory fsync'd: once this returns 0 the form survives a crash. */
int mw_form_spool_write(const char *dir, const char *id, const char *sender, const char *rcpt,
                        const char *message, size_t len, mw_error *error_r);
/* Reads DIR/new/ID back: sender, recipient and message (owned by out_msg). */
int mw_form_spool_read(const char *dir, const char *id, char *sender, size_t sender_size,
                       char *rcpt, size_t rcpt_size, mw_str *msg, mw_error *error_r);
/* The ids in DIR/new, oldest first (up to max; *ids_r owned: free each and the array). */
int mw_form_spool_list(const char *dir, char ***ids_r, size_t *n_r, size_t max, mw_error *error_r);
/* Removes DIR/new/ID (delivered) or moves it to DIR/failed (refused for good); the directory
   is fsync'd. */
int mw_form_spool_done(const char *dir, const char *id, bool failed, mw_error *error_r);

#endif
