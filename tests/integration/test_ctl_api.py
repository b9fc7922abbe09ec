"""test_ctl_api - mailwardenctl --api URL gives the same results as the store mode.

One Store + policyd + API (as the policy daemon's user, for its control socket) + nginx (also
listening on a unix socket) for the module. Covered: user, allow-from, tag-rule, dkim
(but import), ratelimit status|reset|policy; the rest is refused in --api mode. Each scenario runs
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

import labcase
import mailwarden_lab as lab_mod
from labcase import call

DOMAIN = lab_mod.DOMAIN
TIME = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ')
LIMITS = ['sasl_username messages 4/1h defer', 'client_address recipients 50/1d reject']
B64 = re.compile(r'[A-Za-z0-9+/=]{24,}')


class CtlApiTest(labcase.PolicydCase):

    @classmethod
    def start_lab(cls):
        # [mailhost] mx_host: `dns DOMAIN` has records to print (test_ctl_modes)
        cls.store = cls.lab.store(extra_config='\n[mailhost]\nmx_host = mx.example.org\n')
        cls.policyd = cls.lab.policyd(cls.store, limits=LIMITS)
        # the policy daemon's control socket answers root and its own user only: the
        # API runs as that user (dovecot), as it must in production for these routes
        cls.api = cls.lab.api(cls.store, run_as='dovecot', api_config=(
            'max_sessions_per_user = 1000\n\n[policyd]\ncontrol_socket = %s\n'
            % cls.policyd.control))
        # the store mode's mailwardenctl reaches the same daemon
        cls.ctl_config = os.path.join(cls.lab.root, 'ctl.conf')
        with open(cls.ctl_config, 'w') as f:
            f.write(cls.store.render_config() + '\n[policyd]\ncontrol_socket = %s\n'
                    % cls.policyd.control)
        cls.sock = os.path.join(cls.lab.root, 'nginx-api.sock')
        cls.nginx = cls.lab.nginx(fastcgi=cls.api.fastcgi(),
                                  extra_server='    listen unix:%s;\n' % cls.sock)
        cls.admin = 'admin-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
        cls.admin_pw = 'Admin-pass-' + uuid.uuid4().hex[:8]
        cls.store.add_user(cls.admin, cls.admin_pw, role='admin')
        cls.token = cls.login(cls.admin, cls.admin_pw)

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
        cmd = [self.store.ctl_path, '-c', self.ctl_config]
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
            local = user.split('@')[0]
            norm = lambda t: TIME.sub('T', t.replace(user, 'USER').replace(local, 'LOCAL'))
            out[mode] = [(rc, norm(so), norm(se)) for rc, so, se in steps]
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

    def test_tag_rules_same_in_both_modes(self):
        def script(mode, user):
            r = []
            run = lambda *a, **kw: r.append(self.ctl(mode, a, **kw)) or r[-1]
            self.store.add_user(user, 'Tr-pass-' + uuid.uuid4().hex[:8])
            first = run('tag-rule', 'add', user, '--field', 'From', '--match', 'domain',
                        '--value', 'example.com', '--keyword', 'Work')[1].strip()
            run('tag-rule', 'add', user, '--field', 'Subject', '--match', 'substring',
                '--value', 'invoice', '--mailbox', 'Bills', '--disabled')
            run('tag-rule', 'add', user, '--field', 'From', '--match', 'nope', '--value', 'x',
                '--keyword', 'K')  # 2
            run('tag-rule', 'add', user, '--field', 'From', '--match', 'exact',
                '--value', 'x@example.org')  # neither keyword nor mailbox: 2
            run('tag-rule', 'add', user, '--field', 'From', '--match', 'exact', '--value',
                'x@example.org', '--keyword', 'bad keyword')  # 2
            run('tag-rule', 'add', 'missing-' + user, '--field', 'From', '--match', 'exact',
                '--value', 'x@example.org', '--keyword', 'K')  # 3
            run('tag-rule', 'list', user)
            run('tag-rule', 'del', user, first)
            run('tag-rule', 'del', user, first)  # 3
            run('tag-rule', 'del', 'missing-' + user, first)  # 3
            run('tag-rule', 'del', user, 'abc')  # 2
            run('tag-rule', 'list', 'missing-' + user)  # 3
            run('tag-rule', 'list', user, '--json')
            # rule ids differ between the modes
            ident = re.compile(r'(?m)^\d+(?=\t|$)')
            return [(rc, ident.sub('ID', so), se.replace('rule %s:' % first, 'rule ID:'))
                    for rc, so, se in r]

        store, api = self.both(script)
        self.assertEqual([x[0] for x in store], [0, 0, 2, 2, 2, 3, 0, 0, 3, 3, 2, 3, 0])
        self.assertEqual(store[:12], api[:12])
        self.assertEqual(store[6][1], 'ID\tFrom\tdomain\texample.com\tkeyword=Work\tmailbox=-\n'
                         'ID\tSubject\tsubstring\tinvoice\tkeyword=-\tmailbox=Bills\tdisabled\n')
        self.assertEqual(store[8][2], 'mailwardenctl: USER: tag rule ID: not found\n')
        s_json, a_json = json.loads(store[12][1]), json.loads(api[12][1])
        for row in s_json + a_json:
            row.pop('id')
        self.assertEqual(s_json, a_json)
        self.assertEqual(len(s_json), 1)

    def test_dkim_same_in_both_modes(self):
        def script(mode, user):
            r = []
            run = lambda *a, **kw: r.append(self.ctl(mode, a, **kw)) or r[-1]
            dom = user.split('@')[0] + '.example.org'
            run('dkim', 'generate', dom, '--selector', 's1')
            run('dkim', 'generate', dom, '--selector', 's1')  # 4
            run('dkim', 'generate', dom, '--selector', 's2')  # now the active key
            run('dkim', 'txt', dom)
            run('dkim', 'txt', dom, 'S1')
            run('dkim', 'txt', dom, 'nosuch')  # 3
            run('dkim', 'txt', 'none-' + dom)  # 3
            run('dkim', 'activate', dom, 's1')
            run('dkim', 'activate', dom, 'nosuch')  # 3
            run('dkim', 'del', dom, 's2')  # no --yes: 2
            run('dkim', 'del', dom, 's2', '--yes')
            run('dkim', 'del', dom, 's2', '--yes')  # 3
            run('dkim', 'generate', 'bad domain!')  # 2
            run('dkim', 'generate', dom, '--bits', '1000')  # 2
            run('dkim', 'txt', dom)
            # the public keys differ between the modes
            return [(rc, B64.sub('KEY', so), se) for rc, so, se in r]

        store, api = self.both(script)
        self.assertEqual([x[0] for x in store], [0, 4, 0, 0, 0, 3, 3, 0, 3, 2, 0, 3, 2, 2, 0])
        self.assertEqual(store, api)
        self.assertEqual(store[0][2],
                         'DKIM key s1 is now the active signing key of LOCAL.example.org. '
                         'Publish:\n')
        self.assertIn('s1._domainkey.LOCAL.example.org', store[0][1])
        self.assertEqual(store[1][2], 'mailwardenctl: LOCAL.example.org/s1: already exists\n')
        self.assertIn('s2._domainkey', store[3][1])
        self.assertIn('s1._domainkey', store[14][1])  # activated again
        # the list, whole, is the same in both modes (the keys of both runs)
        for args in (['dkim', 'list'], ['dkim', 'list', '--json']):
            s, a = self.ctl('store', args), self.ctl('api', args)
            self.assertEqual(s, a, args)
            self.assertEqual(s[0], 0)
        # the record the API-mode client prints is the stored key's (made by the API)
        dom = 'k%s.example.org' % uuid.uuid4().hex[:10]
        rc, gen, err = self.ctl('api', ['dkim', 'generate', dom, '--selector', 'k1'])
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.ctl('store', ['dkim', 'txt', dom])[:2], (0, gen))
        self.assertEqual(self.ctl('api', ['dkim', 'txt', dom, 'k1'])[:2], (0, gen))
        # documented difference: the API keeps a domain's active key
        rc, _, err = self.ctl('api', ['dkim', 'del', dom, 'k1', '--yes'])
        self.assertEqual(rc, 1)
        self.assertIn('activate another key first', err)
        self.assertEqual(self.ctl('store', ['dkim', 'del', dom, 'k1', '--yes'])[0], 0)

    def test_ratelimit_policies_same_in_both_modes(self):
        def script(mode, user):
            r = []
            run = lambda *a, **kw: r.append(self.ctl(mode, a, **kw)) or r[-1]
            self.store.add_user(user, 'Rl-pass-' + uuid.uuid4().hex[:8])
            pid = run('ratelimit', 'policy', 'add', 'sasl_username', 'messages', '10/1h',
                      'defer', user)[1].strip()
            run('ratelimit', 'policy', 'add', 'bogus', 'messages', '10/1h', 'defer')  # 1
            run('ratelimit', 'policy', 'add', 'sender', 'bytes', '10/1h', 'defer')  # 1
            run('ratelimit', 'policy', 'add', 'sender', 'messages', '10/1h', 'drop')  # 1
            run('ratelimit', 'policy', 'add', 'sender', 'messages', '10', 'defer')  # 2
            run('ratelimit', 'policy', 'add', 'sender', 'messages', '0/1h', 'defer')  # 2
            # the bound pd_gcra computes exactly, and one past it
            big = run('ratelimit', 'policy', 'add', 'sender', 'size', '1000000000000000/366d',
                      'defer')[1].strip()
            run('ratelimit', 'policy', 'add', 'sender', 'size', '1000000000000001/1h',
                'defer')  # 2
            run('ratelimit', 'policy', 'add', 'sender', 'size', '9223372036854775807/1h',
                'defer')  # 2
            run('ratelimit', 'policy', 'del', big)
            run('ratelimit', 'policy', 'add', 'sender', 'messages', '5/1h', 'defer',
                'missing-' + user)  # 3
            run('ratelimit', 'policy', 'del', pid)
            run('ratelimit', 'policy', 'del', pid)  # 3
            run('ratelimit', 'policy', 'del', 'x')  # 2
            run('ratelimit', 'policy', 'frob')  # 2
            return [(rc, re.sub(r'^\d+\n$', 'ID\n', so), se) for rc, so, se in r]

        store, api = self.both(script)
        self.assertEqual([x[0] for x in store], [0, 1, 1, 1, 2, 2, 0, 2, 2, 0, 3, 0, 3, 2, 2])
        for bad in (store[7], store[8]):
            self.assertIn('count must be a whole number in 1..1000000000000000', bad[2])
        self.assertEqual(store, api)
        self.assertEqual(store[0][1], 'ID\n')
        self.assertEqual(store[1][2],
                         'mailwardenctl: adding a rate policy: unknown rate policy scope\n')
        # listed the same (one added in each mode, then both listed)
        user = 'p%s@%s' % (uuid.uuid4().hex[:10], DOMAIN)
        self.store.add_user(user, 'Rl-pass-' + uuid.uuid4().hex[:8])
        ids = [self.ctl('store', ['ratelimit', 'policy', 'add', 'recipient_domain=example.net',
                                  'recipients', '100/1d', 'reject'])[1].strip(),
               self.ctl('api', ['ratelimit', 'policy', 'add', 'sender_domain=example.com',
                                'size', '1000000/2h', 'defer', user])[1].strip()]
        listed = {}
        for args in (['ratelimit', 'policy', 'list'],
                     ['ratelimit', 'policy', 'list', '--json']):
            s, a = self.ctl('store', args), self.ctl('api', args)
            self.assertEqual(s, a, args)
            self.assertEqual(s[0], 0)
            listed[len(args)] = s[1]
        self.assertIn('%s\tsender_domain=example.com size 1000000/7200s defer\t%s\n'
                      % (ids[1], user), listed[3])
        self.assertIn('%s\trecipient_domain=example.net recipients 100/86400s reject\t'
                      '(everyone)\n' % ids[0], listed[3])
        self.assertEqual({p['id'] for p in json.loads(listed[4])} & {int(i) for i in ids},
                         {int(i) for i in ids})
        for pid in ids:
            self.assertEqual(self.ctl('api', ['ratelimit', 'policy', 'del', pid])[0], 0)

    def test_ratelimit_inbound_policies_same_in_both_modes(self):
        """The scope word's direction and /PREFIX: added, listed and refused alike."""
        def script(mode, user):
            r = []
            run = lambda *a: r.append(self.ctl(mode, a)) or r[-1]
            self.store.add_user(user, 'Rl-pass-' + uuid.uuid4().hex[:8])
            pid = run('ratelimit', 'policy', 'add', 'inbound:client_address/24/64=192.0.2.0/22',
                      'messages', '200/1h', 'defer')[1].strip()
            run('ratelimit', 'policy', 'list')
            run('ratelimit', 'policy', 'list', '--json')
            run('ratelimit', 'policy', 'add', 'sideways:client_address', 'messages', '1/1h',
                'defer')  # 1
            run('ratelimit', 'policy', 'add', 'inbound:recipient', 'messages', '1/1h',
                'defer', user)  # 1: per-user is outbound only
            run('ratelimit', 'policy', 'add', 'both:sasl_username', 'messages', '1/1h',
                'defer')  # 1
            run('ratelimit', 'policy', 'del', pid)
            return [(rc, re.sub(r'^\d+\n$', 'ID\n', so), se) for rc, so, se in r], pid

        res = {}
        for mode in ('store', 'api'):
            user = 'i%s@%s' % (uuid.uuid4().hex[:10], DOMAIN)
            steps, pid = script(mode, user)
            res[mode] = [(rc, re.sub(r'^%s\t' % pid, 'ID\t', so, flags=re.M),
                          se.replace(user, 'USER')) for rc, so, se in steps]
        store, api = res['store'], res['api']
        self.assertEqual([x[0] for x in store], [0, 0, 0, 1, 1, 1, 0])
        self.assertIn('ID\tinbound:client_address/24/64=192.0.2.0/22 messages 200/3600s '
                      'defer\t(everyone)\n', store[1][1])
        for listed in (store[2][1], api[2][1]):
            mine = [p for p in json.loads(listed)
                    if p['scope'] == 'inbound:client_address/24/64']
            self.assertEqual([(p['match'], p['count']) for p in mine], [('192.0.2.0/22', 200)])
        self.assertIn('unknown direction "sideways" (expected outbound, inbound or both)',
                      store[3][2])
        self.assertIn('direction inbound', store[4][2])
        self.assertIn('sasl_username limits count outbound mail only', store[5][2])
        # the lists hold other tests' policies too: compare only the lines of this one
        for i in (1,):
            store[i] = api[i] = (0, [l for l in store[i][1].splitlines() if '/24/64' in l] ==
                                 [l for l in api[i][1].splitlines() if '/24/64' in l], '')
        store[2] = api[2] = None
        self.assertEqual(store, api)

    def test_ratelimit_status_and_reset_same_in_both_modes(self):
        user = 's%s@%s' % (uuid.uuid4().hex[:10], DOMAIN)
        self.store.add_user(user, 'St-pass-' + uuid.uuid4().hex[:8])
        for args in (['ratelimit', 'status', user], ['ratelimit', 'reset', user],
                     ['ratelimit', 'status', user.upper()], ['ratelimit', 'status'],
                     ['ratelimit', 'status', 'two words']):
            s, a = self.ctl('store', args), self.ctl('api', args)
            self.assertEqual(s, a, args)
        s = self.ctl('store', ['ratelimit', 'status', user])
        self.assertEqual(s[0], 0, s)
        self.assertIn('sasl_username messages 4/1h defer  used 0/4  idle', s[1])
        r = self.ctl('api', ['ratelimit', 'reset', user])
        self.assertEqual(r[:2], (0, 'cleared 0 counters of sasl_username %s\n' % user))
        # documented differences: the API reports known users only, not addresses
        self.assertEqual(self.ctl('store', ['ratelimit', 'status', '127.0.0.1'])[0], 0)
        rc, _, err = self.ctl('api', ['ratelimit', 'status', '127.0.0.1'])
        self.assertEqual(rc, 2)
        self.assertIn('users only', err)
        rc, _, err = self.ctl('api', ['ratelimit', 'status', 'missing-' + user])
        self.assertEqual((rc, err), (3, 'mailwardenctl: missing-%s: not found\n' % user))
        a = call(self.nginx.port, 'GET', '/api/v1/audit?target=' + user, token=self.token)
        self.assertIn(('ratelimit.reset', 'api:' + self.admin),
                      {(e['action'], e['actor']) for e in a.json['entries']})

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
            (['training', 'list'], [], None, True, 2, 'training list is not available'),
            (['config', 'dump'], [], None, True, 2, 'config dump is not available'),
            (['dkim', 'import', 'example.org', 's1', '/dev/null'], [], None, True, 2,
             'dkim import is not available with --api'),
            (['init'], [], None, True, 2, 'init is not available with --api'),
            # there is no option taking the token itself (--token abbreviates --token-file)
            (['user', 'list'], ['--token', self.token], None, True, 1, '--token-file'),
            (['user', 'list'], ['--bearer', 'x'], None, True, 2, 'unknown option'),
        ]
        for args, extra, token, env_token, rc, text in cases:
            got = self.ctl('api', args, token=token, extra=extra, env_token=env_token)
            self.assertEqual(got[0], rc, (args, got))
            self.assertIn(text, got[2], (args, got))
        # bad URLs
        # https is spoken (libcurl, issue 11): nothing listens here (test_ctl_modes checks TLS)
        for url, text in (('https://127.0.0.1:%d/' % lab_mod.free_port(), 'refused'),
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
