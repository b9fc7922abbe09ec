"""test_daemon_sockets - no door for local users (issue 16 items 4 and 7), through the real
daemons: the milter's and the policy daemon's unix sockets refuse a local user outside their
group (runuser -u nobody) and take Postfix's; an inet socket without the explicit keys is
refused at start (milter, policyd, API); policyd's inet allow-list is checked on accept; a pid
file that is a symbolic link is refused and its target untouched; `mailwardenctl dkim import`
refuses a FIFO at once, a symbolic link, and a key others can read.
"""

import glob
import grp
import http.client
import os
import pwd
import smtplib
import socket
import stat
import subprocess
import time
import unittest

import labcase
import mailwarden_lab as lab_mod

CONNECT = ('import socket, sys\n'
           's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n'
           'try:\n'
           '    s.connect(sys.argv[1])\n'
           'except PermissionError:\n'
           '    print("EACCES"); sys.exit(3)\n'
           'print("connected")\n')


def connect_as(user, path):
    """connect_as - try to connect to unix socket PATH as USER: 'connected' or 'EACCES'."""
    p = subprocess.run(['runuser', '-u', user, '--', '/usr/bin/python3', '-c', CONNECT, path],
                       capture_output=True, text=True, timeout=30)
    if p.returncode not in (0, 3):
        raise AssertionError('connect as %s: exit %d %s' % (user, p.returncode, p.stderr))
    return p.stdout.strip()


class DaemonSocketsTest(labcase.LabCase):
    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.milter = cls.lab.milter(cls.store)
        cls.policyd = cls.lab.policyd(cls.store, socket='unix')
        cls.tmp = cls.lab_dir('sockets-test')

    def run_daemon(self, argv, timeout=30):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        self.assertNotIn('AddressSanitizer', p.stderr)
        return p

    def conf(self, name, text):
        path = os.path.join(self.tmp, name)
        lab_mod.write_file(path, text, 0o644)
        return path

    # -- unix sockets: group postfix only ----------------------------------------------------

    def check_private_socket(self, path):
        st = os.lstat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, grp.getgrnam('postfix').gr_gid)
        self.assertEqual(connect_as('nobody', path), 'EACCES')
        self.assertEqual(connect_as('postfix', path), 'connected')

    def test_milter_socket_refuses_other_local_users(self):
        self.check_private_socket(self.milter.sock_path)

    def test_policyd_socket_refuses_other_local_users(self):
        self.check_private_socket(self.policyd.sock_path)
        # and the control socket is the daemon user's only
        st = os.lstat(self.policyd.control)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(connect_as('nobody', self.policyd.control), 'EACCES')

    def test_socket_directory_must_be_private(self):
        d = os.path.join(self.tmp, 'open-dir')
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o777)
        conf = self.conf('policyd-open.conf', self.policyd.render_config().replace(
            self.policyd.sock_path, os.path.join(d, 'p.sock')).replace(
            self.policyd.pidfile, os.path.join(self.tmp, 'p1.pid')).replace(
            self.policyd.control, os.path.join(self.tmp, 'c1.sock')))
        p = self.run_daemon([self.policyd.binary, '-f', '-c', conf])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('writable by group or others', p.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, 'p.sock')))
        # a symbolic link as the socket directory is refused too
        link = os.path.join(self.tmp, 'link-dir')
        if not os.path.islink(link):
            os.symlink(self.tmp, link)
        conf = self.conf('milter-link.conf', self.milter.render_config().replace(
            self.milter.sock_path, os.path.join(link, 'm.sock')))
        p = self.run_daemon([self.milter.binary, '-f', '-c', conf])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('symbolic link', p.stderr)

    # -- inet only when the config says so ------------------------------------------------------

    def test_milter_inet_needs_allow_inet(self):
        port = lab_mod.free_port()
        conf = self.conf('milter-inet.conf', self.milter.render_config().replace(
            'unix:' + self.milter.sock_path, 'inet:%d@127.0.0.1' % port))
        p = self.run_daemon([self.milter.binary, '-f', '-c', conf])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('inet socket is refused', p.stderr)
        self.assertIn('allow_inet', p.stderr)
        self.assertFalse(lab_mod.port_open(port))

    def test_policyd_inet_needs_allow_inet_and_peers(self):
        port = lab_mod.free_port()
        base = self.policyd.render_config().replace(
            self.policyd.socket_spec(), 'socket = inet:%d@127.0.0.1\n' % port).replace(
            self.policyd.pidfile, os.path.join(self.tmp, 'p2.pid')).replace(
            self.policyd.control, os.path.join(self.tmp, 'c2.sock'))
        p = self.run_daemon([self.policyd.binary, '-f', '-c', self.conf('pd-inet.conf', base)])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('inet socket is refused', p.stderr)
        conf = self.conf('pd-inet2.conf', base.replace('[policyd]\n', '[policyd]\nallow_inet = yes\n'))
        p = self.run_daemon([self.policyd.binary, '-f', '-c', conf])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('inet_peers', p.stderr)
        self.assertFalse(lab_mod.port_open(port))

    def test_policyd_inet_peers_checked_on_accept(self):
        port = lab_mod.free_port()
        log = os.path.join(self.tmp, 'pd-peers.log')
        conf = self.conf('pd-peers.conf', self.policyd.render_config().replace(
            self.policyd.socket_spec(), 'socket = inet:%d@127.0.0.1\nallow_inet = yes\n'
            'inet_peers = 192.0.2.0/24\n' % port).replace(
            self.policyd.pidfile, os.path.join(self.tmp, 'p3.pid')).replace(
            self.policyd.control, os.path.join(self.tmp, 'c3.sock')))
        with open(log, 'w') as out:
            proc = subprocess.Popen([self.policyd.binary, '-f', '-c', conf],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            lab_mod.wait_until(lambda: lab_mod.port_open(port) or proc.poll() is not None, 15,
                               'policyd on port %d' % port)
            self.assertIsNone(proc.poll(), open(log).read())
            c = socket.create_connection(('127.0.0.1', port), timeout=10)
            c.sendall(b'request=smtpd_access_policy\nprotocol_state=RCPT\n'
                      b'client_address=127.0.0.1\nsasl_username=x@example.org\n\n')
            try:
                answer = c.recv(1000)
            except ConnectionResetError:
                answer = b''
            self.assertEqual(answer, b'')  # closed without an answer
            c.close()
            lab_mod.wait_until(lambda: 'not in inet_peers' in open(log).read(), 10, 'log')
        finally:
            proc.terminate()
            proc.wait(15)

    def api_config(self, extra=''):
        return self.conf('api.conf', 'user = dovecot\n' + self.store.render_config()
                         + '\n[api]\n' + extra)

    def api_binary(self):
        return os.path.join(self.store.builddir, 'webapi', 'mailwarden-api')

    def test_api_refuses_inet_fastcgi_socket_without_allow(self):
        # spawn-fcgi -a 127.0.0.1 -p PORT: the listening socket arrives as descriptor 0
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        s.listen(4)
        try:
            p = subprocess.run([self.api_binary(), '-c', self.api_config()], stdin=s.fileno(),
                               capture_output=True, text=True, timeout=30)
        finally:
            s.close()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('inet socket is refused', p.stderr)
        self.assertIn('allow_inet', p.stderr)
        port = lab_mod.free_port()
        p = subprocess.run([self.api_binary(), '-c', self.api_config('allow_inet = yes\n'),
                            '-s', '127.0.0.1:%d' % port, '--check'], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('inet_peers', p.stderr)
        # a unix socket made by the API itself: www-data only, in a private directory
        path = os.path.join(self.tmp, 'api', 'api.sock')
        p = subprocess.run([self.api_binary(), '-c', self.api_config(), '-s', path, '--check'],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr)
        st = os.lstat(path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, grp.getgrnam('www-data').gr_gid)
        dst = os.stat(os.path.dirname(path))
        self.assertEqual((dst.st_uid, stat.S_IMODE(dst.st_mode)), (0, 0o750))

    def test_api_serves_nginx_over_its_own_unix_socket(self):
        # mailwarden-api -s /path (started as root, drops to [main] user): nginx's group only
        nginx_group = grp.getgrgid(pwd.getpwnam('nobody').pw_gid).gr_name  # nginx workers
        path = os.path.join(self.tmp, 'api-run', 'api.sock')
        conf = self.conf('api-unix.conf', 'user = dovecot\n' + self.store.render_config()
                         + '\n[api]\nsocket_group = %s\n' % nginx_group)
        for db in glob.glob(self.store.db + '*'):
            os.chmod(db, (os.stat(db).st_mode & 0o7777) | 0o060)
        log = open(os.path.join(self.tmp, 'api-unix.log'), 'ab')
        env = dict(os.environ, ASAN_OPTIONS='detect_leaks=0:abort_on_error=0')
        proc = subprocess.Popen([self.api_binary(), '-f', '-c', conf, '-s', path],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        log.close()
        lab = lab_mod.Lab()
        try:
            lab_mod.wait_until(lambda: os.path.exists(path) or proc.poll() is not None, 15,
                               'mailwarden-api socket')
            self.assertIsNone(proc.poll())
            st = os.lstat(path)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
            self.assertEqual(st.st_gid, grp.getgrnam(nginx_group).gr_gid)
            self.assertEqual(connect_as('postfix', path), 'EACCES')
            nginx = lab.nginx(fastcgi=('/api/', 'unix:' + path))
            c = http.client.HTTPConnection('127.0.0.1', nginx.port, timeout=20)
            c.request('GET', '/api/v1/healthz')
            r = c.getresponse()
            self.assertEqual(r.status, 200, r.read())
            c.close()
        finally:
            lab.stop()
            proc.terminate()
            proc.wait(15)

    # -- pid files ------------------------------------------------------------------------------

    def victim(self, name):
        v = os.path.join(self.tmp, name)
        with open(v, 'w') as f:
            f.write('precious\n')
        os.chmod(v, 0o600)
        return v

    def test_pidfile_symlink_refused_victim_untouched(self):
        v = self.victim('victim-pd')
        link = os.path.join(self.tmp, 'pd-link.pid')
        os.symlink(v, link)
        conf = self.conf('pd-pid.conf', self.policyd.render_config().replace(
            self.policyd.sock_path, os.path.join(self.tmp, 'p4.sock')).replace(
            self.policyd.control, os.path.join(self.tmp, 'c4.sock')))
        p = self.run_daemon([self.policyd.binary, '-f', '-c', conf, '-p', link])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('symbolic link', p.stderr)
        with open(v) as f:
            self.assertEqual(f.read(), 'precious\n')

        v = self.victim('victim-milter')
        link = os.path.join(self.tmp, 'milter-link.pid')
        os.symlink(v, link)
        conf = self.conf('milter-pid.conf', self.milter.render_config().replace(
            self.milter.sock_path, os.path.join(self.tmp, 'm2.sock')))
        p = self.run_daemon([self.milter.binary, '-f', '-c', conf, '-p', link])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('symbolic link', p.stderr)
        with open(v) as f:
            self.assertEqual(f.read(), 'precious\n')
        # a hard link to someone's file is not our pid file either
        hard = os.path.join(self.tmp, 'milter-hard.pid')
        os.link(v, hard)
        p = self.run_daemon([self.milter.binary, '-f', '-c', conf, '-p', hard])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('one link', p.stderr)
        with open(v) as f:
            self.assertEqual(f.read(), 'precious\n')

    def test_running_daemon_holds_its_pidfile(self):
        with open(self.policyd.pidfile) as f:
            self.assertEqual(int(f.read()), self.policyd.proc.pid)
        conf = self.conf('pd-second.conf', self.policyd.render_config().replace(
            self.policyd.sock_path, os.path.join(self.tmp, 'p5.sock')).replace(
            self.policyd.control, os.path.join(self.tmp, 'c5.sock')))
        p = self.run_daemon([self.policyd.binary, '-f', '-c', conf, '-p', self.policyd.pidfile])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('locked by another running instance', p.stderr)
        with open(self.policyd.pidfile) as f:
            self.assertEqual(int(f.read()), self.policyd.proc.pid)

    # -- dkim import ----------------------------------------------------------------------------

    def ctl(self, *args, timeout=30):
        return subprocess.run(self.store.ctl_command() + list(args), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def test_dkim_import_fifo_symlink_and_open_key_refused(self):
        fifo = os.path.join(self.tmp, 'key.fifo')
        os.mkfifo(fifo)
        t0 = time.monotonic()
        p = self.ctl('dkim', 'import', 'fifo.example', 's1', fifo, timeout=10)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('not a regular file', p.stderr)
        pem = os.path.join(self.tmp, 'key.pem')
        subprocess.run(['openssl', 'genpkey', '-algorithm', 'ed25519', '-out', pem],
                       check=True, capture_output=True, timeout=60)
        os.chmod(pem, 0o600)
        link = os.path.join(self.tmp, 'key-link.pem')
        os.symlink(pem, link)
        p = self.ctl('dkim', 'import', 'link.example', 's1', link)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('symbolic link', p.stderr)
        os.chmod(pem, 0o644)
        p = self.ctl('dkim', 'import', 'open.example', 's1', pem)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('accessible by group or others', p.stderr)
        os.chmod(pem, 0o600)
        p = self.ctl('dkim', 'import', 'ok.example', 's1', pem)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.ctl('dkim', 'list')
        self.assertIn('ok.example', p.stdout)
        self.assertNotIn('link.example', p.stdout)
        self.assertNotIn('fifo.example', p.stdout)


class PostfixReachesSocketsTest(labcase.LabCase):
    """Postfix's smtpd (user postfix) reaches both unix sockets through paths relative to its
    queue directory, the form conf.d/postfix-main.cf.sample uses (works chrooted or not)."""

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.milter = cls.lab.milter(cls.store)
        cls.policyd = cls.lab.policyd(cls.store, socket='unix')
        queue = os.path.join(cls.lab.root, 'postfix', 'spool')
        cls.postfix = cls.lab.postfix(
            cls.dovecot,
            milters=['unix:' + os.path.relpath(cls.milter.sock_path, queue)],
            policy_services=['unix:' + os.path.relpath(cls.policyd.sock_path, queue)])
        assert cls.postfix.queue_dir == queue, cls.postfix.queue_dir

    def test_mail_passes_policyd_and_milter(self):
        user = 'sock-%s@%s' % (os.urandom(4).hex(), lab_mod.DOMAIN)
        self.store.add_user(user, 'Sock-pass-' + os.urandom(4).hex())
        before_pd = self.policyd.log_text().count('connection #')
        s = smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=30)
        try:
            s.ehlo('client.example.net')
            # RCPT asks policyd, DATA passes the milter: either unreachable would be a 4xx
            s.sendmail('someone@example.net', [user],
                       'From: <someone@example.net>\r\nTo: <%s>\r\nSubject: s\r\n\r\nhi\r\n'
                       % user)
        finally:
            s.quit()
        self.assertGreater(self.policyd.log_text().count('connection #'), before_pd)
        self.assertIn('event=mail', lab_mod.tail(self.milter.log_path, 200))


if __name__ == '__main__':
    unittest.main()
