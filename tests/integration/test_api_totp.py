"""test_api_totp - two-factor login (TOTP, RFC 6238) through real nginx + spawn-fcgi.

Codes are computed here with hmac/hashlib from the secret in the enrolment answer, so the
test does not depend on liboath. One Store + API + nginx for the module.
"""

import base64
import hashlib
import hmac
import sqlite3
import struct
import time
import unittest
import urllib.parse

import labcase
import mailwarden_lab as lab_mod
from labcase import ApiBase

DOMAIN = lab_mod.DOMAIN


def totp(secret_b32, step=None, at=None):
    """totp - the RFC 6238 code (SHA-1, 6 digits, 30 s) for STEP or the step of AT/now."""
    key = base64.b32decode(secret_b32 + '=' * (-len(secret_b32) % 8))
    if step is None:
        step = int((time.time() if at is None else at) // 30)
    mac = hmac.new(key, struct.pack('>Q', step), hashlib.sha1).digest()
    off = mac[-1] & 0x0f
    value = (struct.unpack('>I', mac[off:off + 4])[0] & 0x7fffffff) % 1000000
    return '%06d' % value


class TotpFunctionTest(unittest.TestCase):
    def test_rfc6238_vector(self):
        """The Python reference gives RFC 6238's SHA-1 vectors (6 low digits)."""
        secret = base64.b32encode(b'12345678901234567890').decode()
        self.assertEqual(totp(secret, at=59), '287082')
        self.assertEqual(totp(secret, at=1111111109), '081804')
        self.assertEqual(totp(secret, at=2000000000), '279037')


class ApiTotpTest(ApiBase):
    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.start_api(api_config=labcase.MANY_LOGINS)
        cls.add_admin()

    pw = {}

    def new_user(self):
        user, pw = self.store_user()
        self.pw[user] = pw
        return user, pw

    def session(self, user, pw, code=None):
        body = {'username': user, 'password': pw}
        if code is not None:
            body['totp'] = code
        return self.call('POST', '/api/v1/sessions', body=body)

    def enrol(self, user, token, password=None):
        a = self.expect(self.call('POST', '/api/v1/users/%s/totp' % user, token=token,
                                  body={'current_password': password or self.pw[user]}), 201)
        return a.json

    def user_row(self, user):
        tok = self.login(self.admin, self.admin_pw)
        return self.expect(self.call('GET', '/api/v1/users/' + user, token=tok), 200).json

    def stored_state(self, user):
        with sqlite3.connect(self.store.db) as db:
            return db.execute('SELECT totp_secret FROM users WHERE username = ?',
                              (user,)).fetchone()[0]

    def test_enrol_confirm_login_replay_recovery_disable(self):
        user, pw = self.new_user()
        tok = self.login(user, pw)
        e = self.enrol(user, tok)
        # the URI: issuer mailwarden, account = username, the same secret as the field
        uri = urllib.parse.urlparse(e['otpauth_uri'])
        self.assertEqual((uri.scheme, uri.netloc), ('otpauth', 'totp'))
        self.assertEqual(urllib.parse.unquote(uri.path), '/mailwarden:' + user)
        q = urllib.parse.parse_qs(uri.query)
        self.assertEqual(q['issuer'], ['mailwarden'])
        self.assertEqual(q['secret'], [e['secret']])
        self.assertEqual((q['digits'], q['period']), (['6'], ['30']))
        secret = e['secret']
        self.assertEqual(len(base64.b32decode(secret)), 20)
        codes = e['recovery_codes']
        self.assertEqual(len(codes), 10)
        self.assertEqual(len(set(codes)), 10)
        # stored encrypted and pending: nothing of the secret or the codes in the row
        state = self.stored_state(user)
        self.assertTrue(state.startswith('pending:v1:'), state[:12])
        key_hex = base64.b32decode(secret).hex()
        for s in [secret, key_hex] + codes + [c.replace('-', '') for c in codes]:
            self.assertNotIn(s.lower(), state.lower())
        # pending: the password alone still logs in, the user shows no TOTP yet
        self.expect(self.session(user, pw), 201)
        self.assertIs(self.user_row(user)['totp'], False)
        # a wrong code does not confirm; the right one does
        step = int(time.time() // 30)
        wrong = '%06d' % ((int(totp(secret, step)) + 1) % 1000000)
        self.expect(self.call('POST', '/api/v1/users/%s/totp/confirm' % user, token=tok,
                              body={'code': wrong}), 422, 'invalid_code')
        self.expect(self.call('POST', '/api/v1/users/%s/totp/confirm' % user, token=tok,
                              body={'code': totp(secret, step)}), 200)
        self.assertTrue(self.stored_state(user).startswith('v1:'))
        self.assertIs(self.user_row(user)['totp'], True)
        self.expect(self.call('POST', '/api/v1/users/%s/totp/confirm' % user, token=tok,
                              body={'code': totp(secret, step)}), 409, 'no_pending_enrolment')
        # a second enrolment is refused while one is active
        self.expect(self.call('POST', '/api/v1/users/%s/totp' % user, token=tok,
                              body={'current_password': pw}), 409, 'totp_active')
        failed0 = self.user_row(user)['failed_logins']
        # no code: the same 401 as a wrong password, plus totp_required; not counted
        a = self.expect(self.session(user, pw), 401, 'invalid_credentials')
        self.assertIs(a.json['error'].get('totp_required'), True)
        self.assertEqual(self.user_row(user)['failed_logins'], failed0)
        # a wrong password never says whether a code would be needed
        for code in (None, totp(secret, step + 1)):
            a = self.expect(self.session(user, pw + 'x', code), 401, 'invalid_credentials')
            self.assertNotIn('totp_required', a.json['error'])
        failed0 = self.user_row(user)['failed_logins']
        # the step used to confirm cannot be used again (replay), and counts as a failure
        a = self.expect(self.session(user, pw, totp(secret, step)), 401, 'invalid_credentials')
        self.assertIs(a.json['error'].get('totp_required'), True)
        self.assertEqual(self.user_row(user)['failed_logins'], failed0 + 1)
        # the next step (within the +-1 window) works once; then it and older steps are spent
        t = self.expect(self.session(user, pw, totp(secret, step + 1)), 201).json['token']
        self.expect(self.call('GET', '/api/v1/sessions', token=t), 200)
        self.assertEqual(self.user_row(user)['failed_logins'], 0)
        for s in (step + 1, step):
            self.expect(self.session(user, pw, totp(secret, s)), 401, 'invalid_credentials')
        # a code far outside the window is refused
        self.expect(self.session(user, pw, totp(secret, step + 20)), 401)
        # a recovery code works once (any case, with or without the dash)
        self.expect(self.session(user, pw, codes[0].upper()), 201)
        self.expect(self.session(user, pw, codes[0]), 401, 'invalid_credentials')
        self.expect(self.session(user, pw, codes[1].replace('-', '')), 201)
        # the right code with the wrong password is still refused
        self.expect(self.session(user, pw + 'x', codes[2]), 401)
        # turning it off needs the password and a code
        tok = self.expect(self.session(user, pw, codes[2]), 201).json['token']
        base = '/api/v1/users/%s/totp' % user
        self.expect(self.call('DELETE', base, token=tok, body={'password': pw}), 403,
                    'totp_required')
        self.expect(self.call('DELETE', base, token=tok,
                              body={'password': pw + 'x', 'code': codes[3]}), 403,
                    'wrong_credentials')
        self.expect(self.call('DELETE', base, token=tok,
                              body={'password': pw, 'code': codes[2]}), 403)  # spent
        self.expect(self.call('DELETE', base, token=tok,
                              body={'password': pw, 'code': codes[3]}), 204)
        self.assertIsNone(self.stored_state(user))
        self.expect(self.session(user, pw), 201)
        self.expect(self.call('DELETE', base, token=tok,
                              body={'password': pw, 'code': codes[4]}), 404)
        # the audit names the steps, never a code or the secret
        admin = self.login(self.admin, self.admin_pw)
        a = self.expect(self.call('GET', '/api/v1/audit?target=' + user, token=admin), 200)
        actions = [x['action'] for x in a.json['entries']]
        for want in ('totp.enrol', 'totp.confirm', 'totp.disable', 'session.login_failed'):
            self.assertIn(want, actions)
        self.assertNotIn(secret, a.raw.decode())
        self.assertNotIn(codes[3], a.raw.decode())

    def test_only_the_user_enrols_admin_can_remove(self):
        user, pw = self.new_user()
        other, opw = self.new_user()
        admin = self.login(self.admin, self.admin_pw)
        otok = self.login(other, opw)
        path = '/api/v1/users/%s/totp' % user
        self.expect(self.call('POST', path), 401)
        self.expect(self.call('POST', path, token=otok), 403)
        self.expect(self.call('POST', path, token=admin, body={'current_password': pw}), 403)
        self.expect(self.call('DELETE', path, token=admin), 404)  # nothing enrolled
        tok = self.login(user, pw)
        e = self.enrol(user, tok)
        # enrolling again while pending replaces the pending secret
        e2 = self.enrol(user, tok)
        self.assertNotEqual(e['secret'], e2['secret'])
        self.expect(self.call('POST', path + '/confirm', token=tok,
                              body={'code': totp(e['secret'])}), 422)
        self.expect(self.call('POST', path + '/confirm', token=otok,
                              body={'code': totp(e2['secret'])}), 403)
        self.expect(self.call('POST', path + '/confirm', token=tok,
                              body={'code': totp(e2['secret'])}), 200)
        self.expect(self.session(user, pw), 401)
        # an admin removes it without a code (lost phone); the password alone works again
        self.expect(self.call('DELETE', path, token=otok), 403)
        self.expect(self.call('DELETE', path, token=admin, body={'code': '123456'}), 422)
        self.expect(self.call('DELETE', path, token=admin), 204)
        self.expect(self.session(user, pw), 201)
        self.assertIs(self.user_row(user)['totp'], False)

    def test_hostile_codes(self):
        user, pw = self.new_user()
        tok = self.login(user, pw)
        e = self.enrol(user, tok)
        path = '/api/v1/users/%s/totp/confirm' % user
        for bad in ('', '12345', '1234567', 'abcdef', "1' OR '1'='1", '１２３４５６',
                    e['recovery_codes'][0]):
            self.expect(self.call('POST', path, token=tok, body={'code': bad}), 422)
        self.expect(self.call('POST', path, token=tok, body={'code': 123456}), 422)
        self.expect(self.call('POST', path, token=tok, body={'code': 'x' * 100}), 422)
        self.expect(self.call('POST', path, token=tok,
                              body={'code': totp(e['secret']), 'extra': 1}), 422)
        self.expect(self.call('POST', path, token=tok,
                              body={'code': totp(e['secret'])}), 200)
        for bad in ({'username': user, 'password': pw, 'totp': 123456},
                    {'username': user, 'password': pw, 'totp': 'x' * 100}):
            self.expect(self.call('POST', '/api/v1/sessions', body=bad), 422)
        for bad in ("' OR 1=1 --", '000000', e['secret']):
            a = self.expect(self.session(user, pw, bad), 401, 'invalid_credentials')
            self.assertIs(a.json['error'].get('totp_required'), True)
        # a tampered state (moved to another user) is not accepted: the ciphertext is bound
        # to its user id
        other, opw = self.new_user()
        with sqlite3.connect(self.store.db) as db:
            db.execute('UPDATE users SET totp_secret = (SELECT totp_secret FROM users '
                       'WHERE username = ?) WHERE username = ?', (user, other))
        a = self.session(other, opw, totp(e['secret'], int(time.time() // 30) + 1))
        self.assertEqual(a.status, 503, a)
        with sqlite3.connect(self.store.db) as db:
            db.execute('UPDATE users SET totp_secret = NULL WHERE username = ?', (other,))
        self.expect(self.session(other, opw), 201)


if __name__ == '__main__':
    unittest.main()
