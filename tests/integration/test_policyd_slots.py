"""test_policyd_slots - a hostile local client cannot stop mail by holding mailwarden-policyd's
connection slots (issue 9, item 4): silent connections are closed after first_request_timeout,
one peer holds at most max_connections_per_peer, and a newcomer replaces the longest idle
connection when every slot is taken, so real policy requests and real Postfix mail are still
answered while silent connections keep arriving.

One Store + Dovecot + policyd + Postfix for the module. The daemon has 20 slots, 10 per peer
and a 2 s first-request timeout; attackers connect from 127.0.0.2 and 127.0.0.3 (other peers
on the loopback), Postfix and the good clients from 127.0.0.1 and 127.0.0.4.
"""

import select
import smtplib
import socket
import subprocess
import threading
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN
FIRST = 2  # first_request_timeout, seconds
EXTRA = ('max_connections = 20\nmax_connections_per_peer = 10\nfirst_request_timeout = %ds\n'
         'request_timeout = 8s\nidle_timeout = 600s\n' % FIRST)


def closed(c, wait=0.0):
    """closed - the daemon closed C (EOF or reset) within WAIT seconds."""
    r, _, _ = select.select([c], [], [], wait)
    if not r:
        return False
    try:
        return c.recv(100) == b''
    except ConnectionResetError:
        return True


class Flood(threading.Thread):
    """Flood - keeps N silent connections open from address SRC, reopening each one the
    daemon closes, as fast as it can, until stopped."""

    def __init__(self, port, src, n):
        super().__init__(daemon=True)
        self.port, self.src, self.n = port, src, n
        self.stop_event = threading.Event()
        self.opened = 0
        self.socks = []

    def connect(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((self.src, 0))
        s.settimeout(5)
        s.connect(('127.0.0.1', self.port))
        self.opened += 1
        return s

    def run(self):
        while not self.stop_event.is_set():
            alive = []
            for s in self.socks:
                if closed(s):
                    s.close()
                else:
                    alive.append(s)
            self.socks = alive
            while len(self.socks) < self.n and not self.stop_event.is_set():
                try:
                    self.socks.append(self.connect())
                except OSError:
                    break
            time.sleep(0.02)

    def stop(self):
        self.stop_event.set()
        self.join(10)
        for s in self.socks:
            s.close()


# one policy request as another uid: connects, asks, prints the action
AS_OTHER_UID = r'''
import socket, sys, time
path, silent = sys.argv[1], int(sys.argv[2])
socks = []
for _ in range(silent):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    socks.append(s)
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.settimeout(5)
c.connect(path)
c.sendall(b'request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.9\n\n')
buf = b''
while not buf.endswith(b'\n\n'):
    chunk = c.recv(4096)
    if not chunk:
        break
    buf += chunk
print(buf.decode().strip())
sys.stdout.flush()
time.sleep(float(sys.argv[3]))
'''


class PolicydSlotsUnixTest(labcase.PolicydCase):
    """On a unix socket a peer is a uid (SO_PEERCRED): root's silent connections are
    capped at its share and never push out another uid's."""

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        # a long first-request timeout: the check must not race the other uid's start
        cls.policyd = cls.lab.policyd(
            cls.store, socket='unix',
            extra=EXTRA.replace('first_request_timeout = %ds' % FIRST,
                                'first_request_timeout = 30s'))

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.policyd.sock_path)
        self.addCleanup(s.close)
        return s

    def test_peers_are_uids(self):
        root = [self.connect() for _ in range(12)]
        time.sleep(0.3)
        # uid 0 holds at most 10: its two oldest made way for its own newest
        self.assertEqual([i for i, s in enumerate(root) if closed(s)], [0, 1])
        # uid postfix opens 9 silent connections and asks on a 10th: its own share, so the
        # daemon is full (20) and nothing of root's was touched
        p = subprocess.run(['runuser', '-u', 'postfix', '--', '/usr/bin/python3', '-c',
                            AS_OTHER_UID, self.policyd.sock_path, '9', '0'],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.stdout.strip(), 'action=DUNNO', p.stderr)
        self.assertEqual([i for i, s in enumerate(root) if closed(s)], [0, 1])
        log = self.policyd.log_text()
        self.assertIn('from unix uid 0', log)
        self.assertIn('from unix uid %d' % __import__('pwd').getpwnam('postfix').pw_uid, log)


class PolicydSlotsTest(labcase.PolicydCase):
    policyd_must_live = True

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.dovecot = cls.lab.dovecot(cls.store)
        # every 127/8 address may connect: the test's peers are 127.0.0.2 and .4
        cls.start_policy_path('slots-', extra=EXTRA, inet_peers='127.0.0.0/8')

    def tearDown(self):
        super().tearDown()
        time.sleep(FIRST + 0.5)  # every silent connection of this test is gone

    def connect(self, src='127.0.0.1'):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.settimeout(10)
        s.connect(('127.0.0.1', self.policyd.port))
        self.addCleanup(s.close)
        return s

    @staticmethod
    def ask(c):
        """ask - one policy request on C; the action."""
        req = ('request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.7\n'
               'sender=a@remote.example\nrecipient=b@%s\ninstance=%s\n\n'
               % (DOMAIN, uuid.uuid4().hex[:8]))
        return labcase.policy_answer(c, req.encode())

    def test_silent_connection_closed_after_first_request_timeout(self):
        t0 = time.monotonic()
        silent = self.connect()
        partial = self.connect()
        partial.sendall(b'request=smtpd_access_policy\nprotocol_state=RC')
        self.assertTrue(closed(silent, FIRST + 3), 'silent connection still open')
        took = time.monotonic() - t0
        self.assertGreater(took, FIRST - 0.5)
        self.assertLess(took, FIRST + 2)
        # a first request still being sent gets no more time than first_request_timeout
        # (request_timeout is 8 s)
        self.assertTrue(closed(partial, 2), 'half-sent first request still open')
        # a connection that has answered requests stays, idle, past the first timeout
        good = self.connect()
        self.assertEqual(self.ask(good), 'action=DUNNO')
        self.assertFalse(closed(good, FIRST + 1), 'an idle client after a request was closed')
        self.assertEqual(self.ask(good), 'action=DUNNO')

    def test_one_peer_holds_at_most_its_share(self):
        socks = [self.connect('127.0.0.2') for _ in range(15)]
        # wait (generously: a loaded machine) until policyd has seen all 15
        deadline = time.monotonic() + 10
        gone = []
        while time.monotonic() < deadline:
            gone = [i for i, s in enumerate(socks) if closed(s)]
            if len(gone) >= 5:
                break
            time.sleep(0.05)
        time.sleep(0.2)  # a sixth closure, if policyd wrongly made one, shows up here
        gone = [i for i, s in enumerate(socks) if closed(s)]
        # the cap is 10: each of the last 5 replaced the peer's longest silent one
        self.assertEqual(gone, [0, 1, 2, 3, 4])
        # another peer still gets the other 10 slots (127.0.0.4: Postfix's idle
        # connections from 127.0.0.1 may hold some of 127.0.0.1's share) ...
        good = [self.connect('127.0.0.4') for _ in range(10)]
        t0 = time.monotonic()
        for g in good:
            self.assertEqual(self.ask(g), 'action=DUNNO')
        # ... and with all 20 taken, a third peer replaces a silent connection
        self.assertEqual(self.ask(self.connect('127.0.0.3')), 'action=DUNNO')
        # answered while all slots were taken, not after an idle timeout (generous bound:
        # the machine may be loaded; a starved request would wait for a timeout)
        self.assertLess(time.monotonic() - t0, 6)  # request_timeout is 8 s
        self.assertGreaterEqual(sum(1 for s in socks[5:] if closed(s)), 1)
        for g in good:
            self.assertFalse(closed(g), 'a client that asked was closed')

    def test_flood_of_silent_connections_does_not_stop_mail(self):
        floods = [Flood(self.policyd.port, src, 40) for src in ('127.0.0.2', '127.0.0.3')]
        for f in floods:
            f.start()
            self.addCleanup(f.stop)
        deadline = time.monotonic() + 5
        while sum(len(f.socks) for f in floods) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        # a real policy request on a new connection is answered at once
        for _ in range(5):
            t0 = time.monotonic()
            self.assertEqual(self.ask(self.connect()), 'action=DUNNO')
            self.assertLess(time.monotonic() - t0, 1.5)
        # real mail through Postfix (which asks policyd at RCPT) is accepted, not 451
        t0 = time.monotonic()
        s = smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=60)
        self.addCleanup(s.close)
        s.ehlo('client.example.org')
        for i in range(3):
            code, text = s.mail('sender%d@remote.example' % i)
            self.assertEqual(code, 250, text)
            code, text = s.rcpt(self.local)
            self.assertEqual(code, 250, text)
            code, text = s.data(('From: <sender@remote.example>\r\nTo: <%s>\r\n'
                                 'Subject: slots\r\nMessage-ID: <%s@remote.example>\r\n\r\n'
                                 'body\r\n' % (self.local, uuid.uuid4().hex)).encode())
            self.assertEqual(code, 250, text)
        self.assertLess(time.monotonic() - t0, 15)
        s.quit()
        # the flood kept going the whole time (it was not simply refused once)
        self.assertGreater(sum(f.opened for f in floods), 40)


if __name__ == '__main__':
    unittest.main()
