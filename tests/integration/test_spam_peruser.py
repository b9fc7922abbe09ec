"""test_spam_peruser - per-user spam models through real Postfix and Dovecot (issue 10).

Real parts: Postfix with the ASan milter (spam scoring on, XCLIENT so the milter sees a client
outside trusted_networks), LMTP into Dovecot with the mailwarden plugin, IMAP for the users'
training, mailwardenctl on the same store. The global model is trained first (mailwardenctl
learn, synthetic messages). Then user A teaches a token pattern (a gardening newsletter) as
spam by MOVEing copies into Junk over IMAP, and user B teaches the same pattern as ham by
setting $NotJunk; each also teaches the other class with `mailwardenctl learn --user`, so
both models are over user_min_spam/user_min_ham. With [classifier] per_user on, a new
message of that pattern delivered to A alone is tagged spam and the same message delivered to
B alone is not; the same message to both in one transaction gets one verdict (the global
model's, since one copy carries one header). After per_user is turned off in the milter
(SIGHUP), both get the global verdict: the same header.
"""

import imaplib
import signal
import os
import random
import re
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod
from test_milter_spam import learn_global, write_trained

DOMAIN = lab_mod.DOMAIN
GARDEN = ['tulip', 'compost', 'seedling', 'mulch', 'perennial', 'trellis', 'greenhouse',
          'pruning', 'hydrangea', 'allotment', 'bulbs', 'irrigation']
CLASSIFIER = ('[classifier]\nmin_spam = 20\nmin_ham = 20\nuser_min_spam = 5\n'
              'user_min_ham = 5\nuser_weight = 80\nper_user = %s\n')


def garden_message(n, rcpt_header='undisclosed-recipients:;'):
    """garden_message - the pattern: a gardening newsletter, number N (CRLF line ends)."""
    rng = random.Random(n)
    words = [rng.choice(GARDEN) for _ in range(40)]
    return ('From: Alice <alice@example.com>\r\nTo: %s\r\nSubject: garden news %s %s\r\n'
            'Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <garden%d.%s@example.com>\r\n'
            '\r\n%s\r\n%s\r\n' % (rcpt_header, words[0], words[1], n, uuid.uuid4().hex[:8],
                                  ' '.join(words[:20]), ' '.join(words[20:])))


class SpamPerUserTest(labcase.MilterCase):
    """The same message, two users with opposite training: two verdicts with per_user on,
    the global one for both with per_user off or with two recipients in one transaction."""

    @classmethod
    def start_lab(cls):
        cls.dns = cls.lab.dns(zones={
            'example.com': [('@', 'TXT', 'v=spf1 ip4:192.0.2.0/24 -all')]})
        # the plugin and mailwardenctl read [classifier] from the store's config
        cls.store = cls.lab.store(extra_config=CLASSIFIER % 'yes')
        rng = random.Random(11)
        train = os.path.join(cls.lab.root, 'train')
        learn_global(cls.store, rng, train)
        opts = lab_mod.mailwarden_plugin_options(cls.store)
        cls.dovecot = cls.lab.dovecot(cls.store, **opts)
        cls.milter_base = ('dns_servers = %s\ndns_timeout = 2s\nlocal_domains = %s\n'
                           'dkim_sign = no\ntrusted_networks = 127.0.0.0/8\n'
                           '[spam]\nenable = yes\n' % (cls.dns.server, DOMAIN))
        cls.start_mail_path(xclient=True, config=cls.milter_base + CLASSIFIER % 'yes')
        tag = uuid.uuid4().hex[:6]
        cls.user_a = 'gardena%s@%s' % (tag, DOMAIN)
        cls.user_b = 'gardenb%s@%s' % (tag, DOMAIN)
        cls.pw_a = cls.store.add_user(cls.user_a)
        cls.pw_b = cls.store.add_user(cls.user_b)
        cls.rcpt = cls.user_a
        cls.train_users(rng, train)

    @classmethod
    def train_users(cls, rng, train):
        """train_users - A: the pattern is spam (IMAP MOVE into Junk), B: ham ($NotJunk);
        each gets 6 messages of the other class through mailwardenctl learn --user."""
        for user, label in ((cls.user_a, 'ham'), (cls.user_b, 'spam')):
            d = write_trained(rng, os.path.join(train, 'fill-%s' % user.split('@')[0]),
                              label == 'spam', 6, 500)
            out = cls.store.ctl('learn', label, '--user', user, d).stdout
            assert "into the user's model" in out, out
        for user, pw, junk in ((cls.user_a, cls.pw_a, True), (cls.user_b, cls.pw_b, False)):
            m = imaplib.IMAP4('127.0.0.1', cls.dovecot.imap_port, timeout=30)
            try:
                m.login(user, pw)
                m.create('Junk')
                for n in range(6):
                    text = garden_message(n).encode()
                    typ, _ = m.append('INBOX', None, None, text)
                    assert typ == 'OK'
                m.select('INBOX')
                typ, data = m.uid('SEARCH', None, 'ALL')
                uids = data[0].split()
                assert len(uids) == 6, uids
                for uid in uids:
                    if junk:
                        typ, _ = m.uid('MOVE', uid, 'Junk')
                    else:
                        typ, _ = m.uid('STORE', uid, '+FLAGS', '($NotJunk)')
                    assert typ == 'OK'
            finally:
                m.logout()

    # -- helpers ---------------------------------------------------------------------------

    def stats(self, user):
        """stats - (spam, ham) learned into USER's own model (mailwardenctl spam stats)."""
        out = self.store.ctl('spam', 'stats', '--user', user).stdout
        got = re.search(r'(\d+) spam, (\d+) ham learned', out)
        self.assertIsNotNone(got, out)
        return int(got.group(1)), int(got.group(2))

    def deliver(self, rcpts, text):
        """deliver - TEXT to RCPTS in one SMTP transaction from a client the milter scores."""
        with self.xclient('192.0.2.30', 'mail.example.com', 60) as s:
            self.assertEqual(s.mail('alice@example.com')[0], 250)
            for r in rcpts:
                self.assertIn(s.rcpt(r)[0], (250, 251))
            code, resp = s.data(text.replace('\r\n', '\n').encode())
            self.assertEqual(code, 250, resp)

    def verdict(self, user, pw, token):
        """verdict - the X-Mailwarden-Spam value of USER's copy of the message with TOKEN."""
        for box in ('INBOX', 'Junk'):
            found = labcase.imap_fetch(self.dovecot.imap_port, user, pw, token, box, 'BODY',
                                       3 if box == 'INBOX' else 30)
            if found is not None:
                hdrs = labcase.spam_headers(found[1].decode('utf-8', 'replace'))
                self.assertEqual(len(hdrs), 1, hdrs)
                return hdrs[0]
        self.fail('%s: message %s not delivered' % (user, token))

    def probe(self):
        """probe - a new message of the pattern, with a token to find it by."""
        token = 'probe%s' % uuid.uuid4().hex[:10]
        text = garden_message(1000 + random.randrange(10 ** 6))
        return token, text.replace('\r\n\r\n', '\r\n\r\n%s\r\n' % token, 1)

    @staticmethod
    def band(header):
        """band - the verdict and classifier band of a header: ('yes', 'BAYES_99')."""
        got = re.search(r'\b(BAYES_\d\d)\b', header)
        return header.split(';')[0], got.group(1) if got else None

    def milter_log(self):
        """milter_log - the milter's log so far."""
        with open(self.milter.log_path, errors='replace') as f:
            return f.read()

    def set_per_user(self, on):
        """set_per_user - rewrite the milter's [classifier] per_user and reload it."""
        before = self.milter_log().count('event=reload status=ok')
        self.milter.write_config(self.milter_base + CLASSIFIER % ('yes' if on else 'no'))
        self.milter.signal(signal.SIGHUP)
        lab_mod.wait_until(
            lambda: self.milter_log().count('event=reload status=ok') > before, 20,
            'milter reload')

    # -- tests -----------------------------------------------------------------------------

    def test_1_users_models_hold_their_training(self):
        self.assertEqual(self.stats(self.user_a), (6, 6))
        self.assertEqual(self.stats(self.user_b), (6, 6))
        out = self.store.ctl('spam', 'stats').stdout
        self.assertIn(self.user_a, out)
        self.assertIn(self.user_b, out)
        # the global model got every judgement too (user_learn_global = yes)
        got = re.search(r'global model: (\d+) spam, (\d+) ham', out)
        self.assertEqual((int(got.group(1)), int(got.group(2))), (40 + 12, 40 + 12), out)
        # the same Junk move again teaches nothing twice (per scope and user)
        m = imaplib.IMAP4('127.0.0.1', self.dovecot.imap_port, timeout=30)
        try:
            m.login(self.user_a, self.pw_a)
            m.select('Junk')
            typ, data = m.uid('SEARCH', None, 'ALL')
            uid = data[0].split()[0]
            self.assertEqual(m.uid('COPY', uid, 'Junk')[0], 'OK')
        finally:
            m.logout()
        self.assertEqual(self.stats(self.user_a), (6, 6))

    def test_2_per_user_on_two_verdicts(self):
        token, text = self.probe()
        self.deliver([self.user_a], text)
        self.deliver([self.user_b], text)
        va = self.verdict(self.user_a, self.pw_a, token)
        vb = self.verdict(self.user_b, self.pw_b, token)
        self.assertTrue(va.startswith('yes;'), va)
        self.assertTrue(vb.startswith('no;'), vb)

    def test_3_two_recipients_get_the_global_verdict(self):
        token, text = self.probe()
        self.deliver([self.user_a, self.user_b], text)
        va = self.verdict(self.user_a, self.pw_a, token)
        vb = self.verdict(self.user_b, self.pw_b, token)
        self.assertEqual(va, vb)
        # the global model is torn (A's spam, B's ham): not the per-user extremes
        self.assertNotIn('BAYES_99', va)
        self.assertNotIn('BAYES_00', va)

    def test_4_per_user_off_both_get_the_global_verdict(self):
        self.set_per_user(False)
        try:
            token, text = self.probe()
            self.deliver([self.user_a], text)
            self.deliver([self.user_b], text)
            va = self.verdict(self.user_a, self.pw_a, token)
            vb = self.verdict(self.user_b, self.pw_b, token)
            self.assertEqual(self.band(va), self.band(vb))
            self.assertEqual(va, vb)
        finally:
            self.set_per_user(True)

    def test_5_ctl_expire_and_unknown_user(self):
        out = self.store.ctl('spam', 'expire', '--dry-run').stdout
        self.assertIn('global model: would expire 0 of', out)
        self.assertIn('%s: would expire 0 of' % self.user_a, out)
        self.assertIn('%s: would expire 0 of' % self.user_b, out)
        out = self.store.ctl('spam', 'expire', '--user', self.user_a).stdout
        self.assertIn('%s: expired 0 of' % self.user_a, out)
        self.assertEqual(self.stats(self.user_a), (6, 6))
        # a user the store does not know: refused, nothing learned
        nobody = 'nobody%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
        p = self.store.ctl('learn', 'spam', '--user', nobody, os.devnull, check=False)
        self.assertNotEqual(p.returncode, 0)
        p = self.store.ctl('spam', 'stats', '--user', nobody, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('not found', p.stderr)

if __name__ == '__main__':
    unittest.main()
