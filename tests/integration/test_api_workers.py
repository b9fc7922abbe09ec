"""test_api_workers - mailwarden-api serves with a prefork pool of workers (issue 11).

The API runs as a master and [api] workers processes on the one FastCGI socket
(lib/mw-service.c). Through real nginx:
- a slow request (a login that fails: an argon2 check made deliberately slow here) does not
  hold up a cheap one sent while it runs; with workers = 1 it does (the control: the
  measurement can tell the difference);
- a worker that dies (SIGKILL) is replaced and the API keeps answering;
- SIGTERM lets a worker finish the request it serves (its answer arrives) and the master
  exits 0; SIGHUP replaces the workers (new pids) without losing a request.
Ordering, never speed, is asserted: the machine is shared.
"""

import os
import signal
import threading
import time
import unittest
import uuid

import mailwarden_lab as lab_mod
from labcase import call

DOMAIN = lab_mod.DOMAIN
# the failed login below is the slow request: argon2 over 128 MiB, 16 passes (about a second
# on a quiet machine, far more on a loaded one). Tests send their next request once a worker's
# memory shows the hash under way (Hashing), not after a guessed sleep.
SLOW_MEMORY, SLOW_PASSES = '128M', 16


children = lab_mod.children_of  # the pids of a process's children (test_api_fcgi too)


class Hashing:
    """Hashing - notes the API's workers' memory now; wait() returns once one of them has
    grown by a quarter of SLOW_MEMORY: a login's argon2 check is under way there."""

    def __init__(self, api_pid):
        self.api_pid = api_pid
        self.base = {p: lab_mod.rss_kib(p) for p in children(api_pid)}

    def wait(self, timeout=120):
        grow = int(SLOW_MEMORY.rstrip('M')) * 1024 // 4
        lab_mod.wait_until(lambda: any(lab_mod.rss_kib(p) > base + grow
                                       for p, base in self.base.items()), timeout,
                           'a worker hashing (its memory grown by %d KiB)' % grow)


class Pool:
    """Pool - a store, an API with WORKERS workers and nginx in front of it."""

    def __init__(self, workers):
        self.lab = lab_mod.Lab()
        try:
            self.store = self.lab.store(argon2_memory=SLOW_MEMORY, argon2_passes=SLOW_PASSES)
            self.api = self.lab.api(self.store, name='api-w%d' % workers,
                                    api_config={'workers': str(workers),
                                                'login_max_failures': '1000',
                                                'ip_max_failures': '1000'})
            self.nginx = self.lab.nginx(fastcgi=self.api.fastcgi())
            # spawn-fcgi opens the port; the workers follow the (slow) dummy hash
            lab_mod.wait_until(lambda: len(children(self.api.proc.pid)) == workers, 120,
                               '%d API workers' % workers)
        except Exception:
            self.lab.stop()
            raise
        self.port = self.nginx.port

    def slow_then_cheap(self):
        """slow_then_cheap - a failing login, and while it runs a cheap request;
        (cheap answer, slow answer, which the API finished first: 'cheap' or 'slow').
        The order comes from the API's own log (each request is logged right after its
        answer is written, so the lines are waited for), not from clocks."""
        out = {}
        cheap_path = '/api/v1/users/cheap-%s@%s' % (uuid.uuid4().hex[:8], DOMAIN)
        start = os.path.getsize(self.api.log_path)

        def slow():
            out['slow'] = call(self.port, 'POST', '/api/v1/sessions',
                               body={'username': 'nobody-%s@%s' % (uuid.uuid4().hex[:8], DOMAIN),
                                     'password': 'wrong-password-1'})

        hashing = Hashing(self.api.proc.pid)
        t = threading.Thread(target=slow)
        t.start()
        hashing.wait()  # the login is in a worker now
        cheap = call(self.port, 'GET', cheap_path)
        t.join(120)

        def logged():
            with open(self.api.log_path, 'rb') as f:
                f.seek(start)
                return f.read().decode(errors='replace')
        try:
            lab_mod.wait_until(lambda: 'POST /api/v1/sessions 401' in logged()
                               and 'GET %s 401' % cheap_path in logged(), 20,
                               'both requests in the API log')
        except lab_mod.LabError:
            raise AssertionError('requests not in the API log:\n' + logged())
        log = logged()
        slow_at = log.find('POST /api/v1/sessions 401')
        cheap_at = log.find('GET %s 401' % cheap_path)
        return cheap, out['slow'], 'cheap' if cheap_at < slow_at else 'slow'


class ApiWorkersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pool = Pool(3)

    @classmethod
    def tearDownClass(cls):
        cls.pool.lab.stop()

    def tearDown(self):
        report = self.pool.api.sanitizer_report()
        self.assertEqual(report, '', report)

    def test_slow_request_does_not_hold_up_a_cheap_one(self):
        cheap, slow, first = self.pool.slow_then_cheap()
        self.assertEqual(cheap.status, 401, cheap)
        self.assertEqual(slow.status, 401, slow)
        self.assertEqual(first, 'cheap', 'the cheap request waited for the slow login')

    def test_dead_worker_is_replaced(self):
        api = self.pool.api
        before = children(api.proc.pid)
        self.assertEqual(len(before), 3, before)
        os.kill(before[0], signal.SIGKILL)
        lab_mod.wait_until(lambda: len(children(api.proc.pid)) == 3
                           and before[0] not in children(api.proc.pid), 20,
                           'a new worker')
        self.assertEqual(call(self.pool.port, 'GET', '/api/v1/users/x@' + DOMAIN).status, 401)
        with open(api.log_path, errors='replace') as f:
            self.assertIn('event=worker_died pid=%d signal=9' % before[0], f.read())

    def test_reload_replaces_workers(self):
        api = self.pool.api
        before = children(api.proc.pid)
        os.kill(api.proc.pid, signal.SIGHUP)
        lab_mod.wait_until(lambda: len(children(api.proc.pid)) == 3
                           and not set(before) & set(children(api.proc.pid)), 30,
                           'the workers replaced after SIGHUP')
        self.assertEqual(call(self.pool.port, 'GET', '/api/v1/users/x@' + DOMAIN).status, 401)


class ApiOneWorkerTest(unittest.TestCase):
    """With one worker the slow login does hold the cheap request up: the ordering the test
    above asserts is the pool's doing, not the timing's."""

    def test_one_worker_serialises(self):
        pool = Pool(1)
        try:
            cheap, slow, first = pool.slow_then_cheap()
            self.assertEqual(cheap.status, 401, cheap)
            self.assertEqual(slow.status, 401, slow)
            self.assertEqual(first, 'slow')
        finally:
            pool.lab.stop()


class ApiLogAfterAnswerTest(unittest.TestCase):
    """A request's log line is written after its answer: with the API's log (stderr) a pipe
    that is full and not read, a request is still answered, and its line follows once the
    pipe is read again. Before, the worker wrote the line first and waited in that write,
    so the answer never came (nor would it, behind a slow journald or the workers' shared
    log file lock, for as long as the write waited)."""

    def test_answer_does_not_wait_for_the_log_line(self):
        lab = lab_mod.Lab()
        reader = filler = t = None
        got = []
        draining, stop = threading.Event(), threading.Event()
        draining.set()
        try:
            store = lab.store()
            api = lab_mod.Api(lab.root, store, api_config={'workers': '1'})
            os.makedirs(api.dir, exist_ok=True)
            os.mkfifo(api.log_path)
            reader = os.open(api.log_path, os.O_RDONLY | os.O_NONBLOCK)

            def drain():
                while not stop.is_set():
                    if draining.is_set():
                        try:
                            chunk = os.read(reader, 65536)
                            if chunk:
                                got.append(chunk)
                                continue
                        except BlockingIOError:
                            pass
                    time.sleep(0.01)
            t = threading.Thread(target=drain, daemon=True)
            t.start()
            lab.add(api)
            nginx = lab.nginx(fastcgi=api.fastcgi())
            lab_mod.wait_until(lambda: len(children(api.proc.pid)) == 1
                               and b'ready' in b''.join(got), 120, 'the API worker')
            self.assertEqual(call(nginx.port, 'GET', '/api/v1/healthz').status, 200)
            lab_mod.wait_until(lambda: b'GET /api/v1/healthz 200' in b''.join(got), 20,
                               'the first request in the log')
            # stop reading and fill the pipe: the API's next log write cannot complete
            draining.clear()
            time.sleep(0.1)
            filler = os.open(api.log_path, os.O_WRONLY | os.O_NONBLOCK)
            while True:
                try:
                    os.write(filler, b'.' * 4096)
                except BlockingIOError:
                    break
            path = '/api/v1/users/blocked-%s@%s' % (uuid.uuid4().hex[:8], DOMAIN)
            a = call(nginx.port, 'GET', path)  # 30 s timeout: the old order never answers
            self.assertEqual(a.status, 401, a)
            self.assertNotIn(path.encode(), b''.join(got))
            draining.set()
            lab_mod.wait_until(lambda: ('GET %s 401' % path).encode() in b''.join(got), 20,
                               'the request\'s line once the log is read again')
        finally:
            draining.set()  # read while the API stops: a pipe without a reader kills it
            lab.stop()
            stop.set()
            if t is not None:
                t.join(5)
            for fd in (reader, filler):
                if fd is not None:
                    os.close(fd)


class ApiStopTest(unittest.TestCase):
    def test_sigterm_lets_the_request_in_hand_finish(self):
        pool = Pool(2)
        try:
            api = pool.api
            out = {}

            def slow():
                out['a'] = call(pool.port, 'POST', '/api/v1/sessions',
                                body={'username': 'stop-%s@%s' % (uuid.uuid4().hex[:8], DOMAIN),
                                      'password': 'wrong-password-2'})

            hashing = Hashing(api.proc.pid)
            t = threading.Thread(target=slow)
            t.start()
            hashing.wait()  # the request is in a worker's hands
            api.proc.send_signal(signal.SIGTERM)
            status = api.proc.wait(120)
            t.join(120)
            self.assertEqual(status, 0)
            self.assertEqual(out['a'].status, 401, out['a'])
            self.assertEqual(api.sanitizer_report(), '')
        finally:
            pool.lab.stop()

    def test_sigterm_ends_waiting_workers_at_once(self):
        # workers waiting for a request (kept connections idle in their poll) take SIGTERM
        # there and exit; a worker that never let it in would be killed after the 30 s grace
        pool = Pool(2)
        try:
            api = pool.api
            for _ in range(4):
                self.assertEqual(call(pool.port, 'GET', '/api/v1/healthz').status, 200)
            t0 = time.monotonic()
            api.proc.send_signal(signal.SIGTERM)
            status = api.proc.wait(120)
            self.assertEqual(status, 0)
            self.assertLess(time.monotonic() - t0, 15, 'idle workers waited for the grace')
        finally:
            pool.lab.stop()


if __name__ == '__main__':
    unittest.main()
