"""test_login - users made with mailwardenctl log in over IMAP and SMTP AUTH, and mail flows.

One Store + Dovecot + Postfix for the whole module (setUpClass): users are created per test
with distinct names so the tests stay independent of each other and of their order.
"""

import imaplib
import os
import smtplib
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod
from labcase import smtp_login

DOMAIN = lab_mod.DOMAIN
DELIVERY_TIMEOUT = 30


def imap_login(port, user, password):
    """imap_login - True when LOGIN succeeds, False when refused (NO)."""
    return labcase.imap_login(port, user, password,
                              refusals=('AUTHENTICATIONFAILED', 'Authentication failed'))


def make_message(sender, rcpt, token):
    """make_message - a small RFC 5322 message carrying TOKEN in its Message-ID and body."""
    return ('From: <%s>\r\nTo: <%s>\r\nSubject: lab test %s\r\n'
        'Message-ID: <%s@client.example.org>\r\nDate: %s\r\n\r\n'
        'body token %s\r\n' % (sender, rcpt, token, token,
                       time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime()),
                       token))


class LoginTest(labcase.LabCase):
    """Logins and delivery through a real Postfix + Dovecot on the mailwarden store."""

    @classmethod
    def start_lab(cls):
        cls.store, cls.dovecot, cls.postfix = cls.lab.mail_stack()
        cls.imap = cls.dovecot.imap_port
        cls.smtp = cls.postfix.smtp_port

    def new_user(self, password=None, **kw):
        """new_user - a fresh user (unique name); returns (user, password)."""
        user = 'u%s@%s' % (uuid.uuid4().hex[:10], DOMAIN)
        return user, self.store.add_user(user, password, **kw)

    def assert_logins(self, user, password, ok):
        """assert_logins - IMAP and SMTP AUTH both succeed (OK) or both are refused."""
        self.assertEqual(imap_login(self.imap, user, password), ok,
                 'IMAP login of %s should %s' % (user, 'work' if ok else 'be refused'))
        self.assertEqual(smtp_login(self.smtp, user, password), ok,
                 'SMTP AUTH of %s should %s' % (user, 'work' if ok else 'be refused'))

    def test_imap_and_smtp_login(self):
        user, pw = self.new_user()
        self.assertTrue(pw)
        self.assert_logins(user, pw, True)

    def test_password_from_stdin(self):
        user, pw = self.new_user('Stdin-pass-' + uuid.uuid4().hex[:8])
        self.assert_logins(user, pw, True)

    def test_login_name_is_case_insensitive(self):
        user, pw = self.new_user()
        local, domain = user.split('@')
        self.assert_logins(local.upper() + '@' + domain.upper(), pw, True)

    def test_wrong_password_refused(self):
        user, pw = self.new_user()
        for wrong in (pw + 'x', pw[:-1], ''):
            self.assert_logins(user, wrong, False)
        # and the right one still works afterwards
        self.assert_logins(user, pw, True)

    def test_auth_worker_does_not_run_as_root(self):
        """The store is read by auth-worker as `dovecot` (see PERMISSIONS_NOTE)."""
        user, pw = self.new_user()
        self.assertTrue(imap_login(self.imap, user, pw))
        master = lab_mod.read_pidfile(self.dovecot.pidfile)
        workers = []
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                with open('/proc/%s/status' % pid) as f:
                    st = dict(l.split(':', 1) for l in f if ':' in l)
                with open('/proc/%s/cmdline' % pid, 'rb') as f:
                    cmd = f.read()
            except OSError:
                continue
            if int(st['PPid']) == master and cmd.split(b'\0')[:2] == [b'dovecot/auth', b'-w']:
                # 2.3 names the auth-worker "dovecot/auth -w"
                workers.append(int(st['Uid'].split()[0]))
        self.assertTrue(workers, 'no auth-worker process found')
        dovecot_uid = lab_mod.pwd.getpwnam('dovecot').pw_uid
        self.assertEqual(set(workers), {dovecot_uid})

    def test_unknown_user_refused(self):
        self.assert_logins('nosuchuser-%s@%s' % (uuid.uuid4().hex[:8], DOMAIN), 'whatever1',
                   False)

    def test_disabled_user_refused_until_enabled(self):
        user, pw = self.new_user()
        self.assert_logins(user, pw, True)
        self.store.ctl('user', 'disable', user)
        self.assert_logins(user, pw, False)
        self.store.ctl('user', 'enable', user)
        self.assert_logins(user, pw, True)

    def test_pending_user_refused(self):
        user, pw = self.new_user(status='pending')
        self.assert_logins(user, pw, False)

    def test_password_change_takes_effect_at_once(self):
        user, old = self.new_user()
        self.assert_logins(user, old, True)
        new = 'New-' + uuid.uuid4().hex
        self.store.set_password(user, new)
        self.assert_logins(user, old, False)
        self.assert_logins(user, new, True)
        p = self.store.ctl('user', 'passwd', user, '--generate', secret_stdout=True)
        generated = p.stdout.strip().splitlines()[-1].strip()
        self.assertNotEqual(generated, new)
        self.assert_logins(user, new, False)
        self.assert_logins(user, generated, True)

    def test_submitted_message_arrives_in_inbox(self):
        user, pw = self.new_user()
        self.store.allow_from(user, user)
        token = uuid.uuid4().hex
        with smtplib.SMTP('127.0.0.1', self.smtp, timeout=30) as s:
            s.ehlo('client.example.org')
            s.login(user, pw)
            refused = s.sendmail(user, [user], make_message(user, user, token))
        self.assertEqual(refused, {})
        body = self.wait_for_message(user, pw, token)
        self.assertIn(('body token %s' % token).encode(), body)
        self.assertIn(('Message-ID: <%s@client.example.org>' % token).encode(), body)

    def wait_for_message(self, user, pw, token):
        """wait_for_message - poll USER's INBOX over IMAP for TOKEN's Message-ID; the raw
		message, or fail after DELIVERY_TIMEOUT seconds."""
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while True:
            m = imaplib.IMAP4('127.0.0.1', self.imap, timeout=20)
            try:
                m.login(user, pw)
                typ, _ = m.select('INBOX', readonly=True)
                self.assertEqual(typ, 'OK')
                typ, data = m.search(None, 'HEADER', 'Message-ID', token)
                self.assertEqual(typ, 'OK')
                ids = data[0].split()
                if ids:
                    self.assertEqual(len(ids), 1, 'message delivered more than once')
                    typ, msg = m.fetch(ids[0], '(BODY.PEEK[])')
                    self.assertEqual(typ, 'OK')
                    return msg[0][1]
            finally:
                m.logout()
            if time.monotonic() > deadline:
                self.fail('message %s not in INBOX of %s after %ds'
                      % (token, user, DELIVERY_TIMEOUT))
            self.postfix.flush()
            time.sleep(0.3)

    def test_unknown_local_recipient_refused_at_rcpt(self):
        """Postfix asks Dovecot (address verification over LMTP) and refuses at RCPT
		with 550 5.1.1: nothing is accepted, so nothing bounces."""
        user, pw = self.new_user()
        nobody = 'nobody-%s@%s' % (uuid.uuid4().hex[:8], DOMAIN)
        with smtplib.SMTP('127.0.0.1', self.smtp, timeout=60) as s:
            s.ehlo('client.example.org')
            s.login(user, pw)
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                s.sendmail(user, [nobody], make_message(user, nobody, uuid.uuid4().hex))
        code, text = cm.exception.recipients[nobody]
        self.assertEqual(code, 550, text)
        self.assertTrue(text.startswith(b'5.1.1'), text)

    def test_unauthenticated_relay_refused(self):
        """Without AUTH nobody relays to another domain."""
        with smtplib.SMTP('127.0.0.1', self.smtp, timeout=30) as s:
            s.ehlo('client.example.org')
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                s.sendmail('someone@example.net', ['victim@example.com'],
                       make_message('someone@example.net', 'victim@example.com', 'x'))
        code, text = cm.exception.recipients['victim@example.com']
        self.assertEqual(code, 554, text)
        self.assertIn(b'Relay access denied', text)


if __name__ == '__main__':
    unittest.main()
