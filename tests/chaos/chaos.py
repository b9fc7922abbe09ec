#!/usr/bin/env python3
"""chaos - never lose mail: a steady stream of mail through the quickstart host while its
parts are killed, starved and cut off (issue 17).

Usage: tests/chaos/run [--short] [--rate N] [--messages N] [--rounds N] [--hold S]
                       [--faults NAME,...] [--builddir DIR] [--keep]

The host is scripts/quickstart's (its supervisor on) in a directory of its own, started with
--redis (policyd counts in Redis) and --dns (an NSD serves the inbound sender's domain; the
milter checks SPF/DMARC through it), with the store's directory on a small tmpfs of its own.
A client sends a steady stream: authenticated submission by the demo user and
unauthenticated inbound mail (from 192.0.2.10 by XCLIENT) for local users, each message
with a unique Message-ID, at --rate messages a minute, bounded by --messages and by time.
A 4xx (or no answer before DATA) is retried with a backoff, as an MTA would; a 5xx is a
refusal. While it runs the faults come in turn (--rounds times):

  milter, policyd, redis, api, nginx, dovecot   kill -9; the quickstart supervisor brings
        it back, or (policyd, nginx) `scripts/quickstart start` run again does
  dns-kill      kill -9 NSD (the supervisor restarts it)
  dns-timeout   SIGSTOP NSD for --hold seconds (every lookup times out), then SIGCONT
  store-full    the store's file system filled to the last byte for --hold seconds
  store-ro      the store's file system remounted read-only for --hold seconds
  (postgresql   kill -9 the PostgreSQL server: POSTGRESQL_FAULTS, once the quickstart host
                can run on PostgreSQL)

At the end the Postfix queue is flushed and drained, and every mailbox of every recipient is
read over IMAP. Printed: sent / accepted / delivered / duplicated / tempfailed / rejected /
lost, and for each fault how long mail (or the API) was refused: the time from the fault to
the first message accepted after it, per kind, and from the recovery to that message.
Exit status 1 unless lost, duplicated, rejected and never-accepted are all 0 and every
fault recovered. run_chaos() is the same for tests (tests/integration/test_chaos.py).
"""

import argparse
import heapq
import http.client
import imaplib
import os
import random
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, 'scripts'))

import mailwarden_lab as L  # noqa: E402

QUICKSTART = os.path.join(TOP, 'scripts', 'quickstart')
RECIPIENTS = ['chaos-a@' + L.DOMAIN, 'chaos-b@' + L.DOMAIN]
STORE_FS_SIZE = '32m'
KINDS = ('submission', 'inbound')


QS = L.load_quickstart()


def log(msg):
    print('chaos: %s' % msg, flush=True)


# ---------------------------------------------------------------------------------------------
# the host

class Host:
    """Host - a quickstart host (--redis --dns, supervisor on) whose store directory is a
    tmpfs of its own; recipients with known passwords."""

    def __init__(self, builddir, keep=False):
        self.builddir = os.path.abspath(builddir)
        self.root = L.make_root('mwchaos-')
        self.state = os.path.join(self.root, 'state')
        self.keep = keep
        self.mounted = False
        self.passwords = {}

    def qs(self, *args, check=True):
        p = subprocess.run([sys.executable, QUICKSTART] + list(args) + [
            '--state', self.state, '--builddir', self.builddir], capture_output=True,
            text=True, timeout=600, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise L.LabError('quickstart %s failed:\n%s' % (' '.join(args), p.stderr[-4000:]))
        return p

    def start(self):
        self.qs('start', '--redis', '--dns', '--limit', 'sasl_username messages 1000000/1h defer')
        # the store's directory onto a small file system of its own (filled / made read-only
        # by the store faults): stop, copy the store onto a tmpfs mounted there, start again
        self.qs('stop')
        self.stack = QS.load_stack(self.state)
        data = self.stack.store.data
        keep = data + '.copy'
        st = os.stat(data)
        owners = {n: os.stat(os.path.join(data, n)) for n in os.listdir(data)}
        shutil.copytree(data, keep, symlinks=True)
        p = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s,mode=2770' % STORE_FS_SIZE,
                            'mw-chaos-store', data], capture_output=True, text=True)
        if p.returncode != 0:
            raise L.LabError('cannot mount a tmpfs on the store directory (run as root): %s'
                             % p.stderr)
        self.mounted = True
        os.chown(data, st.st_uid, st.st_gid)
        os.chmod(data, st.st_mode & 0o7777)
        for name in os.listdir(keep):
            shutil.copy2(os.path.join(keep, name), os.path.join(data, name))
            os.chown(os.path.join(data, name), owners[name].st_uid, owners[name].st_gid)
        shutil.rmtree(keep)
        p = self.qs('start')
        if 'restarted:' not in p.stderr:
            raise L.LabError('quickstart start did not restart the host:\n' + p.stderr[-2000:])
        self.stack = QS.load_stack(self.state)
        self.env = self.read_env()
        self.passwords[self.env['MW_DEMO_USER']] = self.env['MW_DEMO_PASSWORD']
        for user in RECIPIENTS:
            self.passwords[user] = self.stack.store.add_user(user, description='chaos')
        self.smtp_port = int(self.env['MW_SMTP_PORT'])
        self.imap_port = int(self.env['MW_IMAP_PORT'])
        self.api_port = int(self.env['MW_API_PORT'])

    def read_env(self):
        import shlex
        env = {}
        with open(os.path.join(self.state, 'env')) as f:
            for line in f:
                if '=' in line and not line.startswith('#'):
                    k, v = line.rstrip('\n').split('=', 1)
                    env[k] = shlex.split(v)[0] if v else ''
        return env

    def unit(self, name):
        for u in self.stack.units():
            if u.name == name:
                return u
        raise KeyError(name)

    def pid(self, name):
        pid = self.unit(name).pid()
        if pid is None:
            raise L.LabError('%s is not running' % name)
        return pid

    @property
    def store_dir(self):
        return self.stack.store.data

    def postqueue(self, *args):
        return subprocess.run(['postqueue', '-c', self.stack.postfix.config_dir] + list(args),
                              capture_output=True, text=True, timeout=60)

    def queue_empty(self):
        p = self.postqueue('-p')
        return 'Mail queue is empty' in p.stdout

    def api_up(self):
        try:
            c = http.client.HTTPConnection('127.0.0.1', self.api_port, timeout=3)
            c.request('GET', '/api/v1/users')
            return c.getresponse().status == 401
        except (OSError, http.client.HTTPException):
            return False

    def supervisor_log(self):
        try:
            with open(os.path.join(self.state, 'supervisor.log')) as f:
                return f.read()
        except OSError:
            return ''

    def stop(self):
        errors = []
        if hasattr(self, 'stack'):
            p = self.qs('stop', check=False)
            if p.returncode != 0:
                errors.append(p.stderr[-1000:])
        if self.mounted:
            data = os.path.join(self.state, 'lab', 'store', 'data')
            subprocess.run(['mount', '-o', 'remount,rw', data], capture_output=True)
            p = subprocess.run(['umount', data], capture_output=True, text=True)
            if p.returncode != 0:
                subprocess.run(['umount', '-l', data], capture_output=True)
            self.mounted = False
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            log('kept %s' % self.root)
        return errors


# ---------------------------------------------------------------------------------------------
# the client

class Message:
    __slots__ = ('n', 'kind', 'rcpt', 'msgid', 'attempts', 'accepted_at', 'uncertain',
                 'refusal', 'next_delay')

    def __init__(self, n, kind, rcpt, run_id):
        self.n = n
        self.kind = kind
        self.rcpt = rcpt
        self.msgid = 'chaos.%d.%s@chaos.test' % (n, run_id)
        self.attempts = 0
        self.accepted_at = None
        self.uncertain = False
        self.refusal = None
        self.next_delay = 1.0


class Client:
    """Client - the stream: a generator at RATE a minute up to COUNT messages (or until
    stop_generating), WORKERS threads sending due messages, retries with a backoff."""

    def __init__(self, host, rate, count, workers=3):
        self.host = host
        self.rate = rate
        self.count = count
        self.workers = workers
        self.run_id = '%x' % random.getrandbits(40)
        self.lock = threading.Lock()
        self.queue = []		# (due, seq, Message)
        self.seq = 0
        self.messages = []
        self.in_flight = 0
        self.generating = True
        self.stopping = False
        self.tempfailed = 0	# attempts answered 4xx or not answered
        self.tempfail_times = []	# attempt start time of each
        self.accepts = []	# (attempt start, reply time, kind) of each accepted attempt
        self.replies = {}	# 'CODE text' of refusals -> count
        self.threads = []

    def start(self):
        t = threading.Thread(target=self._generate, daemon=True)
        t.start()
        self.threads.append(t)
        for _ in range(self.workers):
            t = threading.Thread(target=self._work, daemon=True)
            t.start()
            self.threads.append(t)

    def _push(self, due, msg):
        with self.lock:
            self.seq += 1
            heapq.heappush(self.queue, (due, self.seq, msg))

    def _generate(self):
        interval = 60.0 / self.rate
        t = time.monotonic()
        users = [self.host.env['MW_DEMO_USER']] + RECIPIENTS
        n = 0
        while self.generating and n < self.count:
            kind = KINDS[n % 2]
            rcpt = users[n % 3] if kind == 'submission' else RECIPIENTS[n % 2]
            msg = Message(n, kind, rcpt, self.run_id)
            with self.lock:
                self.messages.append(msg)
            self._push(time.monotonic(), msg)
            n += 1
            t += interval
            time.sleep(max(0.0, t - time.monotonic()))
        self.generating = False

    def _work(self):
        while not self.stopping:
            msg = None
            with self.lock:
                if self.queue and self.queue[0][0] <= time.monotonic():
                    msg = heapq.heappop(self.queue)[2]
                    self.in_flight += 1
            if msg is None:
                time.sleep(0.05)
                continue
            started = time.monotonic()
            result, code, text = self.attempt(msg)
            with self.lock:
                self.in_flight -= 1
                msg.attempts += 1
                if result == 'ok':
                    msg.accepted_at = started
                    self.accepts.append((started, time.monotonic(), msg.kind))
                    continue
                key = '%s %s' % (code, re.sub(r'[0-9A-F]{6,}', 'ID', text)[:90])
                self.replies[key] = self.replies.get(key, 0) + 1
                if result == 'perm':
                    msg.refusal = '%s %s' % (code, text)
                    continue
                self.tempfailed += 1
                self.tempfail_times.append(started)
                if result == 'unknown':
                    msg.uncertain = True
            delay = msg.next_delay
            msg.next_delay = min(msg.next_delay * 2, 8.0)
            self._push(time.monotonic() + delay, msg)

    def body(self, msg, sender):
        return ('From: %s\r\nTo: %s\r\nSubject: chaos %d\r\nMessage-ID: <%s>\r\n'
                'Date: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n'
                '\r\nChaos message %d of run %s (%s).\r\nThe quick brown fox jumps over the '
                'lazy dog.\r\n' % (sender, msg.rcpt, msg.n, msg.msgid,
                                   time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime()),
                                   msg.n, self.run_id, msg.kind))

    def attempt(self, msg):
        """attempt - one SMTP transaction: ('ok'|'temp'|'perm'|'unknown', code, text);
        'unknown' when the connection broke after the message was sent, before the reply."""
        user = self.host.env['MW_DEMO_USER']
        sent_data = False
        try:
            with smtplib.SMTP('127.0.0.1', self.host.smtp_port, timeout=60) as s:
                if msg.kind == 'submission':
                    s.ehlo('client.chaos.test')
                    s.login(user, self.host.passwords[user])
                    sender = user
                else:
                    s.ehlo('mx.%s' % QS.CHAOS_DOMAIN)
                    code, resp = s.docmd('XCLIENT', 'ADDR=%s NAME=[UNAVAILABLE] HELO=mx.%s'
                                         % (QS.CHAOS_CLIENT, QS.CHAOS_DOMAIN))
                    if code != 220:
                        return self._classify(code, resp)
                    s.ehlo_resp = None
                    s.esmtp_features = {}
                    s.ehlo('mx.%s' % QS.CHAOS_DOMAIN)
                    # a name of its own per message: its SPF record (a wildcard) is looked up
                    # for this message, never answered from a resolver's cache
                    sender = 'news@m%d.%s' % (msg.n, QS.CHAOS_DOMAIN)
                code, resp = s.mail(sender)
                if code != 250:
                    return self._classify(code, resp)
                code, resp = s.rcpt(msg.rcpt)
                if code not in (250, 251):
                    return self._classify(code, resp)
                sent_data = True
                code, resp = s.data(self.body(msg, sender).encode())
                if code != 250:
                    return self._classify(code, resp)
                return 'ok', code, ''
        except smtplib.SMTPResponseException as e:
            return self._classify(e.smtp_code, e.smtp_error)
        except (smtplib.SMTPException, OSError) as e:
            return ('unknown' if sent_data else 'temp'), 0, 'no answer: %s' % e

    @staticmethod
    def _classify(code, resp):
        text = resp.decode(errors='replace') if isinstance(resp, bytes) else str(resp)
        return ('temp' if 400 <= code < 500 else 'perm'), code, text

    def first_accept_after(self, t, kind=None):
        """first_accept_after - when the first attempt begun at T or later was accepted."""
        with self.lock:
            times = [end for start, end, k in self.accepts
                     if start >= t and (kind is None or k == kind)]
        return min(times) if times else None

    def tempfails_between(self, t1, t2):
        with self.lock:
            return sum(1 for t in self.tempfail_times if t1 <= t <= t2)

    def pending(self):
        with self.lock:
            return len(self.queue) + self.in_flight

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(70)


# ---------------------------------------------------------------------------------------------
# faults

class Fault:
    """Fault - NAME, INJECT(host) and RECOVER(host) (None: the host recovers by itself),
    HOLD: seconds between them; MAIL: whether mail is measured (else the API). UNIT: the
    daemon a kill takes down: recovery is when it serves again under a new pid."""

    def __init__(self, name, inject, recover=None, hold=0, mail=True, how='', unit=None):
        self.name = name
        self.inject = inject
        self.recover = recover
        self.hold = hold
        self.mail = mail
        self.how = how
        self.unit = unit


def kill9(name):
    """kill9 - kill -9 the main process of unit NAME (its children are left to notice)."""
    def inject(host):
        os.kill(host.pid(name), signal.SIGKILL)
    return inject


def start_again(host):
    p = host.qs('start')
    if 'restarted:' not in p.stderr and 'already running' not in p.stderr:
        raise L.LabError('quickstart start said nothing of a restart:\n' + p.stderr[-1500:])


def signal_unit(name, sig):
    """signal_unit - SIG to every process of unit NAME (NSD answers from a child: stopping
    only its main process changes nothing)."""
    def act(host):
        u = host.unit(name)
        pids = set(QS.host_processes([u.svc.dir], host.builddir, u.ports)) | {host.pid(name)}
        for pid in pids:
            os.kill(pid, sig)
    return act


def fill_store(host):
    """fill_store - a file taking every free byte of the store's file system."""
    path = os.path.join(host.store_dir, 'chaos-filler')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            while True:
                try:
                    if os.write(fd, b'\0' * size) <= 0:
                        break
                except OSError:
                    break
    finally:
        os.close(fd)
    st = os.statvfs(host.store_dir)
    if st.f_bavail * st.f_frsize > 64 * 1024:
        raise L.LabError('the store file system did not fill')


def unfill_store(host):
    os.unlink(os.path.join(host.store_dir, 'chaos-filler'))


def store_readonly(host):
    """store_readonly - a read-only bind mount over the store directory: every open from now
    on sees a read-only file system (a tmpfs cannot be remounted read-only while daemons hold
    the database open for writing; their open descriptors keep the old mount)."""
    d = host.store_dir
    subprocess.run(['mount', '--bind', d, d], check=True, capture_output=True)
    subprocess.run(['mount', '-o', 'remount,bind,ro', d], check=True, capture_output=True)


def store_writable(host):
    subprocess.run(['umount', host.store_dir], check=True, capture_output=True)


def fault_table(hold):
    """fault_table - every fault, in the order they come."""
    return [
        Fault('milter', kill9('milter'), unit='milter', how='kill -9, supervisor restarts'),
        Fault('policyd', kill9('policyd'), start_again, hold=1, unit='policyd',
              how='kill -9, quickstart start again'),
        Fault('redis', kill9('redis'), unit='redis', how='kill -9, supervisor restarts'),
        Fault('api', kill9('api'), unit='api', mail=False, how='kill -9, supervisor restarts'),
        Fault('nginx', kill9('nginx'), start_again, hold=1, mail=False, unit='nginx',
              how='kill -9, quickstart start again'),
        Fault('dovecot', kill9('dovecot'), unit='dovecot', how='kill -9, supervisor restarts'),
        Fault('dns-kill', kill9('dns'), unit='dns', how='kill -9 NSD, supervisor restarts'),
        Fault('dns-timeout', signal_unit('dns', signal.SIGSTOP), signal_unit('dns', signal.SIGCONT),
              hold=hold, how='SIGSTOP NSD %ds (lookups time out), SIGCONT' % hold),
        Fault('store-full', fill_store, unfill_store, hold=hold,
              how='store file system full for %ds' % hold),
        Fault('store-ro', store_readonly, store_writable, hold=hold,
              how='store file system read-only for %ds' % hold),
    ] + POSTGRESQL_FAULTS


# The PostgreSQL backend (issue 12) is built by another helper: once the quickstart host can
# run on it, a Fault('postgresql', kill9('postgresql'), ...) goes here (and its unit into
# quickstart's Stack.units()).
POSTGRESQL_FAULTS = []


# ---------------------------------------------------------------------------------------------
# the run

def imap_count(host, counts):
    """imap_count - add each Message-ID found in every mailbox of every recipient to COUNTS."""
    for user, pw in host.passwords.items():
        m = imaplib.IMAP4('127.0.0.1', host.imap_port, timeout=60)
        try:
            m.login(user, pw)
            typ, boxes = m.list()
            names = []
            for b in boxes or []:
                line = b.decode() if isinstance(b, bytes) else str(b)
                mm = re.match(r'\(.*?\) (?:"[^"]*"|NIL) (.*)$', line)
                if mm:
                    names.append(mm.group(1))
            for name in names:
                typ, data = m.select(name, readonly=True)
                if typ != 'OK' or int(data[0]) == 0:
                    continue
                typ, data = m.fetch('1:*', '(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
                for item in data:
                    if isinstance(item, tuple):
                        mm = re.search(rb'<([^>]+)>', item[1])
                        if mm:
                            key = mm.group(1).decode()
                            counts[key] = counts.get(key, 0) + 1
        finally:
            try:
                m.logout()
            except Exception:
                pass


def run_chaos(builddir, rate=240, count=100000, rounds=1, hold=8, faults=None, keep=False,
              warmup=5.0, settle=2.0, recover_timeout=90.0, drain_timeout=180.0, out=log):
    """run_chaos - the whole run; returns a dict of the results (see main for the keys)."""
    host = Host(builddir, keep=keep)
    res = {'faults': [], 'problems': []}
    client = None
    try:
        out('starting the quickstart host under %s' % host.root)
        host.start()
        table = [f for f in fault_table(hold) if faults is None or f.name in faults]
        client = Client(host, rate, count)
        client.start()
        t0 = time.monotonic()
        time.sleep(warmup)
        for rnd in range(rounds):
            for f in table:
                if not client.generating:
                    res['problems'].append('the stream ended before fault %s (raise --messages)'
                                           % f.name)
                    break
                old_pid = host.pid(f.unit) if f.unit else None
                ti = time.monotonic()
                f.inject(host)
                if f.hold:
                    time.sleep(f.hold)
                tr = time.monotonic()
                if f.recover:
                    f.recover(host)
                    tr = time.monotonic()
                rec = {'name': f.name, 'how': f.how, 'round': rnd + 1}
                deadline = time.monotonic() + recover_timeout
                if f.unit:
                    # recovered: the daemon serves again, a new process
                    u = host.unit(f.unit)
                    while time.monotonic() < deadline:
                        pid = u.pid()
                        if pid not in (None, old_pid) and u.ready():
                            break
                        time.sleep(0.1)
                    tr = time.monotonic()
                    rec['restarted_after'] = tr - ti
                if f.mail:
                    firsts = {}
                    while time.monotonic() < deadline:
                        for k in KINDS:
                            if k not in firsts:
                                a = client.first_accept_after(max(tr, ti + 0.01), k)
                                if a is not None:
                                    firsts[k] = a
                        if len(firsts) == len(KINDS):
                            break
                        time.sleep(0.1)
                    rec['refused'] = {k: (client.first_accept_after(ti, k) or deadline) - ti
                                      for k in KINDS}
                    rec['after_recovery'] = {k: (firsts[k] - tr) if k in firsts else None
                                             for k in KINDS}
                    ok = len(firsts) == len(KINDS)
                else:
                    up = None
                    while time.monotonic() < deadline:
                        if host.api_up():
                            up = time.monotonic()
                            break
                        time.sleep(0.1)
                    rec['api_down'] = (up - ti) if up else None
                    rec['after_recovery'] = {'api': (up - tr) if up else None}
                    ok = up is not None
                rec['recovered'] = ok
                rec['tempfailed'] = client.tempfails_between(ti, time.monotonic())
                if not ok:
                    res['problems'].append('%s: no recovery within %.0fs' % (f.name,
                                                                           recover_timeout))
                res['faults'].append(rec)
                out(describe_fault(rec))
                time.sleep(settle)
        res['fault_seconds'] = time.monotonic() - t0
        client.generating = False
        # every message that was refused is retried until accepted (or the drain ends)
        deadline = time.monotonic() + drain_timeout
        while client.pending() and time.monotonic() < deadline:
            time.sleep(0.5)
        client.stop()
        # what Postfix accepted is delivered: flush the queue and wait for it to drain
        while time.monotonic() < deadline:
            host.postqueue('-f')
            if host.queue_empty():
                break
            time.sleep(2)
        if not host.queue_empty():
            res['problems'].append('the Postfix queue did not drain:\n' +
                                   host.postqueue('-p').stdout[-2000:])
        accepted = [m for m in client.messages if m.accepted_at is not None]
        counts = {}
        for _ in range(20):	# the last deliveries may still be written
            counts = {}
            imap_count(host, counts)
            if all(counts.get(m.msgid) for m in accepted):
                break
            time.sleep(1)
        ours = {m.msgid for m in client.messages}
        res.update({
            'sent': len(client.messages),
            'accepted': len(accepted),
            'delivered': sum(1 for m in accepted if counts.get(m.msgid, 0) >= 1),
            'duplicated': sum(1 for m in client.messages if counts.get(m.msgid, 0) > 1),
            'tempfailed': client.tempfailed,
            'rejected': sum(1 for m in client.messages if m.refusal),
            'never_accepted': sum(1 for m in client.messages
                                  if m.accepted_at is None and not m.refusal),
            'lost': sum(1 for m in accepted if not counts.get(m.msgid)),
            'unexpected': sum(1 for k in counts if k.startswith('chaos.') and k not in ours
                              and k.split('@')[0].split('.')[-1] == client.run_id),
            'uncertain': sum(1 for m in client.messages if m.uncertain),
            'replies': dict(client.replies),
            'seconds': time.monotonic() - t0,
        })
        dups = [m.msgid for m in client.messages if counts.get(m.msgid, 0) > 1]
        res['duplicated_lmtp_421'] = sorted(lmtp_421_duplicates(host, dups))
        res['redeliveries_recognised'] = redeliveries_recognised(host)
        res['lost_ids'] = [m.msgid for m in accepted if not counts.get(m.msgid)][:20]
        res['duplicated_ids'] = [m.msgid for m in client.messages
                                 if counts.get(m.msgid, 0) > 1][:20]
        res['rejections'] = sorted({m.refusal for m in client.messages if m.refusal})[:10]
        res['supervisor_log'] = host.supervisor_log()
    finally:
        if client is not None:
            client.generating = False
            client.stopping = True
        errors = host.stop()
        if errors:
            res['problems'].append('stopping the host: %s' % '; '.join(errors))
    return res


def lmtp_421_duplicates(host, msgids):
    """lmtp_421_duplicates - a diagnostic, not an excuse: those of MSGIDS delivered twice
    after Dovecot's lmtp, its master killed, saved the message and then answered Postfix's
    end of DATA with "421 4.3.2 Shutting down" (Postfix's log shows the 421 for the message's
    queue id; Dovecot's log two "saved mail" for its Message-ID). The plugin recognises such
    a re-delivery (mailwarden_dedupe_window): one that is still saved twice is a failure."""
    if not msgids:
        return []
    try:
        with open(host.stack.postfix.log_path, errors='replace') as f:
            plog = f.read()
        with open(host.stack.dovecot.log_path, errors='replace') as f:
            dlog = f.read()
    except OSError:
        return []
    out = []
    for mid in msgids:
        qids = re.findall(r' ([0-9A-F]{6,}): message-id=<%s>' % re.escape(mid), plog)
        said_421 = any(re.search(r'%s: .*said: 421 4\.3\.2 .*Shutting down \(in reply to end '
                                 r'of DATA' % q, plog) for q in qids)
        saved = len(re.findall(r'msgid=<%s>: saved mail' % re.escape(mid), dlog))
        if said_421 and saved >= 2:
            out.append(mid)
    return out


def redeliveries_recognised(host):
    """redeliveries_recognised - how many deliveries the plugin answered as delivered without
    saving them again (a queue file it had saved already, e.g. after lmtp's 421)."""
    try:
        with open(host.stack.dovecot.log_path, errors='replace') as f:
            return len(re.findall(r'mailwarden: re-delivery of a message saved', f.read()))
    except OSError:
        return 0


def describe_fault(rec):
    """describe_fault - one line on a fault: how long mail (or the API) was refused."""
    def fmt(v):
        return 'never' if v is None else '%.1fs' % v
    if 'refused' in rec:
        return ('fault %-11s (%s): mail refused for %s (submission %s, inbound %s), '
                '%d attempts tempfailed; first accepted after recovery: submission %s, '
                'inbound %s' % (rec['name'], rec['how'], fmt(max(rec['refused'].values())),
                                fmt(rec['refused']['submission']),
                                fmt(rec['refused']['inbound']), rec['tempfailed'],
                                fmt(rec['after_recovery']['submission']),
                                fmt(rec['after_recovery']['inbound'])))
    return ('fault %-11s (%s): API unavailable for %s (%s after recovery), %d mail attempts '
            'tempfailed' % (rec['name'], rec['how'], fmt(rec['api_down']),
                            fmt(rec['after_recovery']['api']), rec['tempfailed']))


def summary(res):
    """summary - the result lines and the list of failures (empty when all held)."""
    lines = ['sent %(sent)d  accepted %(accepted)d  delivered %(delivered)d  duplicated '
             '%(duplicated)d  tempfailed %(tempfailed)d  rejected %(rejected)d  lost %(lost)d  '
             'never accepted %(never_accepted)d  (in %(seconds).0fs)' % res]
    if res.get('uncertain'):
        lines.append('%d message(s) were retried after a connection broke before the reply '
                     'to DATA' % res['uncertain'])
    for reply, n in sorted(res['replies'].items(), key=lambda kv: -kv[1])[:12]:
        lines.append('  %5d x %s' % (n, reply))
    failures = list(res['problems'])
    if res.get('redeliveries_recognised'):
        lines.append('%d re-deliveries of a message already saved were answered as delivered '
                     'and not saved again (mailwarden_dedupe_window)'
                     % res['redeliveries_recognised'])
    known = res.get('duplicated_lmtp_421') or []
    if known:
        lines.append('%d duplicate(s) after Dovecot lmtp answered "421 4.3.2 Shutting down" '
                     'after saving (its master killed; Postfix delivered again) and the '
                     're-delivery was saved anyway: %s' % (len(known), ' '.join(known)))
    for key in ('lost', 'duplicated', 'rejected', 'never_accepted', 'unexpected'):
        n = res.get(key) or 0
        if n:
            failures.append('%s: %d' % (key, n))
    if res.get('lost_ids'):
        failures.append('lost: %s' % ' '.join(res['lost_ids']))
    if res.get('duplicated_ids'):
        failures.append('duplicated: %s' % ' '.join(res['duplicated_ids']))
    if res.get('rejections'):
        failures.append('rejections: %s' % ' | '.join(res['rejections']))
    return lines, failures


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--short', action='store_true', help='one fault of each kind, 180 '
                    'messages a minute, 4 s holds (what scripts/test runs)')
    ap.add_argument('--rate', type=int, default=300, help='messages a minute (default 300)')
    ap.add_argument('--messages', type=int, default=20000, help='at most this many messages '
                    '(default 20000)')
    ap.add_argument('--rounds', type=int, default=3, help='times through the faults (3)')
    ap.add_argument('--hold', type=int, default=15, help='seconds a DNS / store fault lasts')
    ap.add_argument('--faults', default=None, help='comma-separated fault names (default all)')
    ap.add_argument('--builddir', default=os.environ.get('MW_BUILDDIR') or L.DEFAULT_BUILDDIR)
    ap.add_argument('--keep', action='store_true', help='keep the host directory')
    args = ap.parse_args()
    if os.geteuid() != 0:
        print('chaos: run as root (the quickstart host, a tmpfs for the store)', file=sys.stderr)
        return 2
    if args.short:
        args.rate, args.rounds, args.hold = 180, 1, 4
    faults = set(args.faults.split(',')) if args.faults else None
    res = run_chaos(args.builddir, rate=args.rate, count=args.messages, rounds=args.rounds,
                    hold=args.hold, faults=faults, keep=args.keep)
    lines, failures = summary(res)
    for line in lines:
        log(line)
    for f in failures:
        log('FAILED: ' + f)
    log('PASS' if not failures else 'FAIL')
    return 0 if not failures else 1


if __name__ == '__main__':
    sys.exit(main())
