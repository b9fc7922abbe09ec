"""test_package - the release and the Debian packages (issue 13): scripts/release makes the
`make dist` tarball from a copy of this tree (the files git knows, committed or not, so the
worktree's own ./build stays untouched) and builds `dpkg-buildpackage -us -uc -b` from that
tarball; then the packages' contents, lintian at its default level, and the systemd units
through `systemd-analyze verify`.

Tests are skipped in the package build (nocheck: scripts/test runs them itself) and it uses
at most two jobs, with a generous timeout for a shared two-core machine. Nothing is
installed here: scripts/system-install-test does that.
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_TIMEOUT = 3600


def need(prog):
    """need - PROG's path; a missing tool fails the test loudly (scripts/setup installs it)."""
    path = shutil.which(prog)
    if path is None:
        raise AssertionError('%s is missing: run scripts/setup' % prog)
    return path


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='mw-package-')
        try:
            cls.build()
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def build(cls):
        """build - scripts/release into cls.tmp: the make dist tarball, and the packages
        built from that tarball with dpkg-buildpackage -us -uc -b."""
        need('dpkg-buildpackage')
        need('dh')
        env = dict(os.environ, JOBS='2', LC_ALL='C.UTF-8')
        p = subprocess.run([os.path.join(TOP, 'scripts', 'release'), cls.tmp], env=env,
                           capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        if p.returncode != 0:
            raise AssertionError('scripts/release failed:\n' + (p.stdout + p.stderr)[-6000:])
        with open(os.path.join(TOP, 'debian', 'changelog')) as f:
            cls.version = re.match(r'mailwarden \(([^)]+)\)', f.read()).group(1)
        cls.debs = {}
        for name in os.listdir(cls.tmp):
            m = re.match(r'^([a-z0-9-]+)_[^_]+_[a-z0-9]+\.deb$', name)
            if m:
                cls.debs[m.group(1)] = os.path.join(cls.tmp, name)
        cls.changes = [os.path.join(cls.tmp, n) for n in os.listdir(cls.tmp)
                       if n.endswith('.changes')][0]

    def test_release_tarball_and_sums(self):
        tarball = os.path.join(self.tmp, 'mailwarden-%s.tar.gz' % self.version.split('-')[0])
        self.assertTrue(os.path.exists(tarball))
        names = subprocess.run(['tar', '-tzf', tarball], capture_output=True, text=True,
                               check=True).stdout.split()
        top = 'mailwarden-%s/' % self.version.split('-')[0]
        for f in ('configure', 'NEWS.md', 'debian/rules', 'debian/control',
                  'conf.d/postfix-main.cf.sample', 'scripts/gen-man-conf'):
            self.assertIn(top + f, names)
        p = subprocess.run(['sha256sum', '-c', 'SHA256SUMS'], cwd=self.tmp, capture_output=True,
                           text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def contents(self, pkg):
        out = subprocess.run(['dpkg-deb', '-c', self.debs[pkg]], capture_output=True, text=True,
                             check=True).stdout
        files = {}
        for line in out.splitlines():
            fields = line.split()
            files[fields[5].lstrip('.')] = fields[0]
        return files

    def field(self, pkg, name):
        return subprocess.run(['dpkg-deb', '-f', self.debs[pkg], name], capture_output=True,
                              text=True, check=True).stdout.strip()

    def test_two_packages_with_the_configured_version(self):
        self.assertIn('mailwarden', self.debs)
        self.assertIn('dovecot-mailwarden', self.debs)
        with open(os.path.join(TOP, 'configure.ac')) as f:
            ac_version = re.search(r'AC_INIT\(\[mailwarden\], \[([^]]+)\]', f.read()).group(1)
        self.assertEqual(self.version.split('-')[0], ac_version)
        self.assertEqual(self.field('mailwarden', 'Version'), self.version)

    def test_mailwarden_contents(self):
        files = self.contents('mailwarden')
        for prog in ('mailwarden-milter', 'mailwarden-policyd', 'mailwarden-api',
                     'mailwardenctl'):
            self.assertEqual(files.get('/usr/sbin/' + prog, '')[:10], '-rwxr-xr-x', prog)
            self.assertIn('/usr/share/man/man8/%s.8.gz' % prog, files)
        for unit in ('mailwarden-milter.service', 'mailwarden-policyd.service',
                     'mailwarden-api.service', 'mailwarden-api.socket'):
            self.assertIn('/lib/systemd/system/' + unit, files)
        for sample in os.listdir(os.path.join(TOP, 'conf.d')):
            self.assertIn('/usr/share/doc/mailwarden/examples/' + sample, files)
        # the DMARC report import timer: an example to copy, not an installed unit
        for unit in ('mailwarden-dmarc-import.service', 'mailwarden-dmarc-import.timer'):
            self.assertIn('/usr/share/doc/mailwarden/examples/' + unit, files)
        self.assertIn('/etc/mailwarden/mailwarden.conf', files)
        self.assertIn('/usr/share/man/man5/mailwarden.conf.5.gz', files)
        self.assertIn('/usr/share/mailwarden/web/index.html', files)
        self.assertIn('/var/lib/mailwarden/', files)
        # the plugin is the other package's, no libtool archives anywhere
        self.assertFalse([f for f in files if f.endswith(('.so', '.la'))])
        conffiles = subprocess.run(['dpkg-deb', '-I', self.debs['mailwarden'], 'conffiles'],
                                   capture_output=True, text=True).stdout
        self.assertIn('/etc/mailwarden/mailwarden.conf', conffiles)
        self.assertIn('adduser', self.field('mailwarden', 'Depends'))

    def test_plugin_package_in_dovecots_module_dir(self):
        moduledir = subprocess.run(['sh', '-c', '. /usr/lib/dovecot/dovecot-config && '
                                    'echo "$dovecot_moduledir"'], capture_output=True,
                                   text=True, check=True).stdout.strip()
        files = self.contents('dovecot-mailwarden')
        self.assertIn(moduledir + '/lib90_mailwarden_plugin.so', files)
        self.assertFalse([f for f in files if f.endswith('.la')])
        depends = self.field('dovecot-mailwarden', 'Depends')
        # the plugin's ABI must be the running Dovecot's exactly
        self.assertRegex(depends, r'dovecot-abi-2\.3\.abiv\d+')
        self.assertIn('mailwarden (= %s)' % self.version, depends)

    def test_maintainer_scripts(self):
        d = os.path.join(self.tmp, 'control')
        subprocess.run(['dpkg-deb', '-e', self.debs['mailwarden'], d], check=True)
        with open(os.path.join(d, 'postinst')) as f:
            postinst = f.read()
        self.assertIn('adduser --system --group', postinst)
        self.assertIn('2770 /var/lib/mailwarden', postinst)
        self.assertIn('mailwardenctl init', postinst)
        self.assertIn('0600 /etc/mailwarden/master.key', postinst)
        # never Postfix's or Dovecot's configuration
        for script in os.listdir(d):
            with open(os.path.join(d, script), errors='replace') as f:
                text = f.read()
            for word in ('postconf', '/etc/postfix', '/etc/dovecot', 'setup --apply'):
                self.assertNotIn(word, text, '%s runs %s' % (script, word))
        p = subprocess.run(['sh', '-n', os.path.join(d, 'postinst')], capture_output=True,
                           text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        # the store is migrated before the units are (re)started on upgrade; the rotation
        # timer is enabled and started, its oneshot service only ever run by the timer
        init = postinst.index('mailwardenctl init')
        for unit in ('mailwarden-milter.service', 'mailwarden-policyd.service',
                     'mailwarden-api.service', 'mailwarden-dkim-rotate.timer'):
            m = re.search(r"deb-systemd-invoke \$_dh_action '?%s" % re.escape(unit), postinst)
            self.assertTrue(m, '%s is not started by postinst' % unit)
            self.assertGreater(m.start(), init, unit)
        self.assertRegex(postinst, r"deb-systemd-helper enable '?mailwarden-dkim-rotate\.timer")
        self.assertNotIn('mailwarden-dkim-rotate.service', postinst)

    def test_lintian_clean(self):
        need('lintian')
        p = subprocess.run(['lintian', self.changes], capture_output=True, text=True,
                           timeout=1200)
        tags = [l for l in (p.stdout + p.stderr).splitlines() if re.match(r'^[EW]: ', l)]
        self.assertEqual(tags, [], '\n'.join(tags))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_units_sandboxed_and_verified(self):
        root = os.path.join(self.tmp, 'root')
        subprocess.run(['dpkg-deb', '-x', self.debs['mailwarden'], root], check=True)
        unitdir = os.path.join(root, 'lib', 'systemd', 'system')
        checked = os.path.join(self.tmp, 'units')
        os.makedirs(checked, exist_ok=True)
        units = sorted(os.listdir(unitdir))
        for u in units:
            with open(os.path.join(unitdir, u)) as f:
                text = f.read()
            if u == 'mailwarden-dkim-rotate.service':
                # the timer's oneshot: sandboxed like the daemons, no reload, no [Install]
                for want in ('Type=oneshot', 'ProtectSystem=strict', 'PrivateTmp=yes',
                             'NoNewPrivileges=yes', 'ReadWritePaths=/var/lib/mailwarden',
                             'ExecStart=/usr/sbin/mailwardenctl dkim rotate --due\n'):
                    self.assertIn(want, text, u)
                self.assertNotIn('[Install]', text)
            if u.endswith('.service') and 'Type=oneshot' in text:
                # a timer's job (mailwardenctl): sandboxed too, nothing to reload
                for want in ('ProtectSystem=strict', 'PrivateTmp=yes', 'NoNewPrivileges=yes',
                             'ReadWritePaths=/var/lib/mailwarden'):
                    self.assertIn(want, text, u)
                self.assertRegex(text, r'ExecStart=/usr/sbin/mailwardenctl ', u)
            elif u.endswith('.service'):
                for want in ('ProtectSystem=strict', 'PrivateTmp=yes', 'NoNewPrivileges=yes',
                             'ReadWritePaths=/var/lib/mailwarden',
                             'ExecReload=/bin/kill -HUP $MAINPID'):
                    self.assertIn(want, text, u)
                # the daemon's own foreground mode: the same binary runs without systemd
                self.assertRegex(text, r'ExecStart=/usr/sbin/mailwarden-\w+ -f\n', u)
                if u != 'mailwarden-api.service':
                    self.assertIn('RuntimeDirectory=mailwarden', text, u)
                else:
                    self.assertIn('StandardInput=socket', text)
            elif u.endswith('.timer'):
                # dkim rotate --due hourly, the DMARC reports of a day once a day
                when = ('OnCalendar=hourly' if u == 'mailwarden-dkim-rotate.timer'
                        else 'OnCalendar=*-*-* 00:20:00 UTC')
                for want in (when, 'Persistent=true', 'WantedBy=timers.target'):
                    self.assertIn(want, text, u)
            # executables where systemd-analyze can check them: the extracted package
            with open(os.path.join(checked, u), 'w') as f:
                f.write(text.replace('/usr/sbin/', root + '/usr/sbin/'))
        self.assertEqual(units, ['mailwarden-api.service', 'mailwarden-api.socket',
                                 'mailwarden-dkim-rotate.service',
                                 'mailwarden-dkim-rotate.timer',
                                 'mailwarden-dmarc-reports.service',
                                 'mailwarden-dmarc-reports.timer',
                                 'mailwarden-milter.service', 'mailwarden-policyd.service'])
        need('systemd-analyze')
        p = subprocess.run(['systemd-analyze', 'verify', '--man=no'] +
                           [os.path.join(checked, u) for u in units],
                           capture_output=True, text=True, timeout=300)
        ours = [l for l in (p.stdout + p.stderr).splitlines() if 'mailwarden' in l]
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(ours, [])


if __name__ == '__main__':
    unittest.main()
