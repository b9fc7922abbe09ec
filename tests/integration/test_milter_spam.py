"""test_milter_spam - spam scoring in mailwarden-milter through real Postfix and Dovecot (issue 10).

Real parts: NSD (the lab DNS server) serving the sender's SPF zone, an IP block list
(bl.example.net: 192.0.2.20 listed, 192.0.2.21 answering the 127.255.255.254 "refused" code) and a
URL block list (uri.example.net: badlinks.net listed; not under .test, which
libunbound answers NXDOMAIN itself); Postfix (smtpd_milters = the ASan
milter, XCLIENT from loopback so the milter sees a TEST-NET-1 client outside
trusted_networks) delivering over LMTP to Dovecot with the mailwarden plugin, which files
X-Mailwarden-Spam: yes into Junk with $Junk.

Cases: a clean message gets X-Mailwarden-Spam: no and stays in INBOX; a message from a
listed client gets RCVD_IN_DNSBL in its tests; one over spam_score is tagged (subject
prefix) and lands in Junk with $Junk; one over reject_score is refused with 550 5.7.1; a
block list answering an error code adds nothing; a trusted client is not scored. With a
trained classifier ([classifier] minimum lowered, every [spam] weight and spam_score at the
default), spam the classifier recognises is tagged into Junk on the classifier's band alone
and ham is not.
"""

import os
import random
import re
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN
DELIVERY_TIMEOUT = 30


def uniq(prefix):
    return '%s%s' % (prefix, uuid.uuid4().hex[:10])


def message(rcpt, token, date=True, mid=True, body=''):
    """message - a small message from alice@example.com carrying TOKEN (CRLF line ends)."""
    lines = ['From: Alice <alice@example.com>', 'To: <%s>' % rcpt, 'Subject: spam test %s' % token]
    if date:
        lines.append('Date: Sat, 28 Nov 2026 10:00:00 +0000')
    if mid:
        lines.append('Message-ID: <%s@test>' % token)
    return '\r\n'.join(lines) + '\r\n\r\ntoken %s\r\n%s\r\n' % (token, body)


class MilterSpamTest(labcase.MilterCase):
    """Spam verdicts of mailwarden-milter on inbound mail through Postfix into Dovecot."""

    @classmethod
    def start_lab(cls):
        zones = {
            'example.com': [('@', 'TXT', 'v=spf1 ip4:192.0.2.0/24 -all')],
            'bl.example.net': [('20.2.0.192', 'A', '127.0.0.2'),
                        ('21.2.0.192', 'A', '127.255.255.254')],
            'uri.example.net': [('badlinks.net', 'A', '127.0.0.2')],
        }
        cls.dns = cls.lab.dns(zones=zones)
        cls.store = cls.lab.store()
        opts = lab_mod.mailwarden_plugin_options(cls.store)
        cls.dovecot = cls.lab.dovecot(cls.store, **opts)
        cls.start_mail_path(xclient=True, rcpt='spamrcpt', config=(
            'dns_servers = %s\ndns_timeout = 2s\nlocal_domains = %s\ndkim_sign = no\n'
            'trusted_networks = 127.0.0.0/8 192.0.2.99/32\n'
            '[spam]\nenable = yes\ndnsbl_zones = bl.example.net\nuribl_zones = uri.example.net\n'
            'spam_score = 5\nreject_score = 12\nsubject_prefix = "[SPAM] "\n'
            % (cls.dns.server, DOMAIN)))

    # -- helpers ---------------------------------------------------------------------------

    def send(self, ip, helo, text, envfrom='alice@example.com'):
        """send - one message from client IP (via XCLIENT): (stage, code, reply text)."""
        return self.send_from(ip, helo, envfrom, text)

    def find(self, token, mailbox='INBOX', timeout=DELIVERY_TIMEOUT):
        """find - (raw message, flags) of TOKEN in MAILBOX (waits), or None."""
        found = labcase.imap_fetch(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token,
                                   mailbox, 'BODY', timeout)
        return None if found is None else (found[1].decode('utf-8', 'replace'), set(found[0]))

    spam_headers = staticmethod(labcase.spam_headers)

    # -- tests -------------------------------------------------------------------------------

    def test_clean_message_gets_no(self):
        token = uniq('clean')
        r = self.send('192.0.2.10', 'mail.example.com', message(self.rcpt, token))
        self.assertEqual(r[0], 'sent', r)
        found = self.find(token)
        self.assertIsNotNone(found, 'clean message not in INBOX')
        hdrs = self.spam_headers(found[0])
        self.assertEqual(len(hdrs), 1, hdrs)
        self.assertTrue(hdrs[0].startswith('no;'), hdrs)
        self.assertIn('required=5', hdrs[0])
        self.assertNotIn('$Junk', found[1])

    def test_listed_client_gets_dnsbl_test(self):
        token = uniq('listed')
        r = self.send('192.0.2.20', 'mail.example.com', message(self.rcpt, token))
        self.assertEqual(r[0], 'sent', r)
        found = self.find(token)
        self.assertIsNotNone(found, 'listed message (score 4 < 5) not in INBOX')
        hdrs = self.spam_headers(found[0])
        self.assertEqual(len(hdrs), 1, hdrs)
        self.assertTrue(hdrs[0].startswith('no;'), hdrs)
        self.assertIn('score=4', hdrs[0])
        self.assertRegex(hdrs[0], r'tests=[A-Z_,]*RCVD_IN_DNSBL')

    def test_list_error_code_adds_nothing(self):
        token = uniq('refused')
        r = self.send('192.0.2.21', 'mail.example.com', message(self.rcpt, token))
        self.assertEqual(r[0], 'sent', r)
        found = self.find(token)
        self.assertIsNotNone(found)
        hdrs = self.spam_headers(found[0])
        self.assertNotIn('RCVD_IN_DNSBL', hdrs[0])
        self.assertIn('event=spam_list_error', self.log())

    def test_tagged_message_lands_in_junk(self):
        token = uniq('tagged')
        # listed (4) + HELO an address literal (1.5) = 5.5 >= 5 (a missing Date or
        # Message-ID cannot be tested here: Postfix's cleanup adds them before the milter)
        r = self.send('192.0.2.20', '[192.0.2.20]', message(self.rcpt, token))
        self.assertEqual(r[0], 'sent', r)
        found = self.find(token, 'Junk')
        self.assertIsNotNone(found, 'tagged message not filed into Junk')
        raw, flags = found
        self.assertIn('$Junk', flags)
        hdrs = self.spam_headers(raw)
        self.assertEqual(len(hdrs), 1, hdrs)
        self.assertTrue(hdrs[0].startswith('yes;'), hdrs)
        self.assertIn('score=5.5', hdrs[0])
        self.assertIn('HELO_IP_LITERAL', hdrs[0])
        self.assertRegex(raw, r'(?m)^Subject: \[SPAM\] spam test ' + token)

    def test_over_reject_score_refused(self):
        token = uniq('reject')
        # listed (4) + URL domain listed (4) + HELO literal (1.5) + invoice.pdf.exe (4 + 3)
        # = 16.5 >= 12
        body = ('see https://www.badlinks.net/offer\r\n')
        text = ('From: Alice <alice@example.com>\r\nTo: <%s>\r\nSubject: %s\r\n'
                'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
                '--b\r\nContent-Type: text/plain\r\n\r\ntoken %s %s--b\r\n'
                'Content-Type: application/octet-stream\r\n'
                'Content-Disposition: attachment; filename="invoice.pdf.exe"\r\n\r\nMZ\r\n'
                '--b--\r\n' % (self.rcpt, token, token, body))
        r = self.send('192.0.2.20', '[192.0.2.20]', text)
        self.assertEqual(r[0], 'data', r)
        self.assertEqual(r[1], 550, r)
        self.assertIn('5.7.1', r[2])
        self.assertIsNone(self.find(token, timeout=2))
        self.assertIsNone(self.find(token, 'Junk', timeout=1))

    def test_trusted_client_not_scored(self):
        token = uniq('trusted')
        r = self.send('192.0.2.99', 'mail.example.com',
                      message(self.rcpt, token, date=False, mid=False))
        self.assertEqual(r[0], 'sent', r)
        found = self.find(token)
        self.assertIsNotNone(found)
        self.assertEqual(self.spam_headers(found[0]), [])


SPAM_WORDS = ('viagra winner prize casino unsubscribe offer cheap pills bitcoin investment '
              'guaranteed limited click exclusive bonus loan credit diploma replica lottery').split()
HAM_WORDS = ('meeting agenda patch review kernel lunch minutes project deadline draft report '
             'commit branch release thanks regards schedule budget slides repository').split()


def trained_message(rng, spam, n, rcpt='user@example.org'):
    """trained_message - a message made mostly of the spam or ham words (LF line ends)."""
    words = [rng.choice(SPAM_WORDS if spam else HAM_WORDS) for _ in range(30)]
    dom = 'promo.example.biz' if spam else 'corp.example.org'
    return ('From: Sender <s%d@%s>\nTo: <%s>\nSubject: %s %s\n'
            'Date: Sat, 28 Nov 2026 10:00:00 +0000\nMessage-ID: <%d.%s@example.net>\n\n'
            '%s\n%s\n' % (n, dom, rcpt, words[0], words[1], n, 's' if spam else 'h',
                            ' '.join(words[:15]), ' '.join(words[15:])))


def write_trained(rng, directory, spam, count, first=0):
    """write_trained - COUNT trained_message()s numbered FIRST and up, as N.eml in the new
    DIRECTORY; DIRECTORY."""
    os.makedirs(directory)
    for i in range(count):
        with open(os.path.join(directory, '%d.eml' % i), 'w') as f:
            f.write(trained_message(rng, spam, first + i))
    return directory


def learn_global(store, rng, train, count=40):
    """learn_global - COUNT spam and COUNT ham messages written under TRAIN/spam and
    TRAIN/ham, learned into STORE's global model."""
    for label in ('spam', 'ham'):
        store.ctl('learn', label, write_trained(rng, os.path.join(train, label),
                                                label == 'spam', count))


class MilterClassifierOnlyTest(labcase.MilterCase):
    """The classifier alone tags spam with the DEFAULT [spam] weights and spam_score (issue
    10's tuning: BAYES_67 and above weigh at least 5.0; BAYES_99 weighed 4.0 before, so
    nothing the classifier judged was tagged unless another test joined in)."""

    send = MilterSpamTest.send
    find = MilterSpamTest.find
    spam_headers = staticmethod(labcase.spam_headers)

    @classmethod
    def start_lab(cls):
        cls.dns = cls.lab.dns(zones={
            'example.com': [('@', 'TXT', 'v=spf1 ip4:192.0.2.0/24 -all')]})
        cls.store = cls.lab.store()
        rng = random.Random(10)
        train = os.path.join(cls.lab.root, 'train')
        learn_global(cls.store, rng, train)
        opts = lab_mod.mailwarden_plugin_options(cls.store)
        cls.dovecot = cls.lab.dovecot(cls.store, **opts)
        # no spam_score, no score_* keys: the defaults; only the training minimum lowered
        cls.start_mail_path(xclient=True, rcpt='bayesrcpt', config=(
            'dns_servers = %s\ndns_timeout = 2s\nlocal_domains = %s\ndkim_sign = no\n'
            'trusted_networks = 127.0.0.0/8\n[spam]\nenable = yes\n'
            '[classifier]\nmin_spam = 20\nmin_ham = 20\n' % (cls.dns.server, DOMAIN)))
        cls.rng = rng

    def deliver(self, spam):
        token = uniq('bayes')
        # From a domain the lab DNS serves (SPF pass, no DMARC record: no points either way)
        text = trained_message(self.rng, spam, 9000, self.rcpt).replace(
            '\n\n', '\n\ntoken %s\n' % token, 1)
        text = re.sub(r'^From: .*', 'From: Alice <alice@example.com>', text, count=1)
        text = text.replace('\n', '\r\n')
        r = self.send('192.0.2.30', 'mail.example.com', text)
        self.assertEqual(r[0], 'sent', r)
        return token

    def test_spam_tagged_by_classifier_alone(self):
        token = self.deliver(True)
        found = self.find(token, 'Junk')
        self.assertIsNotNone(found, 'classifier-judged spam not tagged into Junk')
        hdrs = self.spam_headers(found[0])
        self.assertEqual(len(hdrs), 1, hdrs)
        self.assertTrue(hdrs[0].startswith('yes;'), hdrs)
        # a classifier band and nothing else (SPF passes for 192.0.2.30; no DMARC record)
        self.assertRegex(hdrs[0], r'tests=BAYES_(67|80|95|99)$')
        self.assertIn('required=5.00', hdrs[0])

    def test_ham_not_tagged(self):
        token = self.deliver(False)
        found = self.find(token)
        self.assertIsNotNone(found, 'ham not in INBOX')
        hdrs = self.spam_headers(found[0])
        self.assertEqual(len(hdrs), 1, hdrs)
        self.assertTrue(hdrs[0].startswith('no;'), hdrs)
        self.assertRegex(hdrs[0], r'tests=BAYES_(00|20)$')


if __name__ == '__main__':
    unittest.main()
