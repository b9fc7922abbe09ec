"""test_api - mailwarden-api through real nginx + spawn-fcgi, with real Dovecot and Postfix.

ApiTest: one Store + Dovecot + Postfix + API + nginx for the module. Users made through the
API log in over IMAP and SMTP AUTH; disabling and rotating take effect at once; every route
is checked for every kind of caller (authorisation table); hostile input gets a clear 4xx
and changes nothing.
ApiTimingTest: a second API + nginx on the same store with short session and lock times
(idle and absolute expiry, refresh, (account, network) delays, per-IP blocking, configured
CORS).
Clients connect from distinct 127.0.0.x source addresses so per-IP counters stay apart.
"""

import json
import subprocess
import time
import unittest
import uuid

import mailwarden_lab as lab_mod
from labcase import SECURITY_HEADERS, ApiBase, unique_user
from test_login import imap_login, smtp_login

DOMAIN = lab_mod.DOMAIN
AUTH_POLICY_SECRET = 'authz-' + uuid.uuid4().hex  # [api] auth_policy_secret of ApiTest


class ApiTest(ApiBase):
    """The API on the real mail stack."""

    @classmethod
    def start_lab(cls):
        cls.store, cls.dovecot, cls.postfix = cls.lab.mail_stack()
        cls.start_api(api_config={'max_sessions_per_user': '1000',
                                  'auth_policy_secret': AUTH_POLICY_SECRET})
        cls.add_admin()

    def admin_token(self):
        return self.login(self.admin, self.admin_pw)

    def create_user(self, token, password=None, **fields):
        user = unique_user()
        body = dict(fields, username=user)
        if password:
            body['password'] = password
        a = self.expect(self.call('POST', '/api/v1/users', body=body, token=token), 201)
        self.assertEqual(a.json['username'], user)
        return user, password or a.json['password']

    def assert_logins(self, user, password, ok):
        self.assertEqual(imap_login(self.dovecot.imap_port, user, password), ok,
                         'IMAP login of %s should %s' % (user, 'work' if ok else 'fail'))
        self.assertEqual(smtp_login(self.postfix.smtp_port, user, password), ok,
                         'SMTP AUTH of %s should %s' % (user, 'work' if ok else 'fail'))

    def users_snapshot(self, token):
        return self.expect(self.call('GET', '/api/v1/users?limit=1000', token=token), 200).json

    # ---- credentials end to end ------------------------------------------------------------

    def test_user_created_through_api_logs_in_and_disable_rotate_apply_at_once(self):
        tok = self.admin_token()
        user, pw = self.create_user(tok, allowed_from=[])
        self.assertGreaterEqual(len(pw), 12)
        self.assert_logins(user, pw, True)
        # the generated password is shown once: never again
        a = self.expect(self.call('GET', '/api/v1/users/' + user, token=tok), 200)
        self.assertNotIn('password', a.json)
        self.assertNotIn(pw, a.raw.decode())
        # disable: both refuse at once; enable again
        self.expect(self.call('PATCH', '/api/v1/users/' + user, body={'status': 'disabled'},
                              token=tok), 200)
        self.assert_logins(user, pw, False)
        self.expect(self.call('PATCH', '/api/v1/users/' + user, body={'status': 'active'},
                              token=tok), 200)
        self.assert_logins(user, pw, True)
        # rotate: the new one is shown once, the old one is refused at once
        a = self.expect(self.call('POST', '/api/v1/users/%s/password' % user, token=tok), 200)
        new = a.json['password']
        self.assertNotEqual(new, pw)
        self.assert_logins(user, pw, False)
        self.assert_logins(user, new, True)
        # a chosen password
        chosen = 'Chosen-pass-' + uuid.uuid4().hex[:6]
        self.expect(self.call('POST', '/api/v1/users/%s/password' % user,
                              body={'password': chosen}, token=tok), 200)
        self.assert_logins(user, chosen, True)
        # audit rows name the admin and the client address
        a = self.expect(self.call('GET', '/api/v1/audit?target=%s' % user, token=tok), 200)
        actions = [e['action'] for e in a.json['entries']]
        for want in ('user.add', 'user.update', 'user.password'):
            self.assertIn(want, actions)
        for e in a.json['entries']:
            if e['action'].startswith('user.'):
                self.assertEqual(e['actor'], 'api:' + self.admin)
                self.assertEqual(e['client'], '127.0.0.1')

    def test_weak_password_refused_and_user_not_created(self):
        tok = self.admin_token()
        user = unique_user()
        a = self.expect(self.call('POST', '/api/v1/users', token=tok,
                                  body={'username': user, 'password': 'short'}), 422)
        self.assertIn('password', a.message)
        self.expect(self.call('GET', '/api/v1/users/' + user, token=tok), 404)

    def test_duplicate_user_is_409(self):
        tok = self.admin_token()
        user, _ = self.create_user(tok)
        self.expect(self.call('POST', '/api/v1/users', body={'username': user.upper()},
                              token=tok), 409, 'exists')

    def test_list_filters_and_paging(self):
        tok = self.admin_token()
        made = [self.create_user(tok, status='pending')[0] for _ in range(3)]
        a = self.expect(self.call('GET', '/api/v1/users?status=pending&limit=1000',
                                  token=tok), 200)
        names = [u['username'] for u in a.json['users']]
        for u in made:
            self.assertIn(u, names)
        self.assertTrue(all(u['status'] == 'pending' for u in a.json['users']))
        a = self.expect(self.call('GET', '/api/v1/users?role=admin', token=tok), 200)
        self.assertTrue(all(u['role'] == 'admin' for u in a.json['users']))
        self.assertIn(self.admin, [u['username'] for u in a.json['users']])
        # paging: pages of 2 cover everything exactly once
        seen, after = [], 0
        while True:
            a = self.expect(self.call('GET', '/api/v1/users?limit=2&after=%d' % after,
                                      token=tok), 200)
            seen += [u['username'] for u in a.json['users']]
            if a.json['next_after'] is None:
                break
            after = a.json['next_after']
        self.assertEqual(sorted(seen), sorted(u['username'] for u in
                                              self.users_snapshot(tok)['users']))
        self.assertEqual(len(seen), len(set(seen)))
        for q in ('status=bogus', 'role=root', 'limit=0', 'limit=abc', 'after=-1', 'x=1'):
            self.expect(self.call('GET', '/api/v1/users?' + q, token=tok), 422,
                        'invalid_parameter')

    def test_user_delete(self):
        tok = self.admin_token()
        user, pw = self.create_user(tok)
        utok = self.login(user, pw)
        self.expect(self.call('DELETE', '/api/v1/users/' + user, token=tok), 204)
        self.expect(self.call('GET', '/api/v1/users/' + user, token=tok), 404)
        self.expect(self.call('GET', '/api/v1/sessions', token=utok), 401)
        self.assertFalse(imap_login(self.dovecot.imap_port, user, pw))
        self.expect(self.call('DELETE', '/api/v1/users/' + user, token=tok), 404)
        # an admin cannot remove or demote themself
        self.expect(self.call('DELETE', '/api/v1/users/' + self.admin, token=tok), 409)
        self.expect(self.call('PATCH', '/api/v1/users/' + self.admin, body={'role': 'user'},
                              token=tok), 409)

    def test_allowed_from(self):
        tok = self.admin_token()
        user, _ = self.create_user(tok)
        base = '/api/v1/users/%s/allowed-from' % user
        a = self.expect(self.call('POST', base, body={'pattern': user.upper()}, token=tok), 201)
        self.assertEqual(a.json['patterns'], [user])
        self.expect(self.call('POST', base, body={'pattern': user}, token=tok), 409)
        a = self.expect(self.call('PUT', base, token=tok, body={
            'patterns': ['*@%s' % DOMAIN, 'x+*@%s' % DOMAIN, '*@%s' % DOMAIN]}), 200)
        self.assertEqual(sorted(a.json['patterns']), sorted(['*@' + DOMAIN, 'x+*@' + DOMAIN]))
        # a bad pattern is a 422 naming it, and nothing changes
        a = self.expect(self.call('PUT', base, token=tok, body={
            'patterns': ['ok@%s' % DOMAIN, 'bad*pattern@%s' % DOMAIN]}), 422, 'invalid_pattern')
        self.assertIn('bad*pattern@', a.message)
        self.assertIn('patterns[1]', a.message)
        a = self.expect(self.call('POST', base, body={'pattern': 'a@@b'}, token=tok), 422)
        self.assertIn('a@@b', a.message)
        a = self.expect(self.call('GET', base, token=tok), 200)
        self.assertEqual(sorted(a.json['patterns']), sorted(['*@' + DOMAIN, 'x+*@' + DOMAIN]))
        self.expect(self.call('DELETE', base + '/%2A%40' + DOMAIN, token=tok), 204)
        self.expect(self.call('DELETE', base + '/%2A%40' + DOMAIN, token=tok), 404)
        a = self.expect(self.call('GET', '/api/v1/users/' + user, token=tok), 200)
        self.assertEqual(a.json['allowed_from'], ['x+*@' + DOMAIN])
        self.expect(self.call('GET', '/api/v1/users/nobody-%s@%s/allowed-from'
                              % (uuid.uuid4().hex[:6], DOMAIN), token=tok), 404)

    # ---- self-service and sessions -------------------------------------------------------

    def test_self_service(self):
        tok = self.admin_token()
        user, pw = self.create_user(tok)
        other, _ = self.create_user(tok)
        utok = self.login(user, pw)
        a = self.expect(self.call('GET', '/api/v1/users/' + user.upper(), token=utok), 200)
        self.assertEqual(a.json['username'], user)
        # one's own account comes from the row the session check read (one query fewer):
        # the same answer as the admin's view, and a change between requests shows at once
        self.expect(self.call('PATCH', '/api/v1/users/' + user, token=tok,
                              body={'description': 'changed by the admin'}), 200)
        mine = self.expect(self.call('GET', '/api/v1/users/' + user, token=utok), 200).json
        theirs = self.expect(self.call('GET', '/api/v1/users/' + user, token=tok), 200).json
        self.assertEqual(mine['description'], 'changed by the admin')
        self.assertEqual(mine, theirs)
        self.expect(self.call('GET', '/api/v1/users/' + other, token=utok), 403, 'forbidden')
        # own password: the current one is required and checked
        new = 'Mine-pass-' + uuid.uuid4().hex[:8]
        self.expect(self.call('POST', '/api/v1/users/%s/password' % user, token=utok,
                              body={'password': new}), 422, 'missing_field')
        self.expect(self.call('POST', '/api/v1/users/%s/password' % user, token=utok,
                              body={'current_password': 'wrong-one-123', 'password': new}),
                    403, 'wrong_password')
        second = self.login(user, pw)
        self.expect(self.call('POST', '/api/v1/users/%s/password' % user, token=utok,
                              body={'current_password': pw, 'password': new}), 200)
        # this session goes on, the other one ended; the new password works everywhere
        self.expect(self.call('GET', '/api/v1/sessions', token=utok), 200)
        self.expect(self.call('GET', '/api/v1/sessions', token=second), 401)
        self.assert_logins(user, new, True)
        self.login(user, new)

    def test_sessions_list_refresh_logout_revoke(self):
        tok = self.admin_token()
        user, pw = self.create_user(tok)
        t1 = self.login(user, pw)
        t2 = self.login(user, pw)
        a = self.expect(self.call('GET', '/api/v1/sessions', token=t1,
                                  headers={'User-Agent': 'test-agent/1'}), 200)
        self.assertEqual(len(a.json['sessions']), 2)
        self.assertEqual(sum(s['current'] for s in a.json['sessions']), 1)
        # refresh: a new token, the old one dies, the absolute end stays
        old_end = [s for s in a.json['sessions'] if s['current']][0]['expires_at']
        a = self.expect(self.call('POST', '/api/v1/sessions/refresh', token=t1), 201)
        t1b = a.json['token']
        self.assertNotEqual(t1b, t1)
        self.assertEqual(a.json['expires_at'], old_end)
        self.expect(self.call('GET', '/api/v1/sessions', token=t1), 401, 'invalid_session')
        self.expect(self.call('GET', '/api/v1/sessions', token=t1b), 200)
        # revoke one of my own sessions by id
        a = self.expect(self.call('GET', '/api/v1/sessions', token=t1b), 200)
        other_id = [s['id'] for s in a.json['sessions'] if not s['current']][0]
        self.expect(self.call('DELETE', '/api/v1/sessions/' + other_id, token=t1b), 204)
        self.expect(self.call('GET', '/api/v1/sessions', token=t2), 401)
        self.expect(self.call('DELETE', '/api/v1/sessions/' + other_id, token=t1b), 404)
        # someone else's session id is not mine to end
        t3 = self.login(user, pw)
        admin_sessions = self.expect(self.call('GET', '/api/v1/sessions', token=tok), 200)
        aid = admin_sessions.json['sessions'][0]['id']
        self.expect(self.call('DELETE', '/api/v1/sessions/' + aid, token=t3), 404)
        self.expect(self.call('GET', '/api/v1/sessions', token=tok), 200)
        # logout
        self.expect(self.call('DELETE', '/api/v1/sessions/current', token=t1b), 204)
        self.expect(self.call('GET', '/api/v1/sessions', token=t1b), 401)
        # admin revokes all
        t4 = self.login(user, pw)
        a = self.expect(self.call('DELETE', '/api/v1/users/%s/sessions' % user, token=tok), 200)
        self.assertEqual(a.json['revoked'], 2)
        for t in (t3, t4):
            self.expect(self.call('GET', '/api/v1/sessions', token=t), 401)
        # disabling ends sessions too
        t5 = self.login(user, pw)
        self.expect(self.call('PATCH', '/api/v1/users/' + user, body={'status': 'disabled'},
                              token=tok), 200)
        self.expect(self.call('GET', '/api/v1/sessions', token=t5), 401)

    def test_login_failures_look_alike(self):
        tok = self.admin_token()
        user, pw = self.create_user(tok)
        disabled, dpw = self.create_user(tok, status='disabled')
        answers = []
        for name, password in ((user, pw + 'x'), ('nobody-%s@%s' % (uuid.uuid4().hex[:6],
                                                                   DOMAIN), pw),
                               (disabled, dpw), ("x' OR '1'='1", 'whatever')):
            t0 = time.monotonic()
            a = self.call('POST', '/api/v1/sessions', body={'username': name,
                                                           'password': password},
                          source='127.0.0.21')
            answers.append((a.status, a.code, a.message, time.monotonic() - t0))
        self.assertEqual({x[:3] for x in answers},
                         {(401, 'invalid_credentials', 'invalid username or password')})
        self.expect(self.call('GET', '/api/v1/sessions', token='A' * 43), 401)
        self.expect(self.call('GET', '/api/v1/sessions', token='not a token'), 401)
        self.expect(self.call('GET', '/api/v1/sessions'), 401, 'unauthenticated')

    # ---- authorisation table -------------------------------------------------------------

    def test_authorisation_table(self):
        tok = self.admin_token()
        upw = 'User-pass-' + uuid.uuid4().hex[:8]
        opw = 'Other-pass-' + uuid.uuid4().hex[:8]
        user, _ = self.create_user(tok, password=upw)
        other, _ = self.create_user(tok, password=opw)
        creds = {'user': (user, upw), 'other': (other, opw), 'admin': (self.admin, self.admin_pw)}
        sid = '0123456789abcdef'

        def victim():
            return self.create_user(tok)[0]

        def pattern():
            p = 'p%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
            self.expect(self.call('POST', '/api/v1/users/%s/allowed-from' % user,
                                  body={'pattern': p}, token=tok), 201)
            return p

        RL_POLICY = {'scope': 'sasl_username', 'metric': 'messages', 'count': 100,
                     'window_seconds': 3600, 'action': 'defer'}
        TAG_RULE = {'field': 'Subject', 'match': 'substring', 'value': 'x', 'keyword': 'kw'}

        def rate_policy():
            return self.expect(self.call('POST', '/api/v1/ratelimit/policies', body=RL_POLICY,
                                         token=tok), 201).json['id']

        def tag_rule():
            return self.expect(self.call('POST', '/api/v1/users/%s/tag-rules' % user,
                                         body=TAG_RULE, token=tok), 201).json['id']

        from test_api_totp import totp  # RFC 6238 in Python (imports this module)
        pending = {}

        def totp_pending():
            # no TOTP left active between callers (the table logs in with passwords only):
            # an admin removes whatever there is, then the user enrols (pending)
            a = self.call('DELETE', U + '/totp', token=tok)
            self.assertIn(a.status, (204, 404), a)
            pending['secret'] = self.expect(self.call(
                'POST', U + '/totp', token=self.login(user, upw),
                body={'current_password': upw}), 201).json['secret']
            return U + '/totp'

        def app_password():
            return self.expect(self.call('POST', U + '/app-passwords', token=tok,
                                         body={'name': uuid.uuid4().hex}), 201).json['id']

        U = '/api/v1/users/' + user
        # route -> (method, path factory, body factory(caller), {caller: status})
        table = {
            ('GET', '/api/v1/healthz'): (lambda: '/api/v1/healthz', None,
                                        dict(anon=200, user=200, other=200, admin=200)),
            ('POST', '/api/v1/sessions'): (lambda: '/api/v1/sessions',
                                          lambda c: {'username': user, 'password': upw},
                                          dict(anon=201, user=201, other=201, admin=201)),
            ('GET', '/api/v1/sessions'): (lambda: '/api/v1/sessions', None,
                                         dict(anon=401, user=200, other=200, admin=200)),
            # the web page's cookie login and "who am I" (test_web_api.py tests the cookie)
            ('POST', '/api/v1/sessions/cookie'): (lambda: '/api/v1/sessions/cookie',
                                                 lambda c: {'username': user, 'password': upw},
                                                 dict(anon=201, user=201, other=201,
                                                      admin=201)),
            ('GET', '/api/v1/sessions/current'): (lambda: '/api/v1/sessions/current', None,
                                                 dict(anon=401, user=200, other=200,
                                                      admin=200)),
            ('POST', '/api/v1/sessions/refresh'): (lambda: '/api/v1/sessions/refresh', None,
                                                  dict(anon=401, user=201, other=201,
                                                       admin=201)),
            ('DELETE', '/api/v1/sessions/current'): (lambda: '/api/v1/sessions/current', None,
                                                    dict(anon=401, user=204, other=204,
                                                         admin=204)),
            ('DELETE', '/api/v1/sessions/{id}'): (lambda: '/api/v1/sessions/' + sid, None,
                                                 dict(anon=401, user=404, other=404,
                                                      admin=404)),
            ('GET', '/api/v1/users'): (lambda: '/api/v1/users', None,
                                      dict(anon=401, user=403, other=403, admin=200)),
            ('POST', '/api/v1/users'): (lambda: '/api/v1/users',
                                       lambda c: {'username': unique_user()},
                                       dict(anon=401, user=403, other=403, admin=201)),
            ('GET', '/api/v1/users/{username}'): (lambda: U, None,
                                                 dict(anon=401, user=200, other=403,
                                                      admin=200)),
            ('PATCH', '/api/v1/users/{username}'): (lambda: U,
                                                   lambda c: {'description': 'by ' + c},
                                                   dict(anon=401, user=403, other=403,
                                                        admin=200)),
            ('DELETE', '/api/v1/users/{username}'): (lambda: '/api/v1/users/' + victim(),
                                                    None, dict(anon=401, user=403, other=403,
                                                               admin=204)),
            ('POST', '/api/v1/users/{username}/password'): (
                lambda: U + '/password',
                lambda c: ({'current_password': upw, 'password': upw} if c == 'user'
                           else {'password': upw}),
                dict(anon=401, user=200, other=403, admin=200)),
            ('DELETE', '/api/v1/users/{username}/sessions'): (
                lambda: U + '/sessions', None, dict(anon=401, user=403, other=403, admin=200)),
            ('GET', '/api/v1/users/{username}/allowed-from'): (
                lambda: U + '/allowed-from', None,
                dict(anon=401, user=200, other=403, admin=200)),
            ('PUT', '/api/v1/users/{username}/allowed-from'): (
                lambda: U + '/allowed-from', lambda c: {'patterns': [user]},
                dict(anon=401, user=403, other=403, admin=200)),
            ('POST', '/api/v1/users/{username}/allowed-from'): (
                lambda: U + '/allowed-from',
                lambda c: {'pattern': 'n%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)},
                dict(anon=401, user=403, other=403, admin=201)),
            ('DELETE', '/api/v1/users/{username}/allowed-from/{pattern}'): (
                lambda: U + '/allowed-from/' + pattern(), None,
                dict(anon=401, user=403, other=403, admin=204)),
            ('GET', '/api/v1/audit'): (lambda: '/api/v1/audit', None,
                                      dict(anon=401, user=403, other=403, admin=200)),
            # two-factor login and app passwords (test_api_totp.py, test_app_passwords.py)
            ('POST', '/api/v1/users/{username}/totp'): (
                lambda: totp_pending(), lambda c: {'current_password': upw},
                dict(anon=401, user=201, other=403, admin=403)),
            ('POST', '/api/v1/users/{username}/totp/confirm'): (
                lambda: totp_pending() + '/confirm',
                lambda c: {'code': totp(pending['secret'])},
                dict(anon=401, user=200, other=403, admin=403)),
            ('DELETE', '/api/v1/users/{username}/totp'): (
                lambda: totp_pending(),
                lambda c: ({'password': upw, 'code': totp(pending['secret'])} if c == 'user'
                           else {}),
                dict(anon=401, user=204, other=403, admin=204)),
            ('GET', '/api/v1/users/{username}/app-passwords'): (
                lambda: U + '/app-passwords', None,
                dict(anon=401, user=200, other=403, admin=200)),
            ('POST', '/api/v1/users/{username}/app-passwords'): (
                lambda: U + '/app-passwords',
                lambda c: ({'name': uuid.uuid4().hex, 'current_password': upw} if c == 'user'
                           else {'name': uuid.uuid4().hex}),
                dict(anon=401, user=201, other=403, admin=201)),
            ('DELETE', '/api/v1/users/{username}/app-passwords/{id}'): (
                lambda: U + '/app-passwords/%d' % app_password(), None,
                dict(anon=401, user=204, other=403, admin=204)),
            # rate limits, tag rules, DKIM (test_api_resources.py tests what they do; here
            # no policyd runs, so usage is 503 for whoever may ask (a user for their own
            # counters, an admin for anyone's), and the DKIM rows stop at validation or 404)
            ('GET', '/api/v1/ratelimit/policies'): (
                lambda: '/api/v1/ratelimit/policies', None,
                dict(anon=401, user=403, other=403, admin=200)),
            ('POST', '/api/v1/ratelimit/policies'): (
                lambda: '/api/v1/ratelimit/policies', lambda c: dict(RL_POLICY),
                dict(anon=401, user=403, other=403, admin=201)),
            ('DELETE', '/api/v1/ratelimit/policies/{id}'): (
                lambda: '/api/v1/ratelimit/policies/%d' % rate_policy(), None,
                dict(anon=401, user=403, other=403, admin=204)),
            ('GET', '/api/v1/users/{username}/ratelimit'): (
                lambda: U + '/ratelimit', None, dict(anon=401, user=503, other=403, admin=503)),
            ('DELETE', '/api/v1/users/{username}/ratelimit'): (
                lambda: U + '/ratelimit', None, dict(anon=401, user=403, other=403, admin=503)),
            ('GET', '/api/v1/users/{username}/tag-rules'): (
                lambda: U + '/tag-rules', None, dict(anon=401, user=200, other=403, admin=200)),
            ('POST', '/api/v1/users/{username}/tag-rules'): (
                lambda: U + '/tag-rules', lambda c: dict(TAG_RULE),
                dict(anon=401, user=201, other=403, admin=201)),
            ('DELETE', '/api/v1/users/{username}/tag-rules/{id}'): (
                lambda: U + '/tag-rules/%d' % tag_rule(), None,
                dict(anon=401, user=204, other=403, admin=204)),
            ('GET', '/api/v1/dkim/keys'): (lambda: '/api/v1/dkim/keys', None,
                                          dict(anon=401, user=403, other=403, admin=200)),
            ('POST', '/api/v1/dkim/keys'): (
                lambda: '/api/v1/dkim/keys', lambda c: {'domain': 'authz.example', 'bits': 1000},
                dict(anon=401, user=403, other=403, admin=422)),
            ('POST', '/api/v1/dkim/keys/{domain}/{selector}/activate'): (
                lambda: '/api/v1/dkim/keys/authz.example/nosuch/activate', None,
                dict(anon=401, user=403, other=403, admin=404)),
            ('DELETE', '/api/v1/dkim/keys/{domain}/{selector}'): (
                lambda: '/api/v1/dkim/keys/authz.example/nosuch', None,
                dict(anon=401, user=403, other=403, admin=404)),
            ('POST', '/api/v1/dkim/rotate'): (
                lambda: '/api/v1/dkim/rotate', lambda c: {'domain': 'authz.example', 'bits': 1000},
                dict(anon=401, user=403, other=403, admin=422)),
            # DNS records, MTA-STS, client autoconfig (test_discovery.py tests what they do;
            # this lab has no [mailhost], so records and profiles are 409 for whoever may ask,
            # and the public ones 404 for everyone), metrics (test_metrics.py)
            ('GET', '/api/v1/domains/{domain}/dns'): (
                lambda: '/api/v1/domains/%s/dns' % DOMAIN, None,
                dict(anon=401, user=403, other=403, admin=409)),
            ('GET', '/api/v1/well-known/mta-sts.txt'): (
                lambda: '/api/v1/well-known/mta-sts.txt', None,
                dict(anon=404, user=404, other=404, admin=404)),
            ('GET', '/api/v1/autoconfig/mail/config-v1.1.xml'): (
                lambda: '/api/v1/autoconfig/mail/config-v1.1.xml?emailaddress=' + user, None,
                dict(anon=404, user=404, other=404, admin=404)),
            ('POST', '/api/v1/autodiscover/autodiscover.xml'): (
                lambda: '/api/v1/autodiscover/autodiscover.xml', lambda c: {},
                dict(anon=400, user=400, other=400, admin=400)),
            ('POST', '/api/v1/users/{username}/mobileconfig'): (
                lambda: U + '/mobileconfig', lambda c: {},
                dict(anon=401, user=409, other=403, admin=409)),
            # DMARC aggregate reports received (test_dmarc_received.py tests what they say)
            ('GET', '/api/v1/dmarc/reports'): (
                lambda: '/api/v1/dmarc/reports', None,
                dict(anon=401, user=403, other=403, admin=200)),
            ('GET', '/api/v1/dmarc/summary'): (
                lambda: '/api/v1/dmarc/summary?domain=' + DOMAIN, None,
                dict(anon=401, user=403, other=403, admin=200)),
            ('GET', '/api/v1/internal/metrics'): (
                lambda: '/api/v1/internal/metrics', None,
                dict(anon=200, user=200, other=200, admin=200)),
            # public contact forms (test_forms.py tests what they do; this lab has no
            # [forms], so every caller finds no such form)
            ('GET', '/api/v1/forms/{form}/token'): (
                lambda: '/api/v1/forms/contact/token', None,
                dict(anon=404, user=404, other=404, admin=404)),
            ('POST', '/api/v1/forms/{form}'): (
                lambda: '/api/v1/forms/contact', lambda c: {'_token': 'x'},
                dict(anon=404, user=404, other=404, admin=404)),
            ('OPTIONS', '/api/v1/forms/{form}'): (
                lambda: '/api/v1/forms/contact', None,
                dict(anon=404, user=404, other=404, admin=404)),
            # Dovecot's auth policy hook: no session opens it, only the shared secret (below)
            ('POST', '/api/v1/internal/auth-policy'): (
                lambda: '/api/v1/internal/auth-policy?command=report',
                lambda c: {'success': False}, dict(anon=401, user=401, other=401, admin=401)),
        }
        routes = set(tuple(l.split()[:2]) for l in subprocess.run(
            [self.api.binary, '--routes'], capture_output=True, text=True,
            check=True).stdout.splitlines())
        self.assertEqual(routes, set(table), 'the table must cover every route exactly')
        failures = []
        for (method, _pat), (path, body, want) in sorted(table.items()):
            for caller in ('anon', 'user', 'other', 'admin'):
                token = None if caller == 'anon' else self.login(*creds[caller])
                a = self.call(method, path(), body=body(caller) if body else None, token=token)
                if a.status != want[caller]:
                    failures.append('%s %s as %s: %d, expected %d (%s)' % (
                        method, _pat, caller, a.status, want[caller], a.raw[:120]))
                for k, v in SECURITY_HEADERS.items():
                    if a.headers.get(k) != v:
                        failures.append('%s %s as %s: header %s missing' % (method, _pat,
                                                                             caller, k))
        self.assertEqual(failures, [])
        a = self.call('POST', '/api/v1/internal/auth-policy?command=report',
                      body={'success': False},
                      headers={'Authorization': 'Bearer ' + AUTH_POLICY_SECRET})
        self.assertEqual(self.expect(a, 200).json['status'], 0)

    # ---- hostile input -------------------------------------------------------------------

    def test_hostile_input(self):
        tok = self.admin_token()
        before = self.users_snapshot(tok)
        post = lambda **kw: self.call('POST', '/api/v1/users', token=tok, **kw)
        self.expect(post(raw=b'{"username": '), 400, 'malformed_json')
        self.expect(post(raw=b'{"username":"a@example.org","username":"b@example.org"}'), 400,
                    'malformed_json')
        self.expect(post(raw=b'\xff\xfe{}'), 400, 'malformed_json')
        self.expect(post(raw=b'{"username":"a\\u0000b@example.org"}'), 400, 'malformed_json')
        self.expect(post(raw=b'[]'), 422, 'invalid_body')
        self.expect(post(body={'username': unique_user()}, ctype='text/plain'), 415,
                    'unsupported_media_type')
        self.expect(post(raw=b'username=x', ctype='application/x-www-form-urlencoded'), 415)
        big = json.dumps({'username': unique_user(), 'description': 'x' * 100000}).encode()
        self.expect(post(raw=big), 413, 'body_too_large')
        self.assertEqual(post(raw=b'{' + b' ' * (2 * 1024 * 1024) + b'}').status, 413)
        for body, field in (({'username': 5}, 'username'),
                            ({'username': unique_user(), 'role': ['admin']}, 'role'),
                            ({'username': unique_user(), 'password': None}, 'password'),
                            ({'username': unique_user(), 'allowed_from': [1]}, 'allowed_from'),
                            ({'username': unique_user(), 'allowed_from': 'x'}, 'allowed_from'),
                            ({'username': unique_user(), 'status': 'root'}, 'status'),
                            ({'username': unique_user(), 'is_admin': True}, 'is_admin'),
                            ({'username': "x' OR '1'='1"}, 'username'),
                            ({'username': 'x' * 300 + '@example.org'}, 'username')):
            a = self.expect(post(body=body), 422)
            self.assertIn(field, a.message, a)
        for path in ("/api/v1/users/x'%20OR%20'1'='1",
                     "/api/v1/users/x';DROP%20TABLE%20users;--",
                     '/api/v1/users/%25', '/api/v1/users/a%22b'):
            self.expect(self.call('GET', path, token=tok), 404)
            self.expect(self.call('DELETE', path, token=tok), 404)
            self.expect(self.call('PATCH', path, body={'status': 'disabled'}, token=tok), 404)
        for path in ('/api/v1/users/..%2F..%2Fusers', '/api/v1/users/..%2Fsessions',
                     '/api/v1/users/%2e%2e', '/api/v1/users/%s%%00' % self.admin,
                     '/api/v1/users/%s%%0d%%0aX-Evil:%%201' % self.admin,
                     '/api/v1/users/a%zz', '/api/v1/users/%ff'):
            for method in ('GET', 'DELETE'):
                a = self.call(method, path, token=tok)
                self.assertTrue(400 <= a.status < 500, (method, path, a))
                self.assertNotIn('x-evil', a.headers)
        self.expect(self.call('GET', '/api/v1/nothing', token=tok), 404, 'not_found')
        self.expect(self.call('PUT', '/api/v1/users', token=tok, body={}), 405,
                    'method_not_allowed')
        self.expect(self.call('GET', '/api/v1/users?' + '&'.join('a%d=1' % i for i in range(20)),
                              token=tok), 400)
        self.assertEqual(self.users_snapshot(tok), before, 'hostile input changed the users')
        self.assertTrue(imap_login(self.dovecot.imap_port, self.admin, self.admin_pw))

    def test_no_cors_unless_configured(self):
        a = self.expect(self.call('GET', '/api/v1/healthz',
                                  headers={'Origin': 'https://evil.example'}), 200)
        self.assertFalse([k for k in a.headers if k.startswith('access-control')])
        self.expect(self.call('OPTIONS', '/api/v1/users',
                              headers={'Origin': 'https://evil.example'}), 405)

    def test_audit_filters(self):
        tok = self.admin_token()
        user, _ = self.create_user(tok)
        a = self.expect(self.call('GET', '/api/v1/audit?action=user.add&target=' + user,
                                  token=tok), 200)
        self.assertEqual(len(a.json['entries']), 1)
        e = a.json['entries'][0]
        self.assertEqual((e['actor'], e['client']), ('api:' + self.admin, '127.0.0.1'))
        a = self.expect(self.call('GET', '/api/v1/audit?actor=api:%s&since=%d&until=%d'
                                  % (self.admin, e['at'], e['at']), token=tok), 200)
        self.assertIn(e['id'], [x['id'] for x in a.json['entries']])
        self.assertTrue(all(x['actor'] == 'api:' + self.admin for x in a.json['entries']))
        a = self.expect(self.call('GET', '/api/v1/audit?until=%d' % (e['at'] - 100000),
                                  token=tok), 200)
        self.assertEqual(a.json['entries'], [])
        a = self.expect(self.call('GET', '/api/v1/audit?limit=1&after=%d' % (e['id'] - 1),
                                  token=tok), 200)
        self.assertEqual([x['id'] for x in a.json['entries']], [e['id']])
        self.assertEqual(a.json['next_after'], e['id'])
        for q in ('since=yesterday', 'limit=5000', 'actor=', 'bogus=1'):
            self.expect(self.call('GET', '/api/v1/audit?' + q, token=tok), 422)


class ApiTimingTest(ApiBase):
    """Short session and lock times on a second API instance."""

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.start_api(name='api-timing', api_config={
            'session_idle_timeout': '2s', 'session_lifetime': '5s',
            'login_max_failures': '3', 'login_lock_time': '3s', 'ip_max_failures': '5',
            'login_delay': '2s', 'login_delay_max': '60s',
            'cors_origin': 'https://admin.example.org', 'max_sessions_per_user': '3'})
        cls.port = cls.nginx.port

    def new_user(self):
        user, pw = unique_user(), 'Timing-pass-' + uuid.uuid4().hex[:8]
        self.store.add_user(user, pw)
        return user, pw

    def test_idle_expiry(self):
        user, pw = self.new_user()
        tok = self.login(user, pw, source='127.0.0.31')
        self.expect(self.call('GET', '/api/v1/sessions', token=tok), 200)
        time.sleep(2.3)
        self.expect(self.call('GET', '/api/v1/sessions', token=tok), 401, 'session_expired')

    def test_absolute_expiry_despite_use(self):
        user, pw = self.new_user()
        tok = self.login(user, pw, source='127.0.0.32')
        t0 = time.time()
        a = self.expect(self.call('GET', '/api/v1/sessions', token=tok), 200)
        end = a.json['sessions'][0]['expires_at']
        self.assertEqual(a.json['sessions'][0]['idle_timeout'], 2)
        while time.time() < end - 0.2:
            self.expect(self.call('GET', '/api/v1/sessions', token=tok), 200)
            time.sleep(0.8)
        # refresh does not extend the absolute end
        time.sleep(max(0, end + 0.3 - time.time()))
        self.expect(self.call('POST', '/api/v1/sessions/refresh', token=tok), 401,
                    'session_expired')
        self.assertLess(time.time() - t0, 8)

    def test_account_lockout_hurts_the_attacker_not_the_owner(self):
        """issue 9: failures delay only the (account, network) pair that made them, with
        growing delays; the owner on another network logs in at once."""
        user, pw = self.new_user()
        src, owner = '127.0.0.33', '127.0.0.133'
        for _ in range(3):
            self.expect(self.call('POST', '/api/v1/sessions', source=src,
                                  body={'username': user, 'password': 'wrong-pass-1'}), 401)
        # that pair waits (even the right password is not checked), login_delay (2 s) first;
        # Retry-After counts whole seconds, so a second boundary may take one off
        a = self.expect(self.call('POST', '/api/v1/sessions', source=src,
                                  body={'username': user, 'password': pw}), 429,
                        'too_many_attempts')
        self.assertIn(int(a.headers['retry-after']), (1, 2), a.headers)
        # the owner elsewhere is not locked out
        self.login(user, pw, source=owner)
        time.sleep(2.2)
        # one more failure doubles the wait (4 s)
        self.expect(self.call('POST', '/api/v1/sessions', source=src,
                              body={'username': user, 'password': 'wrong-pass-2'}), 401)
        a = self.expect(self.call('POST', '/api/v1/sessions', source=src,
                                  body={'username': user, 'password': pw}), 429)
        self.assertIn(int(a.headers['retry-after']), (3, 4), a.headers)
        self.login(user, pw, source=owner)
        time.sleep(4.2)
        # the right password from that network after the wait works and forgets the pair's
        # failures: three more wrong ones are free again (without the reset the first would
        # meet an 8 s wait), the one after them waits
        self.login(user, pw, source=src)
        for i in range(3):
            self.expect(self.call('POST', '/api/v1/sessions', source=src,
                                  body={'username': user, 'password': 'again-%d-xxxx' % i}),
                        401)
        self.expect(self.call('POST', '/api/v1/sessions', source=src,
                              body={'username': user, 'password': pw}), 429,
                    'too_many_attempts')

    def test_unknown_account_is_delayed_alike(self):
        """A name that is no account gets the same delays: a 429 never says it exists."""
        src = '127.0.0.37'
        name = 'nobody-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
        for _ in range(3):
            self.expect(self.call('POST', '/api/v1/sessions', source=src,
                                  body={'username': name, 'password': 'wrong-pass-1'}), 401)
        self.expect(self.call('POST', '/api/v1/sessions', source=src,
                              body={'username': name, 'password': 'wrong-pass-1'}), 429,
                    'too_many_attempts')

    def test_ip_blocking(self):
        src = '127.0.0.34'
        for i in range(5):
            self.expect(self.call('POST', '/api/v1/sessions', source=src, body={
                'username': 'nobody%d@%s' % (i, DOMAIN), 'password': 'nope-nope-1'}), 401)
        user, pw = self.new_user()
        a = self.expect(self.call('POST', '/api/v1/sessions', source=src,
                                  body={'username': user, 'password': pw}), 429,
                        'too_many_attempts')
        self.assertTrue(1 <= int(a.headers['retry-after']) <= 3)
        # another address is not affected
        self.login(user, pw, source='127.0.0.35')

    def test_max_sessions(self):
        user, pw = self.new_user()
        for _ in range(3):
            self.login(user, pw, source='127.0.0.36')
        self.expect(self.call('POST', '/api/v1/sessions', source='127.0.0.36',
                              body={'username': user, 'password': pw}), 409,
                    'too_many_sessions')

    def test_cors_when_configured(self):
        origin = 'https://admin.example.org'
        a = self.expect(self.call('OPTIONS', '/api/v1/users', headers={
            'Origin': origin, 'Access-Control-Request-Method': 'GET'}), 204)
        self.assertEqual(a.headers.get('access-control-allow-origin'), origin)
        self.assertIn('Authorization', a.headers.get('access-control-allow-headers', ''))
        a = self.expect(self.call('GET', '/api/v1/healthz', headers={'Origin': origin}), 200)
        self.assertEqual(a.headers.get('access-control-allow-origin'), origin)
        a = self.expect(self.call('GET', '/api/v1/healthz',
                                  headers={'Origin': 'https://evil.example'}), 200)
        self.assertNotIn('access-control-allow-origin', a.headers)
        self.expect(self.call('OPTIONS', '/api/v1/users',
                              headers={'Origin': 'https://evil.example'}), 405)


if __name__ == '__main__':
    unittest.main()
