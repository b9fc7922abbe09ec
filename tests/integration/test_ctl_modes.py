"""test_ctl_modes - every mailwardenctl command, once on the store and once with --api (issue 11).

mailwardenctl has one command table (ctl/ctl-commands.def) and one handler per command over an
operations interface with two implementations (ctl-local.c: the store; ctl-remote.c: the API
through nginx, libcurl). This module runs each command of the table, parametrised, in both
modes on a fresh user (or domain) of the same shape and checks:
  - the same exit status, standard output and standard error (names and times normalised);
  - the same audit action(s) written for the change, from lib/mw-audit.def, with JSON details,
    whichever path wrote them (actor cli:LOGIN in the store mode, api:ADMIN through the API);
  - every command the table marks [api] has a case here, and every other command is refused
    with --api (exit 2, naming the command);
  - audit rows written by older releases under the old names (user.del, allow_from.add, ...)
    are listed and filtered by the API under the current names;
  - https: the API behind TLS is reached with --cacert (and not through a proxy named in the
    environment), and a server the CAs do not vouch for is refused.
The lab is test_ctl_api's: Store + policyd + API (as the policy daemon's user) + nginx.
"""

import http.server
import json
import os
import re
import sqlite3
import ssl
import subprocess
import threading
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod
import test_ctl_api
from labcase import call

DOMAIN = lab_mod.DOMAIN
TIME = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ')
PW = 'Modes-pass-' + uuid.uuid4().hex[:8]
B64 = re.compile(r'[A-Za-z0-9+/=]{24,}')


def add_user(t, u):
    t.store.add_user(u['user'], PW)


def add_pattern(t, u):
    add_user(t, u)
    t.ctl('store', ['allow-from', 'add', u['user'], u['user']])


def add_rule(t, u):
    add_user(t, u)
    rc, out, err = t.ctl('store', ['tag-rule', 'add', u['user'], '--field', 'From', '--match',
                                   'domain', '--value', 'lists.example.org', '--keyword',
                                   'Lists'])
    assert rc == 0, err
    u['rule'] = out.strip()


def add_key(t, u):
    for sel in ('k1', 'k2'):
        rc, _, err = t.ctl('store', ['dkim', 'generate', u['domain'], '--selector', sel])
        assert rc == 0, err


def add_policy(t, u):
    add_user(t, u)
    rc, out, err = t.ctl('store', ['ratelimit', 'policy', 'add', 'sasl_username', 'messages',
                                   '7/1h', 'defer', u['user']])
    assert rc == 0, err
    u['policy'] = out.strip()


# (label, setup, args with {user} {domain} {rule} {policy}, stdin, rc, audit actions, target)
CASES = [
    ('user add', None, ['user', 'add', '{user}', '--description', 'x', '--password-stdin'],
     PW + '\n', 0, ['user.add'], '{user}'),
    ('user add exists', add_user, ['user', 'add', '{user}', '--password-stdin'], PW + '\n', 4,
     [], '{user}'),
    ('user list', add_user, ['user', 'list', '--role', 'user', '--limit', '1'], None, 0, [],
     None),
    ('user show', add_pattern, ['user', 'show', '{user}'], None, 0, [], None),
    ('user show missing', None, ['user', 'show', '{user}'], None, 3, [], None),
    ('user passwd', add_user, ['user', 'passwd', '{user}', '--password-stdin'], PW + '-2\n', 0,
     ['user.password'], '{user}'),
    ('user passwd short', add_user, ['user', 'passwd', '{user}', '--password-stdin'], 'short\n',
     2, [], '{user}'),
    ('user disable', add_user, ['user', 'disable', '{user}'], None, 0, ['user.update'],
     '{user}'),
    ('user enable', add_user, ['user', 'enable', '{user}'], None, 0, ['user.update'],
     '{user}'),
    ('user enable missing', None, ['user', 'enable', '{user}'], None, 3, [], '{user}'),
    ('user del', add_user, ['user', 'del', '{user}', '--yes'], None, 0, ['user.delete'],
     '{user}'),
    ('user del no --yes', add_user, ['user', 'del', '{user}'], None, 2, [], '{user}'),
    ('allow-from add', add_user, ['allow-from', 'add', '{user}', 'Me@Example.org',
                                  '*@sub.example.org'], None, 0,
     ['allowed_from.add', 'allowed_from.add'], '{user}'),
    ('allow-from add bad', add_user, ['allow-from', 'add', '{user}', 'bad@@x'], None, 2, [],
     '{user}'),
    ('allow-from del', add_pattern, ['allow-from', 'del', '{user}', '{user}'], None, 0,
     ['allowed_from.delete'], '{user}'),
    ('allow-from del missing', add_user, ['allow-from', 'del', '{user}', 'x@example.org'],
     None, 3, [], '{user}'),
    ('allow-from list', add_pattern, ['allow-from', 'list', '{user}', '--json'], None, 0, [],
     None),
    ('tag-rule add', add_user, ['tag-rule', 'add', '{user}', '--field', 'Subject', '--match',
                                'substring', '--value', '[list]', '--mailbox', 'Lists'], None,
     0, ['tag_rule.add'], '{user}'),
    ('tag-rule list', add_rule, ['tag-rule', 'list', '{user}'], None, 0, [], None),
    ('tag-rule del', add_rule, ['tag-rule', 'del', '{user}', '{rule}'], None, 0,
     ['tag_rule.delete'], '{user}'),
    ('tag-rule del missing', add_user, ['tag-rule', 'del', '{user}', '999999'], None, 3, [],
     '{user}'),
    ('dkim generate', None, ['dkim', 'generate', '{domain}', '--selector', 's1'], None, 0,
     ['dkim.generate'], '{domain}/s1'),
    ('dkim list', add_key, ['dkim', 'list'], None, 0, [], None),
    ('dkim txt', add_key, ['dkim', 'txt', '{domain}'], None, 0, [], None),
    ('dkim txt missing', add_key, ['dkim', 'txt', '{domain}', 'nope'], None, 3, [], None),
    ('dkim activate', add_key, ['dkim', 'activate', '{domain}', 'k1'], None, 0,
     ['dkim.activate'], '{domain}/k1'),
    ('dkim del', add_key, ['dkim', 'del', '{domain}', 'k1', '--yes'], None, 0,
     ['dkim.delete'], '{domain}/k1'),
    # a rotation: the new key (selector: today) is pending, its record not visible through
    # the lab's resolver; the same events and audit from both paths
    ('dkim rotate', add_key, ['dkim', 'rotate', '{domain}'], None, 0, ['dkim.rotate'],
     '{domain}/' + time.strftime('%Y%m%d', time.gmtime())),
    ('dkim rotate bad domain', None, ['dkim', 'rotate', 'bad..{domain}'], None, 2, [], None),
    ('ratelimit status', add_user, ['ratelimit', 'status', '{user}'], None, 0, [], None),
    ('ratelimit reset', add_user, ['ratelimit', 'reset', '{user}'], None, 0, None, None),
    ('ratelimit policy add', add_user, ['ratelimit', 'policy', 'add', 'sasl_username',
                                        'recipients', '9/1d', 'reject', '{user}'], None, 0,
     ['ratelimit.policy.add'], '{user}'),
    ('ratelimit policy del', add_policy, ['ratelimit', 'policy', 'del', '{policy}'], None, 0,
     ['ratelimit.policy.delete'], '{policy}'),
    ('ratelimit policy list', None, ['ratelimit', 'policy', 'list'], None, 0, [], None),
    ('dns', add_key, ['dns', '{domain}'], None, 0, [], None),
    ('dns --json', add_key, ['dns', '{domain}', '--json'], None, 0, [], None),
    ('dns bad domain', None, ['dns', 'bad..{domain}'], None, 2, [], None),
    # no reports in this lab: the same empty summary from both paths (test_dmarc_received.py
    # compares them with reports)
    ('dmarc report', None, ['dmarc', 'report'], None, 0, [], None),
    ('dmarc report --json', None, ['dmarc', 'report', '--domain', '{domain}', '--json'], None,
     0, [], None),
    ('dmarc report bad date', None, ['dmarc', 'report', '--since', 'yesterday'], None, 2, [],
     None),
]


class CtlModesTest(labcase.PolicydCase):
    start_lab = test_ctl_api.CtlApiTest.__dict__['start_lab']
    login = test_ctl_api.CtlApiTest.__dict__['login']
    ctl = test_ctl_api.CtlApiTest.ctl

    def tearDown(self):
        self.assertEqual(self.api.sanitizer_report(), '')

    def audit_since(self, last_id, target):
        with sqlite3.connect(self.store.db) as c:
            return c.execute('SELECT action, actor, details FROM audit_log WHERE id > ? AND '
                             'target = ? ORDER BY id', (last_id, target)).fetchall()

    def last_audit_id(self):
        with sqlite3.connect(self.store.db) as c:
            return c.execute('SELECT coalesce(max(id), 0) FROM audit_log').fetchone()[0]

    def run_case(self, mode, case):
        label, setup, args, stdin, _, _, target = case
        tag = uuid.uuid4().hex[:10]
        u = {'user': 'm%s@%s' % (tag, DOMAIN), 'domain': 'd%s.example.org' % tag}
        if setup is not None:
            setup(self, u)
        before = self.last_audit_id()
        argv = [a.format(**u) for a in args]
        rc, out, err = self.ctl(mode, argv, input=stdin)
        rows = self.audit_since(before, target.format(**u)) if target else []

        def norm(t):
            for k in ('rule', 'policy'):
                if k in u:
                    t = re.sub(r'\b%s\b' % u[k], k.upper(), t)
            t = t.replace(u['user'], 'USER').replace(u['domain'], 'DOMAIN')
            return B64.sub('B64', TIME.sub('T', t.replace('m' + tag, 'LOCAL')))

        if re.fullmatch(r'\d+\n', out):
            out = 'ID\n'  # tag-rule add, ratelimit policy add: the new row's id
        if label in ('user list', 'dkim list', 'ratelimit policy list'):
            out = ''  # the whole table differs between the runs; its shape is compared below
        return rc, norm(out), norm(err), rows

    def test_every_command_same_in_both_modes(self):
        for case in CASES:
            label, _, args, _, want_rc, want_actions, _ = case
            with self.subTest(label):
                s = self.run_case('store', case)
                a = self.run_case('api', case)
                self.assertEqual(s[0], want_rc, (label, s))
                self.assertEqual(s[:3], a[:3], label)
                if want_actions is None:
                    continue  # ratelimit reset: the API audits it, the daemon's socket cannot
                self.assertEqual([r[0] for r in s[3]], want_actions, (label, s[3]))
                self.assertEqual([r[0] for r in a[3]], want_actions, (label, a[3]))
                for rows, actor in ((s[3], 'cli:'), (a[3], 'api:' + self.admin)):
                    for action, who, details in rows:
                        self.assertTrue(who.startswith(actor), (label, who))
                        if details:
                            self.assertIsInstance(json.loads(details), dict, (label, details))
                # the same details, member for member, from both paths
                self.assertEqual([sorted(json.loads(r[2]).keys()) if r[2] else []
                                  for r in s[3]],
                                 [sorted(json.loads(r[2]).keys()) if r[2] else []
                                  for r in a[3]], label)

    def test_lists_same_in_both_modes(self):
        for args in (['user', 'list', '--status', 'active'], ['dkim', 'list'],
                     ['ratelimit', 'policy', 'list'], ['ratelimit', 'policy', 'list', '--json']):
            s, a = self.ctl('store', args), self.ctl('api', args)
            self.assertEqual(s, a, args)
            self.assertEqual(s[0], 0, s)

    def test_table_cases_cover_every_api_command(self):
        p = subprocess.run(self.store.ctl_command() + ['--help'], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0)
        usages = []
        for l in p.stdout.split('\nGLOBAL OPTIONS')[0].split('\nCOMMANDS\n')[1].splitlines():
            if l.startswith('   '):  # a usage's continuation line
                usages[-1] += ' ' + l.strip()
            elif l.startswith('  '):
                usages.append(l.strip())
        # "GROUP NAME ..." or a top-level "NAME ARG ..." (dns DOMAIN)
        api = [l.split()[0] if l.split()[1].isupper() else ' '.join(l.split()[:2])
               for l in usages if l.endswith('[api]')]
        local = [l for l in usages if not l.endswith('[api]')]
        self.assertGreaterEqual(len(api), 21, usages)
        covered = {' '.join(c[2][:2]) for c in CASES} | {c[2][0] for c in CASES}
        for name in api:
            self.assertIn(name, covered, 'no both-mode case for ' + name)
        # the rest of the table: refused with --api, naming the command
        for line in local:
            words = line.split()
            # "GROUP NAME ..." has a lower-case word second; "NAME [--opt] ARG" does not
            top = len(words) < 2 or re.match(r'^[a-z][a-z-]*$', words[1]) is None
            argv = words[:1] if top else words[:2]
            rc, _, err = self.ctl('api', argv + ['x'])
            self.assertEqual(rc, 2, (argv, err))
            self.assertIn('%s is not available with --api' % ' '.join(argv), err)

    def test_old_audit_names_read_as_current(self):
        target = 'old-%s@%s' % (uuid.uuid4().hex[:8], DOMAIN)
        old = [('user.del', ''), ('allow_from.add', target), ('allow_from.del', target),
               ('user.passwd', ''), ('user.disable', ''), ('tag_rule.del', '{"id":3}'),
               ('learn spam', '12 messages')]
        with sqlite3.connect(self.store.db) as c:
            for action, details in old:
                c.execute("INSERT INTO audit_log (at, actor, action, target, client, details) "
                          "VALUES (1, 'cli:root', ?, ?, 'local', ?)", (action, target, details))
        a = call(self.nginx.port, 'GET', '/api/v1/audit?target=' + target, token=self.token)
        self.assertEqual(a.status, 200, a)
        self.assertEqual([e['action'] for e in a.json['entries']],
                         ['user.delete', 'allowed_from.add', 'allowed_from.delete',
                          'user.password', 'user.update', 'tag_rule.delete',
                          'classifier.learn'])
        # details stay as written (text from the old CLI)
        self.assertEqual(a.json['entries'][-1]['details'], '12 messages')
        # a filter on the current name finds the rows written under the old one, and the old
        # name still works as a filter
        for name in ('user.delete', 'user.del'):
            a = call(self.nginx.port, 'GET', '/api/v1/audit?target=%s&action=%s'
                     % (target, name), token=self.token)
            self.assertEqual([e['action'] for e in a.json['entries']], ['user.delete'], name)

    def test_https_with_cacert(self):
        d = os.path.join(self.lab.root, 'tls-' + uuid.uuid4().hex[:6])
        os.makedirs(d)
        cert, key = os.path.join(d, 'cert.pem'), os.path.join(d, 'key.pem')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
                        '-keyout', key, '-out', cert], check=True, capture_output=True,
                       timeout=120)
        seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, self.headers.get('Authorization')))
                body = json.dumps({'users': [{'username': 'tls@example.org', 'status': 'active',
                                              'role': 'user', 'created_at': 0}],
                                   'next_after': None}).encode()
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        srv = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        try:
            url = 'https://127.0.0.1:%d/prefix' % srv.server_address[1]
            # proxies in the environment are not used: the token goes to URL only
            env = dict(os.environ, MAILWARDEN_TOKEN='tls-token',
                       https_proxy='http://127.0.0.1:%d' % lab_mod.free_port(),
                       HTTPS_PROXY='http://127.0.0.1:%d' % lab_mod.free_port(),
                       ALL_PROXY='http://127.0.0.1:%d' % lab_mod.free_port())
            p = subprocess.run(self.store.ctl_command() + ['--api', url, '--cacert', cert,
                                                           'user', 'list'],
                               capture_output=True, text=True, env=env, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn('tls@example.org', p.stdout)
            self.assertEqual(seen, [('/prefix/api/v1/users?after=0&limit=1000',
                                     'Bearer tls-token')])
            # without --cacert the self-signed server is not trusted
            p = subprocess.run(self.store.ctl_command() + ['--api', url, 'user', 'list'],
                               capture_output=True, text=True, env=env, timeout=60)
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn('certificate', p.stderr)
            self.assertEqual(len(seen), 1)
        finally:
            srv.shutdown()
            srv.server_close()


if __name__ == '__main__':
    unittest.main()
