"""test_forms - public contact forms (issue 18) end to end.

Real parts: nginx -> mailwarden-api (FastCGI) -> its spool -> the API master's flusher ->
Postfix (SMTP AUTH as the forms account, through Dovecot SASL) -> mailwarden-milter
(DKIM-signs it, the key from the store) -> LMTP -> Dovecot, read back over IMAP. The
per-IP limit is counted by a real mailwarden-policyd over its control socket. Signatures
are checked by python3-dkim against the records `mailwardenctl dkim txt` prints.

Covered: a token and a submission delivered and signed; CORS preflight; bad / missing Origin,
missing / forged / expired / other form's token: 403; a field too long or unknown or a line
break in a one-line field: 422 naming it; a line break in a field the subject template uses
never becomes a header; the honeypot: 202 and nothing sent; over the per-IP limit: 429 with
Retry-After; policyd unreachable: 503; Postfix stopped while forms arrive: 202, the spool
grows, Postfix started: each delivered exactly once and the spool empties; the API killed
(SIGKILL, master, workers and flusher) with forms in the spool and started again: delivered.
"""

import email
import email.policy
import hashlib
import hmac
import imaplib
import os
import pwd
import re
import signal
import subprocess
import sys
import time
import unittest
import uuid

try:
    import dkim
except ImportError:  # a pyenv python: Debian's python3-dkim lives in dist-packages
    sys.path.append('/usr/lib/python3/dist-packages')
    import dkim  # noqa: E402  (a missing python3-dkim is an error, not a skip)

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN
ORIGIN = 'https://www.example.com'
DELIVERY = 60


def imap_count(port, user, password, token):
    """imap_count - how many messages of USER's INBOX have TOKEN in their subject."""
    m = imaplib.IMAP4('127.0.0.1', port, timeout=20)
    try:
        m.login(user, password)
        m.select('INBOX', readonly=True)
        typ, data = m.search(None, 'SUBJECT', token)
        return len(data[0].split()) if typ == 'OK' and data and data[0] else 0
    finally:
        try:
            m.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


children_of = lab_mod.children_of


class FormsTest(labcase.MilterCase, labcase.ApiBase):
    """The contact-form endpoint through nginx, the API, policyd, Postfix, milter, Dovecot."""

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.store.ctl('dkim', 'generate', DOMAIN, '--selector', 'mw1')
        txt = cls.store.ctl('dkim', 'txt', DOMAIN, 'mw1').stdout
        cls.records = {txt.split()[0].rstrip('.').lower():
                       ''.join(re.findall(r'"([^"]*)"', txt))}
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.milter = cls.lab.milter(cls.store, cache_ttl='2s')
        cls.policyd = cls.lab.policyd(cls.store)
        cls.postfix = cls.lab.postfix(cls.dovecot, milters=[cls.milter.postfix_spec])
        cls.rcpt = 'formrcpt%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
        cls.rcpt_pw = cls.store.add_user(cls.rcpt)
        # the account the API submits as: allowed to send as the forms sender only
        cls.sender = 'forms@%s' % DOMAIN
        sender_pw = cls.store.add_user(cls.sender)
        cls.store.allow_from(cls.sender, cls.sender)
        dovecot = pwd.getpwnam('dovecot')
        cls.pwfile = os.path.join(cls.lab.root, 'forms-smtp.pw')
        with open(cls.pwfile, 'w') as f:
            f.write(sender_pw + '\n')
        os.chown(cls.pwfile, dovecot.pw_uid, dovecot.pw_gid)
        os.chmod(cls.pwfile, 0o600)
        cls.spool = cls.own_spool('formspool')
        forms = (
            '[policyd]\ncontrol_socket = %s\n\n[forms]\nspool_dir = %s\n'
            'smtp = 127.0.0.1:%d\nsmtp_user = %s\nsmtp_password_file = %s\nsender = %s\n'
            'retry_min = 1s\nretry_max = 2s\nbreaker_failures = 2\n'
            'form = contact %s %s https://example.com\n'
            'field = contact name required max=40\n'
            'field = contact email email\n'
            'field = contact message required multiline max=2000\n'
            'subject = contact Contact {name} {message}\n'
            'honeypot = contact website\n'
            'form = limited %s %s\n'
            'field = limited name required\n'
            'subject = limited Limited {name}\n'
            'limit = limited per_ip 3/1h\n'
            % (cls.policyd.control, cls.spool, cls.postfix.smtp_port, cls.sender, cls.pwfile,
               cls.sender, cls.rcpt, ORIGIN, cls.rcpt, ORIGIN))
        cls.api_config = 'max_sessions_per_user = 1000\n\n' + forms
        cls.start_api(run_as='dovecot', api_config=cls.api_config)
        # a second API whose policy daemon is gone: limited forms answer 503
        cls.api_nopd = cls.lab.api(
            cls.store, run_as='dovecot', name='api-nopd',
            api_config=forms.replace(cls.policyd.control,
                                     os.path.join(cls.lab.root, 'no-such.sock')).replace(
                                         cls.spool, cls.own_spool('formspool-nopd')))
        cls.nginx_nopd = cls.lab.nginx(fastcgi=cls.api_nopd.fastcgi())

        # a third API started without forms: no flusher until a reload adds them
        cls.api_later = cls.lab.api(cls.store, run_as='dovecot', name='api-later',
                                    api_config='workers = 2\n')
        cls.nginx_later = cls.lab.nginx(fastcgi=cls.api_later.fastcgi())
        cls.later_forms = forms.replace(cls.spool, cls.own_spool('formspool-later'))

    @classmethod
    def own_spool(cls, name):
        """own_spool - a spool directory the API (running as dovecot) owns."""
        d = os.path.join(cls.lab.root, name)
        os.makedirs(d)
        dovecot = pwd.getpwnam('dovecot')
        os.chown(d, dovecot.pw_uid, dovecot.pw_gid)
        os.chmod(d, 0o700)
        return d

    def tearDown(self):
        labcase.MilterCase.tearDown(self)
        labcase.ApiBase.tearDown(self)
        self.assertEqual(self.api_nopd.sanitizer_report(), '')
        if not self.postfix.alive():
            self.postfix.start()
        if not self.api.alive():
            self.api.stop()
            self.api.start()

    # -- helpers ---------------------------------------------------------------------------

    def token(self, form='contact', origin=ORIGIN, port=None):
        a = labcase.call(port or self.nginx.port, 'GET', '/api/v1/forms/%s/token' % form,
                         headers={'Origin': origin} if origin else None)
        self.assertEqual(a.status, 200, a)
        return a.json['token']

    def post(self, body, form='contact', origin=ORIGIN, port=None):
        return labcase.call(port or self.nginx.port, 'POST', '/api/v1/forms/%s' % form,
                            body=body, headers={'Origin': origin} if origin else None)

    def submit(self, tag, form='contact', **fields):
        body = {'_token': self.token(form), 'name': tag}
        if form == 'contact':
            body.setdefault('message', 'Hello from %s' % tag)
        body.update(fields)
        a = self.post(body, form)
        self.assertEqual(a.status, 202, a)
        return a

    def spooled(self):
        return sorted(os.listdir(os.path.join(self.spool, 'new')))

    def fetch(self, tag, timeout=DELIVERY):
        found = labcase.imap_fetch(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, tag,
                                   key='SUBJECT', timeout=timeout)
        return None if found is None else found[1]

    def dns(self, name, timeout=5):
        rec = self.records.get(name.decode().rstrip('.').lower())
        return rec.encode() if rec else None

    def forge(self, form, expiry, key_file=None):
        """forge - a token made the way the API makes them, with the real key (derived from
        the master key like libsodium's crypto_kdf_derive_from_key)."""
        with open(key_file or self.store.master_key, 'rb') as f:
            master = f.read()
        sub = hashlib.blake2b(b'', digest_size=32, key=master,
                              salt=(1).to_bytes(8, 'little') + bytes(8),
                              person=b'mwforms1' + bytes(8)).digest()
        nonce = uuid.uuid4().hex[:24]
        mac = hmac.new(sub, b'mwform1\0' + form.encode() + b'\0' + str(expiry).encode() +
                       b'\0' + nonce.encode(), hashlib.sha256).hexdigest()
        return '%d.%s.%s' % (expiry, nonce, mac)

    # -- tests -----------------------------------------------------------------------------

    def test_config_check_names_the_bad_form_line(self):
        """mailwardenctl config check (and mailwarden-api --check) refuse a [forms] line that
        names no declared form, naming the file and line."""
        path = os.path.join(self.lab.root, 'badforms.conf')
        with open(path, 'w') as f:
            f.write('user = dovecot\n[forms]\nform = c info@example.com https://a.example\n'
                    'field = c a\nfield = nosuch b\n')
        ctl = os.path.join(self.store.builddir, 'ctl', 'mailwardenctl')
        p = subprocess.run([ctl, '-c', path, 'config', 'check'], capture_output=True,
                           text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn('%s:5' % path, p.stderr)
        p = subprocess.run([self.api.binary, '-c', path, '--check'], capture_output=True,
                           text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn('%s:5' % path, p.stderr)

    def test_delivered_signed(self):
        tag = 'sig%s' % uuid.uuid4().hex[:8]
        a = labcase.call(self.nginx.port, 'GET', '/api/v1/forms/contact/token',
                         headers={'Origin': ORIGIN})
        self.assertEqual(a.status, 200, a)
        self.assertEqual(a.headers.get('access-control-allow-origin'), ORIGIN)
        self.assertEqual(a.json['expires_in'], 7200)
        a = self.post({'_token': a.json['token'], 'name': tag, 'email': 'visitor@example.org',
                       'message': '<script>alert(1)</script> & more', 'website': ''})
        self.assertEqual(a.status, 202, a)
        self.assertEqual(a.json['status'], 'accepted')
        self.assertEqual(a.headers.get('access-control-allow-origin'), ORIGIN)
        raw = self.fetch(tag)
        self.assertIsNotNone(raw, 'form not delivered:\n' + self.postfix.logs())
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertIn('DKIM-Signature', msg)
        self.assertIn('d=%s' % DOMAIN, msg['DKIM-Signature'])
        self.assertTrue(dkim.verify(raw, dnsfunc=self.dns), 'signature does not verify')
        self.assertEqual(msg['From'], self.sender)
        self.assertEqual(msg['Reply-To'], 'visitor@example.org')
        self.assertEqual(msg['X-Form'], 'contact')
        html = msg.get_body(('html',)).get_content()
        self.assertIn('&lt;script&gt;alert(1)&lt;/script&gt; &amp; more', html)
        self.assertNotIn('<script>', html)
        text = msg.get_body(('plain',)).get_content()
        self.assertIn('<script>alert(1)</script> & more', text)
        self.assertEqual(imap_count(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, tag), 1)
        # Postfix logged it like any mail, as the forms account
        self.assertRegex(self.postfix.logs(400), r'sasl_username=%s' % re.escape(self.sender))

    def test_preflight(self):
        a = labcase.call(self.nginx.port, 'OPTIONS', '/api/v1/forms/contact',
                         headers={'Origin': 'https://example.com',
                                  'Access-Control-Request-Method': 'POST'})
        self.assertEqual(a.status, 204, a)
        self.assertEqual(a.headers.get('access-control-allow-origin'), 'https://example.com')
        self.assertIn('POST', a.headers.get('access-control-allow-methods', ''))
        a = labcase.call(self.nginx.port, 'OPTIONS', '/api/v1/forms/contact',
                         headers={'Origin': 'https://evil.example'})
        self.assertEqual(a.status, 403, a)
        self.assertNotIn('access-control-allow-origin', a.headers)

    def test_origin_and_token_refused(self):
        good = self.token()
        body = {'_token': good, 'name': 'x', 'message': 'y'}
        # a page of another origin, and no Origin at all
        a = self.post(body, origin='https://evil.example')
        self.assertEqual((a.status, a.code), (403, 'origin_not_allowed'), a)
        self.assertNotIn('access-control-allow-origin', a.headers)
        a = self.post(body, origin=None)
        self.assertEqual((a.status, a.code), (403, 'origin_not_allowed'), a)
        # a token is refused to another origin's page
        a = labcase.call(self.nginx.port, 'GET', '/api/v1/forms/contact/token',
                         headers={'Origin': 'https://evil.example'})
        self.assertEqual(a.status, 403, a)
        # missing, forged (one hex digit changed), expired, another form's, another key's
        a = self.post({'name': 'x', 'message': 'y'})
        self.assertEqual((a.status, a.code), (403, 'bad_token'), a)
        forged = good[:-1] + ('0' if good[-1] != '0' else '1')
        a = self.post(dict(body, _token=forged))
        self.assertEqual((a.status, a.code), (403, 'bad_token'), a)
        self.assertIn('forged', a.message)
        expired = self.forge('contact', int(time.time()) - 5)
        a = self.post(dict(body, _token=expired))
        self.assertEqual((a.status, a.code), (403, 'bad_token'), a)
        self.assertIn('expired', a.message)
        # the forge itself is right: the same recipe with a future expiry is accepted
        fresh = self.forge('contact', int(time.time()) + 600)
        tag = 'fresh%s' % uuid.uuid4().hex[:8]
        a = self.post(dict(body, _token=fresh, name=tag))
        self.assertEqual(a.status, 202, a)
        a = self.post(dict(body, _token=self.token('limited')))
        self.assertEqual((a.status, a.code), (403, 'bad_token'), a)
        other_key = os.path.join(self.lab.root, 'other.key')
        with open(other_key, 'wb') as f:
            f.write(os.urandom(32))
        a = self.post(dict(body, _token=self.forge('contact', int(time.time()) + 600,
                                                   other_key)))
        self.assertEqual((a.status, a.code), (403, 'bad_token'), a)
        self.assertIsNotNone(self.fetch(tag))

    def test_validation_names_the_field(self):
        tok = self.token()
        a = self.post({'_token': tok, 'name': 'x' * 41, 'message': 'm'})
        self.assertEqual((a.status, a.code), (422, 'invalid_field'), a)
        self.assertEqual(a.json['error']['field'], 'name')
        self.assertIn('longer than 40', a.message)
        a = self.post({'_token': tok, 'name': 'x'})
        self.assertEqual((a.status, a.json['error']['field']), (422, 'message'), a)
        a = self.post({'_token': tok, 'name': 'x', 'message': 'm', 'phone': '1'})
        self.assertEqual((a.status, a.json['error']['field']), (422, 'phone'), a)
        a = self.post({'_token': tok, 'name': 'x', 'message': 'm', 'email': 'nope'})
        self.assertEqual((a.status, a.json['error']['field']), (422, 'email'), a)
        a = self.post({'_token': tok, 'name': 'x', 'message': 7})
        self.assertEqual((a.status, a.json['error']['field']), (422, 'message'), a)
        a = labcase.call(self.nginx.port, 'POST', '/api/v1/forms/nosuch', body={},
                         headers={'Origin': ORIGIN})
        self.assertEqual(a.status, 404, a)

    def test_header_injection_neutralised(self):
        tok = self.token()
        victim = 'victim@%s' % DOMAIN
        # a line break in a one-line field: refused, naming it
        for name in ('x\r\nBcc: %s' % victim, 'x\nBcc: %s' % victim):
            a = self.post({'_token': tok, 'name': name, 'message': 'm'})
            self.assertEqual((a.status, a.json['error']['field']), (422, 'name'), a)
        a = self.post({'_token': tok, 'name': 'x', 'message': 'm',
                       'email': 'a@example.org\r\nBcc: %s' % victim})
        self.assertEqual((a.status, a.json['error']['field']), (422, 'email'), a)
        # a multi-line field the subject template uses: its line breaks become blanks
        tag = 'inj%s' % uuid.uuid4().hex[:8]
        self.submit(tag, message='hello\r\nBcc: %s\r\nX-Injected: yes' % victim)
        raw = self.fetch(tag)
        self.assertIsNotNone(raw)
        head = raw.split(b'\r\n\r\n', 1)[0]
        self.assertNotRegex(head, rb'(?mi)^(bcc|x-injected):')
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertIn('hello  Bcc: %s  X-Injected: yes' % victim, msg['Subject'])
        self.assertEqual(msg['To'], self.rcpt)

    def test_honeypot(self):
        """A filled honeypot is answered exactly like a real submission (202, an id) so a
        bot learns nothing, and nothing is spooled or sent."""
        bot = 'bot%s' % uuid.uuid4().hex[:8]
        before = self.spooled()
        a = self.post({'_token': self.token(), 'name': bot, 'message': 'buy',
                       'website': 'http://spam.example'})
        self.assertEqual(a.status, 202, a)
        self.assertEqual(a.json['status'], 'accepted')
        self.assertTrue(a.json['id'])
        self.assertEqual(self.spooled(), before)
        human = 'hum%s' % uuid.uuid4().hex[:8]
        self.submit(human)
        self.assertIsNotNone(self.fetch(human))  # a later form went through ...
        time.sleep(1)
        self.assertEqual(imap_count(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, bot), 0)
        self.assertIn('event=form_honeypot form=contact', self.api.logs(200))

    def test_rate_limit(self):
        for i in range(3):
            self.submit('lim%d%s' % (i, uuid.uuid4().hex[:6]), form='limited')
        a = self.post({'_token': self.token('limited'), 'name': 'over'}, form='limited')
        self.assertEqual((a.status, a.code), (429, 'rate_limited'), a)
        self.assertGreater(int(a.headers['retry-after']), 0)
        # the other form has no limit: still accepted from the same address
        self.submit('nolim%s' % uuid.uuid4().hex[:6])
        # the policy daemon is unreachable: refused, never unlimited
        tok = self.token('limited', port=self.nginx_nopd.port)
        a = self.post({'_token': tok, 'name': 'x'}, form='limited', port=self.nginx_nopd.port)
        self.assertEqual((a.status, a.code), (503, 'rate_limiter_unavailable'), a)
        self.assertIn('retry-after', a.headers)

    def test_postfix_down_then_up(self):
        self.postfix.stop()
        tags = ['down%d%s' % (i, uuid.uuid4().hex[:6]) for i in range(5)]
        for t in tags:
            self.submit(t)
        self.assertGreaterEqual(len(self.spooled()), 5)
        labcase.lab_mod.wait_until(lambda: 'event=form_breaker state=open' in self.api.logs(400),
                                   30, 'the breaker to open')
        self.assertGreaterEqual(len(self.spooled()), 5)
        self.postfix.start()
        for t in tags:
            self.assertIsNotNone(self.fetch(t), t)
        labcase.lab_mod.wait_until(lambda: self.spooled() == [], 30, 'the spool to empty')
        time.sleep(2)
        for t in tags:
            self.assertEqual(imap_count(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, t), 1, t)
        self.assertIn('event=form_breaker state=closed', self.api.logs(400))

    def test_reload_adding_forms_starts_the_flusher(self):
        """Without forms the API runs its workers only; a reload (SIGHUP) that adds forms
        starts the one flusher, which delivers."""
        master = self.api_later.proc.pid
        lab_mod.wait_until(lambda: len(children_of(master)) == 2, 60, 'two workers')
        time.sleep(1)
        self.assertEqual(len(children_of(master)), 2, 'a process beside the workers')
        a = labcase.call(self.nginx_later.port, 'GET', '/api/v1/forms/contact/token',
                         headers={'Origin': ORIGIN})
        self.assertEqual(a.status, 404, a)
        self.api_later.api_config = 'workers = 2\n\n' + self.later_forms
        lab_mod.write_file(self.api_later.config, self.api_later.render_config(), 0o640)
        os.chown(self.api_later.config, 0, pwd.getpwnam('dovecot').pw_gid)
        os.kill(master, signal.SIGHUP)
        lab_mod.wait_until(lambda: len(children_of(master)) == 3, 60, 'workers and a flusher')
        tag = 'later%s' % uuid.uuid4().hex[:8]
        lab_mod.wait_until(lambda: labcase.call(
            self.nginx_later.port, 'GET', '/api/v1/forms/contact/token',
            headers={'Origin': ORIGIN}).status == 200, 60, 'the new workers')
        tok = self.token(port=self.nginx_later.port)
        a = self.post({'_token': tok, 'name': tag, 'message': 'm'}, port=self.nginx_later.port)
        self.assertEqual(a.status, 202, a)
        self.assertIsNotNone(self.fetch(tag))
        self.assertEqual(self.api_later.sanitizer_report(), '')

    def flusher_pid(self):
        """flusher_pid - the API child holding the spool's flusher.lock (None: none yet)."""
        return lab_mod.pid_holding(children_of(self.api.proc.pid),
                                   os.path.join(self.spool, 'flusher.lock'))

    def test_flusher_killed_is_replaced(self):
        """The master restarts a flusher that died; the spooled forms still go out once."""
        self.postfix.stop()
        tag = 'fk%s' % uuid.uuid4().hex[:8]
        self.submit(tag)
        lab_mod.wait_until(lambda: self.flusher_pid() is not None, 30, 'the flusher')
        old = self.flusher_pid()
        os.kill(old, signal.SIGKILL)
        lab_mod.wait_until(lambda: self.flusher_pid() not in (None, old), 30, 'a new flusher')
        spooled = b''.join(open(os.path.join(self.spool, 'new', f), 'rb').read()
                           for f in self.spooled())
        self.assertIn(tag.encode(), spooled)
        self.postfix.start()
        self.assertIsNotNone(self.fetch(tag))
        self.assertEqual(imap_count(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, tag), 1)

    def test_api_killed_with_spool(self):
        self.postfix.stop()
        tags = ['kill%d%s' % (i, uuid.uuid4().hex[:6]) for i in range(3)]
        for t in tags:
            self.submit(t)
        self.assertGreaterEqual(len(self.spooled()), 3)
        master = self.api.proc.pid
        victims = [master] + children_of(master)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        self.api.proc.wait(10)
        labcase.lab_mod.wait_until(
            lambda: not any(lab_mod.pid_alive(p) for p in victims), 10, 'the API to die')
        self.postfix.start()
        time.sleep(3)  # nobody is left to send them
        self.assertGreaterEqual(len(self.spooled()), 3)
        self.api.stop()
        self.api.start()
        for t in tags:
            self.assertIsNotNone(self.fetch(t), t)
        labcase.lab_mod.wait_until(lambda: self.spooled() == [], 30, 'the spool to empty')
        for t in tags:
            self.assertEqual(imap_count(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, t), 1, t)


if __name__ == '__main__':
    unittest.main()
