"""test_ctl_api - mailwardenctl --api URL gives the same results as the store mode.

One Store + API + nginx (also listening on a unix socket) for the module. Each scenario runs
the same commands once on the store directly and once through the API (through nginx), on
users of the same shape, and compares exit codes, standard output and standard error (user
names and timestamps normalised). The session token comes from MAILWARDEN_TOKEN or a token
file, never from the command line.
"""

import json
import os
import re
import subprocess
import unittest
import uuid

import mailwarden_lab as lab_mod
from test_api import call

DOMAIN = lab_mod.DOMAIN
TIME = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ')


class CtlApiTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.lab = lab_mod.Lab()
        try:
            cls.store = cls.lab.store()
            cls.api = cls.lab.api(cls.store, api_config={'max_sessions_per_user': '1000'})
            cls.sock = os.path.join(cls.lab.root, 'nginx-api.sock')
            cls.nginx = cls.lab.nginx(fastcgi=cls.api.fastcgi(),
                                      extra_server='    listen unix:%s;\n' % cls.sock)
        except BaseException:
            cls.lab.stop()
            raise
        cls.admin = 'admin-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
        cls.admin_pw = 'Admin-pass-' + uuid.uuid4().hex[:8]
        cls.store.add_user(cls.admin, cls.admin_pw, role='admin')
        cls.token = cls.login(cls.admin, cls.admin_pw)

    @classmethod
    def tearDownClass(cls):
        cls.lab.stop()

    def tearDown(self):
        self.assertEqual(self.api.sanitizer_report(), '')

    @classmethod
    def login(cls, user, password):
        a = call(cls.nginx.port, 'POST', '/api/v1/sessions',
                 body={'username': user, 'password': password})
        assert a.status == 201, a
        return a.json['token']

    def ctl(self, mode, args, input=None, token=None, extra=(), env_token=True):
        """ctl - mailwardenctl ARGS on the store ('store') or through the API ('api')."""
        cmd = self.store.ctl_command()
        env = {k: v for k, v in os.environ.items() if k != 'MAILWARDEN_TOKEN'}
        if mode == 'api':
            cmd += ['--api', 'http://127.0.0.1:%d' % self.nginx.port] + list(extra)
            if env_token:
                env['MAILWARDEN_TOKEN'] = token or self.token
        elif mode == 'unix':
            cmd += ['--api', 'unix:' + self.sock] + list(extra)
            env['MAILWARDEN_TOKEN'] = token or self.token
        p = subprocess.run(cmd + list(args), input=input, capture_output=True, text=True,
                           env=env, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def both(self, script):
        """both - run SCRIPT(mode, user) for a fresh user in each mode; results normalised."""
        out = {}
        for mode in ('store', 'api'):
            user = 'c%s@%s' % (uuid.uuid4().hex[:10], DOMAIN)
            steps = script(mode, user)
            out[mode] = [(rc, TIME.sub('T', so.replace(user, 'USER')),
                          TIME.sub('T', se.replace(user, 'USER'))) for rc, so, se in steps]
        return out['store'], out['api']

    def test_user_lifecycle_same_in_both_modes(self):
        pw = 'Life-pass-' + uuid.uuid4().hex[:8]

        def script(mode, user):
            r = []
            run = lambda *a, **kw: r.append(self.ctl(mode, a, **kw)) or r[-1]
            run('user', 'add', user, '--description', 'a test', '--password-stdin',
                input=pw + '\n')
            run('user', 'add', user, '--password-stdin', input=pw + '\n')  # exists: 4
            run('user', 'add', 'not a name', '--password-stdin', input=pw + '\n')  # 2
            run('user', 'show', user)
            run('user', 'disable', user)
            run('user', 'show', user)
            run('user', 'enable', user)
            run('user', 'passwd', user, '--password-stdin', input='short\n')  # policy: 2
            run('user', 'passwd', user, '--password-stdin', input=pw + '-2\n')
            run('user', 'passwd', 'missing-' + user, '--password-stdin', input=pw + '\n')
            run('user', 'disable', 'missing-' + user)  # 3
            run('user', 'del', user)  # no --yes: 2
            run('user', 'del', user, '--yes')
            run('user', 'del', user, '--yes')  # 3
            run('user', 'show', user)  # 3
            return r

        store, api = self.both(script)
        self.assertEqual([x[0] for x in store], [0, 4, 2, 0, 0, 0, 0, 2, 0, 3, 3, 2, 0, 3, 3])
        self.assertEqual(store, api)
        self.assertIn('status:              disabled', store[5][1])
        self.assertEqual(store[1][2], 'mailwardenctl: USER: already exists\n')

    def test_allow_from_same_in_both_modes(self):
        def script(mode, user):
            r = []
            run = lambda *a, **kw: r.append(self.ctl(mode, a, **kw)) or r[-1]
            self.store.add_user(user, 'Af-pass-' + uuid.uuid4().hex[:8])
            run('allow-from', 'add', user, 'Me@Example.org', '*@sub.example.org',
                'me+*@example.org')
            run('allow-from', 'add', user, 'me@example.org')  # exists: 4
            run('allow-from', 'add', user, 'bad@@pattern')  # 2, nothing added
            run('allow-from', 'list', user)
            run('allow-from', 'list', user, '--json')
            run('allow-from', 'del', user, '*@sub.example.org')
            run('allow-from', 'del', user, '*@sub.example.org')  # 3
            run('allow-from', 'add', 'missing-' + user, 'x@example.org')  # 3
            run('allow-from', 'list', 'missing-' + user)  # 3
            run('user', 'show', user)
            run('user', 'show', user, '--json')
            return r

        store, api = self.both(script)
        self.assertEqual([x[0] for x in store], [0, 4, 2, 0, 0, 0, 3, 3, 3, 0, 0])
        self.assertEqual(sorted(store[3][1].split()),
                         ['*@sub.example.org', 'me+*@example.org', 'me@example.org'])
        self.assertEqual(store[:10], api[:10])
        # JSON of show: the same but for the row id, which the API does not expose
        s_json, a_json = json.loads(store[10][1]), json.loads(api[10][1])
        s_json.pop('id')
        self.assertEqual(s_json, a_json)

    def test_generated_password_and_list_agree(self):
        user = 'g%s@%s' % (uuid.uuid4().hex[:10], DOMAIN)
        rc, out, err = self.ctl('api', ['user', 'add', user, '--generate', '--role', 'user'])
        self.assertEqual(rc, 0, err)
        pw = out.strip()
        self.assertGreaterEqual(len(pw), 12)
        self.login(user, pw)  # the printed password is the user's
        rc, out, err = self.ctl('api', ['user', 'passwd', user, '--generate'])
        self.assertEqual(rc, 0, err)
        self.login(user, out.strip())
        # the whole list, paged by the client, equals the store's
        for args in (['user', 'list'], ['user', 'list', '--status', 'active'],
                     ['user', 'list', '--limit', '2'], ['user', 'list', '--role', 'admin']):
            s, a = self.ctl('store', args), self.ctl('api', args)
            self.assertEqual(s, a, args)
            self.assertEqual(s[0], 0)
        s = json.loads(self.ctl('store', ['user', 'list', '--json'])[1])
        a = json.loads(self.ctl('api', ['user', 'list', '--json'])[1])
        for row in s + a:  # the API's list has no row ids, nor the TOTP flag (show has it)
            row.pop('id', None)
            row.pop('totp', None)
        self.assertEqual(s, a)
        # audited as the API session's user
        a = call(self.nginx.port, 'GET', '/api/v1/audit?target=' + user, token=self.token)
        self.assertEqual({(e['action'], e['actor']) for e in a.json['entries']
                          if e['action'].startswith('user.')},
                         {('user.add', 'api:' + self.admin),
                          ('user.password', 'api:' + self.admin)})

    def test_unix_socket_and_token_file(self):
        user = 'x%s@%s' % (uuid.uuid4().hex[:10], DOMAIN)
        self.store.add_user(user, 'Unix-pass-' + uuid.uuid4().hex[:6])
        self.assertEqual(self.ctl('unix', ['user', 'show', user])[:2],
                         self.ctl('store', ['user', 'show', user])[:2])
        tf = os.path.join(self.lab.root, 'token')
        with open(tf, 'w') as f:
            f.write(self.token + '\n')
        os.chmod(tf, 0o600)
        rc, out, err = self.ctl('api', ['allow-from', 'list', user],
                                extra=['--token-file', tf], env_token=False)
        self.assertEqual((rc, out), (0, ''), err)
        os.chmod(tf, 0o604)
        rc, _, err = self.ctl('api', ['allow-from', 'list', user],
                              extra=['--token-file', tf], env_token=False)
        self.assertEqual(rc, 1)
        self.assertIn('not readable by others', err)

    def test_refusals(self):
        user = 'r%s@%s' % (uuid.uuid4().hex[:10], DOMAIN)
        upw = 'Plain-pass-' + uuid.uuid4().hex[:6]
        self.store.add_user(user, upw)
        cases = [
            # (args, extra, token, env_token, rc, text in stderr)
            (['user', 'list'], [], None, False, 1, 'MAILWARDEN_TOKEN'),
            (['user', 'list'], [], 'A' * 43, True, 1, 'not authenticated'),
            (['user', 'list'], [], self.login(user, upw), True, 1, 'refused'),
            (['user', 'list'], [], 'bad token\u0001', True, 1, 'printable'),
            (['dkim', 'list'], [], None, True, 2, 'not available with --api'),
            # there is no option taking the token itself (--token abbreviates --token-file)
            (['user', 'list'], ['--token', self.token], None, True, 1, '--token-file'),
            (['user', 'list'], ['--bearer', 'x'], None, True, 2, 'unknown option'),
        ]
        for args, extra, token, env_token, rc, text in cases:
            got = self.ctl('api', args, token=token, extra=extra, env_token=env_token)
            self.assertEqual(got[0], rc, (args, got))
            self.assertIn(text, got[2], (args, got))
        # bad URLs
        for url, text in (('https://127.0.0.1/', 'https is not spoken'),
                          ('ftp://x', 'expected http'), ('http://:80', 'no host'),
                          ('http://127.0.0.1:99999', 'bad port'),
                          ('http://127.0.0.1:%d' % lab_mod.free_port(), 'refused')):
            p = subprocess.run(self.store.ctl_command() + ['--api', url, 'user', 'list'],
                               capture_output=True, text=True,
                               env=dict(os.environ, MAILWARDEN_TOKEN=self.token), timeout=60)
            self.assertEqual(p.returncode, 1, (url, p.stderr))
            self.assertIn(text, p.stderr.lower() if text == 'refused' else p.stderr, url)


if __name__ == '__main__':
    unittest.main()
