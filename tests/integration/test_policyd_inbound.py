"""test_policyd_inbound - mailwarden-policyd's inbound limits through a real Postfix: mail from
the Internet (unauthenticated, not originating) to local users, counted per client address
(/32), per client network (/24) and per recipient, with an allow-listed network exempt and
authenticated (outbound) mail untouched by inbound-only limits.

Client addresses are loopback aliases (127.0.N.M, Linux answers the whole 127/8), one /24 per
test so that counters never meet. The module runs twice: counters in memory, and in a real
redis-server (leases on, the default).
"""

import smtplib
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN
REMOTE = 'remote.example'
LIMITS = [
    'sasl_username messages 100/1h defer',
    'inbound:client_address/32 messages 3/1h defer',
    'inbound:client_address/24 messages 5/1h defer',
    'inbound:recipient messages 4/1h defer',
]
EXTRA = 'allow = 127.0.9.0/24\nstore_refresh = 1s\n'


class InboundBase:
    """InboundBase - the tests; subclasses pick the counter store."""

    counters = 'memory'
    policyd_must_live = True

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.dovecot = cls.lab.dovecot(cls.store)
        counters = cls.lab.redis().url if cls.counters == 'redis' else 'memory'
        cls.start_policy_path(limits=LIMITS, extra=EXTRA, counters=counters)

    def local_user(self):
        user = 'in%s@%s' % (uuid.uuid4().hex[:8], DOMAIN)
        pw = self.store.add_user(user, 'Pw-' + uuid.uuid4().hex)
        return user, pw

    def send(self, source, rcpt, sender='someone@' + REMOTE, login=None):
        """send - one message from client address SOURCE; (stage, code, text) with stage
        'rcpt' when RCPT was refused, else 'data'."""
        s = smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=30,
                         source_address=(source, 0))
        try:
            s.ehlo('client.example.net')
            if login:
                s.login(*login)
            code, text = s.mail(sender)
            self.assertEqual(code, 250, text)
            code, text = s.rcpt(rcpt)
            if code != 250:
                return 'rcpt', code, text
            code, text = s.data(('From: <%s>\r\nTo: <%s>\r\nSubject: inbound\r\n'
                                 'Message-ID: <%s@client.example.net>\r\n\r\nbody\r\n'
                                 % (sender, rcpt, uuid.uuid4().hex)).encode())
            return 'data', code, text
        finally:
            labcase.quit_quietly(s)

    def assertPasses(self, source, rcpt, **kw):
        stage, code, text = self.send(source, rcpt, **kw)
        self.assertEqual((stage, code), ('data', 250), text)

    def assertDeferred(self, source, rcpt, what):
        stage, code, text = self.send(source, rcpt)
        self.assertEqual((stage, code), ('rcpt', 450), text)
        self.assertTrue(text.startswith(b'4.7.1 '), text)
        self.assertIn(what.encode(), text)

    def test_one_ip_flooding_is_deferred_another_passes(self):
        a, _ = self.local_user()
        b, _ = self.local_user()
        for i in range(3):
            self.assertPasses('127.0.1.1', a if i % 2 else b)
        self.assertDeferred('127.0.1.1', a, 'rate limit: 3 messages per 1h for 127.0.1.1/32')
        # the next address of the same network is not that address
        self.assertPasses('127.0.1.2', a)

    def test_network_limit_across_addresses(self):
        users = [self.local_user()[0] for _ in range(3)]
        for i in range(5):  # 2 + 2 + 1: no address reaches its own 3
            self.assertPasses('127.0.2.%d' % (1 + i // 2), users[i % 3])
        self.assertDeferred('127.0.2.4', users[0],
                            'rate limit: 5 messages per 1h for 127.0.2.0/24')
        self.assertPasses('127.0.3.1', users[0])  # another network

    def test_per_recipient_limit(self):
        rcpt, _ = self.local_user()
        for i in range(4):  # four networks, one message each
            self.assertPasses('127.0.%d.1' % (4 + i), rcpt)
        self.assertDeferred('127.0.8.1', rcpt, 'rate limit: 4 messages per 1h for ' + rcpt)
        other, _ = self.local_user()
        self.assertPasses('127.0.8.1', other)

    def test_allow_listed_network_never_limited(self):
        rcpt, _ = self.local_user()
        for _ in range(8):  # over the address, network and recipient limits
            self.assertPasses('127.0.9.9', rcpt)

    def test_authenticated_outbound_not_counted_by_inbound_limits(self):
        user, pw = self.local_user()
        rcpt, _ = self.local_user()
        for _ in range(3):
            self.assertPasses('127.0.10.1', rcpt)
        self.assertDeferred('127.0.10.1', rcpt, '127.0.10.1/32')
        # the same client address, logged in: outbound, only the sasl_username limit counts
        for i in range(6):
            self.assertPasses('127.0.10.1', rcpt if i % 2 else 'x%d@%s' % (i, REMOTE),
                              sender=user, login=(user, pw))
        # and those messages did not spend the inbound budget of the address's network
        self.assertPasses('127.0.10.2', self.local_user()[0])

    def test_ctl_status_and_reset_of_an_address(self):
        """ratelimit status|reset IP: every network the address is counted under (its own
        /32 and its /24 here), not only the ipv4_prefix grouping."""
        rcpt, _ = self.local_user()
        for _ in range(3):
            self.assertPasses('127.0.11.1', rcpt)
        self.assertDeferred('127.0.11.1', rcpt, '127.0.11.1/32')
        out = self.policyd.ctl('ratelimit', 'status', '127.0.11.1').stdout
        self.assertRegex(out, r'inbound:client_address/32 messages 3/1h defer  used 3/3  '
                         r'resets in \d+[hm]')
        # (Redis: a lease slice taken from the budget counts as used)
        self.assertRegex(out, r'inbound:client_address/24 messages 5/1h defer  used [345]/5  ')
        out = self.policyd.ctl('ratelimit', 'reset', '127.0.11.1').stdout
        self.assertRegex(out, r'cleared [2-9] counters of client_address 127.0.11.0/24')
        out = self.policyd.ctl('ratelimit', 'status', '127.0.11.1').stdout
        self.assertIn('inbound:client_address/32 messages 3/1h defer  used 0/3  idle', out)
        self.assertPasses('127.0.11.1', rcpt)


class InboundMemoryTest(InboundBase, labcase.PolicydCase):
    counters = 'memory'


class InboundRedisTest(InboundBase, labcase.PolicydCase):
    counters = 'redis'


if __name__ == '__main__':
    unittest.main()
