"""test_dmarc_reports - DMARC aggregate reports, the sending side (issue 14), end to end: the
milter records each DMARC evaluation of inbound mail ([dmarc] record = yes) that comes through
real Postfix, and `mailwardenctl dmarc send-reports` sends the day's reports through the same
Postfix (sendmail -C its config dir) to each domain's rua mailbox, a Dovecot user read back by
IMAP. Each report is gunzipped, validated against tests/data/dmarc/aggregate-report.xsd with
xmllint, and its counts compared with what was sent.

The lab DNS (NSD) publishes three policy domains:
  example.org       p=none,   rua inside the domain (dmarc-own@example.org)
  ext-ok.example    p=reject, rua external (dmarc-ext@example.org!10m), authorised by
                    ext-ok.example._report._dmarc.example.org TXT "v=DMARC1"
  ext-no.example    p=none,   rua external (dmarc-no@example.org), no authorisation record:
                    nothing may reach it
  small.example     p=none,   rua external and authorised, but !1k: its report is larger
Running send-reports again for the same day sends nothing more.
"""

import email
import gzip
import imaplib
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import uuid
import xml.etree.ElementTree as ET

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN  # example.org: the lab's mail domain
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
XSD = os.path.join(TOP, 'tests', 'data', 'dmarc', 'aggregate-report.xsd')


def message(sender, rcpt, token):
    """message - a small unsigned message from SENDER carrying TOKEN."""
    return ('From: <%s>\r\nTo: <%s>\r\nSubject: dmarc %s\r\n'
            'Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@test>\r\n\r\n'
            'Hello %s.\r\n' % (sender, rcpt, token, uuid.uuid4().hex, token))


class DmarcReportsTest(labcase.MilterCase):
    """Evaluations recorded by the milter, reports sent through Postfix, read by IMAP."""

    @classmethod
    def start_lab(cls):
        cls.xmllint = shutil.which('xmllint')
        if cls.xmllint is None:
            raise lab_mod.LabError('xmllint missing: install libxml2-utils (scripts/setup)')
        zones = {
            DOMAIN: [('_dmarc', 'TXT', 'v=DMARC1; p=none; rua=mailto:dmarc-own@%s' % DOMAIN),
                     ('@', 'TXT', 'v=spf1 ip4:192.0.2.99 -all'),
                     ('ext-ok.example._report._dmarc', 'TXT', 'v=DMARC1'),
                     ('small.example._report._dmarc', 'TXT', 'v=DMARC1')],
            'ext-ok.example': [('_dmarc', 'TXT', 'v=DMARC1; p=reject; adkim=s; '
                                'rua=mailto:dmarc-ext@%s!10m' % DOMAIN),
                               ('@', 'TXT', 'v=spf1 ip4:192.0.2.99 -all')],
            # authorised, but takes reports of at most 1 kB
            'small.example': [('_dmarc', 'TXT',
                               'v=DMARC1; p=none; rua=mailto:dmarc-ext@%s!1k' % DOMAIN)],
            'ext-no.example': [('_dmarc', 'TXT',
                                'v=DMARC1; p=none; rua=mailto:dmarc-no@%s' % DOMAIN)],
        }
        cls.dns = cls.lab.dns(zones=zones)
        cls.store = cls.lab.store()
        cls.dovecot = cls.lab.dovecot(cls.store)
        # the milter (user dovecot) writes the store: group-writable files
        cls.store.share_with_group()
        cls.start_mail_path(xclient=True, rcpt='inbox', config=(
            'dns_servers = %s\ndns_timeout = 2s\n[dmarc]\nrecord = yes\n' % cls.dns.server))
        cls.pw = {}
        for box in ('dmarc-own', 'dmarc-ext', 'dmarc-no'):
            cls.pw[box] = cls.store.add_user('%s@%s' % (box, DOMAIN))
        # mailwardenctl's configuration: the store's, with the resolver and [dmarc]
        cls.ctl_config = os.path.join(cls.lab.root, 'ctl-dmarc.conf')
        with open(cls.ctl_config, 'w') as f:
            f.write(cls.store.render_config() +
                    '\n[milter]\ndns_servers = %s\ndns_timeout = 2s\n'
                    '[dmarc]\nreport_sender = dmarc-reports@%s\nreport_org_name = Lab & Co\n'
                    'sendmail_config_dir = %s\n' % (cls.dns.server, DOMAIN,
                                                    cls.postfix.config_dir))
        cls.outdir = tempfile.mkdtemp(dir=cls.lab.root)
        cls.sent = False

    def ctl(self, *args, check=0):
        p = subprocess.run([self.store.ctl_path, '-c', self.ctl_config] + list(args),
                           capture_output=True, text=True, timeout=120)
        for bad in ('AddressSanitizer', 'runtime error:', 'LeakSanitizer'):
            self.assertNotIn(bad, p.stderr)
        if check is not None:
            self.assertEqual(p.returncode, check, p.stdout + p.stderr)
        return p

    def send_mail(self):
        """send_mail - the day's inbound mail (once per class)."""
        cls = type(self)
        if cls.sent:
            return
        cls.token = uuid.uuid4().hex[:8]
        cases = [
            # (client, envelope sender, From, expected stage)
            ('192.0.2.99', 'a@%s' % DOMAIN, 'a@%s' % DOMAIN, 'sent'),
            ('192.0.2.99', 'b@%s' % DOMAIN, 'b@%s' % DOMAIN, 'sent'),
            ('192.0.2.99', 'x@ext-ok.example', 'x@ext-ok.example', 'sent'),
            ('192.0.2.99', 'y@ext-ok.example', 'y@ext-ok.example', 'sent'),
            ('192.0.2.98', 'z@ext-ok.example', 'z@ext-ok.example', 'data'),  # p=reject
            ('192.0.2.98', 'n@ext-no.example', 'n@ext-no.example', 'sent'),
            ('192.0.2.98', 's@small.example', 's@small.example', 'sent'),
        ]
        for ip, envfrom, hfrom, stage in cases:
            r = self.send_from(ip, 'client.example.net', envfrom,
                               message(hfrom, self.rcpt, cls.token))
            self.assertEqual(r[0], stage, (hfrom, r))
            if stage == 'data':
                self.assertEqual(r[1], 550, r)
        cls.day = time.strftime('%Y-%m-%d', time.gmtime())
        cls.sent = True

    def report_of(self, box, domain):
        """report_of - the report for DOMAIN in BOX: (message, XML root)."""
        raw = labcase.imap_fetch(self.dovecot.imap_port, '%s@%s' % (box, DOMAIN), self.pw[box],
                                 '"Report Domain: %s"' % domain, key='SUBJECT', timeout=60)
        self.assertIsNotNone(raw, 'no report for %s in %s' % (domain, box))
        msg = email.message_from_bytes(raw[1])
        parts = [p for p in msg.walk() if p.get_content_type() == 'application/gzip']
        self.assertEqual(len(parts), 1)
        name = parts[0].get_filename()
        self.assertRegex(name, r'^%s!%s!\d+!\d+\.xml\.gz$' % (DOMAIN.replace('.', r'\.'),
                                                               domain.replace('.', r'\.')))
        data = gzip.decompress(parts[0].get_payload(decode=True))
        path = os.path.join(self.lab.root, 'report-%s.xml' % domain)
        with open(path, 'wb') as f:
            f.write(data)
        p = subprocess.run([self.xmllint, '--noout', '--schema', XSD, path],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # the validation can fail: a value outside the schema is caught
        with open(path + '.bad', 'wb') as f:
            f.write(data.replace(b'<disposition>none<', b'<disposition>deliver<', 1)
                    .replace(b'<disposition>reject<', b'<disposition>deliver<', 1))
        p = subprocess.run([self.xmllint, '--noout', '--schema', XSD, path + '.bad'],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        return msg, ET.fromstring(data)

    @staticmethod
    def counts(root):
        """counts - {(source_ip, disposition): count} of a report."""
        out = {}
        for rec in root.findall('record'):
            ip = rec.findtext('row/source_ip')
            disp = rec.findtext('row/policy_evaluated/disposition')
            out[(ip, disp)] = out.get((ip, disp), 0) + int(rec.findtext('row/count'))
        return out

    def test_1_reports_sent_validated_counted(self):
        self.send_mail()
        # the milter recorded 6 evaluations (the rejected one too)
        p = self.ctl('dmarc', 'send-reports', '--date', self.day, '--dry-run')
        self.assertIn('%s: would send report' % DOMAIN, p.stdout)
        self.assertIn('(2 messages, 1 records', p.stdout)
        self.assertIn('ext-ok.example: would send report', p.stdout)
        self.assertIn('(3 messages, 2 records', p.stdout)
        self.assertIn('dmarc-no@%s is an external destination without authorisation'
                      % DOMAIN, p.stdout)
        # !1k: the report is larger, so that destination is skipped
        self.assertRegex(p.stdout, r'small\.example: report of \d+ bytes is over '
                         r'dmarc-ext@%s\'s limit of 1024 bytes: skipped' % DOMAIN)
        self.assertIn('small.example: no destination takes the report, nothing sent', p.stdout)
        p = self.ctl('dmarc', 'send-reports', '--date', self.day, '--output', self.outdir)
        lines = p.stdout.splitlines()
        self.assertFalse(any(l.startswith('small.example: sent') for l in lines), p.stdout)
        self.assertTrue(any(l.startswith('%s: sent report ' % DOMAIN) for l in lines), p.stdout)
        self.assertTrue(any(l.startswith('ext-ok.example: sent report ') for l in lines),
                        p.stdout)
        self.assertFalse(any(l.startswith('ext-no.example: sent') for l in lines), p.stdout)
        # every report built is written, the one no destination takes too
        self.assertEqual(len([n for n in os.listdir(self.outdir) if n.endswith('.xml.gz')]), 3)

        msg, root = self.report_of('dmarc-own', DOMAIN)
        self.assertRegex(msg['Subject'], r'^Report Domain: %s Submitter: %s Report-ID: <[^>]+>$'
                         % (DOMAIN.replace('.', r'\.'), DOMAIN.replace('.', r'\.')))
        self.assertEqual(root.findtext('report_metadata/org_name'), 'Lab & Co')
        self.assertEqual(root.findtext('report_metadata/email'), 'dmarc-reports@%s' % DOMAIN)
        self.assertEqual(root.findtext('policy_published/domain'), DOMAIN)
        self.assertEqual(root.findtext('policy_published/p'), 'none')
        self.assertEqual(self.counts(root), {('192.0.2.99', 'none'): 2})
        rec = root.find('record')
        self.assertEqual(rec.findtext('row/policy_evaluated/spf'), 'pass')
        self.assertEqual(rec.findtext('auth_results/spf/domain'), DOMAIN)
        self.assertEqual(rec.findtext('auth_results/spf/result'), 'pass')

        msg, root = self.report_of('dmarc-ext', 'ext-ok.example')
        self.assertEqual(root.findtext('policy_published/p'), 'reject')
        self.assertEqual(root.findtext('policy_published/adkim'), 's')
        self.assertEqual(self.counts(root), {('192.0.2.99', 'none'): 2,
                                             ('192.0.2.98', 'reject'): 1})
        begin = int(root.findtext('report_metadata/date_range/begin'))
        end = int(root.findtext('report_metadata/date_range/end'))
        self.assertEqual(time.strftime('%Y-%m-%d', time.gmtime(begin)), self.day)
        self.assertEqual(end - begin, 86399)

        # the unauthorised external destination got nothing
        none = labcase.imap_fetch(self.dovecot.imap_port, 'dmarc-no@%s' % DOMAIN,
                                  self.pw['dmarc-no'], '"Report Domain"', key='SUBJECT',
                                  timeout=5)
        self.assertIsNone(none)

    def test_2_again_sends_nothing(self):
        self.send_mail()
        first = self.ctl('dmarc', 'send-reports', '--date', self.day)
        # whether this or test_1 sent first: now every day is recorded as sent
        p = self.ctl('dmarc', 'send-reports', '--date', self.day)
        self.assertIn('%s: report for this day already sent' % DOMAIN, p.stdout)
        self.assertIn('ext-ok.example: report for this day already sent', p.stdout)
        self.assertNotIn(': sent report', p.stdout)
        self.assertNotIn('ext-no.example: sent', first.stdout + p.stdout)
        # exactly one report per mailbox
        for box, dom in (('dmarc-own', DOMAIN), ('dmarc-ext', 'ext-ok.example')):
            m = imaplib.IMAP4('127.0.0.1', self.dovecot.imap_port, timeout=20)
            try:
                m.login('%s@%s' % (box, DOMAIN), self.pw[box])
                m.select('INBOX', readonly=True)
                typ, data = m.search(None, 'SUBJECT', '"Report Domain: %s"' % dom)
                self.assertEqual(typ, 'OK')
                deadline = time.monotonic() + 30
                while not data[0] and time.monotonic() < deadline:
                    time.sleep(1)
                    m.noop()
                    typ, data = m.search(None, 'SUBJECT', '"Report Domain: %s"' % dom)
                self.assertEqual(len(data[0].split()), 1, (box, data))
            finally:
                m.logout()

    def test_4_store_failure_costs_no_mail(self):
        """Recording that fails never refuses mail, and is logged once per state change."""
        sqlite3 = shutil.which('sqlite3')
        self.assertIsNotNone(sqlite3, 'sqlite3 missing (scripts/setup installs it)')

        def sql(stmt):
            subprocess.run([sqlite3, self.store.db, stmt], check=True, timeout=30)

        enter = 'event=degraded component=milter_dmarc_record'
        leave = 'event=recovered component=milter_dmarc_record'
        self.assertNotIn(enter, self.log())
        sql('ALTER TABLE dmarc_evaluations RENAME TO dmarc_evaluations_away')
        try:
            for i in range(2):
                r = self.send_from('192.0.2.99', 'client.example.net', 'f%d@%s' % (i, DOMAIN),
                                   message('f%d@%s' % (i, DOMAIN), self.rcpt, 'fail%d' % i))
                self.assertEqual(r[0], 'sent', r)
        finally:
            sql('ALTER TABLE dmarc_evaluations_away RENAME TO dmarc_evaluations')
        self.assertEqual(self.log().count(enter), 1, self.log()[-3000:])
        self.assertNotIn(leave, self.log())
        r = self.send_from('192.0.2.99', 'client.example.net', 'g@%s' % DOMAIN,
                           message('g@%s' % DOMAIN, self.rcpt, 'again'))
        self.assertEqual(r[0], 'sent', r)
        self.assertEqual(self.log().count(leave), 1, self.log()[-3000:])

    def test_3_usage(self):
        p = self.ctl('dmarc', 'send-reports', '--date', '2026-02-30', check=2)
        self.assertIn('YYYY-MM-DD', p.stderr)
        p = self.ctl('dmarc', 'send-reports', '--date', '1999-01-01')
        self.assertIn('no DMARC evaluations recorded for that day', p.stdout)
        # no report_sender: refused
        p = subprocess.run([self.store.ctl_path, '-c', self.store.config, 'dmarc',
                            'send-reports'], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn('report_sender', p.stderr)


if __name__ == '__main__':
    unittest.main()
