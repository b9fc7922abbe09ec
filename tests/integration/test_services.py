"""test_services - smoke tests of the other lab services: nginx, Redis, PostgreSQL.

Later issues build on these (nginx in front of the FastCGI API, Redis counters, the
PostgreSQL store); here each one only has to start on loopback and answer.
"""

import socket
import unittest
import urllib.request
import uuid

import labcase


def read_resp(f):
    """read_resp - one RESP reply from file F: bytes, int, None or a list; errors raise."""
    line = f.readline()
    if not line.endswith(b'\r\n'):
        raise AssertionError('short RESP reply: %r' % line)
    kind, rest = line[:1], line[1:-2]
    if kind == b'+':
        return rest
    if kind == b'-':
        raise AssertionError('redis error: %r' % rest)
    if kind == b':':
        return int(rest)
    if kind == b'$':
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b'*':
        return [read_resp(f) for _ in range(int(rest))]
    raise AssertionError('bad RESP reply: %r' % line)


class ServicesTest(labcase.LabCase):
    """nginx, Redis and PostgreSQL in one lab directory."""

    @classmethod
    def start_lab(cls):
        cls.nginx = cls.lab.nginx()
        cls.redis = cls.lab.redis()
        cls.pg = cls.lab.postgresql()

    def test_nginx_serves_static_file(self):
        token = uuid.uuid4().hex
        with open('%s/%s.txt' % (self.nginx.static_root, token), 'w') as f:
            f.write('hello %s\n' % token)
        with urllib.request.urlopen(self.nginx.url('/%s.txt' % token), timeout=10) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(r.read().decode(), 'hello %s\n' % token)

    def test_nginx_missing_file_is_404(self):
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(self.nginx.url('/no-such-file'), timeout=10)
        self.assertEqual(cm.exception.code, 404)

    def redis_command(self, *args):
        """redis_command - send one RESP command; the parsed reply (bytes, int, list)."""
        req = b'*%d\r\n' % len(args) + b''.join(
            b'$%d\r\n%s\r\n' % (len(a), a) for a in args)
        with socket.create_connection(('127.0.0.1', self.redis.port), timeout=10) as s:
            s.sendall(req)
            return read_resp(s.makefile('rb'))

    def test_redis_ping(self):
        self.assertEqual(self.redis_command(b'PING'), b'PONG')

    def test_redis_set_get_no_persistence(self):
        key = uuid.uuid4().hex.encode()
        self.assertEqual(self.redis_command(b'SET', key, b'v1'), b'OK')
        self.assertEqual(self.redis_command(b'GET', key), b'v1')
        self.assertEqual(self.redis_command(b'CONFIG', b'GET', b'save'), [b'save', b''])
        self.assertEqual(self.redis_command(b'CONFIG', b'GET', b'appendonly'),
                 [b'appendonly', b'no'])

    def test_postgresql_select_1(self):
        self.assertEqual(self.pg.psql('SELECT 1').strip(), '1')

    def test_postgresql_database_exists(self):
        self.assertEqual(self.pg.psql('SELECT current_database()').strip(), self.pg.dbname)


if __name__ == '__main__':
    unittest.main()
