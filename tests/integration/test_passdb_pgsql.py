"""test_passdb_pgsql - Dovecot's `passdb sql` and `userdb sql` with the pgsql driver on a
PostgreSQL store: every test of test_passdb_services (each service name, app passwords,
networks, TOTP, userdb lookups, LMTP delivery, IMAP LOGIN and SMTP AUTH through Postfix) run
again with the store on PostgreSQL. The queries are the very conf.d files the SQLite lab
uses; only the driver and connect lines differ (issue 12).

One PostgreSQL + Store + Dovecot + Postfix for the module; users are made per test through
mailwardenctl on the PostgreSQL store, rows changed through psql.
"""

import re
import unittest

import test_passdb_services as base


def pg_literal(value):
    """pg_literal - VALUE as an SQL literal: NULL, an integer, or a quoted string."""
    if value is None:
        return 'NULL'
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if '\0' in text:
        raise ValueError('NUL in an SQL string')
    return "'" + text.replace("'", "''") + "'"


class PassdbPgsqlTest(base.PassdbServicesTest):
    @classmethod
    def start_lab(cls):
        cls.pg = cls.lab.postgresql()
        cls.store = cls.lab.store(pgsql=cls.pg)
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.postfix = cls.lab.postfix(cls.dovecot)

    def sql(self, query, *args):
        """sql - QUERY with ? placeholders (as the SQLite variant) run through psql."""
        parts = query.split('?')
        self.assertEqual(len(parts) - 1, len(args), query)
        text = parts[0] + ''.join(pg_literal(a) + p for a, p in zip(args, parts[1:]))
        self.pg.psql(text)

    def test_dovecot_uses_pgsql(self):
        """the lab's Dovecot reads the store through the pgsql driver (not a stale file)"""
        with open(self.dovecot.sql_config) as f:
            text = f.read()
        self.assertRegex(text, re.compile(r'^driver = pgsql$', re.M))
        self.assertIsNone(self.store.db)
        self.assertTrue(self.store.url.startswith('postgresql://'))
        user, pw = self.new_user('imap')
        self.assertEqual(self.pg.psql("SELECT count(*) FROM users WHERE username = %s"
                                      % pg_literal(user)).strip(), '1')
        self.assertTrue(self.auth(user, pw, 'imap'))


if __name__ == '__main__':
    unittest.main()
