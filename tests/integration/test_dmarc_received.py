"""test_dmarc_received - DMARC aggregate reports received for our domains (issue 14).

Real parts: the store ([milter] local_domains = example.org), Postfix accepting the reports
from outside and delivering them over LMTP to Dovecot, the rua user's Maildir, mailwardenctl
on the store and through --api, mailwarden-api behind nginx.

  - report mails shaped as Google (zip), Microsoft and Yahoo (gzip) send them, one for a
    domain that is not ours and one with a broken attachment are mailed to the rua mailbox;
    `dmarc import MAILDIR` prints imported / not ours / malformed (with the reason) per
    message and exits 1 because some were refused;
  - `dmarc report` (text with the per-source bars, and --json), GET /api/v1/dmarc/summary
    and /dmarc/reports through nginx and `mailwardenctl --api dmarc report` show the same
    counts: 182 messages from 5 sources, 19 failing DMARC;
  - importing the Maildir again counts nothing twice (duplicates); --delete removes the
    stored reports' files and leaves the refused ones;
  - the routes are admin only, and their parameters are checked.
"""

import base64
import glob
import json
import os
import smtplib
import subprocess
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN  # example.org
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(HERE), 'data', 'dmarc')
REPORTS = ('google.eml', 'microsoft.eml', 'yahoo.eml', 'notours.eml')


def broken_report(rcpt):
    """broken_report - a report mail whose .xml.gz is not gzip data."""
    junk = base64.encodebytes(b'\x1f\x8b\x08\x00' + b'not really gzip' * 4).decode()
    return ('From: reports@receiver.example.net\r\nTo: %s\r\n'
            'Subject: Report Domain: %s Submitter: receiver.example.net\r\n'
            'Message-ID: <%s@receiver.example.net>\r\nMIME-Version: 1.0\r\n'
            'Content-Type: application/gzip; name="r.xml.gz"\r\n'
            'Content-Disposition: attachment; filename="r.xml.gz"\r\n'
            'Content-Transfer-Encoding: base64\r\n\r\n%s'
            % (rcpt, DOMAIN, uuid.uuid4().hex, junk))


class DmarcReceivedTest(labcase.ApiBase):
    """Reports mailed to the rua mailbox, imported from its Maildir, summarised."""

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store(extra_config='[milter]\nlocal_domains = %s\n' % DOMAIN)
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.postfix = cls.lab.postfix(cls.dovecot)
        cls.start_api()
        cls.add_admin()
        cls.rua = 'dmarc-rua-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
        cls.store.add_user(cls.rua)
        cls.maildir = cls.dovecot.maildir(cls.rua)
        for name in REPORTS:
            with open(os.path.join(DATA, name), 'rb') as f:
                cls.send(f.read().replace(b'dmarc-rua@example.org', cls.rua.encode()))
        cls.send(broken_report(cls.rua).encode())
        deadline = time.monotonic() + 40
        while len(cls.files()) < len(REPORTS) + 1:
            if time.monotonic() > deadline:
                raise AssertionError('only %d of %d reports delivered to %s:\n%s'
                                     % (len(cls.files()), len(REPORTS) + 1, cls.maildir,
                                        cls.lab.logs()))
            time.sleep(0.2)
        cls.token = None

    @classmethod
    def send(cls, raw):
        with smtplib.SMTP('127.0.0.1', cls.postfix.smtp_port, timeout=30) as s:
            s.ehlo('receiver.example.net')
            s.sendmail('reports@receiver.example.net', [cls.rua], raw)

    @classmethod
    def files(cls):
        return sorted(glob.glob(os.path.join(cls.maildir, 'new', '*')) +
                      glob.glob(os.path.join(cls.maildir, 'cur', '*')))

    def admin_token(self):
        if DmarcReceivedTest.token is None:
            DmarcReceivedTest.token = self.login(self.admin, self.admin_pw)
        return DmarcReceivedTest.token

    def ctl(self, *args, check=True):
        return self.store.ctl(*args, check=check)

    def check_counts(self, summary):
        """the counts of google + microsoft + yahoo (tests/data/dmarc/*.xml)."""
        t = summary['totals']
        self.assertEqual((t['messages'], t['dmarc_pass'], t['dmarc_fail'], t['sources']),
                         (182, 163, 19, 5), summary)
        self.assertAlmostEqual(t['fail_share'], 19 / 182, places=6)
        doms = [(d['domain'], d['messages'], d['dmarc_fail']) for d in summary['domains']]
        self.assertEqual(doms, [(DOMAIN, 179, 19), ('news.' + DOMAIN, 3, 0)])
        src = summary['domains'][0]['sources']
        self.assertEqual([(s['source_ip'], s['org_name'], s['messages']) for s in src],
                         [('192.0.2.25', 'google.com', 120),
                          ('192.0.2.25', 'Enterprise Outlook', 40),
                          ('198.51.100.9', 'Yahoo', 12), ('203.0.113.77', 'google.com', 7)])
        self.assertEqual(src[2]['disposition'], {'none': 0, 'quarantine': 0, 'reject': 12})
        self.assertEqual((src[3]['dkim_fail'], src[3]['spf_fail'], src[3]['dmarc_fail']),
                         (7, 7, 7))

    def test_1_import_from_maildir(self):
        p = self.ctl('dmarc', 'import', self.maildir, check=1)
        lines = p.stdout.splitlines()
        self.assertEqual(sum(' imported: ' in l for l in lines), 3, p.stdout)
        self.assertEqual(sum(': not ours: ' in l and 'example.com' in l for l in lines), 1,
                         p.stdout)
        bad = [l for l in lines if ': malformed: ' in l]
        self.assertEqual(len(bad), 1, p.stdout)
        self.assertIn('r.xml.gz: gzip: ', bad[0])
        self.assertIn(self.maildir, bad[0])
        self.assertEqual(lines[-1], '5 messages: 3 imported, 0 duplicate, 1 not ours, '
                                    '1 malformed, 0 errors')

    def test_2_report_local(self):
        p = self.ctl('dmarc', 'report', '--json')
        self.check_counts(json.loads(p.stdout))
        text = self.ctl('dmarc', 'report').stdout
        self.assertIn('%s: 179 messages, 160 pass DMARC, 19 fail (10.6%%)' % DOMAIN, text)
        self.assertIn('total: 182 messages from 5 sources, 163 pass DMARC, 19 fail (10.4%)',
                      text)
        # the bar of the biggest source is full and passing, Yahoo's rejected one failing
        rows = {l.split()[0] + ' ' + l.split()[1]: l for l in text.splitlines()
                if l.startswith('  1') or l.startswith('  2')}
        self.assertTrue(rows['192.0.2.25 google.com'].endswith('#' * 30), text)
        self.assertTrue(rows['198.51.100.9 Yahoo'].endswith(' xxx'), text)
        # filters: a header_from domain, and a range before the reports
        one = json.loads(self.ctl('dmarc', 'report', '--domain', 'NEWS.example.org',
                                  '--json').stdout)
        self.assertEqual(one['totals']['messages'], 3)
        none = json.loads(self.ctl('dmarc', 'report', '--until', '2026-12-05',
                                   '--json').stdout)
        self.assertEqual(none['totals']['messages'], 0)
        day = json.loads(self.ctl('dmarc', 'report', '--since', '2026-12-06', '--until',
                                  '2026-12-06', '--json').stdout)
        self.assertEqual(day['totals']['messages'], 182)
        p = self.ctl('dmarc', 'report', '--since', '06.12.2026', check=2)
        self.assertIn('--since: not a date', p.stderr)

    def test_3_api_routes(self):
        tok = self.admin_token()
        a = self.expect(self.call('GET', '/api/v1/dmarc/summary', token=tok), 200)
        self.check_counts(a.json)
        a = self.expect(self.call('GET', '/api/v1/dmarc/summary?domain=news.%s&since=1796515200'
                                  % DOMAIN, token=tok), 200)
        self.assertEqual(a.json['totals']['messages'], 3)
        a = self.expect(self.call('GET', '/api/v1/dmarc/reports', token=tok), 200)
        self.assertEqual(sorted(r['org_name'] for r in a.json['reports']),
                         ['Enterprise Outlook', 'Yahoo', 'google.com'])
        g = [r for r in a.json['reports'] if r['org_name'] == 'google.com'][0]
        self.assertEqual((g['report_id'], g['domain'], g['messages'], g['dmarc_fail'],
                          g['rows'], g['date_begin']),
                         ('4185902836130592311', DOMAIN, 127, 7, 2, 1796515200))
        self.expect(self.call('GET', '/api/v1/dmarc/reports?limit=0', token=tok), 422)
        self.expect(self.call('GET', '/api/v1/dmarc/summary?domain=a%20b', token=tok), 422)
        self.expect(self.call('GET', '/api/v1/dmarc/summary?colour=red', token=tok), 422)
        self.expect(self.call('GET', '/api/v1/dmarc/summary'), 401)
        user, pw = self.store_user()
        utok = self.login(user, pw)
        self.expect(self.call('GET', '/api/v1/dmarc/summary', token=utok), 403)
        self.expect(self.call('GET', '/api/v1/dmarc/reports', token=utok), 403)

    def test_4_report_through_api(self):
        env = dict(os.environ, MAILWARDEN_TOKEN=self.admin_token())
        p = subprocess.run(self.store.ctl_command() + [
            '--api', 'http://127.0.0.1:%d' % self.nginx.port, 'dmarc', 'report', '--json'],
            capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.check_counts(json.loads(p.stdout))
        local = self.ctl('dmarc', 'report').stdout
        p = subprocess.run(self.store.ctl_command() + [
            '--api', 'http://127.0.0.1:%d' % self.nginx.port, 'dmarc', 'report'],
            capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.stdout, local)
        # import reads local files: not offered through the API
        p = subprocess.run(self.store.ctl_command() + [
            '--api', 'http://127.0.0.1:%d' % self.nginx.port, 'dmarc', 'import', self.maildir],
            capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 2, p.stderr)

    def test_5_import_again_counts_nothing_twice(self):
        p = self.ctl('dmarc', 'import', self.maildir, check=1)
        self.assertEqual(p.stdout.splitlines()[-1], '5 messages: 0 imported, 3 duplicate, '
                                                    '1 not ours, 1 malformed, 0 errors')
        self.check_counts(json.loads(self.ctl('dmarc', 'report', '--json').stdout))
        self.check_counts(self.expect(self.call('GET', '/api/v1/dmarc/summary',
                                                token=self.admin_token()), 200).json)

    def test_6_delete(self):
        before = self.files()
        p = self.ctl('dmarc', 'import', '--delete', self.maildir, check=1)
        self.assertIn('3 duplicate', p.stdout)
        left = self.files()
        self.assertEqual(len(before) - len(left), 3, p.stdout)
        # the refused ones stay for the admin
        p = self.ctl('dmarc', 'import', self.maildir, check=1)
        self.assertEqual(p.stdout.splitlines()[-1], '2 messages: 0 imported, 0 duplicate, '
                                                    '1 not ours, 1 malformed, 0 errors')
        self.check_counts(json.loads(self.ctl('dmarc', 'report', '--json').stdout))


if __name__ == '__main__':
    unittest.main()
