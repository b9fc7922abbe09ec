"""test_milter_virus - virus scanning in mailwarden-milter through real Postfix (issue 10).

Real parts: Postfix (smtpd_milters = the ASan milter, milter_default_action = tempfail)
delivering over LMTP to Dovecot, the milter's in-process libclamav, and Debian's own clamd
(package clamav-daemon) on a unix socket in the lab. No signatures exist on this machine and
none are downloaded: the test writes its own .ndb body signatures (one for the EICAR test
string) into a directory both engines read; ClamAV names them NAME.UNOFFICIAL.

The test virus is sent plain, as a base64 attachment and inside a zip attachment; clean mail
must pass. The same messages go through clamd (virus_scan = clamd after a SIGHUP). Then: tag
and quarantine modes, an engine that cannot be built (451 4.7.1 until signatures appear),
clamd down (451 4.7.1), authenticated (outbound) mail, and a signature reload (new file +
SIGHUP, then a changed file picked up by its mtime) under a steady stream of a few hundred
messages: every message must get its right answer, none a tempfail.
"""

import base64
import io
import os
import re
import signal
import smtplib
import threading
import time
import unittest
import uuid
import zipfile

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN
EICAR = (r'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*')
EICAR_NAME = 'Mailwarden.Test.EICAR.UNOFFICIAL'
SECOND = 'MAILWARDEN-SECOND-TEST-VIRUS-7f3a9c0e51'
SECOND_NAME = 'Mailwarden.Test.Second.UNOFFICIAL'
THIRD = 'MAILWARDEN-THIRD-TEST-VIRUS-be21d0c4aa'
THIRD_NAME = 'Mailwarden.Test.Third.UNOFFICIAL'


def write_ndb(directory, filename, name, text):
    """write_ndb - a body signature NAME matching TEXT anywhere, in DIRECTORY/FILENAME."""
    path = os.path.join(directory, filename)
    with open(path + '.tmp', 'w') as f:
        f.write('%s:0:*:%s\n' % (name, text.encode().hex()))
    os.chmod(path + '.tmp', 0o644)
    os.rename(path + '.tmp', path)


def plain(token, body):
    return ('From: <sender@example.com>\r\nTo: <rcpt@%s>\r\nSubject: virus test %s\r\n'
            'Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@test>\r\n\r\n'
            'token %s\r\n%s\r\n' % (DOMAIN, token, token, token, body))


def with_attachment(token, filename, data):
    """with_attachment - a multipart message carrying DATA (bytes) base64-encoded."""
    b64 = base64.encodebytes(data).decode().replace('\n', '\r\n')
    return ('From: <sender@example.com>\r\nTo: <rcpt@%s>\r\nSubject: attachment %s\r\n'
            'Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@test>\r\n'
            'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b-%s"\r\n\r\n'
            '--b-%s\r\nContent-Type: text/plain\r\n\r\ntoken %s, see attached\r\n'
            '--b-%s\r\nContent-Type: application/octet-stream; name="%s"\r\n'
            'Content-Transfer-Encoding: base64\r\n'
            'Content-Disposition: attachment; filename="%s"\r\n\r\n%s\r\n--b-%s--\r\n'
            % (DOMAIN, token, token, token, token, token, token, filename, filename, b64,
               token))


def zipped(name, text):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, text)
    return buf.getvalue()


class MilterVirusTest(labcase.MilterCase):
    """Virus verdicts of mailwarden-milter (libclamav and clamd) on mail through Postfix."""

    @classmethod
    def start_lab(cls):
        cls.sigs = cls.lab_dir('signatures')
        write_ndb(cls.sigs, 'eicar.ndb', 'Mailwarden.Test.EICAR', EICAR)
        cls.empty = cls.lab_dir('nosignatures', mode=0o777)
        cls.store = cls.lab.store()
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.clamd = cls.lab.clamd(cls.sigs)
        cls.base = ('virus_signatures = %s\nvirus_reload_check = 1s\n'
                    'virus_clamd_socket = %s\nvirus_clamd_timeout = 10s\n'
                    'dkim_sign = no\n' % (cls.sigs, cls.clamd.socket))
        cls.start_mail_path(rcpt='vrcpt', sender='vsend',
                            config=cls.base + 'virus_scan = libclamav\n')

    # -- helpers ---------------------------------------------------------------------------

    def configure(self, extra, base=None):
        """configure - milter.conf with EXTRA after the base lines (BASE: other ones); SIGHUP;
        wait until the virus engine was rebuilt (or its rebuild failed)."""
        before = len(re.findall(r'event=virus_reload .*why=sighup', self.log()))
        self.milter.write_config((self.base if base is None else base) + extra)
        self.milter.signal(signal.SIGHUP)
        lab_mod.wait_until(
            lambda: len(re.findall(r'event=virus_reload .*why=sighup', self.log())) > before
            or ('virus_scan = off' in extra and 'event=reload status=ok' in self.log()),
            20, 'the milter to reload')

    def restart(self, stopped=False):
        """restart - start the milter again and wait until it takes signals (its socket is
        open before its signal mask is set: a SIGHUP that early would end it)."""
        if not stopped:
            self.milter.stop()
        pid_line = re.compile(r'event=start socket=\S+ user=\S+ pid=(\d+)')
        self.milter.start()
        lab_mod.wait_until(lambda: str(self.milter.proc.pid) in pid_line.findall(self.log()),
                           20, 'the milter to start')

    def send(self, text, auth=None, sender='sender@example.com'):
        """send - TEXT to the recipient: (code, reply text)."""
        s = smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=60)
        try:
            s.ehlo('client.example')
            if auth is not None:
                s.login(*auth)
                sender = auth[0]
            s.mail(sender)
            s.rcpt(self.rcpt)
            try:
                code, resp = s.data(text.encode())
            except smtplib.SMTPDataError as e:
                code, resp = e.smtp_code, e.smtp_error
            return code, resp.decode(errors='replace')
        finally:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass

    def fetch(self, token, timeout=30):
        """fetch - the delivered message carrying TOKEN, or None."""
        return labcase.imap_text(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token,
                                 timeout=timeout)

    def assert_refused(self, text, name, **kw):
        code, resp = self.send(text, **kw)
        self.assertEqual(code, 554, resp)
        self.assertIn('5.7.1 virus found: %s' % name, resp)

    def assert_accepted(self, text, **kw):
        code, resp = self.send(text, **kw)
        self.assertEqual(code, 250, resp)
        return resp

    def verdicts(self):
        """verdicts - plain, base64 attachment, zip attachment refused; clean accepted."""
        t = uuid.uuid4().hex[:10]
        self.assert_refused(plain(t, EICAR), EICAR_NAME)
        self.assert_refused(with_attachment(t, 'eicar.com', EICAR.encode()), EICAR_NAME)
        self.assert_refused(with_attachment(t, 'eicar.zip', zipped('eicar.com', EICAR)),
                            EICAR_NAME)
        clean = uuid.uuid4().hex[:10]
        self.assert_accepted(with_attachment(clean, 'notes.zip',
                                             zipped('notes.txt', 'nothing here ' * 50)))
        self.assertIsNotNone(self.fetch(clean), 'clean mail was not delivered')
        return clean

    # -- tests -----------------------------------------------------------------------------

    def test_1_libclamav_verdicts(self):
        self.configure('virus_scan = libclamav\n')
        self.verdicts()
        self.assertIn('event=virus_found qid=', self.log())
        self.assertIn('signature=%s action=reject' % EICAR_NAME, self.log())

    def test_2_clamd_same_verdicts(self):
        self.configure('virus_scan = clamd\n')
        try:
            self.verdicts()
            self.assertRegex(self.log(), r'event=virus_reload status=ok why=sighup engine=clamd')
        finally:
            self.configure('virus_scan = libclamav\n')

    def test_3_tag_and_quarantine(self):
        self.configure('virus_scan = libclamav\nvirus_action = tag\n')
        try:
            bad, good = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
            self.assert_accepted(with_attachment(bad, 'eicar.com', EICAR.encode()))
            self.assert_accepted(plain(good, 'all fine'))
            raw = self.fetch(bad)
            self.assertIsNotNone(raw, 'tagged mail was not delivered')
            self.assertIn('X-Mailwarden-Virus: infected (%s)' % EICAR_NAME, raw)
            raw = self.fetch(good)
            self.assertIsNotNone(raw)
            self.assertIn('X-Mailwarden-Virus: clean', raw)
            # a forged verdict from outside is removed, ours stands
            forged = uuid.uuid4().hex[:10]
            self.assert_accepted(plain(forged, EICAR).replace(
                'Subject:', 'X-Mailwarden-Virus: clean\r\nSubject:', 1))
            raw = self.fetch(forged)
            self.assertEqual(re.findall(r'X-Mailwarden-Virus: [^\r\n]*', raw),
                             ['X-Mailwarden-Virus: infected (%s)' % EICAR_NAME])

            self.configure('virus_scan = libclamav\nvirus_action = quarantine\n')
            held = uuid.uuid4().hex[:10]
            resp = self.assert_accepted(plain(held, EICAR))
            qid = re.search(r'queued as ([0-9A-Za-z]+)', resp).group(1)
            hold = os.path.join(self.postfix.queue_dir, 'hold')
            lab_mod.wait_until(lambda: os.path.exists(os.path.join(hold, qid)), 20,
                               'message %s in the hold queue' % qid)
            self.assertIsNone(self.fetch(held, timeout=2), 'quarantined mail was delivered')
        finally:
            self.configure('virus_scan = libclamav\n')

    def test_4_engine_missing_then_signatures_appear(self):
        # a milter started on an empty signature directory has no engine: 451, never 250
        self.milter.stop()
        self.milter.write_config(self.base.replace(self.sigs, self.empty) +
                                 'virus_scan = libclamav\n')
        enter = 'event=degraded component=milter_virus reason=no_engine '
        leave = 'event=recovered component=milter_virus '
        enters, leaves = self.log().count(enter), self.log().count(leave)
        self.restart(stopped=True)
        try:
            code, resp = self.send(plain(uuid.uuid4().hex[:10], 'clean text'))
            self.assertEqual(code, 451, resp)
            self.assertIn('4.7.1 virus scanner unavailable', resp)
            code, resp = self.send(plain(uuid.uuid4().hex[:10], EICAR))
            self.assertEqual(code, 451, resp)
            # issue 17: the state is logged once (at start), not per message
            self.assertEqual(self.log().count(enter), enters + 1, self.log())
            # signatures arrive (freshclam's first run): the watcher builds the engine
            write_ndb(self.empty, 'eicar.ndb', 'Mailwarden.Test.EICAR', EICAR)
            lab_mod.wait_until(lambda: 'why=no_engine engine=libclamav signatures=1'
                               in self.log(), 20, 'the engine to be built')
            self.assert_refused(plain(uuid.uuid4().hex[:10], EICAR), EICAR_NAME)
            self.assertEqual(self.log().count(leave), leaves + 1, self.log())
            self.assertEqual(self.log().count(enter), enters + 1, self.log())
        finally:
            self.milter.stop()
            self.milter.write_config(self.base + 'virus_scan = libclamav\n')
            self.restart(stopped=True)

    def test_5_clamd_down(self):
        down = self.base.replace(self.clamd.socket,
                                 'unix:' + os.path.join(self.lab.root, 'no-clamd.sock'))
        enter = 'event=degraded component=milter_virus reason=scan_error '
        leave = 'event=recovered component=milter_virus '
        enters, leaves = self.log().count(enter), self.log().count(leave)
        self.configure('virus_scan = clamd\n', base=down)
        try:
            code, resp = self.send(plain(uuid.uuid4().hex[:10], 'clean text'))
            self.assertEqual(code, 451, resp)
            self.assertIn('4.7.1 virus scanner unavailable', resp)
            self.configure('virus_scan = clamd\nvirus_on_error = reject\n', base=down)
            code, resp = self.send(plain(uuid.uuid4().hex[:10], 'clean text'))
            self.assertEqual(code, 554, resp)
            # issue 17: two messages refused, one degraded line
            self.assertEqual(self.log().count(enter), enters + 1, self.log())
        finally:
            self.configure('virus_scan = libclamav\n')
        self.assert_accepted(plain(uuid.uuid4().hex[:10], 'clean text'))
        self.assertEqual(self.log().count(leave), leaves + 1, self.log())
        self.assertEqual(self.log().count(enter), enters + 1, self.log())

    def test_6_outbound_and_size_limit(self):
        auth = (self.sender, self.sender_pw)
        text = plain(uuid.uuid4().hex[:10], EICAR).replace('<sender@example.com>',
                                                           '<%s>' % self.sender)
        self.assert_refused(text, EICAR_NAME, auth=auth)
        self.configure('virus_scan = libclamav\nvirus_outbound = no\n')
        try:
            self.assert_accepted(text, auth=auth)
            # over scan_max_size: tempfail by default, never accepted unscanned
            self.configure('virus_scan = libclamav\nscan_max_size = 64k\n')
            big = plain(uuid.uuid4().hex[:10], ('x' * 70 + '\r\n') * 1000)
            code, resp = self.send(big)
            self.assertEqual(code, 451, resp)
            self.assertIn('4.7.1 message too large or too complex to scan', resp)
            self.configure('virus_scan = libclamav\nscan_max_size = 64k\n'
                           'scan_over_limit = reject\n')
            code, resp = self.send(big)
            self.assertEqual(code, 552, resp)
        finally:
            self.configure('virus_scan = libclamav\n')

    def test_7_reload_under_load(self):
        self.configure('virus_scan = libclamav\n')
        results, errors = [], []
        stop = threading.Event()

        def sender(idx):
            # each thread: one SMTP session per message, clean and infected in turn, until
            # the reloads are over
            for i in range(100000):
                kind = 'virus' if i % 3 == 0 else 'clean'
                body = EICAR if kind == 'virus' else 'clean text %d-%d' % (idx, i)
                try:
                    code, resp = self.send(plain('%d-%d-%s' % (idx, i, kind), body))
                    results.append((kind, code, resp))
                except Exception as e:	# counted as a failure below
                    errors.append(repr(e))
                if stop.is_set():
                    break

        threads = [threading.Thread(target=sender, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        try:
            time.sleep(1)
            # a new signature file and SIGHUP while mail flows
            write_ndb(self.sigs, 'second.ndb', 'Mailwarden.Test.Second', SECOND)
            self.milter.signal(signal.SIGHUP)
            time.sleep(1.5)
            # a changed file, noticed by its mtime alone (no signal)
            with open(os.path.join(self.sigs, 'second.ndb'), 'a') as f:
                f.write('Mailwarden.Test.Third:0:*:%s\n' % THIRD.encode().hex())
            lab_mod.wait_until(lambda: 'why=signatures_changed engine=libclamav signatures=3'
                               in self.log(), 20, 'the watcher to rebuild the engine')
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(120)
        self.assertEqual(errors, [])
        self.assertGreaterEqual(len(results), 200, 'too little load to show anything')
        wrong = [r for r in results
                 if (r[0] == 'clean' and r[1] != 250) or (r[0] == 'virus' and r[1] != 554)]
        self.assertEqual(wrong, [], 'messages answered wrongly during reloads')
        self.assertRegex(self.log(), r'event=virus_reload status=ok why=sighup engine=libclamav '
                                     r'signatures=2')
        self.assert_refused(plain(uuid.uuid4().hex[:10], SECOND), SECOND_NAME)
        self.assert_refused(plain(uuid.uuid4().hex[:10], THIRD), THIRD_NAME)
        # a broken signature file: the reload fails, the old engine goes on
        write_ndb(self.sigs, 'zz-broken.ndb', 'x', 'y')
        with open(os.path.join(self.sigs, 'zz-broken.ndb'), 'w') as f:
            f.write('this is not a signature\n')
        lab_mod.wait_until(lambda: re.search(r'event=virus_reload status=failed '
                                             r'why=signatures_changed', self.log()), 20,
                           'the failed rebuild')
        self.assert_refused(plain(uuid.uuid4().hex[:10], THIRD), THIRD_NAME)
        self.assert_accepted(plain(uuid.uuid4().hex[:10], 'still clean'))
        os.unlink(os.path.join(self.sigs, 'zz-broken.ndb'))


if __name__ == '__main__':
    unittest.main()
