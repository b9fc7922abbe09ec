"""test_api_guard - account security of mailwarden-api through real nginx (issues 9 and 16).

One Store + API for the module, behind a real nginx that runs the shipped
conf.d/nginx-mailwarden.conf.sample (only the fastcgi_pass address is replaced), listening
on 127.0.0.1 and [::1]. Clients connect from chosen 127.0.0.x source addresses, so each
test has its own client networks.

- every check of a password or code is counted: wrong current_password on a password change
  and on TOTP removal slows that (account, network) pair like wrong logins (issue 9 item 5);
- a distributed attack on one account reaches login_account_ceiling: an alert naming the
  account (never the password) and, with login_account_lock = yes, a lock;
- Dovecot's auth policy reports of failed mail logins count in the same state, and the
  before-auth answer refuses a pair that must wait;
- a stolen session cannot mint lasting access: creating an app password or enrolling TOTP
  needs the current password; a password change deletes the app passwords (issue 16 item 3);
- with TOTP confirmed the API reports main_password_protocols [] (issue 16 item 2);
- the internal route answers loopback only, wrong internal secrets are throttled, and
  cors_origin = null or * stops the API at start with file:line (issue 16 item 8).
"""

import os
import sqlite3
import time
import unittest
import uuid

import mailwarden_lab as lab_mod
from labcase import ApiBase, call
from test_api_totp import totp

DOMAIN = lab_mod.DOMAIN
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = 'guard-' + uuid.uuid4().hex
INTERNAL = '/api/v1/internal/auth-policy'


def call6(port, method, path, body=None, headers=None):
    """call6 - one request to nginx over [::1]."""
    return call(port, method, path, body=body, headers=headers, host='::1', source=None)


class SampleNginx(lab_mod.Nginx):
    """nginx running conf.d/nginx-mailwarden.conf.sample in its server block."""
    name = 'nginx-sample'

    def __init__(self, root, api_addr, **kw):
        with open(os.path.join(TOP, 'conf.d', 'nginx-mailwarden.conf.sample')) as f:
            sample = f.read()
        self.sample_text = sample.replace('fastcgi_pass unix:/run/mailwarden-api/api.sock;',
                                          'fastcgi_pass %s;' % api_addr)
        assert self.sample_text.count(api_addr) >= 2, 'the sample names its fastcgi_pass'
        super().__init__(root, **kw)

    def render_config(self):
        self.extra_server = ('    listen [::1]:%d;\n' % self.port) + self.sample_text
        return super().render_config()


class ApiGuardTest(ApiBase):
    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.api = cls.lab.api(cls.store, name='api-guard', api_config={
            'max_sessions_per_user': '1000', 'login_max_failures': '3',
            'login_delay': '30s', 'login_delay_max': '120s', 'login_lock_time': '60s',
            'ip_max_failures': '8', 'login_account_ceiling': '4',
            'login_account_lock': 'yes', 'auth_policy_secret': SECRET})
        cls.nginx = cls.lab.add(SampleNginx(cls.lab.root, cls.api.fastcgi()[1]))
        cls.add_admin()

    def new_user(self):
        return self.store_user('Guard-pass-')

    def admin_token(self):
        return self.login(self.admin, self.admin_pw, source='127.0.0.250')

    def user_row(self, user):
        return self.expect(self.call('GET', '/api/v1/users/' + user, token=self.admin_token(),
                                     source='127.0.0.250'), 200).json

    def session(self, user, pw, source, code=None):
        body = {'username': user, 'password': pw}
        if code is not None:
            body['totp'] = code
        return self.call('POST', '/api/v1/sessions', body=body, source=source)

    def internal(self, command, body, source='127.0.0.1', secret=SECRET):
        return self.call('POST', INTERNAL + '?command=' + command, body=body, source=source,
                         headers={'Authorization': 'Bearer ' + secret})

    # ---- A: every check of a password is counted ---------------------------------------

    def test_wrong_current_password_on_password_change_is_counted(self):
        user, pw = self.new_user()
        src = '127.0.0.61'
        tok = self.login(user, pw, source=src)
        path = '/api/v1/users/%s/password' % user
        for i in range(3):
            self.expect(self.call('POST', path, token=tok, source=src, body={
                'current_password': 'guess-%d-xxxxxx' % i, 'password': 'New-pass-1234'}),
                403, 'wrong_password')
        # the fourth guess through the stolen session is not even checked: 429
        a = self.expect(self.call('POST', path, token=tok, source=src, body={
            'current_password': pw, 'password': 'New-pass-1234'}), 429, 'too_many_attempts')
        self.assertGreaterEqual(int(a.headers['retry-after']), 25)
        # the same state as logins: that pair cannot log in either, the owner elsewhere can
        self.expect(self.session(user, pw, src), 429, 'too_many_attempts')
        self.expect(self.session(user, pw, '127.0.0.62'), 201)
        self.assertEqual(self.user_row(user)['failed_logins'], 3)

    def totp_user(self, src):
        """totp_user - a new user logged in from SRC with TOTP enrolled and confirmed (by the
        code of the step now): (user, password, token, TOTP path, secret, that step)."""
        user, pw = self.new_user()
        tok = self.login(user, pw, source=src)
        base = '/api/v1/users/%s/totp' % user
        secret = self.expect(self.call('POST', base, token=tok, source=src,
                                       body={'current_password': pw}), 201).json['secret']
        step = int(time.time() // 30)
        self.expect(self.call('POST', base + '/confirm', token=tok, source=src,
                              body={'code': totp(secret, step)}), 200)
        return user, pw, tok, base, secret, step

    def test_wrong_password_on_totp_removal_is_counted(self):
        src = '127.0.0.63'
        user, pw, tok, base, secret, _ = self.totp_user(src)
        for i in range(3):
            self.expect(self.call('DELETE', base, token=tok, source=src, body={
                'password': 'guess-%d-xxxxxx' % i, 'code': '000000'}), 403,
                'wrong_credentials')
        self.expect(self.call('DELETE', base, token=tok, source=src, body={
            'password': pw, 'code': totp(secret)}), 429, 'too_many_attempts')
        # a wrong code after a right password counts the same way
        src2 = '127.0.0.64'
        user2, pw2, tok2, base2, secret2, step = self.totp_user(src2)
        for _ in range(3):
            self.expect(self.call('DELETE', base2, token=tok2, source=src2, body={
                'password': pw2, 'code': totp(secret2, step)}), 403)  # spent step
        self.expect(self.call('DELETE', base2, token=tok2, source=src2, body={
            'password': pw2, 'code': totp(secret2, step + 1)}), 429)

    # ---- B: the ceiling, and mail logins in the same state -------------------------------

    def test_account_ceiling_alerts_and_locks(self):
        user, pw = self.new_user()
        wrong = 'Ceiling-wrong-' + uuid.uuid4().hex[:6]
        # four networks, one failure each: no pair is delayed, the account total is 4
        for i in range(4):
            self.expect(self.session(user, wrong, '127.0.0.%d' % (71 + i)), 401,
                        'invalid_credentials')
        with open(self.api.log_path, errors='replace') as f:
            log = f.read()
        alerts = [l for l in log.splitlines() if 'alert:' in l and user in l]
        self.assertEqual(len(alerts), 1, log[-2000:])
        self.assertIn('4 failed logins from 4 client networks', alerts[0])
        self.assertIn('account locked', alerts[0])
        self.assertNotIn(wrong, log)
        # login_account_lock = yes: the right password from a fresh network is refused too
        self.expect(self.session(user, pw, '127.0.0.79'), 401, 'invalid_credentials')
        row = self.user_row(user)
        # counted too (a locked account's right password must not reset anything), and
        # alerted once only
        self.assertEqual(row['failed_logins'], 5)
        self.assertGreater(row['locked_until'], time.time())
        with open(self.api.log_path, errors='replace') as f:
            self.assertEqual(len([l for l in f if 'alert:' in l and user in l]), 1)

    def test_mail_login_failures_share_the_state_and_refuse_before_auth(self):
        user, pw = self.new_user()
        mail_client = '127.0.0.81'
        allow = {'user': user, 'remote': mail_client}
        self.assertEqual(self.expect(self.internal('allow', allow), 200).json['status'], 0)
        for _ in range(3):
            self.assertEqual(self.expect(self.internal('report', {
                'success': False, 'user': user, 'remote': mail_client,
                'app_password_id': ''}), 200).json['status'], 0)
        # Dovecot's before-auth check is refused for that pair only
        a = self.expect(self.internal('allow', allow), 200)
        self.assertEqual(a.json['status'], -1, a)
        self.assertEqual(self.expect(self.internal('allow', {
            'user': user, 'remote': '127.0.0.82'}), 200).json['status'], 0)
        # and the API login of that account from that network waits as well
        self.expect(self.session(user, pw, mail_client), 429, 'too_many_attempts')
        self.expect(self.session(user, pw, '127.0.0.82'), 201)
        # a success with an app password does not forget the main-password failures
        self.expect(self.internal('report', {'success': True, 'user': user,
                                             'remote': mail_client,
                                             'app_password_id': '999999'}), 200)
        self.assertEqual(self.expect(self.internal('allow', allow), 200).json['status'], -1)

    # ---- C: a stolen session cannot mint lasting access ----------------------------------

    def test_app_password_and_totp_enrolment_need_the_password(self):
        user, pw = self.new_user()
        src = '127.0.0.91'
        tok = self.login(user, pw, source=src)
        ap = '/api/v1/users/%s/app-passwords' % user
        self.expect(self.call('POST', ap, token=tok, source=src, body={'name': 'phone'}), 422,
                    'missing_field')
        self.expect(self.call('POST', ap, token=tok, source=src,
                              body={'name': 'phone', 'current_password': pw + 'x'}), 403,
                    'wrong_password')
        self.expect(self.call('POST', ap, token=tok, source=src,
                              body={'name': 'phone', 'current_password': pw}), 201)
        base = '/api/v1/users/%s/totp' % user
        self.expect(self.call('POST', base, token=tok, source=src), 422, 'missing_field')
        self.expect(self.call('POST', base, token=tok, source=src,
                              body={'current_password': pw + 'x'}), 403, 'wrong_password')
        secret = self.expect(self.call('POST', base, token=tok, source=src,
                                       body={'current_password': pw}), 201).json['secret']
        step = int(time.time() // 30)
        self.expect(self.call('POST', base + '/confirm', token=tok, source=src,
                              body={'code': totp(secret, step)}), 200)
        # with TOTP on, the password alone no longer mints an app password
        self.expect(self.call('POST', ap, token=tok, source=src,
                              body={'name': 'laptop', 'current_password': pw}), 403,
                    'totp_required')
        self.expect(self.call('POST', ap, token=tok, source=src, body={
            'name': 'laptop', 'current_password': pw, 'code': totp(secret, step + 1)}), 201)
        # an admin making one for another user needs no password of theirs
        self.expect(self.call('POST', ap, token=self.admin_token(), source='127.0.0.250',
                              body={'name': 'by-admin'}), 201)

    def test_password_change_revokes_app_passwords(self):
        user, pw = self.new_user()
        src = '127.0.0.92'
        tok = self.login(user, pw, source=src)
        ap = '/api/v1/users/%s/app-passwords' % user
        for name in ('phone', 'printer'):
            self.expect(self.call('POST', ap, token=tok, source=src,
                                  body={'name': name, 'current_password': pw}), 201)
        new = 'Changed-pass-' + uuid.uuid4().hex[:6]
        a = self.expect(self.call('POST', '/api/v1/users/%s/password' % user, token=tok,
                                  source=src, body={'current_password': pw, 'password': new}),
                        200)
        self.assertEqual(a.json['app_passwords_revoked'], 2)
        self.assertEqual(self.expect(self.call('GET', ap, token=tok, source=src), 200)
                         .json['app_passwords'], [])
        with sqlite3.connect(self.store.db) as db:
            self.assertEqual(db.execute(
                'SELECT count(*) FROM app_passwords a JOIN users u ON u.id = a.user_id '
                'WHERE u.username = ?', (user,)).fetchone()[0], 0)
        # an admin reset does the same
        self.expect(self.call('POST', ap, token=tok, source=src,
                              body={'name': 'again', 'current_password': new}), 201)
        a = self.expect(self.call('POST', '/api/v1/users/%s/password' % user,
                                  token=self.admin_token(), source='127.0.0.250', body={}), 200)
        self.assertEqual(a.json['app_passwords_revoked'], 1)

    # ---- D: TOTP on, main password off for mail ----------------------------------------

    def test_totp_confirm_reports_no_main_password_for_mail(self):
        user, pw = self.new_user()
        src = '127.0.0.93'
        tok = self.login(user, pw, source=src)
        row = self.user_row(user)
        self.assertEqual(row['main_password_protocols'], ['imap', 'smtp'])
        base = '/api/v1/users/%s/totp' % user
        secret = self.expect(self.call('POST', base, token=tok, source=src,
                                       body={'current_password': pw}), 201).json['secret']
        a = self.expect(self.call('POST', base + '/confirm', token=tok, source=src,
                                  body={'code': totp(secret)}), 200)
        self.assertEqual(a.json['main_password_protocols'], [])
        self.assertEqual(a.json['main_password_protocols_without_totp'], ['imap', 'smtp'])
        self.assertIn('app passwords only', a.json['mail_login'])
        row = self.user_row(user)
        self.assertIs(row['totp'], True)
        self.assertEqual(row['main_password_protocols'], [])
        self.assertEqual(row['main_password_protocols_without_totp'], ['imap', 'smtp'])
        # the user's own view says the same; an admin turning TOTP off restores the choice
        self.assertEqual(self.expect(self.call('GET', '/api/v1/users/' + user, token=tok,
                                               source=src), 200).json
                         ['main_password_protocols'], [])
        self.expect(self.call('DELETE', base, token=self.admin_token(), source='127.0.0.250'),
                    204)
        self.assertEqual(self.user_row(user)['main_password_protocols'], ['imap', 'smtp'])

    # ---- E: the internal route, its secret, CORS --------------------------------------

    def test_internal_route_answers_loopback_only(self):
        body = {'success': False, 'user': 'x@' + DOMAIN}
        for path in (INTERNAL, '/api/v1/%69nternal/auth-policy', '//api/v1/internal/auth-policy',
                     '/api/v1/users/../internal/auth-policy'):
            a = call(self.port, 'POST', path + '?command=report', body=body, source='127.0.0.95',
                     headers={'Authorization': 'Bearer ' + SECRET})
            self.assertEqual(a.status, 403, (path, a))
            self.assertIsNone(a.json, 'nginx, not the API, refuses %s' % path)
        # loopback itself (Dovecot's address) reaches the API, over IPv4 and IPv6
        self.assertEqual(self.expect(self.internal('report', body), 200).json['status'], 0)
        a = call6(self.port, 'POST', INTERNAL + '?command=report', body=body,
                  headers={'Authorization': 'Bearer ' + SECRET})
        self.assertEqual(a.status, 200, a)
        # the rest of the API is public as before
        self.expect(self.call('GET', '/api/v1/healthz', source='127.0.0.95'), 200)

    def test_wrong_internal_secrets_are_throttled(self):
        body = {'success': False}
        # from [::1] (allowed by the sample), a network of its own
        for i in range(8):
            a = call6(self.port, 'POST', INTERNAL + '?command=report', body=body,
                      headers={'Authorization': 'Bearer wrong-secret-%02d-xxxxxxxx' % i})
            self.assertEqual(a.status, 401, a)
        a = call6(self.port, 'POST', INTERNAL + '?command=report', body=body,
                  headers={'Authorization': 'Bearer ' + SECRET})
        self.assertEqual(a.status, 429, a)
        self.assertGreaterEqual(int(a.headers['retry-after']), 50)
        # 127.0.0.1 (another network) is not affected
        self.assertEqual(self.expect(self.internal('report', body), 200).json['status'], 0)

    def test_cors_origin_null_or_star_stops_the_api_with_file_and_line(self):
        for value in ('null', '*', 'https://*.example.org', 'https://admin.example.org/'):
            with self.subTest(cors_origin=value):
                api = lab_mod.Api(self.lab.root, self.store, name='api-cors-' + uuid.uuid4().hex[:6],
                                  api_config={'cors_origin': value}, autostop=False)
                # spawn-fcgi opens the port before it starts the API: wait for the exit
                try:
                    api.start()
                except lab_mod.LabError:
                    pass
                try:
                    lab_mod.wait_until(lambda: api.proc is not None and
                                       api.proc.poll() is not None, 15, 'the API to refuse')
                    self.assertNotEqual(api.proc.returncode, 0)
                finally:
                    api.stop()
                with open(api.log_path, errors='replace') as f:
                    log = f.read()
                line = api.render_config().splitlines().index('cors_origin = ' + value) + 1
                self.assertIn('api.conf:%d: bad value for api.cors_origin' % line, log)


if __name__ == '__main__':
    unittest.main()
