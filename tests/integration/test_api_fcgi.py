"""test_api_fcgi - mailwarden-api's own FastCGI loop, spoken to directly (issue 11).

nginx keeps FastCGI connections open between requests (fastcgi_keep_conn with an upstream
keepalive pool, as the lab's nginx and the throughput note in the nginx sample do). With
libfcgi a worker blocked reading the kept connection of its last request, so with every
worker holding an idle kept connection a new connection waited forever. Here the API runs
with ONE worker and a raw FastCGI client (this file) on its socket:
- a kept, idle connection does not stop a second connection from being answered, and the
  kept one still works afterwards;
- hostile records: a wrong protocol version closes only that connection; a parameter with a
  NUL byte is answered 400 in JSON; a body over [api] max_body is answered 413; an unknown
  management record gets FCGI_UNKNOWN_TYPE; a multiplexed second request is refused with
  FCGI_CANT_MPX_CONN; after all of it the worker is the same process and still answers.
And with TWO workers: a request on a kept connection whose worker is busy with a slow request
(a failing login, argon2 made slow) is answered by the other worker (the busy one handed its
idle connections over before it started), while the slow one still runs. Which worker holds
which connection is read from /proc (socket inodes), so the case is built, not hoped for.
"""

import json
import select
import socket
import struct
import time
import unittest

import labcase
import mailwarden_lab as lab_mod

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, GET_VALUES, UNKNOWN_TYPE = 1, 2, 3, 4, 5, 6, 9, 11


def record(rtype, rid, content=b''):
    return struct.pack('>BBHHBB', 1, rtype, rid, len(content), 0, 0) + content


def pairs(params):
    out = b''
    for k, v in params.items():
        k, v = k.encode(), v.encode() if isinstance(v, str) else v
        for n in (len(k), len(v)):
            out += bytes([n]) if n < 128 else struct.pack('>I', n | 0x80000000)
        out += k + v
    return out


def raw_request(rid, pair_list):
    """raw_request - a kept request whose parameters are PAIR_LIST, repeats allowed."""
    params = b''.join(pairs({k: v}) for k, v in pair_list)
    return (record(BEGIN, rid, struct.pack('>HB5x', 1, 1)) + record(PARAMS, rid, params)
            + record(PARAMS, rid) + record(STDIN, rid))


def request(rid, method='GET', uri='/api/v1/healthz', body=b'', keep=True, extra=None):
    params = {'REQUEST_METHOD': method, 'REQUEST_URI': uri, 'REMOTE_ADDR': '127.0.0.1',
              'CONTENT_LENGTH': str(len(body)), 'CONTENT_TYPE': 'application/json'}
    params.update(extra or {})
    data = record(BEGIN, rid, struct.pack('>HB5x', 1, 1 if keep else 0))
    data += record(PARAMS, rid, pairs(params)) + record(PARAMS, rid)
    for i in range(0, len(body), 60000):
        data += record(STDIN, rid, body[i:i + 60000])
    return data + record(STDIN, rid)


class Conn:
    """Conn - one raw FastCGI connection to the API."""

    def __init__(self, port):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=20)
        self.buf = b''

    def send(self, data):
        self.sock.sendall(data)

    def read_record(self):
        """read_record - (type, id, content); None when the API closed the connection."""
        while True:
            if len(self.buf) >= 8:
                _, rtype, rid, clen, plen, _ = struct.unpack('>BBHHBB', self.buf[:8])
                if len(self.buf) >= 8 + clen + plen:
                    content = self.buf[8:8 + clen]
                    self.buf = self.buf[8 + clen + plen:]
                    return rtype, rid, content
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def answer(self, rid):
        """answer - (status, headers text, body bytes) of request RID, up to END_REQUEST."""
        out = b''
        while True:
            r = self.read_record()
            if r is None:
                raise AssertionError('connection closed before END_REQUEST')
            rtype, got, content = r
            if got != rid:
                raise AssertionError('record for request %d, expected %d' % (got, rid))
            if rtype == STDOUT:
                out += content
            elif rtype == END:
                break
        head, _, body = out.partition(b'\r\n\r\n')
        status = int(head.split(b'\r\n')[0].split()[1])
        return status, head.decode(), body

    def closed(self, wait=10):
        self.sock.settimeout(wait)
        try:
            while True:
                if self.read_record() is None:
                    return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


class ApiFcgiTest(labcase.LabCase):

    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        cls.api = cls.lab.api(cls.store, api_config={'workers': '1', 'max_body': '1k'})
        lab_mod.wait_until(lambda: len(cls.workers()) == 1, 120, 'one API worker')

    @classmethod
    def workers(cls):
        return lab_mod.children_of(cls.api.proc.pid)

    def conn(self):
        c = Conn(self.api.port)
        self.addCleanup(c.close)
        return c

    def tearDown(self):
        self.assertEqual(self.api.sanitizer_report(), '', 'sanitizer report in the API log')

    def test_kept_connection_does_not_hold_the_worker(self):
        worker = self.workers()
        a = self.conn()
        a.send(request(1))
        status, _, body = a.answer(1)
        self.assertEqual(status, 200, body)
        # a is kept and idle; the only worker must still take a new connection
        b = self.conn()
        t0 = time.monotonic()
        b.send(request(1, keep=False))
        status, _, body = b.answer(1)
        self.assertEqual(status, 200, body)
        self.assertLess(time.monotonic() - t0, 10, 'the second connection waited')
        self.assertTrue(b.closed(), 'a connection not kept is closed after its answer')
        # and the kept one still answers, again and again
        for rid in (2, 3):
            a.send(request(rid))
            self.assertEqual(a.answer(rid)[0], 200)
        self.assertEqual(self.workers(), worker, 'the worker was replaced')

    def test_repeated_parameter_first_wins(self):
        # a name sent twice: the first value counts, whichever it is (api-main.c reads the
        # parameters in one pass and must keep api_fcgi_param's first-wins meaning)
        c = self.conn()
        base = [('REQUEST_METHOD', 'GET'), ('REMOTE_ADDR', '127.0.0.1'),
                ('HTTP_USER_AGENT', 'u' * 300)]  # a 4-byte value length
        c.send(raw_request(1, [('REQUEST_URI', '/api/v1/healthz'),
                               ('REQUEST_URI', '/api/v1/nowhere')] + base))
        self.assertEqual(c.answer(1)[0], 200)
        c.send(raw_request(2, [('REQUEST_URI', '/api/v1/nowhere'),
                               ('REQUEST_URI', '/api/v1/healthz')] + base))
        self.assertEqual(c.answer(2)[0], 404)
        c.send(raw_request(3, [('REQUEST_URI', '/api/v1/healthz'), ('REQUEST_METHOD', 'DELETE')]
                           + base))
        self.assertEqual(c.answer(3)[0], 405)

    def test_hostile_records(self):
        worker = self.workers()
        # a wrong version: that connection is closed, nothing else happens
        bad = self.conn()
        bad.send(b'\x02' + record(BEGIN, 1, struct.pack('>HB5x', 1, 1))[1:])
        self.assertTrue(bad.closed())
        c = self.conn()
        # a NUL inside a parameter: 400 with the JSON error body
        c.send(request(1, extra={'HTTP_USER_AGENT': 'a\0b'}))
        status, head, body = c.answer(1)
        self.assertEqual(status, 400, body)
        self.assertEqual(json.loads(body)['error']['code'], 'bad_request')
        # a body over max_body (1k): 413, the rest of the body read and dropped
        c.send(request(2, method='POST', uri='/api/v1/sessions', body=b'x' * 5000))
        status, _, body = c.answer(2)
        self.assertEqual(status, 413, body)
        # announced length and body disagree: 400
        c.send(request(3, method='POST', uri='/api/v1/sessions', body=b'{}',
                       extra={'CONTENT_LENGTH': '10'}))
        self.assertEqual(c.answer(3)[0], 400)
        # management records: FCGI_GET_VALUES answered, anything else unknown
        c.send(record(GET_VALUES, 0, pairs({'FCGI_MPXS_CONNS': ''})) + record(77, 0))
        rtype, rid, content = c.read_record()
        self.assertEqual((rtype, rid), (10, 0))
        self.assertIn(b'FCGI_MPXS_CONNS0', content)
        rtype, rid, content = c.read_record()
        self.assertEqual((rtype, content[0]), (UNKNOWN_TYPE, 77))
        # multiplexing: a second BEGIN while one is open is refused for that id only
        first = request(4)
        c.send(first[:16])                  # BEGIN of request 4 only
        c.send(record(BEGIN, 5, struct.pack('>HB5x', 1, 1)))
        rtype, rid, content = c.read_record()
        self.assertEqual((rtype, rid, content[4]), (END, 5, 1))  # FCGI_CANT_MPX_CONN
        c.send(first[16:])
        self.assertEqual(c.answer(4)[0], 200)
        # an aborted request ends at once
        c.send(record(BEGIN, 6, struct.pack('>HB5x', 1, 1)) + record(ABORT, 6))
        rtype, rid, _ = c.read_record()
        self.assertEqual((rtype, rid), (END, 6))
        self.assertEqual(self.workers(), worker, 'the worker died on hostile input')


def server_inode(api_port, client_port):
    """server_inode - the inode of the API's end of the TCP connection from CLIENT_PORT."""
    with open('/proc/net/tcp') as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if (int(local.split(':')[1], 16) == api_port
                    and int(remote.split(':')[1], 16) == client_port):
                return inode
    return None


def holder(pids, inode):
    """holder - which of PIDS has socket INODE open; None while none does (in flight)."""
    return lab_mod.pid_holding(pids, 'socket:[%s]' % inode)


class ApiFcgiHandoffTest(labcase.LabCase):

    @classmethod
    def start_lab(cls):
        import test_api_workers as W
        cls.store = cls.lab.store(argon2_memory=W.SLOW_MEMORY, argon2_passes=W.SLOW_PASSES)
        cls.api = cls.lab.api(cls.store, name='api-handoff',
                              api_config={'workers': '2', 'login_max_failures': '1000',
                                          'ip_max_failures': '1000'})
        lab_mod.wait_until(lambda: len(lab_mod.children_of(cls.api.proc.pid)) == 2, 120,
                           'two API workers')

    def tearDown(self):
        self.assertEqual(self.api.sanitizer_report(), '', 'sanitizer report in the API log')

    def test_busy_workers_idle_connections_go_to_the_other(self):
        import test_api_workers as W
        workers = W.children(self.api.proc.pid)
        conns = []
        for _ in range(6):
            c = Conn(self.api.port)
            self.addCleanup(c.close)
            c.send(request(1))
            self.assertEqual(c.answer(1)[0], 200)
            conns.append(c)
        inodes = [server_inode(self.api.port, c.sock.getsockname()[1]) for c in conns]
        self.assertNotIn(None, inodes, 'an API end of a kept connection is not in /proc')
        held = {}
        lab_mod.wait_until(lambda: all(holder(workers, i) for i in inodes), 10,
                           'every kept connection held by a worker')
        for c, i in zip(conns, inodes):
            held.setdefault(holder(workers, i), []).append(c)
        busy = max(held.values(), key=len)
        self.assertGreaterEqual(len(busy), 2, held)  # 6 connections, 2 workers
        slow, cheap = busy[0], busy[1]
        body = json.dumps({'username': 'nobody@' + lab_mod.DOMAIN,
                           'password': 'wrong-password-1'}).encode()
        hashing = W.Hashing(self.api.proc.pid)
        slow.send(request(2, method='POST', uri='/api/v1/sessions', body=body))
        hashing.wait()  # the login's argon2 check is under way
        cheap.send(request(2))
        self.assertEqual(cheap.answer(2)[0], 200)
        waiting, _, _ = select.select([slow.sock], [], [], 0)
        self.assertEqual(waiting, [], 'the slow login answered before the cheap request: the '
                         'case did not test anything (is argon2 slow enough?)')
        slow.sock.settimeout(300)  # seconds of argon2, many more on a loaded machine
        self.assertEqual(slow.answer(2)[0], 401)
        # every connection still answers, wherever it went
        for c in conns:
            c.send(request(3))
            self.assertEqual(c.answer(3)[0], 200)
        self.assertEqual(W.children(self.api.proc.pid), workers, 'a worker was replaced')


if __name__ == '__main__':
    unittest.main()
