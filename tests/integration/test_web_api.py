"""test_web_api - the web page's security model in the API and in nginx (issue 15).

Through the lab's real nginx + spawn-fcgi: the cookie login (POST /api/v1/sessions/cookie)
sets an HttpOnly, Secure, SameSite=Strict __Host- cookie and hands out a CSRF token instead
of the session token; a change made through the cookie needs that token and no sign of
another origin; hostile cases (no token, a forged one, another session's, a cross-origin
request, a cookie login from another origin, two cookies) are refused and change nothing.
The static page is served under / with the sample config's headers (strict CSP without
inline script, no framing), and its files contain no inline script, handler or style.
"""

import html.parser
import os
import re
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod
from labcase import ApiBase

DOMAIN = lab_mod.DOMAIN
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB_DIR = os.path.join(SRC, 'web')
COOKIE = '__Host-mw_session'
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def cookie_of(answer):
    """cookie_of - (value, attributes lower-cased) of the answer's session Set-Cookie."""
    sc = answer.headers.get('set-cookie')
    if sc is None:
        return None, None
    parts = [p.strip() for p in sc.split(';')]
    name, _, value = parts[0].partition('=')
    assert name == COOKIE, sc
    return value, [p.lower() for p in parts[1:]]


class WebApiTest(ApiBase):
    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.start_api(web=WEB_DIR, api_config=labcase.MANY_LOGINS)
        cls.add_admin()
        cls.origin = 'http://127.0.0.1:%d' % cls.port

    def cookie_login(self, user, pw, headers=None):
        """cookie_login - (cookie value, csrf token) of a cookie login as a browser does it."""
        h = {'Origin': self.origin, 'Sec-Fetch-Site': 'same-origin'}
        h.update(headers or {})
        a = self.expect(self.call('POST', '/api/v1/sessions/cookie',
                                  body={'username': user, 'password': pw}, headers=h), 201)
        value, _ = cookie_of(a)
        return value, a.json['csrf_token']

    def with_cookie(self, method, path, cookie, csrf=None, origin=True, extra=None, **kw):
        h = {'Cookie': '%s=%s' % (COOKIE, cookie)}
        if csrf is not None:
            h['X-CSRF-Token'] = csrf
        if origin:
            h['Origin'] = self.origin
            h['Sec-Fetch-Site'] = 'same-origin'
        h.update(extra or {})
        return self.call(method, path, headers=h, **kw)

    def rules(self, user, cookie):
        a = self.expect(self.with_cookie('GET', '/api/v1/users/%s/tag-rules' % user, cookie), 200)
        return a.json['rules']

    RULE = {'field': 'Subject', 'match': 'substring', 'value': 'x', 'keyword': '$label1'}

    # -- the cookie ------------------------------------------------------------------------

    def test_cookie_login_sets_a_strict_cookie_and_no_token_in_the_body(self):
        user, pw = self.store_user()
        a = self.expect(self.call('POST', '/api/v1/sessions/cookie',
                                  body={'username': user, 'password': pw},
                                  headers={'Origin': self.origin}), 201)
        value, attrs = cookie_of(a)
        self.assertRegex(value, r'^[A-Za-z0-9_-]{43}$')
        for want in ('path=/', 'secure', 'httponly', 'samesite=strict'):
            self.assertIn(want, attrs)
        self.assertFalse([x for x in attrs if x.startswith('domain')], attrs)
        self.assertNotIn('token', a.json)
        self.assertNotIn(value, a.raw.decode())
        self.assertRegex(a.json['csrf_token'], r'^[A-Za-z0-9_-]{43}$')
        self.assertNotEqual(a.json['csrf_token'], value)
        # the cookie alone reads; the CSRF token comes back from GET /sessions/current
        c = self.expect(self.with_cookie('GET', '/api/v1/sessions/current', value), 200)
        self.assertEqual(c.json['username'], user)
        self.assertEqual(c.json['role'], 'user')
        self.assertEqual(c.json['csrf_token'], a.json['csrf_token'])
        self.assertTrue(c.json['cookie'])

    def test_wrong_password_sets_no_cookie(self):
        user, _ = self.store_user()
        a = self.expect(self.call('POST', '/api/v1/sessions/cookie',
                                  body={'username': user, 'password': 'wrong-password-1'},
                                  headers={'Origin': self.origin}), 401, 'invalid_credentials')
        self.assertIsNone(a.headers.get('set-cookie'))

    def test_bearer_sessions_get_no_cookie_and_no_csrf(self):
        user, pw = self.store_user()
        a = self.expect(self.call('POST', '/api/v1/sessions',
                                  body={'username': user, 'password': pw}), 201)
        self.assertIsNone(a.headers.get('set-cookie'))
        c = self.expect(self.call('GET', '/api/v1/sessions/current', token=a.json['token']), 200)
        self.assertNotIn('csrf_token', c.json)
        self.assertFalse(c.json['cookie'])
        # a bearer change needs no CSRF token, with or without a (foreign) cookie beside it
        other, opw = self.store_user()
        ocookie, _ = self.cookie_login(other, opw)
        r = self.call('POST', '/api/v1/users/%s/tag-rules' % user, body=self.RULE,
                      token=a.json['token'], headers={'Cookie': '%s=%s' % (COOKIE, ocookie)})
        self.expect(r, 201)

    # -- CSRF --------------------------------------------------------------------------------

    def test_change_with_the_token_passes(self):
        user, pw = self.store_user()
        cookie, csrf = self.cookie_login(user, pw)
        self.expect(self.with_cookie('POST', '/api/v1/users/%s/tag-rules' % user, cookie, csrf,
                                     body=self.RULE), 201)
        self.assertEqual(len(self.rules(user, cookie)), 1)

    def test_cookie_without_token_is_refused_and_changes_nothing(self):
        user, pw = self.store_user()
        cookie, _ = self.cookie_login(user, pw)
        for method, path, body in (
                ('POST', '/api/v1/users/%s/tag-rules' % user, self.RULE),
                ('DELETE', '/api/v1/sessions/current', None),
                ('POST', '/api/v1/sessions/refresh', None),
                ('POST', '/api/v1/users/%s/password' % user,
                 {'current_password': pw, 'password': 'New-pass-' + uuid.uuid4().hex})):
            self.expect(self.with_cookie(method, path, cookie, body=body), 403, 'csrf_missing')
            self.expect(self.with_cookie(method, path, cookie, '', body=body), 403,
                        'csrf_missing')
        self.assertEqual(self.rules(user, cookie), [])
        # the session is still alive and the password unchanged
        self.cookie_login(user, pw)

    def test_forged_token_is_refused(self):
        user, pw = self.store_user()
        cookie, csrf = self.cookie_login(user, pw)
        _, other_csrf = self.cookie_login(user, pw)  # the same user's other session
        forged = [other_csrf, csrf[:-1], csrf + 'A', csrf[:-1] + ('A' if csrf[-1] != 'A' else 'B'),
                  cookie, 'x' * 43, csrf.lower() if csrf.lower() != csrf else csrf.upper()]
        for bad in forged:
            self.expect(self.with_cookie('POST', '/api/v1/users/%s/tag-rules' % user, cookie,
                                         bad, body=self.RULE), 403, 'csrf_invalid')
        self.assertEqual(self.rules(user, cookie), [])

    def test_cross_origin_requests_are_refused_even_with_the_token(self):
        user, pw = self.store_user()
        cookie, csrf = self.cookie_login(user, pw)
        path = '/api/v1/users/%s/tag-rules' % user
        for extra in ({'Origin': 'http://evil.example'},
                      {'Origin': 'http://127.0.0.1:%d' % (self.port + 1)},
                      {'Origin': 'https://127.0.0.1:%d' % self.port},
                      {'Origin': 'null'},
                      {'Sec-Fetch-Site': 'cross-site'},
                      {'Sec-Fetch-Site': 'same-site'},
                      {'Sec-Fetch-Site': 'none'}):
            a = self.with_cookie('POST', path, cookie, csrf, origin=False, extra=extra,
                                 body=self.RULE)
            self.expect(a, 403, 'cross_origin')
        self.assertEqual(self.rules(user, cookie), [])
        # curl-like: neither header, the token is enough
        self.expect(self.with_cookie('POST', path, cookie, csrf, origin=False, body=self.RULE),
                    201)

    def test_cookie_login_from_another_origin_is_refused(self):
        user, pw = self.store_user()
        for extra in ({'Origin': 'http://evil.example'}, {'Sec-Fetch-Site': 'cross-site'}):
            a = self.call('POST', '/api/v1/sessions/cookie',
                          body={'username': user, 'password': pw}, headers=extra)
            self.expect(a, 403, 'cross_origin')
            self.assertIsNone(a.headers.get('set-cookie'))
        # a form of another site cannot send JSON: text/plain is refused before any login
        a = self.call('POST', '/api/v1/sessions/cookie', ctype='text/plain',
                      raw=b'{"username":"%s","password":"%s"}' % (user.encode(), pw.encode()))
        self.expect(a, 415)
        self.assertIsNone(a.headers.get('set-cookie'))

    def test_two_cookies_or_a_bad_one_are_refused_and_cleared(self):
        user, pw = self.store_user()
        cookie, _ = self.cookie_login(user, pw)
        other, _ = self.cookie_login(user, pw)
        for header in ('%s=%s; %s=%s' % (COOKIE, cookie, COOKIE, other),
                       '%s=%s' % (COOKIE, cookie + '!'), '%s=' % COOKIE,
                       '%s=%s' % (COOKIE, 'A' * 43)):
            a = self.call('GET', '/api/v1/sessions/current', headers={'Cookie': header})
            self.assertEqual(a.status, 401, (header, a))
            value, attrs = cookie_of(a)
            self.assertEqual(value, '')
            self.assertIn('max-age=0', attrs)
        # other cookies of the site beside ours are fine
        a = self.call('GET', '/api/v1/sessions/current',
                      headers={'Cookie': 'theme=dark; %s=%s; lang=en' % (COOKIE, cookie)})
        self.expect(a, 200)

    def test_logout_clears_the_cookie_and_ends_the_session(self):
        user, pw = self.store_user()
        cookie, csrf = self.cookie_login(user, pw)
        a = self.expect(self.with_cookie('DELETE', '/api/v1/sessions/current', cookie, csrf), 204)
        value, attrs = cookie_of(a)
        self.assertEqual(value, '')
        self.assertIn('max-age=0', attrs)
        self.expect(self.with_cookie('GET', '/api/v1/sessions/current', cookie), 401)

    def test_refresh_through_the_cookie_sets_a_new_cookie_and_token(self):
        user, pw = self.store_user()
        cookie, csrf = self.cookie_login(user, pw)
        a = self.expect(self.with_cookie('POST', '/api/v1/sessions/refresh', cookie, csrf), 201)
        new, _ = cookie_of(a)
        self.assertNotIn('token', a.json)
        self.assertNotEqual(new, cookie)
        self.assertNotEqual(a.json['csrf_token'], csrf)
        self.expect(self.with_cookie('GET', '/api/v1/sessions/current', cookie), 401)
        # the old CSRF token does not work with the new cookie
        self.expect(self.with_cookie('POST', '/api/v1/users/%s/tag-rules' % user, new, csrf,
                                     body=self.RULE), 403, 'csrf_invalid')
        self.expect(self.with_cookie('POST', '/api/v1/users/%s/tag-rules' % user, new,
                                     a.json['csrf_token'], body=self.RULE), 201)

    def test_disabled_user_cookie_session_ends(self):
        user, pw = self.store_user()
        cookie, _ = self.cookie_login(user, pw)
        self.store.ctl('user', 'disable', user)
        a = self.with_cookie('GET', '/api/v1/sessions/current', cookie)
        self.assertEqual(a.status, 401, a)
        self.assertEqual(cookie_of(a)[0], '')

    # -- the audit log, newest first (the page's view) ----------------------------------------

    def test_audit_log_newest_first_paged_with_before(self):
        user, pw = self.store_user()
        cookie, csrf = self.cookie_login(user, pw)
        for i in range(5):
            rule = dict(self.RULE, value='v%d' % i)
            self.expect(self.with_cookie('POST', '/api/v1/users/%s/tag-rules' % user, cookie,
                                         csrf, body=rule), 201)
        token = self.login(self.admin, self.admin_pw)
        q = '/api/v1/audit?order=desc&limit=2&action=tag_rule.add&target=' + user
        a = self.expect(self.call('GET', q, token=token), 200)
        ids = [e['id'] for e in a.json['entries']]
        self.assertEqual(len(ids), 2)
        self.assertGreater(ids[0], ids[1])
        self.assertNotIn('next_after', a.json)
        seen = list(ids)
        while a.json['next_before'] is not None:
            a = self.expect(self.call('GET', q + '&before=%d' % a.json['next_before'],
                                      token=token), 200)
            seen += [e['id'] for e in a.json['entries']]
        self.assertEqual(len(seen), 5)
        self.assertEqual(seen, sorted(seen, reverse=True))
        # oldest first is still the default, and each order pages its own way
        a = self.expect(self.call('GET', '/api/v1/audit?action=tag_rule.add&target=' + user,
                                  token=token), 200)
        self.assertEqual([e['id'] for e in a.json['entries']], sorted(seen))
        for bad in ('order=desc&after=1', 'before=5', 'order=newest', 'order=desc&before=0',
                    'order=desc&before=x'):
            self.expect(self.call('GET', '/api/v1/audit?' + bad, token=token), 422,
                        'invalid_parameter')

    # -- QR codes ----------------------------------------------------------------------------

    def test_totp_enrolment_and_app_password_carry_an_svg_qr_code(self):
        user, pw = self.store_user()
        cookie, csrf = self.cookie_login(user, pw)
        a = self.expect(self.with_cookie('POST', '/api/v1/users/%s/totp' % user, cookie, csrf,
                                         body={'current_password': pw}), 201)
        self.check_svg(a.json['otpauth_qr_svg'])
        a = self.expect(self.with_cookie('POST', '/api/v1/users/%s/app-passwords' % user,
                                         cookie, csrf, body={'name': 'phone',
                                                             'current_password': pw}), 201)
        self.check_svg(a.json['password_qr_svg'])
        self.assertNotIn(a.json['password'], a.json['password_qr_svg'])

    def check_svg(self, svg):
        self.assertTrue(svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"'), svg[:80])
        tags = set(re.findall(r'<([a-zA-Z]+)', svg))
        self.assertEqual(tags, {'svg', 'rect', 'path'})
        self.assertGreater(svg.count('h1v1h-1z'), 100)

    # -- the static page ---------------------------------------------------------------------

    def test_page_is_served_with_a_strict_policy(self):
        types = {'/': 'text/html', '/index.html': 'text/html', '/app.js': 'text/javascript',
                 '/style.css': 'text/css'}
        for path, ctype in types.items():
            a = self.call('GET', path)
            self.assertEqual(a.status, 200, path)
            self.assertEqual(a.headers.get('content-type'), ctype + '; charset=utf-8', path)
            self.assertEqual(a.headers.get('content-security-policy'), PAGE_CSP, path)
            self.assertEqual(a.headers.get('x-frame-options'), 'DENY', path)
            self.assertEqual(a.headers.get('x-content-type-options'), 'nosniff', path)
            self.assertEqual(a.headers.get('referrer-policy'), 'no-referrer', path)
        self.assertEqual(self.call('GET', '/nope.html').status, 404)
        # the API keeps its own stricter policy under the page's
        a = self.call('GET', '/api/v1/healthz')
        self.assertEqual(a.headers.get('content-security-policy'),
                         "default-src 'none'; frame-ancestors 'none'")

    def test_page_files_have_no_inline_script_or_markup_injection(self):
        class Check(html.parser.HTMLParser):
            def __init__(self):
                super().__init__()
                self.bad, self.scripts, self.fields, self.labels = [], [], [], set()
                self.in_script = False

            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                for k in a:
                    if k.startswith('on') or k == 'style':
                        self.bad.append((tag, k))
                if tag == 'script':
                    self.scripts.append(a.get('src'))
                    self.in_script = True
                if tag in ('input', 'select', 'textarea'):
                    self.fields.append(a.get('id'))
                if tag == 'label':
                    self.labels.add(a.get('for'))
                for k in ('src', 'href'):
                    if a.get(k, '').startswith(('http:', 'https:', '//', 'javascript:')):
                        self.bad.append((tag, a[k]))

            def handle_endtag(self, tag):
                if tag == 'script':
                    self.in_script = False

            def handle_data(self, data):
                if self.in_script and data.strip():
                    self.bad.append(('inline script', data[:40]))

        c = Check()
        with open(os.path.join(WEB_DIR, 'index.html')) as f:
            c.feed(f.read())
        self.assertEqual(c.bad, [])
        self.assertEqual(c.scripts, ['app.js'])
        # every field has a label
        self.assertEqual([f for f in c.fields if f not in c.labels], [])
        with open(os.path.join(WEB_DIR, 'app.js')) as f:
            js = f.read()
        for bad in ('innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(',
                    'new Function', 'localStorage', 'sessionStorage', 'http:', 'https:'):
            self.assertFalse(bad in js, 'app.js holds %r' % bad)


if __name__ == '__main__':
    unittest.main()
