"""test_dkim_rotate - DKIM key rotation (issue 18) through NSD, real Postfix and the milter.

Real parts: NSD serving example.org (the lab DNS server, also the resolver of [milter]
dns_servers that `mailwardenctl dkim rotate` checks through), the store, Postfix with SASL via
Dovecot and the ASan milter, delivery over LMTP, the message read back over IMAP. Every
signature is checked by python3-dkim (dkimpy) resolving through NSD itself, so "verifies"
means "verifies against what is published".

  - `dkim rotate DOMAIN` makes a pending key under selector YYYYMMDD; it does not sign while
    its TXT record is missing or different at the resolver (mail keeps the old signature
    only), and each run says what to publish;
  - once NSD serves the record, `dkim rotate --due` activates it: both keys sign (two
    DKIM-Signatures, both verify through NSD) and `dkim list` shows active / retiring with
    dates;
  - after [dkim] rotation_grace (the clock moved with MW_FAKE_NOW) the old key is retired and
    mail carries the new signature only;
  - every step is in the audit log (dkim.rotate, dkim.promote, dkim.retire);
  - several runs at once (the timer on several hosts) start exactly one rotation.
"""

import json
import os
import re
import smtplib
import sqlite3
import subprocess
import sys
import time
import unittest
import uuid

try:
    import dkim
    import dns.resolver
except ImportError:  # a pyenv python: Debian's python3-dkim lives in dist-packages
    sys.path.append('/usr/lib/python3/dist-packages')
    import dkim  # noqa: E402  (a missing python3-dkim is an error, not a skip)
    import dns.resolver  # noqa: E402

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN  # example.org
RACE = 'example.net'     # the domain of the concurrent runs
GRACE = 3600
DELIVERY_TIMEOUT = 30


def message(from_addr, to, token):
    return ('From: <%s>\r\nTo: <%s>\r\nSubject: rotation %s\r\n'
            'Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <%s@client>\r\n'
            'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n'
            'body token %s\r\n' % (from_addr, to, token, token, token))


class DkimRotateTest(labcase.MilterCase):
    """pending -> active (both sign) -> retired, gated on the record NSD serves."""

    @classmethod
    def start_lab(cls):
        cls.dns = cls.lab.dns(zones={DOMAIN: [], RACE: []})
        cls.store = cls.lab.store(extra_config=(
            '[milter]\ndns_servers = %s\ndns_timeout = 3s\n'
            '[dkim]\nrotation_grace = %ds\n' % (cls.dns.server, GRACE)))
        cls.store.ctl('dkim', 'generate', DOMAIN, '--selector', 'old1')
        cls.zone = [('old1._domainkey', 'TXT', cls.txt_value('old1'))]
        cls.publish()
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.start_mail_path(rcpt='rotrcpt', sender='rot', cache_ttl='1s')

    # -- helpers ---------------------------------------------------------------------------

    @classmethod
    def txt_value(cls, selector):
        out = cls.store.ctl('dkim', 'txt', DOMAIN, selector).stdout
        return ''.join(re.findall(r'"([^"]*)"', out))

    @classmethod
    def publish(cls):
        cls.dns.set_zone(DOMAIN, cls.zone)
        cls.dns.reload()

    def rotate(self, *args, now=None, want=0):
        env = dict(os.environ)
        if now is not None:
            env['MW_FAKE_NOW'] = str(int(now))
        p = subprocess.run(self.store.ctl_command() + ['dkim', 'rotate'] + list(args),
                           capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(p.returncode, want, p.stdout + p.stderr)
        return p.stdout

    def keys(self, domain=DOMAIN):
        out = self.store.ctl('dkim', 'list', '--json').stdout
        return {k['selector']: k for k in json.loads(out) if k['domain'] == domain}

    def dnsfunc(self, name, timeout=5):
        """dnsfunc - dkimpy's TXT lookup, answered by NSD (what is really published)."""
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ['127.0.0.1']
        r.port = self.dns.port
        r.lifetime = timeout
        try:
            ans = r.resolve(name.decode().rstrip('.'), 'TXT')
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b''.join(b''.join(rr.strings) for rr in ans)

    def send(self):
        """send - a message from the sender through Postfix: its raw bytes as delivered,
        waiting for the milter's key cache (1 s) to see the store's latest state."""
        time.sleep(1.5)
        token = 'rot' + uuid.uuid4().hex[:10]
        s = smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=60)
        try:
            s.ehlo('client.example')
            s.login(self.sender, self.sender_pw)
            s.sendmail(self.sender, [self.rcpt],
                       message(self.sender, self.rcpt, token).encode())
        finally:
            s.quit()
        found = labcase.imap_fetch(self.dovecot.imap_port, self.rcpt, self.rcpt_pw, token,
                                   timeout=DELIVERY_TIMEOUT)
        self.assertIsNotNone(found, 'message not delivered')
        return found[1]

    def signatures(self, raw):
        """signatures - the s= of each DKIM-Signature, in header order, each verified by
        dkimpy through NSD (a failing one fails the test)."""
        head = raw.replace(b'\r\n', b'\n').split(b'\n\n', 1)[0]
        sigs = re.findall(rb'^DKIM-Signature:(.*?)(?=^\S|\Z)', head + b'\n',
                          re.S | re.M | re.I)
        sels = []
        for i, sig in enumerate(sigs):
            tags = dict(t.split('=', 1) for t in re.sub(rb'\s+', b'', sig).decode().split(';')
                        if '=' in t)
            self.assertEqual(tags['d'], DOMAIN)
            d = dkim.DKIM(raw)
            self.assertTrue(d.verify(idx=i, dnsfunc=self.dnsfunc),
                            'signature %d (s=%s) does not verify' % (i, tags['s']))
            sels.append(tags['s'])
        return sels

    def audit(self, action, domain=DOMAIN):
        """audit - the targets of ACTION's audit entries for DOMAIN, oldest first."""
        with sqlite3.connect(self.store.db) as c:
            return [r[0] for r in c.execute(
                'SELECT target FROM audit_log WHERE action = ? ORDER BY id', (action,))
                if r[0].startswith(domain + '/')]

    # -- tests -------------------------------------------------------------------------------

    def test_rotation_waits_for_dns_then_signs_with_both_then_retires(self):
        self.assertEqual(self.signatures(self.send()), ['old1'])

        # 1. a rotation starts: the new key is pending and does not sign
        out = self.rotate(DOMAIN)
        keys = self.keys()
        new = [s for s, k in keys.items() if k['state'] == 'pending']
        self.assertEqual(len(new), 1, keys)
        new = new[0]
        self.assertRegex(new, r'^\d{8}$')
        self.assertIn('%s generated' % new, out)
        self.assertIn('%s waiting' % new, out)
        record_line = [l for l in out.splitlines() if l.strip().startswith('publish:')]
        self.assertEqual(len(record_line), 1, out)
        self.assertIn('%s._domainkey.%s.' % (new, DOMAIN), record_line[0])
        self.assertEqual((keys['old1']['state'], keys['old1']['active']), ('active', True))
        self.assertFalse(keys[new]['active'])
        self.assertEqual(self.signatures(self.send()), ['old1'])

        # 2. the timer runs, the record is still missing: pending, and it says so
        out = self.rotate('--due')
        self.assertIn('stays pending', out)
        self.assertIn('missing', out)
        self.assertEqual(self.keys()[new]['state'], 'pending')

        # 3. a wrong record (another key's) is published: still pending
        self.zone.append(('%s._domainkey' % new, 'TXT', self.txt_value('old1')))
        self.publish()
        out = self.rotate('--due')
        self.assertIn('different', out)
        self.assertEqual(self.keys()[new]['state'], 'pending')
        self.assertEqual(self.signatures(self.send()), ['old1'])
        self.assertEqual(self.audit('dkim.promote'), [])

        # 4. the right record: activated; both keys sign, both verify through NSD
        self.zone[-1] = ('%s._domainkey' % new, 'TXT', self.txt_value(new))
        self.publish()
        before = int(time.time())
        out = self.rotate('--due')
        self.assertIn('%s activated' % new, out)
        keys = self.keys()
        self.assertEqual((keys[new]['state'], keys[new]['active']), ('active', True))
        self.assertEqual((keys['old1']['state'], keys['old1']['active']), ('retiring', True))
        self.assertGreaterEqual(keys[new]['activated_at'], before)
        self.assertGreaterEqual(keys['old1']['retire_at'], before + GRACE)
        self.assertEqual(sorted(self.signatures(self.send())), sorted([new, 'old1']))
        with open(self.milter.log_path) as f:
            self.assertIn('selector=%s signatures=2' % new, f.read())
        # dkim txt DOMAIN is the active key's record, not the retiring one's
        self.assertIn('%s._domainkey' % new, self.store.ctl('dkim', 'txt', DOMAIN).stdout)
        # the table view shows the states and dates
        table = self.store.ctl('dkim', 'list').stdout
        self.assertRegex(table, r'old1\s+rsa\s+yes\s+retiring\s')

        # 5. a run before the grace period is over changes nothing
        self.rotate('--due', now=time.time() + GRACE / 2)
        self.assertEqual(self.keys()['old1']['state'], 'retiring')

        # 6. after it: the old key is retired, mail carries the new signature only
        out = self.rotate('--due', now=time.time() + GRACE + 60)
        self.assertIn('old1 retired', out)
        keys = self.keys()
        self.assertEqual((keys['old1']['state'], keys['old1']['active']), ('retired', False))
        self.assertEqual(keys[new]['state'], 'active')
        self.assertEqual(self.signatures(self.send()), [new])

        # 7. every step audited
        self.assertEqual(self.audit('dkim.rotate'), ['%s/%s' % (DOMAIN, new)])
        self.assertEqual(self.audit('dkim.promote'), ['%s/%s' % (DOMAIN, new)])
        self.assertEqual(self.audit('dkim.retire'), ['%s/old1' % DOMAIN])

        # 8. a further run is idle and idempotent
        out = self.rotate('--due', now=time.time() + GRACE + 120)
        self.assertIn('idle', out)
        self.assertEqual(self.audit('dkim.retire'), ['%s/old1' % DOMAIN])

    def test_concurrent_runs_start_one_rotation(self):
        self.store.ctl('dkim', 'generate', RACE, '--selector', 'r1')
        procs = [subprocess.Popen(self.store.ctl_command() + ['dkim', 'rotate', RACE],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (out, err) in zip(procs, outs):
            self.assertEqual(p.returncode, 0, out + err)
        keys = self.keys(RACE)
        pending = [s for s, k in keys.items() if k['state'] == 'pending']
        self.assertEqual(len(pending), 1, keys)
        self.assertEqual(self.audit('dkim.rotate', RACE), ['%s/%s' % (RACE, pending[0])])
        self.assertEqual(sum('generated' in o for o, _ in outs), 1, outs)
        # a rotation cannot start while one is under way: it checks the pending key
        out = self.rotate(RACE)
        self.assertIn('waiting', out)
        self.assertEqual(len(self.keys(RACE)), 2)


if __name__ == '__main__':
    unittest.main()


class DkimRotateApiTest(labcase.ApiBase):
    """The same run through mailwarden-api (POST /api/v1/dkim/rotate) and `--api`."""

    @classmethod
    def start_lab(cls):
        cls.dns = cls.lab.dns(zones={DOMAIN: []})
        cls.store = cls.lab.store(extra_config=(
            '[milter]\ndns_servers = %s\ndns_timeout = 3s\n[dkim]\nrotation_grace = 1h\n'
            % cls.dns.server))
        cls.api = cls.lab.api(cls.store, api_config=labcase.MANY_LOGINS)
        cls.nginx = cls.lab.nginx(fastcgi=cls.api.fastcgi())
        cls.add_admin()
        cls.store.ctl('dkim', 'generate', DOMAIN, '--selector', 'a1')

    def ctl_api(self, *args):
        token = self.login(self.admin, self.admin_pw)
        env = dict(os.environ, MAILWARDEN_TOKEN=token)
        p = subprocess.run(self.store.ctl_command() + ['--api', 'http://127.0.0.1:%d' % self.port]
                           + list(args), capture_output=True, text=True, env=env, timeout=120)
        return p.returncode, p.stdout, p.stderr

    def test_rotate_through_the_api(self):
        token = self.login(self.admin, self.admin_pw)
        self.expect(self.call('POST', '/api/v1/dkim/rotate', body={}, token=token), 422)
        self.expect(self.call('POST', '/api/v1/dkim/rotate',
                              body={'domain': DOMAIN, 'due': True}, token=token), 422)
        self.expect(self.call('POST', '/api/v1/dkim/rotate',
                              body={'domain': DOMAIN, 'bits': 1024}, token=token), 422)
        rc, out, err = self.ctl_api('dkim', 'rotate', DOMAIN)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('generated', out)
        self.assertIn('publish:', out)
        a = self.expect(self.call('GET', '/api/v1/dkim/keys?domain=' + DOMAIN, token=token), 200)
        states = {k['selector']: k['state'] for k in a.json['keys']}
        new = [s for s, st in states.items() if st == 'pending']
        self.assertEqual(len(new), 1, states)
        new = new[0]
        # --api list shows the state too
        rc, out, err = self.ctl_api('dkim', 'list', '--json')
        self.assertEqual(rc, 0, err)
        self.assertEqual({k['selector']: k['state'] for k in json.loads(out)}, states)
        # published: the API's run activates it, audited with the API user as actor
        txt = self.store.ctl('dkim', 'txt', DOMAIN, new).stdout
        self.dns.set_zone(DOMAIN, [('%s._domainkey' % new, 'TXT',
                                    ''.join(re.findall(r'"([^"]*)"', txt)))])
        self.dns.reload()
        a = self.expect(self.call('POST', '/api/v1/dkim/rotate', body={'due': True},
                                  token=token), 200)
        self.assertIn('activated', [e['event'] for e in a.json['events']], a.json)
        a = self.expect(self.call('GET', '/api/v1/dkim/keys?domain=' + DOMAIN, token=token), 200)
        states = {k['selector']: k['state'] for k in a.json['keys']}
        self.assertEqual(states, {'a1': 'retiring', new: 'active'})
        with sqlite3.connect(self.store.db) as c:
            actors = [r[0] for r in c.execute(
                "SELECT actor FROM audit_log WHERE action IN ('dkim.rotate', 'dkim.promote')")]
        self.assertEqual(actors, ['api:' + self.admin] * 2)
        # a rotation cannot start while the previous key still signs: exit 1, says why
        rc, out, err = self.ctl_api('dkim', 'rotate', DOMAIN)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('not over', out)
