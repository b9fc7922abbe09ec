"""test_discovery - DNS records helper, MTA-STS policy and mail client autoconfig (issue 18).

One lab for the module: NSD serving example.org (the lab DNS server), a store whose config
has [mailhost] and [milter] local_domains/dns_servers, the API behind real nginx with the
sample's "discovery" block as written (conf.d/nginx-mailwarden.conf.sample). Checks:
  - `mailwardenctl dns DOMAIN [--json] [--check]` prints the same in the store mode and with
    --api; the zone text is valid zone-file syntax (nsd-checkzone reads it); the values are
    the configured ones and the DKIM record is the store's active key;
  - --check reports ok / missing / different (with the exact difference) against what NSD
    serves, error (never ok) when the resolver cannot answer, and exits 0 only when all is ok;
  - /.well-known/mta-sts.txt for Host mta-sts.DOMAIN is the RFC 8461 policy whose id the
    _mta-sts record carries; other hosts get 404;
  - Thunderbird autoconfig and Outlook autodiscover answers are well-formed XML (two parsers)
    with the configured hosts, ports and socket types; hostile addresses and foreign domains
    get 404 without echo; the answer is the same for a user who exists and one who does not;
  - the Apple profile is a valid plist (plistlib) for a logged-in user, optionally with a
    fresh app password made by the app-password code (current password needed).
"""

import hashlib
import json
import os
import plistlib
import subprocess
import unittest
import urllib.parse
import uuid
import xml.dom.minidom
import xml.etree.ElementTree as ET

import mailwarden_lab as lab_mod
from labcase import MANY_LOGINS, ApiBase, call

DOMAIN = lab_mod.DOMAIN  # example.org
OTHER = 'example.net'    # served too, nothing published
AD_REQ = ('<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="http://schemas.'
          'microsoft.com/exchange/autodiscover/outlook/requestschema/2006">\n<Request>\n'
          '<EMailAddress>%s</EMailAddress>\n<AcceptableResponseSchema>http://schemas.'
          'microsoft.com/exchange/autodiscover/outlook/responseschema/2006a'
          '</AcceptableResponseSchema>\n</Request>\n</Autodiscover>\n')
R_NS = '{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}'


def mailhost_config(dns_server):
    return ('\n[milter]\nlocal_domains = %s, %s\ndns_servers = %s\ndns_timeout = 3s\n'
            '[mailhost]\nmx_host = mx.%s\noutbound = 192.0.2.10 2001:db8::/48\n'
            'dmarc_policy = quarantine\nimap_host = imap.%s\n'
            'client_services = imaps submissions submission\nmta_sts_mode = enforce\n'
            % (DOMAIN, OTHER, dns_server, DOMAIN, DOMAIN))


class DiscoveryTest(ApiBase):
    @classmethod
    def start_lab(cls):
        cls.dns = cls.lab.dns(zones={DOMAIN: []})
        cls.store = cls.lab.store(extra_config=mailhost_config(cls.dns.server))
        cls.api = cls.lab.api(cls.store, api_config=MANY_LOGINS)
        cls.nginx = cls.lab.nginx(fastcgi=cls.api.fastcgi(),
                                  extra_server=lab_mod.discovery_block(cls.api.fastcgi()[1]))
        cls.add_admin()
        a = call(cls.port, 'POST', '/api/v1/sessions',
                 body={'username': cls.admin, 'password': cls.admin_pw})
        assert a.status == 201, a
        cls.token = a.json['token']
        cls.store.ctl('dkim', 'generate', DOMAIN, '--selector', 's1')

    # -- helpers ---------------------------------------------------------------------------

    def ctl(self, mode, args, config=None):
        cmd = [self.store.ctl_path, '-c', config or self.store.config]
        env = {k: v for k, v in os.environ.items() if k != 'MAILWARDEN_TOKEN'}
        if mode == 'api':
            cmd += ['--api', 'http://127.0.0.1:%d' % self.port]
            env['MAILWARDEN_TOKEN'] = self.token
        p = subprocess.run(cmd + list(args), capture_output=True, text=True, env=env,
                           timeout=120)
        return p.returncode, p.stdout, p.stderr

    def both(self, args):
        s, a = self.ctl('store', args), self.ctl('api', args)
        self.assertEqual(s, a, args)
        return s

    def records(self):
        rc, out, err = self.both(['dns', DOMAIN, '--json'])
        self.assertEqual(rc, 0, err)
        return json.loads(out)

    def by_name(self, doc):
        return {(r['name'], r['type']): r for r in doc['records']}

    def publish(self, records):
        self.dns.set_zone(DOMAIN, records)
        self.dns.reload()

    def good_zone(self, doc):
        """good_zone - NSD records publishing exactly what the helper asks for."""
        out = []
        for r in doc['records']:
            owner = r['name'][:-len(DOMAIN) - 2] or '@'
            out.append((owner, r['type'], r['value']))
        out += [('mx', 'A', '192.0.2.25'), ('imap', 'A', '192.0.2.26')]
        return out

    # -- DNS records -----------------------------------------------------------------------

    def test_records_same_in_both_modes_with_configured_values(self):
        rc, zone, err = self.both(['dns', DOMAIN])
        self.assertEqual(rc, 0, err)
        doc = self.records()
        recs = self.by_name(doc)
        d = DOMAIN + '.'
        self.assertEqual(recs[(d, 'MX')]['value'], '10 mx.%s.' % DOMAIN)
        self.assertEqual(recs[(d, 'TXT')]['value'],
                         'v=spf1 ip4:192.0.2.10 ip6:2001:db8::/48 -all')
        self.assertEqual(recs[('_dmarc.' + d, 'TXT')]['value'],
                         'v=DMARC1; p=quarantine; rua=mailto:postmaster@%s' % DOMAIN)
        self.assertEqual(recs[('_smtp._tls.' + d, 'TXT')]['value'],
                         'v=TLSRPTv1; rua=mailto:postmaster@%s' % DOMAIN)
        self.assertEqual(recs[('_mta-sts.' + d, 'TXT')]['value'],
                         'v=STSv1; id=%s' % doc['mta_sts_id'])
        self.assertEqual(recs[('_imaps._tcp.' + d, 'SRV')]['value'], '0 1 993 imap.%s.' % DOMAIN)
        self.assertEqual(recs[('_imap._tcp.' + d, 'SRV')]['value'], '0 0 0 .')
        self.assertEqual(recs[('_submissions._tcp.' + d, 'SRV')]['value'],
                         '0 1 465 mx.%s.' % DOMAIN)
        self.assertEqual(recs[('_submission._tcp.' + d, 'SRV')]['value'],
                         '0 1 587 mx.%s.' % DOMAIN)
        # the DKIM record is the store's active key
        rc, out, err = self.ctl('store', ['dkim', 'list', '--json'])
        keys = [k for k in json.loads(out) if k['domain'] == DOMAIN and k['active']]
        self.assertEqual(len(keys), 1, out)
        dkim = recs[('%s._domainkey.%s' % (keys[0]['selector'], d), 'TXT')]
        self.assertEqual(dkim['value'], 'v=DKIM1; k=rsa; p=' + keys[0]['public_key'])
        # every line of the zone text is in the JSON, and NSD accepts the text as a zone
        for r in doc['records']:
            self.assertIn(r['zone'] + '\n', zone)
        path = os.path.join(self.lab.root, 'helper.zone')
        with open(path, 'w') as f:
            f.write('$ORIGIN %s\n$TTL 300\n@ IN SOA ns.%s hostmaster.%s 1 3600 600 86400 60\n'
                    '@ IN NS ns.%s\nns IN A 127.0.0.1\n%s' % (d, d, d, d, zone))
        p = subprocess.run([lab_mod.find_binary('nsd-checkzone', 'nsd'), DOMAIN, path],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # and the API answers the same object to an admin only
        a = self.call('GET', '/api/v1/domains/%s/dns' % DOMAIN, token=self.token)
        self.expect(a, 200)
        self.assertEqual(a.json, doc)
        user, pw = self.store_user()
        a = self.call('GET', '/api/v1/domains/%s/dns' % DOMAIN, token=self.login(user, pw))
        self.expect(a, 403, 'forbidden')

    def test_check_reports_ok_missing_different_and_error(self):
        doc = self.records()
        good = self.good_zone(doc)
        # SPF differs, DMARC is missing, the imaps SRV points elsewhere, the rest is right
        zone = [r for r in good if not r[2].startswith(('v=spf1', 'v=DMARC1'))]
        zone = [r for r in zone if r[0] != '_imaps._tcp']
        zone += [('@', 'TXT', 'v=spf1 mx -all'), ('_imaps._tcp', 'SRV', '0 1 993 mail.other.')]
        self.publish(zone)
        rc, out, err = self.both(['dns', DOMAIN, '--check'])
        self.assertEqual(rc, 1, out + err)
        n = len(doc['records'])
        self.assertIn('%d of %d records ok' % (n - 3, n), out)
        rc, out, err = self.both(['dns', DOMAIN, '--check', '--json'])
        self.assertEqual(rc, 1)
        checked = json.loads(out)
        self.assertFalse(checked['ok'])
        st = {(r['purpose'], r['name']): r for r in checked['records']}
        d = DOMAIN + '.'
        spf = st[('spf', d)]
        self.assertEqual(spf['status'], 'different')
        self.assertEqual(spf['published'], '"v=spf1 mx -all"')
        self.assertEqual(spf['difference'],
                         'missing: ip4:192.0.2.10, ip6:2001:db8::/48; unexpected: mx')
        self.assertEqual(st[('dmarc', '_dmarc.' + d)]['status'], 'missing')
        srv = st[('srv', '_imaps._tcp.' + d)]
        self.assertEqual(srv['status'], 'different')
        self.assertEqual(srv['difference'],
                         'expected 0 1 993 imap.%s., published 0 1 993 mail.other.' % DOMAIN)
        for key in (('mx', d), ('mta-sts', '_mta-sts.' + d), ('tls-rpt', '_smtp._tls.' + d),
                    ('srv', '_imap._tcp.' + d), ('srv', '_submission._tcp.' + d)):
            self.assertEqual(st[key]['status'], 'ok', st[key])
        self.assertEqual([r['status'] for r in checked['records'] if r['purpose'] == 'dkim'],
                         ['ok'])
        # DMARC tags in another order with other blanks are the same record
        zone.append(('_dmarc', 'TXT',
                     'v=DMARC1;rua=mailto:postmaster@%s ;  p=quarantine' % DOMAIN))
        self.publish(zone)
        checked = json.loads(self.both(['dns', DOMAIN, '--check', '--json'])[1])
        self.assertEqual([r['status'] for r in checked['records'] if r['purpose'] == 'dmarc'],
                         ['ok'])
        # everything published: exit 0
        self.publish(good)
        rc, out, err = self.both(['dns', DOMAIN, '--check'])
        self.assertEqual(rc, 0, out + err)
        self.assertIn('%d of %d records ok' % (n, n), out)
        # a resolver that does not answer is an error for every record, never ok
        cfg = os.path.join(self.lab.root, 'dead-dns.conf')
        with open(self.store.config) as f:
            text = f.read()
        with open(cfg, 'w') as f:
            f.write(text.replace(self.dns.server, '127.0.0.1@%d' % lab_mod.free_port())
                    .replace('dns_timeout = 3s', 'dns_timeout = 1s'))
        rc, out, err = self.ctl('store', ['dns', DOMAIN, '--check', '--json'], config=cfg)
        self.assertEqual(rc, 1, err)
        self.assertEqual({r['status'] for r in json.loads(out)['records']}, {'error'})

    def test_unconfigured_and_bad_domain(self):
        cfg = os.path.join(self.lab.root, 'no-mx.conf')
        with open(self.store.config) as f:
            text = f.read()
        with open(cfg, 'w') as f:
            f.write(text.replace('mx_host = mx.%s\n' % DOMAIN, ''))
        rc, out, err = self.ctl('store', ['dns', DOMAIN], config=cfg)
        self.assertEqual(rc, 1)
        self.assertIn('[mailhost] mx_host is not set', err)
        for bad in ('bad..name', '-x.example.org', 'a b'):
            rc, out, err = self.both(['dns', bad])
            self.assertEqual(rc, 2, (bad, out, err))

    # -- MTA-STS ---------------------------------------------------------------------------

    def test_mta_sts_policy_by_host(self):
        a = self.call('GET', '/.well-known/mta-sts.txt',
                      headers={'Host': 'mta-sts.%s' % DOMAIN.upper()})
        self.assertEqual(a.status, 200, a)
        self.assertTrue(a.headers['content-type'].startswith('text/plain'), a.headers)
        body = a.raw.decode('ascii')
        self.assertTrue(body.endswith('\r\n'))
        lines = body[:-2].split('\r\n')
        fields = [tuple(l.split(': ', 1)) for l in lines]
        self.assertEqual(fields, [('version', 'STSv1'), ('mode', 'enforce'),
                                  ('mx', 'mx.' + DOMAIN), ('max_age', '604800')])
        # the _mta-sts record carries this policy's id
        self.assertEqual(self.records()['mta_sts_id'], hashlib.sha256(a.raw).hexdigest()[:16])
        for host in ('mta-sts.example.com', DOMAIN, 'mta-sts.', 'x.mta-sts.' + DOMAIN):
            a = self.call('GET', '/.well-known/mta-sts.txt', headers={'Host': host})
            self.assertEqual(a.status, 404, (host, a))

    # -- Thunderbird autoconfig ------------------------------------------------------------

    def autoconfig(self, address, path='/mail/config-v1.1.xml'):
        q = '' if address is None else '?emailaddress=' + urllib.parse.quote(address, safe='')
        return self.call('GET', path + q, headers={'Host': 'autoconfig.' + DOMAIN})

    def test_thunderbird_autoconfig(self):
        user, _ = self.store_user()
        answers = []
        for path in ('/mail/config-v1.1.xml', '/.well-known/autoconfig/mail/config-v1.1.xml'):
            for address in (user, 'nobody-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)):
                a = self.autoconfig(address, path)
                self.assertEqual(a.status, 200, a)
                self.assertTrue(a.headers['content-type'].startswith('application/xml'))
                answers.append(a.raw)
        # nothing tells an existing user from a made-up one
        self.assertEqual(len(set(answers)), 1)
        xml.dom.minidom.parseString(answers[0])
        root = ET.fromstring(answers[0])
        self.assertEqual((root.tag, root.get('version')), ('clientConfig', '1.1'))
        prov = root.find('emailProvider')
        self.assertEqual(prov.get('id'), DOMAIN)
        self.assertEqual(prov.findtext('domain'), DOMAIN)
        inc = prov.findall('incomingServer')
        out = prov.findall('outgoingServer')
        got = [(s.get('type'), s.findtext('hostname'), s.findtext('port'),
                s.findtext('socketType'), s.findtext('authentication'), s.findtext('username'))
               for s in inc + out]
        self.assertEqual(got, [
            ('imap', 'imap.' + DOMAIN, '993', 'SSL', 'password-cleartext', '%EMAILADDRESS%'),
            ('smtp', 'mx.' + DOMAIN, '465', 'SSL', 'password-cleartext', '%EMAILADDRESS%'),
            ('smtp', 'mx.' + DOMAIN, '587', 'STARTTLS', 'password-cleartext',
             '%EMAILADDRESS%')])
        # the second served domain gets its own provider id
        a = self.autoconfig('x@' + OTHER)
        self.assertEqual(ET.fromstring(a.raw).find('emailProvider').get('id'), OTHER)

    def test_autoconfig_hostile_addresses(self):
        for bad in (None, '', '<script>@' + DOMAIN, 'a@%s<x>' % DOMAIN, 'a@b@' + DOMAIN,
                    '"a b"@' + DOMAIN, 'a..b@' + DOMAIN, '.a@' + DOMAIN, 'a' * 65 + '@' + DOMAIN,
                    'a@example.com', 'a@' + DOMAIN + '.', 'a@[127.0.0.1]', 'a\r\nX: y@' + DOMAIN,
                    'a@xn--', DOMAIN):
            a = self.autoconfig(bad)
            # a control character is refused by the API's query decoding (400) first
            self.assertEqual(a.status, 400 if bad and '\r' in bad else 404, (bad, a))
            self.assertNotIn(b'script', a.raw)
            self.assertNotIn(b'<x>', a.raw)
        a = self.call('GET', '/mail/config-v1.1.xml?emailaddress=a%40' + DOMAIN + '&x=<y>')
        self.assertEqual(a.status, 422, a)
        self.assertNotIn(b'<y>', a.raw)

    # -- Outlook autodiscover --------------------------------------------------------------

    def autodiscover(self, body, path='/autodiscover/autodiscover.xml'):
        return self.call('POST', path, raw=body.encode(), ctype='text/xml',
                         headers={'Host': 'autodiscover.' + DOMAIN})

    def test_outlook_autodiscover(self):
        # & and ' are atext: allowed in the address, escaped in the answer
        address = "o'neil&co@" + DOMAIN
        for path in ('/autodiscover/autodiscover.xml', '/Autodiscover/Autodiscover.xml'):
            a = self.autodiscover(AD_REQ % address.replace('&', '&amp;').replace("'", '&apos;'),
                                  path)
            self.assertEqual(a.status, 200, a)
            self.assertTrue(a.headers['content-type'].startswith('application/xml'))
            xml.dom.minidom.parseString(a.raw)
            root = ET.fromstring(a.raw)
            self.assertEqual(root.tag, '{http://schemas.microsoft.com/exchange/autodiscover/'
                             'responseschema/2006}Autodiscover')
            acct = root.find(R_NS + 'Response/' + R_NS + 'Account')
            self.assertEqual(acct.findtext(R_NS + 'AccountType'), 'email')
            self.assertEqual(acct.findtext(R_NS + 'Action'), 'settings')
            protos = [{c.tag[len(R_NS):]: c.text for c in p}
                      for p in acct.findall(R_NS + 'Protocol')]
            self.assertEqual([(p['Type'], p['Server'], p['Port'], p['SSL'], p['Encryption'],
                               p['LoginName']) for p in protos],
                             [('IMAP', 'imap.' + DOMAIN, '993', 'on', 'SSL', address),
                              ('SMTP', 'mx.' + DOMAIN, '465', 'on', 'SSL', address)])
        self.assertIn(b'o&apos;neil&amp;co@', a.raw)

    def test_autodiscover_hostile_requests(self):
        a = self.autodiscover(AD_REQ % 'a@example.com')
        self.assertEqual(a.status, 404, a)
        a = self.autodiscover(AD_REQ % ('<b>x</b>@' + DOMAIN))
        self.assertEqual(a.status, 404, a)
        self.assertNotIn(b'<b>', a.raw)
        for ref in ('a&#x3c;b@', 'a&lt;b@', 'a&b@', 'a&amp@'):  # only &amp; and &apos; give atext
            a = self.autodiscover(AD_REQ % (ref + DOMAIN))
            self.assertEqual(a.status, 404, (ref, a))
        a = self.autodiscover((AD_REQ % ('a@' + DOMAIN)) * 2)
        self.assertEqual(a.status, 400, a)
        a = self.autodiscover('<Autodiscover/>')
        self.assertEqual(a.status, 400, a)
        a = self.autodiscover('')
        self.assertEqual(a.status, 400, a)
        a = self.call('GET', '/autodiscover/autodiscover.xml')
        self.assertEqual(a.status, 405, a)
        # over nginx's client_max_body_size of the block: refused before the API
        a = self.autodiscover(AD_REQ % ('a@' + DOMAIN) + ' ' * 20000)
        self.assertEqual(a.status, 413, a)

    # -- Apple configuration profile -------------------------------------------------------

    def test_mobileconfig_profile(self):
        user, pw = self.store_user()
        tok = self.login(user, pw)
        path = '/api/v1/users/%s/mobileconfig' % user
        a = self.call('POST', path, body={}, token=tok)
        self.assertEqual(a.status, 200, a)
        self.assertEqual(a.headers['content-type'], 'application/x-apple-aspen-config')
        self.assertIn('attachment', a.headers['content-disposition'])
        prof = plistlib.loads(a.raw)
        self.assertEqual(prof['PayloadType'], 'Configuration')
        self.assertEqual(prof['PayloadVersion'], 1)
        mail = prof['PayloadContent'][0]
        self.assertEqual(mail['PayloadType'], 'com.apple.mail.managed')
        self.assertEqual(mail['EmailAddress'], user)
        self.assertEqual((mail['IncomingMailServerHostName'],
                          mail['IncomingMailServerPortNumber'],
                          mail['IncomingMailServerUseSSL'], mail['IncomingMailServerUsername']),
                         ('imap.' + DOMAIN, 993, True, user))
        self.assertEqual((mail['OutgoingMailServerHostName'],
                          mail['OutgoingMailServerPortNumber'],
                          mail['OutgoingMailServerUseSSL'], mail['OutgoingMailServerUsername']),
                         ('mx.' + DOMAIN, 465, True, user))
        self.assertNotIn('IncomingPassword', mail)
        self.assertNotEqual(prof['PayloadUUID'], mail['PayloadUUID'])
        # with a fresh app password: needs the current password, like any app password
        a = self.call('POST', path, token=tok,
                      body={'app_password': {'name': 'iphone', 'current_password': 'wrong'}})
        self.assertEqual(a.status, 403, a)
        a = self.call('POST', path, token=tok,
                      body={'app_password': {'name': 'iphone', 'current_password': pw,
                                             'protocols': ['imap', 'smtp']}})
        self.assertEqual(a.status, 200, a)
        mail = plistlib.loads(a.raw)['PayloadContent'][0]
        secret = mail['IncomingPassword']
        self.assertGreaterEqual(len(secret), 32)
        self.assertTrue(mail['OutgoingPasswordSameAsIncomingPassword'])
        a = self.call('GET', '/api/v1/users/%s/app-passwords' % user, token=tok)
        self.assertEqual([p['name'] for p in a.json['app_passwords']], ['iphone'])
        self.assertNotIn(secret.encode(), lab_mod.tail(self.api.log_path, 400).encode())
        # someone else's profile, no session, a bad body
        other, opw = self.store_user()
        a = self.call('POST', '/api/v1/users/%s/mobileconfig' % other, body={}, token=tok)
        self.expect(a, 403, 'forbidden')
        a = self.call('POST', path, body={})
        self.expect(a, 401)
        a = self.call('POST', path, body={'app_password': 'x'}, token=tok)
        self.expect(a, 422)
        a = self.call('POST', path, body={'nope': 1}, token=tok)
        self.expect(a, 422, 'unknown_field')
        # a user outside the served domains gets no profile
        foreign = 'f%s@example.com' % uuid.uuid4().hex[:6]
        self.store.add_user(foreign, 'Foreign-pass-1234')
        a = self.call('POST', '/api/v1/users/%s/mobileconfig' % foreign, body={},
                      token=self.login(foreign, 'Foreign-pass-1234'))
        self.expect(a, 409, 'not_configured')


if __name__ == '__main__':
    unittest.main()
