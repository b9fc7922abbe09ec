"""test_setup - mailwardenctl setup postfix|dovecot|nginx [--apply] and doctor (issue 13).

Postfix: a copy of this machine's own Debian main.cf and master.cf in a lab directory,
read and changed through the real postconf -c DIR. Dovecot: a lab configuration directory
whose result the real doveconf parses; nginx: the snippet included in a server block that
the real nginx -t accepts. The daemons' sockets are plain listening unix sockets (setup and
doctor only connect); the DNS server is the lab's NSD, serving the DKIM key doctor looks for.
"""

import os
import re
import shutil
import socket
import subprocess
import unittest

import labcase
import mailwarden_lab as lab_mod

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(TOP, 'conf.d')


class SetupTest(labcase.LabCase):
    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.dns = cls.lab.dns(zones={'example.org': []})
        cls.tmp = cls.lab_dir('setup-test')
        cls.sockdir = os.path.join(cls.tmp, 'spool', 'mailwarden')
        os.makedirs(cls.sockdir)
        cls.milter_path = os.path.join(cls.sockdir, 'milter.sock')
        cls.policy_path = os.path.join(cls.sockdir, 'policyd.sock')
        cls.config = os.path.join(cls.tmp, 'mailwarden.conf')
        lab_mod.write_file(cls.config, 'user = dovecot\n' + cls.store.render_config()
                           + '\n[milter]\nsocket = unix:%s\ndns_servers = %s\n'
                           '\n[policyd]\nsocket = unix:%s\ncontrol_socket = ""\n'
                           % (cls.milter_path, cls.dns.server, cls.policy_path), 0o644)
        cls.listeners = []

    @classmethod
    def tearDownClass(cls):
        for s in cls.listeners:
            s.close()
        super().tearDownClass()

    def setUp(self):
        # every test starts with no daemon answering
        while self.listeners:
            self.listeners.pop().close()
        for path in (self.milter_path, self.policy_path):
            if os.path.exists(path):
                os.unlink(path)

    def ctl(self, *args, check=None):
        p = subprocess.run([self.store.ctl_path, '-c', self.config] + list(args),
                           capture_output=True, text=True, timeout=120)
        self.assertNotIn('AddressSanitizer', p.stderr)
        if check is not None:
            self.assertEqual(p.returncode, check, p.stdout + p.stderr)
        return p

    def listen(self, path):
        if os.path.exists(path):
            os.unlink(path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(4)
        self.listeners.append(s)
        return s

    def postfix_dir(self, name):
        """postfix_dir - a copy of the system's main.cf/master.cf whose queue directory
        holds our sockets (the lab's spool)."""
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        for f in ('main.cf', 'master.cf'):
            shutil.copy(os.path.join('/etc/postfix', f), d)
        subprocess.run(['postconf', '-c', d, '-e',
                        'queue_directory=' + os.path.join(self.tmp, 'spool')], check=True)
        return d

    def postconf(self, d, key):
        return subprocess.run(['postconf', '-c', d, '-h', key], capture_output=True,
                              text=True, check=True).stdout.strip()

    def test_postfix_print_apply_backup_idempotent(self):
        d = self.postfix_dir('pf-apply')
        with open(os.path.join(d, 'main.cf')) as f:
            original = f.read()
        p = self.ctl('setup', 'postfix', '--postfix-dir', d, check=0)
        # named relative to the queue directory, as a chrooted smtpd needs
        self.assertIn('smtpd_milters = unix:mailwarden/milter.sock\n', p.stdout)
        self.assertIn('check_policy_service unix:mailwarden/policyd.sock', p.stdout)
        self.assertIn('smtpd_tls_auth_only = yes\n', p.stdout)
        # Debian's relay restrictions already permit SASL clients: kept as they are
        self.assertIn('# already: smtpd_relay_restrictions', p.stdout)
        # the daemons do not answer: --apply refuses (their lines would defer all mail)
        p = self.ctl('setup', 'postfix', '--postfix-dir', d, '--apply', check=1)
        self.assertIn('start mailwarden-milter and mailwarden-policyd first', p.stderr)
        with open(os.path.join(d, 'main.cf')) as f:
            self.assertEqual(f.read(), original)
        self.assertEqual([f for f in os.listdir(d) if 'backup' in f], [])
        # once they answer, it applies, with a backup of the old main.cf
        self.listen(self.milter_path)
        self.listen(self.policy_path)
        p = self.ctl('setup', 'postfix', '--postfix-dir', d, '--apply', check=0)
        self.assertIn('settings applied', p.stdout)
        backups = [f for f in os.listdir(d) if f.startswith('main.cf.mailwarden-backup-')]
        self.assertEqual(len(backups), 1)
        with open(os.path.join(d, backups[0])) as f:
            self.assertEqual(f.read(), original)
        self.assertEqual(self.postconf(d, 'smtpd_milters'), 'unix:mailwarden/milter.sock')
        self.assertEqual(self.postconf(d, 'smtpd_sasl_type'), 'dovecot')
        self.assertIn('check_policy_service unix:mailwarden/policyd.sock',
                      self.postconf(d, 'smtpd_end_of_data_restrictions'))
        self.assertEqual(self.postconf(d, 'smtpd_relay_restrictions'),
                         'permit_mynetworks permit_sasl_authenticated defer_unauth_destination')
        # Postfix itself accepts the result
        p = subprocess.run(['postconf', '-c', d, '-n'], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn('warning', p.stderr)
        # again: nothing to change, no second backup
        p = self.ctl('setup', 'postfix', '--postfix-dir', d, '--apply', check=0)
        self.assertIn('postfix: nothing to change', p.stdout)
        self.assertEqual(len([f for f in os.listdir(d) if 'backup' in f]), 1)

    def test_postfix_service_throttle_time_over_the_default_only(self):
        # Postfix's default (60s) is shortened: an smtpd started while Dovecot's auth
        # socket is gone exits, and master then starts no smtpd for that long
        d = self.postfix_dir('pf-throttle')
        self.assertEqual(self.postconf(d, 'service_throttle_time'), '60s')
        p = self.ctl('setup', 'postfix', '--postfix-dir', d, check=0)
        self.assertIn('\nservice_throttle_time = 5s\n', p.stdout)
        self.listen(self.milter_path)
        self.listen(self.policy_path)
        self.ctl('setup', 'postfix', '--postfix-dir', d, '--apply', check=0)
        self.assertEqual(self.postconf(d, 'service_throttle_time'), '5s')
        # a value the admin chose (even 60s, written out) is kept: no conflict, no change
        for chosen in ('30s', '60s'):
            d = self.postfix_dir('pf-throttle-' + chosen)
            subprocess.run(['postconf', '-c', d, '-e', 'service_throttle_time=' + chosen],
                           check=True)
            p = self.ctl('setup', 'postfix', '--postfix-dir', d, '--apply', check=0)
            self.assertNotIn('conflict', p.stderr)
            self.assertIn('# kept: service_throttle_time = %s' % chosen, p.stdout)
            self.assertNotIn('\nservice_throttle_time =', p.stdout)
            self.assertIn('settings applied', p.stdout)
            self.assertEqual(self.postconf(d, 'service_throttle_time'), chosen)

    def test_postfix_conflict_refused(self):
        d = self.postfix_dir('pf-conflict')
        subprocess.run(['postconf', '-c', d, '-e', 'smtpd_sasl_type=cyrus',
                        'milter_default_action=accept'], check=True)
        with open(os.path.join(d, 'main.cf')) as f:
            before = f.read()
        p = self.ctl('setup', 'postfix', '--postfix-dir', d, '--apply', '--yes', check=1)
        self.assertIn('conflict: smtpd_sasl_type = cyrus', p.stderr)
        self.assertIn('conflict: milter_default_action = accept', p.stderr)
        with open(os.path.join(d, 'main.cf')) as f:
            self.assertEqual(f.read(), before)
        self.assertEqual([f for f in os.listdir(d) if 'backup' in f], [])

    def test_dovecot_files_parse_and_conflicts(self):
        d = os.path.join(self.tmp, 'dovecot')
        os.makedirs(os.path.join(d, 'conf.d'))
        shutil.copy('/etc/dovecot/conf.d/10-auth.conf', os.path.join(d, 'conf.d'))
        lab_mod.write_file(os.path.join(d, 'dovecot.conf'),
                           'protocols = imap lmtp\n!include conf.d/*.conf\n', 0o644)
        p = self.ctl('setup', 'dovecot', '--dovecot-dir', d, '--examples', EXAMPLES, check=0)
        self.assertIn('includes auth-system.conf.ext', p.stdout)
        db = self.store.url.split(':', 1)[1]
        self.assertIn('connect = %s\n' % db, p.stdout)
        self.assertFalse(os.path.exists(os.path.join(d, 'conf.d', '90-mailwarden.conf')))
        p = self.ctl('setup', 'dovecot', '--dovecot-dir', d, '--examples', EXAMPLES, '--apply',
                     check=0)
        self.assertIn('4 files written', p.stdout)
        # our conf.d file would pull in the Debian auth-system include too: leave that one out
        os.unlink(os.path.join(d, 'conf.d', '10-auth.conf'))
        p = subprocess.run(['doveconf', '-c', os.path.join(d, 'dovecot.conf'), '-n'],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(os.path.join(d, 'dovecot-sql-mailwarden-apppw.conf.ext'), p.stdout)
        self.assertIn('mailwarden_config = %s' % self.config, p.stdout)
        with open(os.path.join(d, 'dovecot-sql-mailwarden-userdb.conf.ext')) as f:
            self.assertIn('connect = %s\n' % db, f.read())
        p = self.ctl('setup', 'dovecot', '--dovecot-dir', d, '--examples', EXAMPLES, '--apply',
                     check=0)
        self.assertIn('dovecot: nothing to change', p.stdout)
        with open(os.path.join(d, 'conf.d', '90-mailwarden.conf'), 'a') as f:
            f.write('# changed by the admin\n')
        p = self.ctl('setup', 'dovecot', '--dovecot-dir', d, '--examples', EXAMPLES, '--apply',
                     check=1)
        self.assertIn('90-mailwarden.conf exists with other content', p.stderr)

    def test_nginx_snippet_accepted_by_nginx(self):
        d = os.path.join(self.tmp, 'nginx')
        os.makedirs(os.path.join(d, 'snippets'))
        self.ctl('setup', 'nginx', '--nginx-dir', d, '--examples', EXAMPLES, '--apply', check=0)
        snippet = os.path.join(d, 'snippets', 'mailwarden.conf')
        with open(snippet) as f:
            text = f.read()
        self.assertIn('fastcgi_pass unix:/run/mailwarden-api/api.sock;', text)
        self.assertRegex(text, r'\n    root /\S+/mailwarden/web;\n')
        conf = os.path.join(d, 'nginx.conf')
        lab_mod.write_file(conf, 'error_log stderr;\npid %s/nginx.pid;\nevents {}\n'
                           'http {\n  include /etc/nginx/mime.types;\n'
                           '  server {\n    listen 127.0.0.1:%d;\n    include %s;\n  }\n}\n'
                           % (d, lab_mod.free_port(), snippet), 0o644)
        p = subprocess.run(['nginx', '-t', '-c', conf, '-p', d], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_doctor_one_line_per_finding(self):
        self.ctl('dkim', 'generate', 'example.org', '--selector', 'doc', check=0)
        txt = self.ctl('dkim', 'txt', 'example.org', 'doc', check=0).stdout
        value = ''.join(re.findall(r'"([^"]*)"', txt))
        d = self.postfix_dir('pf-doctor')
        milter = self.listen(self.milter_path)
        self.listen(self.policy_path)
        self.ctl('setup', 'postfix', '--postfix-dir', d, '--apply', check=0)
        # not yet published
        p = self.ctl('doctor', '--postfix-dir', d, '--dovecot-config', '/nonexistent.conf')
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        self.assertTrue(all(l.startswith(('ok: ', 'problem: ', 'doctor: ')) for l in lines),
                        p.stdout)
        self.assertIn('ok: mailwarden-milter answers on unix:%s' % self.milter_path, lines)
        self.assertIn('ok: Postfix smtpd_milters has unix:mailwarden/milter.sock', lines)
        self.assertIn('problem: DKIM key doc._domainkey.example.org is not published', p.stdout)
        self.assertIn('ok: resolver %s answers' % self.dns.server, lines)
        self.assertIn('problem: doveconf -c /nonexistent.conf', p.stdout)
        # published: that line turns ok
        self.dns.set_zone('example.org', [('doc._domainkey', 'TXT', value)])
        self.dns.reload()
        milter.close()
        os.unlink(self.milter_path)
        p = self.ctl('doctor', '--postfix-dir', d, '--dovecot-config', '/nonexistent.conf')
        self.assertIn('ok: DKIM key doc._domainkey.example.org is published', p.stdout)
        self.assertIn('problem: mailwarden-milter does not answer on unix:%s'
                      % self.milter_path, p.stdout)


if __name__ == '__main__':
    unittest.main()
