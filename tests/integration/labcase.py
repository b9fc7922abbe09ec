"""labcase - what the integration test modules share: the lab's life around a test class, the
milter checks and mail helpers of the Postfix + milter + Dovecot modules, and the request
helpers of the nginx + API modules.

No tests here (run.py collects test_*.py only; a module importing these classes gets no
test from them either: they have no test methods).

LabCase: setUpClass makes cls.lab and calls the class's start_lab(); when that fails the lab
is stopped before the error goes on; tearDownClass stops the lab. start_api(): API + nginx.
DovecotCase: LabCase whose tearDown checks cls.dovecot's log for crashes.
PolicydCase: LabCase that fails the class when cls.policyd's sanitizer reported anything;
start_policy_path() starts policyd and a Postfix asking it.
MilterCase: LabCase whose tearDown checks the milter's sanitizer report (and that it lives);
start_mail_path() starts the milter, a Postfix through it and the users mail goes between;
log(), xclient() and send_from() for mail through Postfix from a chosen client address.
imap_fetch() / imap_text(): poll a mailbox for the message carrying a token.
DkimSigner (mixin) and genkey(): keys by opendkim-genkey, signatures by dkimsign.
AuthcheckTool (mixin): authcheck() runs tests/tools/mw-authcheck-tool on a message.
ApiBase: LabCase with the API's request helpers (call, expect, login), add_admin(),
store_user(), and a tearDown that checks the API's sanitizer report. AppPasswordUsers (mixin):
new_user() logged in, create() an app password.
"""

import contextlib
import http.client
import imaplib
import json
import os
import re
import smtplib
import socket
import sqlite3
import subprocess
import tempfile
import time
import unittest
import uuid

import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN
SECURITY_HEADERS = {
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
}
# [api] settings of a lab whose tests log in often, some of them with wrong passwords
MANY_LOGINS = {'max_sessions_per_user': '1000', 'login_max_failures': '50',
               'ip_max_failures': '1000'}


# -- lab ---------------------------------------------------------------------------------------

class LabCase(unittest.TestCase):
    """LabCase - one lab per test class: subclasses start their instances in start_lab()."""

    @classmethod
    def setUpClass(cls):
        cls.lab = lab_mod.Lab()
        try:
            cls.start_lab()
        except BaseException:
            cls.lab.stop()
            raise

    @classmethod
    def start_lab(cls):
        """start_lab - start the class's instances in cls.lab (set them as class attributes)."""
        raise NotImplementedError('%s has no start_lab' % cls.__name__)

    @classmethod
    def tearDownClass(cls):
        cls.lab.stop()

    @classmethod
    def lab_dir(cls, *parts, mode=0o755):
        """lab_dir - a new directory PARTS under the lab root, with MODE (0755: daemons
        running as other users reach it; 0777: they write into it); its path."""
        path = os.path.join(cls.lab.root, *parts)
        os.makedirs(path)
        os.chmod(path, mode)
        return path

    @classmethod
    def start_inet_milter(cls, sender, **milter_kw):
        """start_inet_milter - for miltertest scripts: cls.miltertest (the binary), cls.store
        with the user SENDER allowed to send as itself, cls.milter on an inet socket
        (MILTER_KW: Lab.milter's options)."""
        cls.miltertest = lab_mod.find_binary('miltertest', 'miltertest')
        cls.store = cls.lab.store()
        cls.store.add_user(sender)
        cls.store.allow_from(sender, sender)
        cls.milter = cls.lab.milter(cls.store, socket='inet', **milter_kw)

    @classmethod
    def start_api(cls, web=None, **api_kw):
        """start_api - cls.api, a mailwarden-api on cls.store (API_KW: Lab.api's options),
        behind a new cls.nginx (serving the static files of WEB when given)."""
        cls.api = cls.lab.api(cls.store, **api_kw)
        cls.nginx = cls.lab.nginx(fastcgi=cls.api.fastcgi(), web=web)


def policy_ask(c, **attrs):
    """policy_ask - one policy request (a RCPT one from 127.0.0.1, with ATTRS) on the raw
    connection C to the policy daemon; the action it answers."""
    req = dict(request='smtpd_access_policy', protocol_state='RCPT',
               client_address='127.0.0.1', instance=uuid.uuid4().hex[:8])
    req.update(attrs)
    return policy_answer(c, ''.join('%s=%s\n' % kv for kv in req.items()).encode() + b'\n')


def policy_answer(c, request):
    """policy_answer - send REQUEST (bytes, ending in the empty line) on the raw connection C
    to the policy daemon; the action it answers."""
    c.sendall(request)
    buf = b''
    while not buf.endswith(b'\n\n'):
        chunk = c.recv(4096)
        if not chunk:
            raise AssertionError('policyd closed the connection')
        buf += chunk
    return buf.decode().strip()


def daemon_config(store, tmp, name, directory=None, extra=''):
    """daemon_config - write a valid configuration for daemon NAME ('milter' and 'policyd'
    get their sockets under TMP; others the store's keys only) plus EXTRA as NAME.conf in
    DIRECTORY (default TMP); its path."""
    text = 'user = dovecot\n' + store.render_config()
    if name == 'milter':
        text += '\n[milter]\nsocket = unix:%s\n' % os.path.join(tmp, 'm', 'm.sock')
    elif name == 'policyd':
        text += '\n[policyd]\nsocket = unix:%s\ncontrol_socket = %s\n' % (
            os.path.join(tmp, 'p', 'p.sock'), os.path.join(tmp, 'p', 'c.sock'))
    text += extra
    path = os.path.join(directory or tmp, name + '.conf')
    lab_mod.write_file(path, text, 0o644)
    return path


class DovecotCase(LabCase):
    """DovecotCase - LabCase whose tearDown fails the test when cls.dovecot's log shows a
    crash or a sanitizer report (the plugin runs inside Dovecot's processes)."""

    def tearDown(self):
        with open(self.dovecot.log_path, errors='replace') as f:
            log = f.read()
        for bad in ('AddressSanitizer', 'runtime error:', 'Panic:', 'Fatal:', 'segfault'):
            self.assertNotIn(bad, log, 'dovecot log shows a crash or sanitizer report')


class PolicydCase(LabCase):
    """PolicydCase - a lab with cls.policyd, whose sanitizer report fails the class."""

    policyd_must_live = False  # tearDown: no sanitizer report and policyd runs after each test

    @classmethod
    def start_policy_path(cls, local=None, **policyd_kw):
        """start_policy_path - cls.policyd on cls.store (POLICYD_KW: Lab.policyd's options)
        and cls.postfix on cls.dovecot asking it; LOCAL: the prefix of a new user cls.local."""
        cls.policyd = cls.lab.policyd(cls.store, **policyd_kw)
        cls.postfix = cls.lab.postfix(cls.dovecot, policy_services=[cls.policyd.service])
        if local is not None:
            cls.local = new_address(local)
            cls.store.add_user(cls.local)

    def tearDown(self):
        if self.policyd_must_live:
            self.assertEqual(self.policyd.sanitizer_errors(), '')
            self.assertTrue(self.policyd.alive(), 'policyd died')
        super().tearDown()

    @classmethod
    def tearDownClass(cls):
        cls.policyd.stop()  # LeakSanitizer reports at exit
        errors = cls.policyd.sanitizer_errors()
        cls.lab.stop()
        if errors:
            raise AssertionError('policyd sanitizer report:\n' + errors)


# -- store -------------------------------------------------------------------------------------

def rename_table(db_path, old, new):
    """rename_table - ALTER TABLE OLD RENAME TO NEW in the SQLite store DB_PATH (a store
    outage for the daemons reading that table, and its repair)."""
    db = sqlite3.connect(db_path)
    try:
        db.execute('ALTER TABLE %s RENAME TO %s' % (old, new))
        db.commit()
    finally:
        db.close()


# -- mail --------------------------------------------------------------------------------------

def new_address(prefix):
    """new_address - PREFIX, a random tag and @DOMAIN: an address no test used before."""
    return '%s%s@%s' % (prefix, uuid.uuid4().hex[:6], DOMAIN)


def quit_quietly(s):
    """quit_quietly - QUIT on SMTP session S, whatever state it is in."""
    try:
        s.quit()
    except (smtplib.SMTPException, OSError):
        pass


def smtp_login(port, user, password, source=None):
    """smtp_login - True when AUTH (from SOURCE when given) succeeds (235), False when
    refused with 535."""
    s = smtplib.SMTP('127.0.0.1', port, timeout=20,
                     source_address=(source, 0) if source else None)
    try:
        s.ehlo('client.example.org')
        s.login(user, password)
    except smtplib.SMTPAuthenticationError as e:
        if e.smtp_code != 535:
            raise
        return False
    finally:
        quit_quietly(s)
    return True


class SourcedIMAP(imaplib.IMAP4):
    """SourcedIMAP - imaplib.IMAP4 connecting from a chosen local address."""

    def __init__(self, port, source):
        self.source = source
        super().__init__('127.0.0.1', port, timeout=20)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


def imap_login(port, user, password, source=None, refusals=('AUTHENTICATIONFAILED',)):
    """imap_login - True when LOGIN (from SOURCE when given) succeeds, False when refused
    with a NO naming one of REFUSALS."""
    m = SourcedIMAP(port, source) if source else imaplib.IMAP4('127.0.0.1', port, timeout=20)
    try:
        m.login(user, password)
    except imaplib.IMAP4.error as e:
        if not any(r in str(e) for r in refusals):
            raise
        return False
    finally:
        try:
            m.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return True


def header_lines(raw):
    """header_lines - the header block of RAW (unfolded lines)."""
    head = raw.replace('\r\n', '\n').split('\n\n', 1)[0]
    out = []
    for line in head.split('\n'):
        if line[:1] in (' ', '\t') and out:
            out[-1] += ' ' + line.strip()
        else:
            out.append(line)
    return out


def imap_fetch(port, user, password, token, mailbox='INBOX', key='BODY', timeout=40):
    """imap_fetch - (flags, raw bytes) of the newest message in USER's MAILBOX whose KEY
    (BODY, SUBJECT) contains TOKEN, waiting up to TIMEOUT seconds for it; None when none."""
    deadline = time.monotonic() + timeout
    while True:
        m = imaplib.IMAP4('127.0.0.1', port, timeout=20)
        try:
            m.login(user, password)
            typ, _ = m.select('"%s"' % mailbox, readonly=True)
            if typ == 'OK':
                typ, data = m.search(None, key, token)
                ids = data[0].split() if typ == 'OK' and data and data[0] else []
                if ids:
                    typ, msg = m.fetch(ids[-1], '(FLAGS RFC822)')
                    flags = [f.decode() for f in imaplib.ParseFlags(msg[0][0])]
                    return flags, msg[0][1]
        finally:
            try:
                m.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.3)


def imap_text(port, user, password, token, mailbox='INBOX', timeout=40):
    """imap_text - the message of imap_fetch as text (undecodable bytes replaced), or None."""
    found = imap_fetch(port, user, password, token, mailbox, timeout=timeout)
    return None if found is None else found[1].decode('utf-8', 'replace')


def spam_headers(raw):
    """spam_headers - the values of RAW's X-Mailwarden-Spam: header lines, unfolded (the
    milter folds a long tests list after its commas; the folding is dropped here, so the
    list reads "A,B,C")."""
    head = raw.replace('\r\n', '\n').split('\n\n', 1)[0]
    out, cur = [], None
    for line in head.split('\n'):
        if line[:1] in (' ', '\t'):
            if cur is not None:
                cur += line.strip()
            continue
        if cur is not None:
            out.append(cur)
        cur = (line.split(':', 1)[1].strip()
               if line.lower().startswith('x-mailwarden-spam:') else None)
    if cur is not None:
        out.append(cur)
    return out


class MilterCase(LabCase):
    """MilterCase - a lab with cls.milter (and for the mail helpers cls.postfix, cls.rcpt)."""

    milter_must_live = True  # tearDown: the milter is still running after every test

    @classmethod
    def start_mail_path(cls, xclient=False, rcpt=None, sender=None, **milter_kw):
        """start_mail_path - cls.milter on cls.store (MILTER_KW: Lab.milter's options) and
        cls.postfix on cls.dovecot through it, taking XCLIENT from loopback when XCLIENT
        (for xclient() and send_from()). RCPT, SENDER: prefixes of new users cls.rcpt
        (password cls.rcpt_pw) and cls.sender (cls.sender_pw; allowed to send as itself)."""
        cls.milter = cls.lab.milter(cls.store, **milter_kw)
        extra = {'smtpd_authorized_xclient_hosts': '127.0.0.0/8'} if xclient else None
        cls.postfix = cls.lab.postfix(cls.dovecot, milters=[cls.milter.postfix_spec],
                                      extra_main=extra)
        if rcpt is not None:
            cls.rcpt = new_address(rcpt)
            cls.rcpt_pw = cls.store.add_user(cls.rcpt)
        if sender is not None:
            cls.sender = new_address(sender)
            cls.sender_pw = cls.store.add_user(cls.sender)
            cls.store.allow_from(cls.sender, cls.sender)

    def tearDown(self):
        report = self.milter.sanitizer_report()
        self.assertEqual(report, '', 'sanitizer findings in the milter log:\n' + report)
        if self.milter_must_live:
            self.assertTrue(self.milter.alive(), 'the milter died')

    def log(self):
        """log - the milter's log so far."""
        with open(self.milter.log_path, errors='replace') as f:
            return f.read()

    @contextlib.contextmanager
    def xclient(self, ip, helo, timeout=60):
        """xclient - an SMTP session to Postfix that XCLIENT made come from IP saying HELO."""
        s = smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=timeout)
        try:
            s.ehlo('lab-client.example')
            code, resp = s.docmd('XCLIENT', 'ADDR=%s NAME=[UNAVAILABLE] HELO=%s' % (ip, helo))
            self.assertEqual(code, 220, resp)
            s.ehlo_resp = None
            s.esmtp_features = {}
            s.ehlo(helo)
            yield s
        finally:
            quit_quietly(s)

    def send_from(self, ip, helo, envfrom, text, timeout=60):
        """send_from - TEXT (str or bytes, CRLF line ends) from client IP (XCLIENT) to
        cls.rcpt: (stage, code, reply text), stage 'sent' or where it was refused."""
        with self.xclient(ip, helo, timeout) as s:
            code, resp = s.mail(envfrom)
            if code != 250:
                return 'mail', code, resp.decode()
            code, resp = s.rcpt(self.rcpt)
            if code not in (250, 251):
                return 'rcpt', code, resp.decode()
            raw = text if isinstance(text, bytes) else text.encode()
            code, resp = s.data(raw.replace(b'\r\n', b'\n'))
            return ('sent' if code == 250 else 'data'), code, resp.decode()


# -- DKIM --------------------------------------------------------------------------------------

def genkey(directory, domain, selector):
    """genkey - opendkim-genkey: (private key path, public key TXT text)."""
    tool = lab_mod.find_binary('opendkim-genkey', 'opendkim-tools')
    lab_mod.run([tool, '-D', directory, '-d', domain, '-s', selector, '-b', '2048'])
    with open(os.path.join(directory, selector + '.txt')) as f:
        txt = ''.join(re.findall(r'"([^"]*)"', f.read()))
    return os.path.join(directory, selector + '.private'), txt


class DkimSigner:
    """DkimSigner - mixin of a lab case signing with dkimsign (python3-dkim): start_signer()
    in start_lab sets cls.signer and an empty cls.keydir; cls.key_com is the default key."""

    @classmethod
    def start_signer(cls):
        cls.signer = lab_mod.find_binary('dkimsign', 'python3-dkim')
        cls.keydir = os.path.join(cls.lab.root, 'keys')
        os.makedirs(cls.keydir)

    def signed(self, text, selector, domain, key):
        """signed - dkimsign's output (bytes) for TEXT (relaxed/relaxed, rsa-sha256)."""
        p = subprocess.run([self.signer, '--hcanon', 'relaxed', '--bcanon', 'relaxed',
                            selector, domain, key], input=text.encode(),
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors='replace'))
        return p.stdout

    def sign(self, text, selector='sel1', domain='example.com', key=None):
        """sign - TEXT signed by dkimsign, with the DKIM-Signature: on top."""
        out = self.signed(text, selector, domain, key or self.key_com)
        self.assertTrue(out.startswith(b'DKIM-Signature:'), out[:200])
        return out.decode()


# -- mw-authcheck-tool ------------------------------------------------------------------------

class AuthcheckTool:
    """AuthcheckTool - mixin of a lab case running tests/tools/mw-authcheck-tool (cls.tool,
    set in start_lab) on messages, with its resolver on the lab's DNS server."""

    def authcheck(self, raw, ip, mail_from, dns, helo=None, authserv_id=None,
                  timeout_ms=3000, extra=()):
        """authcheck - the tool's JSON for the message RAW (bytes) from client IP, envelope
        MAIL_FROM, resolver DNS (and HELO, AUTHSERV_ID when given; EXTRA: more options); the
        tool must exit 0 with no sanitizer report. authentication_results is as the tool
        printed it (folded)."""
        with tempfile.NamedTemporaryFile('wb', suffix='.eml', dir=self.lab.root,
                                         delete=False) as f:
            f.write(raw)
            path = f.name
        cmd = [self.tool, '--client-ip', ip, '--mail-from', mail_from, '--dns', dns,
               '--timeout', str(timeout_ms)]
        if helo is not None:
            cmd += ['--helo', helo]
        if authserv_id is not None:
            cmd += ['--authserv-id', authserv_id]
        cmd += list(extra) + [path]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        os.unlink(path)
        for bad in ('AddressSanitizer', 'runtime error:', 'LeakSanitizer'):
            self.assertNotIn(bad, p.stderr)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)


# -- API ---------------------------------------------------------------------------------------

class Answer:
    """Answer - status, lower-cased headers, raw body and parsed JSON (None when not JSON)."""

    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    @property
    def code(self):
        """code - error.code of an error answer."""
        return (self.json or {}).get('error', {}).get('code')

    @property
    def message(self):
        return (self.json or {}).get('error', {}).get('message', '')

    def __repr__(self):
        return 'Answer(%d, %r)' % (self.status, self.raw[:300])


def call(port, method, path, body=None, token=None, raw=None, ctype='application/json',
         source='127.0.0.1', headers=None, host='127.0.0.1'):
    """call - one HTTP request to nginx on HOST:PORT from SOURCE (None: any address); BODY
    is JSON-encoded, RAW sent as is."""
    conn = http.client.HTTPConnection(host, port, timeout=30,
                                      source_address=(source, 0) if source else None)
    hdrs = dict(headers or {})
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None and ctype:
        hdrs['Content-Type'] = ctype
    if token:
        hdrs['Authorization'] = 'Bearer ' + token
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def unique_user():
    return 'u%s@%s' % (uuid.uuid4().hex[:10], DOMAIN)


class ApiBase(LabCase):
    """ApiBase - request helpers; start_lab sets cls.api and cls.nginx (add_admin: cls.port)."""
    source = '127.0.0.1'

    @classmethod
    def add_admin(cls):
        """add_admin - cls.port of cls.nginx, and a new admin cls.admin / cls.admin_pw."""
        cls.port = cls.nginx.port
        cls.admin = 'admin-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
        cls.admin_pw = 'Admin-pass-' + uuid.uuid4().hex[:8]
        cls.store.add_user(cls.admin, cls.admin_pw, role='admin')

    def store_user(self, pw_prefix='User-pass-'):
        """store_user - (name, password) of a new user added to the store directly."""
        user, pw = unique_user(), pw_prefix + uuid.uuid4().hex[:8]
        self.store.add_user(user, pw)
        return user, pw

    def call(self, method, path, **kw):
        kw.setdefault('source', self.source)
        return call(self.port, method, path, **kw)

    def expect(self, answer, status, code=None):
        self.assertEqual(answer.status, status, answer)
        if answer.json is not None or answer.status == 204:
            for k, v in SECURITY_HEADERS.items():
                self.assertEqual(answer.headers.get(k), v, '%s on %r' % (k, answer))
        if code is not None:
            self.assertEqual(answer.code, code, answer)
        return answer

    def login(self, user, password, source=None):
        a = self.call('POST', '/api/v1/sessions', body={'username': user, 'password': password},
                      source=source or self.source)
        self.expect(a, 201)
        self.assertEqual(len(a.json['token']), 43)
        return a.json['token']

    def tearDown(self):
        report = self.api.sanitizer_report()
        self.assertEqual(report, '', 'sanitizer report in the API log')


class AppPasswordUsers:
    """AppPasswordUsers - mixin of an ApiBase case making users and their app passwords."""

    own_password = {}  # token -> its user's password (creating your own needs it)

    def new_user(self):
        """new_user - (name, password, session token) of a new user, logged in."""
        user, pw = self.store_user()
        tok = self.login(user, pw)
        self.own_password[tok] = pw
        return user, pw, tok

    def create(self, user, token, status=201, **body):
        """create - POST an app password for USER with TOKEN (BODY: its fields; a name and
        the session's own password by default); the answer's JSON, its status STATUS."""
        body.setdefault('name', 'dev-' + uuid.uuid4().hex[:6])
        if token in self.own_password:
            body.setdefault('current_password', self.own_password[token])
        a = self.expect(self.call('POST', '/api/v1/users/%s/app-passwords' % user,
                                  body=body, token=token), status)
        return a.json
