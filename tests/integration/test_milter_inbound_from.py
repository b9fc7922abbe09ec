"""test_milter_inbound_from - what Postfix would normalise away, sent to the milter directly.

Issue 9: an unauthenticated message whose From gives DMARC no single domain used to be
accepted. Through Postfix (test_milter_auth) a missing From is added and `From : x` is
renamed, so these cases drive the real daemon (ASan build, inet socket) with miltertest:
a missing From, a From field named with a blank before the colon (a From to every mail
reader), an untrusted client whose address is unknown, an envelope sender that does not
parse but names the local domain. The milter resolves through the lab DNS server:

  example.com  SPF ip4:192.0.2.10 -all, DMARC p=reject
  example.org  (the lab domain) local_domains, SPF ip4:192.0.2.50 -all, DMARC p=reject
  elsewhere.example  no SPF, no DMARC

Also here (issue 9, item 6): a store error is logged with both the user and the store's
own error text (lookup_error used to format both into one buffer).

Each case is a generated Lua script that prints "RESULT ok" or "RESULT fail: ..."; a
missing miltertest is an error, not a skip.
"""

import os
import re
import subprocess
import time
import unittest

import labcase
import mailwarden_lab as lab_mod

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(os.path.dirname(HERE), 'milter')
DOMAIN = lab_mod.DOMAIN
USER = 'mt-inbound@%s' % DOMAIN
LOCAL_FROM = 'Message claims to be from local domain %s but is not authenticated' % DOMAIN
LOCAL_ENV = 'Envelope sender claims local domain %s but is not authenticated' % DOMAIN


def lua_str(value):
    """lua_str - VALUE (str or bytes) as a Lua string literal, every odd byte escaped."""
    if value is None:
        return 'nil'
    if isinstance(value, str):
        value = value.encode()
    out = []
    for b in value:
        if 0x20 <= b < 0x7f and b not in (0x22, 0x5c):
            out.append(chr(b))
        else:
            out.append('\\%03d' % b)
    return '"%s"' % ''.join(out)


def script(ip, envfrom, headers, want, auth=''):
    """script - a miltertest script for one inbound message.

    WANT: ('mail',) refused at MAIL FROM; ('eom', code, xcode, text) refused at end of
    message with that reply (miltertest's check needs all three); ('accept',) accepted."""
    lines = ['dofile(dir .. "/common.lua")', 'function main()',
             '  local conn = mt.connect(socket, 20, 0.25)',
             '  check(conn ~= nil, "mt.connect failed")',
             '  expect(SMFIR_CONTINUE, "conninfo", mt.conninfo, conn, "client.example", %s)'
             % lua_str(ip),
             '  expect(SMFIR_CONTINUE, "helo", mt.helo, conn, "mx.elsewhere.example")',
             '  mt.macro(conn, SMFIC_MAIL, "{auth_authen}", %s, "i", "QIDIN")' % lua_str(auth)]
    stage = want[0]
    if stage == 'mail':
        lines += ['  expect(SMFIR_REPLYCODE, "mailfrom", mt.mailfrom, conn, %s)' % lua_str(envfrom),
                  '  mt.disconnect(conn)', 'end', 'run(main)']
        return '\n'.join(lines) + '\n'
    lines += ['  expect(SMFIR_CONTINUE, "mailfrom", mt.mailfrom, conn, %s)' % lua_str(envfrom),
              '  expect(SMFIR_CONTINUE, "rcpt", mt.rcptto, conn, "<inbox@%s>")' % DOMAIN]
    for i, (name, value) in enumerate(headers):
        lines.append('  expect(SMFIR_CONTINUE, "header %d", mt.header, conn, %s, %s)'
                     % (i, lua_str(name), lua_str(value)))
    lines += ['  expect(SMFIR_CONTINUE, "eoh", mt.eoh, conn)',
              '  check(mt.bodystring(conn, "hello\\r\\n") == nil, "body failed")',
              '  local b = mt.getreply(conn)',
              '  check(b == SMFIR_CONTINUE or b == SMFIR_SKIP, "body reply " .. tostring(b))']
    if stage == 'accept':
        lines += ['  expect(SMFIR_CONTINUE, "eom", mt.eom, conn)']
    else:
        lines += ['  expect(SMFIR_REPLYCODE, "eom", mt.eom, conn)',
                  '  check(mt.eom_check(conn, MT_SMTPREPLY, %s, %s, %s), "not refused with %s %s %s")'
                  % (lua_str(want[1]), lua_str(want[2]), lua_str(want[3]), want[1], want[2],
                     re.sub(r'[^\w ()]', '.', want[3]))]
    lines += ['  mt.disconnect(conn)', 'end', 'run(main)']
    return '\n'.join(lines) + '\n'


def run_lua(case, miltertest, milter, name, text):
    """run_lua - write the miltertest script TEXT as NAME.lua in MILTER's directory, run it
    against MILTER (-D socket, -D dir) and assert it printed RESULT ok (CASE: the TestCase)."""
    path = os.path.join(milter.dir, '%s.lua' % re.sub(r'\W+', '-', name))
    with open(path, 'w') as f:
        f.write(text)
    p = subprocess.run([miltertest, '-s', path, '-D', 'socket=' + milter.miltertest_spec,
                        '-D', 'dir=' + SCRIPTS], capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    case.assertIn('RESULT ok', out, '%s (exit %d):\n%s' % (name, p.returncode, out))


class MilterInboundFromTest(labcase.MilterCase):
    """Unusable From headers and unverifiable senders, straight through the milter protocol."""

    @classmethod
    def start_lab(cls):
        cls.miltertest = lab_mod.find_binary('miltertest', 'miltertest')
        cls.dns = cls.lab.dns(zones={
            'example.com': [('@', 'TXT', 'v=spf1 ip4:192.0.2.10 -all'),
                            ('_dmarc', 'TXT', 'v=DMARC1; p=reject')],
            DOMAIN: [('@', 'TXT', 'v=spf1 ip4:192.0.2.50 -all'),
                     ('_dmarc', 'TXT', 'v=DMARC1; p=reject')],
            'elsewhere.example': [('@', 'A', '192.0.2.99'), ('mx', 'A', '192.0.2.99')],
        })
        cls.store = cls.lab.store()
        cls.store.add_user(USER)
        cls.store.allow_from(USER, USER)
        cls.milter = cls.lab.milter(cls.store, socket='inet', config=(
            'dns_servers = %s\ndns_timeout = 1s\nlocal_domains = %s\n'
            % (cls.dns.server, DOMAIN)))

    def run_case(self, name, text):
        run_lua(self, self.miltertest, self.milter, 'case-' + name, text)

    def base_headers(self, from_values, name='From'):
        return ([(name, ' ' + v) for v in from_values] +
                [('To', ' <inbox@%s>' % DOMAIN), ('Subject', ' test')])

    def test_unusable_from_refused(self):
        cases = {
            # what Postfix never passes on: no From at all
            'missing': ([('To', ' <inbox@%s>' % DOMAIN), ('Subject', ' no From')], '0 From header fields'),
            'missing, Sender only': ([('Sender', ' ceo@example.com'), ('Subject', ' x')],
                                     '0 From header fields'),
            'two From fields': (self.base_headers(['ceo@example.com', 'x@elsewhere.example']),
                                '2 From header fields'),
            'From and "From "': ([('From', ' x@elsewhere.example'), ('From ', ' ceo@example.com')],
                                 '2 From header fields'),
            'From and "FROM\\t"': ([('From', ' x@elsewhere.example'),
                                    ('FROM\t', ' ceo@example.com')], '2 From header fields'),
            'empty group': (self.base_headers(['undisclosed-recipients:;']),
                            '0 addresses in From'),
            'two addresses': (self.base_headers(['x@elsewhere.example, ceo@example.com']),
                              '2 addresses in From'),
            'two addresses in a group': (self.base_headers(
                ['g: x@elsewhere.example, ceo@%s;' % DOMAIN]), '2 addresses in From'),
            'plain address as display name': (self.base_headers(
                ['ceo@example.com <x@elsewhere.example>']), 'unparseable From'),
            'domain literal': (self.base_headers(['ceo@[192.0.2.10]']), 'domain literal in From'),
            '8-bit': (self.base_headers([b'\xffCEO <ceo@example.com>'.decode('latin-1')]),
                      'unparseable From'),
            'control character': (self.base_headers(['ceo@example.com\x01']), 'unparseable From'),
            'bare CR': (self.base_headers(['ceo@example.com\r x@y.example']), 'unparseable From'),
            'empty': (self.base_headers(['']), '0 addresses in From'),
        }
        for name, (headers, why) in cases.items():
            if name == '8-bit':
                headers = [(n, v.encode('latin-1')) for n, v in headers]
            for ip in ('192.0.2.99', '192.0.2.10'):
                with self.subTest(name, ip=ip):
                    self.run_case(name, script(ip, '<x@elsewhere.example>', headers, (
                        'eom', '550', '5.7.1',
                        'Message must have one From header with one address (%s)' % why)))

    def test_from_name_with_blank_is_checked(self):
        # a single "From " field: counted as From, so DMARC applies (p=reject, SPF fails)
        self.run_case('from-blank', script('192.0.2.99', '<x@elsewhere.example>',
                                           [('From ', ' ceo@example.com'),
                                            ('Subject', ' x')],
                                           ('eom', '550', '5.7.26',
                                            'Unauthenticated email from example.com is not '
                                            "accepted due to the domain's DMARC policy")))
        # and claiming the local domain that way is the local-domain refusal
        self.run_case('from-blank-local', script('192.0.2.99', '<x@elsewhere.example>',
                                                 [('From\t', ' boss@%s' % DOMAIN)],
                                                 ('eom', '550', '5.7.1', LOCAL_FROM)))

    def test_good_mail_still_accepted(self):
        # SPF passes and aligns for example.com from its own server: accepted
        self.run_case('good', script('192.0.2.10', '<alice@example.com>',
                                     self.base_headers(['Alice <alice@example.com>']),
                                     ('accept',)))
        # a trusted (loopback) client is not checked at all
        self.run_case('trusted', script('127.0.0.1', '<x@elsewhere.example>',
                                        self.base_headers(['a@b.example', 'c@d.example']),
                                        ('accept',)))

    def test_unknown_client_address_refused(self):
        # no address to check SPF against: refused at MAIL FROM, never accepted unchecked
        self.run_case('unspec', script('unspec', '<ceo@example.com>', [],
                                       ('mail',)))
        with open(self.milter.log_path, errors='replace') as f:
            self.assertIn('event=authcheck_refused', f.read())

    def test_unparseable_envelope(self):
        # the local domain claimed through an envelope the parser refuses: SPF never ran
        # on it, the domain still counts
        self.run_case('env-local', script('192.0.2.99', '<boss..x@%s>' % DOMAIN,
                                          self.base_headers(['x@elsewhere.example']),
                                          ('eom', '550', '5.7.1', LOCAL_ENV)))
        # no host name in it at all: cannot be judged, refused
        self.run_case('env-junk', script('192.0.2.99', '<nodomain>',
                                         self.base_headers(['x@elsewhere.example']),
                                         ('eom', '550', '5.7.1',
                                          'Envelope sender does not parse')))
        # another domain: judged by DMARC as usual (no DMARC record for it: accepted)
        self.run_case('env-other', script('192.0.2.99', '<a..b@elsewhere.example>',
                                          self.base_headers(['x@elsewhere.example']),
                                          ('accept',)))


class MilterStoreErrorLogTest(labcase.LabCase):
    """Issue 9 item 6: the store's error text reaches the log next to the user."""

    @classmethod
    def start_lab(cls):
        cls.start_inet_milter(USER, config='on_error = tempfail')

    def test_store_error_logged_with_its_text(self):
        labcase.rename_table(self.store.db, 'users', 'users_gone')
        text = script('127.0.0.1', '<%s>' % USER, [], ('mail',), auth=USER)
        run_lua(self, self.miltertest, self.milter, 'store-error', text)
        deadline = time.monotonic() + 10
        line = None
        while line is None and time.monotonic() < deadline:
            with open(self.milter.log_path, errors='replace') as f:
                for l in f:
                    if 'event=store_error' in l:
                        line = l
            time.sleep(0.1)
        self.assertIsNotNone(line, 'no store_error line in the milter log')
        m = re.search(r'user=(\S+) error=(.*)$', line.strip())
        self.assertIsNotNone(m, line)
        self.assertEqual(m.group(1), USER, line)
        self.assertIn('no such table', m.group(2), line)
        self.assertNotIn(USER, m.group(2), line)
        report = self.milter.sanitizer_report()
        self.assertEqual(report, '', report)


if __name__ == '__main__':
    unittest.main()
