/* mw-dedupe.c - the record of saved deliveries that recognises a re-delivery of the same
 * queue file (see mw-dedupe.h).
 *
 * The record is one empty file per key: a check is one stat(), a record one open() (and,
 * when asked to be durable, an fsync of the directory), whatever the number of records, and
 * nothing is ever rewritten. A record is trusted only when it is a regular file with a
 * 64-hex-digit name; anything else in the directory is left alone by the sweep.
 */
#include "mw-build.h"
#include "mw-dedupe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SWEEP_MARKER ".swept"

/* field_end - the end of the header field starting at p (after its last continuation
   line), or NULL when it does not end within [p, end) */
static const char *field_end(const char *p, const char *end)
{
	const char *nl;
	for (;;) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL || nl + 1 >= end)
			return NULL; /* no line end, or cannot see whether a continuation follows */
		p = nl + 1;
		if (*p != ' ' && *p != '\t')
			return p;
	}
}

/* field_is - whether the field at p of length n has the name (case-insensitive) */
static bool field_is(const char *p, size_t n, const char *name)
{
	size_t l = strlen(name);
	return n > l && strncasecmp(p, name, l) == 0 && p[l] == ':';
}

/* has_text - whether [p, p+n) contains s */
static bool has_text(const char *p, size_t n, const char *s)
{
	size_t l = strlen(s), i;
	for (i = 0; i + l <= n; i++)
		if (memcmp(p + i, s, l) == 0)
			return true;
	return false;
}

/* mw_dedupe_lmtp_prefix - bytes of the header lines lmtp prepended to a message */
size_t mw_dedupe_lmtp_prefix(const char *data, size_t len)
{
	static const char *const order[] = {"Return-Path", "Delivered-To", "Received"};
	const char *p = data, *end, *fe;
	size_t i;

	if (len > MW_DEDUPE_PREFIX_MAX)
		len = MW_DEDUPE_PREFIX_MAX;
	end = data + len;
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		fe = field_end(p, end);
		if (fe == NULL)
			break;
		if (!field_is(p, (size_t)(fe - p), order[i])) {
			if (i == 0)
				break; /* lmtp always writes Return-Path first: none of it is ours
				        */
			continue;      /* the optional line is absent: try the next name here */
		}
		if (i == 2 && !has_text(p, (size_t)(fe - p), " with LMTP"))
			break; /* a Received of another hop (lmtp_add_received_header = no) */
		p = fe;
	}
	return (size_t)(p - data);
}

/* mw_dedupe_hash_init - start a key */
void mw_dedupe_hash_init(struct mw_dedupe_hash *h)
{
	crypto_generichash_init(&h->st, NULL, 0, crypto_generichash_BYTES);
}

/* mw_dedupe_hash_update - add bytes to a key, CR bytes left out; the pieces between CRs
   are gathered into one buffer, so a CRLF message costs one hash call per 4 kB, not one
   per line */
void mw_dedupe_hash_update(struct mw_dedupe_hash *h, const char *data, size_t len)
{
	unsigned char buf[4096];
	const char *p = data, *end = data + len, *cr;
	size_t used = 0, n;
	while (p < end) {
		cr = memchr(p, '\r', (size_t)(end - p));
		if (cr == NULL)
			cr = end;
		while (p < cr) {
			n = (size_t)(cr - p);
			if (n > sizeof(buf) - used)
				n = sizeof(buf) - used;
			memcpy(buf + used, p, n);
			used += n;
			p += n;
			if (used == sizeof(buf)) {
				crypto_generichash_update(&h->st, buf, used);
				used = 0;
			}
		}
		p = cr + 1;
	}
	if (used > 0)
		crypto_generichash_update(&h->st, buf, used);
}

/* mw_dedupe_hash_final - the key in hex */
void mw_dedupe_hash_final(struct mw_dedupe_hash *h, char key_r[MW_DEDUPE_KEY_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char d[crypto_generichash_BYTES];
	size_t i;
	crypto_generichash_final(&h->st, d, sizeof(d));
	for (i = 0; i < sizeof(d); i++) {
		key_r[2 * i] = digits[d[i] >> 4];
		key_r[2 * i + 1] = digits[d[i] & 15];
	}
	key_r[MW_DEDUPE_KEY_LEN] = '\0';
}

/* key_valid - exactly MW_DEDUPE_KEY_LEN lower-case hex digits */
static bool key_valid(const char *key)
{
	size_t i;
	for (i = 0; i < MW_DEDUPE_KEY_LEN; i++)
		if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f')))
			return false;
	return key[i] == '\0';
}

/* record_path - DIR/NAME into buf; -1 when it does not fit */
static int record_path(char *buf, size_t size, const char *dir, const char *name, mw_error *error_r)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= size) {
		mw_error_set(error_r, "dedupe record %s: path too long", dir);
		return -1;
	}
	return 0;
}

/* mw_dedupe_seen - whether key was saved within the window */
int mw_dedupe_seen(const char *dir, const char *key, time_t now, unsigned window, time_t *saved_r,
                   mw_error *error_r)
{
	char path[4096];
	struct stat st;

	*saved_r = 0;
	if (!key_valid(key)) {
		mw_error_set(error_r, "dedupe record %s: invalid key", dir);
		return -1;
	}
	if (record_path(path, sizeof(path), dir, key, error_r) < 0)
		return -1;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0; /* also when dir does not exist yet */
		mw_error_set(error_r, "dedupe record %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		mw_error_set(error_r, "dedupe record %s: not a regular file", path);
		return -1;
	}
	*saved_r = st.st_mtime;
	/* a record from the future (the clock was set back) still counts */
	if (st.st_mtime > now || now - st.st_mtime < (time_t)window)
		return 1;
	return 0;
}

/* touch - create path (or reuse it) with modification time t; fd returned for a sync */
static int touch(const char *path, time_t t, int *fd_r, mw_error *error_r)
{
	struct timespec ts[2];
	int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
	if (fd < 0) {
		mw_error_set(error_r, "dedupe record %s: %s", path, strerror(errno));
		return -1;
	}
	ts[0].tv_sec = ts[1].tv_sec = t;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (futimens(fd, ts) < 0) {
		mw_error_set(error_r, "dedupe record %s: futimens: %s", path, strerror(errno));
		(void)close(fd);
		return -1;
	}
	*fd_r = fd;
	return 0;
}

/* sweep_due - whether dir's last sweep is MW_DEDUPE_SWEEP_EVERY old (the marker is reset) */
static bool sweep_due(const char *dir, time_t now)
{
	char path[4096];
	struct stat st;
	int fd;
	if (record_path(path, sizeof(path), dir, SWEEP_MARKER, NULL) < 0)
		return false;
	if (lstat(path, &st) == 0 && st.st_mtime <= now &&
	    now - st.st_mtime < MW_DEDUPE_SWEEP_EVERY)
		return false;
	if (touch(path, now, &fd, NULL) < 0)
		return false; /* a marker that cannot be written would sweep every time */
	(void)close(fd);
	return true;
}

/* mw_dedupe_record - record key as saved at now */
int mw_dedupe_record(const char *dir, const char *key, time_t now, unsigned window, bool sync,
                     mw_error *error_r)
{
	char path[4096];
	int fd, dfd, ret = 0;

	if (!key_valid(key)) {
		mw_error_set(error_r, "dedupe record %s: invalid key", dir);
		return -1;
	}
	if (record_path(path, sizeof(path), dir, key, error_r) < 0)
		return -1;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		mw_error_set(error_r, "dedupe record %s: mkdir: %s", dir, strerror(errno));
		return -1;
	}
	if (touch(path, now, &fd, error_r) < 0)
		return -1;
	(void)close(fd);
	/* one fsync, of the directory: it makes the new name durable, and on a journalling file
	   system the new inode (with its time) with it; a record lost all the same costs at
	   most a duplicate */
	if (sync) {
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd) < 0) {
			mw_error_set(error_r, "dedupe record %s: fsync: %s", dir, strerror(errno));
			ret = -1;
		}
		if (dfd >= 0)
			(void)close(dfd);
	}
	if (ret == 0 && sweep_due(dir, now))
		(void)mw_dedupe_sweep(dir, now, window, NULL, NULL);
	return ret;
}

/* mw_dedupe_sweep - remove the records older than the window */
int mw_dedupe_sweep(const char *dir, time_t now, unsigned window, unsigned *removed_r,
                    mw_error *error_r)
{
	char path[4096];
	struct dirent *de;
	struct stat st;
	unsigned removed = 0;
	DIR *d = opendir(dir);

	if (removed_r != NULL)
		*removed_r = 0;
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		mw_error_set(error_r, "dedupe record %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!key_valid(de->d_name))
			continue;
		if (record_path(path, sizeof(path), dir, de->d_name, NULL) < 0)
			continue;
		if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (st.st_mtime <= now && now - st.st_mtime >= (time_t)window && unlink(path) == 0)
			removed++;
	}
	(void)closedir(d);
	if (removed_r != NULL)
		*removed_r = removed;
	return 0;
}
