/*
 * ctl-mailsrc.c - the messages of the paths mailwardenctl commands read mail from (learn
 * spam|ham, dmarc import): one message file; an mbox (a file whose first line starts
 * "From ": messages split at "From " lines, mboxrd ">From " unescaped, the blank line
 * before a separator dropped); a maildir (a directory with cur/ or new/: both, in that
 * order); any other directory (its regular files, not recursive, dot files skipped). Files
 * of a directory are read in name order, each mapped read-only.
 *
 * Public: ctl_mail_read_path, ctl_mail_map.
 * Diagnostics: none of its own: what cannot be read, or is no message, goes to the
 * reader's trouble callback, which counts and reports it; the walk goes on.
 */
#include "mw-build.h"
#include "ctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ctl_mail_map - the whole file, read-only (NULL and *len_r = 0 for an empty file); errno */
int ctl_mail_map(const char *path, const char **data_r, size_t *len_r)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	void *p;
	*data_r = NULL;
	*len_r = 0;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		(void)close(fd);
		errno = EINVAL;
		return -1;
	}
	if (st.st_size == 0) {
		(void)close(fd);
		return 0;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	(void)close(fd);
	if (p == MAP_FAILED)
		return -1;
	*data_r = p;
	*len_r = (size_t)st.st_size;
	return 0;
}

/* trouble - report what went wrong at WHERE (message NUMBER of an mbox, or 0) */
static void trouble(const struct ctl_mail_reader *rd, enum ctl_mail_trouble kind, const char *where,
                    unsigned long number, const char *why)
{
	rd->trouble(rd->ctx, kind, where, number, why);
}

/* is_from_line - an mbox separator "From " at s */
static bool is_from_line(const char *s, size_t len)
{
	return len >= 5 && memcmp(s, "From ", 5) == 0;
}

/* read_mbox - every message of an mbox */
static int read_mbox(const struct ctl_mail_reader *rd, const char *path, const char *data,
                     size_t len)
{
	size_t pos = 0;
	unsigned long number = 0;
	mw_str msg;
	int ret = 0;
	bool done;
	char why[64];
	if (rd->delete_done)
		printf("%s: an mbox: --delete leaves its messages in place\n", path);
	mw_str_init(&msg, rd->max);
	while (pos < len && ret == 0) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		bool over = false;
		pos = nl != NULL ? (size_t)(nl - data) + 1 : len; /* past the "From " line */
		mw_str_reset(&msg);
		number++;
		while (pos < len) {
			const char *l = data + pos;
			size_t end;
			nl = memchr(l, '\n', len - pos);
			end = nl != NULL ? (size_t)(nl - data) + 1 : len;
			if (is_from_line(l, end - pos))
				break;
			if (l[0] == '>') { /* ">From " and ">>From ": one level less */
				size_t k = 0;
				while (pos + k < end && l[k] == '>')
					k++;
				if (is_from_line(l + k, end - pos - k))
					l++, pos++;
			}
			if (!over && mw_str_append(&msg, l, end - pos) < 0)
				over = true;
			pos = end;
		}
		if (over) {
			(void)snprintf(why, sizeof(why), "larger than %zu bytes", rd->max);
			trouble(rd, CTL_MAIL_BAD, path, number, why);
			continue;
		}
		/* the empty line before the next "From " belongs to the separator */
		if (msg.len >= 2 && msg.buf[msg.len - 1] == '\n' && msg.buf[msg.len - 2] == '\n')
			msg.buf[--msg.len] = '\0';
		ret = rd->message(rd->ctx, msg.buf != NULL ? msg.buf : "", msg.len, path, number,
		                  &done);
	}
	mw_str_free(&msg);
	return ret;
}

/* read_file - one message file (removed when done and delete_done) or an mbox */
static int read_file(const struct ctl_mail_reader *rd, const char *path)
{
	const char *data;
	size_t len;
	int ret;
	bool done = false;
	if (ctl_mail_map(path, &data, &len) < 0) {
		trouble(rd, CTL_MAIL_UNREADABLE, path, 0,
		        errno == EINVAL ? "not a regular file" : strerror(errno));
		return 0;
	}
	if (len == 0) {
		trouble(rd, CTL_MAIL_BAD, path, 0, "empty file");
		return 0;
	}
	if (is_from_line(data, len))
		ret = read_mbox(rd, path, data, len);
	else
		ret = rd->message(rd->ctx, data, len, path, 0, &done);
	(void)munmap((void *)data, len);
	if (done && rd->delete_done && unlink(path) < 0) {
		char why[128];
		(void)snprintf(why, sizeof(why), "cannot delete: %s", strerror(errno));
		trouble(rd, CTL_MAIL_UNREADABLE, path, 0, why);
	}
	return ret;
}

/* cmp_str - qsort of names */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* read_dir - every regular file in a directory, in name order */
static int read_dir(const struct ctl_mail_reader *rd, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	int ret = 0;
	if (d == NULL) {
		trouble(rd, CTL_MAIL_UNREADABLE, dir, 0, strerror(errno));
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap == 0 ? 256 : cap * 2;
			names = mw_realloc(names, cap * sizeof(*names));
		}
		names[n++] = mw_strdup(de->d_name);
	}
	(void)closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++) {
		mw_str p;
		struct stat st;
		mw_str_init(&p, 0);
		(void)mw_str_appendf(&p, "%s/%s", dir, names[i]);
		if (ret == 0 && lstat(p.buf, &st) == 0 && S_ISREG(st.st_mode))
			ret = read_file(rd, p.buf);
		mw_str_free(&p);
		free(names[i]);
	}
	free(names);
	return ret;
}

/* is_dir - path names a directory */
static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ctl_mail_read_path - every message of a file, an mbox, a maildir or a directory */
int ctl_mail_read_path(const struct ctl_mail_reader *rd, const char *path)
{
	mw_str cur, nw;
	struct stat st;
	int ret = 0;
	if (stat(path, &st) < 0) {
		trouble(rd, CTL_MAIL_UNREADABLE, path, 0, strerror(errno));
		return 0;
	}
	if (!S_ISDIR(st.st_mode))
		return read_file(rd, path);
	mw_str_init(&cur, 0);
	mw_str_init(&nw, 0);
	(void)mw_str_appendf(&cur, "%s/cur", path);
	(void)mw_str_appendf(&nw, "%s/new", path);
	if (is_dir(cur.buf) || is_dir(nw.buf)) {
		if (is_dir(cur.buf))
			ret = read_dir(rd, cur.buf);
		if (ret == 0 && is_dir(nw.buf))
			ret = read_dir(rd, nw.buf);
	} else {
		ret = read_dir(rd, path);
	}
	mw_str_free(&cur);
	mw_str_free(&nw);
	return ret;
}
