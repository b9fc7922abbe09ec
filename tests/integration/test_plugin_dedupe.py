"""test_plugin_dedupe - the Dovecot plugin does not save a re-delivery of the same queue file
twice (issue 17: lmtp saved the message, its master was killed and it answered Postfix
"421 4.3.2 Shutting down", and Postfix delivered the queue file again).

A real Dovecot (LMTP + IMAP, the build's plugin, mailwarden_dedupe_window = 10s): the same
raw message (with a Postfix Received header carrying the queue id) delivered twice over LMTP
is answered 250 both times and is in the mailbox once, also after Dovecot's master was
killed with kill -9 and Dovecot started again, and in the 421 case itself (the master killed
while lmtp saves a large message: lmtp saves it, answers 421, and the retry after Dovecot's
restart is not saved again), also when it was filed into Junk, and for each
of two recipients of one transaction; the same Message-ID through another queue file (another
Received) is saved twice; a re-delivery after the window is saved; a record that cannot be
read (cannot tell) saves the message and logs it; a save that failed leaves no record, so the
retry is saved. A second Dovecot with mailwarden_dedupe_window = 0: a re-delivery is saved
again and no record is written.
"""

import hashlib
import imaplib
import os
import pwd
import signal
import smtplib
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN
WINDOW = 10  # seconds: mailwarden_dedupe_window of this module's Dovecot


def message(token, queue_id, headers=()):
    """message - a message as Postfix's lmtp client sends it: Postfix's Received (QUEUE_ID)
    first, Message-ID <TOKEN@test>."""
    lines = ['Received: from client.remote.example (client.remote.example [192.0.2.7])',
             '\tby mx.%s (Postfix) with ESMTP id %s' % (DOMAIN, queue_id),
             '\tfor <rcpt@%s>; Mon,  7 Dec 2026 18:00:00 +0000 (UTC)' % DOMAIN,
             'From: Sender <sender@remote.example>', 'To: <rcpt@%s>' % DOMAIN,
             'Subject: dedupe test %s' % token, 'Message-ID: <%s@test>' % token,
             'Date: Mon, 7 Dec 2026 18:00:00 +0000']
    lines += list(headers)
    return '\r\n'.join(lines) + '\r\n\r\nbody %s\r\n' % token


def key_of(text):
    """key_of - the plugin's dedupe key of TEXT as lmtp received it from Postfix (lib/mw-dedupe.h:
    BLAKE2b-256 of the message without lmtp's own lines, CR bytes left out)."""
    return hashlib.blake2b(text.replace('\r', '').encode(), digest_size=32).hexdigest()


class DedupeHelpers:
    """DedupeHelpers - users, LMTP delivery, IMAP counts and the log of cls.dovecot."""

    def new_user(self):
        user = 'd%s@%s' % (uuid.uuid4().hex[:10], DOMAIN)
        return user, self.store.add_user(user)

    def home(self, user):
        return os.path.join(self.dovecot.mail_root, user.lower())

    def deliver(self, rcpts, text):
        """deliver - one LMTP transaction of TEXT to RCPTS; asserts 250 for every recipient
        (LMTP answers DATA once per recipient)."""
        lmtp = smtplib.LMTP('127.0.0.1', self.dovecot.lmtp_port, timeout=60)
        try:
            lmtp.ehlo_or_helo_if_needed()
            self.assertEqual(lmtp.mail('sender@remote.example')[0], 250)
            for r in rcpts:
                self.assertEqual(lmtp.rcpt(r)[0], 250)
            replies = [lmtp.data(text.encode())]
            replies += [lmtp.getreply() for _ in rcpts[1:]]
        finally:
            try:
                lmtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
        return [code for code, _ in replies]

    def count(self, user, password, token, mailbox='INBOX'):
        """count - how many messages with Message-ID <TOKEN@test> MAILBOX holds."""
        m = imaplib.IMAP4('127.0.0.1', self.dovecot.imap_port, timeout=30)
        try:
            m.login(user, password)
            typ, _ = m.select('"%s"' % mailbox)
            if typ != 'OK':
                return 0
            typ, data = m.uid('SEARCH', None, 'HEADER', 'Message-ID', '<%s@test>' % token)
            self.assertEqual(typ, 'OK')
            return len(data[0].split())
        finally:
            m.logout()

    def delivered_once(self, queue_id, headers=()):
        """delivered_once - a new user and a new message (from queue file QUEUE_ID) delivered
        to it once: (user, password, token, text)."""
        user, pw = self.new_user()
        tok = uuid.uuid4().hex
        text = message(tok, queue_id, headers)
        self.assertEqual(self.deliver([user], text), [250])
        return user, pw, tok, text

    def restart_dovecot(self):
        """restart_dovecot - after Dovecot's master was killed: once its children closed the
        LMTP listener, a new Dovecot on the same ports (the pid file removed: an unreaped
        master would still count as running)."""
        lab_mod.wait_until(lambda: not lab_mod.port_open(self.dovecot.lmtp_port), 20,
                           'lmtp listener closed')
        os.unlink(self.dovecot.pidfile)
        self.dovecot.stop()
        self.dovecot.start()

    def log_size(self):
        return os.path.getsize(self.dovecot.log_path)

    def log_since(self, offset):
        with open(self.dovecot.log_path, errors='replace') as f:
            f.seek(offset)
            return f.read()



class PluginDedupeTest(DedupeHelpers, labcase.DovecotCase):
    """lib90_mailwarden_plugin.so in the lab's Dovecot, with a short dedupe window."""

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        opts = lab_mod.mailwarden_plugin_options(cls.store,
                                                 mailwarden_dedupe_window='%ds' % WINDOW)
        cls.dovecot = cls.lab.dovecot(cls.store, **opts)

    # ---- tests --------------------------------------------------------------------------

    def test_same_queue_file_twice_saved_once(self):
        user, pw, tok, text = self.delivered_once('4A1B2C3D4E')
        off = self.log_size()
        self.assertEqual(self.deliver([user], text), [250])
        self.assertEqual(self.count(user, pw, tok), 1)
        log = self.log_since(off)
        self.assertIn('re-delivery of a message saved', log)
        self.assertIn(key_of(text)[:16], log)
        self.assertNotIn('body %s' % tok, log)
        # the record: one file per key under the user's home
        self.assertTrue(os.path.isfile(os.path.join(self.home(user), 'mailwarden-dedupe',
                                                    key_of(text))))

    def test_same_message_id_other_queue_file_saved_twice(self):
        # a list copy and a direct copy: one Message-ID, two queue files
        user, pw = self.new_user()
        tok = uuid.uuid4().hex
        self.assertEqual(self.deliver([user], message(tok, '4A1B2C3D4E')), [250])
        self.assertEqual(self.deliver([user], message(tok, '5F6A7B8C9D')), [250])
        self.assertEqual(self.count(user, pw, tok), 2)

    def test_redelivery_after_window_saved(self):
        user, pw, tok, text = self.delivered_once('6B7C8D9E0F')
        time.sleep(WINDOW + 1)
        self.assertEqual(self.deliver([user], text), [250])
        self.assertEqual(self.count(user, pw, tok), 2)

    def test_filed_into_junk_then_redelivered(self):
        # the key is per user, not per mailbox
        user, pw, tok, text = self.delivered_once(
            '7C8D9E0F1A', ['X-Mailwarden-Spam: yes; score=9; required=5'])
        self.assertEqual(self.deliver([user], text), [250])
        self.assertEqual(self.count(user, pw, tok, 'Junk'), 1)
        self.assertEqual(self.count(user, pw, tok, 'INBOX'), 0)

    def test_default_mailbox_refused_inbox_save_recorded(self):
        # a rule files the message into a mailbox Dovecot refuses to create (an empty
        # hierarchy level: not a temporary failure), so the message lands in INBOX as
        # lib-lda's fallback would put it; that save is recorded like any other, so the
        # re-delivery of the queue file is not saved again (issue 10: it was saved twice)
        user, pw = self.new_user()
        tok = uuid.uuid4().hex
        self.store.ctl('tag-rule', 'add', user, '--field', 'Subject', '--match',
                       'substring', '--value', tok, '--mailbox', 'Bad//Name')
        text = message(tok, '3C4D5E6F7A')
        off = self.log_size()
        self.assertEqual(self.deliver([user], text), [250])
        self.assertEqual(self.count(user, pw, tok, 'INBOX'), 1)
        self.assertTrue(os.path.exists(os.path.join(self.home(user), 'mailwarden-dedupe',
                                                    key_of(text))))
        self.assertEqual(self.deliver([user], text), [250])
        self.assertEqual(self.count(user, pw, tok, 'INBOX'), 1)
        log = self.log_since(off)
        self.assertIn('Bad//Name', log)  # the refused save, so the fallback was exercised
        self.assertIn('answered as delivered, not saved again', log)

    def test_two_recipients_each_once(self):
        # lmtp saves the second recipient's copy from the first one's saved mail (LF line
        # ends): the key is the same for both, and each user is checked separately
        (u1, p1), (u2, p2) = self.new_user(), self.new_user()
        tok = uuid.uuid4().hex
        text = message(tok, '8D9E0F1A2B')
        self.assertEqual(self.deliver([u1, u2], text), [250, 250])
        self.assertEqual(self.deliver([u1, u2], text), [250, 250])
        # Postfix retrying only the second recipient, alone (the raw CRLF message)
        self.assertEqual(self.deliver([u2], text), [250])
        # a third user who did not have it yet gets it in the same transaction
        u3, p3 = self.new_user()
        self.assertEqual(self.deliver([u1, u3], text), [250, 250])
        self.assertEqual(self.count(u1, p1, tok), 1)
        self.assertEqual(self.count(u2, p2, tok), 1)
        self.assertEqual(self.count(u3, p3, tok), 1)

    def test_survives_dovecot_killed_and_restarted(self):
        # the 421 case: Dovecot's master is killed after lmtp saved; Postfix tries again
        # once Dovecot is back
        user, pw, tok, text = self.delivered_once('9E0F1A2B3C')
        master = lab_mod.read_pidfile(self.dovecot.pidfile)
        self.assertIsNotNone(master)
        os.kill(master, signal.SIGKILL)
        lab_mod.wait_until(lambda: not lab_mod.pid_alive(master), 10, 'dovecot master gone')
        self.restart_dovecot()
        self.assertEqual(self.deliver([user], text), [250])
        self.assertEqual(self.count(user, pw, tok), 1)

    def test_master_killed_during_save_421_then_redelivered_once(self):
        # the 421 itself: Dovecot's master killed while lmtp saves a large message; lmtp
        # finishes the save and answers 421 (or 250, when its reply got out first). Either
        # way Postfix's retry must leave one copy.
        user, pw = self.new_user()
        self.assertEqual(self.deliver([user], message(uuid.uuid4().hex, '2B3C4D5E6F')), [250])
        tmp = os.path.join(self.dovecot.maildir(user), 'tmp')
        replies = []
        for attempt in range(4):
            tok = uuid.uuid4().hex
            text = message(tok, '3C4D5E6F%02X' % attempt,
                           ['X-Pad: %d' % attempt]) + ('y' * 998 + '\r\n') * 40000
            lmtp = smtplib.LMTP('127.0.0.1', self.dovecot.lmtp_port, timeout=120)
            lmtp.ehlo_or_helo_if_needed()
            self.assertEqual(lmtp.mail('sender@remote.example')[0], 250)
            self.assertEqual(lmtp.rcpt(user)[0], 250)
            self.assertEqual(lmtp.docmd('DATA')[0], 354)
            # TEXT ends in CRLF: the end of data is then a line of one dot
            lmtp.send(text.encode().replace(b'\r\n.', b'\r\n..') + b'.\r\n')
            master = lab_mod.read_pidfile(self.dovecot.pidfile)
            # the save has begun when lmtp's file appears in tmp/
            deadline = time.monotonic() + 60
            while not os.listdir(tmp) and time.monotonic() < deadline:
                time.sleep(0.001)
            os.kill(master, signal.SIGKILL)
            try:
                code = lmtp.getreply()[0]
            except smtplib.SMTPServerDisconnected:
                code = 0
            lmtp.close()
            replies.append(code)
            self.restart_dovecot()
            # Postfix's retry of the same queue file
            self.assertEqual(self.deliver([user], text), [250])
            self.assertEqual(self.count(user, pw, tok), 1, 'reply to the first try: %d' % code)
            if code == 421:
                break
        self.assertIn(421, replies, 'lmtp never answered 421 after its master was killed')

    def test_record_unreadable_saves_and_logs(self):
        # a check that cannot decide saves the message (a duplicate is better than a loss)
        user, pw = self.new_user()
        tok = uuid.uuid4().hex
        text = message(tok, '0F1A2B3C4D')
        rec = os.path.join(self.home(user), 'mailwarden-dedupe', key_of(text))
        os.makedirs(rec)  # not a regular file: the record cannot be read
        mail = pwd.getpwnam(self.dovecot.mail_user)
        for d in (self.home(user), os.path.dirname(rec), rec):
            os.chown(d, mail.pw_uid, mail.pw_gid)
        off = self.log_size()
        self.assertEqual(self.deliver([user], text), [250])
        self.assertEqual(self.deliver([user], text), [250])
        self.assertEqual(self.count(user, pw, tok), 2)
        log = self.log_since(off)
        self.assertIn('cannot tell whether this is a re-delivery', log)
        self.assertIn('saved, but not recorded against a re-delivery', log)

    def test_failed_save_not_recorded_retry_saved(self):
        user, pw = self.new_user()
        tok = uuid.uuid4().hex
        self.assertEqual(self.deliver([user], message(tok + 'x', '1A2B3C4D5E')), [250])
        text = message(tok, '1A2B3C4D5F')
        tmp = os.path.join(self.dovecot.maildir(user), 'tmp')
        os.chmod(tmp, 0o500)  # the maildir cannot take a new message
        try:
            lmtp = smtplib.LMTP('127.0.0.1', self.dovecot.lmtp_port, timeout=60)
            try:
                lmtp.ehlo_or_helo_if_needed()
                lmtp.mail('sender@remote.example')
                lmtp.rcpt(user)
                code = lmtp.data(text.encode())[0]
            finally:
                lmtp.quit()
            self.assertGreaterEqual(code, 400)
        finally:
            os.chmod(tmp, 0o700)
        self.assertFalse(os.path.exists(os.path.join(self.home(user), 'mailwarden-dedupe',
                                                     key_of(text))))
        self.assertEqual(self.deliver([user], text), [250])
        self.assertEqual(self.count(user, pw, tok), 1)


class PluginDedupeOffTest(DedupeHelpers, labcase.DovecotCase):
    """mailwarden_dedupe_window = 0 turns the dedupe off (issue 10): through real Dovecot, a
    re-delivery of one queue file is saved again and no record is written, while the plugin
    still decides (the spam verdict files both copies into Junk)."""

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        opts = lab_mod.mailwarden_plugin_options(cls.store, mailwarden_dedupe_window='0')
        cls.dovecot = cls.lab.dovecot(cls.store, **opts)

    def test_window_zero_saves_redelivery_no_record(self):
        user, pw = self.new_user()
        tok = uuid.uuid4().hex
        text = message(tok, '2B3C4D5E6F', ['X-Mailwarden-Spam: yes; score=9; required=5'])
        off = self.log_size()
        self.assertEqual(self.deliver([user], text), [250])
        self.assertEqual(self.deliver([user], text), [250])
        self.assertEqual(self.count(user, pw, tok, 'Junk'), 2)
        self.assertEqual(self.count(user, pw, tok, 'INBOX'), 0)
        self.assertFalse(os.path.exists(os.path.join(self.home(user), 'mailwarden-dedupe')))
        log = self.log_since(off)
        self.assertNotIn('re-delivery', log)
        self.assertNotIn('mailwarden_dedupe_window', log)  # 0 is valid, not a bad value


if __name__ == '__main__':
    unittest.main()
