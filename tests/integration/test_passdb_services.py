"""test_passdb_services - a credential means what it says for EVERY service name Dovecot can
pass, checked with `doveadm auth test -x service=NAME` against the lab Dovecot, whose passdb
and userdb files are conf.d/dovecot-sql-mailwarden*.conf.ext (issue 16 items 1 and 2).

imap, pop3, sieve and managesieve count as imap; smtp and submission as smtp; lmtp, doveadm,
imap-urlauth and any other name get no password login. A user with confirmed TOTP logs in
with app passwords only. Delivery still finds users (the userdb, not a passdb, answers it).
One Store + Dovecot + Postfix for the module; users are made per test.
"""

import hashlib
import secrets
import smtplib
import sqlite3
import subprocess
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod
from test_login import imap_login, smtp_login

DOMAIN = lab_mod.DOMAIN

# every service name Dovecot can pass in %s, and the protocol family it must count as
# (None: no password login at all)
SERVICES = {
    'imap': 'imap', 'pop3': 'imap', 'sieve': 'imap', 'managesieve': 'imap',
    'smtp': 'smtp', 'submission': 'smtp',
    'lmtp': None, 'doveadm': None, 'imap-urlauth': None, 'mailwarden-new-service': None,
}
NET = '192.0.2.0/24'
IN_NET, OUT_NET = '192.0.2.7', '198.51.100.9'


class PassdbServicesTest(labcase.LabCase):
    @classmethod
    def start_lab(cls):
        cls.store, cls.dovecot, cls.postfix = cls.lab.mail_stack()

    def tearDown(self):
        log = lab_mod.tail(self.dovecot.log_path, 400)
        self.assertNotIn('Error: sql', log, 'Dovecot passdb/userdb sql errors')

    # -- helpers ---------------------------------------------------------------------------

    def doveadm(self, *args):
        doveadm = lab_mod.find_binary('doveadm', 'dovecot-core')
        return subprocess.run([doveadm, '-c', self.dovecot.config] + list(args),
                              capture_output=True, text=True, timeout=60)

    def auth(self, user, password, service, rip='127.0.0.1'):
        """auth - True when `doveadm auth test` succeeds (exit 0), False when it is refused
        (exit 77); anything else is an error of the test set-up."""
        # '--': a generated app password may begin with '-' (doveadm took it for an option)
        p = self.doveadm('auth', 'test', '-x', 'service=' + service, '-x', 'rip=' + rip,
                         '--', user, password)
        if p.returncode not in (0, 77):
            self.fail('doveadm auth test %s: exit %d\n%s%s' % (service, p.returncode, p.stdout,
                                                               p.stderr))
        return p.returncode == 0

    def sql(self, query, *args):
        with sqlite3.connect(self.store.db) as db:
            db.execute('PRAGMA busy_timeout = 5000')
            cur = db.execute(query, args)
            rowid = cur.lastrowid
        self.store.fix_permissions()
        return rowid

    def new_user(self, main_protocols='imap,smtp'):
        user = 'svc-%s@%s' % (uuid.uuid4().hex[:8], DOMAIN)
        pw = 'Main-pass-' + uuid.uuid4().hex[:10]
        self.store.add_user(user, pw)
        self.sql('UPDATE users SET main_password_protocols = ? WHERE username = ?',
                 main_protocols, user)
        return user, pw

    def app_password(self, user, protocols, allow_nets=None):
        secret = secrets.token_urlsafe(24)
        self.sql('INSERT INTO app_passwords (user_id, name, protocols, hash, created_at, '
                 'allow_nets) SELECT id, ?, ?, ?, ?, ? FROM users WHERE username = ?',
                 'ap-' + uuid.uuid4().hex[:6], protocols,
                 hashlib.sha256(secret.encode()).hexdigest(), int(time.time()), allow_nets,
                 user)
        return secret

    def set_totp(self, user, text):
        self.sql('UPDATE users SET totp_secret = ? WHERE username = ?', text, user)

    def matrix(self, user, password, allowed, rip='127.0.0.1'):
        """matrix - {service: logged in?} for every service name."""
        got = dict((s, self.auth(user, password, s, rip)) for s in SERVICES)
        want = dict((s, fam is not None and fam in allowed) for s, fam in SERVICES.items())
        self.assertEqual(got, want, 'user %s rip %s allowed %s' % (user, rip, allowed))

    # -- main password -----------------------------------------------------------------------

    def test_main_password_every_service(self):
        for protocols in ('imap,smtp', 'imap', 'smtp', ''):
            with self.subTest(main_password_protocols=protocols):
                user, pw = self.new_user(protocols)
                self.matrix(user, pw, protocols.split(','))
                self.assertFalse(self.auth(user, pw + 'x', 'imap'))

    def test_main_password_barred_refused_on_sieve_and_unknown(self):
        # the reported hole: `main_password_protocols: []` and service=sieve / lmtp / doveadm
        user, pw = self.new_user('')
        for service in SERVICES:
            with self.subTest(service=service):
                self.assertFalse(self.auth(user, pw, service))

    def test_disabled_user_refused_everywhere(self):
        user, pw = self.new_user()
        ap = self.app_password(user, 'imap,smtp')
        self.sql("UPDATE users SET status = 'disabled' WHERE username = ?", user)
        self.matrix(user, pw, [])
        self.matrix(user, ap, [])

    # -- app passwords -------------------------------------------------------------------------

    def test_app_password_smtp_and_network(self):
        user, _ = self.new_user('')
        ap = self.app_password(user, 'smtp', NET)
        self.matrix(user, ap, ['smtp'], rip=IN_NET)
        self.matrix(user, ap, [], rip=OUT_NET)

    def test_app_password_imap(self):
        user, _ = self.new_user('')
        ap = self.app_password(user, 'imap')
        self.matrix(user, ap, ['imap'])

    def test_app_password_imap_and_smtp_not_other_services(self):
        user, _ = self.new_user('')
        ap = self.app_password(user, 'imap,smtp', NET)
        self.matrix(user, ap, ['imap', 'smtp'], rip=IN_NET)
        self.matrix(user, ap, [], rip=OUT_NET)

    # -- TOTP ---------------------------------------------------------------------------------

    def test_confirmed_totp_bars_main_password_everywhere(self):
        user, pw = self.new_user('imap,smtp')
        ap = self.app_password(user, 'imap,smtp')
        self.set_totp(user, 'pending:v1:not-yet-confirmed')
        self.matrix(user, pw, ['imap', 'smtp'])  # an unconfirmed enrolment changes nothing
        self.set_totp(user, 'v1:confirmed-state')
        self.matrix(user, pw, [])
        self.matrix(user, ap, ['imap', 'smtp'])  # app passwords still work
        # through the real servers: IMAP LOGIN and SMTP AUTH (Postfix SASL via Dovecot)
        self.assertFalse(imap_login(self.dovecot.imap_port, user, pw))
        self.assertFalse(smtp_login(self.postfix.smtp_port, user, pw))
        self.assertTrue(imap_login(self.dovecot.imap_port, user, ap))
        self.assertTrue(smtp_login(self.postfix.smtp_port, user, ap))
        self.set_totp(user, None)
        self.assertTrue(imap_login(self.dovecot.imap_port, user, pw))

    def test_unknown_totp_state_bars_main_password(self):
        # a state the query cannot read is treated as TOTP on: refuse, never accept
        user, pw = self.new_user()
        self.set_totp(user, 'v2:some-future-format')
        self.matrix(user, pw, [])

    # -- lookups without a password --------------------------------------------------------------

    def test_userdb_lookups_and_delivery(self):
        user, _ = self.new_user('')
        self.set_totp(user, 'v1:confirmed-state')
        p = self.doveadm('user', user)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('home', p.stdout)
        p = self.doveadm('user', 'nobody-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN))
        self.assertNotEqual(p.returncode, 0)
        # LMTP delivery (no password) finds the user though no passdb would log it in
        lmtp = smtplib.LMTP('127.0.0.1', self.dovecot.lmtp_port, timeout=20)
        try:
            lmtp.ehlo('lab')
            code, _ = lmtp.docmd('MAIL FROM:<sender@example.net>')
            self.assertEqual(code, 250)
            code, msg = lmtp.docmd('RCPT TO:<%s>' % user)
            self.assertEqual(code, 250, msg)
            code, _ = lmtp.docmd('RCPT TO:<missing-%s@%s>' % (uuid.uuid4().hex[:6], DOMAIN))
            self.assertEqual(code // 100, 5)
        finally:
            lmtp.close()
        self.sql("UPDATE users SET status = 'disabled' WHERE username = ?", user)
        p = self.doveadm('user', user)
        self.assertNotEqual(p.returncode, 0)


if __name__ == '__main__':
    unittest.main()
