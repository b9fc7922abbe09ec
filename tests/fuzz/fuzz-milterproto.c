/*
 * fuzz-milterproto.c - fuzz target for the milter protocol engine (milter/milter-proto.c)
 * (libFuzzer entry point).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * The engine is built into this target (it is included below, so its connection loop can
 * be driven without a listening socket) and serves one connection over a socketpair: a
 * helper thread writes the input as the MTA's byte stream, then half-closes, and reads
 * whatever the engine answers, while this thread runs the engine's own connection code
 * (conn_serve) on the other end, as a pool thread does after accept().
 *   byte 0     how the test filter behaves: bits 0-2 the stage whose callback refuses
 *              (0 none, then connect, helo, mail, rcpt, header, eoh, eom), bit 3 reject
 *              (5xx with a reply text) instead of tempfail, bit 4 negotiate with
 *              SMFIS_ALL_OPTS instead of choosing, bit 5 ask for macro lists, bit 6
 *              make header changes and quarantine at end of message, bit 7 NOREPLY from
 *              the callbacks that may use it
 *   the rest   the MTA's commands (4-byte length, command byte, data), as Postfix sends
 * The filter's callbacks look up macros, set replies and change headers from what the MTA
 * sent (hostile names and values included), as mailwarden-milter's callbacks do.
 * What the engine writes back must be whole frames (length >= 1, within the command limit)
 * with a reply code the protocol knows; a reply-code frame carries a 4xx/5xx text matching
 * its kind and one line; header changes and quarantine come only right before the final
 * reply of an end of message; nothing at all comes back before a negotiation reply.
 * The same target runs under libFuzzer (scripts/fuzz) and over tests/fuzz/corpus-milterproto
 * in make check (replay-main.c).
 *
 * Diagnostics: a broken invariant prints what broke on stderr and aborts.
 */
#include "../../milter/milter-proto.c"

#include <fcntl.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (256 * 1024)

static unsigned fuzz_mode;

/* broken - report a broken invariant and abort */
static void broken(const char *what)
{
	fprintf(stderr, "fuzz-milterproto: invariant broken: %s\n", what);
	abort();
}

/* verdict - the status of the callback for stage STAGE (1..7) */
static sfsistat verdict(SMFICTX *ctx, unsigned stage, bool may_noreply)
{
	const char *v = smfi_getsymval(ctx, "{auth_authen}");
	if ((fuzz_mode & 7u) == stage) {
		if (fuzz_mode & 8u) {
			/* a reply text from what the MTA sent: refused when it is no one line */
			(void)smfi_setreply(ctx, "550", "5.7.1", v != NULL ? (char *)v : "refused");
			return SMFIS_REJECT;
		}
		(void)smfi_setreply(ctx, "451", NULL, "try again");
		return SMFIS_TEMPFAIL;
	}
	if (may_noreply && (fuzz_mode & 128u))
		return SMFIS_NOREPLY;
	return SMFIS_CONTINUE;
}

/* f_negotiate - choose options, ask for macros */
static sfsistat f_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                            unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                            unsigned long *pf2, unsigned long *pf3)
{
	(void)f2;
	(void)f3;
	*pf2 = *pf3 = 0;
	if (fuzz_mode & 32u) {
		(void)smfi_setsymlist(ctx, SMFIM_CONNECT, "j {daemon_name}");
		(void)smfi_setsymlist(ctx, SMFIM_ENVFROM, "{auth_authen} {mail_addr} i");
		(void)smfi_setsymlist(ctx, SMFIM_EOM, "i");
	}
	if (fuzz_mode & 16u)
		return SMFIS_ALL_OPTS;
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE);
	*pf1 =
	    f1 & (SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR |
	          SMFIP_NR_EOH | SMFIP_NR_BODY | SMFIP_NR_DATA | SMFIP_NR_UNKN | SMFIP_NOUNKNOWN);
	return SMFIS_CONTINUE;
}

static sfsistat f_connect(SMFICTX *ctx, char *host, struct sockaddr *sa)
{
	(void)host;
	(void)sa;
	(void)smfi_setpriv(ctx, ctx); /* any non-NULL context: close must run */
	return verdict(ctx, 1, true);
}

static sfsistat f_helo(SMFICTX *ctx, char *name)
{
	(void)name;
	return verdict(ctx, 2, true);
}

static sfsistat f_envfrom(SMFICTX *ctx, char **argv)
{
	for (char **a = argv; *a != NULL; a++)
		(void)strlen(*a);
	return verdict(ctx, 3, true);
}

static sfsistat f_envrcpt(SMFICTX *ctx, char **argv)
{
	for (char **a = argv; *a != NULL; a++)
		(void)strlen(*a);
	return verdict(ctx, 4, true);
}

static sfsistat f_header(SMFICTX *ctx, char *name, char *value)
{
	(void)strlen(name);
	(void)strlen(value);
	return verdict(ctx, 5, true);
}

static sfsistat f_eoh(SMFICTX *ctx)
{
	return verdict(ctx, 6, true);
}

static sfsistat f_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	(void)ctx;
	if (len > 0 && chunk == NULL)
		broken("body chunk without data");
	return SMFIS_CONTINUE;
}

/* f_eom - header changes from the MTA's own macros, then the verdict */
static sfsistat f_eom(SMFICTX *ctx)
{
	if (fuzz_mode & 64u) {
		char *qid = smfi_getsymval(ctx, "i");
		char *who = smfi_getsymval(ctx, "{auth_authen}");
		(void)smfi_addheader(ctx, "X-Fuzz", qid != NULL ? qid : "none");
		(void)smfi_insheader(ctx, 0, "X-Fuzz-Auth", who != NULL ? who : "");
		(void)smfi_chgheader(ctx, "Subject", 1, NULL);
		(void)smfi_quarantine(ctx, qid != NULL && qid[0] != '\0' ? qid : "held");
	}
	return verdict(ctx, 7, false);
}

static sfsistat f_abort(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat f_close(SMFICTX *ctx)
{
	(void)smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

/* the MTA's end: write the input, half-close, read everything back */
struct mta {
	int fd;
	const uint8_t *in;
	size_t in_len;
	unsigned char *out;
	size_t out_len, out_size;
};

/* mta_run - a poll loop writing the input and reading replies until the engine closes */
static void *mta_run(void *arg)
{
	struct mta *m = arg;
	size_t sent = 0;
	bool wr_open = true;
	for (;;) {
		struct pollfd p = {.fd = m->fd, .events = POLLIN | (wr_open ? POLLOUT : 0)};
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			broken("poll failed");
		}
		if (wr_open && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = sent < m->in_len ? send(m->fd, m->in + sent, m->in_len - sent,
			                                    MSG_NOSIGNAL | MSG_DONTWAIT)
			                             : 0;
			if (n > 0)
				sent += (size_t)n;
			if (sent >= m->in_len || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				(void)shutdown(m->fd, SHUT_WR);
				wr_open = false;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n;
			if (m->out_size - m->out_len < 4096) {
				m->out_size = m->out_size * 2 + 4096;
				m->out = mw_realloc(m->out, m->out_size);
			}
			n = recv(m->fd, m->out + m->out_len, m->out_size - m->out_len,
			         MSG_DONTWAIT);
			if (n > 0)
				m->out_len += (size_t)n;
			else if (n == 0 || (errno != EAGAIN && errno != EINTR))
				return NULL; /* the engine closed its end */
		}
	}
}

/* is_final - a reply code that answers a command */
static bool is_final(char c)
{
	return c == SMFIR_CONTINUE || c == SMFIR_ACCEPT || c == SMFIR_REJECT ||
	       c == SMFIR_TEMPFAIL || c == SMFIR_DISCARD || c == SMFIR_SKIP || c == SMFIR_REPLYCODE;
}

/* check_output - the engine's bytes are whole, known frames in a legal order */
static void check_output(const unsigned char *p, size_t len)
{
	size_t off = 0;
	bool negotiated = false, pending_change = false;
	while (off < len) {
		uint32_t flen;
		char code;
		if (len - off < 5)
			broken("a frame cut short");
		memcpy(&flen, p + off, 4);
		flen = ntohl(flen);
		if (flen < 1 || flen > MILTER_PROTO_MAX_CMD || flen > len - off - 4)
			broken("frame length out of range");
		code = (char)p[off + 4];
		if (!negotiated && code != SMFIC_OPTNEG)
			broken("a reply before the negotiation reply");
		if (code == SMFIC_OPTNEG) {
			if (pending_change || flen < 1 + MILTER_OPTLEN)
				broken("negotiation reply malformed or after header changes");
			negotiated = true;
		} else if (code == SMFIR_ADDHEADER || code == SMFIR_INSHEADER ||
		           code == SMFIR_CHGHEADER || code == SMFIR_QUARANTINE) {
			if (p[off + 4 + flen - 1] != '\0')
				broken("a change frame without its terminating NUL");
			pending_change = true;
		} else if (is_final(code)) {
			if (code == SMFIR_REPLYCODE) {
				const char *t = (const char *)p + off + 5;
				size_t tl = flen - 1;
				if (tl < 4 || t[tl - 1] != '\0' ||
				    memchr(t, '\0', tl) != t + tl - 1 ||
				    (t[0] != '4' && t[0] != '5') || strpbrk(t, "\r\n") != NULL)
					broken("reply text not one 4xx/5xx line");
			}
			pending_change = false;
		} else {
			broken("unknown reply code");
		}
		off += 4 + flen;
	}
	if (pending_change)
		broken("header changes without the final reply");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool registered;
	struct mta m = {0};
	SMFICTX *ctx;
	pthread_t t;
	int sv[2];

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	if (!registered) {
		struct smfiDesc d = {
		    .xxfi_name = "fuzz",
		    .xxfi_version = SMFI_VERSION,
		    .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE,
		    .xxfi_connect = f_connect,
		    .xxfi_helo = f_helo,
		    .xxfi_envfrom = f_envfrom,
		    .xxfi_envrcpt = f_envrcpt,
		    .xxfi_header = f_header,
		    .xxfi_eoh = f_eoh,
		    .xxfi_body = f_body,
		    .xxfi_eom = f_eom,
		    .xxfi_abort = f_abort,
		    .xxfi_close = f_close,
		    .xxfi_negotiate = f_negotiate,
		};
		if (smfi_register(d) != MI_SUCCESS)
			broken("register failed");
		registered = true;
	}
	fuzz_mode = data[0];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		broken("socketpair failed");
	m.fd = sv[1];
	m.in = data + 1;
	m.in_len = size - 1;
	if (pthread_create(&t, NULL, mta_run, &m) != 0)
		broken("pthread_create failed");
	ctx = mw_calloc(1, sizeof(*ctx));
	ctx->in_size = MILTER_PROTO_READ;
	ctx->in = mw_malloc(ctx->in_size);
	conn_serve(ctx, sv[0]); /* closes sv[0] */
	(void)pthread_join(t, NULL);
	(void)close(sv[1]);
	check_output(m.out, m.out_len);
	for (int i = 0; i <= SMFIM_LAST; i++)
		if (ctx->macros[i] != NULL)
			broken("macros left after the connection");
	free(ctx->in);
	free(ctx->out);
	free(ctx);
	free(m.out);
	return 0;
}
