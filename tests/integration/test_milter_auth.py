"""test_milter_auth - inbound SPF, DKIM and DMARC in mailwarden-milter through real Postfix.

Real parts: NSD (the lab DNS server) serves the test zones on a loopback port and the milter
resolves through it ([milter] dns_servers); Postfix (smtpd_milters = the ASan milter,
milter_default_action = tempfail) delivers over LMTP to Dovecot, and delivered messages are
read back over IMAP. Clients connect from loopback, which is in the milter's default
trusted_networks, so each session first sends Postfix's XCLIENT (allowed from loopback by
smtpd_authorized_xclient_hosts) to appear as a TEST-NET-1 address: the milter sees that
address as {client_addr} and SPF checks it. Inbound messages are signed by python3-dkim's
dkimsign with keys made by opendkim-genkey and published in the zones.

Zones:
  example.com  SPF ip4:192.0.2.10 -all, key sel1, DMARC p=reject
  example.net  SPF ip4:192.0.2.20 ~all, DMARC p=quarantine
  example.edu  SPF ip4:192.0.2.30 -all, key sel3, DMARC p=reject (the DNS failure test only)
  example.org  the lab's mail domain and the milter's local_domains: SPF ip4:192.0.2.50 -all,
               DMARC p=reject
"""

import os
import re
import smtplib
import subprocess
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod
from labcase import header_lines

DOMAIN = lab_mod.DOMAIN
AUTHSERV_ID = 'mail.' + DOMAIN
DELIVERY_TIMEOUT = 30


def uniq(prefix):
    """uniq - a fresh token."""
    return '%s%s' % (prefix, uuid.uuid4().hex[:10])


def message(sender, rcpt, token, extra_headers=''):
    """message - a small message from SENDER carrying TOKEN (CRLF line ends)."""
    return ('From: Sender <%s>\r\nTo: <%s>\r\nSubject: auth test %s\r\n'
            'Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@test>\r\n%s\r\n'
            'Hello there.\r\nbody token %s\r\n' % (sender, rcpt, token, token, extra_headers,
                                                   token))


def fetch_message(port, user, password, token, timeout=DELIVERY_TIMEOUT):
    """fetch_message - the raw message carrying TOKEN in USER's INBOX (waits), or None."""
    return labcase.imap_text(port, user, password, token, timeout=timeout)


class MilterAuthTest(labcase.DkimSigner, labcase.MilterCase):
    """SPF/DKIM/DMARC verdicts of mailwarden-milter on mail through Postfix."""

    @classmethod
    def start_lab(cls):
        cls.start_signer()
        cls.key_com, txt_com = labcase.genkey(cls.keydir, 'example.com', 'sel1')
        cls.key_edu, txt_edu = labcase.genkey(cls.keydir, 'example.edu', 'sel3')
        cls.zones = {
            'example.com': [('@', 'TXT', 'v=spf1 ip4:192.0.2.10 -all'),
                            ('sel1._domainkey', 'TXT', txt_com),
                            ('_dmarc', 'TXT', 'v=DMARC1; p=reject')],
            'example.net': [('@', 'TXT', 'v=spf1 ip4:192.0.2.20 ~all'),
                            ('_dmarc', 'TXT', 'v=DMARC1; p=quarantine')],
            # only used by the DNS failure test: nothing of it is in any cache before
            'example.edu': [('@', 'TXT', 'v=spf1 ip4:192.0.2.30 -all'),
                            ('sel3._domainkey', 'TXT', txt_edu),
                            ('_dmarc', 'TXT', 'v=DMARC1; p=reject')],
            DOMAIN: [('@', 'TXT', 'v=spf1 ip4:192.0.2.50 -all'),
                     ('_dmarc', 'TXT', 'v=DMARC1; p=reject')],
        }
        cls.dns = cls.lab.dns(zones=cls.zones)
        cls.store = cls.lab.store()
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.start_mail_path(xclient=True, rcpt='inbox', config=(
            'dns_servers = %s\ndns_timeout = 1s\nlocal_domains = %s\n'
            'dmarc_quarantine = hold\n' % (cls.dns.server, DOMAIN)))

    # -- helpers ---------------------------------------------------------------------------

    def send(self, ip, helo, envfrom, text):
        """send - one message from client IP (via XCLIENT) to the inbox user:
        (stage, code, reply text)."""
        return self.send_from(ip, helo, envfrom, text)

    def delivered(self, token, timeout=DELIVERY_TIMEOUT):
        return fetch_message(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token, timeout)

    def our_ar(self, raw):
        """our_ar - the Authentication-Results values carrying our authserv-id."""
        out = []
        for line in header_lines(raw):
            name, _, value = line.partition(':')
            if name.lower() == 'authentication-results' and \
                    value.strip().lower().startswith(AUTHSERV_ID + ';'):
                out.append(value.strip())
        return out

    # -- tests -------------------------------------------------------------------------------

    def test_signed_message_passes_and_forged_results_replaced(self):
        token = uniq('pass')
        forged = 'Authentication-Results: %s; dkim=pass header.d=forged.example\r\n' % AUTHSERV_ID
        text = self.sign(message('alice@example.com', self.rcpt, token, forged))
        r = self.send('192.0.2.10', 'mail.example.com', 'alice@example.com', text)
        self.assertEqual(r[0], 'sent', r)
        raw = self.delivered(token)
        self.assertIsNotNone(raw, 'signed message not delivered')
        ar = self.our_ar(raw)
        self.assertEqual(len(ar), 1, header_lines(raw))
        self.assertEqual(ar[0], '%s; spf=pass smtp.mailfrom=alice@example.com '
                         'smtp.helo=mail.example.com; dkim=pass header.d=example.com '
                         'header.s=sel1; dmarc=pass (p=reject) header.from=example.com'
                         % AUTHSERV_ID)
        self.assertNotIn('forged.example', raw)
        # ours comes before the message's own header fields
        names = [l.split(':', 1)[0].lower() for l in header_lines(raw)]
        self.assertLess(names.index('authentication-results'), names.index('dkim-signature'))

    def test_tampered_message_is_dkim_fail(self):
        token = uniq('tamper')
        signed = self.sign(message('alice@example.com', self.rcpt, token))
        tampered = signed.replace('Hello there.', 'Hello there!')
        self.assertNotEqual(signed, tampered)
        # SPF passes and aligns: DMARC passes, delivered with the DKIM failure recorded
        r = self.send('192.0.2.10', 'mail.example.com', 'alice@example.com', tampered)
        self.assertEqual(r[0], 'sent', r)
        raw = self.delivered(token)
        self.assertIsNotNone(raw)
        ar = self.our_ar(raw)
        self.assertEqual(len(ar), 1, ar)
        self.assertIn('dkim=fail', ar[0])
        self.assertIn('spf=pass', ar[0])
        self.assertIn('dmarc=pass', ar[0])

    def test_dmarc_reject_refused_at_end_of_data(self):
        token = uniq('reject')
        r = self.send('192.0.2.99', 'mx.elsewhere.example', 'alice@example.com',
                      message('alice@example.com', self.rcpt, token))
        self.assertEqual(r[:2], ('data', 550), r)
        self.assertIn('5.7.26', r[2])
        self.assertIn('DMARC', r[2])
        self.assertIsNone(self.delivered(token, timeout=2))

    def test_dmarc_quarantine_goes_to_hold_queue(self):
        token = uniq('hold')
        r = self.send('192.0.2.99', 'mx.elsewhere.example', 'bob@example.net',
                      message('bob@example.net', self.rcpt, token))
        self.assertEqual(r[0], 'sent', r)
        m = re.search(r'queued as ([0-9A-Za-z]+)', r[2])
        self.assertIsNotNone(m, r)
        qid = m.group(1)
        postqueue = lab_mod.find_binary('postqueue', 'postfix')
        deadline = time.monotonic() + 15
        while True:
            p = subprocess.run([postqueue, '-c', self.postfix.config_dir, '-p'],
                               capture_output=True, text=True, timeout=30)
            if qid + '!' in p.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        self.assertIn(qid + '!', p.stdout, 'not on hold:\n' + p.stdout)
        self.assertTrue(os.path.exists(os.path.join(self.postfix.queue_dir, 'hold', qid)))
        self.assertIsNone(self.delivered(token, timeout=2))

    def test_local_domain_spoofing_refused(self):
        token = uniq('spoof')
        r = self.send('192.0.2.99', 'mx.elsewhere.example', 'x@example.net',
                      message('ceo@%s' % DOMAIN, self.rcpt, token))
        self.assertEqual(r[:2], ('data', 550), r)
        self.assertIn('5.7.1', r[2])
        self.assertIn('local domain %s' % DOMAIN, r[2])
        # SPF passes for the envelope (example.net's server) but nothing aligns with the
        # local From: refused as well
        r = self.send('192.0.2.20', 'mx.example.net', 'x@example.net',
                      message('ceo@%s' % DOMAIN, self.rcpt, uniq('spoof')))
        self.assertEqual(r[:2], ('data', 550), r)
        self.assertIn('5.7.1', r[2])
        # the domain's own server with an aligned envelope passes DMARC: delivered
        ok = uniq('own')
        r = self.send('192.0.2.50', 'mail.%s' % DOMAIN, 'ceo@%s' % DOMAIN,
                      message('ceo@%s' % DOMAIN, self.rcpt, ok))
        self.assertEqual(r[0], 'sent', r)
        raw = self.delivered(ok)
        self.assertIsNotNone(raw)
        self.assertIn('dmarc=pass', self.our_ar(raw)[0])
        self.assertIsNone(self.delivered(token, timeout=1))

    def test_unusable_from_refused(self):
        # issue 9: with the From header twice (or unparseable, or several addresses) DMARC
        # had no domain, became permerror, and the message was delivered; the local-domain
        # check had the same hole. Each form, for a p=reject domain and the local domain.
        tokens = []
        for dom, one_xcode in (('example.com', '5.7.26'), (DOMAIN, '5.7.1')):
            ceo = 'ceo@%s' % dom
            froms = {
                'one': (['From: %s' % ceo], one_xcode),
                'two': (['From: %s' % ceo, 'From: x@example.net'], '5.7.1'),
                'two, other first': (['From: x@example.net', 'From: %s' % ceo], '5.7.1'),
                'malformed': (['From: %s <x@example.net>' % ceo], '5.7.1'),
                # Postfix's cleanup closes the '<' itself: DMARC then judges it
                'unterminated': (['From: <%s' % ceo], one_xcode),
                'several addresses': (['From: x@example.net, %s' % ceo], '5.7.1'),
                'several in a group': (['From: g: x@example.net, %s;' % ceo], '5.7.1'),
                'empty group': (['From: undisclosed:;'], '5.7.1'),
                'domain literal': (['From: ceo@[192.0.2.10]'], '5.7.1'),
                'folded': (['From: "The\r\n CEO"\r\n\t<%s>' % ceo], one_xcode),
                'encoded display name': (['From: =?utf-8?q?C=C3=A9O?= <%s>' % ceo], one_xcode),
                'one in a group': (['From: board: %s;' % ceo], one_xcode),
            }
            for name, (lines, xcode) in froms.items():
                with self.subTest(dom, form=name):
                    token = uniq('from')
                    tokens.append(token)
                    text = message(ceo, self.rcpt, token).replace(
                        'From: Sender <%s>' % ceo, '\r\n'.join(lines), 1)
                    r = self.send('192.0.2.99', 'mx.elsewhere.example', 'x@example.net', text)
                    self.assertEqual(r[:2], ('data', 550), r)
                    self.assertIn(xcode, r[2])
            # bytes a reader may show but the parser refuses: 8-bit, NUL
            for name, raw in (('8-bit', b'From: \xffCEO <%s>' % ceo.encode()),
                              ('NUL', b'From: %s\x00, x@example.net' % ceo.encode())):
                with self.subTest(dom, form=name):
                    token = uniq('from')
                    tokens.append(token)
                    text = message(ceo, self.rcpt, token).encode().replace(
                        b'From: Sender <%s>' % ceo.encode(), raw, 1)
                    r = self.send('192.0.2.99', 'mx.elsewhere.example', 'x@example.net', text)
                    self.assertEqual(r[1] // 100, 5, r)
            # a client that passes SPF for its own domain adds a second From: refused too
            token = uniq('from')
            tokens.append(token)
            text = message('alice@example.com', self.rcpt, token).replace(
                'To: ', 'From: %s\r\nTo: ' % ceo, 1)
            r = self.send('192.0.2.10', 'mail.example.com', 'alice@example.com', text)
            self.assertEqual(r[:2], ('data', 550), r)
            self.assertIn('5.7.1', r[2])
            # no From at all: Postfix adds one from the envelope, which DMARC then judges
            token = uniq('from')
            tokens.append(token)
            text = message(ceo, self.rcpt, token).replace('From: Sender <%s>\r\n' % ceo, '')
            r = self.send('192.0.2.99', 'mx.elsewhere.example', ceo, text)
            self.assertEqual(r[:2], ('data', 550), r)
            self.assertIn(one_xcode, r[2])
        for t in tokens:
            self.assertIsNone(self.delivered(t, timeout=0.3), t)

    def test_sender_claiming_local_domain_refused(self):
        # From passes DMARC (example.net's own server), but Sender: shows the local domain
        token = uniq('sender')
        text = message('bob@example.net', self.rcpt, token).replace(
            'To: ', 'Sender: Boss <boss@%s>\r\nTo: ' % DOMAIN, 1)
        r = self.send('192.0.2.20', 'mx.example.net', 'bob@example.net', text)
        self.assertEqual(r[:2], ('data', 550), r)
        self.assertIn('5.7.1 Sender header claims local domain %s' % DOMAIN, r[2])
        # two Sender fields
        text = message('bob@example.net', self.rcpt, uniq('sender')).replace(
            'To: ', 'Sender: a@example.net\r\nSender: b@example.net\r\nTo: ', 1)
        r = self.send('192.0.2.20', 'mx.example.net', 'bob@example.net', text)
        self.assertEqual(r[:2], ('data', 550), r)
        self.assertIn('5.7.1', r[2])
        # a Sender of the From's own domain is fine
        ok = uniq('sender')
        text = message('bob@example.net', self.rcpt, ok).replace(
            'To: ', 'Sender: list@example.net\r\nTo: ', 1)
        r = self.send('192.0.2.20', 'mx.example.net', 'bob@example.net', text)
        self.assertEqual(r[0], 'sent', r)
        self.assertIsNotNone(self.delivered(ok))
        self.assertIsNone(self.delivered(token, timeout=0.3))

    def test_from_with_blank_before_colon_is_renamed_by_postfix(self):
        # `From : x` never reaches the milter as From: Postfix renames it X-Mailbox-Line
        # and adds a From from the envelope, and that From is what DMARC judges
        token = uniq('mbox')
        text = message('ceo@%s' % DOMAIN, self.rcpt, token).replace(
            'From: Sender', 'From : Sender', 1)
        r = self.send('192.0.2.20', 'mx.example.net', 'bob@example.net', text)
        self.assertEqual(r[0], 'sent', r)
        raw = self.delivered(token)
        self.assertIsNotNone(raw)
        lines = header_lines(raw)
        self.assertIn('From: bob@example.net', lines)
        self.assertTrue(any(l.startswith('X-Mailbox-Line: ') for l in lines), lines)
        self.assertIn('dmarc=pass', self.our_ar(raw)[0])
        # and the same from an address whose envelope fails DMARC is refused
        r = self.send('192.0.2.99', 'mx.elsewhere.example', 'alice@example.com',
                      message('ceo@%s' % DOMAIN, self.rcpt, uniq('mbox')).replace(
                          'From: Sender', 'From : Sender', 1))
        self.assertEqual(r[:2], ('data', 550), r)
        self.assertIn('5.7.26', r[2])

    def test_loopback_client_is_trusted_and_not_checked(self):
        token = uniq('trusted')
        s = smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=60)
        try:
            s.ehlo('lab-client.example')
            # would be a DMARC reject from anywhere else
            s.sendmail('alice@example.com', [self.rcpt],
                       message('alice@example.com', self.rcpt, token).encode())
        finally:
            s.quit()
        raw = self.delivered(token)
        self.assertIsNotNone(raw)
        self.assertEqual(self.our_ar(raw), [])

    def test_z_dns_down_tempfails_then_delivers(self):
        # example.edu was never looked up: nothing can come from the resolver's cache
        token = uniq('dns')
        text = self.sign(message('dean@example.edu', self.rcpt, token), 'sel3', 'example.edu',
                         self.key_edu)
        self.dns.stop()
        try:
            r = self.send('192.0.2.30', 'mail.example.edu', 'dean@example.edu', text)
            self.assertEqual(r[:2], ('data', 451), r)
            self.assertIn('4.7.1', r[2])
            self.assertIsNone(self.delivered(token, timeout=1))
        finally:
            self.dns.start()
        # the client retries once DNS is back
        deadline = time.monotonic() + 40
        while True:
            r = self.send('192.0.2.30', 'mail.example.edu', 'dean@example.edu', text)
            if r[0] == 'sent' or time.monotonic() > deadline:
                break
            time.sleep(2)
        self.assertEqual(r[0], 'sent', r)
        raw = self.delivered(token)
        self.assertIsNotNone(raw)
        ar = self.our_ar(raw)
        self.assertEqual(len(ar), 1, ar)
        self.assertIn('spf=pass', ar[0])
        # the resolver may still remember the key lookup's failure for a moment: the
        # signature is then temperror (never fail); SPF alone aligns, so DMARC passes
        self.assertRegex(ar[0], r'dkim=(pass|temperror \(key lookup failed temporarily\)) '
                         r'header\.d=example\.edu')
        self.assertIn('dmarc=pass', ar[0])

if __name__ == '__main__':
    unittest.main()
