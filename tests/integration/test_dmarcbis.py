"""test_dmarcbis - DMARC as RFC 9989 writes it (dmarc_mode = dmarcbis, the default): policy and
organisational domain by DNS tree walk, its bound of 8 lookups, psd=, np=, t=y, pct= ignored,
several records at one name, malformed records; and the switch back to RFC 7489.

The lab's DNS server (NSD) publishes multi-level names; tests/tools/mw-authcheck-tool runs
lib/mw-authcheck as the milter does and prints the results as JSON (dmarc_lookups: how many
_dmarc names the message cost). Client 192.0.2.99 is in no SPF record (SPF fails) unless a
zone names it.
"""

import os
import time
import unittest

import labcase
import mailwarden_lab as lab_mod

ID = 'mx.example.net'
IP = '192.0.2.99'


def message(sender):
    """message - a small unsigned message from SENDER."""
    return ('From: <%s>\r\nTo: rcpt@example.net\r\nSubject: hi\r\n'
            'Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@test>\r\n\r\nHi.\r\n'
            % (sender, time.monotonic_ns()))


class DmarcbisTest(labcase.AuthcheckTool, labcase.LabCase):
    """RFC 9989 policy discovery through a real DNS server."""

    @classmethod
    def start_lab(cls):
        cls.tool = os.path.join(cls.lab.builddir, 'tests', 'tools', 'mw-authcheck-tool')
        if not os.access(cls.tool, os.X_OK):
            raise lab_mod.LabError('%s not built (make check builds it)' % cls.tool)
        cls.zones = {
            # a policy at the organisational domain, found from a deep subdomain
            'walk.com': [('_dmarc', 'TXT', 'v=DMARC1; p=reject'),
                         ('a.b.c', 'A', '192.0.2.1'),
                         ('mail', 'TXT', 'v=spf1 ip4:192.0.2.99 -all')],
            # the bound: a record 9 labels up is skipped by the jump to 7 labels
            'bound.com': [('_dmarc.b.c.d.e.f.g.h', 'TXT', 'v=DMARC1; p=reject')],
            # np= for names that do not exist, sp= for those that do
            'np.com': [('_dmarc', 'TXT', 'v=DMARC1; p=none; sp=quarantine; np=reject'),
                       ('exists', 'A', '192.0.2.1'), ('mx-only', 'MX', '10 exists.np.com.')],
            # a public suffix domain with its own policy (psd=y), and two organisations
            # below it, one of which SPF-authorises our client for its own mail
            'co.uk': [('_dmarc', 'TXT', 'v=DMARC1; p=reject; psd=y')],
            'shop.co.uk': [('@', 'A', '192.0.2.1'),
                           ('mail', 'TXT', 'v=spf1 ip4:192.0.2.99 -all')],
            'other.co.uk': [('@', 'TXT', 'v=spf1 ip4:192.0.2.99 -all')],
            'testing.com': [('_dmarc', 'TXT', 'v=DMARC1; p=reject; t=y')],
            'pct.com': [('_dmarc', 'TXT', 'v=DMARC1; p=reject; pct=0')],
            'multi.com': [('_dmarc', 'TXT', 'v=DMARC1; p=reject'),
                          ('_dmarc.sub', 'TXT', 'v=DMARC1; p=none'),
                          ('_dmarc.sub', 'TXT', 'v=DMARC1; p=none; t=y')],
            'two.com': [('_dmarc', 'TXT', 'v=DMARC1; p=reject'),
                        ('_dmarc', 'TXT', 'v=DMARC1; p=none')],
            'bad.com': [('_dmarc', 'TXT', 'v=DMARC1; p=rejct'),
                        ('@', 'TXT', 'v=spf1 ip4:192.0.2.99 -all')],
            'badsub.com': [('_dmarc', 'TXT', 'v=DMARC1; p=reject'),
                           ('_dmarc.x', 'TXT', 'v=DMARC1; p=none; t=maybe')],
        }
        cls.dns = cls.lab.dns(zones=cls.zones)

    def check(self, sender, mail_from=None, extra=()):
        """check - the tool's JSON for a message from SENDER (envelope MAIL_FROM)."""
        out = self.authcheck(message(sender).encode(), IP, '<%s>' % (mail_from or sender),
                             self.dns.server, 'client.example.net', ID, extra=extra)
        out['authentication_results'] = out['authentication_results'].replace('\n\t', ' ')
        return out

    def test_walk_finds_organisational_policy(self):
        r = self.check('x@a.b.c.walk.com')
        self.assertEqual((r['dmarc'], r['policy'], r['dmarc_record_domain']),
                         ('fail', 'reject', 'walk.com'))
        self.assertEqual((r['verdict']['code'], r['verdict']['xcode']), ('550', '5.7.26'))
        self.assertIn('dmarc=fail (p=reject) header.from=a.b.c.walk.com',
                      r['authentication_results'])
        # relaxed alignment through the walk: SPF passes for mail.walk.com
        r = self.check('x@a.b.c.walk.com', mail_from='bounce@mail.walk.com')
        self.assertEqual((r['spf'], r['dmarc'], r['spf_aligned']), ('pass', 'pass', True))
        self.assertEqual(r['verdict']['action'], 'accept')

    def test_walk_lookup_bound(self):
        # 10 labels: the From domain, then 7 labels down to "com": 8 names, never the
        # 9-label name whose p=reject would have applied
        r = self.check('x@a.b.c.d.e.f.g.h.bound.com')
        self.assertEqual(r['dmarc_lookups'], 8)
        self.assertEqual((r['dmarc'], r['policy']), ('none', 'absent'))
        self.assertEqual(r['verdict']['action'], 'accept')
        # 9 labels: the record is the next name asked, and it applies
        r = self.check('x@b.c.d.e.f.g.h.bound.com')
        self.assertEqual((r['policy'], r['dmarc_lookups']), ('reject', 1))
        self.assertEqual(r['verdict']['xcode'], '5.7.26')

    def test_np_for_nonexistent_subdomain(self):
        r = self.check('x@ghost.np.com')
        self.assertEqual((r['dmarc'], r['policy'], r['dmarc_policy_tag']),
                         ('fail', 'reject', 'np'))
        self.assertEqual(r['verdict']['xcode'], '5.7.26')
        self.assertIn('dmarc=fail (np=reject)', r['authentication_results'])
        for sender in ('x@exists.np.com', 'x@mx-only.np.com'):
            r = self.check(sender)
            self.assertEqual((r['policy'], r['dmarc_policy_tag']), ('quarantine', 'sp'),
                             sender)
            self.assertEqual(r['verdict']['action'], 'quarantine')
        r = self.check('x@np.com')
        self.assertEqual((r['policy'], r['dmarc_policy_tag']), ('none', 'p'))
        # RFC 7489 knows no np=: the non-existent subdomain gets sp=
        r = self.check('x@ghost.np.com', extra=['--dmarc-mode', 'rfc7489'])
        self.assertEqual(r['policy'], 'quarantine')

    def test_psd(self):
        # psd=y: the organisational domain is the name below co.uk, so SPF for
        # mail.shop.co.uk aligns with shop.co.uk ...
        r = self.check('x@shop.co.uk', mail_from='b@mail.shop.co.uk')
        self.assertEqual((r['spf'], r['dmarc'], r['spf_aligned']), ('pass', 'pass', True))
        # ... but other.co.uk, another organisation under the same suffix, does not
        r = self.check('x@shop.co.uk', mail_from='b@other.co.uk')
        self.assertEqual((r['spf'], r['spf_aligned'], r['dmarc']), ('pass', False, 'fail'))
        # and the public suffix domain's own policy governs an organisation without one
        self.assertEqual((r['policy'], r['dmarc_record_domain']), ('reject', 'co.uk'))
        self.assertEqual(r['verdict']['xcode'], '5.7.26')
        # RFC 7489 (public suffix list): no record for shop.co.uk, no policy
        r = self.check('x@shop.co.uk', mail_from='b@other.co.uk',
                       extra=['--dmarc-mode', 'rfc7489'])
        self.assertEqual((r['dmarc'], r['verdict']['action']), ('none', 'accept'))

    def test_testing_mode(self):
        r = self.check('x@testing.com')
        self.assertEqual((r['dmarc'], r['policy'], r['dmarc_testing']), ('fail', 'reject', True))
        self.assertEqual(r['verdict']['action'], 'accept')
        self.assertIn('dmarc=fail (p=reject t=y)', r['authentication_results'])

    def test_pct_ignored(self):
        r = self.check('x@pct.com')
        self.assertEqual((r['dmarc'], r['policy']), ('fail', 'reject'))
        self.assertEqual(r['verdict']['xcode'], '5.7.26')

    def test_multiple_records(self):
        # two records at the From domain: none there; the walk goes on to multi.com
        r = self.check('x@sub.multi.com')
        self.assertEqual((r['dmarc'], r['policy'], r['dmarc_record_domain']),
                         ('fail', 'reject', 'multi.com'))
        self.assertFalse(r['dmarc_testing'])
        # two records and nothing above: no policy (not one of them picked)
        r = self.check('x@two.com')
        self.assertEqual((r['dmarc'], r['policy']), ('none', 'absent'))

    def test_malformed_record_never_passes(self):
        # SPF passes and aligns, but the record cannot be read: permerror, and a local
        # domain is refused
        r = self.check('x@bad.com')
        self.assertEqual((r['spf'], r['dmarc']), ('pass', 'permerror'))
        self.assertIn('invalid DMARC record', r['reason'])
        r = self.check('x@bad.com', extra=['--local-domains', 'bad.com'])
        self.assertEqual((r['verdict']['code'], r['verdict']['why']),
                         ('550', 'local_domain_spoof'))
        # a malformed record below a valid one stops the walk (its t= is not trusted to
        # mean anything): permerror, not the parent's policy and not "testing"
        r = self.check('x@x.badsub.com')
        self.assertEqual((r['dmarc'], r['dmarc_testing']), ('permerror', False))

    def test_org_domain_for_reports(self):
        # [dmarc] record = yes also finds the organisational domain (the tree walk), its
        # lookups not counted in the policy walk's dmarc_lookups
        plain = self.check('x@a.b.c.walk.com')
        r = self.check('x@a.b.c.walk.com', extra=['--org-domain'])
        self.assertEqual(plain['dmarc_org_domain'], '')
        self.assertEqual(r['dmarc_org_domain'], 'walk.com')
        self.assertEqual(r['dmarc_lookups'], plain['dmarc_lookups'])
        # psd=y: the organisation is the name below the public suffix domain
        r = self.check('x@shop.co.uk', mail_from='b@other.co.uk', extra=['--org-domain'])
        self.assertEqual((r['dmarc_record_domain'], r['dmarc_org_domain']),
                         ('co.uk', 'shop.co.uk'))
        # RFC 7489: the public suffix list's registrable domain
        r = self.check('x@sub.multi.com', extra=['--dmarc-mode', 'rfc7489'])
        self.assertEqual(r['dmarc_org_domain'], 'multi.com')

    def test_dns_failure_is_temperror(self):
        dns = self.lab.dns(zones=self.zones)
        dns.stop()
        r = self.authcheck(message('x@a.b.c.walk.com').encode(), IP, '<x@walk.com>',
                           dns.server, timeout_ms=500)
        self.assertEqual(r['dmarc'], 'temperror')
        self.assertEqual(r['verdict']['code'], '451')


if __name__ == '__main__':
    unittest.main()
