/* test-service.c - unit tests for mw-service: the one command line of every daemon (common
   and own options, usage errors, --help with the daemon's keys) and the prefork pool (its
   helper process: started once, replaced when it dies, ended with the pool; a dead
   worker replaced, a stop that lets the request in hand finish, the master exiting 0). */
#include "mw-build.h"
#include "mw-service.h"
#include "mw-test.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct mw_service_opt own_opts[] = {
    {"socket", 's', "ADDRESS", "listen on ADDRESS"},
    {"routes", 0, NULL, "print the routes"},
    {NULL, 0, NULL, NULL},
};
static const char *const own_sections[] = {"main", "api", NULL};

struct seen {
	const char *socket;
	int routes;
};

/* own_option - records the daemon's own options */
static int own_option(void *ctx, int opt, const char *arg)
{
	struct seen *s = ctx;
	if (opt == 's') {
		s->socket = arg;
		return 0;
	}
	if (opt == MW_SERVICE_OPT_LONG(1)) {
		s->routes++;
		return 0;
	}
	return -1;
}

/* info_for - the test daemon's description */
static struct mw_service_info info_for(struct seen *s)
{
	struct mw_service_info info = {
	    .name = "mailwarden-test",
	    .summary = "A test daemon.\n",
	    .sections = own_sections,
	    .opts = own_opts,
	    .option = own_option,
	    .ctx = s,
	};
	return info;
}

/* unblock - undo the signal mask mw_service_args sets (the test process goes on) */
static void unblock(void)
{
	sigset_t set;
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGHUP);
	(void)sigaddset(&set, SIGTERM);
	(void)sigaddset(&set, SIGINT);
	(void)sigaddset(&set, SIGCHLD);
	(void)sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/* test_common_and_own_options - every common option, short and long, and the own ones */
static void test_common_and_own_options(void **state)
{
	char *a1[] = {"d",          "-c", "/x.conf", "-f",       "-t", "-p",
	              "/run/x.pid", "-s", "/s",      "--routes", NULL};
	char *a2[] = {"d",          "--config",   "/y.conf",  "--foreground", "--check",
	              "--pid-file", "/run/y.pid", "--socket", "/t",           NULL};
	char *a3[] = {"d", NULL};
	struct seen seen = {0};
	struct mw_service_info info = info_for(&seen);
	struct mw_service s;
	(void)state;
	optind = 1;
	mw_service_args(&s, &info, 10, a1);
	unblock();
	assert_string_equal(s.config_path, "/x.conf");
	assert_true(s.config_explicit && s.foreground && s.check);
	assert_string_equal(s.pid_file, "/run/x.pid");
	assert_int_equal(s.pid_fd, -1);
	assert_string_equal(seen.socket, "/s");
	assert_int_equal(seen.routes, 1);
	memset(&seen, 0, sizeof(seen));
	optind = 1;
	mw_service_args(&s, &info, 9, a2);
	unblock();
	assert_string_equal(s.config_path, "/y.conf");
	assert_true(s.config_explicit && s.foreground && s.check);
	assert_string_equal(s.pid_file, "/run/y.pid");
	assert_string_equal(seen.socket, "/t");
	optind = 1;
	mw_service_args(&s, &info, 1, a3);
	unblock();
	assert_string_equal(s.config_path, MW_CONFIG_DEFAULT_PATH);
	assert_false(s.config_explicit || s.foreground || s.check);
	assert_null(s.pid_file);
}

/* run_args - mw_service_args in a child with ARGV; its exit status, stdout in OUT */
static int run_args(char **argv, int argc, char *out, size_t outsize)
{
	int p[2], status;
	size_t got = 0;
	ssize_t n;
	pid_t pid;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct seen seen = {0};
		struct mw_service_info info = info_for(&seen);
		struct mw_service s;
		(void)dup2(p[1], STDOUT_FILENO);
		(void)close(p[0]);
		optind = 1;
		mw_service_args(&s, &info, argc, argv);
		_exit(100);
	}
	(void)close(p[1]);
	while (got + 1 < outsize && (n = read(p[0], out + got, outsize - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	(void)close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* test_usage_help_version - exit 2 on usage errors, 0 after --help (with the keys of the
   daemon's sections only) and --version */
static void test_usage_help_version(void **state)
{
	static char out[200000];
	char *bad1[] = {"d", "--nope", NULL}, *bad2[] = {"d", "-c", NULL};
	char *bad3[] = {"d", "stray", NULL}, *bad4[] = {"d", "-x", NULL};
	char *help[] = {"d", "--help", NULL}, *ver[] = {"d", "-V", NULL};
	static const char *const help_shown[] = {
	    "usage: mailwarden-test [-f] [-t] [-c FILE] [-p FILE] [-s ADDRESS] [--routes]",
	    "-p, --pid-file FILE",
	    "    --routes",
	    "\n[main]\n",
	    "\n[api]\n",
	    "\n  workers (",
	    NULL};
	static const char *const help_hidden[] = {"[milter]", NULL};
	(void)state;
	assert_int_equal(run_args(bad1, 2, out, sizeof(out)), 2);
	assert_int_equal(run_args(bad2, 2, out, sizeof(out)), 2);
	assert_int_equal(run_args(bad3, 2, out, sizeof(out)), 2);
	assert_int_equal(run_args(bad4, 2, out, sizeof(out)), 2);
	assert_int_equal(run_args(help, 2, out, sizeof(out)), 0);
	mw_test_expect_text(out, help_shown, help_hidden);
	assert_int_equal(run_args(ver, 2, out, sizeof(out)), 0);
	assert_string_equal(out, "mailwarden-test " PACKAGE_VERSION "\n");
}

static int pool_pipe = -1;

/* pool_worker - tells its pid, then serves one slow "request" (SIGTERM waits for it), then
   waits idle (SIGTERM ends it at once) */
static void pool_worker(void *ctx)
{
	char line[64];
	int n;
	(void)ctx;
	n = snprintf(line, sizeof(line), "start %ld\n", (long)getpid());
	assert_true(write(pool_pipe, line, (size_t)n) == n);
	usleep(300 * 1000);
	n = snprintf(line, sizeof(line), "done %ld\n", (long)getpid());
	assert_true(write(pool_pipe, line, (size_t)n) == n);
	mw_service_worker_idle(true);
	for (;;)
		pause();
}

/* read_line - one line from FD within 10 s ("" on timeout or end) */
static void read_line(int fd, char *buf, size_t size)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	size_t got = 0;
	buf[0] = '\0';
	while (got + 1 < size) {
		if (poll(&pfd, 1, 10000) <= 0 || read(fd, buf + got, 1) != 1)
			break;
		if (buf[got++] == '\n')
			break;
	}
	buf[got] = '\0';
}

/* start_pool - a master ("d -f") running a pool of pool_worker (and helper, when not NULL)
   in a child; p gets the pipe whose read end p[0] carries their lines */
static pid_t start_pool(int p[2], unsigned workers, void (*helper)(void *ctx))
{
	char *argv[] = {"d", "-f", NULL};
	pid_t master;
	assert_int_equal(pipe(p), 0);
	master = fork();
	assert_true(master >= 0);
	if (master == 0) {
		struct seen seen = {0};
		struct mw_service_info info = info_for(&seen);
		struct mw_service s;
		struct mw_service_pool pool = {0};
		mw_error err = {{0}};
		(void)close(p[0]);
		pool_pipe = p[1];
		optind = 1;
		mw_service_args(&s, &info, 2, argv);
		pool.service = &s;
		pool.workers = workers;
		pool.grace_s = 20;
		pool.run = pool_worker;
		pool.helper = helper;
		_exit(mw_service_pool_run(&pool, &err) == 0 ? 0 : 3);
	}
	(void)close(p[1]);
	return master;
}

/* test_pool - two workers; one killed is replaced; SIGTERM lets a busy one finish and the
   master exits 0 */
static void test_pool(void **state)
{
	char line[64], want[64];
	long pids[3];
	int p[2], status, i;
	pid_t master;
	(void)state;
	master = start_pool(p, 2, NULL);
	for (i = 0; i < 2; i++) {
		read_line(p[0], line, sizeof(line));
		assert_int_equal(sscanf(line, "start %ld", &pids[i]), 1);
	}
	/* both finish their first request */
	read_line(p[0], line, sizeof(line));
	assert_int_equal(strncmp(line, "done ", 5), 0);
	read_line(p[0], line, sizeof(line));
	assert_int_equal(strncmp(line, "done ", 5), 0);
	/* a worker that dies is replaced */
	assert_int_equal(kill((pid_t)pids[0], SIGKILL), 0);
	read_line(p[0], line, sizeof(line));
	assert_int_equal(sscanf(line, "start %ld", &pids[2]), 1);
	assert_true(pids[2] != pids[0] && pids[2] != pids[1]);
	/* a stop while the new one serves: its answer comes first, then everything ends */
	assert_int_equal(kill(master, SIGTERM), 0);
	read_line(p[0], line, sizeof(line));
	(void)snprintf(want, sizeof(want), "done %ld\n", pids[2]);
	assert_string_equal(line, want);
	assert_int_equal(waitpid(master, &status, 0), master);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	read_line(p[0], line, sizeof(line));
	assert_string_equal(line, ""); /* every worker gone: the pipe is closed */
	assert_int_equal(kill((pid_t)pids[1], 0), -1);
	(void)close(p[0]);
}

/* pool_helper - tells its pid, then waits idle (SIGTERM ends it at once) */
static void pool_helper(void *ctx)
{
	char line[64];
	int n;
	(void)ctx;
	n = snprintf(line, sizeof(line), "helper %ld\n", (long)getpid());
	assert_true(write(pool_pipe, line, (size_t)n) == n);
	mw_service_worker_idle(true);
	for (;;)
		pause();
}

/* next_helper - the pid of the next "helper PID" line (worker lines are skipped); 0 at end */
static long next_helper(int fd)
{
	char line[64];
	long pid;
	for (;;) {
		read_line(fd, line, sizeof(line));
		if (line[0] == '\0')
			return 0;
		if (sscanf(line, "helper %ld", &pid) == 1)
			return pid;
	}
}

/* test_pool_helper - the helper runs once beside the workers, is replaced when it dies, and
   ends with the pool */
static void test_pool_helper(void **state)
{
	char line[64];
	long h1, h2;
	int p[2], status;
	pid_t master;
	(void)state;
	master = start_pool(p, 1, pool_helper);
	h1 = next_helper(p[0]);
	assert_true(h1 > 0);
	assert_int_equal(kill((pid_t)h1, SIGKILL), 0);
	h2 = next_helper(p[0]);
	assert_true(h2 > 0 && h2 != h1);
	usleep(500 * 1000); /* the worker's first request is done */
	assert_int_equal(kill(master, SIGTERM), 0);
	assert_int_equal(waitpid(master, &status, 0), master);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	do /* every process gone: the pipe ends, and no third helper was started */
		read_line(p[0], line, sizeof(line));
	while (line[0] != '\0' && strncmp(line, "helper ", 7) != 0);
	assert_string_equal(line, "");
	assert_int_equal(kill((pid_t)h2, 0), -1);
	(void)close(p[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_common_and_own_options),
	    cmocka_unit_test(test_usage_help_version),
	    cmocka_unit_test(test_pool),
	    cmocka_unit_test(test_pool_helper),
	};
	MW_RUN_TESTS(tests);
}
