"""test_milter_spamd - mailwarden-milter scoring through SpamAssassin's spamd (issue 10:
[spam] spam_backend = spamd:HOST:PORT), through real Postfix and Dovecot.

Real parts: Debian's spamd 4.0.1 started by the lab on loopback (a TCP port and a unix
socket) with its own site config: two test rules (MW_SPAMD_TAGWORD 6 points,
MW_SPAMD_REJECTWORD 20 points), no network tests, no Bayes; NSD (the lab DNS server) for
the milter's SPF lookups; Postfix with the ASan milter (XCLIENT from loopback, so the
milter sees a TEST-NET-1 client outside trusted_networks) delivering over LMTP to Dovecot
with the mailwarden plugin, which files X-Mailwarden-Spam: yes into Junk.

Cases: a clean message passes with X-Mailwarden-Spam: no and spamd's test names; a tagged
one lands in Junk with the subject prefix; one over reject_score is refused with 550 5.7.1;
the unix-socket form gives the same verdict; spamd receives the configured User:; a fake
spamd answering garbage, or too slowly, gives 451 4.7.1 (and with spamd_on_error = accept,
delivery with tests=SPAMD_UNAVAILABLE); a message over spamd_max_size is truncated (scored on
its first part, tests=SPAMD_TRUNCATED), or 451 / 552 / accepted with tests=SPAMD_TOO_BIG as
spamd_over_size says; a message over scan_max_size with virus scanning off gets
scan_over_limit (451), never passes unscored; spamd killed gives 451 4.7.1, and one
event=degraded component=milter_spamd line until spamd answers again (one event=recovered).
"""

import signal
import socket
import threading
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN
DELIVERY_TIMEOUT = 40

LOCAL_CF = ('body MW_SPAMD_TAGWORD /\\bmwtagword\\b/\n'
            'describe MW_SPAMD_TAGWORD mailwarden test: tag\n'
            'score MW_SPAMD_TAGWORD 6.0\n'
            'body MW_SPAMD_REJECTWORD /\\bmwrejectword\\b/\n'
            'describe MW_SPAMD_REJECTWORD mailwarden test: reject\n'
            'score MW_SPAMD_REJECTWORD 20.0\n')


def uniq(prefix):
    return '%s%s' % (prefix, uuid.uuid4().hex[:10])


def message(rcpt, token, body=''):
    """message - a small message from alice@example.com carrying TOKEN (CRLF line ends)."""
    return ('From: Alice <alice@example.com>\r\nTo: <%s>\r\nSubject: spamd test %s\r\n'
            'Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@example.com>\r\n\r\n'
            'Hello Bob,\r\n\r\nthe minutes of the meeting are below; token %s.\r\n%s\r\n'
            'Regards,\r\nAlice\r\n' % (rcpt, token, token, token, body))


class FakeSpamd:
    """FakeSpamd - a TCP server on loopback that reads a request and answers REPLY after
    DELAY seconds (one connection at a time, until stop())."""

    def __init__(self, reply, delay=0.0):
        self.reply = reply
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.backend = 'spamd:127.0.0.1:%d' % self.port
        self.connections = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.done.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            try:
                c.settimeout(5)
                data = b''
                while b'\r\n\r\n' not in data:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if self.delay:
                    self.done.wait(self.delay)
                c.sendall(self.reply)
            except OSError:
                pass
            finally:
                c.close()

    def stop(self):
        self.done.set()
        self.sock.close()
        self.thread.join(5)


class MilterSpamdTest(labcase.MilterCase):
    """Verdicts of mailwarden-milter with spamd as the scorer, through Postfix into Dovecot."""

    @classmethod
    def start_lab(cls):
        cls.dns = cls.lab.dns(zones={
            'example.com': [('@', 'TXT', 'v=spf1 ip4:192.0.2.0/24 -all')]})
        cls.spamd = cls.lab.spamd(local_cf=LOCAL_CF)
        cls.store = cls.lab.store()
        opts = lab_mod.mailwarden_plugin_options(cls.store)
        cls.dovecot = cls.lab.dovecot(cls.store, **opts)
        cls.base = ('dns_servers = %s\ndns_timeout = 2s\nlocal_domains = %s\ndkim_sign = no\n'
                    'trusted_networks = 127.0.0.0/8\n'
                    % (cls.dns.server, DOMAIN))
        cls.spam_base = ('[spam]\nenable = yes\nspam_score = 5\nreject_score = 12\n'
                         'subject_prefix = "[SPAM] "\nspamd_user = mailwarden\n')
        cls.start_mail_path(xclient=True, rcpt='spamdrcpt', config=cls.config(cls.spamd.backend))

    @classmethod
    def config(cls, backend, milter_extra='', spam_extra=''):
        if 'spamd_timeout' not in spam_extra:
            spam_extra += 'spamd_timeout = 60s\n'  # a loaded machine: spamd may be slow
        return (cls.base + milter_extra + cls.spam_base + 'spam_backend = %s\n' % backend
                + spam_extra)

    # -- helpers ---------------------------------------------------------------------------

    def configure(self, text):
        """configure - milter.conf = TEXT, SIGHUP, wait for the reload to be logged."""
        before = self.log().count('event=reload status=ok')
        self.milter.write_config(text)
        self.milter.signal(signal.SIGHUP)
        lab_mod.wait_until(lambda: self.log().count('event=reload status=ok') > before, 20,
                           'the milter to reload')

    def restore(self):
        self.configure(self.config(self.spamd.backend))

    def send(self, text, ip='192.0.2.10', helo='mail.example.com'):
        """send - one message from client IP (via XCLIENT): (stage, code, reply text)."""
        return self.send_from(ip, helo, 'alice@example.com', text, timeout=120)

    def find(self, token, mailbox='INBOX', timeout=DELIVERY_TIMEOUT):
        """find - (raw message, flags) of TOKEN in MAILBOX (waits), or None."""
        found = labcase.imap_fetch(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token,
                                   mailbox, 'SUBJECT', timeout)
        return None if found is None else (found[1].decode('utf-8', 'replace'), set(found[0]))

    spam_headers = staticmethod(labcase.spam_headers)

    def delivered_header(self, token, mailbox='INBOX'):
        found = self.find(token, mailbox)
        self.assertIsNotNone(found, '%s not delivered to %s' % (token, mailbox))
        hdrs = self.spam_headers(found[0])
        self.assertEqual(len(hdrs), 1, hdrs)
        return hdrs[0], found

    def assert_tempfail(self, r):
        self.assertEqual(r[0], 'data', r)
        self.assertEqual(r[1], 451, r)
        self.assertIn('4.7.1', r[2])

    # -- tests -------------------------------------------------------------------------------

    def test_1_clean_passes_with_spamd_header(self):
        token = uniq('clean')
        r = self.send(message(self.rcpt, token))
        self.assertEqual(r[0], 'sent', r)
        hdr, found = self.delivered_header(token)
        self.assertTrue(hdr.startswith('no;'), hdr)
        self.assertIn('required=5.00', hdr)
        self.assertNotIn('$Junk', found[1])
        # spamd's own test names (it always reports some for loopback mail), none of ours
        self.assertRegex(hdr, r'tests=[A-Z0-9_]+')
        self.assertNotIn('MW_SPAMD_', hdr)
        self.assertNotIn('MISSING_DATE', hdr)
        self.assertRegex(self.log(), r'spam=no score=\S+ tests=\S+ backend=spamd')
        # spamd got the message with the configured User:
        with open(self.spamd.log_path, errors='replace') as f:
            self.assertRegex(f.read(), r'checking message <%s@example.com> for mailwarden:'
                             % token)

    def test_2_tagged_lands_in_junk(self):
        token = uniq('tagged')
        r = self.send(message(self.rcpt, token, 'please read: mwtagword'))
        self.assertEqual(r[0], 'sent', r)
        hdr, (raw, flags) = self.delivered_header(token, 'Junk')
        self.assertTrue(hdr.startswith('yes;'), hdr)
        self.assertRegex(hdr, r'tests=([A-Z0-9_]+,)*MW_SPAMD_TAGWORD')
        self.assertIn('$Junk', flags)
        self.assertRegex(raw, r'(?m)^Subject: \[SPAM\] spamd test ' + token)

    def test_3_over_reject_score_refused(self):
        token = uniq('reject')
        r = self.send(message(self.rcpt, token, 'mwrejectword'))
        self.assertEqual(r[0], 'data', r)
        self.assertEqual(r[1], 550, r)
        self.assertIn('5.7.1', r[2])
        self.assertIsNone(self.find(token, timeout=2))

    def test_4_unix_socket(self):
        self.configure(self.config(self.spamd.unix_backend))
        try:
            token = uniq('unix')
            r = self.send(message(self.rcpt, token, 'mwtagword'))
            self.assertEqual(r[0], 'sent', r)
            hdr, _ = self.delivered_header(token, 'Junk')
            self.assertIn('MW_SPAMD_TAGWORD', hdr)
            r = self.send(message(self.rcpt, uniq('unixrej'), 'mwrejectword'))
            self.assertEqual(r[1], 550, r)
        finally:
            self.restore()

    def test_5_garbage_and_slow_spamd_tempfail(self):
        replies = [
            b'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\r\n',
            b'SPAMD/1.1 0 EX_OK\r\nContent-length: 5\r\nSpam: True ; 99.0 / 5.0\r\n\r\nA B C',
            b'SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: False ; -1.0 / 5.0\r\n'
            + b'X-Pad: ' + b'a' * 5000 + b'\r\n\r\n',
            b'SPAMD/1.0 76 Bad header line: (Content-Length mismatch)\r\n',
            b'',
        ]
        for reply in replies:
            fake = FakeSpamd(reply)
            try:
                self.configure(self.config(fake.backend))
                token = uniq('garbage')
                r = self.send(message(self.rcpt, token))
                self.assert_tempfail(r)
                self.assertIn('spam scanner unavailable', r[2])
                self.assertGreaterEqual(fake.connections, 1)
            finally:
                fake.stop()
        self.assertIn('event=spam_unscored', self.log())
        self.assertIn('reason=spamd_error action=tempfail', self.log())
        # a good answer too late: spamd_timeout holds for the whole check
        good = b'SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: False ; 0.0 / 5.0\r\n\r\n'
        fake = FakeSpamd(good, delay=6)
        try:
            self.configure(self.config(fake.backend, spam_extra='spamd_timeout = 2s\n'))
            t0 = time.monotonic()
            r = self.send(message(self.rcpt, uniq('slow')))
            self.assert_tempfail(r)
            self.assertLess(time.monotonic() - t0, 5.5)
            # spamd_on_error = accept: delivered, saying it was not scored
            self.configure(self.config(fake.backend, spam_extra='spamd_timeout = 2s\n'
                                       'spamd_on_error = accept\n'))
            token = uniq('accepted')
            r = self.send(message(self.rcpt, token))
            self.assertEqual(r[0], 'sent', r)
            hdr, _ = self.delivered_header(token)
            self.assertEqual(hdr, 'no; score=0.00; required=5.00; tests=SPAMD_UNAVAILABLE')
            self.assertIn('reason=spamd_error action=accept_unscored', self.log())
            # the same fake answering in time: its verdict is taken
            fake.delay = 0
            token = uniq('fakeok')
            r = self.send(message(self.rcpt, token))
            self.assertEqual(r[0], 'sent', r)
            hdr, _ = self.delivered_header(token)
            self.assertEqual(hdr, 'no; score=0.00; required=5.00; tests=')
        finally:
            fake.stop()
            self.restore()

    def test_6_oversize(self):
        filler = ''.join('line %05d of the attached report, nothing to see here\r\n' % i
                         for i in range(1800))  # ~100 kB
        try:
            # truncate (the default): spamd scores the first 64 kB, the reject word after
            # them is never seen
            self.configure(self.config(self.spamd.backend,
                                       spam_extra='spamd_max_size = 64k\n'))
            token = uniq('trunc')
            r = self.send(message(self.rcpt, token, 'mwtagword\r\n' + filler + 'mwrejectword'))
            self.assertEqual(r[0], 'sent', r)
            hdr, _ = self.delivered_header(token, 'Junk')
            self.assertIn('MW_SPAMD_TAGWORD', hdr)
            self.assertNotIn('MW_SPAMD_REJECTWORD', hdr)
            self.assertRegex(hdr, r'tests=[A-Z0-9_,]*SPAMD_TRUNCATED$')
            big = message(self.rcpt, uniq('big'), filler)
            for mode, code, xcode in (('tempfail', 451, '4.7.1'), ('reject', 552, '5.3.4')):
                self.configure(self.config(self.spamd.backend, spam_extra=(
                    'spamd_max_size = 64k\nspamd_over_size = %s\n' % mode)))
                r = self.send(big)
                self.assertEqual(r[1], code, r)
                self.assertIn(xcode + ' message too large to scan for spam', r[2])
            self.configure(self.config(self.spamd.backend,
                                       spam_extra='spamd_max_size = 64k\n'
                                       'spamd_over_size = accept\n'))
            token = uniq('toobig')
            r = self.send(message(self.rcpt, token, filler + 'mwrejectword'))
            self.assertEqual(r[0], 'sent', r)
            hdr, _ = self.delivered_header(token)
            self.assertEqual(hdr, 'no; score=0.00; required=5.00; tests=SPAMD_TOO_BIG')
            # over scan_max_size, virus scanning off: scan_over_limit, not a silent pass
            self.configure(self.config(self.spamd.backend, milter_extra='scan_max_size = 64k\n'))
            r = self.send(message(self.rcpt, uniq('overscan'), filler))
            self.assert_tempfail(r)
            self.assertIn('message too large to scan for spam', r[2])
            self.configure(self.config('builtin', milter_extra='scan_max_size = 64k\n'))
            r = self.send(message(self.rcpt, uniq('overscanb'), filler))
            self.assert_tempfail(r)
            self.configure(self.config('builtin', milter_extra=(
                'scan_max_size = 64k\nscan_over_limit = accept\n')))
            token = uniq('overacc')
            r = self.send(message(self.rcpt, token, filler))
            self.assertEqual(r[0], 'sent', r)
            hdr, _ = self.delivered_header(token)
            self.assertEqual(hdr, 'no; score=0.00; required=5.00; tests=SCAN_OVER_LIMIT')
        finally:
            self.restore()

    def test_9_spamd_killed_tempfails(self):
        """spamd killed: 451 4.7.1 for each message, ONE event=degraded component=milter_spamd
        line for all of them; spamd back: scored again and ONE event=recovered line."""
        enter = 'event=degraded component=milter_spamd reason=spamd_error '
        leave = 'event=recovered component=milter_spamd '
        r = self.send(message(self.rcpt, uniq('before')))  # spamd answers: not degraded
        self.assertEqual(r[0], 'sent', r)
        enters, leaves = self.log().count(enter), self.log().count(leave)
        token = uniq('killed')
        self.spamd.kill()
        try:
            r = self.send(message(self.rcpt, token))
            self.assert_tempfail(r)
            self.assertIn('spam scanner unavailable', r[2])
            self.assertRegex(self.log(), r'event=spam_unscored qid=\S+ reason=spamd_error '
                             r'action=tempfail error=.*connect')
            self.assertIsNone(self.find(token, timeout=2))
            self.assert_tempfail(self.send(message(self.rcpt, uniq('killed2'))))
            log = self.log()
            self.assertEqual(log.count(enter), enters + 1, log[-3000:])
            self.assertEqual(log.count(leave), leaves, log[-3000:])
        finally:
            self.spamd.start()
        # back: scored again
        token = uniq('back')
        r = self.send(message(self.rcpt, token, 'mwtagword'))
        self.assertEqual(r[0], 'sent', r)
        self.delivered_header(token, 'Junk')
        r = self.send(message(self.rcpt, uniq('back2')))
        self.assertEqual(r[0], 'sent', r)
        log = self.log()
        self.assertEqual(log.count(leave), leaves + 1, log[-3000:])
        self.assertEqual(log.count(enter), enters + 1, log[-3000:])


if __name__ == '__main__':
    unittest.main()
