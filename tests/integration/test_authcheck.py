"""test_authcheck - inbound SPF, DKIM and DMARC (lib/mw-authcheck) against a real DNS server.

A real authoritative server (NSD, scripts/mailwarden_lab.py DNSServer) serves the test zones
on a loopback port; tests/tools/mw-authcheck-tool runs the module on a message exactly as
the milter does and prints the results as JSON. Messages are signed by an independent
signer (dkimsign from python3-dkim) with keys made by opendkim-genkey at run time.

Zones (client addresses from 192.0.2.0/24, TEST-NET-1):
  example.com   SPF ip4:192.0.2.10 -all, key sel1, DMARC p=reject
  mail.example.com  SPF ip4:192.0.2.11 -all (relaxed SPF alignment for example.com)
  example.net   SPF ip4:192.0.2.20 ~all, key sel2, DMARC p=quarantine
  example.org   no SPF, DMARC p=none
  example.edu   SPF ip4:192.0.2.30 -all, no DMARC; our "local domain" in the spoofing tests
"""

import json
import os
import select
import subprocess
import time
import unittest

import labcase
import mailwarden_lab as lab_mod

ID = 'mx.example.net'


def message(sender, subject='hello', body='Hello there.\r\nSecond line.\r\n'):
    """message - a small message from SENDER (CRLF line ends)."""
    return ('From: Sender <%s>\r\nTo: rcpt@example.net\r\nSubject: %s\r\n'
            'Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@test>\r\n\r\n%s'
            % (sender, subject, time.monotonic_ns(), body))


class AuthcheckTest(labcase.AuthcheckTool, labcase.DkimSigner, labcase.LabCase):
    """SPF/DKIM/DMARC results and verdicts through the real DNS server."""

    @classmethod
    def start_lab(cls):
        cls.tool = os.path.join(cls.lab.builddir, 'tests', 'tools', 'mw-authcheck-tool')
        if not os.access(cls.tool, os.X_OK):
            raise lab_mod.LabError('%s not built (make check builds it)' % cls.tool)
        cls.start_signer()
        cls.key_com, txt_com = labcase.genkey(cls.keydir, 'example.com', 'sel1')
        cls.key_net, txt_net = labcase.genkey(cls.keydir, 'example.net', 'sel2')
        cls.zones = {
            'example.com': [('@', 'TXT', 'v=spf1 ip4:192.0.2.10 -all'),
                            ('@', 'A', '192.0.2.10'),
                            ('sel1._domainkey', 'TXT', txt_com),
                            ('_dmarc', 'TXT', 'v=DMARC1; p=reject'),
                            ('mail', 'TXT', 'v=spf1 ip4:192.0.2.11 -all')],
            'example.net': [('@', 'TXT', 'v=spf1 ip4:192.0.2.20 ~all'),
                            ('sel2._domainkey', 'TXT', txt_net),
                            ('_dmarc', 'TXT', 'v=DMARC1; p=quarantine')],
            'example.org': [('@', 'A', '192.0.2.40'),
                            ('_dmarc', 'TXT', 'v=DMARC1; p=none')],
            'example.edu': [('@', 'TXT', 'v=spf1 ip4:192.0.2.30 -all')],
        }
        cls.dns = cls.lab.dns(zones=cls.zones)

    def check(self, text, ip, mail_from, helo='mail.example.com', dns=None, extra=(),
              timeout_ms=3000):
        """check - run the tool on TEXT; returns the parsed JSON."""
        raw = text if isinstance(text, bytes) else text.encode()
        out = self.authcheck(raw, ip, mail_from, dns or self.dns.server, helo, ID, timeout_ms,
                             extra)
        ar = out['authentication_results']
        self.assertTrue(ar.startswith(ID + '; '))
        # folded ('\n\t') into short lines; compared unfolded
        for line in ar.split('\n'):
            self.assertLessEqual(len(line), 100, ar)
        self.assertNotRegex(ar, r'\n(?!\t)')
        out['authentication_results'] = ar.replace('\n\t', ' ')
        return out

    # ---- DKIM ------------------------------------------------------------------------

    def test_dkim_pass(self):
        r = self.check(self.sign(message('alice@example.com')), '192.0.2.10',
                       '<alice@example.com>')
        self.assertEqual(len(r['dkim']), 1)
        self.assertEqual(r['dkim'][0], {'result': 'pass', 'd': 'example.com', 's': 'sel1',
                                         'reason': ''})
        self.assertEqual((r['spf'], r['dmarc'], r['policy']), ('pass', 'pass', 'reject'))
        self.assertTrue(r['dkim_aligned'] and r['spf_aligned'])
        self.assertEqual(r['verdict']['action'], 'accept')
        self.assertEqual(r['authentication_results'],
                         '%s; spf=pass smtp.mailfrom=alice@example.com '
                         'smtp.helo=mail.example.com; dkim=pass header.d=example.com '
                         'header.s=sel1; dmarc=pass (p=reject) header.from=example.com' % ID)

    def test_dkim_pass_lf_message(self):
        # a message file with bare LF line ends is fed as CRLF, as Postfix does
        signed = self.sign(message('alice@example.com'))
        r = self.check(signed.replace('\r\n', '\n'), '192.0.2.99', '<alice@example.com>')
        self.assertEqual(r['dkim'][0]['result'], 'pass')
        self.assertEqual(r['spf'], 'fail')
        self.assertEqual(r['dmarc'], 'pass')   # via DKIM alignment alone
        self.assertTrue(r['dkim_aligned'])
        self.assertFalse(r['spf_aligned'])

    def test_dkim_tampered_body_fails(self):
        signed = self.sign(message('alice@example.com'))
        tampered = signed.replace('Second line.', 'Second line!')
        self.assertNotEqual(signed, tampered)
        r = self.check(tampered, '192.0.2.99', '<alice@example.com>')
        self.assertEqual(r['dkim'][0]['result'], 'fail')
        self.assertEqual(r['dkim'][0]['d'], 'example.com')
        self.assertIn('dkim=fail', r['authentication_results'])
        self.assertNotIn('=pass', r['authentication_results'])
        # SPF fails too and example.com publishes p=reject: 550 5.7.26
        self.assertEqual((r['dmarc'], r['policy']), ('fail', 'reject'))
        self.assertEqual(r['verdict']['action'], 'reject')
        self.assertEqual((r['verdict']['code'], r['verdict']['xcode']), ('550', '5.7.26'))

    def test_dkim_tampered_header_fails(self):
        signed = self.sign(message('alice@example.com', subject='original subject'))
        tampered = signed.replace('Subject: original subject', 'Subject: changed subject')
        self.assertNotEqual(signed, tampered)
        r = self.check(tampered, '192.0.2.10', '<alice@example.com>')
        self.assertEqual(r['dkim'][0]['result'], 'fail')
        # SPF still passes and aligns: DMARC passes, the message is accepted
        self.assertEqual((r['spf'], r['dmarc']), ('pass', 'pass'))
        self.assertEqual(r['verdict']['action'], 'accept')

    def test_dkim_no_key_and_wrong_key(self):
        # signed with example.net's key but claiming example.com/sel1: signature mismatch
        r = self.check(self.sign(message('alice@example.com'), key=self.key_net),
                       '192.0.2.99', '<alice@example.com>')
        self.assertEqual(r['dkim'][0]['result'], 'fail')
        # a selector without a key record: permerror, never pass
        r = self.check(self.sign(message('alice@example.com'), selector='nokey'),
                       '192.0.2.10', '<alice@example.com>')
        self.assertEqual((r['dkim'][0]['result'], r['dkim'][0]['s']), ('permerror', 'nokey'))
        self.assertEqual(r['dmarc'], 'pass')   # SPF aligned

    def test_unsigned_is_dkim_none(self):
        r = self.check(message('alice@example.com'), '192.0.2.10', '<alice@example.com>')
        self.assertEqual(r['dkim'], [])
        self.assertIn('dkim=none;', r['authentication_results'])

    # ---- SPF ---------------------------------------------------------------------------

    def test_spf_per_client(self):
        cases = [('192.0.2.10', '<a@example.com>', 'pass'),
                 ('192.0.2.99', '<a@example.com>', 'fail'),
                 ('192.0.2.20', '<a@example.net>', 'pass'),
                 ('192.0.2.99', '<a@example.net>', 'softfail'),
                 ('192.0.2.99', '<a@example.org>', 'none'),
                 ('2001:db8::1', '<a@example.com>', 'fail')]
        for ip, sender, want in cases:
            with self.subTest(ip=ip, sender=sender):
                r = self.check(message(sender[1:-1]), ip, sender)
                self.assertEqual(r['spf'], want)
                self.assertIn('spf=%s smtp.mailfrom=%s' % (want, sender[1:-1]),
                              r['authentication_results'])

    def test_spf_null_sender_uses_helo(self):
        r = self.check(message('alice@example.com'), '192.0.2.10', '<>', helo='example.com')
        self.assertEqual((r['spf'], r['spf_helo'], r['spf_domain']),
                         ('pass', 'pass', 'example.com'))

    # ---- DMARC -------------------------------------------------------------------------

    def test_dmarc_pass_via_relaxed_spf_alignment(self):
        r = self.check(message('alice@example.com'), '192.0.2.11', '<bounce@mail.example.com>')
        self.assertEqual((r['spf'], r['dmarc']), ('pass', 'pass'))
        self.assertTrue(r['spf_aligned'])
        self.assertEqual(r['verdict']['action'], 'accept')

    def test_dmarc_fail_unaligned_spf_pass(self):
        # SPF passes for example.net, but From is example.com (p=reject): not aligned
        r = self.check(message('alice@example.com'), '192.0.2.20', '<a@example.net>')
        self.assertEqual((r['spf'], r['dmarc'], r['policy']), ('pass', 'fail', 'reject'))
        self.assertEqual(r['verdict']['xcode'], '5.7.26')
        # enforcement off: the result is recorded, the message accepted
        r = self.check(message('alice@example.com'), '192.0.2.20', '<a@example.net>',
                       extra=['--no-enforce'])
        self.assertEqual((r['dmarc'], r['verdict']['action']), ('fail', 'accept'))

    def test_dmarc_quarantine(self):
        r = self.check(message('bob@example.net'), '192.0.2.99', '<bob@example.net>')
        self.assertEqual((r['spf'], r['dmarc'], r['policy']), ('softfail', 'fail', 'quarantine'))
        self.assertEqual(r['verdict']['action'], 'quarantine')
        self.assertTrue(r['verdict']['hold'])
        r = self.check(message('bob@example.net'), '192.0.2.99', '<bob@example.net>',
                       extra=['--quarantine', 'tag'])
        self.assertEqual(r['verdict']['action'], 'quarantine')
        self.assertTrue(r['verdict']['tag'] and not r['verdict']['hold'])
        # signed by example.net: DKIM aligned, DMARC passes despite the SPF softfail
        r = self.check(self.sign(message('bob@example.net'), 'sel2', 'example.net',
                                 self.key_net), '192.0.2.99', '<bob@example.net>')
        self.assertEqual((r['dkim'][0]['result'], r['dmarc']), ('pass', 'pass'))
        self.assertEqual(r['verdict']['action'], 'accept')

    def test_dmarc_none_policy_and_absent_record(self):
        r = self.check(message('carol@example.org'), '192.0.2.99', '<carol@example.org>')
        self.assertEqual((r['dmarc'], r['policy']), ('fail', 'none'))
        self.assertEqual(r['verdict']['action'], 'accept')
        r = self.check(message('dave@example.edu'), '192.0.2.99', '<x@example.org>')
        self.assertEqual((r['dmarc'], r['policy']), ('none', 'absent'))
        self.assertEqual(r['verdict']['action'], 'accept')

    def test_local_domain_spoofing_refused(self):
        local = ['--local-domains', 'example.edu']
        r = self.check(message('ceo@example.edu'), '192.0.2.99', '<x@example.org>',
                       extra=local)
        self.assertEqual((r['verdict']['action'], r['verdict']['code'],
                          r['verdict']['xcode']), ('reject', '550', '5.7.1'))
        # envelope claiming the local domain from an unauthorised client
        r = self.check(message('x@example.org'), '192.0.2.99', '<ceo@example.edu>',
                       extra=local)
        self.assertEqual((r['spf'], r['verdict']['xcode']), ('fail', '5.7.1'))
        # a trusted client is never refused here
        r = self.check(message('ceo@example.edu'), '192.0.2.99', '<x@example.org>',
                       extra=local + ['--trusted'])
        self.assertEqual(r['verdict']['action'], 'accept')
        # the domain's own server passes SPF; without a DMARC record a local From still
        # needs DMARC to pass, so an unsigned message is refused
        r = self.check(message('ceo@example.edu'), '192.0.2.30', '<ceo@example.edu>',
                       extra=local)
        self.assertEqual((r['spf'], r['dmarc']), ('pass', 'none'))
        self.assertEqual(r['verdict']['xcode'], '5.7.1')

    def test_multiple_from_is_refused(self):
        # issue 9: a second From used to make DMARC permerror with no From domain, and the
        # verdict accepted it; now any From that gives no single domain is refused
        text = message('alice@example.com').replace(
            'To: ', 'From: other@example.org\r\nTo: ', 1)
        r = self.check(text, '192.0.2.10', '<alice@example.com>')
        self.assertEqual(r['dmarc'], 'permerror')
        self.assertNotIn('dmarc=pass', r['authentication_results'])
        self.assertEqual(r['from_problem'], '2 From header fields')
        self.assertEqual((r['verdict']['action'], r['verdict']['code'], r['verdict']['xcode'],
                          r['verdict']['why']), ('reject', '550', '5.7.1', 'from_invalid'))

    def test_unusable_from_refused_even_without_enforcement(self):
        base = message('ceo@example.com')
        cases = {
            'missing': base.replace('From: Sender <ceo@example.com>\r\n', ''),
            'twice': base.replace('To: ', 'From: Sender <ceo@example.com>\r\nTo: ', 1),
            'malformed': base.replace('Sender <ceo@example.com>', 'ceo@example.com <x@y.org>'),
            'two addresses': base.replace('Sender <ceo@example.com>',
                                          'ceo@example.com, x@example.org'),
            'empty group': base.replace('Sender <ceo@example.com>', 'undisclosed:;'),
            'domain literal': base.replace('Sender <ceo@example.com>', 'ceo@[192.0.2.10]'),
            '8-bit': base.encode().replace(b'Sender <ceo', b'\xffSender <ceo'),
            'name with blank': base.replace('From: Sender', 'From : Sender').replace(
                'To: ', 'From: x@example.org\r\nTo: ', 1),
        }
        for name, text in cases.items():
            for extra in ([], ['--no-enforce'], ['--local-domains', 'example.com']):
                with self.subTest(name, extra=extra):
                    r = self.check(text, '192.0.2.99', '<x@example.org>', extra=extra)
                    self.assertEqual(r['from_domain'], '')
                    self.assertNotEqual(r['from_problem'], '')
                    self.assertEqual((r['verdict']['action'], r['verdict']['xcode'],
                                      r['verdict']['why']), ('reject', '5.7.1', 'from_invalid'))
                    r = self.check(text, '192.0.2.99', '<x@example.org>',
                                   extra=extra + ['--trusted'])
                    self.assertEqual(r['verdict']['action'], 'accept')

    def test_sender_claiming_local_domain(self):
        # readers show Sender: as "on behalf of": a local domain there needs DKIM or SPF
        local = ['--local-domains', 'example.edu,example.com']
        text = message('carol@example.org').replace('To: ', 'Sender: boss@example.edu\r\nTo: ', 1)
        r = self.check(text, '192.0.2.99', '<carol@example.org>', extra=local)
        self.assertEqual((r['sender_domain'], r['sender_authenticated']), ('example.edu', False))
        self.assertEqual((r['verdict']['xcode'], r['verdict']['why']),
                         ('5.7.1', 'local_domain_spoof'))
        self.assertIn('Sender header claims local domain example.edu', r['verdict']['reason'])
        # the local domain's own server (SPF pass for it): vouched for
        r = self.check(text, '192.0.2.30', '<boss@example.edu>', extra=local)
        self.assertTrue(r['sender_authenticated'])
        self.assertEqual(r['verdict']['action'], 'accept')
        # SPF passes, but for another domain of the same length: not vouched for
        r = self.check(text, '192.0.2.10', '<alice@example.com>', extra=local)
        self.assertEqual((r['spf'], r['sender_authenticated']), ('pass', False))
        self.assertEqual(r['verdict']['why'], 'local_domain_spoof')
        # SPF of a parent domain vouches for a subdomain
        sub = message('carol@example.org').replace(
            'To: ', 'Sender: boss@mail.example.edu\r\nTo: ', 1)
        r = self.check(sub, '192.0.2.30', '<boss@example.edu>',
                       extra=['--local-domains', 'mail.example.edu'])
        self.assertTrue(r['sender_authenticated'])
        self.assertEqual(r['verdict']['action'], 'accept')
        # a passing DKIM signature of the Sender's domain: vouched for
        text = self.sign(message('carol@example.org').replace(
            'To: ', 'Sender: boss@example.com\r\nTo: ', 1))
        r = self.check(text, '192.0.2.99', '<carol@example.org>', extra=local)
        self.assertTrue(r['sender_authenticated'])
        self.assertEqual(r['verdict']['action'], 'accept')
        # two Sender fields: refused whatever they say
        text = message('carol@example.org').replace(
            'To: ', 'Sender: a@example.org\r\nSender: b@example.org\r\nTo: ', 1)
        r = self.check(text, '192.0.2.99', '<carol@example.org>')
        self.assertEqual((r['verdict']['xcode'], r['verdict']['why']), ('5.7.1', 'sender_invalid'))

    def test_unparseable_envelope_claiming_local_domain(self):
        local = ['--local-domains', 'example.edu']
        r = self.check(message('x@example.org'), '192.0.2.99', '<ceo..x@example.edu>',
                       extra=local)
        self.assertTrue(r['envelope_invalid'])
        self.assertEqual(r['envelope_domain'], 'example.edu')
        self.assertEqual((r['verdict']['xcode'], r['verdict']['why']),
                         ('5.7.1', 'local_domain_spoof'))
        r = self.check(message('carol@example.org'), '192.0.2.99', '<ceo..x@example.net>',
                       extra=local)
        self.assertEqual(r['verdict']['action'], 'accept')

    def test_zone_reload(self):
        # a separate server, so the shared zones stay as they are for the other tests
        dns = self.lab.dns(zones={'example.org': [('_dmarc', 'TXT', 'v=DMARC1; p=none')]})
        try:
            r = self.check(message('carol@example.org'), '192.0.2.99', '<carol@example.org>',
                           dns=dns.server)
            self.assertEqual((r['dmarc'], r['policy']), ('fail', 'none'))
            dns.set_zone('example.org', [('_dmarc', 'TXT', 'v=DMARC1; p=reject')])
            dns.reload()
            r = self.check(message('carol@example.org'), '192.0.2.99', '<carol@example.org>',
                           dns=dns.server)
            self.assertEqual((r['dmarc'], r['policy']), ('fail', 'reject'))
            self.assertEqual(r['verdict']['xcode'], '5.7.26')
        finally:
            dns.stop()

    def test_key_rotation_revocation_and_failure_in_one_process(self):
        # The milter checks many messages in one process, and parsed DKIM keys are cached
        # there (by their bytes) on top of the DNS answer cache (by TTL). A key rotated or
        # revoked in DNS must take effect once its TTL has passed, and a failed key lookup
        # must not be remembered as a key, nor as "no key".
        keydir_b = os.path.join(self.lab.root, 'keys-rotated')
        os.makedirs(keydir_b, exist_ok=True)
        key_b, txt_b = labcase.genkey(keydir_b, 'example.com', 'sel1')
        txt_a = [r[2] for r in self.zones['example.com'] if r[0] == 'sel1._domainkey'][0]

        def zone(key_txt):
            return [('@', 'TXT', 'v=spf1 ip4:192.0.2.10 -all'),
                    ('sel1._domainkey', 'TXT', key_txt, 1),
                    ('_dmarc', 'TXT', 'v=DMARC1; p=reject')]

        dns = self.lab.dns(zones={'example.com': zone(txt_a)})
        proc = subprocess.Popen([self.tool, '--client-ip', '192.0.2.10', '--helo',
                                 'mail.example.com', '--mail-from', '<alice@example.com>',
                                 '--authserv-id', ID, '--dns', dns.server, '--timeout', '700',
                                 '--stdin'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

        def check(text):
            path = os.path.join(self.lab.root, 'rot-%d.eml' % time.monotonic_ns())
            with open(path, 'w', newline='') as f:
                f.write(text)
            proc.stdin.write(path + '\n')
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            self.assertTrue(ready, 'no answer from the tool within 60 s')
            line = proc.stdout.readline()
            if not line:
                self.fail('the tool ended: %s' % proc.stderr.read())
            r = json.loads(line)
            self.assertEqual(len(r['dkim']), 1)
            return r['dkim'][0]

        def switch(key_txt):
            dns.set_zone('example.com', zone(key_txt))
            dns.reload()
            time.sleep(2.2)   # the key record's TTL (1 s) has passed

        try:
            signed_a = self.sign(message('alice@example.com'))
            signed_b = self.sign(message('alice@example.com'), key=key_b)
            self.assertEqual(check(signed_a)['result'], 'pass')
            self.assertEqual(check(signed_a)['result'], 'pass')   # from the caches
            self.assertEqual(check(signed_b)['result'], 'fail')
            # rotated: the old key is gone, the new one verifies
            switch(txt_b)
            self.assertEqual(check(signed_a)['result'], 'fail')
            self.assertEqual(check(signed_b)['result'], 'pass')
            # revoked (empty p=): nothing verifies any more
            switch('v=DKIM1; k=rsa; p=')
            d = check(signed_b)
            self.assertEqual(d['result'], 'permerror', d)
            # back, then the server goes away: a temporary failure, not a cached key
            switch(txt_b)
            self.assertEqual(check(signed_b)['result'], 'pass')
            dns.stop()
            time.sleep(2.2)
            d = check(signed_b)
            self.assertEqual((d['result'], d['reason']),
                             ('temperror', 'key lookup failed temporarily'))
            # the server is back: the failure was not remembered either
            dns.reload()
            self.assertEqual(check(signed_b)['result'], 'pass')
            self.assertEqual(check(signed_a)['result'], 'fail')
            proc.stdin.close()
            self.assertEqual(proc.wait(timeout=30), 0)
            err = proc.stderr.read()
            for bad in ('AddressSanitizer', 'runtime error:', 'LeakSanitizer'):
                self.assertNotIn(bad, err)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            dns.stop()

    # ---- DNS failure -------------------------------------------------------------------

    def test_dns_down_is_temperror_never_pass(self):
        dns = self.lab.dns(zones=self.zones)
        signed = self.sign(message('alice@example.com'))
        r = self.check(signed, '192.0.2.10', '<alice@example.com>', dns=dns.server)
        self.assertEqual((r['spf'], r['dkim'][0]['result'], r['dmarc']),
                         ('pass', 'pass', 'pass'))
        dns.stop()
        t0 = time.monotonic()
        r = self.check(signed, '192.0.2.10', '<alice@example.com>', dns=dns.server,
                       timeout_ms=700)
        self.assertLess(time.monotonic() - t0, 20)
        self.assertEqual(r['spf'], 'temperror')
        self.assertEqual([d['result'] for d in r['dkim']], ['temperror'])
        self.assertEqual(r['dmarc'], 'temperror')
        self.assertTrue(r['temperror'])
        self.assertNotIn('pass', r['authentication_results'])
        self.assertEqual((r['verdict']['action'], r['verdict']['code'],
                          r['verdict']['xcode']), ('tempfail', '451', '4.7.1'))
        # configured to accept on DNS errors: delivered, still marked temperror
        r = self.check(signed, '192.0.2.10', '<alice@example.com>', dns=dns.server,
                       timeout_ms=700, extra=['--dns-error-action', 'accept'])
        self.assertEqual(r['verdict']['action'], 'accept')
        self.assertIn('dmarc=temperror', r['authentication_results'])


if __name__ == '__main__':
    unittest.main()
