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

    def test_lab_postfix_uses_shared_settings(self):
        shared = lab_mod.postfix_mailwarden_settings('/x/auth', lab_mod.DOMAIN, 'lmtp:x')
        pf = lab_mod.Postfix('/nonexistent', lab_mod.Dovecot('/nonexistent', None))
        main = pf.main_settings()
        for key in ('smtpd_sasl_type', 'smtpd_relay_restrictions',
                'smtpd_recipient_restrictions', 'virtual_mailbox_domains'):
            self.assertEqual(main[key], shared[key], key)


if __name__ == '__main__':
    unittest.main()
