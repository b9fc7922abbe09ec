"""test_milter_sign - DKIM signing of authenticated mail by mailwarden-milter through Postfix.

Real parts: Postfix with SASL via Dovecot and the ASan milter, delivery over LMTP to
Dovecot, the delivered message read back over IMAP. Keys come from `mailwardenctl dkim
generate` (store, encrypted with the master key the milter reads at start) and from a key
file in dkim_key_dir. Every signature is checked by an independent verifier, python3-dkim
(Debian's dkimpy), whose DNS lookups are answered with the records `mailwardenctl dkim txt`
prints.
"""

import base64
import grp
import os
import pwd
import re
import signal
import smtplib
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
OTHER = 'nokey.example'          # a domain without any key
FILEDOM = 'filekey.example'      # a domain whose key is a file in dkim_key_dir
DELIVERY_TIMEOUT = 30


def uniq(prefix):
    """uniq - a fresh token."""
    return '%s%s' % (prefix, uuid.uuid4().hex[:10])


def message(from_addr, to, token):
    """message - a small message (CRLF line ends) carrying TOKEN."""
    return ('From: Sender <%s>\r\nTo: <%s>\r\nSubject: signed %s\r\n'
            'Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@client>\r\n'
            'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n'
            'Hello,  the numbers\tare in.  \r\n\r\nbody token %s\r\n\r\n\r\n'
            % (from_addr, to, token, token, token))


def fetch_raw(port, user, password, token, timeout=DELIVERY_TIMEOUT):
    """fetch_raw - the raw bytes of the message carrying TOKEN in USER's INBOX, or None."""
    found = labcase.imap_fetch(port, user, password, token, timeout=timeout)
    return None if found is None else found[1]


class MilterSignTest(labcase.MilterCase):
    """Outbound DKIM signatures, verified by dkimpy."""

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.store.ctl('dkim', 'generate', DOMAIN, '--selector', 'mw1')
        cls.keydir = os.path.join(cls.lab.root, 'dkimkeys')
        os.makedirs(cls.keydir)
        gid = grp.getgrnam('dovecot').gr_gid
        os.chown(cls.keydir, 0, gid)
        os.chmod(cls.keydir, 0o750)
        keyfile = os.path.join(cls.keydir, '%s.f1.key' % FILEDOM)
        genrsa = subprocess.run(['openssl', 'genpkey', '-algorithm', 'RSA',
                                 '-pkeyopt', 'rsa_keygen_bits:2048'],
                                capture_output=True, text=True, timeout=60, check=True)
        with open(keyfile, 'w') as f:
            f.write(genrsa.stdout)
        # the milter runs as dovecot: the key file is its own, mode 0600
        os.chown(keyfile, pwd.getpwnam('dovecot').pw_uid, gid)
        os.chmod(keyfile, 0o600)
        cls.records = {}
        cls.add_record(DOMAIN, 'mw1')
        cls.file_pub = cls.public_of(keyfile)
        cls.records['f1._domainkey.' + FILEDOM] = 'v=DKIM1; k=rsa; p=' + cls.file_pub
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.milter = cls.lab.milter(cls.store, cache_ttl='2s',
                                    config='dkim_key_dir = %s\n' % cls.keydir)
        cls.postfix = cls.lab.postfix(cls.dovecot, milters=[cls.milter.postfix_spec])
        cls.rcpt = 'signrcpt%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
        cls.rcpt_pw = cls.store.add_user(cls.rcpt)

    @classmethod
    def add_record(cls, domain, selector):
        txt = cls.store.ctl('dkim', 'txt', domain, selector).stdout
        name = txt.split()[0].rstrip('.').lower()
        cls.records[name] = ''.join(re.findall(r'"([^"]*)"', txt))

    @staticmethod
    def public_of(keyfile):
        """public_of - the p= value of a PEM private key (openssl, DER, base64)."""
        der = subprocess.run(['openssl', 'pkey', '-in', keyfile, '-pubout', '-outform', 'DER'],
                             capture_output=True, timeout=30, check=True).stdout
        return base64.b64encode(der).decode()

    # -- helpers ---------------------------------------------------------------------------

    def user(self, domain, prefix='s'):
        """user - a new active user NAME@DOMAIN allowed to send as themselves."""
        name = '%s%s@%s' % (prefix, uuid.uuid4().hex[:8], domain)
        pw = self.store.add_user(name)
        self.store.allow_from(name, name)
        return name, pw

    def submit(self, user, pw, token, text=None):
        """submit - an authenticated message from USER to the recipient (TEXT, default
        message()): (code, reply)."""
        s = smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=60)
        try:
            s.ehlo('client.example')
            s.login(user, pw)
            s.mail(user)
            s.rcpt(self.rcpt)
            code, resp = s.data((text or message(user, self.rcpt, token)).encode())
            return code, resp.decode()
        finally:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass

    def verify(self, raw, records=None):
        """verify - dkimpy's verdict on RAW; the names it looked up."""
        recs = records if records is not None else self.records
        lookups = []

        def dnsfunc(name, timeout=5):
            n = name.decode().rstrip('.').lower()
            lookups.append(n)
            return recs.get(n, '').encode() or None

        return dkim.verify(raw, dnsfunc=dnsfunc), lookups

    def signature(self, raw):
        """signature - the tags of the (single) DKIM-Signature of RAW."""
        head = raw.replace(b'\r\n', b'\n').split(b'\n\n', 1)[0]
        sigs = re.findall(rb'^DKIM-Signature:(.*?)(?=^\S|\Z)', head + b'\n', re.S | re.M |
                          re.I)
        self.assertEqual(len(sigs), 1, head.decode(errors='replace'))
        text = re.sub(rb'\s+', b'', sigs[0]).decode()
        return dict(t.split('=', 1) for t in text.split(';') if '=' in t)

    # -- tests -------------------------------------------------------------------------------

    def test_store_key_signature_verifies(self):
        user, pw = self.user(DOMAIN)
        token = uniq('sig')
        code, resp = self.submit(user, pw, token)
        self.assertEqual(code, 250, resp)
        raw = fetch_raw(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token)
        self.assertIsNotNone(raw, 'signed message not delivered')
        tags = self.signature(raw)
        self.assertEqual((tags['d'], tags['s'], tags['a'], tags['c']),
                         (DOMAIN, 'mw1', 'rsa-sha256', 'relaxed/relaxed'))
        signed = tags['h'].lower().split(':')
        for h in ('from', 'to', 'subject', 'date', 'message-id'):
            # over-signed: one more instance than the message has
            self.assertEqual(signed.count(h), 2, tags['h'])
        ok, lookups = self.verify(raw)
        self.assertTrue(ok, raw[:1500])
        self.assertEqual(lookups, ['mw1._domainkey.' + DOMAIN])
        # tampering breaks it: the verifier is not a rubber stamp
        bad = raw.replace(b'the numbers', b'THE numbers')
        self.assertNotEqual(bad, raw)
        self.assertFalse(self.verify(bad)[0])
        # and another key's record does not verify it
        other = {'mw1._domainkey.' + DOMAIN: self.records['f1._domainkey.' + FILEDOM]}
        self.assertFalse(self.verify(raw, other)[0])
        with open(self.milter.log_path) as f:
            self.assertIn('dkim=signed domain=%s selector=mw1' % DOMAIN, f.read())

    def test_nul_in_signed_header(self):
        # Postfix ends a header line at a NUL before the milter sees it and stores the same
        # shortened line (test_header_nul): the signer signs exactly what is delivered, so
        # the signature verifies, over a Subject that does not show the tail
        user, pw = self.user(DOMAIN)
        token = uniq('sig')
        text = message(user, self.rcpt, token).replace(
            'Subject: signed %s' % token, 'Subject: signed %s\0 hidden tail' % token, 1)
        code, resp = self.submit(user, pw, token, text)
        self.assertEqual(code, 250, resp)
        raw = fetch_raw(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token)
        self.assertIsNotNone(raw, 'signed message not delivered')
        self.assertIn(b'\nSubject: signed %s\r\n' % token.encode(), raw)
        self.assertNotIn(b'hidden tail', raw)
        self.assertIn('subject', self.signature(raw)['h'].lower().split(':'))
        self.assertTrue(self.verify(raw)[0], raw[:1500])

    def test_key_file_signature_verifies(self):
        user, pw = self.user(FILEDOM)
        token = uniq('file')
        code, resp = self.submit(user, pw, token)
        self.assertEqual(code, 250, resp)
        raw = fetch_raw(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token)
        self.assertIsNotNone(raw)
        tags = self.signature(raw)
        self.assertEqual((tags['d'], tags['s']), (FILEDOM, 'f1'))
        self.assertTrue(self.verify(raw)[0], raw[:1500])

    def test_domain_without_key_is_sent_unsigned(self):
        user, pw = self.user(OTHER)
        token = uniq('nokey')
        code, resp = self.submit(user, pw, token)
        self.assertEqual(code, 250, resp)
        raw = fetch_raw(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token)
        self.assertIsNotNone(raw)
        self.assertNotIn(b'dkim-signature:', raw.lower())

    def test_inbound_mail_is_not_signed(self):
        token = uniq('inb')
        s = smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=60)
        try:
            s.ehlo('client.example')
            s.sendmail('x@%s' % DOMAIN, [self.rcpt],
                       message('x@%s' % DOMAIN, self.rcpt, token).encode())
        finally:
            s.quit()
        raw = fetch_raw(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token)
        self.assertIsNotNone(raw)
        self.assertNotIn(b'dkim-signature:', raw.lower())

    def test_every_signed_name_oversigned(self):
        # issue 16 item 6 through Postfix and the milter: a Reply-To, Cc or second
        # Content-Type added to the delivered message breaks the signature
        user, pw = self.user(DOMAIN)
        token = uniq('over')
        code, resp = self.submit(user, pw, token)
        self.assertEqual(code, 250, resp)
        raw = fetch_raw(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token)
        self.assertIsNotNone(raw, 'signed message not delivered')
        self.assertTrue(self.verify(raw)[0], raw[:1500])
        signed = self.signature(raw)['h'].lower().split(':')
        for h in ('reply-to', 'cc', 'sender', 'in-reply-to', 'references'):
            self.assertEqual(signed.count(h), 1, signed)
        for h in ('mime-version', 'content-type'):
            self.assertEqual(signed.count(h), 2, signed)
        end = raw.index(b'\r\n\r\n') + 2
        for added in (b'Reply-To: <mallory@evil.example>\r\n', b'Cc: <victim@example.net>\r\n',
                      b'Content-Type: text/html\r\n', b'Subject: urgent\r\n'):
            self.assertFalse(self.verify(raw[:end] + added + raw[end:])[0], added)

    def test_too_many_signed_fields_refused(self):
        # issue 16 item 6: more header fields to sign than MW_DKIM_SIGNED_FIELDS_MAX (200)
        # is refused for good (550 5.7.1): retrying cannot help and unsigned is no option
        user, pw = self.user(DOMAIN)
        token = uniq('many')
        text = message(user, self.rcpt, token)
        head, body = text.split('\r\n\r\n', 1)
        text = head + '\r\n' + '\r\n'.join(['To: <%s>' % self.rcpt] * 2000) + '\r\n\r\n' + body
        started = time.monotonic()
        code, resp = self.submit(user, pw, token, text)
        self.assertLess(time.monotonic() - started, 20)
        self.assertEqual(code, 550, resp)
        self.assertIn('5.7.1', resp)
        self.assertIn('more than 200 header fields to sign', resp)
        with open(self.milter.log_path) as f:
            self.assertIn('event=dkim_sign_refused', f.read())

    def test_z_broken_key_tempfails_then_recovers(self):
        # a key file that exists for a domain but does not parse is a configuration
        # fault: 451 4.7.1 by default, nothing leaves unsigned by accident
        dom = 'broken.example'
        path = os.path.join(self.keydir, '%s.b1.key' % dom)
        with open(path, 'w') as f:
            f.write('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')
        os.chown(path, pwd.getpwnam('dovecot').pw_uid, -1)
        os.chmod(path, 0o600)
        user, pw = self.user(dom)
        token = uniq('broken')
        code, resp = self.submit(user, pw, token)
        self.assertEqual(code, 451, resp)
        self.assertIn('4.7.1', resp)
        # dkim_on_error = accept: sent unsigned
        with open(self.milter.log_path) as f:
            before = f.read().count('event=reload status=ok')
        self.milter.write_config('dkim_key_dir = %s\ndkim_on_error = accept\n' % self.keydir)
        try:
            self.milter.signal(signal.SIGHUP)
            lab_mod.wait_until(lambda: open(self.milter.log_path).read().count(
                'event=reload status=ok') > before, 10, 'the milter to reload')
            code, resp = self.submit(user, pw, token)
            self.assertEqual(code, 250, resp)
            raw = fetch_raw(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token)
            self.assertIsNotNone(raw)
            self.assertNotIn(b'dkim-signature:', raw.lower())
        finally:
            self.milter.write_config()
            self.milter.signal(signal.SIGHUP)
            lab_mod.wait_until(lambda: open(self.milter.log_path).read().count(
                'event=reload status=ok') > before + 1, 10, 'the milter to reload back')
        # the store key still works after the reload (master key kept)
        user2, pw2 = self.user(DOMAIN)
        token2 = uniq('after')
        self.assertEqual(self.submit(user2, pw2, token2)[0], 250)
        raw = fetch_raw(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token2)
        self.assertIsNotNone(raw)
        self.assertTrue(self.verify(raw)[0])


if __name__ == '__main__':
    unittest.main()
