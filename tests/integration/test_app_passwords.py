"""test_app_passwords - app passwords and the main-password switch, end to end.

One Store + Dovecot + Postfix + API + nginx for the module. App passwords are made through
the API and used against real Dovecot (IMAP LOGIN) and real Postfix (SMTP AUTH through
Dovecot SASL); Dovecot's own passdb sql enforces protocols, expiry and allow_nets.
"""

import glob
import hashlib
import os
import smtplib
import sqlite3
import time
import unittest
import uuid

import mailwarden_lab as lab_mod
from labcase import ApiBase, AppPasswordUsers
from test_login import imap_login, make_message, smtp_login

DOMAIN = lab_mod.DOMAIN


class AppPasswordTest(AppPasswordUsers, ApiBase):
    @classmethod
    def start_lab(cls):
        cls.store, cls.dovecot, cls.postfix = cls.lab.mail_stack()
        cls.start_api(api_config={'max_sessions_per_user': '1000'})
        cls.add_admin()

    def tearDown(self):
        super().tearDown()
        log = lab_mod.tail(self.dovecot.log_path, 400)
        self.assertNotIn('Error: sql', log, 'Dovecot passdb sql errors')

    def logins(self, user, password):
        return (imap_login(self.dovecot.imap_port, user, password),
                smtp_login(self.postfix.smtp_port, user, password))

    def test_app_password_for_imap_and_smtp_shown_once_hashed(self):
        user, pw, tok = self.new_user()
        ap = self.create(user, tok, name='phone')
        secret = ap['password']
        self.assertGreaterEqual(len(secret), 32)
        self.assertEqual(ap['protocols'], ['imap', 'smtp'])
        self.assertIsNone(ap['expires_at'])
        self.assertIsNone(ap['allow_nets'])
        self.assertEqual(self.logins(user, secret), (True, True))
        self.assertEqual(self.logins(user, pw), (True, True))  # main password still allowed
        wrong = secret[:-1] + ('y' if secret.endswith('x') else 'x')  # one character off
        self.assertEqual(self.logins(user, wrong), (False, False))
        # stored as the unsalted SHA-256 that Dovecot compares; never shown again
        with sqlite3.connect(self.store.db) as db:
            (h,) = db.execute('SELECT hash FROM app_passwords WHERE id = ?',
                              (ap['id'],)).fetchone()
        self.assertEqual(h, hashlib.sha256(secret.encode()).hexdigest())
        a = self.expect(self.call('GET', '/api/v1/users/%s/app-passwords' % user,
                                  token=tok), 200)
        self.assertEqual([x['name'] for x in a.json['app_passwords']], ['phone'])
        self.assertNotIn(secret, a.raw.decode())
        self.assertNotIn(h, a.raw.decode())
        self.assertNotIn('password', a.json['app_passwords'][0])
        for k in ('last_used_at', 'last_ip', 'created_at', 'id'):
            self.assertIn(k, a.json['app_passwords'][0])
        # an app password does not open an API session
        self.expect(self.call('POST', '/api/v1/sessions',
                              body={'username': user, 'password': secret}), 401)
        # same name again: 409; the audit has the name, never the password
        self.create(user, tok, status=409, name='phone')
        admin = self.login(self.admin, self.admin_pw)
        a = self.expect(self.call('GET', '/api/v1/audit?action=app_password.add&target=' + user,
                                  token=admin), 200)
        self.assertEqual(len(a.json['entries']), 1)
        self.assertNotIn(secret, a.raw.decode())
        # deleting it stops it at once, for both protocols
        path = '/api/v1/users/%s/app-passwords/%d' % (user, ap['id'])
        self.expect(self.call('DELETE', path, token=tok), 204)
        self.assertEqual(self.logins(user, secret), (False, False))
        self.expect(self.call('DELETE', path, token=tok), 404)

    def test_protocol_restriction(self):
        user, _pw, tok = self.new_user()
        imap_only = self.create(user, tok, protocols=['imap'])['password']
        smtp_only = self.create(user, tok, protocols=['smtp'])['password']
        self.assertEqual(self.logins(user, imap_only), (True, False))
        self.assertEqual(self.logins(user, smtp_only), (False, True))

    def test_allow_nets(self):
        user, _pw, tok = self.new_user()
        outside = self.create(user, tok, allow_nets=['10.0.0.0/8', '2001:db8::/32'])
        inside = self.create(user, tok, allow_nets=['192.0.2.1', '127.0.0.0/8'])
        self.assertEqual(outside['allow_nets'], ['10.0.0.0/8', '2001:db8::/32'])
        self.assertEqual(self.logins(user, outside['password']), (False, False))
        self.assertEqual(self.logins(user, inside['password']), (True, True))

    def test_expiry(self):
        user, _pw, tok = self.new_user()
        later = self.create(user, tok, expires_at=int(time.time()) + 3600)
        soon = self.create(user, tok, expires_at=int(time.time()) + 3)
        self.assertEqual(self.logins(user, later['password']), (True, True))
        self.assertEqual(imap_login(self.dovecot.imap_port, user, soon['password']), True)
        time.sleep(max(0, soon['expires_at'] - time.time()) + 1.2)
        self.assertEqual(self.logins(user, soon['password']), (False, False))
        self.assertEqual(self.logins(user, later['password']), (True, True))

    def test_main_password_switch(self):
        user, pw, tok = self.new_user()
        ap = self.create(user, tok)['password']
        admin = self.login(self.admin, self.admin_pw)
        path = '/api/v1/users/' + user
        a = self.expect(self.call('GET', path, token=tok), 200)
        self.assertEqual(a.json['main_password_protocols'], ['imap', 'smtp'])
        # users cannot flip it themselves (PATCH is an admin route)
        self.expect(self.call('PATCH', path, token=tok,
                              body={'main_password_protocols': []}), 403)
        a = self.expect(self.call('PATCH', path, token=admin,
                                  body={'main_password_protocols': []}), 200)
        self.assertEqual(a.json['main_password_protocols'], [])
        self.assertEqual(self.logins(user, pw), (False, False))
        self.assertEqual(self.logins(user, ap), (True, True))
        self.login(user, pw)  # the API itself still takes the main password
        # mail still arrives (LMTP looks the user up without a password), sent with the app
        # password and read with it
        self.store.allow_from(user, user)
        token = uuid.uuid4().hex
        with smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=30) as s:
            s.ehlo('client.example.org')
            s.login(user, ap)
            self.assertEqual(s.sendmail(user, [user], make_message(user, user, token)), {})
        deadline = time.monotonic() + 20
        while not glob.glob(os.path.join(self.dovecot.maildir(user), 'new', '*')):
            self.assertLess(time.monotonic(), deadline, 'the message was not delivered')
            time.sleep(0.2)
        a = self.expect(self.call('PATCH', path, token=admin,
                                  body={'main_password_protocols': ['smtp']}), 200)
        self.assertEqual(a.json['main_password_protocols'], ['smtp'])
        self.assertEqual(self.logins(user, pw), (False, True))
        self.expect(self.call('PATCH', path, token=admin,
                              body={'main_password_protocols': ['smtp', 'imap']}), 200)
        self.assertEqual(self.logins(user, pw), (True, True))
        for bad in (['pop3'], ['imap', 'imap'], 'imap', [1], None):
            self.expect(self.call('PATCH', path, token=admin,
                                  body={'main_password_protocols': bad}), 422)
        self.assertEqual(self.logins(user, pw), (True, True))

    def test_other_users_and_admin(self):
        user, _pw, tok = self.new_user()
        other, _opw, otok = self.new_user()
        admin = self.login(self.admin, self.admin_pw)
        base = '/api/v1/users/%s/app-passwords' % user
        self.expect(self.call('GET', base, token=otok), 403)
        self.expect(self.call('POST', base, token=otok, body={'name': 'x'}), 403)
        # an admin creates one for the user; the user sees and can delete it
        ap = self.create(user, admin, name='by-admin')
        a = self.expect(self.call('GET', base, token=tok), 200)
        self.assertEqual([x['id'] for x in a.json['app_passwords']], [ap['id']])
        self.assertEqual(self.logins(user, ap['password']), (True, True))
        # the id of someone else's app password is not found under another user
        oap = self.create(other, otok)
        self.expect(self.call('DELETE', '/api/v1/users/%s/app-passwords/%d' % (user, oap['id']),
                              token=tok), 404)
        self.expect(self.call('DELETE', '/api/v1/users/%s/app-passwords/%d' % (other, ap['id']),
                              token=admin), 404)
        self.assertEqual(self.logins(other, oap['password']), (True, True))
        # an app password of one user does not log in another
        self.assertEqual(self.logins(other, ap['password']), (False, False))
        self.expect(self.call('DELETE', '%s/%d' % (base, ap['id']), token=admin), 204)

    def test_hostile_input(self):
        user, _pw, tok = self.new_user()
        bad_bodies = [
            {}, {'name': ''}, {'name': 'x' * 65}, {'name': 'a\nb'}, {'name': 7},
            {'name': 'a', 'protocols': []}, {'name': 'a', 'protocols': ['pop3']},
            {'name': 'a', 'protocols': 'imap'}, {'name': 'a', 'protocols': ['imap', 'imap']},
            {'name': 'a', 'expires_at': int(time.time()) - 10},
            {'name': 'a', 'expires_at': 'tomorrow'},
            {'name': 'a', 'allow_nets': ['300.1.1.1']}, {'name': 'a', 'allow_nets': '10.0.0.0/8'},
            {'name': 'a', 'allow_nets': ['10.0.0.0/33']}, {'name': 'a', 'allow_nets': ['::/129']},
            {'name': 'a', 'allow_nets': ['10.0.0.0/8 ']},
            {'name': 'a', 'allow_nets': ["10.0.0.1' OR '1'='1"]},
            {'name': 'a', 'allow_nets': ['10.0.0.%d' % i for i in range(17)]},
            {'name': 'a', 'extra': True},
        ]
        for body in bad_bodies:
            self.expect(self.call('POST', '/api/v1/users/%s/app-passwords' % user, body=body,
                                  token=tok), 422)
        a = self.expect(self.call('GET', '/api/v1/users/%s/app-passwords' % user, token=tok),
                        200)
        self.assertEqual(a.json['app_passwords'], [])
        # SQL metacharacters in a name are just text
        ap = self.create(user, tok, name="x'); DROP TABLE users; --")
        self.assertEqual(ap['name'], "x'); DROP TABLE users; --")
        for ident in ('0', '-1', 'abc', '1e3', '99999999999999999999', '%27'):
            self.expect(self.call('DELETE', '/api/v1/users/%s/app-passwords/%s' % (user, ident),
                                  token=tok), 404)
        self.assertEqual(self.logins(user, ap['password']), (True, True))


if __name__ == '__main__':
    unittest.main()
