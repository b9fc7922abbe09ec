"""test_api_session_cache - a worker's cache of session rows never serves a revoked session.

mailwarden-api's workers keep the session, user and (for GET /users/{self}) allowed-From rows
they read, and use them again only while the store's data version has not moved
(webapi/api-authcache.c). Every test here first makes EVERY worker of the pool serve the
session (each worker's write count in /proc/PID/io must have grown, so each has read and
cached it), then changes it through one request (or through mailwardenctl, another
process), then sends concurrent requests until every worker has answered again: each of
those answers must show the change (401, or the new data). A cache that served what it
had would answer 200 from at least one worker.
"""

import threading
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod
from labcase import call

DOMAIN = lab_mod.DOMAIN
WORKERS = 3


def writes(pid):
    """writes - PID's count of write system calls (each answered request logs a line)."""
    with open('/proc/%d/io' % pid) as f:
        for line in f:
            if line.startswith('syscw:'):
                return int(line.split()[1])
    raise AssertionError('no syscw in /proc/%d/io' % pid)


class SessionCacheTest(labcase.ApiBase):
    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.start_api(api_config={'workers': str(WORKERS), 'login_max_failures': '1000',
                                  'ip_max_failures': '1000'})
        cls.add_admin()
        lab_mod.wait_until(lambda: len(lab_mod.children_of(cls.api.proc.pid)) == WORKERS, 120,
                           '%d API workers' % WORKERS)

    def on_every_worker(self, method, path, token, body=None):
        """on_every_worker - concurrent requests (threads of keep-alive-less calls) until
        every worker has answered at least one; returns every answer."""
        workers = lab_mod.children_of(self.api.proc.pid)
        self.assertEqual(len(workers), WORKERS)
        before = {p: writes(p) for p in workers}
        answers, lock = [], threading.Lock()

        def run():
            for _ in range(10):
                a = call(self.port, method, path, token=token, body=body, source=self.source)
                with lock:
                    answers.append(a)

        for _ in range(20):
            threads = [threading.Thread(target=run) for _ in range(2 * WORKERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            if all(writes(p) > before[p] for p in workers):
                return answers
        self.fail('not every worker answered: writes %r before %r'
                  % ({p: writes(p) for p in workers}, before))

    def all_status(self, answers, status):
        """all_status - every answer has STATUS (the first that does not is shown)."""
        for a in answers:
            self.assertEqual(a.status, status, a)

    def warm(self, user, token):
        """warm - every worker has served USER's GET /users/{user} with TOKEN."""
        self.all_status(self.on_every_worker('GET', '/api/v1/users/' + user, token), 200)

    def test_logout_ends_the_session_on_every_worker(self):
        user, pw = self.store_user()
        token = self.login(user, pw)
        self.warm(user, token)
        self.expect(self.call('DELETE', '/api/v1/sessions/current', token=token), 204)
        self.all_status(self.on_every_worker('GET', '/api/v1/users/' + user, token), 401)

    def test_refresh_ends_the_old_token_on_every_worker(self):
        user, pw = self.store_user()
        token = self.login(user, pw)
        self.warm(user, token)
        a = self.expect(self.call('POST', '/api/v1/sessions/refresh', token=token, body={}), 201)
        self.all_status(self.on_every_worker('GET', '/api/v1/users/' + user, token), 401)
        self.warm(user, a.json['token'])

    def test_user_disabled_through_the_api(self):
        user, pw = self.store_user()
        token = self.login(user, pw)
        admin = self.login(self.admin, self.admin_pw)
        self.warm(user, token)
        self.expect(self.call('PATCH', '/api/v1/users/' + user, token=admin,
                              body={'status': 'disabled'}), 200)
        self.all_status(self.on_every_worker('GET', '/api/v1/users/' + user, token), 401)

    def test_user_disabled_by_another_process(self):
        user, pw = self.store_user()
        token = self.login(user, pw)
        self.warm(user, token)
        self.store.ctl('user', 'disable', user)
        self.all_status(self.on_every_worker('GET', '/api/v1/users/' + user, token), 401)

    def test_user_deleted_by_another_process(self):
        user, pw = self.store_user()
        token = self.login(user, pw)
        self.warm(user, token)
        self.store.ctl('user', 'del', user, '--yes')
        self.all_status(self.on_every_worker('GET', '/api/v1/users/' + user, token), 401)

    def test_password_change_revokes_the_other_sessions_on_every_worker(self):
        user, pw = self.store_user()
        mine, other = self.login(user, pw), self.login(user, pw)
        self.warm(user, mine)
        self.warm(user, other)
        self.expect(self.call('POST', '/api/v1/users/%s/password' % user, token=mine,
                              body={'current_password': pw,
                                    'password': 'New-pass-' + uuid.uuid4().hex}), 200)
        self.all_status(self.on_every_worker('GET', '/api/v1/users/' + user, other), 401)
        self.all_status(self.on_every_worker('GET', '/api/v1/users/' + user, mine), 200)

    def test_sessions_ended_by_an_admin(self):
        user, pw = self.store_user()
        token = self.login(user, pw)
        admin = self.login(self.admin, self.admin_pw)
        self.warm(user, token)
        self.expect(self.call('DELETE', '/api/v1/users/%s/sessions' % user, token=admin), 200)
        self.all_status(self.on_every_worker('GET', '/api/v1/users/' + user, token), 401)

    def test_changed_rows_are_served_by_every_worker(self):
        user, pw = self.store_user()
        token = self.login(user, pw)
        self.warm(user, token)
        pattern = 'alias-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
        self.store.allow_from(user, pattern)
        answers = self.on_every_worker('GET', '/api/v1/users/' + user, token)
        self.all_status(answers, 200)
        for a in answers:
            self.assertIn(pattern, a.json['allowed_from'], a)


if __name__ == '__main__':
    unittest.main()
