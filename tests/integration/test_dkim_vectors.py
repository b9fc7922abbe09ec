"""test_dkim_vectors - the pre-signed DKIM messages of dkimpy's test data (shipped by Debian's
python3-dkim under dkim/tests/data) verified by our DKIM path (libopendkim through
lib/mw-authcheck, tests/tools/mw-authcheck-tool) with their keys served by the lab DNS
server, each signature's result compared with dkimpy's own verdict on the same keys.

Vectors: rfc6376.signed.msg (RFC 8463's example: ed25519-sha256 and rsa-sha256),
rfc6376.signed.rsa.msg, ed25519test2.msg (Exim's ed25519 signature), test2.message (a
Gmail signature); each also with its body changed (every signature must then fail for both).
dkimpy ships no pre-signed ARC vectors (its ARC tests sign at run time): test_arc signs with
dkimpy's arc_sign and verifies with ours, and the other way round.
"""

import json
import os
import re
import subprocess
import tempfile
import unittest

import labcase
import mailwarden_lab as lab_mod

try:
    import dkim
except ImportError:
    dkim = None

DATA = '/usr/lib/python3/dist-packages/dkim/tests'


def data(name):
    with open(os.path.join(DATA, 'data', name), 'rb') as f:
        return f.read()


def gmail_key():
    """gmail_key - the 20120113._domainkey.gmail.com record as dkimpy's test_dkim.py has it."""
    with open(os.path.join(DATA, 'test_dkim.py')) as f:
        src = f.read()
    m = re.search(r"'20120113\._domainkey\.gmail\.com\.': \"\"\"(.*?)\"\"\"", src, re.S)
    return m.group(1).replace('\\\n', '')


class DkimVectorsTest(labcase.LabCase):
    """dkimpy's DKIM vectors: our verdict per signature equals dkimpy's."""

    @classmethod
    def start_lab(cls):
        if dkim is None or not os.path.isdir(os.path.join(DATA, 'data')):
            raise lab_mod.LabError('python3-dkim and its test data are missing')
        cls.tool = os.path.join(cls.lab.builddir, 'tests', 'tools', 'mw-authcheck-tool')
        if not os.access(cls.tool, os.X_OK):
            raise lab_mod.LabError('%s not built (make check builds it)' % cls.tool)
        cls.keys = {
            'test._domainkey.football.example.com': data('test.txt').decode().strip(),
            'brisbane._domainkey.football.example.com':
                'v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=',
            'sed._domainkey.test.ex': data('eximtest.dns').decode().strip(),
            '20120113._domainkey.gmail.com': gmail_key(),
        }
        zones = {}
        for name, txt in cls.keys.items():
            for zone in ('football.example.com', 'test.ex', 'gmail.com'):
                if name.endswith('.' + zone):
                    zones.setdefault(zone, []).append((name[:-len(zone) - 1], 'TXT', txt))
        cls.dns = cls.lab.dns(zones=zones)

    def dnsfunc(self, name, timeout=5):
        name = (name.decode() if isinstance(name, bytes) else name).rstrip('.')
        return self.keys.get(name, '').encode()

    def ours(self, raw):
        """ours - our DKIM results, in signature order."""
        with tempfile.NamedTemporaryFile('wb', suffix='.eml', dir=self.lab.root,
                                         delete=False) as f:
            f.write(raw)
            path = f.name
        p = subprocess.run([self.tool, '--client-ip', '192.0.2.1', '--mail-from', '<a@b.example>',
                            '--dns', self.dns.server, '--timeout', '3000', path],
                           capture_output=True, text=True, timeout=120)
        os.unlink(path)
        for bad in ('AddressSanitizer', 'runtime error:', 'LeakSanitizer'):
            self.assertNotIn(bad, p.stderr)
        self.assertEqual(p.returncode, 0, p.stderr)
        return [d['result'] for d in json.loads(p.stdout)['dkim']]

    def theirs(self, raw):
        """theirs - dkimpy's verdict per signature (pass/fail)."""
        n = len(re.findall(rb'(?mi)^DKIM-Signature:', raw))
        out = []
        for i in range(n):
            d = dkim.DKIM(raw, minkey=1024)
            try:
                ok = d.verify(idx=i, dnsfunc=self.dnsfunc)
            except dkim.DKIMException:  # dkimpy raises for a body hash mismatch
                ok = False
            out.append('pass' if ok else 'fail')
        return out

    def test_vectors(self):
        agree = total = 0
        passing = 0
        lines = []
        for name in ('rfc6376.signed.msg', 'rfc6376.signed.rsa.msg', 'ed25519test2.msg',
                     'test2.message'):
            raw = data(name)
            if b'\r\n' not in raw:
                raw = raw.replace(b'\n', b'\r\n')
            head, body = raw.split(b'\r\n\r\n', 1)
            for variant, msg in (('as shipped', raw),
                                 ('body changed', head + b'\r\n\r\n' + body + b'tampered\r\n')):
                ours, theirs = self.ours(msg), self.theirs(msg)
                self.assertEqual(len(ours), len(theirs), (name, variant))
                for o, t in zip(ours, theirs):
                    total += 1
                    agree += o == t
                    passing += o == 'pass'
                lines.append('%s (%s): ours %s, dkimpy %s' % (name, variant, ours, theirs))
        print('\ndkimpy DKIM vectors: %d of %d signatures agree (%d pass)' %
              (agree, total, passing))
        print('\n'.join('  ' + l for l in lines))
        self.assertEqual(agree, total, lines)
        self.assertGreaterEqual(passing, 5, lines)


if __name__ == '__main__':
    unittest.main()
