"""test_degraded - degraded modes are visible (issue 17, last section).

A daemon serving from a fallback says so, once per change of state and never per request:
an `event=degraded component=NAME reason=WORD ...` log line when it enters the state, an
`event=recovered component=NAME ...` line when it leaves it, the mailwarden_degraded gauge
(1/0, with mailwarden_degraded_since_seconds while degraded) in its metrics, and a
"problem:" line of `mailwardenctl doctor` (the policy daemon answers "health" on its control
socket; the milter's state is read from its metrics_file). Each case makes the dependency
fail for real and then come back:
  - policyd counters: Redis killed and started again (lab Redis on loopback);
  - policyd store: the SQLite store's rate_policies table renamed away and back;
  - milter store: the users table renamed away and back, messages through miltertest;
  - milter DNS: the milter's resolver (a small DNS server in this test) answers SERVFAIL to
    everything, then NXDOMAIN again (spamd: test_milter_spamd's test_9).
"""

import os
import socket
import struct
import threading
import subprocess
import time
import unittest
import uuid

from prometheus_client.parser import text_string_to_metric_families  # python3-prometheus-client

import labcase
import mailwarden_lab as lab_mod
from test_milter_inbound_from import run_lua, script

DOMAIN = lab_mod.DOMAIN


def gauges(path):
    """gauges - {component: value} of mailwarden_degraded and {component: (reason, since)}
    of mailwarden_degraded_since_seconds in the metrics file PATH (Prometheus's own parser)."""
    with open(path) as f:
        text = f.read()
    state, since = {}, {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == 'mailwarden_degraded':
                assert fam.type == 'gauge', fam
                state[s.labels['component']] = s.value
            elif s.name == 'mailwarden_degraded_since_seconds':
                since[s.labels['component']] = (s.labels['reason'], s.value)
    return state, since


def wait_gauge(path, component, want, timeout=20):
    """wait_gauge - until the metrics file shows COMPONENT at WANT; returns both dicts."""
    got = [None]

    def check():
        if not os.path.exists(path):
            return False
        got[0] = gauges(path)
        return got[0][0].get(component) == want
    lab_mod.wait_until(check, timeout, '%s gauge %s = %s in %s' % (component, path, want,
                                                                     got[0]))
    return got[0]


def doctor(ctl_path, config, tmp):
    """doctor - mailwardenctl doctor's stdout lines (it exits 1: the lab has no Postfix)."""
    p = subprocess.run([ctl_path, '-c', config, 'doctor', '--postfix-dir',
                        os.path.join(tmp, 'no-postfix'), '--dovecot-config',
                        '/nonexistent.conf'], capture_output=True, text=True, timeout=120)
    assert 'AddressSanitizer' not in p.stderr, p.stderr
    return p.stdout.splitlines()


class PolicydDegradedTest(labcase.PolicydCase):
    """The policy daemon: Redis counters and the store's rate_policies."""

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.redis = cls.lab.redis()
        cls.metrics = os.path.join(cls.lab_dir('pd-degraded', mode=0o777), 'policyd.prom')
        cls.policyd = cls.lab.policyd(
            cls.store, limits=['sasl_username messages 100/1h defer'],
            counters=cls.redis.url,
            extra='metrics_file = %s\nmetrics_interval = 1s\nstore_refresh = 1s\n'
                  'counters_timeout_ms = 300\n' % cls.metrics)

    def ask(self, user):
        """ask - one END-OF-MESSAGE request of USER on a new connection; the action line."""
        req = ('request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\n'
               'client_address=127.0.0.1\nsasl_username=%s\nrecipient_count=1\nsize=10\n'
               'instance=%s\n\n' % (user, uuid.uuid4().hex[:8]))
        with socket.create_connection(('127.0.0.1', self.policyd.port), timeout=20) as c:
            c.sendall(req.encode())
            buf = b''
            while not buf.endswith(b'\n\n'):
                chunk = c.recv(4096)
                self.assertTrue(chunk, 'policyd closed the connection')
                buf += chunk
        return buf.decode().strip()

    def count(self, text):
        return self.policyd.log_text().count(text)

    def doctor(self):
        return doctor(self.store.ctl_path, self.policyd.config, self.lab.root)

    def test_redis_outage_is_logged_once_gauged_and_doctored(self):
        enter = 'event=degraded component=policyd_counters '
        leave = 'event=recovered component=policyd_counters '
        user = 'rd-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
        self.assertEqual(self.ask(user), 'action=DUNNO')
        state, _ = wait_gauge(self.metrics, 'policyd_counters', 0)
        self.assertEqual(state.get('policyd_store'), 0, state)
        lines = self.doctor()
        self.assertIn('ok: mailwarden-policyd serves without a fallback', lines)
        enters, leaves = self.count(enter), self.count(leave)

        self.redis.kill()
        try:
            # many requests while Redis is down: all answered (from memory), one line
            for _ in range(8):
                self.assertEqual(self.ask(user), 'action=DUNNO')
            self.assertEqual(self.count(enter), enters + 1, self.policyd.log_text())
            line = [l for l in self.policyd.log_text().splitlines() if enter in l][-1]
            self.assertRegex(line, r'reason=(connect_failed|connection_lost|no_connection) ')
            self.assertIn('fallback="policyd counts rate limits in memory', line)
            state, since = wait_gauge(self.metrics, 'policyd_counters', 1)
            self.assertIn(since['policyd_counters'][0],
                          ('connect_failed', 'connection_lost', 'no_connection'))
            self.assertLessEqual(abs(since['policyd_counters'][1] - time.time()), 120)
            problems = [l for l in self.doctor() if 'Redis unreachable since' in l]
            self.assertEqual(len(problems), 1, problems)
            self.assertTrue(problems[0].startswith(
                'problem: policyd counts rate limits in memory (per host, not shared): '
                'Redis unreachable since '), problems)
            self.assertIn('(fix: start Redis', problems[0])
            self.assertEqual(self.count(enter), enters + 1, self.policyd.log_text())
        finally:
            self.redis.start()

        # back: the reconnect (backoff at most 10 s) logs one recovered line
        def recovered():
            self.ask(user)
            return self.count(leave) > leaves
        lab_mod.wait_until(recovered, 30, 'policyd to log recovered')
        for _ in range(5):
            self.assertEqual(self.ask(user), 'action=DUNNO')
        self.assertEqual(self.count(leave), leaves + 1, self.policyd.log_text())
        self.assertEqual(self.count(enter), enters + 1, self.policyd.log_text())
        wait_gauge(self.metrics, 'policyd_counters', 0)
        lines = self.doctor()
        self.assertIn('ok: mailwarden-policyd serves without a fallback', lines)
        self.assertFalse([l for l in lines if 'Redis unreachable' in l], lines)

    def test_store_refresh_failure_is_logged_once(self):
        enter = 'event=degraded component=policyd_store '
        leave = 'event=recovered component=policyd_store '
        enters, leaves = self.count(enter), self.count(leave)
        labcase.rename_table(self.store.db, 'rate_policies', 'rate_policies_gone')
        try:
            lab_mod.wait_until(lambda: self.count(enter) > enters, 20, 'store degraded line')
            state, since = wait_gauge(self.metrics, 'policyd_store', 1)
            self.assertEqual(since['policyd_store'][0], 'read_failed')
            # several refresh periods (1 s) later: still the one line
            time.sleep(3.5)
            self.assertEqual(self.count(enter), enters + 1, self.policyd.log_text())
            self.assertIn('policyd: store still unreadable', self.policyd.log_text())  # debug
            problems = [l for l in self.doctor() if 'rate_policies it read last' in l]
            self.assertEqual(len(problems), 1, problems)
            self.assertIn('the store unreachable since', problems[0])
            self.assertIn('(reason read_failed)', problems[0])
            # the requests are answered meanwhile
            self.assertEqual(self.ask('st-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)),
                             'action=DUNNO')
        finally:
            labcase.rename_table(self.store.db, 'rate_policies_gone', 'rate_policies')
        lab_mod.wait_until(lambda: self.count(leave) > leaves, 20, 'store recovered line')
        time.sleep(2.5)
        self.assertEqual(self.count(leave), leaves + 1, self.policyd.log_text())
        self.assertEqual(self.count(enter), enters + 1, self.policyd.log_text())
        wait_gauge(self.metrics, 'policyd_store', 0)
        self.assertFalse([l for l in self.doctor() if 'rate_policies it read last' in l])


class MilterDegradedTest(labcase.MilterCase):
    """The milter: its store unreadable, users answered from the cache only."""

    @classmethod
    def start_lab(cls):
        cls.miltertest = lab_mod.find_binary('miltertest', 'miltertest')
        cls.store = cls.lab.store()
        cls.users = ['md%d@%s' % (i, DOMAIN) for i in range(6)]
        for u in cls.users:
            cls.store.add_user(u)
            cls.store.allow_from(u, u)
        cls.metrics = os.path.join(cls.lab_dir('milter-degraded', mode=0o777), 'milter.prom')
        cls.milter = cls.lab.milter(cls.store, socket='inet', cache_ttl='0s', config=(
            'on_error = tempfail\nmetrics_file = %s\nmetrics_interval = 1s\n' % cls.metrics))

    def mail_from(self, user, want):
        """mail_from - one MAIL FROM of USER (authenticated as USER) through miltertest;
        WANT 'continue' (accepted at MAIL FROM) or 'mail' (refused there)."""
        if want == 'mail':
            text = script('127.0.0.1', '<%s>' % user, [], ('mail',), auth=user)
        else:
            text = '\n'.join([
                'dofile(dir .. "/common.lua")', 'function main()',
                '  local conn = mt.connect(socket, 20, 0.25)',
                '  check(conn ~= nil, "mt.connect failed")',
                '  expect(SMFIR_CONTINUE, "conninfo", mt.conninfo, conn, "client.example", '
                '"127.0.0.1")',
                '  expect(SMFIR_CONTINUE, "helo", mt.helo, conn, "client.example")',
                '  mt.macro(conn, SMFIC_MAIL, "{auth_authen}", "%s", "i", "QIDDG")' % user,
                '  expect(SMFIR_CONTINUE, "mailfrom", mt.mailfrom, conn, "<%s>")' % user,
                '  mt.disconnect(conn)', 'end', 'run(main)']) + '\n'
        run_lua(self, self.miltertest, self.milter, 'degraded-' + uuid.uuid4().hex[:8], text)

    def log(self):
        with open(self.milter.log_path, errors='replace') as f:
            return f.read()

    def rename(self, old, new):
        labcase.rename_table(self.store.db, old, new)

    def test_store_outage_is_logged_once_gauged_and_doctored(self):
        enter = 'event=degraded component=milter_store '
        leave = 'event=recovered component=milter_store '
        self.mail_from(self.users[0], 'continue')
        wait_gauge(self.metrics, 'milter_store', 0)
        self.assertIn('ok: mailwarden-milter serves without a fallback (%s)' % self.metrics,
                      doctor(self.store.ctl_path, self.milter.config, self.lab.root))
        enters, leaves = self.log().count(enter), self.log().count(leave)

        self.rename('users', 'users_gone')
        try:
            for u in self.users:  # one store_error per message, one degraded line in all
                self.mail_from(u, 'mail')
            log = self.log()
            self.assertEqual(log.count(enter), enters + 1, log)
            self.assertGreaterEqual(log.count('event=store_error'), len(self.users), log)
            line = [l for l in log.splitlines() if enter in l][-1]
            self.assertIn('reason=store_error ', line)
            self.assertIn('no such table', line)
            _, since = wait_gauge(self.metrics, 'milter_store', 1)
            self.assertEqual(since['milter_store'][0], 'store_error')
            problems = [l for l in doctor(self.store.ctl_path, self.milter.config,
                                          self.lab.root) if 'milter answers senders' in l]
            self.assertEqual(len(problems), 1, problems)
            self.assertTrue(problems[0].startswith(
                'problem: milter answers senders from its user cache only (on_error for the '
                'others): the store unreachable since '), problems)
            self.assertIn('(reason store_error)', problems[0])
        finally:
            self.rename('users_gone', 'users')

        for u in self.users:
            self.mail_from(u, 'continue')
        log = self.log()
        self.assertEqual(log.count(leave), leaves + 1, log)
        self.assertEqual(log.count(enter), enters + 1, log)
        wait_gauge(self.metrics, 'milter_store', 0)
        self.assertIn('ok: mailwarden-milter serves without a fallback (%s)' % self.metrics,
                      doctor(self.store.ctl_path, self.milter.config, self.lab.root))


class ToyResolver:
    """ToyResolver - a DNS server on a loopback UDP port that answers every query with the
    rcode of .rcode (2 SERVFAIL, 3 NXDOMAIN) and counts the queries it saw."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.rcode = 3
        self.queries = 0
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            qid, flags = struct.unpack('!HH', data[:4])
            end = 12
            while end < len(data) and data[end] != 0:  # the question's name, label by label
                end += 1 + data[end]
            question = data[12:end + 5]
            self.queries += 1
            reply = struct.pack('!HHHHHH', qid, 0x8000 | (flags & 0x0100) | 0x0080 | self.rcode,
                                1, 0, 0, 0) + question
            try:
                self.sock.sendto(reply, peer)
            except OSError:
                pass

    def stop(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()


class MilterDnsDegradedTest(labcase.MilterCase):
    """The milter's resolver: SERVFAIL for everything, then answering again."""

    @classmethod
    def start_lab(cls):
        cls.miltertest = lab_mod.find_binary('miltertest', 'miltertest')
        cls.resolver = ToyResolver()
        cls.store = cls.lab.store()
        cls.metrics = os.path.join(cls.lab_dir('milter-dns', mode=0o777), 'milter.prom')
        cls.milter = cls.lab.milter(cls.store, socket='inet', config=(
            'dns_servers = 127.0.0.1@%d\ndns_timeout = 3s\ndkim_sign = no\n'
            'trusted_networks = 127.0.0.0/8\nmetrics_file = %s\nmetrics_interval = 1s\n'
            % (cls.resolver.port, cls.metrics)))

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.resolver.stop()

    def inbound(self):
        """inbound - one message from an untrusted client and a sender domain never asked
        before (the milter's lookups: SPF, DMARC, ...), whatever the milter answers."""
        dom = 'd%s.example' % uuid.uuid4().hex[:10]
        text = '\n'.join([
            'dofile(dir .. "/common.lua")',
            'function step(conn, what, f, ...)',
            '  check(f(conn, ...) == nil, what .. ": call failed")',
            '  local r = mt.getreply(conn)',
            '  return r == SMFIR_CONTINUE or r == SMFIR_SKIP',
            'end',
            'function main()',
            '  local conn = mt.connect(socket, 20, 0.25)',
            '  check(conn ~= nil, "mt.connect failed")',
            '  check(step(conn, "conninfo", mt.conninfo, "mx.%s", "192.0.2.77"), "conninfo")' % dom,
            '  check(step(conn, "helo", mt.helo, "mx.%s"), "helo")' % dom,
            '  mt.macro(conn, SMFIC_MAIL, "{auth_authen}", "", "i", "QIDDNS")',
            '  if step(conn, "mail", mt.mailfrom, "<a@%s>") and' % dom,
            '     step(conn, "rcpt", mt.rcptto, "<inbox@%s>") and' % DOMAIN,
            '     step(conn, "from", mt.header, "From", "<a@%s>") and' % dom,
            '     step(conn, "eoh", mt.eoh) and step(conn, "body", mt.bodystring, "hi\\r\\n") then',
            '    check(mt.eom(conn) == nil, "eom failed")',
            '  end',
            '  mt.disconnect(conn)',
            'end',
            'run(main)']) + '\n'
        run_lua(self, self.miltertest, self.milter, 'dns-' + uuid.uuid4().hex[:8], text)

    def log(self):
        with open(self.milter.log_path, errors='replace') as f:
            return f.read()

    def test_resolver_outage_is_logged_once_and_gauged(self):
        enter = 'event=degraded component=milter_dns reason=no_answer '
        leave = 'event=recovered component=milter_dns '
        self.resolver.rcode = 3
        self.inbound()
        self.assertGreater(self.resolver.queries, 0, 'the milter asked its resolver nothing')
        wait_gauge(self.metrics, 'milter_dns', 0)
        self.assertNotIn(enter, self.log())

        self.resolver.rcode = 2  # SERVFAIL: every query fails
        asked = self.resolver.queries
        for _ in range(4):  # several lookups each: well over the 5 in a row
            self.inbound()
        self.assertGreater(self.resolver.queries, asked)
        log = self.log()
        self.assertEqual(log.count(enter), 1, log[-4000:])
        _, since = wait_gauge(self.metrics, 'milter_dns', 1)
        self.assertEqual(since['milter_dns'][0], 'no_answer')
        self.assertEqual(log.count(leave), 0, log[-4000:])

        self.resolver.rcode = 3  # answering again
        for _ in range(2):
            self.inbound()
        log = self.log()
        self.assertEqual(log.count(leave), 1, log[-4000:])
        self.assertEqual(log.count(enter), 1, log[-4000:])
        wait_gauge(self.metrics, 'milter_dns', 0)


if __name__ == '__main__':
    unittest.main()
