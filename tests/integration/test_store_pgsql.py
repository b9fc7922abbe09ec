"""test_store_pgsql - mailwarden on a PostgreSQL store (issue 12): mailwarden-api through a
PostgreSQL restart and outage (503 store_unavailable while it is down, service again without
restarting the API), and `mailwardenctl store copy` from a populated SQLite store onto
PostgreSQL and back (counts and checksums, refusal of a non-empty target, --force), plus
`store migrate`.

One PostgreSQL + Store (on it) + API + nginx for the module; the copies use their own
databases and SQLite files.
"""

import os
import re
import sqlite3
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod

DOMAIN = lab_mod.DOMAIN
TABLES = ['users', 'allowed_from', 'sessions', 'app_passwords', 'rate_policies', 'tag_rules',
          'dkim_keys', 'training_events', 'audit_log', 'auth_failures', 'spam_meta',
          'spam_tokens', 'spam_learned', 'dmarc_evaluations', 'dmarc_reports_sent']


class StorePgsqlTest(labcase.ApiBase):
    @classmethod
    def start_lab(cls):
        cls.pg = cls.lab.postgresql()
        cls.store = cls.lab.store(pgsql=cls.pg)
        cls.start_api()
        cls.add_admin()

    # -- helpers ---------------------------------------------------------------------------

    def new_database(self):
        """new_database - the URL of a new, empty PostgreSQL database."""
        name = 'copy_%s' % uuid.uuid4().hex[:8]
        self.pg.psql('CREATE DATABASE %s' % name, dbname='postgres')
        return name, 'postgresql://%s@/%s?host=%s&port=%d' % (self.pg.user, name,
                                                               self.pg.socket_dir, self.pg.port)

    def pg_count(self, dbname, table):
        return int(self.pg.psql('SELECT count(*) FROM %s' % table, dbname=dbname).strip())

    def users_answer(self, token):
        return self.call('GET', '/api/v1/users', token=token)

    def until_ok(self, token, seconds=30):
        """until_ok - poll GET /users until 200; returns the statuses seen."""
        seen = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            a = self.users_answer(token)
            seen.append(a.status)
            if a.status == 200:
                return seen
            self.assertEqual(a.status, 503, a)
            time.sleep(0.2)
        self.fail('the API did not recover after PostgreSQL came back: %s' % seen)

    def api_log(self):
        with open(self.api.log_path, errors='replace') as f:
            return f.read()

    def api_store_gauge(self):
        """api_store_gauge - mailwarden_degraded{component="api_store"} from the API."""
        a = self.call('GET', '/api/v1/internal/metrics')
        self.assertEqual(a.status, 200, a)
        text = a.raw.decode()
        m = re.search(r'^mailwarden_degraded\{component="api_store"\} ([01])$', text, re.M)
        self.assertIsNotNone(m, text)
        return int(m.group(1))

    # -- connection loss -------------------------------------------------------------------

    def test_api_survives_postgresql_restart(self):
        token = self.login(self.admin, self.admin_pw)
        self.expect(self.users_answer(token), 200)
        pid = self.api.proc.pid
        enter = 'event=degraded component=api_store reason=store_error '
        leave = 'event=recovered component=api_store '
        self.assertEqual(self.api_store_gauge(), 0)
        enters, leaves = self.api_log().count(enter), self.api_log().count(leave)
        self.pg.halt()
        try:
            for _ in range(3):  # every answer while it is down: 503, quickly
                t0 = time.monotonic()
                a = self.users_answer(token)
                self.expect(a, 503, 'store_unavailable')
                self.assertLess(time.monotonic() - t0, 10)
            # issue 17: one degraded line for all the workers and requests, and the gauge
            self.assertEqual(self.api_log().count(enter), enters + 1, self.api_log())
            self.assertEqual(self.api_store_gauge(), 1)
        finally:
            self.pg.resume()
        seen = self.until_ok(token)
        self.assertEqual(self.api_log().count(leave), leaves + 1, self.api_log())
        self.assertEqual(self.api_log().count(enter), enters + 1, self.api_log())
        self.assertEqual(self.api_store_gauge(), 0)
        # the same API process serves again: nobody restarted it
        self.assertEqual(self.api.proc.pid, pid)
        self.assertIsNone(self.api.proc.poll())
        self.assertIn(200, seen)
        with open(self.api.log_path, errors='replace') as f:
            log = f.read()
        self.assertIn('unavailable', log)
        self.assertNotIn('Assertion', log)
        # and a restart without an outage in between
        self.pg.pg_ctl('-m', 'fast', '-w', '-t', '30', 'restart')
        self.until_ok(token)
        self.store.add_user('after-restart-%s@%s' % (uuid.uuid4().hex[:6], DOMAIN), 'Pw-' +
                            uuid.uuid4().hex)

    # -- store copy ------------------------------------------------------------------------

    def populated_sqlite_store(self):
        """populated_sqlite_store - a SQLite lab store with rows in most tables."""
        src = self.lab.store()
        users = []
        for i in range(5):
            user = 'copy%d-%s@%s' % (i, uuid.uuid4().hex[:6], DOMAIN)
            src.add_user(user, 'Copy-pass-%d-%s' % (i, uuid.uuid4().hex[:6]),
                         role='admin' if i == 0 else 'user',
                         description="it's user %d \u00e9" % i)
            src.allow_from(user, user, '*@%s' % DOMAIN)
            users.append(user)
        src.ctl('user', 'disable', users[4])
        src.ctl('dkim', 'generate', DOMAIN, 'sel1', check=False)
        src.ctl('ratelimit', 'policy', 'add', 'sasl_username', 'messages', '100/1h', 'defer')
        with sqlite3.connect(src.db) as db:
            db.execute('INSERT INTO spam_learned (scope, digest, spam, learned_at) '
                       'VALUES (0, ?, 1, 7)', (bytes(range(32)),))
            db.execute('INSERT INTO spam_tokens (scope, hash, nspam, nham, weight, gen) '
                       'VALUES (0, -9223372036854775808, 1, 0, 0.125, 1), '
                       '(0, 9223372036854775807, 0, 2, -1.5e-7, 1)')
            db.execute('INSERT INTO spam_meta (scope, nspam, nham, generation) '
                       'VALUES (0, 1, 2, 3)')
            db.execute("INSERT INTO auth_failures (key, net, failures, first_at, last_at) "
                       "VALUES ('client', '192.0.2.0/24', 3, 1, 2)")
        return src, users

    def sqlite_rows(self, path, table):
        with sqlite3.connect(path) as db:
            return sorted(db.execute('SELECT * FROM %s' % table).fetchall(), key=repr)

    def test_copy_sqlite_to_pgsql_and_back(self):
        src, users = self.populated_sqlite_store()
        name, url = self.new_database()
        p = self.store.ctl('store', 'copy', src.url, url)
        self.assertIn('counts and checksums match', p.stdout)
        for table in TABLES:
            with self.subTest(table=table):
                self.assertRegex(p.stdout, r'(?m)^%s +\d+ rows' % table)
                self.assertEqual(self.pg_count(name, table),
                                 len(self.sqlite_rows(src.db, table)))
        self.assertGreater(self.pg_count(name, 'audit_log'), 0)
        # the identity counters continue after the copied ids
        self.pg.psql("INSERT INTO users (username, password, status, role, created_at, "
                     "updated_at, password_changed_at) VALUES ('new@x', 'x', 'active', "
                     "'user', 0, 0, 0)", dbname=name)
        # a target with rows is refused, unless --force
        p = self.store.ctl('store', 'copy', src.url, url, check=4)
        self.assertIn('not empty', p.stderr)
        p = self.store.ctl('store', 'copy', '--force', src.url, url)
        self.assertIn('emptied', p.stdout)
        self.assertEqual(self.pg_count(name, 'users'), len(users))
        # and back into a new SQLite file: every row as it was
        back = os.path.join(self.lab.root, 'back-%s.db' % uuid.uuid4().hex[:6])
        p = self.store.ctl('store', 'copy', url, 'sqlite:' + back)
        for table in TABLES:
            with self.subTest(table=table):
                self.assertEqual(self.sqlite_rows(back, table), self.sqlite_rows(src.db, table))
        # a new SQLite file with rows cannot be forced
        p = self.store.ctl('store', 'copy', '--force', url, 'sqlite:' + back, check=4)
        # the password of a URL never shows
        p = self.store.ctl('store', 'copy', src.url,
                           url.replace('postgres@', 'postgres:sekrit-pw@') + '&password=pw2',
                           check=False)
        self.assertNotIn('sekrit-pw', p.stdout + p.stderr)
        self.assertNotIn('pw2', p.stdout + p.stderr)

    def test_store_migrate(self):
        name, url = self.new_database()
        p = self.store.ctl('store', 'migrate', url)
        self.assertRegex(p.stdout, r'schema version 0 -> \d+')
        p = self.store.ctl('store', 'migrate', url)
        self.assertIn('up to date', p.stdout)
        self.assertEqual(self.pg_count(name, 'schema_version'), 1)


if __name__ == '__main__':
    unittest.main()
