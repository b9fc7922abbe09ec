"""test_samples - the conf.d samples say what the lab runs (they are rendered from the same
settings; regenerate with `python3 scripts/mailwarden_lab.py samples conf.d`)."""

import os
import unittest

import mailwarden_lab as lab_mod

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SamplesTest(unittest.TestCase):
    """conf.d/*.sample match the lab's rendering."""

    def test_samples_match_lab_settings(self):
        for name, render in sorted(lab_mod.SAMPLES.items()):
            with self.subTest(sample=name):
                with open(os.path.join(TOP, 'conf.d', name)) as f:
                    self.assertEqual(f.read(), render(),
                             'conf.d/%s is out of date: run python3 '
                             'scripts/mailwarden_lab.py samples conf.d' % name)

    def test_dovecot_sql_files_are_the_labs(self):
        # the passdb/userdb queries live in conf.d/dovecot-sql-mailwarden*.conf.ext only:
        # the lab's files are those with nothing but the connect line changed
        with open(os.path.join(TOP, 'conf.d', 'dovecot-mailwarden.conf.sample')) as f:
            sample = f.read()
        for kind, name in sorted(lab_mod.DOVECOT_SQL_FILES.items()):
            with self.subTest(file=name):
                with open(os.path.join(TOP, 'conf.d', name)) as f:
                    text = f.read()
                lab = lab_mod.render_dovecot_sql_file(kind, '/lab/x.db')
                self.assertEqual(lab.replace('connect = /lab/x.db\n',
                                             'connect = /var/lib/mailwarden/mailwarden.db\n'), text)
                self.assertEqual(lab_mod.render_dovecot_sql_file(kind), text)
                self.assertIn('\n# ' + text.split('\n')[-2] + '\n', sample)
        # both passdbs map the service name (%s) with the same expression
        cases = []
        for kind in ('main', 'apppw'):
            q = lab_mod.render_dovecot_sql_file(kind)
            start = q.index("(CASE '%s'")
            cases.append(q[start:q.index(' END)', start)])
        self.assertEqual(cases[0], cases[1])
        lab = lab_mod.Dovecot('/nonexistent', None).render_config()
        for name in ('dovecot-sql.conf.ext', 'dovecot-sql-apppw.conf.ext',
                     'dovecot-sql-userdb.conf.ext'):
            self.assertIn(name, lab)

    def test_lab_postfix_uses_shared_settings(self):
        shared = lab_mod.postfix_mailwarden_settings('/x/auth', lab_mod.DOMAIN, 'lmtp:x')
        pf = lab_mod.Postfix('/nonexistent', lab_mod.Dovecot('/nonexistent', None))
        main = pf.main_settings()
        for key in ('smtpd_sasl_type', 'smtpd_relay_restrictions',
                'smtpd_recipient_restrictions', 'virtual_mailbox_domains'):
            self.assertEqual(main[key], shared[key], key)


if __name__ == '__main__':
    unittest.main()
