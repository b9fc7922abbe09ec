"""test_header_nul - a NUL byte in a header field, sent through the real Postfix.

The milter protocol carries a header value as a C string, so a NUL inside a value would
let a check see less than a mail reader shows (`From: <allowed@ours>\\0, <victim@bank>`).
What Postfix 3.7 actually does, pinned here: cleanup writes each header line to the queue
file as a C string, so the line ends at its first NUL; the milter and Dovecot (over LMTP)
both get that same shortened line, and a folded continuation line after it survives in
both. A body keeps its NULs (both get them). Postfix offers no BINARYMIME. So what the
milter judges is what the mailbox holds. Should that change (a Postfix that hands the NUL to
the milter, or delivers more than it showed the milter), these tests fail: the milter
protocol layer closes the connection on a header value with a NUL in it
(tests/unit/test-milter-proto.c), which Postfix turns into a temporary failure. Mail that
bypasses Postfix (straight to Dovecot's LMTP) keeps its NUL; the Dovecot plugin then gets
the value with the NUL replaced (Dovecot's own header parsing) and does not believe such a
verdict.

One Store + Dovecot (with the plugin) + milter (ASan build, unix socket) + Postfix (SASL via Dovecot, XCLIENT
from loopback) + the lab DNS server:
  example.com        SPF ip4:192.0.2.10 -all, DMARC p=reject
  elsewhere.example  no SPF, no DMARC
"""

import glob
import os
import smtplib
import time
import uuid

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN
DELIVERY_TIMEOUT = 30


def uniq(prefix):
    """uniq - a fresh token."""
    return '%s%s' % (prefix, uuid.uuid4().hex[:10])


def message(from_line, to, token, extra=b''):
    """message - raw bytes (CRLF) with FROM_LINE (bytes, the whole From field) first."""
    return (from_line + b'\r\nTo: <' + to.encode() + b'>\r\nSubject: nul ' + token.encode() +
            b'\r\nMessage-ID: <' + token.encode() + b'@client.example>\r\n'
            b'Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n' + extra +
            b'\r\nbody token ' + token.encode() + b' with a \x00 NUL in the body\r\n')


def head_of(raw):
    """head_of - the header block of RAW (bytes, LF or CRLF) with LF line ends."""
    return raw.replace(b'\r\n', b'\n').split(b'\n\n', 1)[0]


class HeaderNulTest(labcase.MilterCase):
    """A NUL in a header: the milter and the mailbox see the same shortened value."""

    @classmethod
    def start_lab(cls):
        cls.dns = cls.lab.dns(zones={
            'example.com': [('@', 'TXT', 'v=spf1 ip4:192.0.2.10 -all'),
                            ('_dmarc', 'TXT', 'v=DMARC1; p=reject')],
            'elsewhere.example': [('@', 'A', '192.0.2.99'), ('mx', 'A', '192.0.2.99')],
        })
        cls.store = cls.lab.store()
        cls.dovecot = cls.lab.dovecot(cls.store, **lab_mod.mailwarden_plugin_options(
            cls.store, mailwarden_authserv_id='mail.' + DOMAIN))
        cls.start_mail_path(xclient=True, rcpt='nulin', sender='nulout', config=(
            'dns_servers = %s\ndns_timeout = 1s\nlocal_domains = %s\n'
            % (cls.dns.server, DOMAIN)))

    # -- helpers ---------------------------------------------------------------------------

    def stored(self, user, token, timeout=DELIVERY_TIMEOUT):
        """stored - the bytes of USER's message carrying TOKEN as Dovecot stored it (the
        Maildir file, not an IMAP rendering of it), waiting; None when it never came."""
        deadline = time.monotonic() + timeout
        pattern = os.path.join(self.dovecot.maildir(user), '*', '*')
        while True:
            for path in glob.glob(pattern):
                try:
                    with open(path, 'rb') as f:
                        raw = f.read()
                except OSError:
                    continue
                if ('nul ' + token).encode() in raw:
                    return raw
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.3)

    def submit(self, data, bdat=False):
        """submit - DATA (or one BDAT LAST chunk) as the authenticated cls.sender to itself:
        (code, reply text) of the end of data."""
        s = smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=30)
        try:
            s.ehlo('client.example.org')
            self.assertNotIn('binarymime', s.esmtp_features)
            s.login(self.sender, self.sender_pw)
            self.assertEqual(s.mail(self.sender)[0], 250)
            self.assertEqual(s.rcpt(self.sender)[0], 250)
            if not bdat:
                code, resp = s.data(data)
                return code, resp.decode(errors='replace')
            self.assertIn('chunking', s.esmtp_features)
            s.send(b'BDAT %d LAST\r\n' % len(data) + data)
            code, resp = s.getreply()
            return code, resp.decode(errors='replace')
        finally:
            labcase.quit_quietly(s)

    def inbound(self, envfrom, data):
        """inbound - DATA from 192.0.2.99 (XCLIENT) to cls.rcpt: (code, reply text)."""
        stage, code, resp = self.send_from('192.0.2.99', 'mx.elsewhere.example', envfrom, data)
        self.assertIn(stage, ('sent', 'data'), (stage, code, resp))
        return code, resp

    def inbound_delivered(self, from_line, extra=b''):
        """inbound_delivered - a message with FROM_LINE and the EXTRA header lines from
        192.0.2.99: asserts it was accepted and delivered; the stored bytes."""
        token = uniq('in')
        code, resp = self.inbound('x@elsewhere.example',
                                  message(from_line, self.rcpt, token, extra))
        self.assertEqual(code, 250, resp)
        raw = self.stored(self.rcpt, token)
        self.assertIsNotNone(raw, 'not delivered')
        return raw

    def from_field(self, raw):
        """from_field - the From field of RAW's header with its line ends (bytes)."""
        lines = head_of(raw).split(b'\n')
        for i, line in enumerate(lines):
            if line.lower().startswith(b'from:'):
                out = [line]
                for cont in lines[i + 1:]:
                    if cont[:1] not in (b' ', b'\t'):
                        break
                    out.append(cont)
                return b'\n'.join(out)
        return None

    # -- tests -------------------------------------------------------------------------------

    def test_submission_from_ends_at_nul(self):
        # the allowed address before the NUL, someone else's after it: Postfix keeps only
        # the first part, the milter allows it, and the mailbox shows nothing more
        for bdat in (False, True):
            with self.subTest(bdat=bdat):
                token = uniq('out')
                line = b'From: <%s>\x00, <victim@bank.example>' % self.sender.encode()
                code, resp = self.submit(message(line, self.sender, token), bdat)
                self.assertEqual(code, 250, resp)
                raw = self.stored(self.sender, token)
                self.assertIsNotNone(raw, 'not delivered')
                self.assertEqual(self.from_field(raw), b'From: <%s>' % self.sender.encode())
                self.assertNotIn(b'\x00', head_of(raw))
                self.assertNotIn(b'victim', raw)
                # the body keeps its NUL: the milter's scanners got these bytes too
                self.assertIn(b'with a \x00 NUL in the body', raw)

    def test_submission_other_address_before_nul_refused(self):
        token = uniq('out')
        line = b'From: <victim@bank.example>\x00, <%s>' % self.sender.encode()
        code, resp = self.submit(message(line, self.sender, token))
        self.assertEqual(code, 550, resp)
        self.assertIn('5.7.1 <victim@bank.example>: not allowed for %s' % self.sender, resp)
        self.assertIsNone(self.stored(self.sender, token, timeout=1))

    def test_submission_folded_after_nul_refused(self):
        # the continuation line of a field whose first line had a NUL is kept (by Postfix
        # for the milter and the mailbox alike): two addresses, refused
        token = uniq('out')
        line = b'From: <%s>\x00junk\r\n\t, <victim@bank.example>' % self.sender.encode()
        code, resp = self.submit(message(line, self.sender, token))
        self.assertEqual(code, 550, resp)
        self.assertIn('5.7.1', resp)
        self.assertIsNone(self.stored(self.sender, token, timeout=1))

    def test_inbound_from_ends_at_nul(self):
        # DMARC judges the domain before the NUL, which is all the mailbox shows
        raw = self.inbound_delivered(b'From: <x@elsewhere.example>\x00, <ceo@example.com>')
        self.assertEqual(self.from_field(raw), b'From: <x@elsewhere.example>')
        self.assertNotIn(b'ceo@', raw)
        # the p=reject domain before the NUL: refused
        token = uniq('in')
        line = b'From: <ceo@example.com>\x00, <x@elsewhere.example>'
        code, resp = self.inbound('x@elsewhere.example', message(line, self.rcpt, token))
        self.assertEqual(code, 550, resp)
        self.assertIn('5.7.26', resp)
        self.assertIsNone(self.stored(self.rcpt, token, timeout=1))

    def test_inbound_verdict_headers_with_nul_removed(self):
        # X-Mailwarden-* is ours by name whatever its value: removed. Of the results
        # headers the milter sees "mail.example.org" (ours) and "mail.exa" (no ";": not
        # provably someone else's): both removed, only the milter's own one arrives
        extra = (b'X-Mailwarden-Spam: no\x00; score=-99.0; required=5.0; tests=FORGED\r\n'
                 b'Authentication-Results: mail.example.org\x00; dkim=pass header.d=ex.com\r\n'
                 b'Authentication-Results: mail.exa\x00mple.org; dmarc=pass\r\n')
        head = head_of(self.inbound_delivered(b'From: <x@elsewhere.example>', extra))
        self.assertNotIn(b'\x00', head)
        self.assertNotIn(b'-99.0', head)
        self.assertNotIn(b'FORGED', head)
        self.assertNotIn(b'header.d=ex.com', head)
        self.assertNotIn(b'mple.org; dmarc=pass', head)
        results = [l for l in head.split(b'\n') if l.lower().startswith(b'authentication-')]
        self.assertEqual(results, [b'Authentication-Results: mail.example.org; spf=none'])

    def test_plugin_ignores_verdict_with_nul(self):
        # Only mail that bypassed Postfix (straight to Dovecot's LMTP) can hold a NUL in a
        # header: Dovecot stores it and gives the plugin the value with the NUL replaced, so
        # a verdict whose part before the NUL would read as spam is not believed (a reader
        # stopping at the NUL would file it into Junk); the same verdict without the NUL is
        # (the control: the check can see a verdict)
        cases = [(b'yes; score=9.0; required=5.0; tests=BAYES\x00,OTHER', 'INBOX', False),
                 (b'yes\x00; score=9.0; required=5.0; tests=BAYES', 'INBOX', False),
                 (b'yes; score=9.0; required=5.0; tests=BAYES', 'Junk', True)]
        for value, box, junk in cases:
            with self.subTest(value=value):
                token = uniq('lmtp')
                c = smtplib.LMTP('127.0.0.1', self.dovecot.lmtp_port, timeout=30)
                try:
                    self.assertEqual(c.ehlo('lab')[0], 250)
                    self.assertEqual(c.mail('x@elsewhere.example')[0], 250)
                    self.assertEqual(c.rcpt(self.rcpt)[0], 250)
                    code, resp = c.data(message(b'From: <x@elsewhere.example>', self.rcpt,
                                                token, b'X-Mailwarden-Spam: ' + value + b'\r\n'))
                    self.assertEqual(code, 250, resp)
                finally:
                    labcase.quit_quietly(c)
                got = labcase.imap_fetch(self.dovecot.imap_port, self.rcpt, self.rcpt_pw,
                                         token, mailbox=box)
                self.assertIsNotNone(got, 'not in %s' % box)
                self.assertEqual('$Junk' in got[0], junk, got[0])

    def test_nul_in_field_name_ends_header(self):
        # a NUL in a field name makes the line no field: the header ends there (for the
        # milter and the mailbox), so the "X-Mailwarden-Spam" line is body text
        extra = b'X-Mailwarden\x00-Spam: no; score=-99.0; required=5.0; tests=\r\n'
        raw = self.inbound_delivered(b'From: <x@elsewhere.example>', extra)
        self.assertNotIn(b'X-Mailwarden', head_of(raw))
        self.assertNotIn(b'\x00', head_of(raw))
        self.assertIn(b'\nX-Mailwarden\x00-Spam: no;', raw)

