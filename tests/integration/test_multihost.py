"""test_multihost - two mail hosts that act as one (issue 12): each host a full set of
Postfix + Dovecot + mailwarden-milter + mailwarden-policyd + mailwarden-api + nginx on its
own loopback ports and directories, both on ONE PostgreSQL store and ONE Redis (the
policyd's counters); the mail storage is shared, as a site's NFS or cluster storage would be.

  - a user created through host A's API logs in at once on host B (SMTP AUTH, IMAP) and host
    B's milter lets them send; disabled through A's API, B refuses SMTP AUTH and IMAP on the
    very next attempt (no auth cache: the samples' and the lab's auth_cache_size = 0) and B's
    milter refuses an already authenticated session within its cache_ttl (1 s here). The
    propagation times are measured and printed; the milter's is asserted against cache_ttl
    plus a generous allowance for a loaded machine.
  - a limit of N messages per hour for one user, sent through both hosts at once: the
    accepted count lies within the bound of docs/admin-guide.md ("Rate limits shared by
    several hosts"): at most N + X*N/W + 1 over a run of X seconds, and no unit lost.
  - PostgreSQL halted and resumed, then Redis killed and started (empty), while both hosts
    submit mail: every attempt is accepted or tempfailed (4xx), except SMTP AUTH while
    PostgreSQL is down, which Postfix answers 535 (its Dovecot SASL client turns Dovecot's
    temporary failure into a permanent one; IMAP shows Dovecot's [UNAVAILABLE], asserted);
    every accepted message arrives in the mailbox (read over IMAP on both hosts), both
    hosts take mail again on their own, and no daemon was restarted (same pids).

One lab for the module (setting it up takes most of the time).
"""

import collections
import imaplib
import re
import smtplib
import threading
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN
N = 20                 # the shared limit: N messages per hour per user
WINDOW = 3600
MILTER_TTL = 1         # [milter] cache_ttl of both hosts (seconds)
SLACK = 5.0            # allowance for a loaded 2-core machine running ASan builds
PREFIX = 'mw:mh:'


Attempt = collections.namedtuple('Attempt', 'host start end token outcome code text stage')


class Host:
    """Host - one mail host's daemons (attributes set by MultihostTest.start_host)."""

    def __init__(self, name):
        self.name = name

    def daemons(self):
        """daemons - (name, pid) of every daemon of the host (a restart changes one)."""
        return [('milter', self.milter.proc.pid), ('policyd', self.policyd.proc.pid),
                ('api', self.api.proc.pid),
                ('dovecot', lab_mod.read_pidfile(self.dovecot.pidfile)),
                ('postfix', lab_mod.read_pidfile(self.postfix.pidfile))]

    def alive(self):
        return [s.name for s in (self.milter, self.policyd, self.api, self.dovecot,
                                 self.postfix, self.nginx) if not s.alive()]


def outcome_of(code):
    """outcome_of - 'sent' (250), 'temp' (4xx) or 'perm' (5xx, anything else)."""
    if code == 250:
        return 'sent'
    if 400 <= code < 500:
        return 'temp'
    return 'perm'


def submit(port, user, password, rcpt, token, timeout=60):
    """submit - one message from USER (SMTP AUTH) to RCPT through Postfix on PORT, subject
    and body carrying TOKEN; returns (outcome, code, text, stage): outcome as outcome_of, or
    'error' when the connection failed or broke; STAGE the command that decided (connect,
    auth, mail, rcpt, data)."""
    stage = 'connect'
    try:
        s = smtplib.SMTP('127.0.0.1', port, timeout=timeout)
    except (OSError, smtplib.SMTPException) as e:
        return 'error', 0, repr(e), stage
    try:
        s.ehlo('client.example.org')
        stage = 'auth'
        s.login(user, password)
        stage = 'mail'
        code, text = s.mail(user)
        if code == 250:
            stage = 'rcpt'
            code, text = s.rcpt(rcpt)
            if code == 251:
                code = 250
        if code == 250:
            stage = 'data'
            code, text = s.data(('From: <%s>\r\nTo: <%s>\r\nSubject: mh %s\r\n\r\n'
                                 'token %s\r\n' % (user, rcpt, token, token)).encode())
        return outcome_of(code), code, text.decode(errors='replace'), stage
    except smtplib.SMTPResponseException as e:  # AUTH and DATA refusals raise
        return (outcome_of(e.smtp_code), e.smtp_code, e.smtp_error.decode(errors='replace'),
                stage)
    except (OSError, smtplib.SMTPException) as e:
        return 'error', 0, repr(e), stage
    finally:
        labcase.quit_quietly(s)


def imap_login(port, user, password):
    """imap_login - None when IMAP LOGIN succeeds, else the server's refusal text."""
    m = imaplib.IMAP4('127.0.0.1', port, timeout=20)
    try:
        m.login(user, password)
        return None
    except imaplib.IMAP4.error as e:
        return str(e)
    finally:
        try:
            m.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def mailbox_tokens(port, user, password):
    """mailbox_tokens - the tokens of the "mh TOKEN" subjects in USER's INBOX."""
    m = imaplib.IMAP4('127.0.0.1', port, timeout=30)
    try:
        m.login(user, password)
        m.select('INBOX', readonly=True)
        typ, data = m.fetch('1:*', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
        out = set()
        if typ != 'OK':
            return out
        for part in data:
            if isinstance(part, tuple):
                mm = re.search(rb'Subject: mh (\S+)', part[1])
                if mm:
                    out.add(mm.group(1).decode())
        return out
    finally:
        try:
            m.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


class MultihostTest(labcase.LabCase):
    @classmethod
    def start_host(cls, name):
        """start_host - a full mail host on the shared store and Redis."""
        h = Host(name)
        # every host carries the same mailwarden.conf and master.key (cls.store's files);
        # each daemon has its own directory, ports and sockets
        h.policyd = cls.lab.policyd(cls.store, name='policyd-' + name,
                                    counters=cls.redis.url + '?prefix=' + PREFIX,
                                    limits=['sasl_username messages %d/1h defer' % N])
        h.milter = cls.lab.milter(cls.store, cache_ttl='%ds' % MILTER_TTL)
        h.dovecot = cls.lab.dovecot(cls.store)
        h.postfix = cls.lab.postfix(h.dovecot, milters=[h.milter.postfix_spec],
                                    policy_services=[h.policyd.service])
        h.api = cls.lab.api(cls.store, name='api-' + name)
        h.nginx = cls.lab.nginx(fastcgi=h.api.fastcgi())
        return h

    @classmethod
    def start_lab(cls):
        cls.pg = cls.lab.postgresql()
        cls.redis = cls.lab.redis()
        cls.store = cls.lab.store(pgsql=cls.pg)
        cls.a = cls.start_host('a')
        cls.b = cls.start_host('b')
        cls.hosts = (cls.a, cls.b)
        cls.admin = 'admin-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
        cls.admin_pw = 'Admin-pass-' + uuid.uuid4().hex[:8]
        cls.store.add_user(cls.admin, cls.admin_pw, role='admin')

    def tearDown(self):
        for h in self.hosts:
            self.assertEqual(h.milter.sanitizer_report(), '', 'milter-%s' % h.name)
            self.assertEqual(h.policyd.sanitizer_errors(), '', 'policyd-%s' % h.name)
            self.assertEqual(h.api.sanitizer_report(), '', 'api-%s' % h.name)
            self.assertEqual(h.alive(), [], 'host %s: daemons down' % h.name)

    # -- helpers ---------------------------------------------------------------------------

    def api(self, host, method, path, token=None, body=None):
        return labcase.call(host.nginx.port, method, path, token=token, body=body)

    def admin_token(self, host):
        a = self.api(host, 'POST', '/api/v1/sessions',
                     body={'username': self.admin, 'password': self.admin_pw})
        self.assertEqual(a.status, 201, a)
        return a.json['token']

    def new_user(self, name):
        """new_user - (user, password) made through the store, allowed to send as itself."""
        user = '%s-%s@%s' % (name, uuid.uuid4().hex[:6], DOMAIN)
        pw = 'Mh-pass-' + uuid.uuid4().hex
        self.store.add_user(user, pw)
        self.store.allow_from(user, user)
        return user, pw

    # -- credentials -----------------------------------------------------------------------

    def until_refused(self, attempt, t0, limit):
        """until_refused - run ATTEMPT (returns a refusal or None) until it refuses or LIMIT
        seconds after T0 have passed; returns (seconds from T0 to the start of the refused
        attempt or None, attempts made, the refusal)."""
        n = 0
        while time.monotonic() - t0 < limit:
            start = time.monotonic() - t0
            n += 1
            refusal = attempt()
            if refusal is not None:
                return start, n, refusal
            time.sleep(0.02)
        return None, n, None

    def test_credential_created_and_disabled_on_a_honoured_by_b(self):
        token = self.admin_token(self.a)
        sink, _ = self.new_user('sink')
        user = 'cred-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN)
        pw = 'Cred-pass-' + uuid.uuid4().hex
        a = self.api(self.a, 'POST', '/api/v1/users', token=token,
                     body={'username': user, 'password': pw, 'allowed_from': [user]})
        self.assertEqual(a.status, 201, a)
        created = time.monotonic()
        # API sessions live in the store too: A's token works on B's API
        a = self.api(self.b, 'GET', '/api/v1/users/' + user, token=token)
        self.assertEqual(a.status, 200, a)
        self.assertEqual(a.json['username'], user)
        # at once on host B: the first attempt of each works
        self.assertTrue(labcase.smtp_login(self.b.postfix.smtp_port, user, pw))
        self.assertIsNone(imap_login(self.b.dovecot.imap_port, user, pw))
        got = submit(self.b.postfix.smtp_port, user, pw, sink, 'created-' + user)
        self.assertEqual(got[0], 'sent', got)
        print('\ncreated through A\'s API: the first SMTP AUTH, IMAP LOGIN and message '
              '(milter) on B worked; all three done %.3f s after A answered'
              % (time.monotonic() - created))

        # a session on B that authenticated before the disable, its milter entry cached
        s = smtplib.SMTP('127.0.0.1', self.b.postfix.smtp_port, timeout=30)
        self.addCleanup(labcase.quit_quietly, s)
        s.ehlo('client.example.org')
        s.login(user, pw)
        code, text = s.mail(user)
        self.assertEqual(code, 250, text)
        s.rset()

        def smtp_auth():
            if labcase.smtp_login(self.b.postfix.smtp_port, user, pw):
                return None
            return '535'

        def imap():
            return imap_login(self.b.dovecot.imap_port, user, pw)

        def milter():
            code, text = s.mail(user)
            s.rset()
            return None if code == 250 else '%d %s' % (code, text.decode(errors='replace'))

        a = self.api(self.a, 'PATCH', '/api/v1/users/' + user, token=token,
                     body={'status': 'disabled'})
        self.assertEqual(a.status, 200, a)
        t0 = time.monotonic()
        limit = MILTER_TTL + SLACK + 10
        seen = {}
        threads = [threading.Thread(target=lambda k=k, f=f: seen.__setitem__(
            k, self.until_refused(f, t0, limit)))
            for k, f in (('smtp', smtp_auth), ('imap', imap), ('milter', milter))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(limit + 60)
        print('disabled through A\'s API; refused by B (seconds after A answered to the start '
              'of the first refused attempt, attempts): ' + ', '.join(
                  '%s %s (%d)' % (k, 'never' if seen[k][0] is None else '%.3f' % seen[k][0],
                                  seen[k][1]) for k in ('smtp', 'imap', 'milter'))
              + '; milter cache_ttl %d s; target 1 s: %s' % (
                  MILTER_TTL, 'met' if all(v[0] is not None and v[0] <= 1.0
                                           for v in seen.values()) else 'NOT met'))
        # SMTP AUTH and IMAP read the store on every login (no auth cache): the very first
        # attempt after the change is refused
        self.assertEqual(seen['smtp'][1:], (1, '535'))
        self.assertEqual(seen['imap'][1], 1)
        self.assertIn('AUTHENTICATIONFAILED', seen['imap'][2])
        # the milter: within its cache_ttl (the documented bound for a changed user)
        self.assertIsNotNone(seen['milter'][0], 'host B\'s milter never refused the user')
        self.assertLessEqual(seen['milter'][0], MILTER_TTL + SLACK)
        self.assertRegex(seen['milter'][2], r'^550 5\.7\.1 .*is not active')
        # and a new submission on B is refused at AUTH for good
        got = submit(self.b.postfix.smtp_port, user, pw, sink, 'disabled-' + user)
        self.assertEqual(got[:2], ('perm', 535), got)

    def test_app_password_created_and_deleted_on_a_honoured_by_b(self):
        token = self.admin_token(self.a)
        user, _ = self.new_user('apppw')
        a = self.api(self.a, 'POST', '/api/v1/users/%s/app-passwords' % user, token=token,
                     body={'name': 'phone'})
        self.assertEqual(a.status, 201, a)
        secret, ident = a.json['password'], a.json['id']
        # the first attempt on B works, for both protocols
        self.assertTrue(labcase.smtp_login(self.b.postfix.smtp_port, user, secret))
        self.assertIsNone(imap_login(self.b.dovecot.imap_port, user, secret))
        a = self.api(self.a, 'DELETE', '/api/v1/users/%s/app-passwords/%d' % (user, ident),
                     token=token)
        self.assertEqual(a.status, 204, a)
        t0 = time.monotonic()
        # and the first attempt on B after the delete is refused
        self.assertFalse(labcase.smtp_login(self.b.postfix.smtp_port, user, secret))
        self.assertIn('AUTHENTICATIONFAILED', imap_login(self.b.dovecot.imap_port, user,
                                                         secret))
        print('\napp password deleted through A\'s API: B\'s SMTP AUTH and IMAP refused the '
              'first attempts, made right after A answered (%.3f s for both, Dovecot\'s '
              'failure delay included)' % (time.monotonic() - t0))

    # -- shared rate limit -----------------------------------------------------------------

    def send_many(self, jobs):
        """send_many - JOBS: [(host, user, password, rcpt, tokens)], each list sent in its own
        thread, all at once; returns ({(host name, token): (outcome, code, text)}, seconds)."""
        results = {}
        lock = threading.Lock()

        def run(host, user, pw, rcpt, tokens):
            for tok in tokens:
                r = submit(host.postfix.smtp_port, user, pw, rcpt, tok)
                with lock:
                    results[(host.name, tok)] = r
        threads = [threading.Thread(target=run, args=j) for j in jobs]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        return results, time.monotonic() - t0

    def test_limit_shared_by_both_hosts(self):
        user, pw = self.new_user('limit')
        rcpt = 'dest@remote.example'  # queued, never delivered: only the count matters
        per_host = N * 3 // 4 + 2      # 17 each: 34 asked for a limit of 20
        jobs = [(h, user, pw, rcpt, ['%s%d' % (h.name, i) for i in range(per_host)])
                for h in self.hosts]
        results, took = self.send_many(jobs)
        sent = {h.name: sum(1 for (name, _), r in results.items()
                            if name == h.name and r[0] == 'sent') for h in self.hosts}
        others = [r for r in results.values() if r[0] != 'sent']
        total = sum(sent.values())
        bound = N + int(took * N / WINDOW) + 1
        print('\n%d/h for one user, %d asked through 2 hosts at once in %.1f s: accepted %d '
              '(A %d, B %d), bound %d, error %+d' % (N, 2 * per_host, took, total,
                                                      sent['a'], sent['b'], bound, total - N))
        self.assertEqual(len(results), 2 * per_host)
        for r in others:  # every refusal is the shared limit's deferral
            self.assertEqual(r[1], 450, r)
            self.assertIn('rate limit: %d messages per 1h' % N, r[2])
        self.assertLessEqual(total, bound)
        self.assertGreaterEqual(total, N - 1)  # no unit lost: every lease was spent
        self.assertGreater(min(sent.values()), 0)  # both hosts took part
        # counted in the one Redis, not in a degraded host's memory
        self.assertIn(user, self.redis.cli('KEYS', PREFIX + '*'))
        for h in self.hosts:
            self.assertNotIn('degraded', h.policyd.log_text())

    # -- outages ---------------------------------------------------------------------------

    def test_postgresql_and_redis_restarted_mid_run(self):
        sink, sink_pw = self.new_user('sink')
        senders = [self.new_user('out%d' % i) for i in range(8)]  # 8 x N/h: room enough
        pids = {h.name: h.daemons() for h in self.hosts}
        token = self.admin_token(self.b)
        log = []  # Attempt per message tried
        lock = threading.Lock()
        stop = threading.Event()

        def run(host, offset):
            i = offset
            while not stop.is_set():
                user, pw = senders[i % len(senders)]
                tok = '%s-%d-%s' % (host.name, i, uuid.uuid4().hex[:6])
                start = time.monotonic()
                r = submit(host.postfix.smtp_port, user, pw, sink, tok)
                with lock:
                    log.append(Attempt(host.name, start, time.monotonic(), tok, *r))
                i += 1
                time.sleep(0.2)

        def sent_after(t, runs):
            """the hosts whose last RUNS attempts started after T were all accepted"""
            with lock:
                out = set()
                for h in self.hosts:
                    last = [e for e in log if e.host == h.name and e.start > t][-runs:]
                    if len(last) == runs and all(e.outcome == 'sent' for e in last):
                        out.add(h.name)
                return out

        def wait_both(t, what, runs=1, timeout=90):
            lab_mod.wait_until(lambda: sent_after(t, runs) == {'a', 'b'}, timeout,
                               'both hosts to accept mail again ' + what)
            return time.monotonic()

        threads = [threading.Thread(target=run, args=(h, 4 * k))
                   for k, h in enumerate(self.hosts)]
        for t in threads:
            t.start()
        try:
            wait_both(time.monotonic(), 'at the start')
            # PostgreSQL goes away and comes back
            t_down = time.monotonic()
            self.pg.halt()
            time.sleep(1)
            a = self.api(self.b, 'GET', '/api/v1/users', token=token)
            self.assertEqual(a.status, 503, a)
            # Dovecot answers a login it cannot check with a temporary failure
            self.assertIn('UNAVAILABLE', imap_login(self.b.dovecot.imap_port, sink, sink_pw))
            time.sleep(1)
            t_up = time.monotonic()
            self.pg.resume()
            # back: three messages in a row accepted by each host (every Dovecot auth
            # process has its own connection and reconnects on its own)
            t_pg_back = wait_both(t_up, 'after PostgreSQL returned', runs=3)
            lab_mod.wait_until(
                lambda: self.api(self.b, 'GET', '/api/v1/users', token=token).status == 200,
                30, 'the API of host B to answer again')
            # Redis dies and comes back empty
            t_kill = time.monotonic()
            self.redis.kill()
            time.sleep(1.5)
            t_redis = time.monotonic()
            self.redis.start()
            for h in self.hosts:
                lab_mod.wait_until(
                    lambda: 'event=recovered component=policyd_counters' in h.policyd.log_text(), 30,
                    'policyd-%s to log recovered' % h.name)
            t_redis_back = wait_both(t_redis, 'after Redis returned')
        finally:
            stop.set()
            for t in threads:
                t.join(120)

        def kinds(entries):
            out = {}
            for e in entries:
                k = '%s %d at %s' % (e.outcome, e.code, e.stage)
                out[k] = out.get(k, 0) + 1
            return ', '.join('%s: %d' % kv for kv in sorted(out.items())) or 'none'
        outage = [e for e in log if e.end >= t_down and e.start <= t_pg_back]
        redis_out = [e for e in log if e.end >= t_kill and e.start <= t_redis_back]
        print('\n%d attempts in all (%s)\nduring the PostgreSQL outage %d (%s)\n'
              'during the Redis outage %d (%s)\n'
              'service back %.1f s after PostgreSQL, %.1f s after Redis returned'
              % (len(log), kinds(log), len(outage), kinds(outage), len(redis_out),
                 kinds(redis_out), t_pg_back - t_up, t_redis_back - t_redis))
        # accepted or tempfailed; the one exception: Postfix's Dovecot SASL client turns
        # every failed AUTH into 535, also Dovecot's temporary failure (code=temp_fail)
        # while the store is unreachable (Postfix 3.7: 454 only when the auth server's
        # connection is lost). Such a 535 comes at AUTH (no message was accepted, the
        # client keeps it) and only during the outage.
        for e in log:
            if e.outcome == 'sent' or e.outcome == 'temp':
                continue
            self.assertEqual((e.outcome, e.code, e.stage), ('perm', 535, 'auth'), e)
            self.assertIn(e, outage)
        self.assertTrue(any(e.outcome != 'sent' for e in outage), outage)
        self.assertIn('degraded', self.a.policyd.log_text() + self.b.policyd.log_text())
        # no daemon was restarted
        self.assertEqual({h.name: h.daemons() for h in self.hosts}, pids)
        # every accepted message is in the mailbox, read over IMAP (on either host)
        want = {e.token for e in log if e.outcome == 'sent'}
        deadline = time.monotonic() + 120
        have = set()
        while time.monotonic() < deadline:
            have = mailbox_tokens(self.a.dovecot.imap_port, sink, sink_pw)
            if want <= have:
                break
            for h in self.hosts:  # deferred during the outage: retry now
                h.postfix.flush()
            time.sleep(2)
        self.assertEqual(sorted(want - have), [], 'accepted but not delivered')
        self.assertEqual(mailbox_tokens(self.b.dovecot.imap_port, sink, sink_pw), have)
        print('all %d accepted messages are in the mailbox' % len(want))


if __name__ == '__main__':
    unittest.main()
