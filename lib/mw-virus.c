/*
 * mw-virus.c - virus scanning: in-process libclamav or clamd's INSTREAM, one interface.
 *
 * Public: mw_virus_new, mw_virus_ref, mw_virus_unref, mw_virus_signatures, mw_virus_stale,
 * mw_virus_scan, mw_virus_clamd_parse, mw_virus_name_is_limit.
 *
 * libclamav: cl_init once per process; an engine is made, given the scan limits, loaded
 * from the signature directory (no signature at all is an error: an engine that can find
 * nothing must not pass for one that found nothing) and compiled before mw_virus_new
 * returns it, so whoever holds an mw_virus holds a finished engine. A compiled engine is
 * read-only and scans from many threads at once. A message is scanned from memory through
 * an fmap (cl_fmap_open_memory + cl_scanmap_callback) with every parser on (mail, archives,
 * documents): libclamav itself decodes MIME parts and unpacks archives. Scan limits are
 * reported as alerts (CL_SCAN_HEURISTIC_EXCEEDS_MAX) so a message that could not be
 * scanned whole is never taken for clean: "Heuristics.Limits.Exceeded.*" becomes
 * MW_VIRUS_LIMIT, except MaxScanTime, which (like CL_ETIMEOUT) is MW_VIRUS_ERROR: a slow
 * scan may be load, not the message.
 *
 * clamd: one connection per message: "zINSTREAM\0", chunks (4-byte big-endian length and
 * data), a zero length, then one NUL-terminated reply parsed strictly
 * (mw_virus_clamd_parse). Every step (connect, each send, the reply) has the timeout.
 *
 * Reference counts are atomic; the last unref frees the engine.
 *
 * Diagnostics: errors through error_r; libclamav's own messages go to mw_log (warnings and
 * errors at warning level, the rest at debug).
 */
#include "mw-build.h"
#include "mw-virus.h"
#include "mw-log.h"
#include "mw-net.h"

#include <clamav.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define CLAMD_CHUNK 65536

struct mw_virus {
	int refs; /* atomic */
	enum mw_virus_engine engine;
	/* libclamav */
	struct cl_engine *cl;
	unsigned signo;
	struct cl_stat stat;
	bool stat_ok;
	pthread_mutex_t stat_lock;
	/* clamd */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	unsigned timeout_ms;
};

static pthread_once_t cl_once = PTHREAD_ONCE_INIT;
static cl_error_t cl_init_status = CL_SUCCESS;

/* struct found - what the virus-found callback saw during one scan */
struct found {
	char name[MW_VIRUS_NAME_MAX + 1];
	bool error; /* libclamav reported an error during the scan */
};

/* The scan running in this thread (libclamav scans in the caller's thread), NULL outside
   one: libclamav 1.4 answers CL_CLEAN for a scan that could not make its temporary
   directory (a full or unwritable /tmp), having scanned nothing, and reports that error
   with no scan context; cl_log notes any error here so the scan gives no verdict. */
static __thread struct found *cur_scan;

/* cl_log - libclamav's messages into our log; errors during a scan mark the scan */
static void cl_log(enum cl_msg severity, const char *fullmsg, const char *msg, void *context)
{
	char v[300];
	(void)fullmsg;
	(void)context;
	if (cur_scan != NULL && severity == CL_MSG_ERROR)
		cur_scan->error = true;
	if (msg == NULL)
		return;
	mw_log_value(v, sizeof(v), msg, strcspn(msg, "\n"));
	if (severity >= CL_MSG_WARN)
		mw_warn("event=libclamav message=%s", v);
	else
		mw_debug("event=libclamav message=%s", v);
}

/* cl_setup - cl_init once per process */
static void cl_setup(void)
{
	cl_set_clcb_msg(cl_log);
	cl_init_status = cl_init(CL_INIT_DEFAULT);
}

/* mw_virus_name_is_limit - a "scan limit exceeded" alert (not the scan time) */
bool mw_virus_name_is_limit(const char *name)
{
	size_t n = strlen(MW_VIRUS_LIMIT_PREFIX);
	return strncmp(name, MW_VIRUS_LIMIT_PREFIX, n) == 0 && name[n] == '.' &&
	       strstr(name + n, "MaxScanTime") == NULL;
}

/* name_is_scantime - the scan-time alert */
static bool name_is_scantime(const char *name)
{
	size_t n = strlen(MW_VIRUS_LIMIT_PREFIX);
	return strncmp(name, MW_VIRUS_LIMIT_PREFIX, n) == 0 && strstr(name + n, "MaxScanTime");
}

/* found_status - what a scanner's alert NAME means: the scan-time alert is an error (the
   message was not scanned whole), another limit alert MW_VIRUS_LIMIT, any other name a
   virus; WHO names the scanner in the error */
static enum mw_virus_status found_status(const char *who, const char *name, mw_error *error_r)
{
	if (name_is_scantime(name)) {
		mw_error_set(error_r, "%s: scan time limit exceeded", who);
		return MW_VIRUS_ERROR;
	}
	if (mw_virus_name_is_limit(name)) {
		mw_error_set(error_r, "%s: %s", who, name);
		return MW_VIRUS_LIMIT;
	}
	return MW_VIRUS_FOUND;
}

static void set_name(char *name_r, size_t namesize, const char *name);

/* parse_clamd_spec - unix:/path or inet:PORT@ADDRESS into a socket address */
static int parse_clamd_spec(const char *spec, struct sockaddr_storage *ss, socklen_t *len_r,
                            mw_error *error_r)
{
	memset(ss, 0, sizeof(*ss));
	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un *su = (struct sockaddr_un *)ss;
		const char *path = spec + 5;
		if (path[0] != '/' || mw_strlcpy(su->sun_path, path, sizeof(su->sun_path)) < 0) {
			mw_error_set(error_r,
			             "clamd socket %s: expected unix:/absolute/path (at most "
			             "%zu bytes)",
			             spec, sizeof(su->sun_path) - 1);
			return -1;
		}
		su->sun_family = AF_UNIX;
		*len_r = sizeof(*su);
		return 0;
	}
	if (strncmp(spec, "inet:", 5) == 0 || strncmp(spec, "inet6:", 6) == 0) {
		bool v6 = spec[4] == '6';
		if (mw_sockaddr_port_at(spec + (v6 ? 6 : 5), v6, ss, len_r) < 0)
			goto bad;
		return 0;
	}
bad:
	mw_error_set(error_r,
	             "clamd socket %s: expected unix:/path, inet:PORT@IPv4 or "
	             "inet6:PORT@IPv6",
	             spec);
	return -1;
}

/* on_found - libclamav names what it found here even where the scan's virname stays NULL
   (the top-level "limit exceeded" alert) */
static void on_found(int fd, const char *virname, void *context)
{
	struct found *f = context;
	(void)fd;
	if (f != NULL && virname != NULL && f->name[0] == '\0')
		set_name(f->name, sizeof(f->name), virname);
}

/* new_libclamav - load and compile the signatures of SETTINGS into V */
static int new_libclamav(mw_virus *v, const struct mw_virus_settings *s, mw_error *error_r)
{
	cl_error_t ret;
	(void)pthread_once(&cl_once, cl_setup);
	if (cl_init_status != CL_SUCCESS) {
		mw_error_set(error_r, "cl_init: %s", cl_strerror(cl_init_status));
		return -1;
	}
	v->cl = cl_engine_new();
	if (v->cl == NULL) {
		mw_error_set(error_r, "cl_engine_new failed");
		return -1;
	}
	if (cl_engine_set_num(v->cl, CL_ENGINE_MAX_SCANSIZE, (long long)s->max_scansize) !=
	        CL_SUCCESS ||
	    cl_engine_set_num(v->cl, CL_ENGINE_MAX_FILESIZE, (long long)s->max_filesize) !=
	        CL_SUCCESS ||
	    cl_engine_set_num(v->cl, CL_ENGINE_MAX_FILES, s->max_files) != CL_SUCCESS ||
	    cl_engine_set_num(v->cl, CL_ENGINE_MAX_RECURSION, s->max_recursion) != CL_SUCCESS ||
	    cl_engine_set_num(v->cl, CL_ENGINE_MAX_SCANTIME, s->max_scantime_ms) != CL_SUCCESS) {
		mw_error_set(error_r, "libclamav does not take the scan limits");
		return -1;
	}
	/* libclamav makes and removes a directory per scan: on a disk file system that is a
	   good part of a small message's scan (on ext4 ~9 % of the whole milter's CPU) */
	if (s->tmpdir != NULL && s->tmpdir[0] != '\0' &&
	    cl_engine_set_str(v->cl, CL_ENGINE_TMPDIR, s->tmpdir) != CL_SUCCESS) {
		mw_error_set(error_r, "libclamav does not take the temporary directory %s",
		             s->tmpdir);
		return -1;
	}
	cl_engine_set_clcb_virus_found(v->cl, on_found);
	/* stat first: a change made while loading makes the engine stale at once */
	if (cl_statinidir(s->signatures, &v->stat) == CL_SUCCESS)
		v->stat_ok = true;
	ret = cl_load(s->signatures, v->cl, &v->signo, CL_DB_STDOPT);
	if (ret != CL_SUCCESS) {
		mw_error_set(error_r, "signatures %s: %s", s->signatures, cl_strerror(ret));
		return -1;
	}
	if (v->signo == 0) {
		mw_error_set(error_r, "signatures %s: no signature loaded", s->signatures);
		return -1;
	}
	ret = cl_engine_compile(v->cl);
	if (ret != CL_SUCCESS) {
		mw_error_set(error_r, "signatures %s: compile: %s", s->signatures,
		             cl_strerror(ret));
		return -1;
	}
	return 0;
}

/* virus_free - everything V holds */
static void virus_free(mw_virus *v)
{
	if (v->cl != NULL)
		(void)cl_engine_free(v->cl);
	if (v->stat_ok)
		(void)cl_statfree(&v->stat);
	(void)pthread_mutex_destroy(&v->stat_lock);
	free(v);
}

/* mw_virus_new - a finished engine, or NULL with error_r */
mw_virus *mw_virus_new(const struct mw_virus_settings *s, mw_error *error_r)
{
	mw_virus *v = mw_calloc(1, sizeof(*v));
	int ret;
	v->refs = 1;
	v->engine = s->engine;
	(void)pthread_mutex_init(&v->stat_lock, NULL);
	if (s->engine == MW_VIRUS_LIBCLAMAV) {
		ret = new_libclamav(v, s, error_r);
	} else {
		v->timeout_ms = s->clamd_timeout_ms > 0 ? s->clamd_timeout_ms : 30000;
		ret = parse_clamd_spec(s->clamd_socket, &v->addr, &v->addrlen, error_r);
	}
	if (ret < 0) {
		virus_free(v);
		return NULL;
	}
	return v;
}

/* mw_virus_ref - one more reference */
mw_virus *mw_virus_ref(mw_virus *v)
{
	if (v != NULL)
		(void)__atomic_add_fetch(&v->refs, 1, __ATOMIC_RELAXED);
	return v;
}

/* mw_virus_unref - one reference less; the last frees */
void mw_virus_unref(mw_virus **vp)
{
	mw_virus *v = *vp;
	*vp = NULL;
	if (v != NULL && __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) == 0)
		virus_free(v);
}

/* mw_virus_signatures - how many signatures the engine holds */
unsigned mw_virus_signatures(const mw_virus *v)
{
	return v->signo;
}

/* mw_virus_stale - the signature directory changed since the engine was built */
bool mw_virus_stale(mw_virus *v)
{
	bool stale;
	if (v->engine != MW_VIRUS_LIBCLAMAV)
		return false;
	(void)pthread_mutex_lock(&v->stat_lock);
	stale = !v->stat_ok || cl_statchkdir(&v->stat) == 1;
	(void)pthread_mutex_unlock(&v->stat_lock);
	return stale;
}

/* set_name - copy a signature name (cut when it does not fit: names are for people) */
static void set_name(char *name_r, size_t namesize, const char *name)
{
	size_t n;
	if (namesize == 0)
		return;
	n = strnlen(name, namesize - 1);
	memcpy(name_r, name, n);
	name_r[n] = '\0';
}

/* scan_libclamav - one message from memory through the engine */
static enum mw_virus_status scan_libclamav(mw_virus *v, const void *data, size_t len, char *name_r,
                                           size_t namesize, mw_error *error_r)
{
	struct cl_scan_options opts;
	struct found found;
	const char *virname = NULL;
	unsigned long scanned = 0;
	cl_fmap_t *map;
	cl_error_t ret;

	memset(&opts, 0, sizeof(opts));
	opts.general = CL_SCAN_GENERAL_HEURISTICS;
	opts.parse = ~0u;
	opts.heuristic = CL_SCAN_HEURISTIC_EXCEEDS_MAX;
	map = cl_fmap_open_memory(data, len);
	if (map == NULL) {
		mw_error_set(error_r, "libclamav: cannot map the message");
		return MW_VIRUS_ERROR;
	}
	found.name[0] = '\0';
	found.error = false;
	cur_scan = &found;
	ret = cl_scanmap_callback(map, NULL, &virname, &scanned, v->cl, &opts, &found);
	cur_scan = NULL;
	cl_fmap_close(map);
	switch (ret) {
	case CL_CLEAN:
		if (found.error) { /* "clean" after an error: nothing may have been scanned */
			mw_error_set(error_r,
			             "libclamav: error during the scan (see its log line)");
			return MW_VIRUS_ERROR;
		}
		return MW_VIRUS_CLEAN;
	case CL_VIRUS:
		if (virname == NULL)
			virname = found.name[0] != '\0' ? found.name : "unnamed";
		set_name(name_r, namesize, virname);
		return found_status("libclamav", virname, error_r);
	case CL_EMAXSIZE:
	case CL_EMAXFILES:
	case CL_EMAXREC:
		set_name(name_r, namesize, MW_VIRUS_LIMIT_PREFIX);
		mw_error_set(error_r, "libclamav: %s", cl_strerror(ret));
		return MW_VIRUS_LIMIT;
	default:
		mw_error_set(error_r, "libclamav: %s", cl_strerror(ret));
		return MW_VIRUS_ERROR;
	}
}

/* wait_fd - poll FD for EVENTS up to MS milliseconds; 0 ready, -1 timeout or error */
static int wait_fd(int fd, short events, unsigned ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int r;
	do
		r = poll(&p, 1, (int)ms);
	while (r < 0 && errno == EINTR);
	return r == 1 ? 0 : -1;
}

/* clamd_connect - a connected socket to clamd, or -1 with error_r */
static int clamd_connect(const mw_virus *v, mw_error *error_r)
{
	struct timeval tv = {.tv_sec = v->timeout_ms / 1000,
	                     .tv_usec = (suseconds_t)(v->timeout_ms % 1000) * 1000};
	int fd = socket(v->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err = 0;
	socklen_t elen = sizeof(err);
	if (fd < 0) {
		mw_error_set(error_r, "clamd: socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)&v->addr, v->addrlen) < 0) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			mw_error_set(error_r, "clamd: connect: %s", strerror(errno));
			goto fail;
		}
		if (wait_fd(fd, POLLOUT, v->timeout_ms) < 0) {
			mw_error_set(error_r, "clamd: connect timed out");
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0) {
			mw_error_set(error_r, "clamd: connect: %s",
			             strerror(err != 0 ? err : errno));
			goto fail;
		}
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		mw_error_set(error_r, "clamd: socket options: %s", strerror(errno));
		goto fail;
	}
	return fd;
fail:
	(void)close(fd);
	return -1;
}

/* send_all - LEN bytes or -1 */
static int send_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* clamd_send - the INSTREAM command and the message in chunks; -1 on a send error */
static int clamd_send(int fd, const unsigned char *data, size_t len)
{
	static const char cmd[] = "zINSTREAM"; /* sent with its NUL */
	uint32_t n;
	if (send_all(fd, cmd, sizeof(cmd)) < 0)
		return -1;
	while (len > 0) {
		size_t chunk = len > CLAMD_CHUNK ? CLAMD_CHUNK : len;
		n = htonl((uint32_t)chunk);
		if (send_all(fd, &n, sizeof(n)) < 0 || send_all(fd, data, chunk) < 0)
			return -1;
		data += chunk;
		len -= chunk;
	}
	n = 0;
	return send_all(fd, &n, sizeof(n));
}

/* clamd_read - the reply up to its NUL (or EOF); -1 with error_r */
static int clamd_read(int fd, char *buf, size_t size, size_t *len_r, mw_error *error_r)
{
	size_t len = 0;
	for (;;) {
		ssize_t n;
		if (len == size) {
			mw_error_set(error_r, "clamd: reply longer than %zu bytes", size);
			return -1;
		}
		n = recv(fd, buf + len, size - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mw_error_set(error_r, "clamd: %s",
			             errno == EAGAIN || errno == EWOULDBLOCK ? "no reply in time"
			                                                     : strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		if (memchr(buf + len, '\0', (size_t)n) != NULL) {
			len += (size_t)n;
			break;
		}
		len += (size_t)n;
	}
	*len_r = len;
	return 0;
}

/* scan_clamd - one message through clamd's INSTREAM */
static enum mw_virus_status scan_clamd(mw_virus *v, const void *data, size_t len, char *name_r,
                                       size_t namesize, mw_error *error_r)
{
	char buf[MW_VIRUS_REPLY_MAX];
	size_t n = 0;
	int fd = clamd_connect(v, error_r), sent;
	if (fd < 0)
		return MW_VIRUS_ERROR;
	/* clamd may answer (size limit) and close while we still send: read the reply anyway */
	sent = clamd_send(fd, data, len);
	if (clamd_read(fd, buf, sizeof(buf), &n, error_r) < 0) {
		(void)close(fd);
		return MW_VIRUS_ERROR;
	}
	(void)close(fd);
	/* the reply ends at its NUL; a newline before it is tolerated (clamd's n-commands) */
	if (n > 0 && buf[n - 1] == '\0')
		n--;
	else if (sent < 0 || n == 0) {
		mw_error_set(error_r, "clamd: connection closed without a reply");
		return MW_VIRUS_ERROR;
	} else {
		mw_error_set(error_r, "clamd: reply not terminated");
		return MW_VIRUS_ERROR;
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	return mw_virus_clamd_parse(buf, n, name_r, namesize, error_r);
}

/* sig_char - a byte of a signature name (what X-Mailwarden-Virus can carry) */
static bool sig_char(char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '"' && c != ';' && c != '\\';
}

/* mw_virus_clamd_parse - one INSTREAM reply, strictly */
enum mw_virus_status mw_virus_clamd_parse(const char *reply, size_t len, char *name_r,
                                          size_t namesize, mw_error *error_r)
{
	static const char prefix[] = "stream: ", found[] = " FOUND", error[] = " ERROR",
	                  sizelimit[] = "INSTREAM size limit exceeded. ERROR";
	const char *p = reply + sizeof(prefix) - 1;
	size_t i, n;
	char v[MW_VIRUS_REPLY_MAX];

	if (namesize > 0)
		name_r[0] = '\0';
	for (i = 0; i < len; i++) {
		if ((unsigned char)reply[i] < 0x20 || (unsigned char)reply[i] >= 0x7f) {
			mw_error_set(error_r, "clamd: reply holds a control or non-ASCII byte");
			return MW_VIRUS_ERROR;
		}
	}
	if (len == sizeof(sizelimit) - 1 && memcmp(reply, sizelimit, len) == 0) {
		set_name(name_r, namesize, MW_VIRUS_LIMIT_PREFIX ".StreamMaxLength");
		mw_error_set(error_r, "clamd: INSTREAM size limit exceeded");
		return MW_VIRUS_LIMIT;
	}
	if (len < sizeof(prefix) - 1 || memcmp(reply, prefix, sizeof(prefix) - 1) != 0) {
		mw_error_set(error_r, "clamd: unexpected reply %s",
		             mw_log_value(v, sizeof(v), reply, len));
		return MW_VIRUS_ERROR;
	}
	n = len - (sizeof(prefix) - 1);
	if (n == 2 && memcmp(p, "OK", 2) == 0)
		return MW_VIRUS_CLEAN;
	if (n > sizeof(found) - 1 &&
	    memcmp(p + n - (sizeof(found) - 1), found, sizeof(found) - 1) == 0) {
		n -= sizeof(found) - 1;
		if (n == 0 || n > MW_VIRUS_NAME_MAX || n >= namesize) {
			mw_error_set(error_r, "clamd: signature name empty or too long");
			return MW_VIRUS_ERROR;
		}
		for (i = 0; i < n; i++) {
			if (!sig_char(p[i])) {
				mw_error_set(error_r,
				             "clamd: signature name %s holds a blank or a "
				             "character a header cannot carry",
				             mw_log_value(v, sizeof(v), p, n));
				return MW_VIRUS_ERROR;
			}
		}
		memcpy(name_r, p, n);
		name_r[n] = '\0';
		return found_status("clamd", name_r, error_r);
	}
	if (n >= sizeof(error) - 1 &&
	    memcmp(p + n - (sizeof(error) - 1), error, sizeof(error) - 1) == 0) {
		mw_error_set(error_r, "clamd: %s", mw_log_value(v, sizeof(v), p, n));
		return MW_VIRUS_ERROR;
	}
	mw_error_set(error_r, "clamd: unexpected reply %s", mw_log_value(v, sizeof(v), reply, len));
	return MW_VIRUS_ERROR;
}

/* mw_virus_scan - one message from memory */
enum mw_virus_status mw_virus_scan(mw_virus *v, const void *data, size_t len, char *name_r,
                                   size_t namesize, mw_error *error_r)
{
	if (namesize > 0)
		name_r[0] = '\0';
	if (v == NULL) {
		mw_error_set(error_r, "no virus engine");
		return MW_VIRUS_ERROR;
	}
	if (v->engine == MW_VIRUS_LIBCLAMAV)
		return scan_libclamav(v, data, len, name_r, namesize, error_r);
	return scan_clamd(v, data, len, name_r, namesize, error_r);
}
