"""test_install_docs - what an admin installing on a Debian mail host reads agrees with the
code (issue 13): README, docs/admin-guide.md, the conf.d samples and the man pages.

Checked against the code where there is code to check against: the sockets the man pages
and the guide tell Postfix to use are the defaults of lib/mw-config-keys.def seen from
Postfix's queue directory; `make install` really installs the samples; every relative link
resolves inside the source tree.
"""

import os
import re
import subprocess
import tempfile
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUEUE_DIR = '/var/spool/postfix/'


def read(rel):
    with open(os.path.join(TOP, rel)) as f:
        return f.read()


def key_default(section, name):
    """key_default - the default of [SECTION] NAME in lib/mw-config-keys.def."""
    text = read('lib/mw-config-keys.def')
    m = re.search(r'MW_KEY\(\w+, "%s", "%s", \w+, "([^"]*)"' % (section, name), text)
    assert m, (section, name)
    return m.group(1)


def postfix_name(spec):
    """postfix_name - a unix:/var/spool/postfix/X socket as main.cf names it (unix:X)."""
    assert spec.startswith('unix:' + QUEUE_DIR), spec
    return 'unix:' + spec[len('unix:' + QUEUE_DIR):]


def section(text, heading):
    """section - the text of markdown section HEADING up to the next heading of its level."""
    start = text.index(heading)
    level = heading.split(' ')[0]
    m = re.search(r'^%s ' % level, text[start + len(heading):], re.M)
    return text[start:start + len(heading) + m.start()] if m else text[start:]


def roff_text(text):
    """roff_text - a man page's words without font requests and escapes."""
    text = re.sub(r'^\.(B|I|BR|RB|IR|RI|TP|PP|SH|SS)\s?', '', text, flags=re.M)
    return text.replace('\\-', '-').replace('\\fB', '').replace('\\fR', '').replace('\\fI', '')


class InstallDocsTest(unittest.TestCase):
    def test_sockets_postfix_is_told_to_use_are_the_defaults(self):
        milter = postfix_name(key_default('milter', 'socket'))
        policyd = postfix_name(key_default('policyd', 'socket'))
        sample = read('conf.d/postfix-main.cf.sample')
        self.assertIn('smtpd_milters = %s\n' % milter, sample)
        self.assertIn('check_policy_service %s\n' % policyd, sample)
        pd_man = roff_text(read('docs/man/mailwarden-policyd.8'))
        for m in re.finditer(r'check_policy_service\s+((?:unix|inet):\S+)', pd_man):
            self.assertEqual(m.group(1).rstrip(').,'), policyd, 'mailwarden-policyd.8')
        self.assertIn('check_policy_service %s' % policyd, pd_man)
        guide = read('docs/admin-guide.md')
        for m in re.finditer(r'smtpd_milters = (unix:\S+)', guide + read('README.md')):
            self.assertEqual(m.group(1), milter)
        for m in re.finditer(r'check_policy_service (unix:\S+)', guide):
            self.assertEqual(m.group(1), policyd)
        # never an absolute path outside the queue directory: a chrooted smtpd cannot reach it
        for rel in ('README.md', 'docs/admin-guide.md', 'docs/man/mailwarden-milter.8',
                    'docs/man/mailwarden-policyd.8', 'conf.d/mailwarden.conf.sample'):
            self.assertNotIn('unix:/run/mailwarden/milter.sock', read(rel), rel)
            self.assertNotIn('unix:/run/mailwarden/policyd.sock', read(rel), rel)

    def test_relative_links_stay_inside_the_tree(self):
        files = ['README.md'] + ['docs/' + f for f in os.listdir(os.path.join(TOP, 'docs'))
                                 if f.endswith('.md')]
        for rel in files:
            for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', read(rel)):
                if re.match(r'^[a-z]+:', target):
                    continue
                path = os.path.normpath(os.path.join(TOP, os.path.dirname(rel), target))
                self.assertTrue(path.startswith(TOP + os.sep), '%s: %s leaves the tree'
                                % (rel, target))
                self.assertTrue(os.path.exists(path), '%s: %s does not exist' % (rel, target))

    def test_readme_install_for_an_existing_host(self):
        readme = read('README.md')
        install = section(readme, '## Install into an existing host')
        blocks = ''.join(re.findall(r'```sh\n(.*?)```', install, re.S))
        self.assertNotIn('scripts/setup', blocks)
        m = re.search(r'^\./configure .*$', blocks, re.M)
        self.assertIsNotNone(m)
        self.assertIn('--with-dovecot-moduledir', m.group(0))
        self.assertIn('--sysconfdir=/etc', m.group(0))
        self.assertIn('examples', install)  # where make install puts the samples
        self.assertIn('docs/admin-guide.md', readme)

    def test_guide_creates_user_and_readable_config_dir(self):
        guide = read('docs/admin-guide.md')
        self.assertRegex(guide, r'adduser --system --group [^\n]*mailwarden\n')
        self.assertNotRegex(guide, r'-g root -m 0750 /etc/mailwarden')
        self.assertRegex(guide, r'install -d -o root -g dovecot -m 0750 /etc/mailwarden')
        self.assertIn('--with-dovecot-moduledir', section(guide, '## 1. Install'))
        self.assertNotIn('scripts/setup                      # Debian 12 packages', guide)

    def test_guide_has_a_policy_daemon_chapter(self):
        guide = read('docs/admin-guide.md')
        chapter = section(guide, '## mailwarden-policyd')
        for word in ('limit =', 'control_socket', 'smtpd_end_of_data_restrictions',
                     'smtpd_policy_service_default_action', 'ratelimit status'):
            self.assertIn(word, chapter)
        self.assertIn('policy daemon', read('README.md'))

    def test_dovecot_sample_keeps_a_userdb(self):
        sample = read('conf.d/dovecot-mailwarden.conf.sample')
        self.assertNotIn('Disable the other passdb and userdb blocks', sample)
        self.assertIn('auth-system.conf.ext', sample)
        self.assertIn('mail_location = maildir:~/Maildir', sample)
        self.assertIn('adduser --system --group --uid 5000', sample)
        self.assertRegex(sample, r'\nuserdb \{\n  driver = sql\n')

    def test_postfix_sample_safe_on_an_existing_host(self):
        sample = read('conf.d/postfix-main.cf.sample')
        lines = dict(l.split(' = ', 1) for l in sample.splitlines()
                     if l and not l.startswith('#') and ' = ' in l)
        # AUTH only over TLS
        if lines.get('smtpd_sasl_auth_enable') == 'yes':
            self.assertEqual(lines.get('smtpd_tls_auth_only'), 'yes')
        self.assertTrue(lines['smtpd_relay_restrictions'].startswith('permit_mynetworks,'))
        # the lines that defer mail until the daemons answer come as a separate, later step
        step2 = sample.index('step 2')
        for key in ('smtpd_milters', 'smtpd_end_of_data_restrictions', 'milter_default_action'):
            self.assertGreater(sample.index('\n%s = ' % key), step2, key)
        self.assertIn('milter_default_action = tempfail', sample)
        guide = section(read('docs/admin-guide.md'), '## 5. Postfix')
        self.assertIn('milter_default_action', guide)
        self.assertIn('smtpd_policy_service_default_action', guide)

    def test_spawn_fcgi_example_names_the_install_paths(self):
        for rel in ('conf.d/nginx-mailwarden.conf.sample', 'docs/man/mailwarden-api.8'):
            text = roff_text(read(rel))
            self.assertIn('/usr/local/sbin', text, rel)
            self.assertIn('child exited with: 2', text, rel)

    def test_make_install_installs_samples_and_docs(self):
        builddir = os.environ.get('MW_BUILDDIR', os.path.join(TOP, 'build'))
        with tempfile.TemporaryDirectory() as dest:
            p = subprocess.run(['make', '-s', '-C', builddir, 'install-data', 'DESTDIR=' + dest],
                               capture_output=True, text=True, timeout=600)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            found = {}
            for root, _, names in os.walk(dest):
                for n in names:
                    found[n] = os.path.relpath(os.path.join(root, n), dest)
            for name in ('mailwarden.conf.sample', 'postfix-main.cf.sample',
                         'dovecot-mailwarden.conf.sample', 'dovecot-sql-mailwarden.conf.ext',
                         'nginx-mailwarden.conf.sample'):
                self.assertIn(name, found)
                self.assertIn('/doc/mailwarden/examples/', '/' + found[name])
            for name in ('admin-guide.md', 'configuration.md', 'mailwarden-policyd.8',
                         'mailwarden.conf.5'):
                self.assertIn(name, found)
            # mailwarden.conf(5) is generated from the key table: every key is in it
            with open(os.path.join(dest, found['mailwarden.conf.5'])) as f:
                man = f.read().replace('\\-', '-')
            keys = re.findall(r'^MW_KEY\(\w+, "(\w+)", "(\w+)"', read('lib/mw-config-keys.def'),
                              re.M)
            self.assertGreater(len(keys), 50)
            for section, key in keys:
                self.assertIn('.SS [%s]' % section, man)
                self.assertIn('\\fB%s\\fR (' % key, man)


if __name__ == '__main__':
    unittest.main()
