"""test_milter_protocol - mailwarden-milter's protocol edge cases through miltertest.

The Lua scripts in tests/milter/ drive the real daemon (ASan build, inet socket, a lab
Store) through the milter protocol: abort mid-message then a new message on the same
connection, many recipients, huge and flooding headers, missing and repeated From:. Each
script prints "RESULT ok" or "RESULT fail: ..." (miltertest swallows Lua errors, so the
scripts catch them with pcall and say so). A missing miltertest is an error, not a skip.
"""

import os
import subprocess
import unittest

import labcase
import mailwarden_lab as lab_mod

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(os.path.dirname(HERE), 'milter')
USER = 'mt-user@%s' % lab_mod.DOMAIN


class MilterProtocolTest(labcase.MilterCase):
    """miltertest scripts against mailwarden-milter on an inet socket."""

    @classmethod
    def start_lab(cls):
        # miltertest cannot send headers over ~1 kB: a small From: limit to test it
        cls.start_inet_milter(USER, config='max_address_header = 512')

    def run_script(self, name):
        p = subprocess.run([self.miltertest, '-s', os.path.join(SCRIPTS, name),
                    '-D', 'socket=' + self.milter.miltertest_spec,
                    '-D', 'user=' + USER, '-D', 'dir=' + SCRIPTS],
                   capture_output=True, text=True, timeout=120)
        out = p.stdout + p.stderr
        self.assertIn('RESULT ok', out, '%s (exit %d):\n%s' % (name, p.returncode, out))
        self.assertEqual(p.returncode, 0, out)

    def test_abort_then_new_message(self):
        self.run_script('abort.lua')

    def test_many_recipients(self):
        self.run_script('many_rcpts.lua')

    def test_huge_headers(self):
        self.run_script('huge_header.lua')

    def test_missing_and_repeated_from(self):
        self.run_script('missing_from.lua')

    def test_startup_errors_reported_on_stderr(self):
        # the running milter holds the port: a second one must say so and exit 1
        # (libmilter alone would only syslog and exit silently)
        p = subprocess.run([self.milter.binary, '-f', '-c', self.milter.config],
                   capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('cannot bind', p.stderr)
        bad = os.path.join(self.milter.dir, 'bad.conf')
        with open(bad, 'w') as f:
            f.write(self.milter.render_config().replace(
                self.milter.socket, 'unix:/nonexistent-dir/sub/milter.sock'))
        p = subprocess.run([self.milter.binary, '-f', '-c', bad], capture_output=True,
                   text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('directory /nonexistent-dir does not exist', p.stderr)

    def test_scripts_report_failures(self):
        # the harness itself: a failing check must show up as a failure
        bad = os.path.join(self.milter.dir, 'fail.lua')
        with open(bad, 'w') as f:
            f.write('dofile(dir .. "/common.lua")\n'
                'run(function() local c = open(); check(false, "deliberate") end)\n')
        p = subprocess.run([self.miltertest, '-s', bad, '-D', 'socket=' + self.milter.miltertest_spec,
                    '-D', 'dir=' + SCRIPTS], capture_output=True, text=True, timeout=60)
        self.assertIn('RESULT fail:', p.stdout + p.stderr)
        self.assertIn('deliberate', p.stdout + p.stderr)


if __name__ == '__main__':
    unittest.main()
