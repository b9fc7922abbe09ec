"""test_policyd - mailwarden-policyd rate limits through a real Postfix (check_policy_service at
RCPT and END-OF-DATA), its hostile-input handling, mailwardenctl ratelimit, and SIGHUP reload.

One Store + Dovecot + policyd + Postfix for the module. Windows are 3 s with limits that
divide them exactly (3 messages per 3 s: one message refills every second). Each test uses
its own users, so counters never leak between tests.
"""

import smtplib
import socket
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN
REMOTE = 'remote.example'
LIMITS = [
    'sasl_username messages 3/3s defer',
    'recipient_domain=%s messages 2/1h defer' % DOMAIN,
    'sasl_username recipients 5/message reject',
]
EXTRA = 'request_timeout = 2s\nmax_line_length = 1000\nstore_refresh = 1s\n'


def message(sender, rcpts):
    return ('From: <%s>\r\nTo: %s\r\nSubject: policyd test\r\nMessage-ID: <%s@client.example.org>'
        '\r\n\r\nbody\r\n' % (sender, ', '.join('<%s>' % r for r in rcpts), uuid.uuid4().hex))


class Session:
    """Session - one authenticated (or not) SMTP session with step-by-step commands."""

    def __init__(self, port, user=None, password=None):
        self.s = smtplib.SMTP('127.0.0.1', port, timeout=30)
        self.s.ehlo('client.example.org')
        if user:
            self.s.login(user, password)

    def mail(self, sender, rcpts):
        """mail - MAIL FROM + RCPT TOs; returns the RCPT replies [(code, text)]."""
        code, text = self.s.mail(sender)
        assert code == 250, (code, text)
        return [self.s.rcpt(r) for r in rcpts]

    def data(self, sender, rcpts):
        """data - DATA with a small message; returns (code, text)."""
        return self.s.data(message(sender, rcpts).encode())

    def send(self, sender, rcpts):
        """send - a whole transaction; returns ('rcpt', replies) or ('data', reply)."""
        replies = self.mail(sender, rcpts)
        if any(c != 250 for c, _ in replies):
            self.s.rset()
            return 'rcpt', replies
        return 'data', self.data(sender, rcpts)

    def close(self):
        try:
            self.s.quit()
        except (smtplib.SMTPException, OSError):
            pass


class PolicydTest(labcase.PolicydCase):
    policyd_must_live = True

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.start_policy_path('bob-', limits=LIMITS, extra=EXTRA)

    def new_user(self):
        user = 'u%s@%s' % (uuid.uuid4().hex[:10], DOMAIN)
        return user, self.store.add_user(user, 'Pw-' + uuid.uuid4().hex)

    def session(self, user=None, pw=None):
        s = Session(self.postfix.smtp_port, user, pw)
        self.addCleanup(s.close)
        return s

    def policy_client(self):
        c = socket.create_connection(('127.0.0.1', self.policyd.port), timeout=10)
        self.addCleanup(c.close)
        return c

    ask = staticmethod(labcase.policy_ask)

    def assertClosed(self, c, what):
        """assertClosed - the daemon closed C (EOF, or a reset when input was unread)."""
        c.settimeout(10)
        try:
            data = c.recv(100)
        except ConnectionResetError:
            data = b''
        self.assertEqual(data, b'', what + ': connection should be closed')

    def test_limit_defers_at_rcpt_then_frees(self):
        user, pw = self.new_user()
        s = self.session(user, pw)
        for i in range(3):
            stage, reply = s.send(user, ['x%d@%s' % (i, REMOTE)])
            self.assertEqual(stage, 'data')
            self.assertEqual(reply[0], 250, reply)
        stage, replies = s.send(user, ['late@' + REMOTE])
        self.assertEqual(stage, 'rcpt')
        code, text = replies[0]
        self.assertEqual(code, 450)
        self.assertTrue(text.startswith(b'4.7.1 '), text)
        self.assertIn(b'rate limit: 3 messages per 3s for ' + user.encode(), text)
        self.assertIn(b'retry in', text)
        time.sleep(3.2)  # the whole window: the bucket is empty again
        for i in range(3):
            stage, reply = s.send(user, ['y%d@%s' % (i, REMOTE)])
            self.assertEqual((stage, reply[0]), ('data', 250), reply)

    def test_defer_at_end_of_data_when_another_message_took_the_last_slot(self):
        """RCPT only checks; END-OF-MESSAGE charges. Two messages that both passed RCPT
        for the last slot: the first to finish DATA gets it, the other gets 450 at DATA."""
        user, pw = self.new_user()
        s = self.session(user, pw)
        for i in range(2):
            self.assertEqual(s.send(user, ['a%d@%s' % (i, REMOTE)])[1][0], 250)
        a, b = self.session(user, pw), self.session(user, pw)
        self.assertEqual([c for c, _ in a.mail(user, ['a@' + REMOTE])], [250])
        self.assertEqual([c for c, _ in b.mail(user, ['b@' + REMOTE])], [250])
        self.assertEqual(a.data(user, ['a@' + REMOTE])[0], 250)
        code, text = b.data(user, ['b@' + REMOTE])
        self.assertEqual(code, 450, text)
        self.assertTrue(text.startswith(b'4.7.1 <END-OF-MESSAGE>'), text)
        self.assertIn(b'rate limit: 3 messages per 3s for ' + user.encode(), text)

    def test_recipients_per_message_cap(self):
        user, pw = self.new_user()
        s = self.session(user, pw)
        rcpts = ['r%d@%s' % (i, REMOTE) for i in range(6)]
        replies = s.mail(user, rcpts)
        self.assertEqual([c for c, _ in replies[:5]], [250] * 5)
        self.assertEqual(replies[5][0], 550)
        self.assertTrue(replies[5][1].startswith(b'5.7.1 '), replies[5][1])
        self.assertIn(b'rate limit: at most 5 recipients per message for ' + user.encode(),
                  replies[5][1])
        self.assertEqual(s.data(user, rcpts[:5])[0], 250)

    def test_inbound_to_local_user_not_throttled(self):
        """recipient_domain=example.org allows 2 per hour, but only for outbound traffic."""
        s = self.session()
        for _ in range(5):
            stage, reply = s.send('someone@' + REMOTE, [self.local])
            self.assertEqual((stage, reply[0]), ('data', 250), reply)
        # the same limit does apply to an authenticated sender
        user, pw = self.new_user()
        s2 = self.session(user, pw)
        for _ in range(2):
            self.assertEqual(s2.send(user, [self.local])[1][0], 250)
        stage, replies = s2.send(user, [self.local])
        self.assertEqual((stage, replies[0][0]), ('rcpt', 450))
        self.assertIn(b'2 messages per 1h for ' + DOMAIN.encode(), replies[0][1])

    def test_hostile_clients_closed_others_served(self):
        good = self.policy_client()
        self.assertEqual(self.ask(good, sasl_username='nobody-yet@x.test'), 'action=DUNNO')
        hostile = {
            'long line': b'request=' + b'a' * 5000 + b'\n',
            'no equals sign': b'request=smtpd_access_policy\ngarbage line\n',
            'NUL byte': b'request=smtpd\x00_access_policy\n',
            'empty request': b'\n',
        }
        for what, data in hostile.items():
            c = self.policy_client()
            c.sendall(data)
            self.assertClosed(c, what)
            self.assertEqual(self.ask(good, sasl_username='nobody-yet@x.test'),
                     'action=DUNNO', what)
        slow = self.policy_client()
        slow.sendall(b'request=smtpd_access_policy\nprotocol_state=RCPT\n')
        t0 = time.time()
        self.assertClosed(slow, 'slow request')
        self.assertLess(time.time() - t0, 6)
        self.assertEqual(self.ask(good, sasl_username='nobody-yet@x.test'), 'action=DUNNO')
        log = self.policyd.log_text()
        for why in ('line longer than 1000 bytes', "without '='", 'NUL byte',
                    'request not completed within 2s'):
            self.assertIn(why, log)

    def test_pipelined_and_split_requests_answered_in_order(self):
        """Requests sent back to back in one write, and requests cut at arbitrary points
        over many writes, are each answered once, in order (3 messages per 3 s: the fourth
        and fifth END-OF-MESSAGE of a user are deferred)."""
        user = 'pipe-%s@%s' % (uuid.uuid4().hex[:8], DOMAIN)

        def eom(i):
            return ('request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\n'
                    'client_address=127.0.0.1\nsasl_username=%s\nrecipient_count=1\n'
                    'size=100\ninstance=pipe%d\n\n' % (user, i)).encode()

        def answers(c, n):
            buf = b''
            while buf.count(b'\n\n') < n:
                chunk = c.recv(65536)
                if not chunk:
                    raise AssertionError('policyd closed the connection')
                buf += chunk
            got = buf.decode().split('\n\n')
            self.assertEqual(got[n:], [''], 'more answers than requests')
            return got[:n]

        c = self.policy_client()
        c.sendall(b''.join(eom(i) for i in range(5)))
        got = answers(c, 5)
        self.assertEqual(got[:3], ['action=DUNNO'] * 3)
        for a in got[3:]:
            self.assertTrue(a.startswith('action=450 4.7.1 rate limit: 3 messages per 3s'), a)
        # the same stream (RCPT checks: nothing charged) in pieces of 1 to 97 bytes
        rcpt = b''.join(eom(i).replace(b'END-OF-MESSAGE', b'RCPT') for i in range(40))
        c2 = self.policy_client()
        c2.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        off, step = 0, 1
        while off < len(rcpt):
            c2.sendall(rcpt[off:off + step])
            off += step
            step = step % 97 + 13
            if off % 7 == 0:
                time.sleep(0.001)
        got = answers(c2, 40)
        self.assertEqual(len(got), 40)
        for a in got:
            self.assertTrue(a.startswith('action=DEFER_IF_PERMIT 4.7.1 rate limit'), a)
        self.assertEqual(self.ask(c, sasl_username='nobody-yet@x.test'), 'action=DUNNO')

    def test_client_that_does_not_read_is_paused_then_served(self):
        """A client that pipelines 80000 requests without reading the answers (~7 MB of
        them): the daemon stops reading it once its answers pile up (its memory stays
        bounded), serves other clients meanwhile, and resumes when the client reads: every
        request is answered exactly once."""
        n = 80000
        user = 'bp-%s@%s' % (uuid.uuid4().hex[:8], DOMAIN)
        req = ('request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\n'
               'client_address=127.0.0.1\nsasl_username=%s\nrecipient_count=1\n'
               'instance=bp\n\n' % user).encode()
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect(('127.0.0.1', self.policyd.port))
        self.addCleanup(c.close)
        c.setblocking(False)
        data, sent = req * n, 0
        deadline = time.time() + 30
        while sent < len(data) and time.time() < deadline:
            try:
                sent += c.send(data[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.2)  # give the daemon time to drain what it still reads
                try:
                    sent += c.send(data[sent:sent + 65536])
                except BlockingIOError:
                    break
        self.assertLess(sent, len(data), 'the daemon read everything without being read')
        self.assertEqual(self.ask(self.policy_client(), sasl_username='nobody-yet@x.test'),
                         'action=DUNNO')
        buf = b''
        deadline = time.time() + 60
        while buf.count(b'\n\n') < n and time.time() < deadline:
            if sent < len(data):
                try:
                    sent += c.send(data[sent:sent + 65536])
                except BlockingIOError:
                    pass
            try:
                chunk = c.recv(1 << 20)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            self.assertTrue(chunk, 'policyd closed the connection')
            buf += chunk
        answers = buf.decode().split('\n\n')
        self.assertEqual(len(answers), n + 1)
        self.assertEqual(answers[-1], '')
        self.assertEqual(answers[:3], ['action=DUNNO'] * 3)
        self.assertTrue(answers[3].startswith('action=450 4.7.1 rate limit'), answers[3])
        # the 3 s window refills while this runs: every answer is one of the two
        bad = [a for a in answers[:-1] if a != 'action=DUNNO' and not a.startswith(
            'action=450 4.7.1 rate limit: 3 messages per 3s for %s, retry in ' % user)]
        self.assertEqual(bad, [])

    def test_ctl_status_and_reset(self):
        user, pw = self.new_user()
        s = self.session(user, pw)
        for i in range(3):
            self.assertEqual(s.send(user, ['s%d@%s' % (i, REMOTE)])[1][0], 250)
        out = self.policyd.ctl('ratelimit', 'status', user).stdout
        self.assertRegex(out, r'sasl_username messages 3/3s defer  used 3/3  resets in \ds')
        self.assertIn('used 3/3', out)
        out = self.policyd.ctl('ratelimit', 'reset', user).stdout
        self.assertIn('cleared 1 counters', out)
        out = self.policyd.ctl('ratelimit', 'status', user).stdout
        self.assertIn('used 0/3  idle', out)
        self.assertEqual(s.send(user, ['after-reset@' + REMOTE])[1][0], 250)
        out = self.policyd.ctl('ratelimit', 'status', '127.0.0.1').stdout
        self.assertIn('no rate limit applies to client_address 127.0.0.0/24', out)

    def test_store_policy_overrides_for_one_user(self):
        user, pw = self.new_user()
        other, opw = self.new_user()
        pid = self.policyd.ctl('ratelimit', 'policy', 'add', 'sasl_username', 'messages',
                       '1/3s', 'defer', user).stdout.strip()
        self.addCleanup(self.policyd.ctl, 'ratelimit', 'policy', 'del', pid)
        self.assertIn(user, self.policyd.ctl('ratelimit', 'policy', 'list').stdout)
        time.sleep(1.5)  # store_refresh = 1s
        s = self.session(user, pw)
        self.assertEqual(s.send(user, ['o1@' + REMOTE])[1][0], 250)
        stage, replies = s.send(user, ['o2@' + REMOTE])
        self.assertEqual((stage, replies[0][0]), ('rcpt', 450))
        self.assertIn(b'1 messages per 3s', replies[0][1])
        s2 = self.session(other, opw)
        for i in range(2):
            self.assertEqual(s2.send(other, ['p%d@%s' % (i, REMOTE)])[1][0], 250)

    def test_sighup_reload_keeps_connection(self):
        c = self.policy_client()
        user = 'reload-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
        self.assertEqual(self.ask(c, sasl_username=user), 'action=DUNNO')
        self.addCleanup(self.policyd.reload, LIMITS, EXTRA)
        self.policyd.reload(['sasl_username messages 1/3s reject'], EXTRA)
        inst = 'r1'
        self.assertEqual(self.ask(c, sasl_username=user, instance=inst), 'action=DUNNO')
        self.assertEqual(self.ask(c, sasl_username=user, instance=inst,
                      protocol_state='END-OF-MESSAGE', recipient_count='1'),
                 'action=DUNNO')
        action = self.ask(c, sasl_username=user, instance='r2')
        self.assertTrue(action.startswith('action=550 5.7.1 rate limit: 1 messages per 3s '
                          'for ' + user + ', resets in'), action)


if __name__ == '__main__':
    unittest.main()
