/*
 * milter-proto.c - the milter protocol (version 6, as Postfix and Sendmail speak it) in
 * place of libmilter: the part of libmilter's documented interface (smfi_*, declared in
 * <libmilter/mfapi.h>) that mailwarden-milter uses, so the callbacks stay written against
 * that interface.
 *
 * Public (libmilter's names and prototypes): smfi_register, smfi_setconn, smfi_opensocket,
 * smfi_main, smfi_stop, smfi_getpriv, smfi_setpriv, smfi_getsymval, smfi_setsymlist,
 * smfi_setreply, smfi_addheader, smfi_insheader, smfi_chgheader, smfi_quarantine.
 *
 * Why: Debian's libmilter runs its worker pool: a session waits in a controller thread's
 * poll set, each burst of commands wakes the controller, which signals a worker thread,
 * which reads the commands and hands the session back through a pipe. Three or four thread
 * switches per burst, about seven bursts per message: most of the milter's CPU per message
 * (bench/README.md). Here a connection is served from accept() to close by one thread,
 * which blocks in read() on its socket, takes every command that arrived with one read, and
 * answers with one write (the header changes made at end of message and the final reply
 * together). Idle threads wait in accept() themselves and are kept for the next
 * connection (at most POOL_MAX_IDLE of them), so there is no hand-off between threads and
 * no thread made per connection.
 *
 * Limits: a command is at most MILTER_PROTO_MAX_CMD bytes (Postfix sends body chunks of at
 * most 65535 bytes; over the limit the connection is closed, never truncated); commands
 * out of order (anything before the negotiation, message commands before connect, content
 * before MAIL) close the connection: the MTA then applies its milter_default_action. A
 * connection that sends nothing for MILTER_PROTO_TIMEOUT seconds is closed (libmilter's
 * default timeout). Header changes and quarantine are taken only during end of message and
 * only when the MTA granted that action, as libmilter does. After smfi_stop no callback
 * runs any more (the daemon is tearing its state down): a command on a connection still
 * open closes it, and the MTA applies its default action.
 *
 * Diagnostics: smfi_* return MI_FAILURE on misuse; protocol errors are logged through
 * mw_log (event=milter_protocol) and end that connection only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include "mw-build.h"
#include "milter.h"
#include "mw-daemon.h"
#include "mw-log.h"
#include "mw-net.h"

#include <libmilter/mfapi.h>
#include <libmilter/mfdef.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MILTER_PROTO_MAX_CMD (256 * 1024) /* one command's length field, at most */
#define MILTER_PROTO_READ    (68 * 1024)  /* what one read() asks for */
#define MILTER_PROTO_TIMEOUT 7210         /* seconds without a command: libmilter's default */
#define MILTER_PROTO_NMACRO  (SMFIM_LAST + 1)
#define MILTER_PROTO_SYMLIST 512 /* one stage's macro list asked for at negotiation */

/* where a connection is: what the next command may be */
enum proto_state { ST_NEW, ST_NEGOTIATED, ST_CONNECTED, ST_MAIL };

/* One MTA connection (libmilter's SMFICTX). */
struct smfi_str {
	int fd;
	enum proto_state state;
	void *priv;
	unsigned long mta_actions, mta_proto; /* what the MTA offered */
	unsigned long actions, proto;         /* what was agreed */
	bool in_eom;                          /* header changes are allowed */
	bool renegotiating;                   /* QUIT_NC: macro lists were sent already */
	/* macros per stage (SMFIM_*): the raw name\0value\0... data of the last 'D' command */
	char *macros[MILTER_PROTO_NMACRO];
	size_t macros_len[MILTER_PROTO_NMACRO];
	char symlist[MILTER_PROTO_NMACRO][MILTER_PROTO_SYMLIST];
	char reply[MILTER_REPLY_MAX + 32]; /* smfi_setreply's text for this command */
	/* input: read() fills in[in_start..in_end) */
	unsigned char *in;
	size_t in_size, in_start, in_end;
	/* output: changes and replies, written at the next reply */
	unsigned char *out;
	size_t out_len, out_size;
};

static struct smfiDesc proto_desc;
static char proto_spec[512];
static int listen_fd = -1;
static volatile int proto_stop;

/* smfi_register - remember the filter's callbacks */
int smfi_register(struct smfiDesc desc)
{
	if (desc.xxfi_name == NULL)
		return MI_FAILURE;
	proto_desc = desc;
	return MI_SUCCESS;
}

/* smfi_setconn - remember the socket spec: unix:/path, local:/path, inet:PORT@ADDR,
   inet6:PORT@ADDR */
int smfi_setconn(char *spec)
{
	if (spec == NULL || mw_strlcpy(proto_spec, spec, sizeof(proto_spec)) < 0)
		return MI_FAILURE;
	return MI_SUCCESS;
}

/* smfi_opensocket - bind and listen on the spec of smfi_setconn; RMSOCKET: remove a unix
   socket left from an earlier run first (the caller has checked its directory) */
int smfi_opensocket(bool rmsocket)
{
	const char *path = mw_daemon_unix_path(proto_spec);
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	if (path != NULL) {
		struct sockaddr_un *su = (struct sockaddr_un *)&ss;
		struct stat st;
		memset(&ss, 0, sizeof(ss));
		su->sun_family = AF_UNIX;
		if (mw_strlcpy(su->sun_path, path, sizeof(su->sun_path)) < 0)
			return MI_FAILURE;
		len = (socklen_t)sizeof(*su);
		if (rmsocket && lstat(path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode) || unlink(path) < 0)
				return MI_FAILURE;
		}
	} else if (strncmp(proto_spec, "inet:", 5) == 0) {
		if (mw_sockaddr_port_at(proto_spec + 5, false, &ss, &len) < 0)
			return MI_FAILURE;
	} else if (strncmp(proto_spec, "inet6:", 6) == 0) {
		if (mw_sockaddr_port_at(proto_spec + 6, true, &ss, &len) < 0)
			return MI_FAILURE;
	} else {
		return MI_FAILURE;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return MI_FAILURE;
	if (path == NULL)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, SOMAXCONN) < 0) {
		(void)close(fd);
		return MI_FAILURE;
	}
	listen_fd = fd;
	return MI_SUCCESS;
}

/* smfi_getpriv - the filter's connection context */
void *smfi_getpriv(SMFICTX *ctx)
{
	return ctx != NULL ? ctx->priv : NULL;
}

/* smfi_setpriv - set the filter's connection context */
int smfi_setpriv(SMFICTX *ctx, void *priv)
{
	if (ctx == NULL)
		return MI_FAILURE;
	ctx->priv = priv;
	return MI_SUCCESS;
}

/* same_macro - NAME asked for equals macro NAME2 sent, "{x}" and "x" being the same */
static bool same_macro(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la >= 2 && a[0] == '{' && a[la - 1] == '}') {
		a++;
		la -= 2;
	}
	if (lb >= 2 && b[0] == '{' && b[lb - 1] == '}') {
		b++;
		lb -= 2;
	}
	return la == lb && memcmp(a, b, la) == 0;
}

/* smfi_getsymval - a macro's value, from the latest stage that sent it, or NULL */
char *smfi_getsymval(SMFICTX *ctx, char *name)
{
	static const int order[] = {SMFIM_EOM,     SMFIM_EOH,  SMFIM_DATA,   SMFIM_ENVRCPT,
	                            SMFIM_ENVFROM, SMFIM_HELO, SMFIM_CONNECT};
	if (ctx == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		char *p = ctx->macros[order[i]], *end;
		if (p == NULL)
			continue; /* (no arithmetic on NULL, even of zero: undefined) */
		end = p + ctx->macros_len[order[i]];
		/* name\0value\0 pairs, checked complete when they arrived */
		while (p < end) {
			char *value = p + strlen(p) + 1;
			if (same_macro(name, p))
				return value;
			p = value + strlen(value) + 1;
		}
	}
	return NULL;
}

/* smfi_setsymlist - the macros wanted at stage WHERE (only while negotiating) */
int smfi_setsymlist(SMFICTX *ctx, int where, char *macros)
{
	if (ctx != NULL && ctx->renegotiating)
		return MI_SUCCESS; /* the lists of the first negotiation stay */
	if (ctx == NULL || macros == NULL || where < 0 || where > SMFIM_LAST ||
	    ctx->state != ST_NEW || ctx->symlist[where][0] != '\0' || macros[0] == '\0' ||
	    mw_strlcpy(ctx->symlist[where], macros, sizeof(ctx->symlist[where])) < 0)
		return MI_FAILURE;
	return MI_SUCCESS;
}

/* valid_reply_text - no CR, LF or NUL-less surprises: one line of printable text */
static bool valid_reply_text(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '\r' || *s == '\n')
			return false;
	return true;
}

/* smfi_setreply - the SMTP reply for a REJECT or TEMPFAIL of this command */
int smfi_setreply(SMFICTX *ctx, char *rcode, char *xcode, char *message)
{
	char dflt[6];
	int n;
	if (ctx == NULL || rcode == NULL || strlen(rcode) != 3 ||
	    (rcode[0] != '4' && rcode[0] != '5') || rcode[1] < '0' || rcode[1] > '9' ||
	    rcode[2] < '0' || rcode[2] > '9')
		return MI_FAILURE;
	if (xcode == NULL || xcode[0] == '\0') {
		(void)mw_strlcpy(dflt, rcode[0] == '4' ? "4.0.0" : "5.0.0", sizeof(dflt));
		xcode = dflt;
	}
	if (xcode[0] != rcode[0] || !valid_reply_text(xcode) ||
	    (message != NULL && !valid_reply_text(message)))
		return MI_FAILURE;
	n = snprintf(ctx->reply, sizeof(ctx->reply), "%s %s %s", rcode, xcode,
	             message != NULL ? message : "");
	if (n < 0 || (size_t)n >= sizeof(ctx->reply)) {
		ctx->reply[0] = '\0';
		return MI_FAILURE;
	}
	return MI_SUCCESS;
}

/* out_reserve - room for N more bytes of output */
static void out_reserve(SMFICTX *ctx, size_t n)
{
	if (ctx->out_len + n <= ctx->out_size)
		return;
	while (ctx->out_len + n > ctx->out_size)
		ctx->out_size = ctx->out_size == 0 ? 4096 : ctx->out_size * 2;
	ctx->out = mw_realloc(ctx->out, ctx->out_size);
}

/* out_cmd - queue one reply or action: length, CODE, an optional 32-bit NUM, then the
   strings A and B (each with its NUL) when given */
static void out_cmd(SMFICTX *ctx, char code, const uint32_t *num, const char *a, const char *b)
{
	size_t la = a != NULL ? strlen(a) + 1 : 0, lb = b != NULL ? strlen(b) + 1 : 0;
	size_t body = 1 + (num != NULL ? 4 : 0) + la + lb;
	uint32_t len = htonl((uint32_t)body);
	out_reserve(ctx, 4 + body);
	memcpy(ctx->out + ctx->out_len, &len, 4);
	ctx->out[ctx->out_len + 4] = (unsigned char)code;
	ctx->out_len += 5;
	if (num != NULL) {
		uint32_t v = htonl(*num);
		memcpy(ctx->out + ctx->out_len, &v, 4);
		ctx->out_len += 4;
	}
	if (la > 0)
		memcpy(ctx->out + ctx->out_len, a, la);
	ctx->out_len += la;
	if (lb > 0)
		memcpy(ctx->out + ctx->out_len, b, lb);
	ctx->out_len += lb;
}

/* header_args_ok - a header change the protocol can carry */
static bool header_args_ok(SMFICTX *ctx, unsigned long action, const char *name)
{
	return ctx != NULL && ctx->in_eom && (ctx->actions & action) != 0 && name != NULL &&
	       name[0] != '\0';
}

/* smfi_addheader - append a header field (end of message only) */
int smfi_addheader(SMFICTX *ctx, char *name, char *value)
{
	if (!header_args_ok(ctx, SMFIF_ADDHDRS, name) || value == NULL)
		return MI_FAILURE;
	out_cmd(ctx, SMFIR_ADDHEADER, NULL, name, value);
	return MI_SUCCESS;
}

/* smfi_insheader - insert a header field at position IDX (end of message only) */
int smfi_insheader(SMFICTX *ctx, int idx, char *name, char *value)
{
	uint32_t n = idx < 0 ? 0 : (uint32_t)idx;
	if (!header_args_ok(ctx, SMFIF_ADDHDRS, name) || value == NULL)
		return MI_FAILURE;
	out_cmd(ctx, SMFIR_INSHEADER, &n, name, value);
	return MI_SUCCESS;
}

/* smfi_chgheader - change (or with VALUE NULL delete) the IDX-th field NAME */
int smfi_chgheader(SMFICTX *ctx, char *name, int idx, char *value)
{
	uint32_t n = idx < 0 ? 0 : (uint32_t)idx;
	if (!header_args_ok(ctx, SMFIF_CHGHDRS, name))
		return MI_FAILURE;
	out_cmd(ctx, SMFIR_CHGHEADER, &n, name, value != NULL ? value : "");
	return MI_SUCCESS;
}

/* smfi_quarantine - hold the message with REASON (end of message only) */
int smfi_quarantine(SMFICTX *ctx, char *reason)
{
	if (ctx == NULL || !ctx->in_eom || (ctx->actions & SMFIF_QUARANTINE) == 0 ||
	    reason == NULL || reason[0] == '\0')
		return MI_FAILURE;
	out_cmd(ctx, SMFIR_QUARANTINE, NULL, reason, NULL);
	return MI_SUCCESS;
}

/* flush - write everything queued; -1 when the MTA is gone */
static int flush(SMFICTX *ctx)
{
	size_t done = 0;
	while (done < ctx->out_len) {
		ssize_t n = send(ctx->fd, ctx->out + done, ctx->out_len - done, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	ctx->out_len = 0;
	return 0;
}

/* reply_status - queue the reply for a callback's STATUS and write it */
static int reply_status(SMFICTX *ctx, sfsistat status)
{
	char code;
	switch (status) {
	case SMFIS_NOREPLY:
	case SMFIS_CONTINUE:
		code = SMFIR_CONTINUE;
		break;
	case SMFIS_REJECT:
		code = SMFIR_REJECT;
		break;
	case SMFIS_TEMPFAIL:
		code = SMFIR_TEMPFAIL;
		break;
	case SMFIS_ACCEPT:
		code = SMFIR_ACCEPT;
		break;
	case SMFIS_DISCARD:
		code = SMFIR_DISCARD;
		break;
	case SMFIS_SKIP:
		code = SMFIR_SKIP;
		break;
	default:
		code = SMFIR_TEMPFAIL;
		break;
	}
	/* a reply text is used only with the kind of status it matches */
	if ((code == SMFIR_REJECT && ctx->reply[0] == '5') ||
	    (code == SMFIR_TEMPFAIL && ctx->reply[0] == '4'))
		out_cmd(ctx, SMFIR_REPLYCODE, NULL, ctx->reply, NULL);
	else
		out_cmd(ctx, code, NULL, NULL, NULL);
	return flush(ctx);
}

/* answer - the reply to a command, unless the MTA was told none comes (NR_FLAG): then a
   plain continue is not sent, but a refusal still is (never dropped) */
static int answer(SMFICTX *ctx, sfsistat status, unsigned long nr_flag)
{
	int ret = 0;
	if (status == SMFIS_NOREPLY && (nr_flag == 0 || (ctx->proto & nr_flag) == 0))
		status = SMFIS_CONTINUE; /* the MTA waits for an answer */
	if (status != SMFIS_NOREPLY &&
	    !(status == SMFIS_CONTINUE && nr_flag != 0 && (ctx->proto & nr_flag) != 0))
		ret = reply_status(ctx, status);
	ctx->reply[0] = '\0';
	return ret;
}

/* clear_macros - forget the macros of stage FROM and every later one (SMFIM_* numbers
   follow the session up to DATA; EOM and EOH come after all of them), as libmilter does
   when a command of an earlier stage arrives */
static void clear_macros(SMFICTX *ctx, int from)
{
	for (int i = from; i <= SMFIM_LAST; i++) {
		free(ctx->macros[i]);
		ctx->macros[i] = NULL;
		ctx->macros_len[i] = 0;
	}
}

/* stage_of - the SMFIM_* stage macros for command CMD belong to, or -1 */
static int stage_of(char cmd)
{
	switch (cmd) {
	case SMFIC_CONNECT:
		return SMFIM_CONNECT;
	case SMFIC_HELO:
		return SMFIM_HELO;
	case SMFIC_MAIL:
		return SMFIM_ENVFROM;
	case SMFIC_RCPT:
		return SMFIM_ENVRCPT;
	case SMFIC_DATA:
		return SMFIM_DATA;
	case SMFIC_BODYEOB:
		return SMFIM_EOM;
	case SMFIC_EOH:
		return SMFIM_EOH;
	default:
		return -1;
	}
}

/* strings_ok - DATA[0..LEN) is a sequence of exactly NEED NUL-terminated strings (NEED 0:
   any number, at least one) */
static bool strings_ok(const char *data, size_t len, size_t need)
{
	size_t n = 0;
	if (len == 0 || data[len - 1] != '\0')
		return false;
	for (size_t i = 0; i < len; i++)
		if (data[i] == '\0')
			n++;
	return need == 0 || n == need;
}

/* proto_error - log a protocol error; the caller closes the connection */
static int proto_error(const char *what, char cmd)
{
	mw_warn("event=milter_protocol error=\"%s\" command=0x%02x", what, (unsigned char)cmd);
	return -1;
}

/* do_negotiate - SMFIC_OPTNEG: the filter chooses, the reply carries the macro lists */
static int do_negotiate(SMFICTX *ctx, const char *data, size_t len)
{
	uint32_t v[3];
	unsigned long pf0 = 0, pf1 = 0, pf2 = 0, pf3 = 0;
	sfsistat r = SMFIS_ALL_OPTS;
	uint32_t ver, act, prot;

	if (ctx->state != ST_NEW || len < MILTER_OPTLEN)
		return proto_error("bad negotiation", SMFIC_OPTNEG);
	memcpy(v, data, sizeof(v));
	ver = ntohl(v[0]);
	ctx->mta_actions = ntohl(v[1]);
	ctx->mta_proto = ntohl(v[2]);
	if (ver < 2)
		return proto_error("MTA protocol version too old", SMFIC_OPTNEG);
	if (proto_desc.xxfi_negotiate != NULL)
		r = proto_desc.xxfi_negotiate(ctx, ctx->mta_actions, ctx->mta_proto, 0, 0, &pf0,
		                              &pf1, &pf2, &pf3);
	if (r == SMFIS_ALL_OPTS) {
		pf0 = ctx->mta_actions & proto_desc.xxfi_flags;
		pf1 = ctx->mta_proto & (SMFIP_NOUNKNOWN | SMFIP_NODATA);
	} else if (r != SMFIS_CONTINUE) {
		return proto_error("filter refused the negotiation", SMFIC_OPTNEG);
	}
	if ((pf0 & ~ctx->mta_actions) != 0 || (pf1 & ~ctx->mta_proto) != 0)
		return proto_error("filter wants what the MTA does not offer", SMFIC_OPTNEG);
	ctx->actions = pf0;
	ctx->proto = pf1;
	ver = htonl(ver < SMFI_PROT_VERSION ? ver : SMFI_PROT_VERSION);
	act = htonl((uint32_t)pf0);
	prot = htonl((uint32_t)pf1);
	{
		size_t body = 1 + MILTER_OPTLEN;
		uint32_t blen;
		for (int i = 0; i <= SMFIM_LAST; i++)
			if (ctx->symlist[i][0] != '\0')
				body += 4 + strlen(ctx->symlist[i]) + 1;
		blen = htonl((uint32_t)body);
		out_reserve(ctx, 4 + body);
		memcpy(ctx->out + ctx->out_len, &blen, 4);
		ctx->out[ctx->out_len + 4] = SMFIC_OPTNEG;
		memcpy(ctx->out + ctx->out_len + 5, &ver, 4);
		memcpy(ctx->out + ctx->out_len + 9, &act, 4);
		memcpy(ctx->out + ctx->out_len + 13, &prot, 4);
		ctx->out_len += 4 + 1 + MILTER_OPTLEN;
		for (int i = 0; i <= SMFIM_LAST; i++) {
			uint32_t where = htonl((uint32_t)i);
			size_t l;
			if (ctx->symlist[i][0] == '\0')
				continue;
			l = strlen(ctx->symlist[i]) + 1;
			memcpy(ctx->out + ctx->out_len, &where, 4);
			memcpy(ctx->out + ctx->out_len + 4, ctx->symlist[i], l);
			ctx->out_len += 4 + l;
		}
	}
	ctx->state = ST_NEGOTIATED;
	return flush(ctx);
}

/* do_macro - SMFIC_MACRO: a stage code, then name\0value\0 pairs */
static int do_macro(SMFICTX *ctx, const char *data, size_t len)
{
	int stage;
	size_t n = 0;
	if (len < 1)
		return proto_error("empty macro command", SMFIC_MACRO);
	stage = stage_of(data[0]);
	if (stage < 0)
		return 0; /* macros for a stage we never read: ignored, as libmilter does */
	data++;
	len--;
	if (len > 0) {
		if (!strings_ok(data, len, 0))
			return proto_error("bad macro data", SMFIC_MACRO);
		for (size_t i = 0; i < len; i++)
			n += data[i] == '\0';
		if (n % 2 != 0)
			return proto_error("macro without a value", SMFIC_MACRO);
	}
	free(ctx->macros[stage]);
	ctx->macros[stage] = NULL;
	ctx->macros_len[stage] = 0;
	if (len > 0) {
		ctx->macros[stage] = mw_malloc(len);
		memcpy(ctx->macros[stage], data, len);
		ctx->macros_len[stage] = len;
	}
	return 0;
}

/* do_connect - SMFIC_CONNECT: host name, family, port, address */
static int do_connect(SMFICTX *ctx, char *data, size_t len)
{
	struct sockaddr_storage ss;
	struct sockaddr *sa = NULL;
	size_t hl;
	sfsistat r = SMFIS_CONTINUE;

	if (ctx->state != ST_NEGOTIATED || len < 2 || memchr(data, '\0', len) == NULL)
		return proto_error("bad connect", SMFIC_CONNECT);
	hl = strlen(data) + 1;
	if (hl >= len)
		return proto_error("bad connect", SMFIC_CONNECT);
	memset(&ss, 0, sizeof(ss));
	if (data[hl] == SMFIA_INET || data[hl] == SMFIA_INET6) {
		uint16_t port;
		const char *addr = data + hl + 3;
		if (len < hl + 4 || data[len - 1] != '\0')
			return proto_error("bad connect address", SMFIC_CONNECT);
		memcpy(&port, data + hl + 1, 2);
		if (data[hl] == SMFIA_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
				s4->sin_family = AF_INET;
				s4->sin_port = port;
				sa = (struct sockaddr *)s4;
			}
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			/* Sendmail writes "IPv6:" before the address */
			if (strncmp(addr, "IPv6:", 5) == 0)
				addr += 5;
			if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
				s6->sin6_family = AF_INET6;
				s6->sin6_port = port;
				sa = (struct sockaddr *)s6;
			}
		}
	}
	ctx->state = ST_CONNECTED;
	clear_macros(ctx, SMFIM_HELO); /* the connect macros stay, everything later goes */
	if (proto_desc.xxfi_connect != NULL)
		r = proto_desc.xxfi_connect(ctx, data, sa);
	return answer(ctx, r, SMFIP_NR_CONN);
}

/* argv_of - the NUL-separated strings of DATA as a NULL-terminated vector (at most MAX) */
static int argv_of(char *data, size_t len, char **argv, size_t max)
{
	size_t n = 0;
	if (!strings_ok(data, len, 0))
		return -1;
	for (char *p = data; p < data + len; p += strlen(p) + 1) {
		if (n + 1 >= max)
			return -1;
		argv[n++] = p;
	}
	argv[n] = NULL;
	return 0;
}

/* need_state - -1 (logged) when a command comes before the state it needs */
static int need_state(SMFICTX *ctx, enum proto_state st, char cmd)
{
	if (ctx->state < st)
		return proto_error("command out of order", cmd);
	return 0;
}

/* dispatch - one command from the MTA; -1 ends the connection (also QUIT), 0 goes on */
static int dispatch(SMFICTX *ctx, char cmd, char *data, size_t len)
{
	char *argv[64];
	sfsistat r = SMFIS_CONTINUE;

	if (proto_stop)
		return -1; /* stopping: the filter's state is going away, no callback runs */
	if (cmd != SMFIC_OPTNEG && ctx->state == ST_NEW)
		return proto_error("command before negotiation", cmd);
	switch (cmd) {
	case SMFIC_OPTNEG:
		return do_negotiate(ctx, data, len);
	case SMFIC_MACRO:
		return do_macro(ctx, data, len);
	case SMFIC_CONNECT:
		return do_connect(ctx, data, len);
	case SMFIC_HELO:
		if (need_state(ctx, ST_CONNECTED, cmd) < 0)
			return -1;
		if (!strings_ok(data, len, 1))
			return proto_error("bad HELO", cmd);
		clear_macros(ctx, SMFIM_ENVFROM); /* a new HELO: MAIL and later are stale */
		if (proto_desc.xxfi_helo != NULL)
			r = proto_desc.xxfi_helo(ctx, data);
		return answer(ctx, r, SMFIP_NR_HELO);
	case SMFIC_MAIL:
		if (need_state(ctx, ST_CONNECTED, cmd) < 0)
			return -1;
		if (argv_of(data, len, argv, 64) < 0)
			return proto_error("bad MAIL", cmd);
		clear_macros(ctx, SMFIM_ENVRCPT); /* RCPT, DATA, EOM, EOH of an earlier message */
		ctx->state = ST_MAIL;
		if (proto_desc.xxfi_envfrom != NULL)
			r = proto_desc.xxfi_envfrom(ctx, argv);
		return answer(ctx, r, SMFIP_NR_MAIL);
	case SMFIC_RCPT:
		if (need_state(ctx, ST_MAIL, cmd) < 0)
			return -1;
		if (argv_of(data, len, argv, 64) < 0)
			return proto_error("bad RCPT", cmd);
		if (proto_desc.xxfi_envrcpt != NULL)
			r = proto_desc.xxfi_envrcpt(ctx, argv);
		return answer(ctx, r, SMFIP_NR_RCPT);
	case SMFIC_DATA:
		if (need_state(ctx, ST_MAIL, cmd) < 0)
			return -1;
		if (proto_desc.xxfi_data != NULL)
			r = proto_desc.xxfi_data(ctx);
		return answer(ctx, r, SMFIP_NR_DATA);
	case SMFIC_HEADER:
		if (need_state(ctx, ST_MAIL, cmd) < 0)
			return -1;
		if (!strings_ok(data, len, 2))
			return proto_error("bad header", cmd);
		if (proto_desc.xxfi_header != NULL)
			r = proto_desc.xxfi_header(ctx, data, data + strlen(data) + 1);
		return answer(ctx, r, SMFIP_NR_HDR);
	case SMFIC_EOH:
		if (need_state(ctx, ST_MAIL, cmd) < 0)
			return -1;
		if (proto_desc.xxfi_eoh != NULL)
			r = proto_desc.xxfi_eoh(ctx);
		return answer(ctx, r, SMFIP_NR_EOH);
	case SMFIC_BODY:
		if (need_state(ctx, ST_MAIL, cmd) < 0)
			return -1;
		if (proto_desc.xxfi_body != NULL)
			r = proto_desc.xxfi_body(ctx, (unsigned char *)data, len);
		return answer(ctx, r, SMFIP_NR_BODY);
	case SMFIC_BODYEOB:
		if (need_state(ctx, ST_MAIL, cmd) < 0)
			return -1;
		if (len > 0 && proto_desc.xxfi_body != NULL)
			(void)proto_desc.xxfi_body(ctx, (unsigned char *)data, len);
		ctx->in_eom = true;
		if (proto_desc.xxfi_eom != NULL)
			r = proto_desc.xxfi_eom(ctx);
		ctx->in_eom = false;
		ctx->state = ST_CONNECTED;
		return answer(ctx, r, 0);
	case SMFIC_ABORT:
		if (ctx->state == ST_MAIL && proto_desc.xxfi_abort != NULL)
			(void)proto_desc.xxfi_abort(ctx);
		if (ctx->state == ST_MAIL)
			ctx->state = ST_CONNECTED;
		clear_macros(ctx, SMFIM_ENVFROM);
		ctx->reply[0] = '\0';
		return 0; /* no reply to abort */
	case SMFIC_UNKNOWN:
		if (need_state(ctx, ST_CONNECTED, cmd) < 0)
			return -1;
		if (proto_desc.xxfi_unknown != NULL && strings_ok(data, len, 1))
			r = proto_desc.xxfi_unknown(ctx, data);
		return answer(ctx, r, SMFIP_NR_UNKN);
	case SMFIC_QUIT_NC:
		/* the connection is reused for a new SMTP session: end this one, and let the
		   filter set its context up again with the options agreed before */
		if (ctx->state >= ST_CONNECTED) {
			if (ctx->state == ST_MAIL && proto_desc.xxfi_abort != NULL)
				(void)proto_desc.xxfi_abort(ctx);
			if (proto_desc.xxfi_close != NULL)
				(void)proto_desc.xxfi_close(ctx);
		}
		clear_macros(ctx, SMFIM_CONNECT);
		if (proto_desc.xxfi_negotiate != NULL) {
			unsigned long pf0 = 0, pf1 = 0, pf2 = 0, pf3 = 0;
			ctx->renegotiating = true;
			r = proto_desc.xxfi_negotiate(ctx, ctx->mta_actions, ctx->mta_proto, 0, 0,
			                              &pf0, &pf1, &pf2, &pf3);
			ctx->renegotiating = false;
			if (r != SMFIS_CONTINUE && r != SMFIS_ALL_OPTS)
				return proto_error("filter refused the new session", cmd);
		}
		ctx->state = ST_NEGOTIATED;
		return 0;
	case SMFIC_QUIT:
		return -1;
	default:
		return proto_error("unknown command", cmd);
	}
}

/* conn_run - read commands and answer them until QUIT, an error or the MTA hangs up */
static void conn_run(SMFICTX *ctx)
{
	for (;;) {
		uint32_t clen;
		size_t avail = ctx->in_end - ctx->in_start;
		ssize_t n;

		if (avail >= 4) {
			memcpy(&clen, ctx->in + ctx->in_start, 4);
			clen = ntohl(clen);
			if (clen < 1 || clen > MILTER_PROTO_MAX_CMD) {
				(void)proto_error("command length out of range", 0);
				return;
			}
			if (avail >= 4 + (size_t)clen) {
				unsigned char *p = ctx->in + ctx->in_start;
				char cmd = (char)p[4];
				ctx->in_start += 4 + clen;
				if (dispatch(ctx, cmd, (char *)p + 5, clen - 1) < 0)
					return;
				continue;
			}
			if (4 + (size_t)clen > ctx->in_size - ctx->in_start) {
				/* make room: move what is there to the front, grow for a long one
				 */
				memmove(ctx->in, ctx->in + ctx->in_start, avail);
				ctx->in_start = 0;
				ctx->in_end = avail;
				if (4 + (size_t)clen > ctx->in_size) {
					ctx->in_size = 4 + (size_t)clen;
					ctx->in = mw_realloc(ctx->in, ctx->in_size);
				}
			}
		} else if (ctx->in_start > 0) {
			memmove(ctx->in, ctx->in + ctx->in_start, avail);
			ctx->in_start = 0;
			ctx->in_end = avail;
		}
		n = read(ctx->fd, ctx->in + ctx->in_end, ctx->in_size - ctx->in_end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* hung up, or silent for MILTER_PROTO_TIMEOUT */
		ctx->in_end += (size_t)n;
	}
}

/* conn_serve - one MTA connection from accept to close; CTX is reused for the next */
static void conn_serve(SMFICTX *ctx, int fd)
{
	struct timeval tv = {.tv_sec = MILTER_PROTO_TIMEOUT, .tv_usec = 0};
	unsigned char *in = ctx->in, *out = ctx->out;
	size_t in_size = ctx->in_size, out_size = ctx->out_size;

	memset(ctx, 0, sizeof(*ctx));
	ctx->fd = fd;
	ctx->in = in;
	ctx->in_size = in_size;
	ctx->out = out;
	ctx->out_size = out_size;
	/* no send timeout: what we write is a few small replies, never near the socket's
	   buffer, so a write does not wait for the MTA to read */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	conn_run(ctx);
	/* the filter's context ends with the connection, message or not */
	if (ctx->state == ST_MAIL && proto_desc.xxfi_abort != NULL)
		(void)proto_desc.xxfi_abort(ctx);
	if ((ctx->state != ST_NEW || ctx->priv != NULL) && proto_desc.xxfi_close != NULL)
		(void)proto_desc.xxfi_close(ctx);
	(void)close(fd);
	clear_macros(ctx, SMFIM_CONNECT);
	if (ctx->in_size > MILTER_PROTO_READ) { /* a long command grew it: back to normal */
		free(ctx->in);
		ctx->in_size = MILTER_PROTO_READ;
		ctx->in = mw_malloc(ctx->in_size);
	}
}

/* The connection threads wait in accept() themselves (the kernel wakes one per
   connection), so a new connection costs no hand-off between threads. A thread that takes
   a connection while no other waits starts one more; a thread that finishes one while
   POOL_MAX_IDLE others wait ends. */
#define POOL_MAX_IDLE 32

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static int pool_idle, pool_threads;

static void *pool_thread(void *arg);

/* pool_spawn - one more connection thread (under pool_lock); -1 when none can be made */
static int pool_spawn(void)
{
	pthread_attr_t attr;
	pthread_t t;
	int ret;
	if (pthread_attr_init(&attr) != 0)
		return -1;
	(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&t, &attr, pool_thread, NULL);
	(void)pthread_attr_destroy(&attr);
	if (ret != 0) {
		mw_warn("event=milter_protocol error=\"cannot create a connection thread\"");
		return -1;
	}
	pool_threads++;
	return 0;
}

/* pool_thread - accept a connection, serve it, again; ends when enough others wait */
static void *pool_thread(void *arg)
{
	SMFICTX *ctx = mw_calloc(1, sizeof(*ctx));
	(void)arg;
	ctx->in_size = MILTER_PROTO_READ;
	ctx->in = mw_malloc(ctx->in_size);
	(void)pthread_mutex_lock(&pool_lock);
	while (!proto_stop) {
		int fd, err;
		pool_idle++;
		(void)pthread_mutex_unlock(&pool_lock);
		/* the listening socket's receive timeout wakes us to see smfi_stop */
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		err = errno;
		(void)pthread_mutex_lock(&pool_lock);
		pool_idle--;
		if (fd < 0) {
			if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
				(void)pthread_mutex_unlock(&pool_lock);
				(void)poll(NULL, 0, 100); /* out of something: do not spin */
				(void)pthread_mutex_lock(&pool_lock);
			}
			continue;
		}
		if (pool_idle == 0 && !proto_stop)
			(void)pool_spawn(); /* none made: the next free thread accepts */
		(void)pthread_mutex_unlock(&pool_lock);
		conn_serve(ctx, fd);
		(void)pthread_mutex_lock(&pool_lock);
		if (pool_idle >= POOL_MAX_IDLE)
			break;
	}
	pool_threads--;
	(void)pthread_cond_broadcast(&pool_cond);
	(void)pthread_mutex_unlock(&pool_lock);
	free(ctx->in);
	free(ctx->out);
	free(ctx);
	return NULL;
}

/* smfi_main - serve connections until smfi_stop */
int smfi_main(void)
{
	struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
	if (listen_fd < 0 || setsockopt(listen_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return MI_FAILURE;
	(void)pthread_mutex_lock(&pool_lock);
	if (pool_spawn() < 0) {
		(void)pthread_mutex_unlock(&pool_lock);
		return MI_FAILURE;
	}
	while (!proto_stop) {
		if (pool_threads == 0 && pool_spawn() < 0) {
			(void)pthread_mutex_unlock(&pool_lock);
			(void)poll(NULL, 0, 1000);
			(void)pthread_mutex_lock(&pool_lock);
			continue;
		}
		(void)pthread_cond_wait(&pool_cond, &pool_lock);
	}
	(void)pthread_mutex_unlock(&pool_lock);
	return MI_SUCCESS;
}

/* smfi_stop - accept no more connections; smfi_main returns (connections being served
   go on until they end or the process does) */
int smfi_stop(void)
{
	(void)pthread_mutex_lock(&pool_lock);
	proto_stop = 1;
	(void)pthread_cond_broadcast(&pool_cond);
	(void)pthread_mutex_unlock(&pool_lock);
	if (listen_fd >= 0)
		(void)shutdown(listen_fd, SHUT_RDWR);
	return MI_SUCCESS;
}
