"""test_app_password_lastuse - app passwords' last use and last IP, from Dovecot's auth policy
reports, end to end.

One Store + mailwarden-api + nginx + Dovecot + Postfix for the module. Dovecot runs with the
auth policy hook of the lab and the conf.d sample (report only) pointed at the API through
nginx. App passwords are made through the API and used against real Dovecot (IMAP LOGIN)
and real Postfix (SMTP AUTH through Dovecot SASL), from chosen 127.0.0.x source addresses;
GET /users/{u}/app-passwords must then show last_used_at and last_ip. Reports are
asynchronous: the tests count the report requests in nginx's access log and wait for them.
"""

import time
import uuid

import labcase
import mailwarden_lab as lab_mod
from labcase import ApiBase, smtp_login

DOMAIN = lab_mod.DOMAIN
SECRET = 'lastuse-' + uuid.uuid4().hex
ROUTE = lab_mod.AUTH_POLICY_PATH
REPORT_WAIT = 10  # seconds for Dovecot's report to reach the API


def imap_login(port, user, password, source='127.0.0.1'):
    """imap_login - True when LOGIN from SOURCE succeeds, False when refused."""
    return labcase.imap_login(port, user, password, source)


class AppPasswordLastUseTest(labcase.AppPasswordUsers, ApiBase):
    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.start_api(api_config={'max_sessions_per_user': '1000',
                                  'auth_policy_secret': SECRET})
        cls.dovecot = cls.lab.dovecot(cls.store,
                                      auth_policy=(cls.nginx.url(ROUTE), SECRET))
        cls.postfix = cls.lab.postfix(cls.dovecot)
        cls.add_admin()

    def tearDown(self):
        super().tearDown()
        log = lab_mod.tail(self.dovecot.log_path, 400)
        self.assertNotIn('Error: sql', log, 'Dovecot passdb sql errors')
        for daemon in (self.dovecot, self.postfix):
            text = ''.join(lab_mod.tail(p, 400) for p in daemon.log_files())
            self.assertNotIn('AddressSanitizer', text)

    # ---- helpers -------------------------------------------------------------------------

    def listing(self, user, token):
        """listing - {id: (last_used_at, last_ip)} of USER's app passwords."""
        a = self.expect(self.call('GET', '/api/v1/users/%s/app-passwords' % user,
                                  token=token), 200)
        return {x['id']: (x['last_used_at'], x['last_ip']) for x in a.json['app_passwords']}

    def reports(self):
        """reports - how many auth policy reports nginx has answered so far."""
        with open(self.nginx.access_log, errors='replace') as f:
            return sum(1 for l in f if 'POST %s?command=report ' % ROUTE in l)

    def wait_reports(self, before, count):
        """wait_reports - wait until COUNT more reports than BEFORE were answered."""
        lab_mod.wait_until(lambda: self.reports() >= before + count, REPORT_WAIT,
                           '%d auth policy report(s) in %s' % (count, self.nginx.access_log))

    def policy(self, command='report', body=None, secret=SECRET, **kw):
        """policy - POST to the hook route as Dovecot does (SECRET None: no header)."""
        headers = {'Authorization': 'Bearer ' + secret} if secret is not None else {}
        return self.call('POST', ROUTE + ('?command=' + command if command else ''),
                         body=body if body is not None else {}, headers=headers, **kw)

    # ---- through Dovecot and Postfix -----------------------------------------------------

    def test_imap_login_records_last_use_and_ip(self):
        user, _pw, tok = self.new_user()
        used = self.create(user, tok, name='phone')
        other = self.create(user, tok, name='laptop')
        self.assertEqual(self.listing(user, tok),
                         {used['id']: (None, None), other['id']: (None, None)})
        t0, n = int(time.time()), self.reports()
        self.assertTrue(imap_login(self.dovecot.imap_port, user, used['password']))
        self.wait_reports(n, 1)
        seen = self.listing(user, tok)
        at, ip = seen[used['id']]
        self.assertEqual(ip, '127.0.0.1')
        self.assertIsNotNone(at)
        self.assertTrue(t0 - 1 <= at <= time.time() + 1, at)
        self.assertEqual(seen[other['id']], (None, None), 'only the app password used')
        # a later login from another address moves last_ip (and never back the time)
        n = self.reports()
        self.assertTrue(imap_login(self.dovecot.imap_port, user, used['password'],
                                   source='127.0.0.7'))
        self.wait_reports(n, 1)
        at2, ip2 = self.listing(user, tok)[used['id']]
        self.assertEqual(ip2, '127.0.0.7')
        self.assertGreaterEqual(at2, at)

    def test_smtp_auth_records_last_use_and_ip(self):
        user, _pw, tok = self.new_user()
        ap = self.create(user, tok, protocols=['smtp'])
        t0, n = int(time.time()), self.reports()
        self.assertTrue(smtp_login(self.postfix.smtp_port, user, ap['password'],
                                   source='127.0.0.5'))
        self.wait_reports(n, 1)
        at, ip = self.listing(user, tok)[ap['id']]
        self.assertEqual(ip, '127.0.0.5')  # Postfix passes the SMTP client's address
        self.assertTrue(t0 - 1 <= at <= time.time() + 1, at)

    def test_failed_logins_change_nothing(self):
        user, _pw, tok = self.new_user()
        ap = self.create(user, tok, protocols=['imap'])
        fenced = self.create(user, tok, allow_nets=['10.0.0.0/8'])
        n = self.reports()
        # wrong password; right app password on a protocol it lacks; right app password
        # from outside its allow_nets (the passdb matched the row, Dovecot then refused)
        self.assertFalse(imap_login(self.dovecot.imap_port, user, ap['password'][:-1] + '!'))
        self.assertFalse(smtp_login(self.postfix.smtp_port, user, ap['password']))
        self.assertFalse(imap_login(self.dovecot.imap_port, user, fenced['password']))
        self.assertFalse(smtp_login(self.postfix.smtp_port, user, fenced['password']))
        self.wait_reports(n, 4)
        self.assertEqual(self.listing(user, tok),
                         {ap['id']: (None, None), fenced['id']: (None, None)})

    def test_main_password_login_changes_no_app_password(self):
        user, pw, tok = self.new_user()
        ap = self.create(user, tok)
        n = self.reports()
        self.assertTrue(imap_login(self.dovecot.imap_port, user, pw))
        self.assertTrue(smtp_login(self.postfix.smtp_port, user, pw))
        self.wait_reports(n, 2)
        self.assertEqual(self.listing(user, tok), {ap['id']: (None, None)})

    def test_logins_succeed_while_the_api_is_down(self):
        user, _pw, tok = self.new_user()
        ap = self.create(user, tok)
        try:
            # API stopped behind a running nginx (502), then nginx stopped too (refused)
            for stop in (self.api, self.nginx):
                stop.stop()
                t0 = time.monotonic()
                self.assertTrue(imap_login(self.dovecot.imap_port, user, ap['password']))
                self.assertTrue(smtp_login(self.postfix.smtp_port, user, ap['password']))
                self.assertLess(time.monotonic() - t0, 3, 'a login waited for the hook')
        finally:
            self.api.start()
            self.nginx.start()
        # Once back, reports are recorded again. Dovecot may also deliver a report it held
        # from the outage, and the API's workers record concurrent reports in either order,
        # so a late 127.0.0.1 report can land after ours: log in again until 127.0.0.9 stays.
        deadline = time.monotonic() + 3 * REPORT_WAIT
        while True:
            self.assertTrue(imap_login(self.dovecot.imap_port, user, ap['password'],
                                       source='127.0.0.9'))
            try:
                lab_mod.wait_until(
                    lambda: self.listing(user, tok)[ap['id']][1] == '127.0.0.9', 3,
                    'last_ip 127.0.0.9')
                break
            except lab_mod.LabError:
                if time.monotonic() > deadline:
                    self.fail('no report recorded within %ds after the API came back'
                              % (3 * REPORT_WAIT))

    # ---- the route itself ----------------------------------------------------------------

    def test_route_needs_the_secret(self):
        user, pw, tok = self.new_user()
        ap = self.create(user, tok)
        report = {'success': True, 'user': user, 'remote': '192.0.2.9',
                  'app_password_id': str(ap['id'])}
        self.expect(self.policy(body=report, secret=None), 401, 'unauthenticated')
        self.expect(self.policy(body=report, secret=SECRET + 'x'), 401, 'invalid_secret')
        self.expect(self.policy(body=report, secret=SECRET[:-1]), 401, 'invalid_secret')
        self.expect(self.policy(body=report, secret=''), 401)
        for token in (tok, self.login(self.admin, self.admin_pw)):  # a session is no secret
            self.expect(self.call('POST', ROUTE + '?command=report', body=report, token=token),
                        401, 'invalid_secret')
        self.assertEqual(self.listing(user, tok), {ap['id']: (None, None)})
        for method in ('GET', 'PUT', 'DELETE'):
            self.expect(self.call(method, ROUTE, headers={'Authorization': 'Bearer ' + SECRET}),
                        405)

    def test_route_answers_status_0_and_records_only_what_it_should(self):
        user, _pw, tok = self.new_user()
        ap = self.create(user, tok)
        other, _opw, otok = self.new_user()
        theirs = self.create(other, otok)
        # policy checks (allow, or no command) are always accepted, nothing recorded
        for command in ('allow', None):
            a = self.expect(self.policy(command, body={'user': user}), 200)
            self.assertEqual(a.json, {'status': 0, 'msg': ''})
        base = {'success': True, 'user': user, 'remote': '192.0.2.9',
                'app_password_id': str(ap['id']), 'protocol': 'imap', 'tls': False,
                'policy_reject': False}

        def report(**kw):
            return self.expect(self.policy(body=dict(base, **kw)), 200).json

        self.assertEqual(report(success=False), {'status': 0, 'msg': '', 'recorded': False})
        self.assertFalse(report(app_password_id='')['recorded'])  # main password
        self.assertFalse(report(app_password_id=str(theirs['id']))['recorded'])  # not theirs
        self.assertFalse(report(user='nobody-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN))
                         ['recorded'])
        self.assertFalse(report(app_password_id='999999999')['recorded'])
        self.assertEqual(self.listing(user, tok), {ap['id']: (None, None)})
        self.assertEqual(self.listing(other, otok), {theirs['id']: (None, None)})
        # hostile fields: a clear 422 and nothing changed
        for bad in ({'success': 'yes'}, {'app_password_id': '1 OR 1=1'},
                    {'app_password_id': '-3'}, {'app_password_id': '01'},
                    {'app_password_id': 'x' * 100}, {'app_password_id': 0},
                    {'app_password_id': ['1']}, {'user': 7}, {'user': 'a' * 300 + '@x'},
                    {'remote': 5}, {'remote': 'r' * 5000}):
            self.expect(self.policy(body=dict(base, **bad)), 422)
        b = dict(base)
        del b['success']
        self.expect(self.policy(body=b), 422)
        self.expect(self.policy('reject', body=base), 422, 'invalid_parameter')
        self.expect(self.call('POST', ROUTE + '?command=report&x=1', body=base,
                              headers={'Authorization': 'Bearer ' + SECRET}), 422)
        self.expect(self.policy(body=None, raw=b'{"success": tru'), 400, 'malformed_json')
        self.assertEqual(self.listing(user, tok), {ap['id']: (None, None)})
        # a remote that is not an address is recorded as unknown; a good one as given
        self.assertTrue(report(remote="127.0.0.1'; DROP TABLE users; --")['recorded'])
        self.assertEqual(self.listing(user, tok)[ap['id']][1], None)
        self.assertTrue(report(remote='2001:db8::7', user=user.upper(),
                               app_password_id=ap['id'])['recorded'])
        at, ip = self.listing(user, tok)[ap['id']]
        self.assertEqual(ip, '2001:db8::7')
        self.assertLessEqual(abs(at - time.time()), 2)


class AuthPolicyOffTest(ApiBase):
    """Without [api] auth_policy_secret the route refuses everyone (403)."""

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.start_api()
        cls.port = cls.nginx.port

    def test_hook_off(self):
        for headers in ({}, {'Authorization': 'Bearer '}, {'Authorization': 'Bearer x' * 3}):
            self.expect(self.call('POST', ROUTE + '?command=report', body={'success': True},
                                  headers=headers), 403, 'forbidden')
