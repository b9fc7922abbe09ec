"""test_milter_arc - ARC in mailwarden-milter through real Postfix: a trusted mailing list's
passing chain overrides a DMARC p=reject failure (and the Authentication-Results header says
so), an untrusted sealer's does not, and with arc_seal = yes the delivered message carries
our ARC set, which dkimpy (python3-dkim) verifies.

The list (list.example.org, trusted) and another forwarder (hop.example.net, not trusted)
seal with dkimpy's arc_sign; our seal uses the DKIM key file of seal.example.org in
dkim_key_dir. Clients appear as 192.0.2.99 through XCLIENT (see test_milter_auth).
"""

import grp
import os
import pwd
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod
from labcase import header_lines

try:
    import dkim
except ImportError:  # fails loudly in start_lab, never skips
    dkim = None

DOMAIN = lab_mod.DOMAIN
AUTHSERV_ID = 'mail.' + DOMAIN


class MilterArcTest(labcase.MilterCase):
    """Trusted ARC forwarders and our own seal, through Postfix."""

    @classmethod
    def start_lab(cls):
        if dkim is None:
            raise lab_mod.LabError('python3-dkim is not importable (scripts/setup installs it)')
        keydir = os.path.join(cls.lab.root, 'keys')
        os.makedirs(keydir)
        cls.keys, cls.txt = {}, {}
        zones = {
            'orig.example.com': [('_dmarc', 'TXT', 'v=DMARC1; p=reject'),
                                 ('@', 'TXT', 'v=spf1 ip4:192.0.2.10 -all')],
            'list.example.org': [], 'hop.example.net': [], 'seal.example.org': [],
        }
        for dom in zones:
            if dom == 'orig.example.com':
                continue
            key, txt = labcase.genkey(keydir, dom, 'arc1')
            with open(key, 'rb') as f:
                cls.keys[dom] = f.read()
            os.unlink(key)
            cls.txt[dom] = txt
            zones[dom].append(('arc1._domainkey', 'TXT', txt))
        # our sealing key: a key file the milter (running as dovecot) owns, mode 0600
        cls.keydir = os.path.join(cls.lab.root, 'dkimkeys')
        os.makedirs(cls.keydir)
        gid = grp.getgrnam('dovecot').gr_gid
        os.chown(cls.keydir, 0, gid)
        os.chmod(cls.keydir, 0o750)
        keyfile = os.path.join(cls.keydir, 'seal.example.org.arc1.key')
        with open(keyfile, 'wb') as f:
            f.write(cls.keys['seal.example.org'])
        os.chown(keyfile, pwd.getpwnam('dovecot').pw_uid, gid)
        os.chmod(keyfile, 0o600)
        cls.dns = cls.lab.dns(zones=zones)
        cls.store = cls.lab.store()
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.start_mail_path(xclient=True, rcpt='arc', config=(
            'dns_servers = %s\ndns_timeout = 2s\nlocal_domains = %s\n'
            'arc_trusted_forwarders = list.example.org\narc_seal = yes\n'
            'arc_seal_domain = seal.example.org\ndkim_key_dir = %s\n'
            % (cls.dns.server, DOMAIN, cls.keydir)))

    def dnsfunc(self, name, timeout=5):
        """dnsfunc - dkimpy's key lookup, from the keys we published."""
        name = (name.decode() if isinstance(name, bytes) else name).rstrip('.')
        for dom, txt in self.txt.items():
            if name == 'arc1._domainkey.' + dom:
                return txt.encode()
        return b''

    def forwarded(self, sealer, token):
        """forwarded - a message of orig.example.com (p=reject) as SEALER sends it on."""
        msg = ('Authentication-Results: %s; dmarc=pass header.from=orig.example.com\r\n'
               'From: Alice <alice@orig.example.com>\r\nTo: <%s>\r\n'
               'Subject: [list] arc %s\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n'
               'Message-ID: <%s@orig>\r\n\r\nHello list.\r\nbody token %s\r\n'
               % (sealer, self.rcpt, token, token, token)).encode()
        hdrs = dkim.arc_sign(msg, b'arc1', sealer.encode(), self.keys[sealer], sealer.encode())
        self.assertEqual(len(hdrs), 3)
        return b''.join(hdrs) + msg

    def our_ar(self, raw):
        for line in header_lines(raw):
            name, _, value = line.partition(':')
            if name.lower() == 'authentication-results' and \
                    value.strip().lower().startswith(AUTHSERV_ID + ';'):
                return value.strip()
        return None

    def test_trusted_list_delivered_and_sealed(self):
        token = 'arcok%s' % uuid.uuid4().hex[:8]
        r = self.send_from('192.0.2.99', 'list.example.org', 'bounce@list.example.org',
                           self.forwarded('list.example.org', token))
        self.assertEqual(r[0], 'sent', r)
        raw = labcase.imap_text(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token,
                                timeout=30)
        self.assertIsNotNone(raw, 'not delivered')
        ar = self.our_ar(raw)
        self.assertIn('dmarc=fail (p=reject; override: trusted ARC forwarder) '
                      'header.from=orig.example.com', ar)
        self.assertIn('arc=pass (trusted forwarder list.example.org) '
                      'smtp.remote-ip=192.0.2.99', ar)
        # our seal: instance 2 on top of the list's, verified by dkimpy
        self.assertIn('ARC-Seal: i=2; cv=pass; a=rsa-sha256; d=seal.example.org; s=arc1;',
                      ' '.join(header_lines(raw)))
        cv, results, why = dkim.arc_verify(raw.encode(), dnsfunc=self.dnsfunc)
        self.assertEqual(cv, dkim.CV_Pass, (results, why))
        self.assertIn('arc_sealed=2', self.milter_log_since_start())

    def test_untrusted_sealer_refused(self):
        token = 'arcno%s' % uuid.uuid4().hex[:8]
        r = self.send_from('192.0.2.99', 'hop.example.net', 'bounce@hop.example.net',
                           self.forwarded('hop.example.net', token))
        self.assertEqual(r[:2], ('data', 550), r)
        self.assertIn('5.7.26', r[2])

    def milter_log_since_start(self):
        with open(self.milter.log_path, errors='replace') as f:
            return f.read()


if __name__ == '__main__':
    unittest.main()
