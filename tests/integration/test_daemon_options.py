"""test_daemon_options - one command line for every daemon (issue 11).

mailwarden-milter, mailwarden-policyd and mailwarden-api run in one skeleton
(lib/mw-service.c), so each common option is defined once and means the same everywhere:
-c/--config, -f/--foreground, -t/--check, -p/--pid-file, -h/--help, -V/--version; an unknown
option is a usage error (2). --help lists every configuration key of the daemon's sections,
generated from lib/mw-config-keys.def (the same text as `mailwardenctl config keys`), not
a hand-kept list.
"""

import os
import re
import subprocess
import unittest

import labcase
import mailwarden_lab as lab_mod

SECTIONS = {
    'milter': ('milter/mailwarden-milter', ['main', 'store', 'milter', 'spam', 'classifier']),
    'policyd': ('policy-daemon/mailwarden-policyd', ['main', 'store', 'policyd']),
    'api': ('webapi/mailwarden-api', ['main', 'store', 'password', 'api', 'forms']),
}


def keys_by_section(text):
    """keys_by_section - {section: [key, ...]} from a plain-text key reference."""
    out, section = {}, None
    for line in text.splitlines():
        m = re.match(r'^\[(\w+)\]$', line)
        if m:
            section = m.group(1)
            out.setdefault(section, [])
            continue
        m = re.match(r'^  (\w+) \(', line)
        if m and section is not None:
            out[section].append(m.group(1))
    return out


class DaemonOptionsTest(labcase.LabCase):
    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.tmp = cls.lab_dir('options-test')
        p = subprocess.run(cls.store.ctl_command() + ['config', 'keys'], capture_output=True,
                           text=True, timeout=30, check=True)
        cls.all_keys = keys_by_section(p.stdout)

    def binary(self, name):
        return os.path.join(self.store.builddir, SECTIONS[name][0])

    def run_daemon(self, argv, timeout=60):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        self.assertNotIn('AddressSanitizer', p.stderr)
        return p

    def config(self, name):
        """config - a valid configuration for daemon NAME."""
        return labcase.daemon_config(self.store, self.tmp, name)

    def test_help_lists_every_key_of_the_daemons_sections(self):
        for name, (_, sections) in SECTIONS.items():
            for opt in ('-h', '--help'):
                p = self.run_daemon([self.binary(name), opt])
                self.assertEqual(p.returncode, 0, p.stderr)
                for o in ('--config', '--foreground', '--check', '--pid-file', '--version'):
                    self.assertIn(o, p.stdout, '%s %s' % (name, opt))
                listed = keys_by_section(p.stdout.split('CONFIGURATION KEYS', 1)[1])
                self.assertEqual(sorted(listed), sorted(sections), name)
                for section in sections:
                    self.assertEqual(listed[section], self.all_keys[section],
                                     '%s --help [%s]' % (name, section))

    def test_version_everywhere(self):
        for name in SECTIONS:
            for opt in ('-V', '--version'):
                p = self.run_daemon([self.binary(name), opt])
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertRegex(p.stdout, r'^mailwarden-%s \S+\n$' % name)

    def test_check_everywhere(self):
        for name in SECTIONS:
            for opt in ('-t', '--check'):
                p = self.run_daemon([self.binary(name), '-c', self.config(name), opt])
                self.assertEqual(p.returncode, 0, '%s %s: %s' % (name, opt, p.stderr))
                p = self.run_daemon([self.binary(name), '--config', self.config(name), opt])
                self.assertEqual(p.returncode, 0, '%s %s: %s' % (name, opt, p.stderr))
            # a bad configuration fails the check with file:line
            bad = os.path.join(self.tmp, name + '-bad.conf')
            lab_mod.write_file(bad, 'no_such_key = 1\n', 0o644)
            p = self.run_daemon([self.binary(name), '-c', bad, '-t'])
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(bad + ':1', p.stderr)

    def test_usage_errors(self):
        for name in SECTIONS:
            p = self.run_daemon([self.binary(name), '--no-such-option'])
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn('--help', p.stderr)
            p = self.run_daemon([self.binary(name), 'stray-argument'])
            self.assertEqual(p.returncode, 2, p.stderr)
            p = self.run_daemon([self.binary(name), '-c'])
            self.assertEqual(p.returncode, 2, p.stderr)

    def test_pid_file_everywhere_refuses_a_symlink(self):
        victim = os.path.join(self.tmp, 'victim')
        lab_mod.write_file(victim, 'precious\n', 0o600)
        for name in SECTIONS:
            link = os.path.join(self.tmp, name + '-link.pid')
            if not os.path.islink(link):
                os.symlink(victim, link)
            argv = [self.binary(name), '-f', '-c', self.config(name), '--pid-file', link]
            if name == 'api':
                argv += ['-s', os.path.join(self.tmp, 'a', 'api.sock')]
            p = self.run_daemon(argv)
            self.assertEqual(p.returncode, 1, '%s: %s' % (name, p.stderr))
            self.assertIn('symbolic link', p.stderr)
            with open(victim) as f:
                self.assertEqual(f.read(), 'precious\n')

    def test_policyd_pid_file_is_an_option_not_a_key(self):
        conf = self.config('policyd')
        with open(conf, 'a') as f:
            f.write('pid_file = /run/mailwarden/policyd.pid\n')
        p = self.run_daemon([self.binary('policyd'), '-c', conf, '-t'])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('pid_file', p.stderr)


if __name__ == '__main__':
    unittest.main()
