"""test_policyd_redis - the policy daemon's Redis counters against a real redis-server.

The counter stores are driven through tests/tools/pd-counters-driver (built by make check),
which runs them on a libevent loop exactly as mailwarden-policyd does, with a fixed clock
given per request:
  - the Lua script computes what pd_gcra() computes, on thousands of random batches and on
    hand-picked boundaries (the memory store and the Redis store fed the same requests);
  - a batch is atomic: one denied limit charges nothing; keys expire when they empty;
  - two driver processes (two policyd hosts) on one Redis share one limit, reset clears it
    for both, a SCRIPT FLUSH (NOSCRIPT) is survived without degrading;
  - Redis stopped (SIGSTOP: hangs) and killed (SIGKILL): batches are answered from memory
    marked degraded, none waits longer than the timeout, "degraded" is logged once, and
    after Redis is back the store recovers and logs "recovered";
  - through the real daemon: two mailwarden-policyd on one Redis, one behind a real Postfix
    (SMTP AUTH submissions), the other asked over its policy socket as a second host's
    Postfix would, enforce one combined limit; Redis killed keeps mail flowing (degraded
    logged once per daemon), and after Redis returns both recover and share the limit again.
"""

import os
import queue
import random
import smtplib
import socket
import subprocess
import threading
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod

HOUR = 3600 * 1000000
DAY = 24 * HOUR
T0 = 1700000000 * 1000000		# the fixed clock the tests start from (microseconds)
TIMEOUT_MS = 300
SLACK_MS = 250			# scheduling slack under ASan on a busy 2-core machine


class Driver:
    """Driver - one pd-counters-driver process (one "policyd host"); cmd() sends a line and
	returns the answer line; stderr (the store's log) goes to a file."""

    def __init__(self, builddir, log_path):
        path = os.path.join(builddir, 'tests', 'tools', 'pd-counters-driver')
        if not os.access(path, os.X_OK):
            raise lab_mod.LabError('%s missing: run make check in %s' % (path, builddir))
        self.log_path = log_path
        self.log = open(log_path, 'w')
        self.p = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=self.log, text=True, bufsize=1)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip('\n'))
        self.lines.put(None)

    def cmd(self, line, timeout=20):
        """cmd - send LINE, return the answer; AssertionError when none comes in TIMEOUT s."""
        self.p.stdin.write(line + '\n')
        self.p.stdin.flush()
        try:
            out = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError('driver gave no answer to %r in %ss' % (line, timeout))
        if out is None:
            raise AssertionError('driver exited on %r:\n%s' % (line, self.stderr()))
        if out.startswith('error'):
            raise AssertionError('driver: %s (for %r)' % (out, line))
        return out

    def open_redis(self, name, url, timeout_ms=TIMEOUT_MS):
        return self.cmd('open %s redis %s %d' % (name, url, timeout_ms))

    def apply(self, name, now, limits, commit=True):
        """apply - LIMITS: [(key, window_us, limit, cost)]; returns a dict with allowed,
		degraded, elapsed_ms and res (a list of (allowed, usage, retry_us, reset_us))."""
        parts = ['apply', name, 'commit' if commit else 'check', str(now), str(len(limits))]
        for key, w, n, c in limits:
            parts += [key, str(w), str(n), str(c)]
        f = self.cmd(' '.join(parts)).split()
        if f[0] != 'res':
            raise AssertionError('bad answer %r' % f)
        return {'allowed': f[1] == '1', 'degraded': f[2] == '1',
                'elapsed_ms': int(f[3]) / 1000.0,
                'res': [tuple(int(x) for x in r.split(',')) for r in f[4:]]}

    def group(self, name, batches):
        """group - BATCHES: [(now, limits, commit)], all handed to the store before any
        answer is awaited; returns one dict (as apply) per batch."""
        parts = ['group', name]
        for now, limits, commit in batches:
            parts += [';', 'commit' if commit else 'check', str(now), str(len(limits))]
            for key, w, n, c in limits:
                parts += [key, str(w), str(n), str(c)]
        line = self.cmd(' '.join(parts))
        if not line.startswith('group '):
            raise AssertionError('bad answer %r' % line)
        out = []
        for part in line[len('group '):].split(' | '):
            f = part.split()
            out.append({'allowed': f[0] == '1', 'degraded': f[1] == '1',
                        'res': [tuple(int(x) for x in r.split(',')) for r in f[3:]]})
        return out

    def reset(self, name, prefix, now):
        f = self.cmd('reset %s %s %d' % (name, prefix or '-', now)).split()
        return {'count': int(f[1]), 'degraded': f[2] == '1', 'allowed': f[3] == '1',
                'elapsed_ms': int(f[4]) / 1000.0}

    def stderr(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def close(self):
        """close - end the driver; it must exit 0 with no sanitizer report."""
        self.p.stdin.close()
        try:
            rc = self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise AssertionError('driver did not exit')
        self.log.close()
        text = self.stderr()
        if rc != 0 or 'AddressSanitizer' in text or 'runtime error:' in text:
            raise AssertionError('driver exit %d:\n%s' % (rc, text))


class RedisDriverCase(labcase.LabCase):
    """A lab Redis and counter drivers (closed after each test) for the cases below."""

    @classmethod
    def start_lab(cls):
        cls.redis = cls.lab.redis()
        cls.builddir = cls.lab.builddir

    def setUp(self):
        self.drivers = []

    def tearDown(self):
        for d in self.drivers:
            d.close()

    def driver(self, tag):
        d = Driver(self.builddir, os.path.join(self.lab.root, 'driver-%s-%s.log'
                               % (self._testMethodName, tag)))
        self.drivers.append(d)
        return d

    def url(self, redis, prefix):
        return '%s?pool=2&prefix=%s' % (redis.url, prefix)


class PolicydRedisTest(RedisDriverCase):
    """Redis counters: arithmetic, atomicity, sharing, outages."""

    # -- arithmetic ------------------------------------------------------------------

    def test_script_matches_pd_gcra(self):
        d = self.driver('a')
        d.cmd('open mem memory')
        d.open_redis('red', self.url(self.redis, 'mw:t1:'))
        # (window, limit, largest cost): divisible and non-divisible windows, T = 1
        # (window < limit), a 30-day window, a size limit in bytes
        shapes = [(1000000, 3, 5), (60 * 1000000, 10, 12), (HOUR, 100, 3), (DAY, 7, 9),
                  (1000000, 1, 2), (5, 10, 4), (30 * DAY, 1000000, 5000),
                  (HOUR, 50000000, 30000000), (1000, 1000, 1001)]
        keys = [('k%d:%d' % (i, j), w, n, cmax)
                for i, (w, n, cmax) in enumerate(shapes) for j in range(3)]
        rng = random.Random(4)
        now = T0
        seen = {'allowed': 0, 'denied': 0, 'mixed': 0}
        for step in range(2500):
            # the fixed clock runs faster than real time, so Redis's own expiry (PX, real
            # time) never drops a key the fixed clock still counts
            now += rng.choice([0, 0, 1, 999, 1000, 1001, rng.randrange(1, 2000000),
                               rng.randrange(1, 20000000)])
            batch = rng.sample(keys, rng.randint(1, 4))
            limits = [(k, w, n, rng.choice([0, 1, 1, 1, 2, rng.randint(0, cmax)]))
                      for k, w, n, cmax in batch]
            commit = rng.random() < 0.75
            a = d.apply('mem', now, limits, commit)
            b = d.apply('red', now, limits, commit)
            self.assertFalse(b['degraded'], 'step %d: Redis store degraded' % step)
            self.assertEqual((a['allowed'], a['res']), (b['allowed'], b['res']),
                             'step %d: now=%d commit=%s %r' % (step, now, commit, limits))
            if a['allowed']:
                seen['allowed'] += 1
            else:
                seen['denied'] += 1
                if any(r[0] for r in a['res']):
                    seen['mixed'] += 1
        # the sequence exercised every branch
        self.assertGreater(seen['allowed'], 300, seen)
        self.assertGreater(seen['denied'], 300, seen)
        self.assertGreater(seen['mixed'], 50, seen)

    def test_grouped_batches_match_sequential(self):
        """Batches handed over together go to Redis as one script call (the daemon does this
        with requests that arrive together): each must come out exactly as if it had been
        applied alone, in order, and a batch the script refuses must not spoil the others."""
        d = self.driver('a')
        d.cmd('open mem memory')
        d.open_redis('red', self.url(self.redis, 'mw:tg:'))
        calls0 = self.evalsha_calls()
        keys = [('g%d' % i, w, n) for i, (w, n) in
                enumerate([(1000000, 3), (HOUR, 5), (DAY, 2), (60 * 1000000, 7)])]
        rng = random.Random(11)
        now, nbatches = T0, 0
        for step in range(300):
            now += rng.choice([0, 1, 1000, rng.randrange(1, 3000000)])
            group = []
            for _ in range(rng.randint(2, 8)):
                # the same keys recur within a group: later batches must see earlier charges
                limits = [(k, w, n, rng.choice([0, 1, 1, 2]))
                          for k, w, n in rng.sample(keys, rng.randint(1, 3))]
                group.append((now + rng.randint(0, 5), limits, rng.random() < 0.7))
            want = [d.apply('mem', t, limits, commit) for t, limits, commit in group]
            got = d.group('red', group)
            nbatches += len(group)
            for i, (a, b) in enumerate(zip(want, got)):
                self.assertFalse(b['degraded'], 'step %d batch %d degraded' % (step, i))
                self.assertEqual((a['allowed'], a['res']), (b['allowed'], b['res']),
                                 'step %d batch %d: %r' % (step, i, group[i]))
        # fewer script calls than batches: the groups really went out together
        calls = self.evalsha_calls() - calls0
        self.assertLess(calls, nbatches / 2, (calls, nbatches))
        # a refused batch in the middle of a group: only it is answered from memory
        self.redis.cli('SET', 'mw:tg:junk', 'not a number')
        t = now + 10 * DAY
        got = d.group('red', [(t, [('h1', HOUR, 2, 1)], True),
                              (t, [('h2', HOUR, 2, 1), ('junk', HOUR, 2, 1)], True),
                              (t, [('h1', HOUR, 2, 1)], True),
                              (t, [('h1', HOUR, 2, 1)], True)])
        self.assertEqual([(g['allowed'], g['degraded']) for g in got],
                         [(True, False), (True, True), (True, False), (False, False)])
        self.assertEqual(self.redis.cli('EXISTS', 'mw:tg:h2').strip(), '0')
        self.assertIn('not a counter: mw:tg:junk', d.stderr())
        # a key of another type (GET fails with WRONGTYPE): the same, only its batch
        self.redis.cli('RPUSH', 'mw:tg:list', 'x')
        got = d.group('red', [(t + 1, [('h3', HOUR, 2, 1)], True),
                              (t + 1, [('list', HOUR, 2, 1)], True),
                              (t + 1, [('h3', HOUR, 2, 1)], True)])
        self.assertEqual([(g['allowed'], g['degraded']) for g in got],
                         [(True, False), (True, True), (True, False)])
        self.assertEqual(got[2]['res'][0][1], 2)
        self.assertIn('WRONGTYPE', d.stderr())
        self.assertEqual(self.redis.cli('TYPE', 'mw:tg:list').strip(), 'list')

    def evalsha_calls(self):
        """evalsha_calls - EVALSHA calls Redis has counted so far."""
        for line in self.redis.cli('INFO', 'commandstats').splitlines():
            if line.startswith('cmdstat_evalsha:'):
                return int(line.split('calls=')[1].split(',')[0])
        return 0

    def test_boundaries(self):
        d = self.driver('a')
        d.cmd('open mem memory')
        d.open_redis('red', self.url(self.redis, 'mw:t1b:'))
        cases = [
            # exactly at the window: 10 per 10 s, 10 at once, the 11th waits one interval
            [(T0, 'b:1', 10000000, 10, 10), (T0, 'b:1', 10000000, 10, 1),
             (T0 + 999999, 'b:1', 10000000, 10, 1), (T0 + 1000000, 'b:1', 10000000, 10, 1)],
            # cost over the limit is never allowed; cost 0 only reads
            [(T0, 'b:2', HOUR, 5, 6), (T0, 'b:2', HOUR, 5, 0), (T0, 'b:2', HOUR, 5, 5),
             (T0, 'b:2', HOUR, 5, 0)],
            # a key whose TAT is in the past is empty again
            [(T0, 'b:3', 1000000, 2, 2), (T0 + 1000000, 'b:3', 1000000, 2, 2),
             (T0 + 5000000, 'b:3', 1000000, 2, 1)],
        ]
        for case in cases:
            for now, key, w, n, c in case:
                a = d.apply('mem', now, [(key, w, n, c)])
                b = d.apply('red', now, [(key, w, n, c)])
                self.assertEqual(a, dict(b, elapsed_ms=a['elapsed_ms']), (now, key, w, n, c))
        # hand-checked values of the first case: 10 allowed at once, then 1 per second
        r = d.apply('red', T0 + 1000000, [('b:1', 10000000, 10, 1)], commit=False)
        self.assertEqual(r['res'][0][:3], (0, 10, 1000000))

    def test_batch_is_atomic_and_keys_expire(self):
        d = self.driver('a')
        d.open_redis('red', self.url(self.redis, 'mw:t1c:'))
        full = ('atom:full', HOUR, 1, 1)
        other = ('atom:other', HOUR, 100, 1)
        self.assertTrue(d.apply('red', T0, [full])['allowed'])
        r = d.apply('red', T0 + 1, [other, full])
        self.assertFalse(r['allowed'])
        self.assertEqual(r['res'][0][0], 1)	# this limit alone would have passed...
        self.assertEqual(self.redis.cli('EXISTS', 'mw:t1c:atom:other').strip(), '0')
        r = d.apply('red', T0 + 2, [('atom:other', HOUR, 100, 0)], commit=False)
        self.assertEqual(r['res'][0][1], 0)	# ...but nothing was charged
        # a check (commit false) never writes
        d.apply('red', T0 + 3, [other], commit=False)
        self.assertEqual(self.redis.cli('EXISTS', 'mw:t1c:atom:other').strip(), '0')
        # a charged key expires when it would be empty again (1 of 100 per hour = 36 s),
        # plus one grace second for clock skew between hosts
        r = d.apply('red', T0 + 4, [other])
        self.assertTrue(r['allowed'])
        pttl = int(self.redis.cli('PTTL', 'mw:t1c:atom:other'))
        self.assertEqual(r['res'][0][3], 36000000)
        self.assertTrue(36000 < pttl <= 37000, pttl)
        tat = int(self.redis.cli('GET', 'mw:t1c:atom:other'))
        self.assertEqual(tat, T0 + 4 + 36000000)
        # a key that is not a counter: the script refuses, the batch comes from memory
        self.redis.cli('SET', 'mw:t1c:atom:junk', 'not a number')
        r = d.apply('red', T0 + 5, [other, ('atom:junk', HOUR, 100, 1)])
        self.assertEqual((r['allowed'], r['degraded']), (True, True))
        self.assertEqual(self.redis.cli('GET', 'mw:t1c:atom:other').strip(), str(tat))
        r = d.apply('red', T0 + 6, [other])
        self.assertEqual((r['allowed'], r['degraded'], r['res'][0][1]), (True, False, 2))
        log = d.stderr()
        self.assertIn('event=degraded component=policyd_counters reason=script_error', log)
        self.assertIn('not a counter: mw:t1c:atom:junk', log)
        self.assertEqual(log.count('event=recovered component=policyd_counters '), 1, log)

    # -- two hosts -------------------------------------------------------------------

    def test_two_hosts_share_one_limit(self):
        a, b = self.driver('host-a'), self.driver('host-b')
        url = self.url(self.redis, 'mw:t2:')
        a.open_redis('r', url)
        b.open_redis('r', url)
        key = 'sasl_username:john@example.org:messages:3600:10'
        allowed = {'a': 0, 'b': 0}
        for i in range(16):
            host, d = (('a', a), ('b', b))[i % 2]
            r = d.apply('r', T0 + i, [(key, HOUR, 10, 1)])
            self.assertFalse(r['degraded'])
            allowed[host] += r['allowed']
        self.assertEqual(allowed, {'a': 5, 'b': 5})	# 10 in all, not 10 each
        r = b.apply('r', T0 + 20, [(key, HOUR, 10, 0)], commit=False)
        self.assertEqual(r['res'][0][1], 10)
        # a reset on one host clears the limit for both
        r = a.reset('r', 'sasl_username:john@', T0 + 21)
        self.assertEqual((r['count'], r['degraded'], r['allowed']), (1, False, True))
        self.assertEqual(self.redis.cli('KEYS', 'mw:t2:*').strip(), '')
        self.assertTrue(b.apply('r', T0 + 22, [(key, HOUR, 10, 1)])['allowed'])
        # a reset matches the prefix literally (glob characters are not patterns)
        self.assertEqual(a.reset('r', 'sasl_username:*', T0 + 23)['count'], 0)
        self.assertEqual(a.reset('r', 'sasl_', T0 + 23)['count'], 1)
        # scripts flushed (as after a Redis restart): NOSCRIPT is answered by reloading
        self.redis.cli('SCRIPT', 'FLUSH')
        r = a.apply('r', T0 + 30, [(key, HOUR, 10, 1)])
        self.assertEqual((r['allowed'], r['degraded']), (True, False))
        r = b.apply('r', T0 + 31, [(key, HOUR, 10, 1)])
        self.assertEqual((r['allowed'], r['degraded'], r['res'][0][1]), (True, False, 2))
        for d in (a, b):
            self.assertNotIn('degraded', d.stderr())

    def test_many_keys_reset_in_batches(self):
        d = self.driver('a')
        d.open_redis('r', self.url(self.redis, 'mw:t2b:'))
        for i in range(1200):
            d.apply('r', T0, [('client_address:10.0.%d.0/24' % i, HOUR, 100, 1)])
        d.apply('r', T0, [('sender:x@example.org', HOUR, 100, 1)])
        r = d.reset('r', 'client_address:', T0 + 1)
        self.assertEqual((r['count'], r['degraded']), (1200, False))
        self.assertEqual(self.redis.cli('KEYS', 'mw:t2b:*').split(),
                         ['mw:t2b:sender:x@example.org'])

    # -- outages ---------------------------------------------------------------------

    def test_redis_down_degrades_and_recovers(self):
        redis = lab_mod.Redis(self.lab.root + '/outage')
        os.makedirs(redis.root, exist_ok=True)
        redis.start()
        self.lab.services.append(redis)
        d = self.driver('a')
        d.open_redis('r', self.url(redis, 'mw:t3:'))
        key = ('sasl_username:amy@example.org', HOUR, 3, 1)
        r = d.apply('r', T0, [key])
        self.assertEqual((r['allowed'], r['degraded']), (True, False))

        # 1. Redis hangs: the first call waits for the timeout, no longer
        redis.pause(True)
        try:
            r = d.apply('r', T0 + 1, [key])
            self.assertTrue(r['degraded'])
            self.assertTrue(r['allowed'])
            self.assertGreaterEqual(r['elapsed_ms'], TIMEOUT_MS - 5, r)
            self.assertLess(r['elapsed_ms'], TIMEOUT_MS + SLACK_MS, r)
            # every connection was dropped: later calls are answered from memory at once,
            # and the memory counters enforce the limit meanwhile (they saw the call above
            # and these: 3 per hour lets two more through)
            results = [d.apply('r', T0 + 2 + i, [key]) for i in range(4)]
            for r in results:
                self.assertTrue(r['degraded'])
                self.assertLess(r['elapsed_ms'], 50, r)
            self.assertEqual([r['allowed'] for r in results], [True, True, False, False])
        finally:
            redis.pause(False)
        self.assertEqual(d.stderr().count('event=degraded component=policyd_counters '), 1, d.stderr())
        self.wait_recovered(d, key)
        self.assertEqual(d.stderr().count('event=recovered component=policyd_counters '), 1, d.stderr())

        # 2. Redis dies: answered from memory at once; back (empty) on the same port
        redis.kill()
        r = d.apply('r', T0 + 20, [('other', HOUR, 3, 1)])
        self.assertEqual((r['allowed'], r['degraded']), (True, True))
        self.assertLess(r['elapsed_ms'], TIMEOUT_MS + SLACK_MS, r)
        r = d.reset('r', 'other', T0 + 21)
        self.assertEqual((r['count'], r['degraded'], r['allowed']), (1, True, False))
        time.sleep(0.5)
        redis.start()
        self.wait_recovered(d, key)
        log = d.stderr()
        self.assertEqual(log.count('event=degraded component=policyd_counters '), 2, log)
        self.assertEqual(log.count('event=recovered component=policyd_counters '), 2, log)
        redis.stop()

    def wait_recovered(self, d, key, limit_s=15):
        """wait_recovered - poll (with the driver's loop running) until a check is answered
		by Redis again; backoff is at most 10 s."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            r = d.apply('r', T0 + 10, [(key[0], key[1], key[2], 0)], commit=False)
            if not r['degraded']:
                return
            d.cmd('sleep 200')
        self.fail('store did not recover within %ds:\n%s' % (limit_s, d.stderr()))


class PolicydLeaseTest(RedisDriverCase):
    """Leases (pd-counters-lease.c): slices of a key's budget taken from Redis and spent from
	memory. The bound (docs/admin-guide.md): across all hosts a key admits at most one unit
	more than one exact GCRA counter would in the same period."""

    def open_lease(self, d, url, lease_ms=5000, pct=5):
        return d.cmd('open l lease %s %d %d %d' % (url, TIMEOUT_MS, lease_ms, pct))

    def usage(self, d, key, w, n, now):
        """usage - the key's usage as the exact Redis path reads it (leased units count)."""
        return d.apply('x', now, [(key, w, n, 0)], commit=False)['res'][0][1]

    def two_hosts(self, prefix, n, w, per_host, step, lease_ms=5000):
        """two_hosts - two hosts (two driver processes, each its own lease store) spend one
        limit N per W at once, each asking PER_HOST times with its clock advancing STEP us
        per request; returns (accepted per host, exact, unspent, script calls)."""
        url = self.url(self.redis, prefix)
        key = 'sasl_username:both@example.org:messages:%d:%d' % (w // 1000000, n)
        hosts = [self.driver('%s-a' % prefix), self.driver('%s-b' % prefix)]
        for d in hosts:
            self.open_lease(d, url, lease_ms=lease_ms)
        calls0 = self.evalsha_calls()
        accepted = [0, 0]
        errors = []
        admitted = []

        def run(i):
            try:
                for j in range(per_host):
                    # the two clocks advance together: both hosts send during the same span
                    now = T0 + j * step
                    r = hosts[i].apply('l', now, [(key, w, n, 1)])
                    if r['degraded']:
                        raise AssertionError('degraded at %d' % j)
                    accepted[i] += r['allowed']
                    if r['allowed']:
                        admitted.append(now)
                    if j % 50 == 49:
                        hosts[i].cmd('sweep l %d' % now)
            except Exception as e:  # reported by the main thread
                errors.append(e)
        threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertEqual(errors, [])
        t_us = -(-w // n)
        exact = n + (per_host * step) // t_us   # what one exact counter admits in the span
        left = sum(int(d.cmd('units l').split()[1]) for d in hosts)
        total = sum(accepted)
        # the bound holds for every period, not only the whole run: over every pair of
        # admissions, units admitted minus what an exact counter allows (N + X/T)
        admitted.sort()
        worst = max((j - i + 1) - (n + (admitted[j] - admitted[i]) / t_us)
                    for i in range(len(admitted)) for j in range(i, len(admitted)))
        print('\nworst period: %+.2f units over an exact counter\'s envelope' % worst)
        self.assertLessEqual(worst, 1.0)
        print('\nleases, 2 hosts, %d per %d s, %d asked over %.1f s of clock: accepted %d '
              '(a %d, b %d), exact counter %d, bound %d, error %+d (%+.2f %% of N), unspent '
              '%d, script calls %d' % (n, w // 1000000, 2 * per_host, per_host * step / 1e6,
                                       total, accepted[0], accepted[1], exact, exact + 1,
                                       total - exact, 100.0 * (total - exact) / n, left,
                                       self.evalsha_calls() - calls0))
        self.last = (hosts, key, T0 + per_host * step)
        return accepted, exact, left, self.evalsha_calls() - calls0

    def test_two_hosts_at_once_within_bound(self):
        """1000/h, 800 asked by each host at once: the accepted total stays within the bound
        (one unit over an exact counter), with far fewer script calls than requests. Units a
        host still holds when its traffic stops are not lost: the other host was refused
        them only until the lease is given back (at most lease life + sweep later), and then
        spends them, so the total reaches the limit within 1 %."""
        accepted, exact, left, calls = self.two_hosts('mw:l1:', 1000, HOUR, 800, 2000)
        total = sum(accepted)
        self.assertLessEqual(total, exact + 1)
        self.assertGreaterEqual(total + left, exact - 1)
        # held back meanwhile: at most one slice per host (counters_lease_max 5 % of N)
        self.assertLessEqual(left, 2 * 50, accepted)
        hosts, key, t_end = self.last
        later = t_end + 5000 * 1000 + 1000  # past any lease's life (5 s here)
        for d in hosts:
            d.cmd('sweep l %d' % later)
        self.assertEqual(sum(int(d.cmd('units l').split()[1]) for d in hosts), 0)
        more = sum(hosts[1].apply('l', later, [(key, HOUR, 1000, 1)])['allowed']
                   for _ in range(left + 10))
        print('after the leases were given back: %d more admitted (%d were held)'
              % (more, left))
        self.assertGreaterEqual(more, left)
        self.assertGreaterEqual(total + more, 1000 * 0.99)
        # both hosts were served from the shared budget (how it splits is up to the
        # scheduler: on a loaded machine one host runs ahead)
        self.assertGreater(min(accepted), 0, accepted)
        self.assertLess(calls, 1600 / 10, calls)

    def test_two_hosts_refilling_within_bound(self):
        """100 per 10 s (one unit every 100 ms, so a lease lives 100 ms), 3000 asked by each
        host over 3 s of clock: refills, expiries, returns and sweeps all happen, and the
        total still stays within one unit of an exact counter's."""
        accepted, exact, left, calls = self.two_hosts('mw:l1r:', 100, 10 * 1000000, 3000,
                                                      1000)
        total = sum(accepted)
        self.assertLessEqual(total, exact + 1)
        self.assertGreaterEqual(total, exact - 10)

    def evalsha_calls(self):
        for line in self.redis.cli('INFO', 'commandstats').splitlines():
            if line.startswith('cmdstat_evalsha:'):
                return int(line.split('calls=')[1].split(',')[0])
        return 0

    def test_concurrent_requests_of_one_host(self):
        """Batches handed over together (requests of one host in flight at once, as the
        daemon's connections make them) each need a lease for the same key: the grants that
        race are merged and the limit still holds exactly."""
        d = self.driver('a')
        url = self.url(self.redis, 'mw:l5:')
        self.open_lease(d, url, pct=20)
        d.open_redis('x', url)
        key = 'sasl_username:dee@example.org:messages:3600:20'
        got = []
        for k in range(3):
            got += d.group('l', [(T0 + k * 100 + i, [(key, HOUR, 20, 1)], True)
                                 for i in range(16)])
        self.assertEqual(sum(g['allowed'] for g in got), 20, got)
        self.assertFalse(any(g['degraded'] for g in got))
        self.assertEqual(d.cmd('units l'), 'units 0')
        self.assertEqual(self.usage(d, key, HOUR, 20, T0 + 1000), 20)

    def test_lease_expires_and_budget_comes_back(self):
        d = self.driver('a')
        url = self.url(self.redis, 'mw:l2:')
        self.open_lease(d, url, lease_ms=1000, pct=20)
        d.open_redis('x', url)
        key = 'sasl_username:amy@example.org:messages:3600:100'
        # the first request leases 20 units (20 % of 100; a quarter of 100 is more)
        r = d.apply('l', T0, [(key, HOUR, 100, 1)])
        self.assertEqual((r['allowed'], r['degraded']), (True, False))
        self.assertEqual(d.cmd('units l'), 'units 19')
        self.assertEqual(self.usage(d, key, HOUR, 100, T0), 20)
        # spent from memory: Redis does not move
        for i in range(4):
            self.assertTrue(d.apply('l', T0 + 1 + i, [(key, HOUR, 100, 1)])['allowed'])
        self.assertEqual(d.cmd('units l'), 'units 15')
        self.assertEqual(self.usage(d, key, HOUR, 100, T0 + 10), 20)
        # not due yet: nothing goes back
        self.assertEqual(d.cmd('sweep l %d' % (T0 + 500000)), 'swept 0')
        # the lease expires: its 15 unspent units go back, Redis counts the 5 spent
        self.assertEqual(d.cmd('sweep l %d' % (T0 + 1000001)), 'swept 1')
        self.assertEqual(d.cmd('units l'), 'units 0')
        self.assertEqual(self.usage(d, key, HOUR, 100, T0 + 1000002), 5)
        # an expired lease is never spent: the next request leases afresh
        r = d.apply('l', T0 + 1000003, [(key, HOUR, 100, 1)])
        self.assertTrue(r['allowed'])
        self.assertEqual(self.usage(d, key, HOUR, 100, T0 + 1000004), 25)
        # a lease that expired without a sweep is given back by the next call for its key
        r = d.apply('l', T0 + 2500000, [(key, HOUR, 100, 1)])
        self.assertTrue(r['allowed'])
        self.assertEqual(self.usage(d, key, HOUR, 100, T0 + 2500001), 26)

    def test_slices_shrink_near_the_limit(self):
        d = self.driver('a')
        url = self.url(self.redis, 'mw:l3:')
        self.open_lease(d, url, lease_ms=5000, pct=20)
        d.open_redis('x', url)
        key = 'sasl_username:bo@example.org:messages:3600:100'
        # another host (exact path) has used 92: 8 left, a quarter of it is 2
        self.assertTrue(d.apply('x', T0, [(key, HOUR, 100, 92)])['allowed'])
        self.assertTrue(d.apply('l', T0 + 1, [(key, HOUR, 100, 1)])['allowed'])
        self.assertEqual(d.cmd('units l'), 'units 1')
        self.assertEqual(self.usage(d, key, HOUR, 100, T0 + 2), 94)
        got = [d.apply('l', T0 + 3 + i, [(key, HOUR, 100, 1)])['allowed'] for i in range(10)]
        self.assertEqual(got, [True] * 7 + [False] * 3)
        self.assertEqual(self.usage(d, key, HOUR, 100, T0 + 20), 100)
        # the refusal carries the exact counter's retry time (one interval of 36 s)
        r = d.apply('l', T0 + 21, [(key, HOUR, 100, 1)])
        self.assertFalse(r['allowed'])
        self.assertTrue(0 < r['res'][0][2] <= 36000000, r)
        # a batch is atomic: a second limit with room is not charged when the first refuses
        # (refused here without asking Redis: it said no for this key moments ago)
        other = 'sasl_username:bo@example.org:messages:86400:500'
        calls = self.evalsha_calls()
        r = d.apply('l', T0 + 22, [(other, DAY, 500, 1), (key, HOUR, 100, 1)])
        self.assertFalse(r['allowed'])
        self.assertEqual([x[0] for x in r['res']], [1, 0])	# the refusal names the full one
        self.assertTrue(0 < r['res'][1][2] <= 36000000, r)
        self.assertEqual(self.evalsha_calls(), calls)
        self.assertEqual(self.usage(d, other, DAY, 500, T0 + 23), 0)
        # once the refusal is older than the key's interval, Redis is asked again: the key
        # has refilled one unit (36 s), the other limit gets a lease of 100 (20 %)
        r = d.apply('l', T0 + 36000000, [(other, DAY, 500, 1), (key, HOUR, 100, 1)])
        self.assertTrue(r['allowed'])
        self.assertEqual(self.usage(d, other, DAY, 500, T0 + 36000001), 100)
        self.assertEqual(d.cmd('units l'), 'units 99')
        r = d.apply('l', T0 + 36000002, [(other, DAY, 500, 1), (key, HOUR, 100, 1)])
        self.assertFalse(r['allowed'])
        self.assertEqual(d.cmd('units l'), 'units 99')	# leased units a refusal did not use
        r = d.apply('l', T0 + 36000003, [(other, DAY, 500, 1)])
        self.assertTrue(r['allowed'])
        self.assertEqual(d.cmd('units l'), 'units 98')

    def test_redis_killed_mid_run(self):
        redis = lab_mod.Redis(self.lab.root + '/lease-outage')
        os.makedirs(redis.root, exist_ok=True)
        redis.start()
        self.lab.services.append(redis)
        d = self.driver('a')
        d.cmd('open l lease %s %d 60000 5' % (self.url(redis, 'mw:l4:'), TIMEOUT_MS))
        key = ('sasl_username:cy@example.org:messages:3600:1000', HOUR, 1000, 1)
        r = d.apply('l', T0, [key])
        self.assertEqual((r['allowed'], r['degraded']), (True, False))
        self.assertEqual(d.cmd('units l'), 'units 49')	# 5 % of 1000
        redis.kill()
        # units already leased were charged: they are still spent, without Redis
        for i in range(49):
            r = d.apply('l', T0 + 1 + i, [key])
            self.assertEqual((r['allowed'], r['degraded']), (True, False), i)
        # the next needs a lease: the Redis store's exact path answers from memory, degraded,
        # within the timeout (the documented behaviour of counters = redis:// when Redis is
        # down), and the memory fallback enforces the limit meanwhile
        r = d.apply('l', T0 + 60, [key])
        self.assertEqual((r['allowed'], r['degraded']), (True, True))
        self.assertLess(r['elapsed_ms'], TIMEOUT_MS + SLACK_MS, r)
        r = d.apply('l', T0 + 61, [(key[0], HOUR, 1000, 1000)])
        self.assertEqual((r['allowed'], r['degraded']), (False, True))
        self.assertEqual(d.stderr().count('event=degraded component=policyd_counters '), 1, d.stderr())
        # Redis returns (empty): leases resume without reopening the store
        time.sleep(0.3)
        redis.start()
        deadline = time.monotonic() + 20
        while True:
            r = d.apply('l', T0 + 100, [key])
            if not r['degraded']:
                break
            self.assertLess(time.monotonic(), deadline, d.stderr())
            d.cmd('sleep 200')
        self.assertTrue(r['allowed'])
        self.assertEqual(d.cmd('units l'), 'units 49')
        self.assertEqual(redis.cli('EXISTS', 'mw:l4:' + key[0]).strip(), '1')
        self.assertIn('event=recovered component=policyd_counters ', d.stderr())
        redis.stop()


def policy_request(port, attrs, timeout=5):
    """policy_request - one policy request (dict) to the daemon on PORT; returns (action,
    seconds taken)."""
    data = ''.join('%s=%s\n' % kv for kv in attrs.items()) + '\n'
    t0 = time.monotonic()
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        sock.sendall(data.encode())
        buf = b''
        while not buf.endswith(b'\n\n'):
            chunk = sock.recv(4096)
            if not chunk:
                raise AssertionError('policyd on port %d closed the connection' % port)
            buf += chunk
    reply = buf.decode().strip()
    if not reply.startswith('action='):
        raise AssertionError('bad policy reply %r' % reply)
    return reply[len('action='):], time.monotonic() - t0


def message(user, n, stage, rcpt_count=1):
    """message - the policy request Postfix sends for message N of USER at STAGE."""
    return {
        'request': 'smtpd_access_policy', 'protocol_state': stage, 'protocol_name': 'ESMTP',
        'client_address': '127.0.0.1', 'client_name': 'localhost',
        'reverse_client_name': 'localhost', 'helo_name': 'client.example.org',
        'sender': user, 'recipient': 'dest%d@example.net' % n,
        'recipient_count': str(rcpt_count if stage == 'END-OF-MESSAGE' else 0),
        'queue_id': '', 'instance': '%x.%s.%d' % (n, user.split('@')[0], n),
        'size': '1200', 'sasl_method': 'PLAIN', 'sasl_username': user, 'sasl_sender': '',
        'ccert_subject': '', 'ccert_issuer': '', 'ccert_fingerprint': '',
        'encryption_protocol': '', 'encryption_cipher': '', 'encryption_keysize': '0',
        'etrn_domain': '', 'stress': '', 'server_address': '127.0.0.1', 'server_port': '25',
        'policy_context': '',
    }


def send_message(port, user, n):
    """send_message - RCPT then END-OF-MESSAGE as Postfix would ask the daemon on PORT;
    returns (rcpt action, end-of-message action or None when RCPT was not accepted, slowest
    answer in s)."""
    rcpt, t1 = policy_request(port, message(user, n, 'RCPT'))
    if rcpt != 'DUNNO':
        return rcpt, None, t1
    eom, t2 = policy_request(port, message(user, n, 'END-OF-MESSAGE'))
    return rcpt, eom, max(t1, t2)


def submit(port, user, password, n):
    """submit - one message from USER to a remote address through Postfix's submission with
    SMTP AUTH; returns (code, text) of the first refusal or of DATA, and the seconds taken."""
    t0 = time.monotonic()
    with smtplib.SMTP('127.0.0.1', port, timeout=30) as s:
        s.ehlo('client.example.org')
        s.login(user, password)
        code, text = s.mail(user)
        if code == 250:
            code, text = s.rcpt('dest%d@remote.example' % n)
        if code == 250:
            code, text = s.data(('From: <%s>\r\nTo: <dest%d@remote.example>\r\n'
                                 'Subject: shared limit %d\r\n\r\nbody\r\n'
                                 % (user, n, n)).encode())
    return code, text.decode(errors='replace'), time.monotonic() - t0


class PolicydSharedRedisTest(labcase.LabCase):
    """Two mailwarden-policyd instances on one Redis: policyd-a behind a real Postfix
	(check_policy_service), policyd-b asked through its policy socket with the requests a
	second host's Postfix would send."""

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.redis = cls.lab.redis()
        cls.daemons = [cls.lab.policyd(cls.store, name=name,
                                       counters=cls.redis.url + '?prefix=mw:pd:',
                                       limits=['sasl_username messages 3/1h defer'],
                                       extra='counters_timeout_ms = %d\n' % TIMEOUT_MS)
                       for name in ('policyd-a', 'policyd-b')]
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.postfix = cls.lab.postfix(cls.dovecot,
                                      policy_services=[cls.daemons[0].service])

    def tearDown(self):
        for d in self.daemons:
            self.assertEqual(d.sanitizer_errors(), '')
            self.assertTrue(d.alive(), '%s died' % d.name)

    def new_user(self, name):
        user = '%s-%s@%s' % (name, uuid.uuid4().hex[:6], lab_mod.DOMAIN)
        return user, self.store.add_user(user, 'Pw-' + uuid.uuid4().hex)

    def test_pipelined_requests_from_many_clients(self):
        """Several clients, each with requests sent back to back (the daemon reads ahead
        while Redis decides, and groups the batches of clients into one script call): every
        request gets its own answer, in order, and the limit holds across all of them."""
        b = self.daemons[1]
        user = 'pipe-%s@%s' % (uuid.uuid4().hex[:6], lab_mod.DOMAIN)
        clients = [socket.create_connection(('127.0.0.1', b.port), timeout=10)
                   for _ in range(4)]
        for c in clients:
            self.addCleanup(c.close)
        for k, c in enumerate(clients):
            c.sendall(b''.join(
                ('request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\n'
                 'client_address=127.0.0.1\nsasl_username=%s\nrecipient_count=1\n'
                 'size=10\ninstance=p%d.%d\n\n' % (user, k, i)).encode() for i in range(3)))
        got = []
        for c in clients:
            buf = b''
            while buf.count(b'\n\n') < 3:
                chunk = c.recv(65536)
                self.assertTrue(chunk, 'policyd closed the connection')
                buf += chunk
            answers = buf.decode().split('\n\n')
            self.assertEqual(answers[3:], [''])
            got += answers[:3]
        self.assertEqual(sum(a == 'action=DUNNO' for a in got), 3, got)
        self.assertEqual(sum(a.startswith('action=450 4.7.1 rate limit: 3 messages per 1h')
                             for a in got), 9, got)
        # counted in Redis (not in a degraded host's memory)
        self.assertEqual(self.redis.cli(
            'EXISTS', 'mw:pd:sasl_username:%s:messages:3600:3' % user).strip(), '1')

    def test_combined_limit_and_outage(self):
        a, b = self.daemons
        smtp = self.postfix.smtp_port
        # 1. one limit for both hosts: 3 messages per hour in all
        john, pw = self.new_user('john')
        self.assertEqual(submit(smtp, john, pw, 0)[0], 250)
        self.assertEqual(send_message(b.port, john, 1)[:2], ('DUNNO', 'DUNNO'))
        self.assertEqual(submit(smtp, john, pw, 2)[0], 250)
        code, text, _ = submit(smtp, john, pw, 3)		# through host A: over
        self.assertEqual(code, 450, text)
        self.assertTrue(text.startswith('4.7.1 '), text)
        self.assertIn('rate limit: 3 messages per 1h for ' + john, text)
        rcpt, eom, _ = send_message(b.port, john, 4)	# through host B: over as well
        self.assertTrue(rcpt.startswith('DEFER_IF_PERMIT 4.7.1'), rcpt)
        self.assertIsNone(eom)
        self.assertEqual(self.redis.cli('KEYS', 'mw:pd:*').count(john), 1)

        # 2. Redis dies: mail keeps flowing, answered from memory within the timeout
        self.redis.kill()
        try:
            mary, mpw = self.new_user('mary')
            for n in range(2):
                code, text, took = submit(smtp, mary, mpw, n)
                self.assertEqual(code, 250, text)
                self.assertLess(took, 5)
                rcpt, eom, slowest = send_message(b.port, mary, 10 + n)
                self.assertEqual((rcpt, eom), ('DUNNO', 'DUNNO'))
                self.assertLess(slowest, (TIMEOUT_MS + SLACK_MS) / 1000.0)
            for d in (a, b):
                self.assertEqual(d.log_text().count('event=degraded component=policyd_counters '), 1,
                                 d.log_text())
        finally:
            time.sleep(0.3)
            self.redis.start()

        # 3. Redis is back (empty): both recover and share the limit again
        for d in (a, b):
            lab_mod.wait_until(lambda: 'event=recovered component=policyd_counters ' in d.log_text(), 15,
                               '%s to log recovered' % d.name)
        zed, zpw = self.new_user('zed')
        self.assertEqual(send_message(b.port, zed, 0)[:2], ('DUNNO', 'DUNNO'))
        self.assertEqual(send_message(b.port, zed, 1)[:2], ('DUNNO', 'DUNNO'))
        self.assertEqual(submit(smtp, zed, zpw, 2)[0], 250)
        code, text, _ = submit(smtp, zed, zpw, 3)
        self.assertEqual(code, 450, text)


def eom_many(port, user, count, tag, timeout=10):
    """eom_many - COUNT END-OF-MESSAGE requests of USER on one connection to PORT, one after
    the other; returns the list of actions (None where the connection failed)."""
    out = []
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        f = sock.makefile('rwb')
        for i in range(count):
            f.write(('request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\n'
                     'client_address=127.0.0.1\nsasl_username=%s\nrecipient_count=1\n'
                     'size=10\ninstance=%s.%d\n\n' % (user, tag, i)).encode())
            f.flush()
            a = b''
            while not a.endswith(b'\n\n'):
                line = f.readline()
                if not line:
                    raise AssertionError('policyd on port %d closed the connection' % port)
                a += line
            out.append(a.decode().strip())
    return out


class PolicydLeaseDaemonTest(labcase.LabCase):
    """Two mailwarden-policyd with leases (the default) on one Redis, asked at once over
	their policy sockets: one limit of 1000/h holds across both within the documented
	bound, and Redis killed mid-run keeps every request answered and service resumes."""

    N = 1000

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.redis = cls.lab.redis()
        cls.daemons = [cls.lab.policyd(cls.store, name=name,
                                       counters=cls.redis.url + '?prefix=mw:ld:',
                                       limits=['sasl_username messages %d/1h defer' % cls.N],
                                       extra='counters_timeout_ms = %d\n' % TIMEOUT_MS)
                       for name in ('policyd-la', 'policyd-lb')]

    def tearDown(self):
        for d in self.daemons:
            self.assertEqual(d.sanitizer_errors(), '')
            self.assertTrue(d.alive(), '%s died' % d.name)

    def blast(self, user, per_conn, conns_per_daemon=2):
        """blast - every daemon asked at once by CONNS_PER_DAEMON connections of PER_CONN
        requests each; returns (actions per daemon, seconds taken)."""
        results = {d.name: [] for d in self.daemons}
        errors = []
        lock = threading.Lock()

        def run(d, k):
            try:
                got = eom_many(d.port, user, per_conn, '%s%d' % (d.name[-1], k))
                with lock:
                    results[d.name] += got
            except Exception as e:  # reported by the caller
                errors.append(e)
        threads = [threading.Thread(target=run, args=(d, k))
                   for d in self.daemons for k in range(conns_per_daemon)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        return threads, results, errors, t0

    def test_shared_limit_within_bound(self):
        user = 'lease-%s@%s' % (uuid.uuid4().hex[:6], lab_mod.DOMAIN)
        degraded = [d.log_text().count('degraded') for d in self.daemons]
        threads, results, errors, t0 = self.blast(user, 350)
        for t in threads:
            t.join(600)
        took = time.monotonic() - t0
        self.assertEqual(errors, [])
        ok = {name: sum(a == 'action=DUNNO' for a in got) for name, got in results.items()}
        refused = sum(a.startswith('action=450 4.7.1 rate limit') for got in results.values()
                      for a in got)
        total = sum(ok.values())
        t_s = 3600.0 / self.N
        bound = self.N + int(took / t_s) + 1   # exact GCRA over the run, plus one unit
        print('\nleases, 2 policyd, %d/h, 1400 asked in %.1f s: accepted %d (%s), refused '
              '%d, bound %d, error vs N %+d (%+.2f %%)' % (
                  self.N, took, total, ', '.join('%s %d' % kv for kv in sorted(ok.items())),
                  refused, bound, total - self.N, 100.0 * (total - self.N) / self.N))
        self.assertEqual(total + refused, 1400)
        self.assertLessEqual(total, bound)
        # fewer is the safe side: a lease returned late (a loaded machine) gives back only
        # what still lies ahead, so at most one slice (counters_lease_max, 5 %) per host is
        # admitted later than an exact counter would; the error is printed above and
        # measured quietly by bench/policyd
        self.assertGreaterEqual(total, self.N * 0.90)
        # every answer came through Redis leases, none from a degraded host's memory
        self.assertEqual([d.log_text().count('degraded') for d in self.daemons], degraded)

    def test_redis_killed_mid_run(self):
        user = 'kill-%s@%s' % (uuid.uuid4().hex[:6], lab_mod.DOMAIN)
        threads, results, errors, t0 = self.blast(user, 300, conns_per_daemon=1)
        time.sleep(0.5)
        self.redis.kill()
        try:
            for t in threads:
                t.join(600)
            # every request was answered: accepted (leases, then the memory fallback) or
            # refused by a limit; none failed, none waited past the timeout
            self.assertEqual(errors, [])
            for name, got in results.items():
                self.assertEqual(len(got), 300, name)
                for a in got:
                    self.assertTrue(a == 'action=DUNNO' or
                                    a.startswith('action=450 4.7.1 rate limit'), a)
            for d in self.daemons:
                lab_mod.wait_until(lambda: 'event=degraded component=policyd_counters ' in d.log_text(), 10,
                                   '%s to log degraded' % d.name)
        finally:
            time.sleep(0.3)
            self.redis.start()
        # back without restarting either daemon: leases again, one limit for both
        for d in self.daemons:
            lab_mod.wait_until(lambda: 'event=recovered component=policyd_counters ' in d.log_text(), 20,
                               '%s to log recovered' % d.name)
        user2 = 'back-%s@%s' % (uuid.uuid4().hex[:6], lab_mod.DOMAIN)
        threads, results, errors, t0 = self.blast(user2, 300)
        for t in threads:
            t.join(600)
        self.assertEqual(errors, [])
        total = sum(a == 'action=DUNNO' for got in results.values() for a in got)
        self.assertTrue(self.N * 0.99 <= total <= self.N + 1 +
                        int((time.monotonic() - t0) / (3600.0 / self.N)), total)
        self.assertEqual(self.redis.cli(
            'EXISTS', 'mw:ld:sasl_username:%s:messages:3600:%d' % (user2, self.N)).strip(), '1')


if __name__ == '__main__':
    unittest.main()
