"""drivers - load for the long runs (issue 17): a lab with every daemon, and clients that
talk to each daemon directly, fast enough for 100 000 messages / requests in minutes.

LongLab: a Lab (scripts/mailwarden_lab.py) with an NSD (the inbound sender's SPF/DMARC),
the store (users, the demo domain's DKIM key), Dovecot with the mailwarden plugin (LMTP),
mailwarden-policyd, mailwarden-milter and mailwarden-api behind nginx. WRAP (a list, e.g.
valgrind and its options) runs policyd, the milter and the API under it (the lab's own
daemons with its wrap option: the same start and the same checks as every other test).

Clients: MilterClient (the milter protocol, version 6, as Postfix speaks it: one connection
per message, macros, connect ... end-of-message, quit), PolicyClient (the Postfix policy
protocol over one connection: RCPT then END-OF-MESSAGE per message, SENDERS distinct sasl
users so the counter set stops growing after warm-up), ApiClient (log in once, then GET a
user through nginx with the bearer token, keep-alive), LmtpClient (LMTP deliveries to
Dovecot, recipients in turn). rss_kb(pids) sums VmRSS.
"""

import http.client
import json
import os
import smtplib
import socket
import struct
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, 'scripts'))

import mailwarden_lab as L  # noqa: E402

SENDER_DOMAIN = 'longrun-sender.example'
CLIENT_IP = '192.0.2.10'
USERS = 20		# mailbox users (LMTP recipients, milter senders)
PD_SENDERS = 1000	# distinct sasl_username values in policy requests
START_TIMEOUT = 120	# seconds a daemon may take to listen (under valgrind)


# ---------------------------------------------------------------------------------------------
# the lab

class LongLab:
    """LongLab - the daemons of a mail host on loopback, for long runs."""

    def __init__(self, builddir, wrap=None, wrap_api=None, keep=False, lmtp_wrap=None):
        self.lab = L.Lab(builddir=builddir, keep=keep)
        root = self.lab.root
        self.dns = self.lab.dns(zones={SENDER_DOMAIN: [
            ('@', 'TXT', 'v=spf1 ip4:%s -all' % CLIENT_IP),
            ('_dmarc', 'TXT', 'v=DMARC1; p=reject')]})
        self.store = self.lab.store()
        self.store.ctl('dkim', 'generate', L.DOMAIN, '--selector', 'mw1')
        self.users = {}
        for i in range(USERS):
            u = 'u%02d@%s' % (i, L.DOMAIN)
            self.users[u] = self.store.add_user(u)
            self.store.allow_from(u, u)
        self.admin = 'admin@' + L.DOMAIN
        self.admin_pw = self.store.add_user(self.admin, role='admin')
        plugin = L.mailwarden_plugin_options(self.store, builddir=builddir)
        extra = plugin.pop('extra_config', '')
        # one lmtp process serving every delivery, reused (its memory is what we measure)
        # the plugin's memory is measured, not the disk: no fsync per delivery
        extra += 'mail_fsync = never\n'
        extra += ('service lmtp {\n  process_limit = 1\n  service_count = 0\n'
                  '  vsz_limit = 0\n'
                  '  client_limit = 1\n%s}\n'
                  % ('  executable = %s /usr/lib/dovecot/lmtp\n' % ' '.join(lmtp_wrap)
                     if lmtp_wrap else ''))
        self.dovecot = self.lab.dovecot(self.store, extra_config=extra, **plugin)
        # the lab's daemons under WRAP; valgrind takes its time to start them
        self.policyd = self.lab.add(L.Policyd(
            root, self.store, limits=['sasl_username messages 1000000/1h defer',
                                      'sasl_username recipients 100/message reject'],
            wrap=wrap or (), start_timeout=START_TIMEOUT))
        self.milter = self.lab.add(L.Milter(
            root, self.store, builddir=builddir, wrap=wrap or (), start_timeout=START_TIMEOUT,
            config='dns_servers = %s\ndns_timeout = 5s\n' % self.dns.server))
        self.api = self.lab.add(L.Api(root, self.store, wrap=wrap_api or wrap or (),
                                      start_timeout=START_TIMEOUT,
                                      api_config={'max_sessions_per_user': '1000'}))
        self.nginx = self.lab.nginx(fastcgi=self.api.fastcgi())

    def pids(self, which):
        """pids - the processes of WHICH (policyd, milter, api, lmtp) now."""
        if which in ('policyd', 'milter'):
            svc = getattr(self, which)
            return [svc.proc.pid] + children(svc.proc.pid)
        if which == 'api':
            return [self.api.proc.pid] + children(self.api.proc.pid)
        if which == 'lmtp':
            master = L.read_pidfile(self.dovecot.pidfile)
            return [p for p in children(master) if proc_name(p).startswith('dovecot/lmtp')
                    or 'lmtp' in proc_name(p)]
        raise KeyError(which)

    def stop(self):
        self.lab.stop()


def children(pid):
    """children - every descendant of PID."""
    out = []
    for k in L.children_of(pid):
        out += [k] + children(k)
    return out


def proc_name(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return ''


def rss_kb(pids):
    """rss_kb - the sum of VmRSS (kB) of PIDS."""
    return sum(L.rss_kib(pid) for pid in pids)


# ---------------------------------------------------------------------------------------------
# the load of each daemon

def message_text(n, sender, rcpt):
    return ('From: %s\r\nTo: %s\r\nSubject: long run %d\r\nMessage-ID: <lr.%d@longrun.test>\r\n'
            'Date: Mon, 07 Dec 2026 06:00:00 +0000\r\n\r\nLong run message %d.\r\n'
            'The quick brown fox jumps over the lazy dog.\r\n' % (sender, rcpt, n, n, n))


def drive(lab, which):
    """drive - a function sending message / request number n to WHICH."""
    users = sorted(lab.users)
    if which == 'policyd':
        c = PolicyClient(lab.policyd.port)
        return lambda n: c.message(n)
    if which == 'milter':
        m = MilterClient(lab.milter.sock_path)

        def one(n):
            if n % 2:
                u = users[n % len(users)]
                sender, auth, ip = u, u, '127.0.0.1'
            else:
                sender, auth, ip = 'news@%s' % SENDER_DOMAIN, '', CLIENT_IP
            rcpt = users[(n + 1) % len(users)]
            body = message_text(n, sender, rcpt).split('\r\n\r\n', 1)
            headers = [tuple(h.split(': ', 1)) for h in body[0].split('\r\n')]
            r = m.send('Q%08X' % n, ip, 'mx.%s' % SENDER_DOMAIN, sender, rcpt, headers,
                       body[1], auth=auth)
            if r not in ('a', 'c'):
                raise MilterError('message %d: milter answered %r' % (n, r))
        return one
    if which == 'api':
        c = ApiClient(lab.nginx.port, lab.admin, lab.admin_pw)

        def get(n):
            st = c.get(users[n % len(users)])
            if st != 200:
                raise MilterError('request %d: HTTP %d' % (n, st))
        return get
    if which == 'lmtp':
        c = LmtpClient(lab.dovecot.lmtp_port, users)
        return lambda n: c.deliver(n, message_text(n, 'x@%s' % SENDER_DOMAIN,
                                                   users[n % len(users)]))
    raise KeyError(which)


# ---------------------------------------------------------------------------------------------
# the milter protocol (version 6), the MTA side

SMFIP_NR = {'C': 0x1000, 'H': 0x2000, 'M': 0x4000, 'R': 0x8000, 'T': 0x10000, 'L': 0x80,
            'N': 0x40000, 'B': 0x80000}
SMFIP_NO = {'C': 0x1, 'H': 0x2, 'M': 0x4, 'R': 0x8, 'B': 0x10, 'L': 0x20, 'N': 0x40,
            'T': 0x200}
FINAL = set(b'acrtyd')


class MilterError(Exception):
    pass


class MilterClient:
    """MilterClient - one message per connection, as Postfix does; send() returns the final
    reply letter of the message ('a' accept, 'c' continue, 't' tempfail, 'r' reject, ...)."""

    def __init__(self, path):
        self.path = path

    def _send(self, s, cmd, data=b''):
        s.sendall(struct.pack('>I', len(data) + 1) + cmd.encode() + data)

    def _recv(self, s):
        head = self._read(s, 4)
        n = struct.unpack('>I', head)[0]
        body = self._read(s, n)
        return body[:1], body[1:]

    @staticmethod
    def _read(s, n):
        buf = b''
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise MilterError('milter closed the connection')
            buf += chunk
        return buf

    def _step(self, s, cmd, data, proto):
        """_step - send CMD unless negotiated away; its reply letter ('c' when none)."""
        if proto & SMFIP_NO.get(cmd, 0):
            return 'c'
        self._send(s, cmd, data)
        if proto & SMFIP_NR.get(cmd, 0):
            return 'c'
        while True:
            code, _ = self._recv(s)
            if code != b'p':		# progress
                return code.decode()

    @staticmethod
    def _macros(cmd, pairs):
        return cmd.encode() + b''.join(k.encode() + b'\0' + v.encode() + b'\0'
                                       for k, v in pairs)

    def send(self, qid, client_ip, helo, mail_from, rcpt, headers, body, auth=''):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.path)
        try:
            self._send(s, 'O', struct.pack('>III', 6, 0x1ff, 0x1fffff))
            code, data = self._recv(s)
            if code != b'O':
                raise MilterError('no option negotiation: %r' % code)
            _ver, _act, proto = struct.unpack('>III', data[:12])
            self._send(s, 'D', self._macros('C', [('j', 'mail.example.org'),
                                                  ('{daemon_name}', 'smtpd'),
                                                  ('{client_addr}', client_ip),
                                                  ('{client_name}', 'unknown')]))
            ip = client_ip.encode()
            r = self._step(s, 'C', b'unknown\0' + b'4' + struct.pack('>H', 25) + ip + b'\0',
                           proto)
            steps = [('H', helo.encode() + b'\0', []),
                     ('M', b'<' + mail_from.encode() + b'>\0',
                      [('{auth_authen}', auth)] if auth else []),
                     ('R', b'<' + rcpt.encode() + b'>\0', []),
                     ('T', b'', [])]
            for name, value in headers:
                steps.append(('L', name.encode() + b'\0' + value.encode() + b'\0', []))
            steps.append(('N', b'', []))
            steps.append(('B', body.encode(), []))
            if r == 'c':
                for cmd, data, macros in steps:
                    if macros:
                        self._send(s, 'D', self._macros(cmd, macros))
                    r = self._step(s, cmd, data, proto)
                    if r != 'c':
                        break
            if r == 'c':
                self._send(s, 'D', self._macros('E', [('i', qid)]))
                self._send(s, 'E')
                while True:
                    code, _ = self._recv(s)
                    if code[0] in FINAL:
                        r = code.decode()
                        break
            else:
                self._send(s, 'A')
            self._send(s, 'Q')
            return r
        finally:
            s.close()


# ---------------------------------------------------------------------------------------------
# the policy protocol

class PolicyClient:
    """PolicyClient - Postfix policy requests over one connection (reconnects if closed)."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.buf = b''

    def _ask(self, attrs):
        if self.sock is None:
            self.sock = socket.create_connection(('127.0.0.1', self.port), timeout=30)
            self.buf = b''
        self.sock.sendall(''.join('%s=%s\n' % kv for kv in attrs).encode() + b'\n')
        while b'\n\n' not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                self.sock.close()
                self.sock = None
                raise MilterError('policyd closed the connection')
            self.buf += chunk
        reply, self.buf = self.buf.split(b'\n\n', 1)
        return reply.decode()

    def message(self, n):
        """message - RCPT then END-OF-MESSAGE for message N; the RCPT action."""
        user = 'sender%d@%s' % (n % PD_SENDERS, L.DOMAIN)
        base = [('request', 'smtpd_access_policy'), ('protocol_name', 'ESMTP'),
                ('client_address', '192.0.2.%d' % (n % 200 + 1)), ('client_name', 'unknown'),
                ('helo_name', 'client.example'), ('sender', user), ('sasl_method', 'PLAIN'),
                ('sasl_username', user), ('instance', 'i%d' % n),
                ('queue_id', 'Q%X' % n)]
        r = self._ask([('protocol_state', 'RCPT')] + base +
                      [('recipient', 'r%d@example.net' % (n % 50)), ('size', '0'),
                       ('recipient_count', '0')])
        self._ask([('protocol_state', 'END-OF-MESSAGE')] + base +
                  [('recipient', ''), ('size', '2000'), ('recipient_count', '1')])
        return r


# ---------------------------------------------------------------------------------------------
# the API and LMTP

class ApiClient:
    """ApiClient - one session (logged in once), then GET a user, keep-alive through nginx."""

    def __init__(self, port, user, password):
        self.port = port
        self.conn = None
        r = self._call('POST', '/api/v1/sessions', json.dumps({'username': user,
                                                               'password': password}), {})
        self.token = json.loads(r[1])['token']

    def _call(self, method, path, body, headers):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=60)
            try:
                h = dict(headers)
                if body is not None:
                    h['Content-Type'] = 'application/json'
                self.conn.request(method, path, body=body, headers=h)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError('unreachable')

    def get(self, user):
        return self._call('GET', '/api/v1/users/%s' % user, None,
                          {'Authorization': 'Bearer ' + self.token})[0]


class LmtpClient:
    """LmtpClient - deliveries over one LMTP session to Dovecot."""

    def __init__(self, port, recipients):
        self.port = port
        self.recipients = list(recipients)
        self.conn = None

    def deliver(self, n, msg):
        if self.conn is None:
            self.conn = smtplib.LMTP('127.0.0.1', self.port, timeout=60)
        rcpt = self.recipients[n % len(self.recipients)]
        try:
            self.conn.sendmail('sender@%s' % SENDER_DOMAIN, [rcpt], msg)
        except smtplib.SMTPServerDisconnected:
            self.conn = None
            raise
        return rcpt
