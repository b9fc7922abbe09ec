"""test_quickstart - the one-command host survives what a laptop goes through (issue 17).

scripts/quickstart starts a host in a lab directory with the build under test. Then, as a
user would: a daemon killed while the host runs is brought back by the quickstart's
supervisor; `start` run again after daemons died (the supervisor gone too) restarts only
what is down and keeps the store, mail, ports and passwords; after a simulated reboot (every
process of the host killed) start brings all of it back, with one Postfix master; the printed
mailwardenctl reaches the policy daemon; stop leaves no process of the host behind.
Tests run in name order (test_1_ ... test_5_), each on the host the one before left.
"""

import http.client
import imaplib
import json
import os
import shlex
import shutil
import signal
import smtplib
import subprocess
import sys
import time
import unittest
import uuid

import mailwarden_lab as lab_mod

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(TOP, 'scripts', 'quickstart')


qs_mod = lab_mod.load_quickstart()


class QuickstartSurvives(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.root = lab_mod.make_root('mwqs-')
        cls.state = os.path.join(cls.root, 'state')
        p = cls.qs('start')
        if p.returncode != 0:
            raise AssertionError('quickstart start failed:\n%s' % p.stderr[-4000:])
        cls.env_text = cls.read_env_text()
        cls.env = cls.parse_env(cls.env_text)
        with open(os.path.join(cls.state, 'state.json')) as f:
            cls.ports = json.load(f)['ports']

    @classmethod
    def tearDownClass(cls):
        cls.qs('stop')
        left = qs_mod.host_processes([os.path.join(cls.state, 'lab')],
                                     lab_mod.DEFAULT_BUILDDIR)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(cls.root, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------

    @classmethod
    def qs(cls, *args):
        return subprocess.run([sys.executable, QUICKSTART] + list(args) + [
            '--state', cls.state, '--builddir', lab_mod.DEFAULT_BUILDDIR],
            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)

    @classmethod
    def read_env_text(cls):
        with open(os.path.join(cls.state, 'env')) as f:
            return f.read()

    @staticmethod
    def parse_env(text):
        env = {}
        for line in text.splitlines():
            if '=' in line and not line.startswith('#'):
                k, v = line.split('=', 1)
                env[k] = shlex.split(v)[0] if v else ''
        return env

    def pid_of(self, rel):
        return lab_mod.read_pidfile(os.path.join(self.state, 'lab', rel))

    def send(self, token, timeout=60):
        """send - a message from the demo user to itself, retried on 4xx / no connection
        (as an MTA would) until TIMEOUT; fails the test on a 5xx."""
        user, pw = self.env['MW_DEMO_USER'], self.env['MW_DEMO_PASSWORD']
        msg = ('From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@quickstart.test>\r\n\r\n'
               'hello %s\r\n' % (user, user, token, token, token))
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP('127.0.0.1', int(self.env['MW_SMTP_PORT']), timeout=30) as s:
                    s.login(user, pw)
                    s.sendmail(user, [user], msg)
                    return
            except smtplib.SMTPResponseException as e:
                last = e
                if e.smtp_code >= 500 and e.smtp_code != 535:
                    self.fail('refused: %s' % e)
            except (smtplib.SMTPException, OSError) as e:
                last = e
            time.sleep(1)
        self.fail('not accepted within %ds: %s' % (timeout, last))

    def subjects(self):
        """subjects - the Subject values in the demo user's INBOX ([] when IMAP is down)."""
        try:
            m = imaplib.IMAP4('127.0.0.1', int(self.env['MW_IMAP_PORT']), timeout=20)
        except OSError:
            return []
        try:
            m.login(self.env['MW_DEMO_USER'], self.env['MW_DEMO_PASSWORD'])
            m.select('INBOX', readonly=True)
            typ, data = m.fetch('1:*', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
            out = []
            for item in data:
                if isinstance(item, tuple):
                    out.append(item[1].decode().split(':', 1)[1].strip())
            return out
        except imaplib.IMAP4.error:
            return []
        finally:
            try:
                m.logout()
            except Exception:
                pass

    def delivered(self, token, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if token in self.subjects():
                return True
            time.sleep(0.5)
        return False

    def assert_same_host(self):
        self.assertEqual(self.read_env_text(), self.env_text, 'STATE/env changed')
        with open(os.path.join(self.state, 'state.json')) as f:
            self.assertEqual(json.load(f)['ports'], self.ports)
        self.assertEqual(sorted(os.listdir(os.path.join(self.state, 'lab'))),
                         ['api', 'dovecot', 'mail', 'milter', 'nginx', 'policyd', 'postfix',
                          'store'])

    def postfix_masters(self):
        queue = os.path.join(self.state, 'lab', 'postfix', 'spool')
        return [p for p in qs_mod.host_processes([queue], lab_mod.DEFAULT_BUILDDIR)
                if 'postfix/sbin/master' in (qs_mod.proc_info(p) or ('', '', ''))[2]]

    # -- tests -------------------------------------------------------------------------------

    def test_1_supervisor_restarts_a_killed_milter(self):
        token = 'before-' + uuid.uuid4().hex[:8]
        self.send(token)
        self.assertTrue(self.delivered(token))
        old = self.pid_of('milter/milter.pid')
        os.kill(old, signal.SIGKILL)
        lab_mod.wait_until(lambda: self.pid_of('milter/milter.pid') not in (None, old)
                           and lab_mod.pid_alive(self.pid_of('milter/milter.pid')), 30,
                           'the supervisor to restart the milter')
        # the new pid file comes first; the supervisor says "restarted" once the milter serves
        sup_log = os.path.join(self.state, 'supervisor.log')

        def said_restarted():
            with open(sup_log) as f:
                return 'milter restarted' in f.read()
        lab_mod.wait_until(said_restarted, 30, 'the supervisor to log the restart')
        with open(sup_log) as f:
            log = f.read()
        self.assertIn('milter is down', log)
        self.assertIn('milter restarted', log)
        token = 'after-milter-' + uuid.uuid4().hex[:8]
        self.send(token)
        self.assertTrue(self.delivered(token))
        self.assert_same_host()

    def test_2_start_again_restarts_what_is_down(self):
        sup = lab_mod.read_pidfile(os.path.join(self.state, 'supervisor.pid'))
        os.kill(sup, signal.SIGTERM)
        lab_mod.wait_until(lambda: not lab_mod.pid_alive(sup), 15, 'the supervisor to stop')
        before = self.subjects()
        self.assertTrue(before)
        for rel in ('policyd/policyd.pid', 'dovecot/run/master.pid'):
            os.kill(self.pid_of(rel), signal.SIGKILL)
        p = self.qs('start')
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        self.assertIn('restarted: dovecot, policyd (store, mail, ports and passwords kept)',
                      p.stderr)
        self.assertNotIn('milter is down', p.stderr)
        self.assert_same_host()
        st = self.qs('status')
        self.assertEqual(st.returncode, 0, st.stdout)
        self.assertIn('supervisor running', st.stdout)
        token = 'after-start-' + uuid.uuid4().hex[:8]
        self.send(token)
        self.assertTrue(self.delivered(token))
        self.assertEqual(self.subjects()[:len(before)], before)

    def test_3_reboot_brings_everything_back(self):
        # a reboot: every process of the host gone at once, pid files left behind
        sup = lab_mod.read_pidfile(os.path.join(self.state, 'supervisor.pid'))
        os.kill(sup, signal.SIGKILL)
        for pid in qs_mod.host_processes([os.path.join(self.state, 'lab')],
                                         lab_mod.DEFAULT_BUILDDIR, self.ports.values()):
            os.kill(pid, signal.SIGKILL)
        p = self.qs('start')
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        self.assertIn('restarted: dovecot, policyd, milter, postfix, api, nginx', p.stderr)
        self.assert_same_host()
        self.assertEqual(len(self.postfix_masters()), 1)
        token = 'after-reboot-' + uuid.uuid4().hex[:8]
        self.send(token)
        self.assertTrue(self.delivered(token))
        self.assertIn('before-', ' '.join(self.subjects()))
        # the API answers through nginx again (401 without a session)
        c = http.client.HTTPConnection('127.0.0.1', int(self.env['MW_API_PORT']), timeout=10)
        c.request('GET', '/api/v1/users')
        r = c.getresponse()
        r.read()
        self.assertEqual(r.status, 401)
        # and the web page
        c.request('GET', '/')
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertIn(b'<html', r.read().lower())

    def test_4_printed_ctl_reaches_the_policy_daemon(self):
        p = subprocess.run(shlex.split(self.env['MW_CTL']) + ['ratelimit', 'status',
                                                               self.env['MW_DEMO_USER']],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('sasl_username messages', p.stdout)

    def test_5_stop_leaves_nothing_and_start_keeps_the_host(self):
        p = self.qs('stop')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(qs_mod.host_processes([os.path.join(self.state, 'lab')],
                                               lab_mod.DEFAULT_BUILDDIR,
                                               self.ports.values()), [])
        self.assertIsNone(qs_mod.supervisor_pid(self.state))
        p = self.qs('start')
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        self.assert_same_host()
        self.assertEqual(len(self.postfix_masters()), 1)
        lab_mod.wait_until(lambda: any(s.startswith('after-reboot-') for s in self.subjects()),
                           30, 'the mail of before the stop in the mailbox')


if __name__ == '__main__':
    unittest.main()
