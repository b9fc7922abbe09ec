"""test_arc - ARC (RFC 8617) chains verified by lib/mw-arc, made by an independent
implementation (dkimpy's arc_sign, python3-dkim), and the trusted-forwarder override of a
DMARC failure.

The lab DNS server publishes the sealers' keys; tests/tools/mw-authcheck-tool runs
lib/mw-authcheck as the milter does. Scenario: orig.example.com (DMARC p=reject) posts to a
mailing list at list.example.org, which changes the Subject and sends the message on from
192.0.2.99 with its own envelope sender: DMARC fails at our end; the list's ARC seal carries
the result it saw on receipt.
"""

import os
import time
import unittest

import labcase
import mailwarden_lab as lab_mod

try:
    import dkim
except ImportError:  # the test fails loudly below, never skips
    dkim = None

ID = 'mx.example.net'
IP = '192.0.2.99'


def original():
    """original - the author's message (CRLF)."""
    return ('From: Alice <alice@orig.example.com>\r\nTo: list@list.example.org\r\n'
            'Subject: [list] hello\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n'
            'Message-ID: <%s@orig>\r\n\r\nHello list.\r\n  trailing blanks \t\r\n\r\n\r\n'
            % time.monotonic_ns()).encode()


class ArcTest(labcase.AuthcheckTool, labcase.LabCase):
    """ARC verification against dkimpy's chains."""

    @classmethod
    def start_lab(cls):
        if dkim is None:
            raise lab_mod.LabError('python3-dkim is not importable (scripts/setup installs it)')
        cls.tool = os.path.join(cls.lab.builddir, 'tests', 'tools', 'mw-authcheck-tool')
        if not os.access(cls.tool, os.X_OK):
            raise lab_mod.LabError('%s not built (make check builds it)' % cls.tool)
        keydir = os.path.join(cls.lab.root, 'keys')
        os.makedirs(keydir)
        cls.keys = {}
        cls.txt = {}
        zones = {
            'orig.example.com': [('_dmarc', 'TXT', 'v=DMARC1; p=reject'),
                                 ('@', 'TXT', 'v=spf1 ip4:192.0.2.10 -all')],
            'list.example.org': [('@', 'TXT', 'v=spf1 ip4:192.0.2.99 -all')],
            'hop.example.net': [],
            'fwd.example.net': [],
        }
        for dom in ('list.example.org', 'hop.example.net', 'fwd.example.net'):
            key, txt = labcase.genkey(keydir, dom, 'arc1')
            os.rename(key, key + '.' + dom)
            with open(key + '.' + dom, 'rb') as f:
                cls.keys[dom] = f.read()
            cls.txt[dom] = txt
            zones[dom].append(('arc1._domainkey', 'TXT', txt))
        cls.dns = cls.lab.dns(zones=zones)

    def dnsfunc(self, name, timeout=5):
        """dnsfunc - dkimpy's key lookup, answered from the keys we published."""
        name = name.decode() if isinstance(name, bytes) else name
        for dom, txt in self.txt.items():
            if name.rstrip('.') == 'arc1._domainkey.' + dom:
                return txt.encode()
        return b''

    def seal(self, msg, dom, ar):
        """seal - MSG with an Authentication-Results of DOM's (AR) and DOM's ARC set on top,
        as dkimpy's arc_sign makes it."""
        msg = ('Authentication-Results: %s; %s\r\n' % (dom, ar)).encode() + msg
        hdrs = dkim.arc_sign(msg, b'arc1', dom.encode(), self.keys[dom], dom.encode())
        self.assertEqual(len(hdrs), 3, hdrs)
        return b''.join(hdrs) + msg

    def listed(self, ar='dmarc=pass header.from=orig.example.com; '
                        'spf=pass smtp.mailfrom=alice@orig.example.com'):
        """listed - the original as the list sends it: sealed by list.example.org."""
        return self.seal(original(), 'list.example.org', ar)

    def check(self, raw, extra=(), mail_from='<bounce@list.example.org>'):
        """check - the tool's JSON for RAW."""
        out = self.authcheck(raw, IP, mail_from, self.dns.server, 'list.example.org', ID,
                             extra=extra)
        out['authentication_results'] = out['authentication_results'].replace('\n\t', ' ')
        return out

    def our_seal(self, raw, extra=()):
        """our_seal - (JSON, sealed message): RAW checked and sealed by fwd.example.net."""
        out = os.path.join(self.lab.root, 'sealed-%d.eml' % time.monotonic_ns())
        key = os.path.join(self.lab.root, 'keys', 'arc1.private.fwd.example.net')
        r = self.check(raw, extra=['--arc-seal', 'fwd.example.net:arc1:' + key,
                                   '--arc-seal-out', out] + list(extra))
        with open(out, 'rb') as f:
            sealed = f.read()
        os.unlink(out)
        return r, sealed

    # ---- seals made by us, verified by dkimpy and by us ----------------------------------

    def test_our_first_seal(self):
        r, sealed = self.our_seal(original())
        self.assertEqual(r['arc'], 'none')
        self.assertIn(b'ARC-Seal: i=1; cv=none; a=rsa-sha256; d=fwd.example.net; s=arc1;',
                      sealed)
        cv, results, why = dkim.arc_verify(sealed, dnsfunc=self.dnsfunc)
        self.assertEqual(cv, dkim.CV_Pass, (results, why))
        r2 = self.check(sealed)
        self.assertEqual((r2['arc'], r2['arc_sets'], r2['arc_seal_domain']),
                         ('pass', 1, 'fwd.example.net'), r2['arc_reason'])

    def test_our_seal_on_dkimpy_chain_and_dkimpy_on_ours(self):
        r, sealed = self.our_seal(self.listed())
        self.assertEqual(r['arc'], 'pass')
        self.assertIn(b'ARC-Seal: i=2; cv=pass;', sealed)
        cv, results, why = dkim.arc_verify(sealed, dnsfunc=self.dnsfunc)
        self.assertEqual(cv, dkim.CV_Pass, (results, why))
        self.assertEqual(self.check(sealed)['arc_sets'], 2)
        # the next hop (dkimpy) seals on top of ours: i=3, still passing for both
        third = self.seal(sealed, 'hop.example.net', 'arc=pass')
        self.assertIn(b'cv=pass', third.split(b'\r\n')[0])
        self.assertEqual(dkim.arc_verify(third, dnsfunc=self.dnsfunc)[0], dkim.CV_Pass)
        r3 = self.check(third)
        self.assertEqual((r3['arc'], r3['arc_sets']), ('pass', 3), r3['arc_reason'])

    def test_our_seal_of_a_broken_chain_says_fail(self):
        bad = self.listed().replace(b'Hello list.', b'Hello lists')
        r, sealed = self.our_seal(bad)
        self.assertEqual(r['arc'], 'fail')
        self.assertIn(b'ARC-Seal: i=2; cv=fail;', sealed)
        # dkimpy: our set's signatures are valid, and the chain is terminated (None)
        cv, results, why = dkim.arc_verify(sealed, dnsfunc=self.dnsfunc)
        self.assertEqual((results[0]['instance'], results[0]['ams-valid'],
                          results[0]['as-valid'], results[0]['cv']), (2, True, True, b'fail'),
                         why)
        self.assertIsNone(cv, why)
        self.assertEqual(self.check(sealed)['arc'], 'fail')

    # ---- chains made by dkimpy -----------------------------------------------------------

    def test_dkimpy_chain_passes(self):
        raw = self.listed()
        self.assertEqual(dkim.arc_verify(raw, dnsfunc=self.dnsfunc)[0], dkim.CV_Pass)
        r = self.check(raw)
        self.assertEqual((r['arc'], r['arc_sets'], r['arc_seal_domain']),
                         ('pass', 1, 'list.example.org'), r['arc_reason'])
        self.assertIn('arc=pass (i=1) smtp.remote-ip=192.0.2.99', r['authentication_results'])
        # not trusted: DMARC's reject applies
        self.assertEqual((r['dmarc'], r['dmarc_override']), ('fail', False))
        self.assertEqual(r['verdict']['xcode'], '5.7.26')

    def test_two_hops(self):
        first = self.seal(original(), 'hop.example.net',
                          'dmarc=pass header.from=orig.example.com')
        second = self.seal(first, 'list.example.org',
                           'arc=pass; dmarc=pass header.from=orig.example.com')
        self.assertEqual(dkim.arc_verify(second, dnsfunc=self.dnsfunc)[0], dkim.CV_Pass)
        r = self.check(second)
        self.assertEqual((r['arc'], r['arc_sets']), ('pass', 2), r['arc_reason'])

    def test_trusted_forwarder_overrides_dmarc(self):
        r = self.check(self.listed(), extra=['--arc-trusted', 'hop.example.net list.example.org'])
        self.assertEqual((r['dmarc'], r['dmarc_override'], r['verdict']['action']),
                         ('fail', True, 'accept'))
        self.assertIn('dmarc=fail (p=reject; override: trusted ARC forwarder) '
                      'header.from=orig.example.com', r['authentication_results'])
        self.assertIn('arc=pass (trusted forwarder list.example.org) '
                      'smtp.remote-ip=192.0.2.99', r['authentication_results'])
        # an aligned DKIM pass seen by the forwarder vouches too
        r = self.check(self.listed('dkim=pass header.d=orig.example.com'),
                       extra=['--arc-trusted', 'list.example.org'])
        self.assertTrue(r['dmarc_override'])

    def test_trusted_forwarder_that_saw_failure_does_not_override(self):
        for ar in ('dmarc=fail header.from=orig.example.com',
                   'dkim=pass header.d=evil.example.com; spf=pass smtp.mailfrom=a@evil.example.com',
                   'dmarc=pass header.from=other.example.com'):
            r = self.check(self.listed(ar), extra=['--arc-trusted', 'list.example.org'])
            self.assertEqual(r['arc'], 'pass')
            self.assertFalse(r['dmarc_override'], ar)
            self.assertEqual(r['verdict']['xcode'], '5.7.26', ar)

    def test_tampering_fails(self):
        raw = self.listed()
        cases = {
            'body': raw.replace(b'Hello list.', b'Hello lists'),
            'signed header': raw.replace(b'Subject: [list] hello', b'Subject: [list] hellO'),
            'aar': raw.replace(b'i=1; list.example.org; dmarc=pass',
                               b'i=1; list.example.org; dmarc=fail'),
        }
        for what, bad in cases.items():
            self.assertNotEqual(bad, raw, what)
            self.assertNotEqual(dkim.arc_verify(bad, dnsfunc=self.dnsfunc)[0], dkim.CV_Pass,
                                what)
            r = self.check(bad, extra=['--arc-trusted', 'list.example.org'])
            self.assertEqual(r['arc'], 'fail', what)
            self.assertFalse(r['dmarc_override'], what)
            self.assertEqual(r['verdict']['xcode'], '5.7.26', what)

    def test_structural_failures(self):
        raw = self.listed()
        head, body = raw.split(b'\r\n\r\n', 1)
        lines = head.split(b'\r\n')
        fields = []
        for line in lines:
            if line[:1] in (b' ', b'\t'):
                fields[-1] += b'\r\n' + line
            else:
                fields.append(line)
        seal = [f for f in fields if f.startswith(b'ARC-Seal:')][0]
        ams = [f for f in fields if f.startswith(b'ARC-Message-Signature:')][0]

        def build(fs):
            return b'\r\n'.join(fs) + b'\r\n\r\n' + body

        cases = {
            'repeated seal': ([seal] + fields, 'repeated'),
            'missing AMS': ([f for f in fields if f != ams], 'incomplete'),
            'instance 0': ([f.replace(b'i=1;', b'i=0;', 1) if f == seal else f
                            for f in fields], 'out of range'),
            'instance 51': ([f.replace(b'i=1;', b'i=51;', 1) if f == seal else f
                             for f in fields], 'out of range'),
            'cv=pass on the first seal': ([f.replace(b'cv=none', b'cv=pass') if f == seal
                                           else f for f in fields], 'cv='),
            'cv=fail': ([f.replace(b'cv=none', b'cv=fail') if f == seal else f
                         for f in fields], 'cv=fail'),
            'gap': ([f.replace(b'i=1;', b'i=2;', 1) if f == seal else f for f in fields],
                    'incomplete'),
        }
        for what, (fs, reason) in cases.items():
            r = self.check(build(fs), extra=['--arc-trusted', 'list.example.org'])
            self.assertEqual(r['arc'], 'fail', what)
            self.assertIn(reason, r['arc_reason'], what)
            self.assertFalse(r['dmarc_override'], what)

    def test_no_arc_is_none_and_not_reported(self):
        r = self.check(original(), mail_from='<alice@orig.example.com>')
        self.assertEqual((r['arc'], r['arc_sets']), ('none', 0))
        self.assertNotRegex(r['authentication_results'], r'(^|[ ;])arc=')

    def test_key_lookup_failure_is_temperror(self):
        raw = self.listed()
        dns = self.lab.dns(zones={})
        dns.stop()
        r = self.authcheck(raw, IP, '<b@list.example.org>', dns.server, timeout_ms=500,
                           extra=['--arc-trusted', 'list.example.org'])
        self.assertEqual(r['arc'], 'temperror')
        self.assertFalse(r['dmarc_override'])
        self.assertNotEqual(r['verdict']['action'], 'accept')


if __name__ == '__main__':
    unittest.main()
