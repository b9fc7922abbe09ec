"""test_install - installing on a real Debian mail host (issue 13): the defects an admin met.

Each test is one defect of the issue's first list that is behaviour, on the real binaries:
- a daemon whose configuration its unprivileged user cannot read again refuses to start
  (a SIGHUP reload would fail later, invisibly in syslog);
- a detached daemon lets go of the shell's stderr (a caller reading it is not left waiting);
- [policyd] control_socket = "" means "no control socket", as documented;
- mailwarden-api --help names the spawn-fcgi path this build installs to;
- mailwardenctl --api against a web server without the API says so instead of "not found".
The documentation checks are in test_install_docs.py.
"""

import http.server
import os
import re
import signal
import subprocess
import threading
import time
import unittest

import labcase
import mailwarden_lab as lab_mod

BINARIES = {
    'milter': 'milter/mailwarden-milter',
    'policyd': 'policy-daemon/mailwarden-policyd',
    'api': 'webapi/mailwarden-api',
}


class InstallDefectsTest(labcase.LabCase):
    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.tmp = cls.lab_dir('install-test')

    def binary(self, name):
        return os.path.join(self.store.builddir, BINARIES[name])

    def config(self, name, directory=None, extra=''):
        """config - a valid configuration for daemon NAME (in DIRECTORY, default self.tmp)."""
        return labcase.daemon_config(self.store, self.tmp, name, directory, extra)

    def argv(self, name, conf):
        argv = [self.binary(name), '-c', conf]
        if name == 'api':
            argv += ['-s', os.path.join(self.tmp, 'a', 'api.sock')]
        return argv

    def test_unreadable_config_for_the_daemon_user_refused_at_start(self):
        # /etc/mailwarden root:root 0750 as once documented: root reads it, the daemon's
        # user (after the drop) cannot, so every SIGHUP reload would fail
        private = os.path.join(self.tmp, 'etc-private')
        os.makedirs(private, exist_ok=True)
        os.chmod(private, 0o750)
        for name in BINARIES:
            conf = self.config(name, private)
            p = subprocess.run(self.argv(name, conf) + ['-f'], capture_output=True, text=True,
                               timeout=120, stdin=subprocess.DEVNULL)
            self.assertEqual(p.returncode, 1, '%s: %s' % (name, p.stderr))
            self.assertIn('SIGHUP reload would fail', p.stderr, name)
            self.assertIn('as user dovecot', p.stderr, name)
            self.assertNotIn('AddressSanitizer', p.stderr)
        # the same file where the user can read it: -t passes
        conf = self.config('policyd')
        p = subprocess.run(self.argv('policyd', conf) + ['-t'], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_detached_daemon_releases_stderr(self):
        # the caller reads stderr to its end: a daemon that kept the descriptor would hold
        # it open for its whole life (subprocess.run would time out)
        for name in ('policyd', 'api'):
            conf = self.config(name)
            with open(conf) as f:
                text = f.read().replace('log = stderr\n', 'log = syslog\n')
            lab_mod.write_file(conf, text, 0o644)
            pid_file = os.path.join(self.tmp, name + '-detach.pid')
            try:
                p = subprocess.run(self.argv(name, conf) + ['-p', pid_file],
                                   capture_output=True, text=True, timeout=60,
                                   stdin=subprocess.DEVNULL)
                self.assertEqual(p.returncode, 0, '%s: %s' % (name, p.stderr))
            finally:
                self.stop_pid(pid_file)

    def stop_pid(self, pid_file):
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with open(pid_file) as f:
                    pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid > 0:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    return
                while time.time() < deadline:
                    try:
                        os.kill(pid, 0)
                    except ProcessLookupError:
                        return
                    time.sleep(0.1)
                return
            time.sleep(0.1)

    def test_policyd_control_socket_empty_means_none(self):
        conf = self.config('policyd', extra='')
        with open(conf) as f:
            text = f.read()
        text = re.sub(r'control_socket = .*', 'control_socket = ""', text)
        text = text.replace('[policyd]\n', '[policyd]\nsocket_group = ""\n')
        lab_mod.write_file(conf, text, 0o644)
        p = subprocess.run(self.argv('policyd', conf) + ['-t'], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        # and mailwardenctl says there is none instead of trying a path
        p = subprocess.run([self.store.ctl_path, '-c', conf, 'ratelimit', 'status', 'x@y.example'],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('control_socket is not set', p.stderr)

    def test_api_help_names_the_installed_path(self):
        with open(os.path.join(self.store.builddir, 'Makefile')) as f:
            make = f.read()
        prefix = re.search(r'^prefix = (.*)$', make, re.M).group(1)
        exec_prefix = re.search(r'^exec_prefix = (.*)$', make, re.M).group(1)
        sbindir = re.search(r'^sbindir = (.*)$', make, re.M).group(1)
        sbindir = sbindir.replace('${exec_prefix}', exec_prefix).replace('${prefix}', prefix)
        p = subprocess.run([self.binary('api'), '--help'], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('-- %s/mailwarden-api -f' % sbindir, p.stdout)
        self.assertIn('child exited with: 2', p.stdout)

    def test_ctl_api_against_a_plain_web_server(self):
        class Plain(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b'<html><body>404 Not Found</body></html>'
                self.send_response(404)
                self.send_header('Content-Type', 'text/html')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        srv = http.server.HTTPServer(('127.0.0.1', 0), Plain)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            env = dict(os.environ, MAILWARDEN_TOKEN='x' * 43)
            p = subprocess.run([self.store.ctl_path, '--api',
                                'http://127.0.0.1:%d' % srv.server_address[1],
                                'user', 'show', 'john@example.org'],
                               capture_output=True, text=True, timeout=60, env=env)
        finally:
            srv.shutdown()
            srv.server_close()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertNotIn('not found', p.stderr)
        self.assertIn('no mailwarden-api there', p.stderr)


if __name__ == '__main__':
    unittest.main()
