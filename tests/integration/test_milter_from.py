"""test_milter_from - mailwarden-milter behind a real Postfix (SASL via Dovecot, delivery over
LMTP to Dovecot): allowed-From enforcement for authenticated senders, header stripping for
inbound mail, reloads, and what Postfix does when the milter is gone.

One Store + Dovecot + milter (ASan build, unix socket) + Postfix (smtpd_milters = the milter,
milter_default_action = tempfail) for the module; users are made per test with distinct
names. The cache TTL is 2 s so changes through mailwardenctl show within the test.
"""

import signal
import smtplib
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod
from labcase import header_lines

DOMAIN = lab_mod.DOMAIN
DELIVERY_TIMEOUT = 30
CACHE_TTL = 2


def uniq(prefix):
    """uniq - a fresh local part."""
    return '%s%s' % (prefix, uuid.uuid4().hex[:8])


def message(from_hdr, to, token, extra_headers=''):
    """message - RFC 5322 text with FROM_HDR as the From: value (None: no From:)."""
    head = '' if from_hdr is None else 'From: %s\r\n' % from_hdr
    return ('%sTo: <%s>\r\nSubject: milter test %s\r\nMessage-ID: <%s@client.example.org>\r\n'
        'Date: %s\r\n%s\r\nbody token %s\r\n'
        % (head, to, token, token,
           time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime()), extra_headers, token))


def fetch_message(port, user, password, token, timeout=DELIVERY_TIMEOUT):
    """fetch_message - the raw message carrying TOKEN in USER's INBOX (waits), or None."""
    return labcase.imap_text(port, user, password, token, timeout=timeout)


class MilterFromTest(labcase.MilterCase):
    """Allowed-From through real Postfix + Dovecot + mailwarden-milter."""
    milter_must_live = False

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.milter = cls.lab.milter(cls.store, cache_ttl='%ds' % CACHE_TTL)
        cls.postfix = cls.lab.postfix(cls.dovecot, milters=[cls.milter.postfix_spec])
        cls.smtp = cls.postfix.smtp_port
        cls.imap = cls.dovecot.imap_port

    # -- helpers ---------------------------------------------------------------------------

    def user(self, *patterns, prefix='u'):
        """user - a new active user allowed PATTERNS (default: their own address)."""
        name = '%s@%s' % (uniq(prefix), DOMAIN)
        pw = self.store.add_user(name)
        self.store.allow_from(name, *(patterns or (name,)))
        return name, pw

    def session(self, user, pw):
        """session - an authenticated SMTP session."""
        s = smtplib.SMTP('127.0.0.1', self.smtp, timeout=30)
        s.ehlo('client.example.org')
        s.login(user, pw)
        self.addCleanup(self.close, s)
        return s

    @staticmethod
    def close(s):
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass

    def send(self, s, envfrom, rcpt, text):
        """send - MAIL/RCPT/DATA on S; (stage, code, text) of the first refusal, else
        ('sent', 250, ...)."""
        code, resp = s.mail(envfrom)
        if code != 250:
            s.rset()
            return 'mail', code, resp.decode()
        code, resp = s.rcpt(rcpt)
        if code not in (250, 251):
            s.rset()
            return 'rcpt', code, resp.decode()
        code, resp = s.data(text.encode())
        if code != 250:
            return 'data', code, resp.decode()
        return 'sent', code, resp.decode()

    def assert_refused(self, result, stage, code, text):
        self.assertEqual(result[0], stage, result)
        self.assertEqual(result[1], code, result)
        self.assertIn(text, result[2])

    def refused_froms(self, s, user, cases):
        """refused_froms - one message as USER on session S for each (From: header, reply)
        of CASES, each refused at end of data with 550 and that reply; their tokens."""
        tokens = []
        for from_hdr, want in cases:
            with self.subTest(from_hdr=from_hdr):
                token = uniq('tok')
                tokens.append(token)
                r = self.send(s, user, user, message(from_hdr, user, token))
                self.assert_refused(r, 'data', 550, want)
        return tokens

    # -- tests -------------------------------------------------------------------------------

    def test_allowed_send_delivered(self):
        user, pw = self.user()
        token = uniq('tok')
        s = self.session(user, pw)
        r = self.send(s, user, user, message('U One <%s>' % user, user, token))
        self.assertEqual(r[0], 'sent', r)
        raw = fetch_message(self.imap, user, pw, token)
        self.assertIsNotNone(raw, 'allowed message not delivered')
        self.assertIn('From: U One <%s>' % user, raw)

    def test_wrong_envelope_sender_refused_at_mail_from(self):
        user, pw = self.user()
        s = self.session(user, pw)
        other = 'boss@%s' % DOMAIN
        r = self.send(s, other, user, message(user, user, uniq('tok')))
        self.assert_refused(r, 'mail', 550, '5.7.1 <%s>: not allowed for %s' % (other, user))
        # the null sender is refused by default too
        r = self.send(s, '', user, message(user, user, uniq('tok')))
        self.assert_refused(r, 'mail', 550, '5.7.1 null sender not allowed for %s' % user)

    def test_wrong_header_from_refused_at_end_of_data(self):
        user, pw = self.user()
        s = self.session(user, pw)
        cases = [
            ('"%s" <evil@x.org>' % user, '5.7.1 <evil@x.org>: not allowed for %s' % user),
            ('%s, ceo@%s' % (user, DOMAIN), '5.7.1 <ceo@%s>: not allowed for %s' % (DOMAIN, user)),
            ('=?utf-8?q?%s?= <evil@x.org>' % user.replace('@', '=40'), '5.7.1 <evil@x.org>'),
            ('undisclosed:;', '5.6.0 From: header has no address'),
        ]
        tokens = self.refused_froms(s, user, cases)
        # a second From: header
        token = uniq('tok')
        r = self.send(s, user, user, message(user, user, token, 'From: <%s>\r\n' % user))
        self.assert_refused(r, 'data', 550, '5.6.0 message has 2 From: headers')
        # a Sender: that is not allowed
        r = self.send(s, user, user, message(user, user, token, 'Sender: <evil@x.org>\r\n'))
        self.assert_refused(r, 'data', 550, '5.7.1 <evil@x.org>: not allowed')
        # and none of them was delivered (the allowed one afterwards is)
        ok = uniq('tok')
        self.assertEqual(self.send(s, user, user, message(user, user, ok))[0], 'sent')
        self.assertIsNotNone(fetch_message(self.imap, user, pw, ok))
        # no From: at all: Postfix's cleanup adds "From: <envelope sender>" before the milter
        # sees the headers, so the (already checked) envelope sender is what gets enforced;
        # the milter's own "no From:" refusal is exercised through miltertest
        nofrom = uniq('tok')
        self.assertEqual(self.send(s, user, user, message(None, user, nofrom))[0], 'sent')
        raw = fetch_message(self.imap, user, pw, nofrom)
        self.assertIsNotNone(raw)
        self.assertIn('From: %s' % user, header_lines(raw))
        for t in tokens + [token]:
            self.assertIsNone(fetch_message(self.imap, user, pw, t, timeout=0.5), t)

    def test_display_name_showing_another_address_refused(self):
        # issue 9: the plain form (`ceo@x <me@y>`) never parsed; quoted, encoded and
        # commented forms used to be delivered showing the other address
        user, pw = self.user()
        s = self.session(user, pw)
        ceo = 'ceo@bank.example'
        shows = '5.7.1 From: display name shows an address other than the sender\'s'
        cases = [
            ('"%s" <%s>' % (ceo, user), shows),
            ('=?utf-8?q?%s?= <%s>' % (ceo.replace('@', '=40'), user), shows),
            ('=?iso-8859-1?B?Y2VvQGJhbmsuZXhhbXBsZQ==?= <%s>' % user, shows),
            ('=?utf-16be?b?AGMAZQBvAEAAYgBhAG4AawAuAGUAeABhAG0AcABsAGU=?= <%s>' % user, shows),
            ('%s (%s)' % (user, ceo), shows),
            ('Boss (=?utf-8?q?%s?=) <%s>' % (ceo.replace('@', '=40'), user), shows),
            ('=?x-unknown?q?Boss?= <%s>' % user,
             '5.7.1 From: display name cannot be decoded'),
        ]
        tokens = self.refused_froms(s, user, cases)
        # Sender: the same
        token = uniq('tok')
        tokens.append(token)
        r = self.send(s, user, user, message(user, user, token,
                                              'Sender: "%s" <%s>\r\n' % (ceo, user)))
        self.assert_refused(r, 'data', 550, '5.7.1 Sender: display name shows')
        # the user's own address shown, in any form, is fine
        ok = uniq('tok')
        own = '=?utf-8?q?%s?= (%s) <%s>' % (user.replace('@', '=40'), user.upper(), user)
        self.assertEqual(self.send(s, user, user, message(own, user, ok))[0], 'sent')
        raw = fetch_message(self.imap, user, pw, ok)
        self.assertIsNotNone(raw)
        for t in tokens:
            self.assertIsNone(fetch_message(self.imap, user, pw, t, timeout=0.5), t)

    def test_huge_from_header_refused(self):
        user, pw = self.user()
        s = self.session(user, pw)
        big = '"%s" <%s>' % ('a' * 20000, user)
        r = self.send(s, user, user, message(big, user, uniq('tok')))
        self.assert_refused(r, 'data', 552, '5.3.4 From: header too long')

    def test_disabled_user_refused_after_cache_expiry(self):
        user, pw = self.user()
        s = self.session(user, pw)
        self.assertEqual(self.send(s, user, user, message(user, user, uniq('tok')))[0], 'sent')
        self.store.ctl('user', 'disable', user)
        time.sleep(CACHE_TTL + 1)
        r = self.send(s, user, user, message(user, user, uniq('tok')))
        self.assert_refused(r, 'mail', 550, '5.7.1 account %s is not active' % user)

    def test_pattern_added_is_honoured_within_ttl(self):
        user, pw = self.user()
        alias = 'sales+%s@%s' % (uniq('x'), DOMAIN)
        s = self.session(user, pw)
        r = self.send(s, alias, user, message(alias, user, uniq('tok')))
        self.assert_refused(r, 'mail', 550, '5.7.1 <%s>: not allowed' % alias)
        self.store.allow_from(user, 'sales+*@%s' % DOMAIN)
        time.sleep(CACHE_TTL + 1)
        token = uniq('tok')
        r = self.send(s, alias, user, message('Sales <%s>' % alias, user, token))
        self.assertEqual(r[0], 'sent', r)
        self.assertIsNotNone(fetch_message(self.imap, user, pw, token))

    def test_inbound_forged_headers_stripped(self):
        user, pw = self.user()
        token = uniq('tok')
        forged = ('X-Mailwarden-Spam: no; score=-100; required=5; tests=FORGED\r\n'
              'x-mailwarden-virus: clean\r\n'
              'Authentication-Results: mail.%s; spf=pass smtp.mailfrom=x.org\r\n'
              'X-Mailwarden-Spam: no\r\n'
              'Authentication-Results: other.example; dkim=pass\r\n'
              'Authentication-Results: (c) MAIL.%s;\r\n dmarc=pass\r\n'
              'X-Keep-Me: yes\r\n' % (DOMAIN, DOMAIN))
        s = smtplib.SMTP('127.0.0.1', self.smtp, timeout=30)
        self.addCleanup(self.close, s)
        s.ehlo('outside.example.net')
        r = self.send(s, 'someone@outside.example.net', user,
                  message('Someone <someone@outside.example.net>', user, token, forged))
        self.assertEqual(r[0], 'sent', r)
        raw = fetch_message(self.imap, user, pw, token)
        self.assertIsNotNone(raw, 'inbound message not delivered')
        lines = header_lines(raw)
        lower = [l.lower() for l in lines]
        self.assertFalse([l for l in lower if l.startswith('x-mailwarden-')], lines)
        ar = [l for l in lines if l.lower().startswith('authentication-results:')]
        self.assertEqual(ar, ['Authentication-Results: other.example; dkim=pass'], lines)
        self.assertIn('X-Keep-Me: yes', lines)

    def test_outbound_forged_header_stripped(self):
        user, pw = self.user()
        token = uniq('tok')
        s = self.session(user, pw)
        r = self.send(s, user, user, message(user, user, token, 'X-Mailwarden-Spam: no\r\n'))
        self.assertEqual(r[0], 'sent', r)
        raw = fetch_message(self.imap, user, pw, token)
        self.assertIsNotNone(raw)
        self.assertNotIn('x-mailwarden-spam', raw.lower())

    def test_reload_applies_new_config(self):
        user, pw = self.user()
        s = self.session(user, pw)
        r = self.send(s, '', user, message(user, user, uniq('tok')))
        self.assert_refused(r, 'mail', 550, 'null sender not allowed')
        with open(self.milter.log_path) as f:
            before = f.read().count('event=reload status=ok')
        self.milter.write_config('null_sender = accept\n')
        try:
            self.milter.signal(signal.SIGHUP)
            lab_mod.wait_until(lambda: open(self.milter.log_path).read().count(
                'event=reload status=ok') > before, 10, 'the milter to reload')
            # a new SMTP session (a new milter connection) sees the new snapshot
            s2 = self.session(user, pw)
            r = self.send(s2, '', user, message(user, user, uniq('tok')))
            self.assertEqual(r[0], 'sent', r)
        finally:
            self.milter.write_config()
            self.milter.signal(signal.SIGHUP)
            lab_mod.wait_until(lambda: open(self.milter.log_path).read().count(
                'event=reload status=ok') > before + 1, 10, 'the milter to reload back')
        self.assertTrue(self.milter.alive())

    def test_sigterm_finishes_message_in_flight(self):
        user, pw = self.user()
        s = self.session(user, pw)
        token = uniq('tok')
        self.assertEqual(s.mail(user)[0], 250)
        self.assertEqual(s.rcpt(user)[0], 250)
        try:
            self.milter.signal(signal.SIGTERM)
            time.sleep(0.5)
            code, resp = s.data(message(user, user, token).encode())
            self.assertEqual(code, 250, resp)
            self.close(s)
            self.assertEqual(self.milter.wait_exit(30), 0)
        finally:
            self.milter.stop()
            self.milter.start()
        self.assertIsNotNone(fetch_message(self.imap, user, pw, token))

    def test_z_milter_killed_postfix_tempfails(self):
        user, pw = self.user()
        token = uniq('tok')
        self.milter.kill()
        try:
            s = smtplib.SMTP('127.0.0.1', self.smtp, timeout=30)
            self.addCleanup(self.close, s)
            s.ehlo('client.example.org')
            try:
                s.login(user, pw)
                r = self.send(s, user, user, message(user, user, token))
            except smtplib.SMTPResponseException as e:
                r = ('auth', e.smtp_code, str(e.smtp_error))
            self.assertNotEqual(r[0], 'sent', r)
            self.assertTrue(400 <= r[1] < 500, r)
        finally:
            self.milter.start()
        # back up: mail flows again
        ok = uniq('tok')
        s = self.session(user, pw)
        self.assertEqual(self.send(s, user, user, message(user, user, ok))[0], 'sent')
        self.assertIsNotNone(fetch_message(self.imap, user, pw, ok))
        self.assertIsNone(fetch_message(self.imap, user, pw, token, timeout=0.5))


if __name__ == '__main__':
    unittest.main()
