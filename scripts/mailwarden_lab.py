#!/usr/bin/env python3
"""mailwarden_lab - start and stop throwaway service instances for tests and scripts/quickstart.

Every instance lives under one directory of its own (a temp dir by default), has its own
configuration there, listens on 127.0.0.1 on free ports, and never reads or touches the
system-wide configuration (/etc/postfix, /etc/dovecot, ...). Services:

  Store       mailwarden.conf + `mailwardenctl init` (SQLite store); ctl() runs mailwardenctl
  Dovecot     IMAP + LMTP on loopback ports, passdb sql on the store, SASL socket for Postfix
  Postfix     smtpd on a loopback port, SASL via Dovecot, delivery over LMTP to Dovecot
  Nginx       own prefix and config, a static root, optional fastcgi_pass
  Api         mailwarden-api under spawn-fcgi on a loopback port (pair with Nginx(fastcgi=...))
  Redis       redis-server on a free port, no persistence
  PostgreSQL  initdb into the lab dir (as postgres), pg_ctl on a free port, createdb
  DNSServer   NSD serving test zones (SPF, DKIM keys, DMARC) on a loopback port; reload()

Each class has start()/stop() and is a context manager. Started services register an atexit
stop (autostop=True, the default) so a crashed test run leaves nothing behind; quickstart
passes autostop=False to keep the daemons running after it exits. Every service keeps its
logs in its directory; a failed start raises LabError carrying the logs' tails, and
active_logs() returns the logs of every running service (the test runner prints them when a
test fails). A binary that is missing raises LabError naming the Debian package.

Lab ties it together: a lab directory (mkdtemp, made traversable 0755) plus the services
started in it, stopped in reverse order; the directory is removed at the end unless
MW_LAB_KEEP=1.

Permissions (SQLite store): the store directory is root:dovecot mode 2770 and Dovecot's
auth-worker runs as `dovecot` (not root); see PERMISSIONS_NOTE. Postfix never opens the
store: it validates recipients by asking Dovecot's LMTP server (reject_unverified_recipient).
"""

import atexit
import glob
import grp
import importlib.machinery
import importlib.util
import os
import pwd
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

DOMAIN = 'example.org'
DEFAULT_BUILDDIR = os.environ.get('MW_BUILDDIR') or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'build')
LOG_TAIL_LINES = 60


class LabError(Exception):
    """A lab service could not be set up, started or stopped."""


# ---------------------------------------------------------------------------------------------
# helpers

_ACTIVE = []		# running services, in start order
_PORTS = set()		# ports handed out by this process


def find_binary(name, package, extra_dirs=()):
    """find_binary - absolute path of NAME, or LabError naming the Debian PACKAGE."""
    pg = sorted(glob.glob('/usr/lib/postgresql/*/bin'), reverse=True)
    for d in list(extra_dirs) + ['/usr/sbin', '/usr/bin', '/sbin', '/bin'] + pg:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    p = shutil.which(name)
    if p:
        return p
    raise LabError('%s not found: install the Debian package %s (run scripts/setup as root)'
               % (name, package))


def free_port():
    """free_port - a port on 127.0.0.1 that nothing listens on now, TCP and UDP (and not
    handed out), chosen BELOW the kernel's ephemeral range (ip_local_port_range, 32768 and up
    on Debian): a port from that range can be taken meanwhile as the source port of some
    outgoing connection, and a client that retries connecting to one while its server is down
    can connect to itself (TCP simultaneous open: a reconnecting policyd once "recovered" to
    its own socket)."""
    low = 32768
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(10000, max(low, 10001))
        if port in _PORTS:
            continue
        ok = True
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind(('127.0.0.1', port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            _PORTS.add(port)
            return port
    raise LabError('no free port found below %d' % low)


def udp_soa_answers(port, zone, host='127.0.0.1'):
    """udp_soa_answers - True when a DNS server on HOST:PORT answers a UDP SOA query for
	ZONE with NOERROR (authoritative data loaded), within 0.5 s."""
    qid = os.getpid() & 0xffff
    name = b''.join(bytes([len(p)]) + p.encode('ascii')
                    for p in zone.strip('.').split('.') if p)  # the root zone: no label
    query = struct.pack('>HHHHHH', qid, 0, 1, 0, 0, 0) + name + b'\0' + struct.pack('>HH', 6, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        try:
            s.sendto(query, (host, port))
            reply = s.recv(4096)
        except OSError:
            return False
    if len(reply) < 12:
        return False
    rid, flags, _, ancount = struct.unpack('>HHHH', reply[:8])
    return rid == qid and (flags & 0x8000) and (flags & 0xf) == 0 and ancount > 0


def port_open(port, host='127.0.0.1'):
    """port_open - True when something accepts TCP connections on HOST:PORT."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pid_alive(pid):
    """pid_alive - True when process PID exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def rss_kib(pid):
    """rss_kib - PID's resident memory (VmRSS) in KiB; 0 once the process is gone."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children_of(pid):
    """children_of - the pids of PID's child processes, in order (/proc)."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def pid_holding(pids, target):
    """pid_holding - which of PIDS has TARGET open (what a /proc/PID/fd link reads: a path,
    'socket:[INODE]'); None while none does."""
    for pid in pids:
        try:
            fds = os.listdir('/proc/%d/fd' % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink('/proc/%d/fd/%s' % (pid, fd)) == target:
                    return pid
            except OSError:
                continue
    return None


def read_pidfile(path):
    """read_pidfile - the pid in PATH (first word), or None."""
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_until(pred, timeout, what):
    """wait_until - poll PRED until true; LabError after TIMEOUT seconds saying WHAT."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if pred():
            return
        if time.monotonic() > deadline:
            raise LabError('timed out after %.0fs waiting for %s' % (timeout, what))
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def run(cmd, check=True, input=None, env=None, timeout=60, log=None):
    """run - run CMD (list); LabError with its output when CHECK and rc != 0.

	Output goes through temp files, not pipes: a daemon that forks keeps inherited pipes
	open and would make us wait for EOF forever."""
    with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
        try:
            p = subprocess.run(cmd, input=input, stdout=out, stderr=err, env=env, text=True,
                       timeout=timeout,
                       stdin=subprocess.DEVNULL if input is None else None)
        except subprocess.TimeoutExpired:
            raise LabError('%s: timed out after %ss' % (' '.join(cmd), timeout))
        out.seek(0)
        err.seek(0)
        p.stdout, p.stderr = out.read(), err.read()
    if log:
        with open(log, 'a') as f:
            f.write('$ %s\n-> rc=%d\n%s%s' % (' '.join(cmd), p.returncode, p.stdout, p.stderr))
    if check and p.returncode != 0:
        raise LabError('%s: exit %d\n%s%s' % (' '.join(cmd), p.returncode, p.stdout, p.stderr))
    return p


def write_file(path, text, mode=0o644):
    """write_file - write TEXT to PATH with MODE."""
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, mode)


def tail(path, lines=LOG_TAIL_LINES):
    """tail - the last LINES lines of PATH ('' when missing)."""
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return ''


def active_logs(lines=LOG_TAIL_LINES):
    """active_logs - the log tails of every running service, as one text."""
    return ''.join(s.logs(lines) for s in list(_ACTIVE))


QUICKSTART = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'quickstart')


def load_quickstart():
    """load_quickstart - scripts/quickstart as a module (it has no .py name)."""
    loader = importlib.machinery.SourceFileLoader('mw_quickstart', QUICKSTART)
    spec = importlib.util.spec_from_loader('mw_quickstart', loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


MADE_ROOTS = []  # every lab directory this process made (run.py checks none is left in use)


def make_root(prefix='mwlab-'):
    """make_root - a new temp directory, traversable (0755) so daemons reach their sockets."""
    root = tempfile.mkdtemp(prefix=prefix)
    os.chmod(root, 0o755)
    MADE_ROOTS.append(root)
    return root


def processes_under(roots):
    """processes_under - (pid, command line) of running processes whose command line names
    one of the directories ROOTS: services a lab failed to stop."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as f:
                cmd = f.read().replace(b'\0', b' ').decode(errors='replace').strip()
        except OSError:
            continue
        if any(r + '/' in cmd for r in roots):
            found.append((int(entry), cmd))
    return found


# ---------------------------------------------------------------------------------------------
# base class

_CLAIMED_DIRS = set()  # (lab root, service directory name) taken in this process


def stop_by_pidfile(pidfile, what, stop=signal.SIGTERM, timeout=10, last=None):
    """stop_by_pidfile - stop the process named by PIDFILE (nothing when there is none or it
    is gone): STOP (a signal, or a callable that asks it), wait up to TIMEOUT seconds; if it
    is still there, LAST() (when given) and SIGKILL."""
    pid = read_pidfile(pidfile)
    if pid is None or not pid_alive(pid):
        return
    if callable(stop):
        stop()
    else:
        os.kill(pid, stop)
    try:
        wait_until(lambda: not pid_alive(pid), timeout, '%s to stop' % what)
    except LabError:
        if last is not None:
            last()
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def stop_process(proc, timeout=10, kill=None):
    """stop_process - SIGTERM the child PROC (nothing when it is None or gone), wait up to
    TIMEOUT seconds; if it is still there, KILL() (SIGKILL to PROC by default) and wait."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        (kill or proc.kill)()
        proc.wait(10)


def wait_started(proc, ready, timeout, what, name, log_path=None):
    """wait_started - poll READY until true (LabError after TIMEOUT seconds saying WHAT);
    LabError as soon as the child PROC, the daemon NAME, exits (with the tail of LOG_PATH
    when given)."""
    def up():
        if proc.poll() is not None:
            raise LabError('%s exited with status %d%s' % (
                name, proc.returncode, ': ' + tail(log_path) if log_path else ''))
        return ready()
    wait_until(up, timeout, what)


def unix_socket_open(path, timeout=1):
    """unix_socket_open - True when something accepts connections on the unix socket PATH."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Service:
    """Service - one throwaway instance under ROOT/NAME; start()/stop(), context manager.
	WRAP: a command the daemon runs under (valgrind and its options: tests/longrun), and
	START_TIMEOUT: the seconds it may take to listen, for the services that start one of
	our daemons (Milter, Api, Policyd)."""
    name = 'service'

    def __init__(self, root, autostop=True, wrap=(), start_timeout=15):
        self.root = os.path.abspath(root)
        self.wrap = list(wrap)
        self.start_timeout = start_timeout
        # Two instances of one kind in one lab (two nginx, two APIs) get their own
        # directories (NAME, NAME-2, ...): sharing one would lose the first one's pid file
        # and leave it running after stop().
        base, n = self.name, 1
        while (self.root, self.name) in _CLAIMED_DIRS:
            n += 1
            self.name = '%s-%d' % (base, n)
        _CLAIMED_DIRS.add((self.root, self.name))
        self.dir = os.path.join(self.root, self.name)
        self.autostop = autostop
        self.running = False

    def log_files(self):
        """log_files - paths of this instance's logs."""
        return []

    def logs(self, lines=LOG_TAIL_LINES):
        """logs - the tails of this instance's logs, with headers."""
        out = []
        for path in self.log_files():
            text = tail(path, lines)
            if text:
                out.append('----- %s: %s (last %d lines)\n%s' % (self.name, path, lines, text))
        return ''.join(out)

    def start(self):
        """start - set up and start; on failure stop what started and raise with the logs."""
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        try:
            self._start()
        except Exception as e:
            logs = self.logs()
            try:
                self._stop()
            except Exception:
                pass
            if isinstance(e, LabError):
                raise LabError('%s: start failed: %s\n%s' % (self.name, e, logs)) from e
            raise
        self.running = True
        _ACTIVE.append(self)
        if self.autostop:
            atexit.register(self.stop)
        return self

    def stop(self):
        """stop - stop the instance (idempotent)."""
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self.autostop:
            atexit.unregister(self.stop)
        self.running = False
        self._stop()

    def alive(self):
        """alive - True when the instance runs (a restart check for quickstart)."""
        return self.running

    def _start(self):
        raise NotImplementedError

    def _stop(self):
        pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# ---------------------------------------------------------------------------------------------
# the store

class Store(Service):
    """Store - mailwarden.conf + store via `mailwardenctl init`; ctl() runs the CLI.

	SQLite in the lab directory by default; PGSQL (a started PostgreSQL) puts it there
	instead (db is then None: no file to share)."""
    name = 'store'

    def __init__(self, root, builddir=None, group='dovecot', argon2_memory='8M',
             argon2_passes=1, extra_config='', autostop=True, pgsql=None):
        super().__init__(root, autostop)
        self.builddir = os.path.abspath(builddir or DEFAULT_BUILDDIR)
        self.group = group
        self.etc = os.path.join(self.dir, 'etc')
        self.data = os.path.join(self.dir, 'data')
        self.pgsql = pgsql
        self.db = os.path.join(self.data, 'mailwarden.db') if pgsql is None else None
        self.config = os.path.join(self.etc, 'mailwarden.conf')
        self.master_key = os.path.join(self.etc, 'master.key')
        self.url = 'sqlite:' + self.db if pgsql is None else pgsql.url
        self.ctl_log = os.path.join(self.dir, 'mailwardenctl.log')
        self.argon2_memory = argon2_memory
        self.argon2_passes = argon2_passes
        self.extra_config = extra_config

    @property
    def ctl_path(self):
        """ctl_path - the mailwardenctl binary in the build dir."""
        return os.path.join(self.builddir, 'ctl', 'mailwardenctl')

    def ctl_command(self):
        """ctl_command - the mailwardenctl command line with -c (a list)."""
        return [self.ctl_path, '-c', self.config]

    def log_files(self):
        return [self.ctl_log]

    def _start(self):
        if not os.access(self.ctl_path, os.X_OK):
            raise LabError('%s missing: build the project (make) in %s'
                       % (self.ctl_path, self.builddir))
        os.makedirs(self.etc, exist_ok=True)
        os.chmod(self.etc, 0o755)
        os.makedirs(self.data, exist_ok=True)
        gid = grp.getgrnam(self.group).gr_gid
        os.chown(self.data, 0, gid)
        os.chmod(self.data, 0o2770)
        write_file(self.config, self.render_config(), 0o640)
        self.ctl('init')
        self.fix_permissions()

    def render_config(self):
        """render_config - the mailwarden.conf text of this store."""
        return ('# mailwarden lab store (generated by scripts/mailwarden_lab.py)\n'
            'store = %s\nmaster_key = %s\nlog = stderr\n%s\n'
            '[password]\nargon2_memory = %s\nargon2_passes = %d\n'
            % (self.url, self.master_key, self.extra_config, self.argon2_memory,
               self.argon2_passes))

    def db_files(self):
        """db_files - the SQLite store's files (none for PostgreSQL)."""
        return glob.glob(self.db + '*') if self.db is not None else []

    def dovecot_sql(self):
        """dovecot_sql - (driver, connect) of Dovecot's sql files for this store."""
        if self.pgsql is None:
            return 'sqlite', self.db
        pg = self.pgsql
        return 'pgsql', 'host=%s port=%d dbname=%s user=%s' % (pg.socket_dir, pg.port,
                                                               pg.dbname, pg.user)

    def fix_permissions(self):
        """fix_permissions - check the db files are group-readable by the store group.

		mailwardenctl should create them so (in the setgid store directory); this only
		repairs what it did not, and notes it in the ctl log so a regression stays visible."""
        gid = grp.getgrnam(self.group).gr_gid
        for path in self.db_files():
            st = os.stat(path)
            if st.st_gid != gid or (st.st_mode & 0o040) != 0o040:
                with open(self.ctl_log, 'a') as f:
                    f.write('lab: fixed permissions of %s (mode %o gid %d)\n'
                        % (path, st.st_mode & 0o7777, st.st_gid))
                os.chown(path, -1, gid)
                os.chmod(path, ((st.st_mode & 0o7777) | 0o040) & ~0o007)

    def share_with_group(self):
        """share_with_group - let the store group WRITE the store and read the config.

        For the Dovecot plugin: lmtp/imap run as the mail user with the store group as a
        supplementary group (mail_access_groups) and record training events, so the db files
        are 0660 (SQLite gives new -wal/-shm files the db file's mode) and mailwarden.conf
        is root:GROUP 0640."""
        gid = grp.getgrnam(self.group).gr_gid
        for path in self.db_files():
            os.chown(path, -1, gid)
            os.chmod(path, 0o660)
        os.chown(self.config, 0, gid)
        os.chmod(self.config, 0o640)

    def ctl(self, *args, input=None, check=True, secret_stdout=False):
        """ctl - run `mailwardenctl -c CONFIG ARGS...`; CHECK: True (rc 0) or an expected rc.

		Returns the CompletedProcess (text). stdout is not logged when SECRET_STDOUT."""
        p = subprocess.run(self.ctl_command() + list(args), input=input, capture_output=True,
                   text=True, timeout=60)
        with open(self.ctl_log, 'a') as f:
            f.write('$ mailwardenctl %s\n-> rc=%d\n%s%s' % (
                ' '.join(args), p.returncode, '' if secret_stdout else p.stdout, p.stderr))
        want = 0 if check is True else check
        if check is not False and p.returncode != want:
            raise LabError('mailwardenctl %s: exit %d (expected %d)\n%s%s'
                       % (' '.join(args), p.returncode, want, p.stdout, p.stderr))
        return p

    def add_user(self, user, password=None, role='user', status='active', description=None):
        """add_user - create USER; returns the password (generated when PASSWORD is None)."""
        args = ['user', 'add', user, '--role', role, '--status', status]
        if description is not None:
            args += ['--description', description]
        if password is None:
            p = self.ctl(*(args + ['--generate']), secret_stdout=True)
            password = p.stdout.strip().splitlines()[-1].strip()
        else:
            self.ctl(*(args + ['--password-stdin']), input=password + '\n')
        return password

    def set_password(self, user, password):
        """set_password - `user passwd USER --password-stdin`."""
        self.ctl('user', 'passwd', user, '--password-stdin', input=password + '\n')

    def allow_from(self, user, *patterns):
        """allow_from - `allow-from add USER PATTERN...`."""
        self.ctl('allow-from', 'add', user, *patterns)


# ---------------------------------------------------------------------------------------------
# Dovecot

class Dovecot(Service):
    """Dovecot - IMAP + LMTP on loopback, passdb sql on the store, a SASL socket for Postfix."""
    name = 'dovecot'

    def __init__(self, root, store, imap_port=None, lmtp_port=None, mail_user='mail',
             mail_plugins='', mail_plugin_dir=None, plugin_settings=None, extra_config='',
             auth_policy=None, autostop=True):
        super().__init__(root, autostop)
        self.store = store
        # (url, secret): report every authentication to mailwarden-api (app password last use)
        self.auth_policy = auth_policy
        self.imap_port = imap_port or free_port()
        self.lmtp_port = lmtp_port or free_port()
        self.mail_user = mail_user
        self.mail_plugins = mail_plugins
        self.mail_plugin_dir = mail_plugin_dir
        self.plugin_settings = plugin_settings or {}
        self.extra_config = extra_config
        self.config = os.path.join(self.dir, 'dovecot.conf')
        self.sql_config = os.path.join(self.dir, 'dovecot-sql.conf.ext')
        self.apppw_config = os.path.join(self.dir, 'dovecot-sql-apppw.conf.ext')
        self.userdb_config = os.path.join(self.dir, 'dovecot-sql-userdb.conf.ext')
        self.base_dir = os.path.join(self.dir, 'run')
        self.state_dir = os.path.join(self.dir, 'state')
        self.log_path = os.path.join(self.dir, 'dovecot.log')
        self.mail_root = os.path.join(self.root, 'mail')
        self.auth_socket = os.path.join(self.base_dir, 'auth-postfix')
        self.pidfile = os.path.join(self.base_dir, 'master.pid')

    def log_files(self):
        return [self.log_path]

    def maildir(self, user):
        """maildir - the Maildir of USER (lower-cased, as auth_username_format %Lu)."""
        return os.path.join(self.mail_root, user.lower(), 'Maildir')

    def render_sql_config(self):
        """render_sql_config - the passdb sql connect file (SQLite store)."""
        return render_dovecot_sql(*reversed(self.store.dovecot_sql()))

    def render_config(self):
        """render_config - the dovecot.conf text of this instance."""
        pw = pwd.getpwnam(self.mail_user)
        settings = dict(self.plugin_settings)
        plugin = ''
        if settings:
            plugin = 'plugin {\n%s}\n' % ''.join(
                '  %s = %s\n' % (k, v) for k, v in sorted(settings.items()))
        return DOVECOT_TEMPLATE % dict(
            base_dir=self.base_dir, state_dir=self.state_dir, log_path=self.log_path,
            uid=pw.pw_uid, gid=pw.pw_gid, mail_root=self.mail_root,
            mail_plugins=self.mail_plugins,
            mail_plugin_dir=self.mail_plugin_dir or '/usr/lib/dovecot/modules',
            imap_port=self.imap_port, lmtp_port=self.lmtp_port, domain=DOMAIN,
            auth_common=render_dovecot_auth(
                self.sql_config, self.apppw_config, self.userdb_config,
                'uid=%d gid=%d home=%s/%%Lu' % (pw.pw_uid, pw.pw_gid, self.mail_root)),
            plugin=plugin,
            extra=(render_dovecot_auth_policy(*self.auth_policy, nonce=os.urandom(16).hex())
                   if self.auth_policy else '') + self.extra_config)

    def _start(self):
        dovecot = find_binary('dovecot', 'dovecot-core')
        for d in (self.base_dir, self.state_dir):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        pw = pwd.getpwnam(self.mail_user)
        os.makedirs(self.mail_root, exist_ok=True)
        os.chown(self.mail_root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.mail_root, 0o770)
        write_file(self.sql_config, self.render_sql_config(), 0o640)
        os.chown(self.sql_config, 0, grp.getgrnam('dovecot').gr_gid)
        write_file(self.apppw_config, render_dovecot_sql_apppw(*reversed(self.store.dovecot_sql())),
                   0o640)
        os.chown(self.apppw_config, 0, grp.getgrnam('dovecot').gr_gid)
        write_file(self.userdb_config,
                   render_dovecot_sql_userdb(*reversed(self.store.dovecot_sql())), 0o640)
        os.chown(self.userdb_config, 0, grp.getgrnam('dovecot').gr_gid)
        write_file(self.config, self.render_config(), 0o644)
        run([dovecot, '-c', self.config])
        wait_until(lambda: port_open(self.imap_port) and port_open(self.lmtp_port)
               and os.path.exists(self.auth_socket), 20, 'dovecot (IMAP, LMTP, auth socket)')

    def _stop(self):
        doveadm = find_binary('doveadm', 'dovecot-core')
        stop_by_pidfile(self.pidfile, 'dovecot', timeout=15,
                        stop=lambda: run([doveadm, '-c', self.config, 'stop'], check=False))

    def alive(self):
        pid = read_pidfile(self.pidfile)
        return pid is not None and pid_alive(pid) and port_open(self.imap_port)


def mailwarden_plugin_settings(config, **extra):
    """mailwarden_plugin_settings - plugin { } settings of the mailwarden Dovecot plugin.

    Shared by the lab and the conf.d sample; EXTRA adds or overrides settings."""
    settings = {
        'mailwarden_config': config,
        'mailwarden_spam_mailbox': 'Junk',
        'mailwarden_file_spam': 'yes',
    }
    settings.update(extra)
    return settings


MAILWARDEN_PLUGIN_EXTRA = """\
# the plugin opens the store as the mail user: give it the store's group
mail_access_groups = %(group)s
# spam and rule mailboxes (Junk, ...) are created on first delivery
lda_mailbox_autocreate = yes
lda_mailbox_autosubscribe = yes
"""


def mailwarden_plugin_options(store, builddir=None, extra_config='', share=True, **settings):
    """mailwarden_plugin_options - Dovecot(...) keyword arguments that load the build's
    lib90_mailwarden_plugin.so (mail_plugin_dir = BUILDDIR/dovecot-plugin/.libs) on STORE,
    with the plugin SETTINGS (mailwarden_* = value) on top of mailwarden_plugin_settings().
    SHARE: also share the (started) store with its group now (Store.share_with_group);
    a caller that builds the options before starting the store calls that itself."""
    builddir = os.path.abspath(builddir or store.builddir)
    plugin_dir = os.path.join(builddir, 'dovecot-plugin', '.libs')
    if not os.path.exists(os.path.join(plugin_dir, 'lib90_mailwarden_plugin.so')):
        raise LabError('%s/lib90_mailwarden_plugin.so missing: build the project (make)'
                       % plugin_dir)
    if share:
        store.share_with_group()
    return dict(mail_plugins='mailwarden', mail_plugin_dir=plugin_dir,
                plugin_settings=mailwarden_plugin_settings(store.config, **settings),
                extra_config=MAILWARDEN_PLUGIN_EXTRA % dict(group=store.group) + extra_config)


def render_plugin_sample():
    """render_plugin_sample - the commented mailwarden plugin block of the Dovecot sample."""
    settings = mailwarden_plugin_settings(
        '/etc/mailwarden/mailwarden.conf', mailwarden_authserv_id='mail.%s' % DOMAIN)
    text = ('The mailwarden plugin (IMAP keywords, tag rules, Junk filing, learning).\n'
            'Install lib90_mailwarden_plugin.so into Dovecot\'s module directory\n'
            '(./configure --with-dovecot-moduledir) and enable it here. The mail user needs\n'
            'the store\'s group (mail_access_groups) and the store files 0660.\n'
            'mail_plugins = $mail_plugins mailwarden\n'
            + MAILWARDEN_PLUGIN_EXTRA % dict(group='dovecot')
            + 'plugin {\n'
            + ''.join('  %s = %s\n' % (k, v) for k, v in sorted(settings.items()))
            + '  # keyword names; quote values starting with $ (variable expansion)\n'
            + '  #mailwarden_keyword_spam = "$Junk"\n'
            + '  #mailwarden_keyword_dmarc_fail = "$DMARCFail"\n'
            + '  # how long a saved delivery is remembered against a re-delivery of its queue\n'
            + '  # file (lmtp saved it, then its 250 was lost); 0 turns this off\n'
            + '  #mailwarden_dedupe_window = 5d\n'
            + '}\n')
    return '\n' + comment_block(text)


# The Dovecot sql files (passdb: main password, app passwords; userdb) live in ONE place,
# conf.d/dovecot-sql-mailwarden*.conf.ext: the lab and the Dovecot sample read those files
# and change nothing but the connect line (tests/integration/test_samples.py checks).
CONF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'conf.d')
DOVECOT_SQL_FILES = {
    'main': 'dovecot-sql-mailwarden.conf.ext',
    'apppw': 'dovecot-sql-mailwarden-apppw.conf.ext',
    'userdb': 'dovecot-sql-mailwarden-userdb.conf.ext',
}
DOVECOT_SQL_DB = '/var/lib/mailwarden/mailwarden.db'


def render_dovecot_sql_file(kind, db=DOVECOT_SQL_DB, driver='sqlite'):
    """render_dovecot_sql_file - conf.d's Dovecot sql file of KIND (main | apppw | userdb)
	with its connect line pointing at the SQLite store DB (the file's own when DB is the
	default); a file without exactly one `connect = ` line is an error. DRIVER 'pgsql': the
	same queries through Dovecot's pgsql driver, DB a libpq connect string (the PostgreSQL
	schema has the two SQLite functions the queries use, instr and unixepoch)."""
    with open(os.path.join(CONF_DIR, DOVECOT_SQL_FILES[kind])) as f:
        text = f.read()
    line = 'connect = %s\n' % DOVECOT_SQL_DB
    if text.count('\nconnect = ') != 1 or text.count('\n' + line) != 1:
        raise LabError('conf.d/%s: expected one line "%s"' % (DOVECOT_SQL_FILES[kind],
                                                             line.strip()))
    if text.count('\ndriver = sqlite\n') != 1:
        raise LabError('conf.d/%s: expected one line "driver = sqlite"' % DOVECOT_SQL_FILES[kind])
    text = text.replace('\ndriver = sqlite\n', '\ndriver = %s\n' % driver)
    return text.replace('\n' + line, '\nconnect = %s\n' % db)


def render_dovecot_sql(db, driver='sqlite'):
    """render_dovecot_sql - the first passdb's file (the main password) for a store at DB."""
    return render_dovecot_sql_file('main', db, driver)


def render_dovecot_sql_apppw(db, driver='sqlite'):
    """render_dovecot_sql_apppw - the second passdb's file (app passwords) for a store at DB."""
    return render_dovecot_sql_file('apppw', db, driver)


def render_dovecot_sql_userdb(db, driver='sqlite'):
    """render_dovecot_sql_userdb - the userdb's file (which users exist) for a store at DB."""
    return render_dovecot_sql_file('userdb', db, driver)


AUTH_POLICY_PATH = '/api/v1/internal/auth-policy'


def render_dovecot_auth_policy(url, secret, nonce):
    """render_dovecot_auth_policy - Dovecot's auth policy hook as a reporter only: after each
	authentication it POSTs {user, remote, protocol, app_password_id, success, ...} to URL
	(mailwarden-api's AUTH_POLICY_PATH) with SECRET ([api] auth_policy_secret); the API
	stamps the app password's last use. No check before or after auth, so a slow or absent
	API never refuses or delays a login. NONCE: Dovecot insists on one (the attributes use
	no password hash)."""
    return ('# auth policy hook: report each login to mailwarden-api (app password last use)\n'
        'auth_policy_server_url = %s\n'
        'auth_policy_server_api_header = Authorization: Bearer %s\n'
        'auth_policy_hash_nonce = %s\n'
        'auth_policy_request_attributes = user=%%{user} remote=%%{rip} protocol=%%s '
        'app_password_id=%%{passdb:mailwarden_app_password_id}\n'
        'auth_policy_check_before_auth = no\n'
        'auth_policy_check_after_auth = no\n'
        'auth_policy_report_after_auth = yes\n'
        'auth_policy_reject_on_fail = no\n' % (url, secret, nonce))


def render_dovecot_auth(sql_config, apppw_config, userdb_config, userdb_fields):
    """render_dovecot_auth - the auth settings shared by the lab and conf.d sample: the main
	password first, then app passwords (a failure in the first continues to the second);
	the users that exist come from a userdb of their own (USERDB_FIELDS: its uid, gid and
	home), so delivery and doveadm never need a passdb that answers them."""
    return ('auth_mechanisms = plain login\n'
        'auth_username_format = %%Lu\n'
        '# main password (where main_password_protocols allows it and TOTP is off), then app\n'
        '# passwords; both refuse every service name that is not a known login\n'
        'passdb {\n  driver = sql\n  args = %s\n}\n'
        'passdb {\n  driver = sql\n  args = %s\n}\n'
        '# who exists (LMTP delivery, address verification, doveadm): no password involved\n'
        'userdb {\n  driver = sql\n  args = %s\n  default_fields = %s\n}\n'
        '# Dovecot 2.3 runs auth-worker as root unless told otherwise; the store needs no root\n'
        'service auth-worker {\n  user = $default_internal_user\n}\n'
        % (sql_config, apppw_config, userdb_config, userdb_fields))


DOVECOT_TEMPLATE = '''# mailwarden lab Dovecot (generated by scripts/mailwarden_lab.py)
protocols = imap lmtp
listen = 127.0.0.1
base_dir = %(base_dir)s
state_dir = %(state_dir)s
log_path = %(log_path)s
info_log_path = %(log_path)s
ssl = no
disable_plaintext_auth = no
%(auth_common)s
# tests of failing logins must not wait
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
auth_cache_size = 0
first_valid_uid = %(uid)d
first_valid_gid = %(gid)d
mail_location = maildir:~/Maildir
mail_plugin_dir = %(mail_plugin_dir)s
mail_plugins = $mail_plugins %(mail_plugins)s
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %(imap_port)d
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %(lmtp_port)d
  }
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
protocol lmtp {
  postmaster_address = postmaster@%(domain)s
}
%(plugin)s%(extra)s
'''


# ---------------------------------------------------------------------------------------------
# Postfix

class Postfix(Service):
    """Postfix - smtpd on a loopback port, SASL via Dovecot, delivery over LMTP to Dovecot.

	Hooks for later issues: MILTERS (list of 'inet:127.0.0.1:PORT' / 'unix:PATH'),
	POLICY_SERVICES (list of 'inet:127.0.0.1:PORT' / 'unix:PATH', checked at RCPT and at
	END-OF-DATA), EXTRA_MAIN (dict of main.cf parameters, applied last)."""
    name = 'postfix'

    def __init__(self, root, dovecot, smtp_port=None, domain=DOMAIN, milters=(),
             policy_services=(), extra_main=None, autostop=True):
        super().__init__(root, autostop)
        self.dovecot = dovecot
        self.smtp_port = smtp_port or free_port()
        self.domain = domain
        self.milters = list(milters)
        self.policy_services = list(policy_services)
        self.extra_main = dict(extra_main or {})
        self.config_dir = os.path.join(self.dir, 'etc')
        self.queue_dir = os.path.join(self.dir, 'spool')
        self.data_dir = os.path.join(self.dir, 'data')
        self.log_path = os.path.join(self.dir, 'postfix.log')
        self.pidfile = os.path.join(self.queue_dir, 'pid', 'master.pid')

    def log_files(self):
        return [self.log_path]

    def main_settings(self):
        """main_settings - the main.cf parameters (ordered dict)."""
        s = {
            'compatibility_level': '3.6',
            'config_directory': self.config_dir,
            'queue_directory': self.queue_dir,
            'data_directory': self.data_dir,
            'maillog_file_prefixes': self.dir,
            'maillog_file': self.log_path,
            'mail_owner': 'postfix',
            'setgid_group': 'postdrop',
            'myhostname': 'mail.' + self.domain,
            'mydomain': self.domain,
            'myorigin': self.domain,
            'mydestination': '',
            'inet_interfaces': 'loopback-only',
            'inet_protocols': 'ipv4',
            'mynetworks': '127.0.0.0/8',
            'smtputf8_enable': 'no',
            'biff': 'no',
            'alias_maps': '',
            'alias_database': '',
            'local_recipient_maps': '',
            'relayhost': '',
            'smtp_dns_support_level': 'disabled',
            'smtpd_tls_security_level': 'none',
            'smtp_tls_security_level': 'none',
            'lmtp_tls_security_level': 'none',
            'delay_warning_time': '0',
        }
        s.update(postfix_mailwarden_settings(self.dovecot.auth_socket, self.domain,
                              'lmtp:inet:127.0.0.1:%d' % self.dovecot.lmtp_port,
                              self.policy_services, self.milters))
        s.update({
            # lab: answer unknown recipients fast and without stale caches
            'address_verify_map': '',
            'address_verify_negative_expire_time': '10s',
            'address_verify_negative_refresh_time': '5s',
            'address_verify_positive_expire_time': '60s',
            'address_verify_positive_refresh_time': '30s',
            'address_verify_poll_delay': '1s',
            'address_verify_poll_count': '10',
            'smtpd_error_sleep_time': '0',
            'smtpd_soft_error_limit': '1000',
            'smtpd_hard_error_limit': '1000',
            'in_flow_delay': '0',
            'queue_run_delay': '10s',
            'minimal_backoff_time': '10s',
            'maximal_backoff_time': '20s',
            # an smtpd that starts while Dovecot's auth is down exits ("fatal: no SASL
            # authentication mechanisms") and the master then throttles the service for
            # service_throttle_time (60 s by default): mail refused for a minute after
            # Dovecot is back (the chaos run's Dovecot kills); the admin guide recommends it
            'service_throttle_time': '5s',
        })
        s.update(self.extra_main)
        return s

    def render_main(self):
        """render_main - the main.cf text."""
        return '# mailwarden lab Postfix (generated by scripts/mailwarden_lab.py)\n' + ''.join(
            '%s = %s\n' % (k, v) for k, v in self.main_settings().items())

    def render_master(self):
        """render_master - the master.cf text (every service chroot n)."""
        return POSTFIX_MASTER % dict(port=self.smtp_port)

    def postfix(self, *args, check=True):
        """postfix - run `postfix -c CONFIG_DIR ARGS...`."""
        return run([find_binary('postfix', 'postfix'), '-c', self.config_dir] + list(args),
               check=check, log=os.path.join(self.dir, 'postfix-cmd.log'))

    def _start(self):
        find_binary('postfix', 'postfix')
        os.makedirs(self.config_dir, exist_ok=True)
        os.makedirs(self.queue_dir, exist_ok=True)
        os.chmod(self.queue_dir, 0o755)
        pw = pwd.getpwnam('postfix')
        os.makedirs(self.data_dir, exist_ok=True)
        os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.data_dir, 0o700)
        write_file(os.path.join(self.config_dir, 'main.cf'), self.render_main())
        write_file(os.path.join(self.config_dir, 'master.cf'), self.render_master())
        open(self.log_path, 'a').close()
        p = self.postfix('check', check=False)
        if p.returncode != 0:
            raise LabError('postfix check failed:\n%s%s' % (p.stdout, p.stderr))
        self.postfix('start')
        wait_until(lambda: port_open(self.smtp_port), 20, 'postfix smtpd on port %d'
               % self.smtp_port)

    def _stop(self):
        stop_by_pidfile(self.pidfile, 'postfix', timeout=15,
                        stop=lambda: self.postfix('stop', check=False),
                        last=lambda: self.postfix('abort', check=False))

    def alive(self):
        pid = read_pidfile(self.pidfile)
        return pid is not None and pid_alive(pid) and port_open(self.smtp_port)

    def flush(self):
        """flush - `postfix flush` (retry deferred mail now)."""
        self.postfix('flush', check=False)


def postfix_mailwarden_settings(auth_socket, domain, transport, policy_services=(), milters=()):
    """postfix_mailwarden_settings - the main.cf lines mailwarden needs (lab and sample)."""
    # Postfix asks Dovecot (LMTP) whether a local recipient exists: address verification,
    # scoped to the local domain so mail to other domains is never probed
    rcpt = ['check_recipient_access inline:{%s=reject_unverified_recipient}' % domain]
    rcpt += ['check_policy_service ' + p for p in policy_services]
    s = {
        'smtpd_sasl_auth_enable': 'yes',
        'smtpd_sasl_type': 'dovecot',
        'smtpd_sasl_path': auth_socket,
        'smtpd_sasl_security_options': 'noanonymous',
        'smtpd_sasl_authenticated_header': 'no',
        'broken_sasl_auth_clients': 'no',
        'virtual_mailbox_domains': domain,
        'virtual_transport': transport,
        'smtpd_relay_restrictions': 'permit_sasl_authenticated, reject_unauth_destination',
        'smtpd_recipient_restrictions': ', '.join(rcpt),
        'unverified_recipient_reject_code': '550',
        # a recipient created after a refused attempt is accepted within minutes
        'address_verify_negative_expire_time': '10m',
        'address_verify_negative_refresh_time': '5m',
    }
    if policy_services:
        s['smtpd_end_of_data_restrictions'] = ', '.join(
            'check_policy_service ' + p for p in policy_services)
        # Postfix's own default, spelled out: policy service unreachable -> 4xx, never accept
        s['smtpd_policy_service_default_action'] = '451 4.3.5 Server configuration problem'
    if milters:
        s['smtpd_milters'] = ', '.join(milters)
        s['non_smtpd_milters'] = '$smtpd_milters'
        s['milter_default_action'] = 'tempfail'
        s['milter_protocol'] = '6'
        s['milter_mail_macros'] = 'i {auth_type} {auth_authen} {auth_author} {mail_addr} ' \
            '{mail_host} {mail_mailer}'
    return s


POSTFIX_MASTER = '''# mailwarden lab Postfix master.cf (generated); every service chroot n
127.0.0.1:%(port)d inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
'''


PERMISSIONS_NOTE = """\
Store permissions (SQLite, WAL mode), verified with Dovecot 2.3.19: Dovecot 2.3 runs
auth-worker as root unless `service auth-worker { user = $default_internal_user }` says
otherwise; with that setting it runs as `dovecot` and needs:
  install -d -o root -g dovecot -m 2770 /var/lib/mailwarden   (setgid, group-writable)
  the database file group dovecot, at least 0640 (0660 if a non-root writer shares the group)
The directory must be group-writable: a reader creates the -wal/-shm files there when they
are missing (otherwise "Password query failed: attempt to write a readonly database").
Postfix never opens the store: it asks Dovecot whether a local recipient exists
(reject_unverified_recipient probes over LMTP), so the store's access rules live in one
place and work unchanged with the PostgreSQL backend.
"""


def comment_block(text):
    """comment_block - TEXT with '# ' before every line."""
    return ''.join('# %s\n' % l if l else '#\n' for l in text.rstrip('\n').split('\n'))


MILTER_NOTE = """\
mailwarden-milter (see mailwarden-milter(8)): smtpd_milters sends every SMTP session to it,
non_smtpd_milters also local submissions (sendmail(1)), so forged X-Mailwarden-* headers
are removed from those too. milter_default_action = tempfail: while the milter is down
Postfix answers 4xx and nothing passes unchecked. The milter asks for the macros it needs
itself; milter_mail_macros is the fallback for an MTA that cannot. Its socket is
[milter] socket = unix:/var/spool/postfix/mailwarden/milter.sock (the default): 0660 group
postfix in a root-owned directory (created 0750 root:postfix when missing) inside Postfix's
queue directory. The path below is relative to the queue directory, so it works with
Debian's chrooted smtpd and without a chroot alike. Whoever can connect to the milter can
claim any SMTP AUTH login and get mail DKIM-signed: never give it an inet socket other local
users reach (the milter refuses one unless [milter] allow_inet = yes).
"""


POLICYD_NOTE = """\
mailwarden-policyd (see mailwarden-policyd(8)): check_policy_service in
smtpd_recipient_restrictions asks it at RCPT (check only: a sender over a limit gets
DEFER_IF_PERMIT 4.7.1, or 550 5.7.1 for a reject limit), and in smtpd_end_of_data_restrictions
at END-OF-MESSAGE, where recipient_count and size are known and the counters are charged.
Use the same service in both places. Its socket is [policyd] socket =
unix:/var/spool/postfix/mailwarden/policyd.sock (the default, 0660 group postfix, next to
the milter's); the path below is relative to the queue directory (chrooted or not). Whoever
can connect can spend any user's quota: an inet socket needs [policyd] allow_inet = yes and
inet_peers, and 127.0.0.1 there admits every local user.
smtpd_policy_service_default_action (shown with Postfix's default) is what Postfix answers
when the daemon cannot be reached: keep it a 4xx so no mail passes unlimited.
smtpd_policy_service_timeout (default 100s) bounds one request; the daemon answers in well
under a millisecond and never blocks on Redis past counters_timeout_ms.
policy_time_limit is NOT needed: it only applies to policy servers that master.cf starts
through spawn(8); mailwarden-policyd runs as its own daemon.
"""


POSTFIX_HOST_NOTE = """\
On an existing host (Debian's main.cf): add these lines with `postconf -e` (or let
`mailwardenctl setup postfix --apply` do it, keeping a backup), in two steps:
1. SMTP AUTH through Dovecot and delivery over LMTP (the first block). AUTH is offered only
   over TLS (smtpd_tls_auth_only = yes; Debian's main.cf has a TLS certificate) and is meant
   for the submission port: enable it there in master.cf rather than on port 25 for all:
     submission inet n - y - - smtpd
       -o syslog_name=postfix/submission
       -o smtpd_tls_security_level=encrypt
       -o smtpd_sasl_auth_enable=yes
       -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
   (the main.cf line smtpd_sasl_auth_enable = yes below turns AUTH on for port 25 too; leave
   it out if only submission should take logins). permit_mynetworks stays first in
   smtpd_relay_restrictions as in Debian's default: local programs keep relaying.
2. The milter and policy daemon lines (the second block), only once mailwarden-milter and
   mailwarden-policyd run (systemctl start mailwarden-milter mailwarden-policyd;
   `mailwardenctl doctor` checks the sockets answer). Until they answer, Postfix refuses
   every message with a temporary error on purpose - milter_default_action = tempfail and
   smtpd_policy_service_default_action = 451 4.3.5: senders retry, nothing is lost and
   nothing passes unchecked. Use milter_default_action = accept only if unchecked mail is
   better than delayed mail for you.
"""

POSTFIX_DAEMON_KEYS = ('smtpd_recipient_restrictions', 'smtpd_end_of_data_restrictions',
                       'smtpd_policy_service_default_action', 'smtpd_milters',
                       'non_smtpd_milters', 'milter_default_action', 'milter_protocol',
                       'milter_mail_macros')


def postfix_sample_settings():
    """postfix_sample_settings - (auth block, daemon block): the lab's settings as an
    existing Debian host takes them (AUTH only over TLS, permit_mynetworks kept)."""
    s = postfix_mailwarden_settings('private/auth', DOMAIN, 'lmtp:unix:private/dovecot-lmtp',
                                    policy_services=['unix:mailwarden/policyd.sock'],
                                    milters=['unix:mailwarden/milter.sock'])
    s['smtpd_relay_restrictions'] = 'permit_mynetworks, ' + s['smtpd_relay_restrictions']
    auth = {}
    for k, v in s.items():
        if k not in POSTFIX_DAEMON_KEYS:
            auth[k] = v
        if k == 'smtpd_sasl_auth_enable':
            auth['smtpd_tls_auth_only'] = 'yes'
    # the recipient check without the policy service belongs to step 1
    auth['smtpd_recipient_restrictions'] = s['smtpd_recipient_restrictions'].split(
        ', check_policy_service')[0]
    daemons = dict((k, s[k]) for k in POSTFIX_DAEMON_KEYS)
    return auth, daemons


def render_postfix_sample():
    """render_postfix_sample - conf.d/postfix-main.cf.sample (same settings as the lab)."""
    auth, daemons = postfix_sample_settings()
    out = ['# mailwarden: main.cf lines for a Postfix that hands out SMTP AUTH via Dovecot.\n',
           '# Generated by `scripts/mailwarden_lab.py samples conf.d` from the settings the\n',
           '# integration lab uses (tests/integration/test_samples.py checks they agree).\n',
           '# Replace example.org with your domain(s). With Debian\'s chrooted smtpd the\n',
           '# SASL and LMTP sockets are under /var/spool/postfix/private (see the Dovecot\n',
           '# sample, conf.d/dovecot-mailwarden.conf.sample).\n#\n',
           comment_block(POSTFIX_HOST_NOTE), '\n',
           comment_block(PERMISSIONS_NOTE), '\n', comment_block(MILTER_NOTE), '\n',
           comment_block(POLICYD_NOTE), '\n',
           '# --- step 1: SMTP AUTH through Dovecot, delivery over LMTP ---\n']
    for k, v in auth.items():
        out.append('%s = %s\n' % (k, v))
    out.append('\n# --- step 2: once mailwarden-milter and mailwarden-policyd run ---\n')
    for k, v in daemons.items():
        out.append('%s = %s\n' % (k, v))
    return ''.join(out)


def render_dovecot_sample():
    """render_dovecot_sample - conf.d/dovecot-mailwarden.conf.sample (same as the lab); the
	sql files it names are conf.d/dovecot-sql-mailwarden*.conf.ext, shown as they are."""
    paths = dict((k, '/etc/dovecot/' + v) for k, v in DOVECOT_SQL_FILES.items())
    return ('# mailwarden: Dovecot settings (e.g. /etc/dovecot/conf.d/90-mailwarden.conf).\n'
        '# Generated by `scripts/mailwarden_lab.py samples conf.d` from the settings the\n'
        '# integration lab uses (tests/integration/test_samples.py checks they agree).\n'
        '# Install conf.d/dovecot-sql-mailwarden*.conf.ext as shown below.\n#\n'
        + comment_block(DOVECOT_HOST_NOTE) + '\n'
        + comment_block(PERMISSIONS_NOTE) + '\n'
        + comment_block(SERVICES_NOTE) + '\n'
        + render_dovecot_auth(paths['main'], paths['apppw'], paths['userdb'],
                              'uid=vmail gid=vmail home=/var/vmail/%Lu')
        + 'service auth {\n  unix_listener /var/spool/postfix/private/auth {\n'
        '    mode = 0660\n    user = postfix\n    group = postfix\n  }\n}\n'
        'service lmtp {\n  unix_listener /var/spool/postfix/private/dovecot-lmtp {\n'
        '    mode = 0600\n    user = postfix\n    group = postfix\n  }\n}\n'
        'protocol lmtp {\n  postmaster_address = postmaster@%s\n}\n\n' % DOMAIN
        + ''.join('# %s (root:dovecot 0640) is conf.d/%s:\n' % (paths[k], DOVECOT_SQL_FILES[k])
                  + comment_block(render_dovecot_sql_file(k)) + '\n'
                  for k in ('main', 'apppw', 'userdb'))
        + comment_block(AUTH_POLICY_NOTE + render_dovecot_auth_policy(
            'http://127.0.0.1' + AUTH_POLICY_PATH, 'SECRET', 'RANDOM-STRING'))
        + render_plugin_sample())


DOVECOT_HOST_NOTE = """\
On stock Debian, conf.d/10-auth.conf includes auth-system.conf.ext: a PAM passdb (every
system account logs in with its Unix password, around the store) and the passwd userdb,
the only userdb there is. For the store to decide who logs in, comment out that include;
then the userdb below is the only one, and it needs what the passwd userdb gave:
  - a mail user: every store user's mail is owned by vmail (uid/gid in default_fields),
    whose uid must be at least first_valid_uid (500 by default):
      adduser --system --group --uid 5000 --home /var/vmail --no-create-home vmail
      install -d -o vmail -g vmail -m 0750 /var/vmail
  - where mail lives (conf.d/10-mail.conf, instead of Debian's mbox in /var/mail):
      mail_location = maildir:~/Maildir
To keep system accounts' mail as well, leave auth-system.conf.ext in place and put these
passdb/userdb blocks before it instead (a store user is then found first); PAM logins stay
possible for system accounts, so do this only where those accounts are trusted.
`mailwardenctl setup dovecot` prints these lines for this host.
"""


SERVICES_NOTE = """\
A credential means the same for every service name Dovecot passes (%s): imap, pop3, sieve
and managesieve (ManageSieve can install redirect scripts, so it counts as mail access) are
imap; smtp (Postfix SASL) and submission are smtp; lmtp, doveadm, imap-urlauth and any name
added later get no password login at all. `doveadm auth test` uses service doveadm: test
with -x service=imap (or smtp). A user with confirmed TOTP logs in to mail with app
passwords only. Delivery and doveadm user lookups read the userdb, which has no password.
"""


AUTH_POLICY_NOTE = """\
App passwords' last use and last IP (optional): Dovecot reports every authentication to
mailwarden-api through its auth policy hook. Set [api] auth_policy_secret in mailwarden.conf
to a random string (openssl rand -hex 24), use the same as SECRET below, RANDOM-STRING is any
other random string, and point the URL at the nginx that serves the API. Keep the secret out
of world-readable files (e.g. put these lines in a root:dovecot 0640 file and !include it).
The hook only reports (nothing is checked before or after authentication): logins never
wait for the API and succeed while it is down. Dovecot has one policy server: this replaces
any other auth_policy_server_url.
"""


SAMPLES = {
    'postfix-main.cf.sample': render_postfix_sample,
    'dovecot-mailwarden.conf.sample': render_dovecot_sample,
}


# ---------------------------------------------------------------------------------------------
# mailwarden-milter

class Milter(Service):
    """Milter - mailwarden-milter (build dir) in the foreground on a unix or inet socket.

	Runs as USER (default dovecot: in the lab the store's group is dovecot, and the milter
	must read the store; a real install uses its own account in the store's group). The
	unix socket is group postfix, mode 0660, so Postfix's smtpd reaches it. postfix_spec is
	what goes into Postfix(milters=[...]); miltertest_spec what miltertest -D socket= wants.
	CONFIG: extra lines for the [milter] section. sanitizer_report() returns the ASan/UBSan
	lines of the log (tests assert it is empty). WRAP, START_TIMEOUT: see Service."""
    name = 'milter'

    def __init__(self, root, store, builddir=None, socket='unix', user='dovecot',
             cache_ttl='5s', config='', autostop=True, wrap=(), start_timeout=20):
        super().__init__(root, autostop, wrap, start_timeout)
        self.store = store
        self.builddir = os.path.abspath(builddir or store.builddir)
        self.binary = os.path.join(self.builddir, 'milter', 'mailwarden-milter')
        self.user = user
        self.cache_ttl = cache_ttl
        self.extra = config
        self.config = os.path.join(self.dir, 'milter.conf')
        self.log_path = os.path.join(self.dir, 'milter.log')
        self.pidfile = os.path.join(self.dir, 'milter.pid')
        self.proc = None
        if socket == 'inet':
            self.port = free_port()
            self.socket = 'inet:%d@127.0.0.1' % self.port
            self.postfix_spec = 'inet:127.0.0.1:%d' % self.port
        else:
            self.port = None
            self.sock_path = os.path.join(self.dir, 'milter.sock')
            self.socket = 'unix:' + self.sock_path
            self.postfix_spec = self.socket
        self.miltertest_spec = self.socket

    def log_files(self):
        return [self.log_path]

    def render_config(self, extra=None):
        """render_config - milter.conf: the store's keys, the account, the [milter] section."""
        return ('# mailwarden lab milter (generated by scripts/mailwarden_lab.py)\n'
            'store = %s\nmaster_key = %s\nlog = stderr\nlog_level = debug\nuser = %s\n'
            '[milter]\nsocket = %s\nsocket_group = postfix\nsocket_mode = 0660\n%s'
            'cache_ttl = %s\nauthserv_id = mail.%s\nshutdown_timeout = 10s\n%s\n'
            % (self.store.url, self.store.master_key, self.user, self.socket,
               # the lab's inet milter says so explicitly (the milter refuses it otherwise)
               'allow_inet = yes\n' if self.port is not None else '', self.cache_ttl,
               DOMAIN, self.extra if extra is None else extra))

    def write_config(self, extra=None):
        """write_config - (re)write milter.conf; EXTRA replaces the extra [milter] lines."""
        write_file(self.config, self.render_config(extra), 0o644)

    def ready(self):
        """ready - the socket accepts connections."""
        if self.port is not None:
            return port_open(self.port)
        return unix_socket_open(self.sock_path)

    def _start(self):
        if not os.access(self.binary, os.X_OK):
            raise LabError('%s missing: build the project (make) in %s'
                       % (self.binary, self.builddir))
        if not os.path.exists(self.config):
            self.write_config()
        log = open(self.log_path, 'a')
        env = dict(os.environ)
        env.setdefault('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=0')
        env.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1')
        self.proc = subprocess.Popen(
            self.wrap + [self.binary, '-f', '-c', self.config, '-p', self.pidfile],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)
        log.close()
        wait_started(self.proc, self.ready, self.start_timeout,
                     'mailwarden-milter on %s' % self.socket, 'mailwarden-milter')

    def signal(self, sig):
        """signal - send SIG to the daemon."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=30):
        """wait_exit - wait for the daemon to exit; its status."""
        return self.proc.wait(timeout)

    def kill(self):
        """kill - SIGKILL (a crash); start() brings it back on the same socket."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.stop()

    def _stop(self):
        if self.proc is not None:
            stop_process(self.proc, 20)
            return
        # started by another process (quickstart): by its pid file
        stop_by_pidfile(self.pidfile, 'mailwarden-milter', timeout=20)

    def alive(self):
        if self.proc is not None:
            return self.proc.poll() is None and self.ready()
        pid = read_pidfile(self.pidfile)
        return pid is not None and pid_alive(pid) and self.ready()

    def sanitizer_report(self):
        """sanitizer_report - AddressSanitizer / UBSan lines in the log ('' when none)."""
        try:
            with open(self.log_path, errors='replace') as f:
                text = f.read()
        except OSError:
            return ''
        return ''.join(l for l in text.splitlines(True)
                       if 'AddressSanitizer' in l or 'LeakSanitizer' in l
                       or 'runtime error:' in l)


# ---------------------------------------------------------------------------------------------
# clamd

class Clamd(Service):
    """Clamd - Debian's clamd (package clamav-daemon) in the foreground on a unix socket in
	the lab directory, reading SIGNATURES (a directory the test writes its own signatures
	to: nothing is downloaded). The socket is mode 0666 inside the lab so the milter's
	account can reach it; AlertExceedsMax makes scan limits an answer, not a silent OK."""
    name = 'clamd'

    def __init__(self, root, signatures, autostop=True):
        super().__init__(root, autostop)
        self.signatures = signatures
        self.sock_path = os.path.join(self.dir, 'clamd.sock')
        self.socket = 'unix:' + self.sock_path
        self.config = os.path.join(self.dir, 'clamd.conf')
        self.log_path = os.path.join(self.dir, 'clamd.log')
        self.proc = None

    def log_files(self):
        return [self.log_path]

    def ready(self):
        """ready - clamd answers PING."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(2)
            s.connect(self.sock_path)
            s.sendall(b'zPING\0')
            return s.recv(16).startswith(b'PONG')
        except OSError:
            return False
        finally:
            s.close()

    def _start(self):
        clamd = find_binary('clamd', 'clamav-daemon', extra_dirs=('/usr/sbin',))
        tmp = os.path.join(self.dir, 'tmp')
        os.makedirs(tmp, exist_ok=True)
        write_file(self.config, 'Foreground yes\nLocalSocket %s\nLocalSocketMode 666\n'
                   'DatabaseDirectory %s\nTemporaryDirectory %s\nLogFile %s\nLogTime yes\n'
                   'PidFile %s\nSelfCheck 0\nAlertExceedsMax yes\nStreamMaxLength 25M\n'
                   'MaxThreads 4\n' % (self.sock_path, self.signatures, tmp, self.log_path,
                                        os.path.join(self.dir, 'clamd.pid')))
        log = open(os.path.join(self.dir, 'clamd.out'), 'a')
        self.proc = subprocess.Popen([clamd, '--config-file=' + self.config],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        wait_started(self.proc, self.ready, 30, 'clamd on %s' % self.sock_path, 'clamd',
                     self.log_path)

    def _stop(self):
        stop_process(self.proc, 15)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Spamd(Service):
    """Spamd - Debian's spamd (package spamd) in the foreground on a loopback port and a unix
	socket in the lab directory, with its own site config directory (a copy of the
	system's *.pre plugin lists and a local.cf of LOCAL_CF: the test's rules). No network
	tests (-L), no Bayes, no per-user config (-x); children run as nobody. kill() is a crash
	(SIGKILL to the whole process group); start() brings it back on the same port."""
    name = 'spamd'

    BASE_CF = ('use_bayes 0\nbayes_auto_learn 0\nskip_rbl_checks 1\ndns_available no\n'
               'use_razor2 0\nuse_pyzor 0\n')

    def __init__(self, root, local_cf='', children=2, autostop=True):
        super().__init__(root, autostop)
        self.local_cf = local_cf
        self.children = children
        self.port = free_port()
        self.sock_path = os.path.join(self.dir, 'spamd.sock')
        self.backend = 'spamd:127.0.0.1:%d' % self.port  # [spam] spam_backend
        self.unix_backend = 'spamd:unix:' + self.sock_path
        self.site = os.path.join(self.dir, 'site')
        self.log_path = os.path.join(self.dir, 'spamd.log')
        self.proc = None

    def log_files(self):
        return [self.log_path]

    def ready(self):
        """ready - spamd answers PING on its port."""
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=2) as s:
                s.sendall(b'PING SPAMC/1.5\r\n\r\n')
                return b'PONG' in s.recv(64)
        except OSError:
            return False

    def _start(self):
        spamd = find_binary('spamd', 'spamd', extra_dirs=('/usr/sbin',))
        os.makedirs(self.site, exist_ok=True)
        os.chmod(self.site, 0o755)
        for pre in glob.glob('/etc/spamassassin/*.pre'):
            shutil.copy(pre, self.site)
        write_file(os.path.join(self.site, 'local.cf'), self.BASE_CF + self.local_cf)
        if os.path.exists(self.sock_path):  # left by a killed spamd
            os.unlink(self.sock_path)
        home = os.path.join(self.dir, 'home')
        os.makedirs(home, exist_ok=True)
        os.chmod(home, 0o777)
        log = open(self.log_path, 'a')
        self.proc = subprocess.Popen(
            [spamd, '-x', '-L', '--siteconfigpath=' + self.site, '--syslog=stderr',
             '--listen=127.0.0.1:%d' % self.port, '--listen=' + self.sock_path,
             '--socketmode=0666', '--max-children=%d' % self.children, '-u', 'nobody',
             '--helper-home-dir=' + home, '--pidfile=' + os.path.join(self.dir, 'spamd.pid')],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_started(self.proc, self.ready, 90, 'spamd on 127.0.0.1:%d' % self.port, 'spamd',
                     self.log_path)

    def kill(self):
        """kill - SIGKILL to spamd and its children (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.stop()

    def _stop(self):
        stop_process(self.proc, 20, kill=lambda: os.killpg(self.proc.pid, signal.SIGKILL))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


# ---------------------------------------------------------------------------------------------
# nginx

def nginx_sample_block(block_name, pattern, replacement, what, least, most=None):
    """nginx_sample_block - the block BLOCK_NAME (between "# BEGIN NAME" and "# END NAME")
    of conf.d/nginx-mailwarden.conf.sample, indented for a server block, with PATTERN
    replaced by REPLACEMENT; LabError unless it was replaced LEAST to MOST (None: any
    number) times (the block has no WHAT)."""
    with open(os.path.join(CONF_DIR, 'nginx-mailwarden.conf.sample')) as f:
        text = f.read()
    m = re.search(r'# BEGIN %s[^\n]*\n(.*?)# END %s' % (block_name, block_name), text, re.S)
    if not m:
        raise LabError('nginx sample: no %s block' % block_name)
    block, n = re.subn(pattern, replacement, m.group(1))
    if n < least or (most is not None and n > most):
        raise LabError('nginx sample: the %s block has no %s' % (block_name, what))
    return re.sub(r'(?m)^', '    ', block)


def web_page_block(web_dir):
    """web_page_block - conf.d/nginx-mailwarden.conf.sample's web-page location, its root
    set to WEB_DIR."""
    return nginx_sample_block('web-page', r'(?m)^    root [^;]*;', '    root %s;' % web_dir,
                              'root line', 1, 1)


def discovery_block(fastcgi_addr):
    """discovery_block - conf.d/nginx-mailwarden.conf.sample's MTA-STS and client autoconfig
    locations (issue 18), their fastcgi_pass set to FASTCGI_ADDR."""
    return nginx_sample_block('discovery', r'fastcgi_pass [^;]*;',
                              'fastcgi_pass %s;' % fastcgi_addr, 'fastcgi_pass lines', 3)


class Nginx(Service):
    """Nginx - own prefix and config on a loopback port, a static root, optional fastcgi_pass.

	FASTCGI: None, or (location, address) e.g. ('/api/', '127.0.0.1:9000' or 'unix:/path')."""
    name = 'nginx'

    def __init__(self, root, port=None, fastcgi=None, extra_server='', autostop=True, web=None):
        super().__init__(root, autostop)
        self.port = port or free_port()
        self.fastcgi = fastcgi
        self.extra_server = extra_server
        # WEB: a directory of the web page (web/) served under / with the headers of the
        # sample's "web-page" block, as written there (issue 15)
        if web:
            # a copy under the lab root: nginx's workers must read it, and the checkout may
            # be private to root (CI clones into a mode-0700 temporary directory)
            copy = os.path.join(self.dir, 'web')
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(web, copy)
            for d, _subdirs, files in os.walk(self.dir):
                os.chmod(d, 0o755)
                for fn in files:
                    os.chmod(os.path.join(d, fn), 0o644)
            self.extra_server = web_page_block(copy) + extra_server
        self.static_root = os.path.join(self.dir, 'html')
        self.config = os.path.join(self.dir, 'nginx.conf')
        self.pidfile = os.path.join(self.dir, 'nginx.pid')
        self.error_log = os.path.join(self.dir, 'error.log')
        self.access_log = os.path.join(self.dir, 'access.log')

    def log_files(self):
        return [self.error_log, self.access_log]

    def url(self, path='/'):
        """url - http://127.0.0.1:PORT/PATH."""
        return 'http://127.0.0.1:%d%s' % (self.port, path)

    def render_config(self):
        """render_config - the nginx.conf text."""
        fcgi = upstream = ''
        if self.fastcgi:
            loc, addr = self.fastcgi
            # as conf.d/nginx-mailwarden.conf.sample: FastCGI connections kept open between
            # requests (each API worker polls all the connections it holds), and not closed
            # after nginx's default 1000 requests each
            upstream = ('  upstream mailwarden_api {\n    server %s;\n    keepalive 8;\n'
                        '    keepalive_requests 1000000;\n  }\n' % addr)
            pass_ = '      fastcgi_keep_conn on;\n      fastcgi_pass mailwarden_api;\n'
            fcgi = ('    location %s {\n      include /etc/nginx/fastcgi_params;\n%s    }\n'
                    % (loc, pass_))
            # as conf.d/nginx-mailwarden.conf.sample: the internal routes (Dovecot's auth
            # policy hook) answer 127.0.0.1 and ::1 only
            fcgi += ('    location %sv1/internal/ {\n      allow 127.0.0.1;\n      allow ::1;\n'
                '      deny all;\n      include /etc/nginx/fastcgi_params;\n%s    }\n'
                % (loc, pass_))
        t = self.dir
        return ('# mailwarden lab nginx (generated)\n'
            'daemon on;\nworker_processes 1;\npid %s;\nerror_log %s info;\n'
            'events { worker_connections 64; }\n'
            'http {\n  access_log %s;\n  client_body_temp_path %s/tmp/body;\n'
            '  proxy_temp_path %s/tmp/proxy;\n  fastcgi_temp_path %s/tmp/fastcgi;\n'
            '  uwsgi_temp_path %s/tmp/uwsgi;\n  scgi_temp_path %s/tmp/scgi;\n'
            '  default_type application/octet-stream;\n%s'
            '  server {\n    listen 127.0.0.1:%d;\n    server_name localhost;\n'
            '    root %s;\n%s%s  }\n}\n'
            % (self.pidfile, self.error_log, self.access_log, t, t, t, t, t, upstream,
               self.port, self.static_root, fcgi, self.extra_server))

    def _start(self):
        nginx = find_binary('nginx', 'nginx')
        os.makedirs(os.path.join(self.dir, 'tmp'), exist_ok=True)
        os.makedirs(self.static_root, exist_ok=True)
        write_file(self.config, self.render_config())
        run([nginx, '-p', self.dir, '-c', self.config, '-e', self.error_log, '-t'])
        run([nginx, '-p', self.dir, '-c', self.config, '-e', self.error_log])
        wait_until(lambda: port_open(self.port), 15, 'nginx on port %d' % self.port)

    def _stop(self):
        stop_by_pidfile(self.pidfile, 'nginx', stop=signal.SIGQUIT)


# ---------------------------------------------------------------------------------------------
# mailwarden-api (issue 5): spawn-fcgi on a loopback port; reach it through Nginx(fastcgi=...)

class Api(Service):
    """Api - mailwarden-api under spawn-fcgi (-n: the pid is the API's) on 127.0.0.1:PORT.

	Its config is the store's plus an [api] section (API_CONFIG: dict or text). spawn-fcgi
	drops to nobody:dovecot before exec, so the API never runs as root; the store files are
	made group-writable for it (the store directory is already root:dovecot 2770). NAME lets
	two instances share a lab. fastcgi() is the (location, address) pair for Nginx.
	UNIX=True: spawn-fcgi -s on a unix socket instead (the deployment of
	conf.d/nginx-mailwarden.conf.sample; bench/api uses it), owned by nobody, nginx's worker
	user here; port is then None. WRAP (runs the API, not spawn-fcgi), START_TIMEOUT: see
	Service."""
    name = 'api'

    def __init__(self, root, store, port=None, api_config=None, name=None, run_as='nobody',
             autostop=True, unix=False, wrap=(), start_timeout=15):
        if name:
            self.name = name
        super().__init__(root, autostop, wrap, start_timeout)
        self.store = store
        self.unix = unix
        self.socket = os.path.join(self.dir, 'sock', 'api.sock') if unix else None
        self.port = None if unix else (port or free_port())
        self.api_config = api_config or {}
        self.run_as = run_as
        self.config = os.path.join(self.dir, 'api.conf')
        self.log_path = os.path.join(self.dir, 'api.log')
        self.proc = None

    @property
    def binary(self):
        """binary - the mailwarden-api in the build dir."""
        return os.path.join(self.store.builddir, 'webapi', 'mailwarden-api')

    def log_files(self):
        return [self.log_path]

    def fastcgi(self):
        """fastcgi - the Nginx fastcgi hook value for this instance."""
        if self.unix:
            return ('/api/', 'unix:' + self.socket)
        return ('/api/', '127.0.0.1:%d' % self.port)

    def render_config(self):
        """render_config - the store's mailwarden.conf plus [api]."""
        extra = self.api_config
        if isinstance(extra, dict):
            extra = ''.join('%s = %s\n' % kv for kv in sorted(extra.items()))
        # spawn-fcgi listens on loopback TCP here: the API refuses that unless told so
        if not self.unix and 'allow_inet' not in extra:
            extra = 'allow_inet = yes\ninet_peers = 127.0.0.1\n' + extra
        return self.store.render_config() + '\n[api]\n' + extra

    def sanitizer_report(self):
        """sanitizer_report - ASan/UBSan findings in the API log ('' when none)."""
        text = tail(self.log_path, 400)
        if 'AddressSanitizer' in text or 'runtime error:' in text or 'LeakSanitizer' in text:
            return text
        return ''

    def _start(self):
        spawn = find_binary('spawn-fcgi', 'spawn-fcgi')
        if not os.access(self.binary, os.X_OK):
            raise LabError('%s missing: build the project (make)' % self.binary)
        write_file(self.config, self.render_config(), 0o640)
        os.chown(self.config, 0, grp.getgrnam('dovecot').gr_gid)
        # the API encrypts TOTP seeds with the master key: it must own the 0600 file
        if os.path.exists(self.store.master_key):
            os.chown(self.store.master_key, pwd.getpwnam(self.run_as).pw_uid, -1)
        for path in self.store.db_files():
            os.chmod(path, (os.stat(path).st_mode & 0o7777) | 0o060)
        log = open(self.log_path, 'ab')
        env = dict(os.environ, ASAN_OPTIONS='detect_leaks=0:abort_on_error=0')
        if self.unix:
            os.makedirs(os.path.dirname(self.socket), mode=0o755, exist_ok=True)
            os.chmod(self.dir, os.stat(self.dir).st_mode | 0o111)
            where = ['-s', self.socket, '-M', '0600', '-U', 'nobody']
        else:
            where = ['-a', '127.0.0.1', '-p', str(self.port)]
        self.proc = subprocess.Popen(
            [spawn, '-n'] + where + ['-u', self.run_as,
             '-g', 'dovecot', '--'] + self.wrap + [self.binary, '-f', '-c', self.config],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        log.close()
        wait_started(self.proc, self._listening, self.start_timeout,
                     'mailwarden-api on %s' % (self.socket or 'port %d' % self.port),
                     'mailwarden-api')

    def _stop(self):
        stop_process(self.proc)

    def _listening(self):
        """_listening - the socket accepts connections."""
        if not self.unix:
            return port_open(self.port)
        return unix_socket_open(self.socket)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None and self._listening()


# ---------------------------------------------------------------------------------------------
# mailwarden-policyd

class Policyd(Service):
    """Policyd - mailwarden-policyd in the foreground on an inet port, its own config file
	(the store's settings plus [policyd]), control socket in its directory; runs as the
	store group's user (dovecot) so it can read the SQLite store. LIMITS: `limit` values;
	EXTRA: more [policyd] lines. Postfix gets it with policy_services=[p.service].
	WRAP, START_TIMEOUT: see Service."""
    name = 'policyd'

    def __init__(self, root, store, limits=(), extra='', port=None, user='dovecot',
             counters='memory', autostop=True, name=None, socket='inet',
             inet_peers='127.0.0.1', wrap=(), start_timeout=15):
        if name:
            self.name = name
        super().__init__(root, autostop, wrap, start_timeout)
        self.store = store
        self.port = port or free_port()
        self.limits = list(limits)
        self.extra = extra
        self.user = user
        self.counters = counters
        self.config = os.path.join(self.dir, 'policyd.conf')
        self.control = os.path.join(self.dir, 'control.sock')
        self.pidfile = os.path.join(self.dir, 'policyd.pid')
        # SOCKET: 'inet' (loopback port, allowed explicitly: allow_inet + inet_peers) or
        # 'unix' (self.sock_path, 0660 group postfix: what a real install uses)
        self.sock_path = os.path.join(self.dir, 'policyd.sock') if socket == 'unix' else None
        self.inet_peers = inet_peers
        self.log_path = os.path.join(self.dir, 'policyd.log')
        self.proc = None

    @property
    def binary(self):
        return os.path.join(self.store.builddir, 'policy-daemon', 'mailwarden-policyd')

    @property
    def service(self):
        """service - the check_policy_service target for Postfix."""
        if self.sock_path is not None:
            return 'unix:' + self.sock_path
        return 'inet:127.0.0.1:%d' % self.port

    def socket_spec(self):
        """socket_spec - the [policyd] socket lines of the config."""
        if self.sock_path is not None:
            return 'socket = unix:%s\nsocket_group = postfix\nsocket_mode = 0660\n' % (
                self.sock_path)
        return ('socket = inet:%d@127.0.0.1\nallow_inet = yes\ninet_peers = %s\n'
                % (self.port, self.inet_peers))

    def ready(self):
        """ready - the policy socket accepts connections."""
        if self.sock_path is None:
            return port_open(self.port)
        return unix_socket_open(self.sock_path)

    def log_files(self):
        return [self.log_path]

    def render_config(self):
        """render_config - the daemon's config text."""
        return ('# mailwarden lab policyd (generated by scripts/mailwarden_lab.py)\n'
            'store = %s\nmaster_key = %s\nlog = stderr\nlog_level = debug\nuser = %s\n\n'
            '[policyd]\n%scontrol_socket = %s\n'
            'counters = %s\n%s%s\n'
            % (self.store.url, self.store.master_key, self.user, self.socket_spec(), self.control,
               self.counters, ''.join('limit = %s\n' % l for l in self.limits),
               self.extra))

    def ctl(self, *args, check=True):
        """ctl - mailwardenctl with this daemon's config (control socket, store)."""
        p = subprocess.run([self.store.ctl_path, '-c', self.config] + list(args),
                   capture_output=True, text=True, timeout=60)
        if check is not False and p.returncode != (0 if check is True else check):
            raise LabError('mailwardenctl %s: exit %d\n%s%s' % (' '.join(args), p.returncode,
                                        p.stdout, p.stderr))
        return p

    def reload(self, limits=None, extra=None):
        """reload - rewrite the config (new LIMITS/EXTRA) and send SIGHUP; waits for the log."""
        if limits is not None:
            self.limits = list(limits)
        if extra is not None:
            self.extra = extra
        write_file(self.config, self.render_config(), 0o644)
        before = self.log_text().count('policyd: reloaded')
        self.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.log_text().count('policyd: reloaded') > before, 10,
               'policyd reload')

    def log_text(self):
        """log_text - the whole log."""
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def sanitizer_errors(self):
        """sanitizer_errors - ASan/UBSan reports in the log ('' when none)."""
        return '\n'.join(l for l in self.log_text().splitlines()
                  if 'AddressSanitizer' in l or 'runtime error:' in l
                  or 'LeakSanitizer' in l)

    def _start(self):
        if not os.access(self.binary, os.X_OK):
            raise LabError('%s missing: build the project' % self.binary)
        # readable by the daemon after it dropped privileges (SIGHUP re-reads it)
        write_file(self.config, self.render_config(), 0o644)
        log = open(self.log_path, 'a')
        self.proc = subprocess.Popen(
            self.wrap + [self.binary, '-f', '-c', self.config, '-p', self.pidfile],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_started(self.proc, self.ready, self.start_timeout, 'policyd on %s' % self.service,
                     'policyd')

    def _stop(self):
        if self.proc is None:  # started by an earlier process (quickstart): the pid file
            stop_by_pidfile(self.pidfile, 'policyd')
            return
        stop_process(self.proc)

    def alive(self):
        if self.proc is None:
            pid = read_pidfile(self.pidfile)
            return pid is not None and pid_alive(pid) and self.ready()
        return self.proc.poll() is None and self.ready()


# ---------------------------------------------------------------------------------------------
# Redis

class Redis(Service):
    """Redis - redis-server on a loopback port, no persistence (daemonised)."""
    name = 'redis'

    def __init__(self, root, port=None, autostop=True):
        super().__init__(root, autostop)
        self.port = port or free_port()
        self.pidfile = os.path.join(self.dir, 'redis.pid')
        self.log_path = os.path.join(self.dir, 'redis.log')
        self.config = os.path.join(self.dir, 'redis.conf')
        self.url = 'redis://127.0.0.1:%d/0' % self.port

    def log_files(self):
        return [self.log_path]

    def _start(self):
        redis = find_binary('redis-server', 'redis-server')
        write_file(self.config, 'bind 127.0.0.1\nport %d\nprotected-mode yes\n'
               'daemonize yes\npidfile %s\nlogfile %s\ndir %s\nsave ""\nappendonly no\n'
               % (self.port, self.pidfile, self.log_path, self.dir))
        run([redis, self.config])
        wait_until(lambda: port_open(self.port), 15, 'redis on port %d' % self.port)

    def _stop(self):
        stop_by_pidfile(self.pidfile, 'redis')

    def kill(self):
        """kill - SIGKILL the server (a crash: no clean close); start() brings it back on
        the same port, empty."""
        pid = read_pidfile(self.pidfile)
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not pid_alive(pid), 10, 'redis to die')
        self.stop()

    def pause(self, paused=True):
        """pause - SIGSTOP (paused) or SIGCONT the server: connections hang, nothing closes."""
        pid = read_pidfile(self.pidfile)
        if pid is None or not pid_alive(pid):
            raise LabError('redis is not running')
        os.kill(pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def cli(self, *args):
        """cli - run redis-cli ARGS against this server; returns stdout."""
        redis_cli = find_binary('redis-cli', 'redis-tools')
        return run([redis_cli, '-h', '127.0.0.1', '-p', str(self.port)] + list(args)).stdout


# ---------------------------------------------------------------------------------------------
# PostgreSQL

class PostgreSQL(Service):
    """PostgreSQL - initdb (as postgres) into the lab dir, pg_ctl start on a free port with
	its socket in the lab dir, createdb DBNAME."""
    name = 'postgresql'

    def __init__(self, root, port=None, dbname='mailwarden', autostop=True):
        super().__init__(root, autostop)
        self.port = port or free_port()
        self.dbname = dbname
        self.data = os.path.join(self.dir, 'data')
        self.socket_dir = os.path.join(self.dir, 'socket')
        self.log_path = os.path.join(self.dir, 'postgresql.log')
        self.user = 'postgres'
        self.url = 'postgresql://%s@/%s?host=%s&port=%d' % (self.user, dbname, self.socket_dir,
                                      self.port)

    def log_files(self):
        return [self.log_path]

    def as_postgres(self, *cmd, check=True):
        """as_postgres - run CMD as the postgres user (runuser)."""
        return run([find_binary('runuser', 'util-linux'), '-u', self.user, '--'] + list(cmd),
               check=check, timeout=120)

    def psql(self, sql, dbname=None):
        """psql - run SQL through psql over the socket; returns stdout (unaligned, tuples)."""
        psql = find_binary('psql', 'postgresql-client')
        p = self.as_postgres(psql, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
                     '-h', self.socket_dir, '-p', str(self.port),
                     '-d', dbname or self.dbname, '-c', sql)
        return p.stdout

    def _start(self):
        initdb = find_binary('initdb', 'postgresql')
        pg_ctl = find_binary('pg_ctl', 'postgresql')
        createdb = find_binary('createdb', 'postgresql-client')
        pw = pwd.getpwnam(self.user)
        for d in (self.dir, self.socket_dir):
            os.makedirs(d, exist_ok=True)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)
        open(self.log_path, 'a').close()
        os.chown(self.log_path, pw.pw_uid, pw.pw_gid)
        if not os.path.exists(os.path.join(self.data, 'PG_VERSION')):
            self.as_postgres(initdb, '-D', self.data, '-A', 'trust', '-U', self.user,
                     '--no-sync', '-E', 'UTF8', '--locale=C')
        opts = ("-p %d -k %s -c listen_addresses='' -c fsync=off -c full_page_writes=off"
            % (self.port, self.socket_dir))
        self.as_postgres(pg_ctl, '-D', self.data, '-l', self.log_path, '-o', opts, '-w',
                 '-t', '60', 'start')
        self.as_postgres(createdb, '-h', self.socket_dir, '-p', str(self.port), self.dbname)

    def pg_ctl(self, *args):
        """pg_ctl - run pg_ctl ARGS on this instance's data directory (as postgres)."""
        return self.as_postgres(find_binary('pg_ctl', 'postgresql'), '-D', self.data, *args)

    def halt(self):
        """halt - stop the server (fast shutdown: clients are disconnected), keep its data."""
        self.pg_ctl('-m', 'fast', '-w', '-t', '30', 'stop')

    def resume(self):
        """resume - start a halted server again, same port and socket."""
        opts = ("-p %d -k %s -c listen_addresses='' -c fsync=off -c full_page_writes=off"
                % (self.port, self.socket_dir))
        self.pg_ctl('-l', self.log_path, '-o', opts, '-w', '-t', '60', 'start')

    def _stop(self):
        if not os.path.exists(os.path.join(self.data, 'postmaster.pid')):
            return
        pg_ctl = find_binary('pg_ctl', 'postgresql')
        self.as_postgres(pg_ctl, '-D', self.data, '-m', 'fast', '-w', '-t', '30', 'stop',
                 check=False)


# ---------------------------------------------------------------------------------------------
# DNS (authoritative test zones)

def zone_txt(text):
    """zone_txt - TEXT as zone-file TXT rdata: quoted character-strings of at most 255 bytes."""
    data = text.encode()
    parts = [data[i:i + 255] for i in range(0, len(data), 255)] or [b'']
    out = []
    for part in parts:
        out.append('"%s"' % part.decode('latin-1').replace('\\', '\\\\').replace('"', '\\"'))
    return ' '.join(out)


class DNSServer(Service):
    """DNSServer - NSD serving the zones the tests write, on 127.0.0.1:PORT (UDP and TCP).

	zones: {'example.com': [(owner, type, rdata), ...]}; owner is relative to the zone
	('@', '_dmarc', 'sel._domainkey'), rdata in zone-file form except for TXT, which is
	the plain text (split into 255-byte strings here). set_zone() rewrites one zone,
	reload() makes NSD read the zone files again. server is the "127.0.0.1@PORT" form that
	mailwarden's dns_servers key and libunbound take. NSD runs in the foreground as a child
	of the test process (no privilege drop: it only reads the lab directory)."""
    name = 'dns'

    def __init__(self, root, zones=None, port=None, autostop=True):
        super().__init__(root, autostop)
        self.port = port or free_port()
        self.zones = dict(zones or {})
        self.config = os.path.join(self.dir, 'nsd.conf')
        self.log_path = os.path.join(self.dir, 'nsd.log')
        self.pidfile = os.path.join(self.dir, 'nsd.pid')
        self.server = '127.0.0.1@%d' % self.port
        self.proc = None
        self.serial = 1

    def log_files(self):
        return [self.log_path]

    def _zone_text(self, domain, records):
        base = '' if domain == '.' else domain + '.'  # '.': the root zone
        lines = ['$ORIGIN %s' % (base or '.'), '$TTL 60',
                 '@ IN SOA ns.%s hostmaster.%s %d 3600 600 86400 60' % (base, base,
                                                                         self.serial),
                 '@ IN NS ns.%s' % base, 'ns IN A 127.0.0.1']
        for rec in records:
            # (owner, type, rdata) or (owner, type, rdata, ttl seconds)
            owner, rtype, rdata = rec[:3]
            ttl = ' %d' % rec[3] if len(rec) > 3 else ''
            if rtype.upper() == 'TXT':
                rdata = zone_txt(rdata)
            lines.append('%s%s IN %s %s' % (owner, ttl, rtype.upper(), rdata))
        return '\n'.join(lines) + '\n'

    def _write(self):
        self.serial += 1
        conf = ['server:', '  ip-address: 127.0.0.1@%d' % self.port, '  port: %d' % self.port,
                '  do-ip6: no', '  username: ""', '  chroot: ""', '  database: ""',
                '  zonesdir: "%s"' % self.dir, '  pidfile: "%s"' % self.pidfile,
                '  logfile: "%s"' % self.log_path,
                '  xfrdfile: "%s"' % os.path.join(self.dir, 'xfrd.state'),
                '  zonelistfile: "%s"' % os.path.join(self.dir, 'zone.list'),
                '  xfrdir: "%s"' % self.dir, '  server-count: 1', '  verbosity: 1',
                '  hide-version: yes', 'remote-control:', '  control-enable: no']
        # every top-level label of a zone is served too (empty unless a test gives it
        # records): a DMARC tree walk (RFC 9989) asks _dmarc.TLD, and a name NSD is not
        # authoritative for is REFUSED, which a resolver reports as a temporary failure
        zones = dict(self.zones)
        for domain in self.zones:
            if domain != '.':
                zones.setdefault(domain.rsplit('.', 1)[-1], [])
        for domain, records in sorted(zones.items()):
            path = os.path.join(self.dir, '%s.zone' % (domain if domain != '.' else 'root'))
            write_file(path, self._zone_text(domain, records))
            conf += ['zone:', '  name: "%s"' % domain, '  zonefile: "%s"' % path]
        write_file(self.config, '\n'.join(conf) + '\n')
        run([find_binary('nsd-checkconf', 'nsd'), self.config])
        for domain in zones:
            run([find_binary('nsd-checkzone', 'nsd'), domain,
                 os.path.join(self.dir, '%s.zone' % (domain if domain != '.' else 'root'))])

    def set_zone(self, domain, records):
        """set_zone - replace (or add) DOMAIN's records; call reload() to serve them."""
        self.zones[domain] = list(records)

    def reload(self):
        """reload - write the zones and restart NSD on the same port (a new zone needs a
	restart; NSD answers again within a fraction of a second)."""
        self._stop()
        self._start()

    def _start(self):
        nsd = find_binary('nsd', 'nsd')
        self._write()
        log = open(self.log_path, 'a')
        try:
            self.proc = subprocess.Popen([nsd, '-d', '-c', self.config], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        def ready():
            if not self.zones:
                return port_open(self.port)
            # NSD listens before it has loaded the zones: ready means it answers for one
            return udp_soa_answers(self.port, sorted(self.zones)[0])
        wait_started(self.proc, ready, 15, 'nsd on port %d' % self.port, 'nsd')

    def _stop(self):
        stop_process(self.proc)
        self.proc = None


# ---------------------------------------------------------------------------------------------
# the whole lab

class Lab:
    """Lab - a lab directory and the services started in it; stop() stops them in reverse
	order and removes the directory (unless KEEP or MW_LAB_KEEP=1 or it was given)."""

    def __init__(self, builddir=None, root=None, keep=None, autostop=True):
        self.builddir = os.path.abspath(builddir or DEFAULT_BUILDDIR)
        self.own_root = root is None
        self.root = make_root() if root is None else os.path.abspath(root)
        if root is not None:
            os.makedirs(self.root, exist_ok=True)
            os.chmod(self.root, 0o755)
        self.keep = keep if keep is not None else os.environ.get('MW_LAB_KEEP') == '1'
        self.autostop = autostop
        self.services = []
        if autostop:
            atexit.register(self.stop)

    def add(self, service):
        """add - start SERVICE and keep it for stop(); returns it."""
        service.start()
        self.services.append(service)
        return service

    def store(self, **kw):
        """store - start a Store."""
        return self.add(Store(self.root, builddir=self.builddir, autostop=self.autostop, **kw))

    def dovecot(self, store, **kw):
        """dovecot - start a Dovecot on STORE."""
        return self.add(Dovecot(self.root, store, autostop=self.autostop, **kw))

    def postfix(self, dovecot, **kw):
        """postfix - start a Postfix delivering to DOVECOT."""
        return self.add(Postfix(self.root, dovecot, autostop=self.autostop, **kw))

    def milter(self, store, **kw):
        """milter - start a mailwarden-milter on STORE."""
        return self.add(Milter(self.root, store, builddir=self.builddir, autostop=self.autostop,
                       **kw))

    def mail_stack(self, **kw):
        """mail_stack - Store + Dovecot + Postfix; returns the three."""
        store = self.store()
        dovecot = self.dovecot(store, **kw.pop('dovecot', {}))
        postfix = self.postfix(dovecot, **kw.pop('postfix', {}))
        return store, dovecot, postfix

    def nginx(self, **kw):
        return self.add(Nginx(self.root, autostop=self.autostop, **kw))

    def api(self, store, **kw):
        """api - start a mailwarden-api (spawn-fcgi) on STORE; pair it with
		nginx(fastcgi=api.fastcgi())."""
        return self.add(Api(self.root, store, autostop=self.autostop, **kw))

    def redis(self, **kw):
        return self.add(Redis(self.root, autostop=self.autostop, **kw))

    def policyd(self, store, **kw):
        """policyd - start a mailwarden-policyd on STORE."""
        return self.add(Policyd(self.root, store, autostop=self.autostop, **kw))

    def postgresql(self, **kw):
        return self.add(PostgreSQL(self.root, autostop=self.autostop, **kw))

    def clamd(self, signatures, **kw):
        """clamd - start Debian's clamd on SIGNATURES (a directory)."""
        return self.add(Clamd(self.root, signatures, autostop=self.autostop, **kw))

    def spamd(self, **kw):
        """spamd - start Debian's spamd with the test's rules (local_cf=...)."""
        return self.add(Spamd(self.root, autostop=self.autostop, **kw))

    def dns(self, **kw):
        """dns - start a DNSServer (NSD) serving test zones."""
        return self.add(DNSServer(self.root, autostop=self.autostop, **kw))

    def logs(self, lines=LOG_TAIL_LINES):
        """logs - the log tails of every service of this lab."""
        return ''.join(s.logs(lines) for s in self.services)

    def stop(self):
        """stop - stop every service (reverse order), remove the directory if owned."""
        if self.autostop:
            atexit.unregister(self.stop)
        errors = []
        while self.services:
            s = self.services.pop()
            try:
                s.stop()
            except Exception as e:	# keep stopping the others
                errors.append('%s: %s' % (s.name, e))
        if self.own_root and not self.keep and os.path.isdir(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            raise LabError('stop: ' + '; '.join(errors))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def main(argv):
    """main - `mailwarden_lab.py samples DIR`: write the conf.d samples into DIR.
	`mailwarden_lab.py postgresql start|stop DIR`: a throwaway PostgreSQL under DIR (for the
	unit tests, scripts/test); start prints its URL."""
    if len(argv) == 3 and argv[1] == 'samples':
        for name, render in SAMPLES.items():
            write_file(os.path.join(argv[2], name), render())
        return 0
    if len(argv) == 4 and argv[1] == 'postgresql' and argv[2] in ('start', 'stop'):
        os.makedirs(argv[3], exist_ok=True)
        os.chmod(argv[3], 0o755)
        pg = PostgreSQL(argv[3], autostop=False)
        if argv[2] == 'start':
            pg.start()
            print(pg.url)
        else:
            pg.stop()
        return 0
    print('usage: %s samples DIR | postgresql start|stop DIR' % argv[0])
    return 2


if __name__ == '__main__':
    import sys
    sys.exit(main(sys.argv))
