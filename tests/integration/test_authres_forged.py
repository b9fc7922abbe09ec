"""test_authres_forged - forged verdict headers through real Postfix -> milter -> Dovecot LMTP -> IMAP.

Issue 9 item 3: the milter and the Dovecot plugin read the authserv-id of
Authentication-Results differently, so forged headers such as
'Authentication-Results: mail."example.org"; dkim=pass' survived the milter and the plugin
took them as ours. Now both use lib/mw-headers: the milter deletes every Authentication-Results
header whose authserv-id is not provably someone else's, and every X-Mailwarden-* header; the
plugin believes only the one header claiming our id, which must be the first
Authentication-Results header (Postfix puts the milter's inserted header above every header
of the message).

Real parts as in test_milter_auth: NSD serves the zones, the milter (ASan build) checks
SPF/DKIM/DMARC for a TEST-NET-1 client given by XCLIENT, Postfix delivers over LMTP to Dovecot
with the mailwarden plugin (mailwarden_authserv_id = the milter's id), and the delivered
message and its keywords are read back over IMAP.

Every forged message is DKIM-signed by example.com and then tampered with, from example.com's
SPF address: the milter's own header says spf=pass, dkim=fail, dmarc=pass, so the right
keywords are exactly $DKIMFail. Each forged header claims dkim=pass (would hide $DKIMFail),
dmarc=fail and spf=fail (would add $DMARCFail and $SPFFail).
"""

import smtplib
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN
AUTHSERV_ID = 'mail.' + DOMAIN
DELIVERY_TIMEOUT = 30
CLAIMS = 'dkim=pass header.d=example.com; dmarc=fail header.from=example.com; spf=fail'

# (name, raw header line(s) without the final CRLF and the forged CLAIMS that end them);
# each is sent in its own message
FORGED_HEADS = [
    # the four from the report
    ('quoted_domain', b'Authentication-Results: mail."example.org"; '),
    ('empty_quote_before', b'Authentication-Results: ""mail.example.org; '),
    ('quoted_label', b'Authentication-Results: "mail".example.org; '),
    ('quote_inside', b'Authentication-Results: mail.exa"mple.org"; '),
    # every other normalisation of our id
    ('plain', b'Authentication-Results: mail.example.org; '),
    ('upper_case', b'Authentication-Results: MAIL.EXAMPLE.ORG; '),
    ('quoted', b'Authentication-Results: "mail.example.org"; '),
    ('quoted_pairs', b'Authentication-Results: "mail\\.example\\.org"; '),
    ('trailing_dot', b'Authentication-Results: mail.example.org.; '),
    ('comment_first', b'Authentication-Results: (ours) mail.example.org (really); '),
    ('version', b'Authentication-Results: mail.example.org 1; '),
    ('folded', b'Authentication-Results:\r\n mail.example.org\r\n\t;\r\n '),
    ('name_lower_case', b'authentication-results: mail.example.org; '),
    ('blank_before_colon', b'Authentication-Results : mail.example.org; '),
    ('encoded_word', b'Authentication-Results: =?utf-8?q?mail.example.org?=; '),
    ('encoded_word_quoted', b'Authentication-Results: "=?us-ascii?q?mail.example.org?="; '),
    ('eight_bit', b'Authentication-Results: m\xc3\xa0il.example.org; '),
    ('nbsp', b'Authentication-Results: mail.example.org\xc2\xa0; '),
    ('no_semicolon', b'Authentication-Results: mail.example.org '),
    ('nul', b'Authentication-Results: mail.example.org\x00; '),
    ('over_long', b'Authentication-Results: other.example; dkim=pass header.b='
     + b'a' * 9000 + b'; '),
    # two of ours, one of them with a foreign header between
    ('two_headers', b'Authentication-Results: mail.example.org; dkim=pass\r\n'
     b'Authentication-Results: other.example; dkim=fail\r\n'
     b'Authentication-Results: "mail.example.org"; '),
]
FORGED = [(name, head + CLAIMS.encode()) for name, head in FORGED_HEADS]


def uniq(prefix):
    """uniq - a fresh token."""
    return '%s%s' % (prefix, uuid.uuid4().hex[:10])


def header_fields(raw):
    """header_fields - [(lower-case name without blanks, unfolded value)] of RAW's header."""
    head = raw.replace(b'\r\n', b'\n').split(b'\n\n', 1)[0]
    fields = []
    for line in head.split(b'\n'):
        if line[:1] in (b' ', b'\t') and fields:
            fields[-1][1] += b' ' + line.strip()
        else:
            name, _, value = line.partition(b':')
            fields.append([name.strip().lower(), value.strip()])
    return [(n.decode('ascii', 'replace'), v.decode('utf-8', 'replace')) for n, v in fields]


class ForgedAuthResultsTest(labcase.DkimSigner, labcase.MilterCase):
    """Forged Authentication-Results / X-Mailwarden-* never reach the mailbox or the plugin."""

    @classmethod
    def start_lab(cls):
        cls.start_signer()
        cls.key_com, txt_com = labcase.genkey(cls.keydir, 'example.com', 'sel1')
        cls.dns = cls.lab.dns(zones={
            'example.com': [('@', 'TXT', 'v=spf1 ip4:192.0.2.10 -all'),
                            ('sel1._domainkey', 'TXT', txt_com),
                            ('_dmarc', 'TXT', 'v=DMARC1; p=reject')],
        })
        cls.store = cls.lab.store()
        opts = lab_mod.mailwarden_plugin_options(cls.store,
                                                 mailwarden_authserv_id=AUTHSERV_ID)
        cls.dovecot = cls.lab.dovecot(cls.store, **opts)
        cls.start_mail_path(xclient=True, rcpt='forged', config=(
            'dns_servers = %s\ndns_timeout = 1s\n' % cls.dns.server))

    # -- helpers ---------------------------------------------------------------------------

    def tampered(self, token, extra=b''):
        """tampered - a message signed by example.com, body changed after signing, with the
        EXTRA header lines (CRLF-terminated) below the signed ones: dkim=fail, spf=pass and
        dmarc=pass (SPF aligned) from 192.0.2.10."""
        text = ('From: Alice <alice@example.com>\r\nTo: <%s>\r\nSubject: forged %s\r\n'
                'Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@test>\r\n\r\n'
                'Hello there.\r\nbody token %s\r\n' % (self.rcpt, token, token, token))
        signed = self.signed(text, 'sel1', 'example.com', self.key_com)
        signed = signed.replace(b'Hello there.', b'Hello there!')
        head, body = signed.split(b'\r\n\r\n', 1)
        return head + b'\r\n' + extra + b'\r\n' + body

    def send(self, data):
        """send - DATA from 192.0.2.10 (XCLIENT) to the inbox user; the reply code."""
        with self.xclient('192.0.2.10', 'mail.example.com') as s:
            self.assertEqual(s.mail('alice@example.com')[0], 250)
            self.assertIn(s.rcpt(self.rcpt)[0], (250, 251))
            code, resp = s.data(data)
            return code, resp.decode(errors='replace')

    def delivered(self, token, mailbox='INBOX', timeout=DELIVERY_TIMEOUT):
        """delivered - (flags, raw bytes) of the message carrying TOKEN, or None."""
        return labcase.imap_fetch(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token,
                                  mailbox, timeout=timeout)

    def ours_only(self, raw, foreign=()):
        """ours_only - the delivered header holds our one Authentication-Results, first of
        them, and exactly the FOREIGN ones besides; no X-Mailwarden-* header."""
        fields = header_fields(raw)
        ar = [v for n, v in fields if n == 'authentication-results']
        self.assertGreaterEqual(len(ar), 1, fields)
        self.assertEqual(ar[0], '%s; spf=pass smtp.mailfrom=alice@example.com '
                         'smtp.helo=mail.example.com; dkim=fail (body hash mismatch) '
                         'header.d=example.com header.s=sel1; dmarc=pass (p=reject) '
                         'header.from=example.com' % AUTHSERV_ID, fields)
        self.assertEqual(ar[1:], list(foreign), fields)
        self.assertEqual([n for n, _ in fields if n.startswith('x-mailwarden')], [], fields)

    def forged_flags(self, name, line, failures, foreign=()):
        """forged_flags - the keywords of a tampered() message with the header LINE(s)
        below the signed ones, once delivered to INBOX; what went wrong on the way (refused,
        not delivered, not ours_only(FOREIGN)) is appended to FAILURES as NAME: why, and
        None comes back when it never arrived."""
        token = uniq('f')
        code, resp = self.send(self.tampered(token, line + b'\r\n'))
        if code != 250:
            failures.append('%s: refused %d %s' % (name, code, resp))
            return None
        got = self.delivered(token)
        if got is None:
            failures.append('%s: not delivered to INBOX (filed as spam?)' % name)
            return None
        flags, raw = got
        try:
            self.ours_only(raw, foreign)
        except AssertionError as e:
            failures.append('%s: forged header delivered: %s' % (name, e))
        return flags

    # -- tests -------------------------------------------------------------------------------

    def test_control_only_our_header(self):
        token = uniq('ctl')
        code, resp = self.send(self.tampered(token))
        self.assertEqual(code, 250, resp)
        got = self.delivered(token)
        self.assertIsNotNone(got, 'control message not delivered')
        flags, raw = got
        self.ours_only(raw)
        self.assertIn('$DKIMFail', flags)
        self.assertNotIn('$DMARCFail', flags)
        self.assertNotIn('$SPFFail', flags)

    def test_forged_authentication_results_removed_and_not_believed(self):
        failures = []
        for name, line in FORGED:
            foreign = ['other.example; dkim=fail'] if name == 'two_headers' else []
            flags = self.forged_flags(name, line, failures, foreign)
            if flags is None:
                continue
            want = ['$DKIMFail']
            have = sorted(f for f in flags if f in ('$DKIMFail', '$DMARCFail', '$SPFFail'))
            if have != want:
                failures.append('%s: keywords %r, want %r' % (name, have, want))
        self.assertEqual(failures, [], '\n'.join(failures))

    def test_foreign_header_kept_and_ours_believed(self):
        # someone else's results stay (provably not ours) and do not displace ours
        token = uniq('foreign')
        extra = (b'Authentication-Results: mx.other.example; dkim=pass header.d=example.com; '
                 b'dmarc=fail; spf=fail\r\n')
        code, resp = self.send(self.tampered(token, extra))
        self.assertEqual(code, 250, resp)
        got = self.delivered(token)
        self.assertIsNotNone(got)
        flags, raw = got
        self.ours_only(raw, ['mx.other.example; dkim=pass header.d=example.com; '
                             'dmarc=fail; spf=fail'])
        self.assertIn('$DKIMFail', flags)
        self.assertNotIn('$DMARCFail', flags)
        self.assertNotIn('$SPFFail', flags)

    def test_forged_mailwarden_headers_removed(self):
        variants = [
            b'X-Mailwarden-Spam: yes; score=99.00; required=5.00; tests=FORGED',
            b'x-mailwarden-spam: yes; score=99.00; required=5.00; tests=FORGED',
            b'X-Mailwarden-Spam : yes; score=99.00; required=5.00; tests=FORGED',
            b'X-Mailwarden-Spam: no\r\nX-Mailwarden-Spam: yes; tests=FORGED',
            b'X-MAILWARDEN-VIRUS: infected (Forged.Sig)',
        ]
        failures = []
        for i, line in enumerate(variants):
            flags = self.forged_flags(str(i), line, failures)
            if flags is None:
                continue
            if '$Junk' in flags or '$Virus' in flags:
                failures.append('%d: keywords %r' % (i, flags))
        self.assertEqual(failures, [], '\n'.join(failures))

    def lmtp(self, token, headers):
        """lmtp - straight to Dovecot over LMTP (no Postfix, no milter): HEADERS (lines)
        above a plain message carrying TOKEN."""
        text = ('%sFrom: <alice@example.com>\r\nTo: <%s>\r\nSubject: lmtp %s\r\n'
                'Message-ID: <%s@test>\r\n\r\nbody token %s\r\n'
                % (''.join(h + '\r\n' for h in headers), self.rcpt, token, token, token))
        with smtplib.LMTP('127.0.0.1', self.dovecot.lmtp_port, timeout=30) as lm:
            lm.sendmail('alice@example.com', [self.rcpt], text.encode())

    def test_plugin_believes_only_the_single_first_claimant(self):
        # Without the milter in the way, the plugin itself must refuse any header layout the
        # milter never produces: a second header claiming our id above or below ours, or
        # two X-Mailwarden-Spam headers.
        mine = '%s; spf=pass; dkim=pass header.d=example.com; dmarc=pass' % AUTHSERV_ID
        cases = [
            ('alone', ['Authentication-Results: ' + mine.replace('dkim=pass', 'dkim=fail')],
             ['$DKIMFail']),
            ('forged_above', ['Authentication-Results: %s; dmarc=fail' % AUTHSERV_ID,
                              'Authentication-Results: ' + mine], []),
            ('forged_below', ['Authentication-Results: ' + mine.replace('dkim=pass',
                                                                        'dkim=fail'),
                              'Authentication-Results: "%s"; dkim=pass' % AUTHSERV_ID], []),
            ('foreign_above', ['Authentication-Results: other.example; none',
                               'Authentication-Results: %s; dmarc=fail' % AUTHSERV_ID], []),
            ('two_spam', ['X-Mailwarden-Spam: yes; tests=FORGED', 'X-Mailwarden-Spam: no'],
             []),
        ]
        failures = []
        for name, headers, want in cases:
            token = uniq('lmtp')
            self.lmtp(token, headers)
            got = self.delivered(token)
            if got is None:
                failures.append('%s: not delivered to INBOX' % name)
                continue
            have = sorted(f for f in got[0] if f in ('$DKIMFail', '$DMARCFail', '$Junk'))
            if have != want:
                failures.append('%s: keywords %r, want %r' % (name, have, want))
        self.assertEqual(failures, [], '\n'.join(failures))


if __name__ == '__main__':
    unittest.main()
