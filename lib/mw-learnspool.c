/* mw-learnspool.c - the Dovecot plugin's spool of learning events (see mw-learnspool.h).
 *
 * Files are created with O_NOFOLLOW|O_EXCL, mode 0600, in a directory of mode 0700; a
 * file is read only when it is a regular file no larger than MW_LEARNSPOOL_FILE_MAX.
 * Parsing is strict (every line, in order, the whole input consumed): the spool lies on
 * disk between two processes and a damaged file must never teach anything.
 */
#include "mw-build.h"
#include "mw-learnspool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_MAGIC  "mailwarden-learn 1"
#define SPOOL_SUFFIX ".learn"

/* hex_put - bytes as lower-case hex into s */
static void hex_put(mw_str *s, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;
	for (i = 0; i < n; i++) {
		(void)mw_str_appendc(s, digits[p[i] >> 4]);
		(void)mw_str_appendc(s, digits[p[i] & 15]);
	}
}

/* hex_get - exactly n bytes from 2n hex digits; -1 on anything else */
static int hex_get(mw_slice v, unsigned char *out, size_t n)
{
	size_t i;
	if (v.len != 2 * n)
		return -1;
	for (i = 0; i < n; i++) {
		int hi = mw_hexval((unsigned char)v.ptr[2 * i]);
		int lo = mw_hexval((unsigned char)v.ptr[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* mw_learnspool_format - the file text of one event */
char *mw_learnspool_format(const struct mw_learn_item *it, size_t *len_r)
{
	mw_str s;
	size_t i;
	mw_str_init(&s, 0);
	(void)mw_str_appendf(&s, SPOOL_MAGIC "\nuser %s\nlabel %s\ndigest ", it->username,
	                     it->spam ? "spam" : "ham");
	hex_put(&s, it->digest, sizeof(it->digest));
	(void)mw_str_appends(&s, "\nmsgid ");
	if (it->message_id[0] == '\0')
		(void)mw_str_appendc(&s, '-');
	hex_put(&s, (const unsigned char *)it->message_id, strlen(it->message_id));
	(void)mw_str_appendf(&s, "\ntokens %zu\n", it->count);
	for (i = 0; i < it->count; i++)
		(void)mw_str_appendf(&s, "%016llx\n", (unsigned long long)it->hash[i]);
	(void)mw_str_appends(&s, "end\n");
	*len_r = s.len;
	return mw_str_steal(&s);
}

/* next_line - the next LF-terminated line of [*p, end) with the given key, its value in
 *v_r; -1 when there is none or the key differs */
static int next_line(const char **p, const char *end, const char *key, mw_slice *v_r)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t klen = strlen(key);
	mw_slice line;
	if (nl == NULL)
		return -1;
	line.ptr = *p;
	line.len = (size_t)(nl - *p);
	*p = nl + 1;
	if (line.len < klen || memcmp(line.ptr, key, klen) != 0)
		return -1;
	if (line.len == klen) {
		v_r->ptr = line.ptr + klen;
		v_r->len = 0;
		return 0;
	}
	if (line.ptr[klen] != ' ')
		return -1;
	v_r->ptr = line.ptr + klen + 1;
	v_r->len = line.len - klen - 1;
	return memchr(v_r->ptr, '\0', v_r->len) == NULL ? 0 : -1;
}

/* mw_learn_item_free - free a parsed event's tokens */
void mw_learn_item_free(struct mw_learn_item *it)
{
	free(it->hash);
	it->hash = NULL;
	it->count = 0;
}

/* mw_learnspool_parse - one event from a spool file's text (strict) */
int mw_learnspool_parse(const char *text, size_t len, struct mw_learn_item *it, mw_error *error_r)
{
	const char *p = text, *end = text + len;
	mw_slice v;
	size_t i, n;
	char num[16];

	memset(it, 0, sizeof(*it));
	if (len > MW_LEARNSPOOL_FILE_MAX)
		goto bad;
	if (next_line(&p, end, SPOOL_MAGIC, &v) < 0 || v.len != 0)
		goto bad;
	if (next_line(&p, end, "user", &v) < 0 || v.len == 0 || v.len > MW_USERNAME_MAX)
		goto bad;
	memcpy(it->username, v.ptr, v.len);
	it->username[v.len] = '\0';
	if (next_line(&p, end, "label", &v) < 0)
		goto bad;
	if (mw_slice_eq(v, "spam"))
		it->spam = true;
	else if (!mw_slice_eq(v, "ham"))
		goto bad;
	if (next_line(&p, end, "digest", &v) < 0 || hex_get(v, it->digest, sizeof(it->digest)) < 0)
		goto bad;
	if (next_line(&p, end, "msgid", &v) < 0)
		goto bad;
	if (!mw_slice_eq(v, "-")) {
		if (v.len == 0 || v.len % 2 != 0 || v.len / 2 > MW_MESSAGE_ID_MAX ||
		    hex_get(v, (unsigned char *)it->message_id, v.len / 2) < 0 ||
		    memchr(it->message_id, '\0', v.len / 2) != NULL)
			goto bad;
		it->message_id[v.len / 2] = '\0';
	}
	if (next_line(&p, end, "tokens", &v) < 0 || v.len == 0 || v.len >= sizeof(num))
		goto bad;
	memcpy(num, v.ptr, v.len);
	num[v.len] = '\0';
	n = 0;
	for (i = 0; i < v.len; i++) {
		if (num[i] < '0' || num[i] > '9')
			goto bad;
		n = n * 10 + (size_t)(num[i] - '0');
		if (n > MW_TOKENS_MAX + 1)
			goto bad;
	}
	if (n == 0)
		goto bad;
	it->hash = mw_calloc(n, sizeof(*it->hash));
	for (i = 0; i < n; i++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		unsigned char b[8];
		size_t k;
		v.ptr = p;
		v.len = nl != NULL ? (size_t)(nl - p) : 0;
		if (nl == NULL || hex_get(v, b, sizeof(b)) < 0)
			goto bad;
		p = nl + 1;
		for (k = 0; k < 8; k++)
			it->hash[i] = it->hash[i] << 8 | b[k];
	}
	it->count = n;
	if (next_line(&p, end, "end", &v) < 0 || v.len != 0 || p != end)
		goto bad;
	return 0;
bad:
	mw_learn_item_free(it);
	mw_error_set(error_r, "not a learning event");
	return -1;
}

/* count_events - the number of events in dir (-1 when it cannot be read) */
static int count_events(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	size_t sl = strlen(SPOOL_SUFFIX);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l > sl && strcmp(e->d_name + l - sl, SPOOL_SUFFIX) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* event_path - DIR/<digest hex>.learn */
static int event_path(const char *dir, const unsigned char *digest, mw_str *path)
{
	(void)mw_str_appendf(path, "%s/", dir);
	hex_put(path, digest, MW_SPAM_DIGEST_LEN);
	return mw_str_appends(path, SPOOL_SUFFIX);
}

/* mw_learnspool_write - one event into the spool (atomically, bounded) */
int mw_learnspool_write(const char *dir, unsigned max_files, const struct mw_learn_item *it,
                        mw_error *error_r)
{
	mw_str path, tmp;
	char *text;
	size_t len;
	struct stat st;
	int fd, n, written, ret = -1;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		mw_error_set(error_r, "learning spool %s: mkdir: %s", dir, strerror(errno));
		return -1;
	}
	mw_str_init(&path, 4096);
	mw_str_init(&tmp, 4096);
	if (event_path(dir, it->digest, &path) < 0 ||
	    mw_str_appendf(&tmp, "%s/tmp.%ld", dir, (long)getpid()) < 0) {
		mw_error_set(error_r, "learning spool %s: path too long", dir);
		goto out;
	}
	n = count_events(dir);
	if (n < 0) {
		mw_error_set(error_r, "learning spool %s: %s", dir, strerror(errno));
		goto out;
	}
	if ((unsigned)n >= max_files && lstat(mw_str_c(&path), &st) < 0) {
		mw_error_set(error_r, "learning spool %s is full (%d events, the limit)", dir, n);
		goto out;
	}
	(void)unlink(mw_str_c(&tmp));
	fd = open(mw_str_c(&tmp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		mw_error_set(error_r, "learning spool %s: %s", dir, strerror(errno));
		goto out;
	}
	text = mw_learnspool_format(it, &len);
	written = mw_write_all(fd, text, len);
	free(text);
	if (written < 0 || fsync(fd) < 0) {
		mw_error_set(error_r, "learning spool %s: write: %s", dir, strerror(errno));
		close(fd);
		(void)unlink(mw_str_c(&tmp));
		goto out;
	}
	close(fd);
	if (rename(mw_str_c(&tmp), mw_str_c(&path)) < 0) {
		mw_error_set(error_r, "learning spool %s: rename: %s", dir, strerror(errno));
		(void)unlink(mw_str_c(&tmp));
		goto out;
	}
	ret = 0;
out:
	mw_str_free(&path);
	mw_str_free(&tmp);
	return ret;
}

/* read_event - the text of one spool file (regular, bounded); NULL on failure */
static char *read_event(int dfd, const char *name, size_t *len_r)
{
	struct stat st;
	char *buf;
	size_t off = 0;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MW_LEARNSPOOL_FILE_MAX) {
		close(fd);
		return NULL;
	}
	buf = mw_malloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	close(fd);
	buf[off] = '\0';
	*len_r = off;
	return buf;
}

/* mw_learnspool_flush - apply and remove every spooled event */
int mw_learnspool_flush(const char *dir, mw_learnspool_apply_cb *cb, void *ctx, unsigned *done_r,
                        unsigned *bad_r, mw_error *error_r)
{
	DIR *d;
	struct dirent *e;
	size_t sl = strlen(SPOOL_SUFFIX);
	int ret = 0;

	*done_r = *bad_r = 0;
	d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		mw_error_set(error_r, "learning spool %s: %s", dir, strerror(errno));
		return -1;
	}
	while (ret == 0 && (e = readdir(d)) != NULL) {
		struct mw_learn_item it;
		size_t l = strlen(e->d_name), len = 0;
		char *text;
		if (l <= sl || strcmp(e->d_name + l - sl, SPOOL_SUFFIX) != 0)
			continue;
		text = read_event(dirfd(d), e->d_name, &len);
		if (text == NULL || mw_learnspool_parse(text, len, &it, error_r) < 0) {
			char bad[512];
			if ((size_t)snprintf(bad, sizeof(bad), "%s.bad", e->d_name) < sizeof(bad))
				(void)renameat(dirfd(d), e->d_name, dirfd(d), bad);
			(*bad_r)++;
			free(text);
			continue;
		}
		free(text);
		if (cb(ctx, &it, error_r) < 0) {
			ret = 1;
		} else {
			(void)unlinkat(dirfd(d), e->d_name, 0);
			(*done_r)++;
		}
		mw_learn_item_free(&it);
	}
	closedir(d);
	return ret;
}
