"""test_metrics - the counters in the Prometheus text format (issue 18, metrics part).

Parsed with the Prometheus project's own Python parser (Debian python3-prometheus-client,
prometheus_client.parser), so a format mistake fails here rather than in a scraper:
  - mailwarden-api: GET /api/v1/internal/metrics through real nginx (loopback only, as every
    internal route) counts requests by method, route pattern and status over all workers
    (the table is shared memory set up before the workers fork);
  - mailwarden-milter: [milter] metrics_file, rewritten every metrics_interval, counts each
    decision (action, direction, reason) as its decision log line says it, through real
    Postfix;
  - mailwarden-policyd: [policyd] metrics_file counts every answer by stage and verdict.
Every metric name in lib/mw-metrics.def is listed in docs/operations.md.
"""

import os
import re
import smtplib
import socket
import time
import unittest
import uuid

from prometheus_client.parser import text_string_to_metric_families  # python3-prometheus-client

import labcase
import mailwarden_lab as lab_mod
from labcase import call

DOMAIN = lab_mod.DOMAIN
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def samples(text):
    """samples - {(name, frozenset(labels)): value} of every sample in TEXT."""
    out = {}
    for fam in text_string_to_metric_families(text):
        # the counters, and the gauges of lib/mw-degraded.c (issue 17)
        assert fam.type == 'counter' or (fam.type == 'gauge' and
                                         fam.name.startswith('mailwarden_degraded')), fam
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(smp, name, **labels):
    return smp.get((name, frozenset(labels.items())), 0.0)


class MetricNamesDocumentedTest(unittest.TestCase):
    def test_every_metric_in_operations_md(self):
        with open(os.path.join(TOP, 'lib', 'mw-metrics.def')) as f:
            names = re.findall(r'"(mailwarden_[a-z_]+)"', f.read())
        self.assertGreaterEqual(len(names), 3)
        # the gauges of lib/mw-degraded.c (issue 17): their names are #defines there
        with open(os.path.join(TOP, 'lib', 'mw-degraded.c')) as f:
            gauges = re.findall(r'#define \w+ +"(mailwarden_[a-z_]+)"', f.read())
        self.assertEqual(gauges, ['mailwarden_degraded', 'mailwarden_degraded_since_seconds'])
        names += gauges
        with open(os.path.join(TOP, 'docs', 'operations.md')) as f:
            doc = f.read()
        for name in names + ['mailwarden_metrics_dropped_total']:
            self.assertIn('`%s`' % name, doc, name)
        # the alert rules are YAML naming only metrics that exist
        import yaml  # python3-yaml
        block = doc.split('```\ngroups:')[1].split('```')[0]
        rules = yaml.safe_load('groups:' + block)['groups'][0]['rules']
        self.assertGreaterEqual(len(rules), 3)
        for r in rules:
            for used in re.findall(r'mailwarden_[a-z_]+', r['expr']):
                self.assertIn(used, names, r['alert'])


class ApiMetricsTest(labcase.ApiBase):
    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.start_api(api_config={'workers': '3'})
        cls.add_admin()

    def scrape(self):
        a = self.call('GET', '/api/v1/internal/metrics')
        self.assertEqual(a.status, 200, a)
        self.assertTrue(a.headers['content-type'].startswith('text/plain; version=0.0.4'))
        return samples(a.raw.decode())

    def test_requests_counted_by_route_and_status_over_all_workers(self):
        before = self.scrape()
        for _ in range(7):
            self.expect(self.call('GET', '/api/v1/healthz'), 200)
        self.expect(self.call('GET', '/api/v1/nope/%s' % uuid.uuid4().hex), 404)
        self.expect(self.call('GET', '/api/v1/users'), 401)
        self.expect(self.call('GET', '/api/v1/users/x%40y.org'), 401)
        after = self.scrape()
        n = 'mailwarden_api_requests_total'
        self.assertEqual(value(after, n, method='GET', route='/api/v1/healthz', status='200') -
                         value(before, n, method='GET', route='/api/v1/healthz', status='200'), 7)
        self.assertEqual(value(after, n, method='GET', route='none', status='404') -
                         value(before, n, method='GET', route='none', status='404'), 1)
        self.assertEqual(value(after, n, method='GET', route='/api/v1/users', status='401') -
                         value(before, n, method='GET', route='/api/v1/users', status='401'), 1)
        # the route pattern, never the path asked for: the series stay bounded
        self.assertEqual(value(after, n, method='GET', route='/api/v1/users/{username}',
                               status='401') -
                         value(before, n, method='GET', route='/api/v1/users/{username}',
                               status='401'), 1)
        for (name, labels) in after:
            self.assertNotIn('x@y.org', dict(labels).get('route', ''))
        # the scrape itself is counted once it is answered
        self.assertGreaterEqual(value(after, n, method='GET', route='/api/v1/internal/metrics',
                                      status='200'), 1)
        self.assertEqual(value(after, 'mailwarden_metrics_dropped_total'), 0)

    def test_internal_route_refused_from_elsewhere(self):
        # nginx's internal location answers loopback only; 127.0.0.2 is not in its allow list
        a = call(self.port, 'GET', '/api/v1/internal/metrics', source='127.0.0.2')
        self.assertEqual(a.status, 403, a)


class MilterMetricsTest(labcase.MilterCase):
    milter_must_live = True

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.metrics = os.path.join(cls.lab_dir('prom', mode=0o777), 'milter.prom')
        cls.milter = cls.lab.milter(cls.store, config='metrics_file = %s\nmetrics_interval = 1s\n'
                                    % cls.metrics)
        cls.postfix = cls.lab.postfix(cls.dovecot, milters=[cls.milter.postfix_spec])

    def read(self):
        with open(self.metrics) as f:
            return samples(f.read())

    def wait_for(self, pred, what):
        deadline = time.time() + 30
        while time.time() < deadline:
            if os.path.exists(self.metrics) and pred(self.read()):
                return self.read()
            time.sleep(0.3)
        self.fail('metrics file never showed ' + what)

    def test_decisions_counted(self):
        user = 'm%s@%s' % (uuid.uuid4().hex[:8], DOMAIN)
        pw = self.store.add_user(user)
        self.store.allow_from(user, user)
        before = self.wait_for(lambda s: True, 'anything')
        n = 'mailwarden_milter_messages_total'
        acc = dict(action='accept', direction='outbound', reason='from_allowed')
        s = smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=30)
        try:
            s.ehlo('client.example.org')
            s.login(user, pw)
            for i in range(2):
                s.sendmail(user, [user], ('From: %s\r\nTo: %s\r\nSubject: m%d\r\n\r\nhi\r\n'
                                          % (user, user, i)).encode())
            code, _ = s.mail('boss@' + DOMAIN)
            self.assertEqual(code, 550)
            s.rset()
        finally:
            s.quit()
        after = self.wait_for(
            lambda x: value(x, n, **acc) - value(before, n, **acc) >= 2 and
            sum(v for (k, l), v in x.items() if k == n and dict(l).get('action') == 'reject') >
            sum(v for (k, l), v in before.items() if k == n and dict(l).get('action') == 'reject'),
            'two accepts and a reject')
        self.assertEqual(value(after, n, **acc) - value(before, n, **acc), 2)
        rejects = {dict(l)['reason']: v for (k, l), v in after.items()
                   if k == n and dict(l).get('action') == 'reject'}
        self.assertEqual(sum(rejects.values()), 1, rejects)
        log = lab_mod.tail(self.milter.log_path, 200)
        for reason in rejects:
            self.assertIn('action=reject stage=mail_from direction=outbound', log)
            self.assertIn('reason=%s' % reason, log)
        st = os.stat(self.metrics)
        self.assertEqual(st.st_mode & 0o777, 0o644)


class PolicydMetricsTest(labcase.PolicydCase):
    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.metrics = os.path.join(cls.lab_dir('pdprom', mode=0o777), 'policyd.prom')
        cls.policyd = cls.lab.policyd(
            cls.store, limits=['sasl_username messages 2/1h defer'],
            extra='metrics_file = %s\nmetrics_interval = 1s\n' % cls.metrics)

    ask = staticmethod(labcase.policy_ask)

    def read(self):
        with open(self.metrics) as f:
            return samples(f.read())

    def test_decisions_counted_by_stage_and_verdict(self):
        n = 'mailwarden_policyd_decisions_total'
        deadline = time.time() + 20
        while not os.path.exists(self.metrics) and time.time() < deadline:
            time.sleep(0.2)
        before = self.read()
        user = 'p%s@%s' % (uuid.uuid4().hex[:8], DOMAIN)
        c = socket.create_connection(('127.0.0.1', self.policyd.port), timeout=10)
        self.addCleanup(c.close)
        actions = []
        for _ in range(3):
            actions.append(self.ask(c, sasl_username=user, protocol_state='RCPT'))
            actions.append(self.ask(c, sasl_username=user, protocol_state='END-OF-MESSAGE',
                                    recipient_count='1', size='100'))
        self.assertEqual(actions[0], 'action=DUNNO')
        self.assertTrue(actions[4].startswith('action=DEFER_IF_PERMIT 4.7.1'), actions)
        self.assertTrue(actions[5].startswith('action=450 4.7.1'), actions)
        # the third message: deferred at RCPT (DEFER_IF_PERMIT) and at END-OF-MESSAGE (450)
        want = {('rcpt', 'DUNNO'): 2, ('rcpt', 'DEFER_IF_PERMIT'): 1,
                ('end_of_message', 'DUNNO'): 2, ('end_of_message', 'tempfail'): 1}
        deadline = time.time() + 20
        while True:
            after = self.read()
            got = {k: value(after, n, stage=k[0], verdict=k[1]) -
                   value(before, n, stage=k[0], verdict=k[1]) for k in want}
            if got == want or time.time() > deadline:
                break
            time.sleep(0.3)
        self.assertEqual(got, want, open(self.metrics).read())


if __name__ == '__main__':
    unittest.main()
