"""test_e2e - the components together: API -> store -> milter -> Postfix -> Dovecot + plugin.

One stack for the module: Store, Dovecot with the mailwarden plugin, mailwarden-milter in
Postfix, mailwarden-api behind nginx. It checks the contracts between components that no
single component's tests can:
- allowed-From patterns changed through the API are enforced by the milter (issue 5);
- verdict headers forged by a sender never reach the Dovecot plugin, because the milter
  strips them (issue 6), while the same headers delivered straight over LMTP (bypassing
  Postfix and the milter) do drive the plugin, so the stripping is what makes the difference.
"""

import email
import smtplib
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod
from labcase import call

DOMAIN = lab_mod.DOMAIN
CACHE_TTL = 2
AUTHSERV_ID = 'mail.%s' % DOMAIN


def uniq(prefix):
    return '%s%s' % (prefix, uuid.uuid4().hex[:10])


class EndToEndTest(labcase.LabCase):
    @classmethod
    def start_lab(cls):
        cls.store = cls.lab.store()
        opts = lab_mod.mailwarden_plugin_options(cls.store, mailwarden_authserv_id=AUTHSERV_ID)
        cls.dovecot = cls.lab.dovecot(cls.store, **opts)
        # Loopback is this lab's only network: trust it so inbound checks need no DNS;
        # stripping of forged headers applies to every client, trusted or not.
        cls.milter = cls.lab.milter(cls.store, cache_ttl='%ds' % CACHE_TTL,
                                    config='trusted_networks = 127.0.0.0/8\n')
        cls.postfix = cls.lab.postfix(cls.dovecot, milters=[cls.milter.postfix_spec])
        cls.start_api()
        cls.admin = '%s@%s' % (uniq('admin'), DOMAIN)
        cls.admin_pw = 'Admin-pass-' + uuid.uuid4().hex[:8]
        cls.store.add_user(cls.admin, cls.admin_pw, role='admin')

    def tearDown(self):
        report = self.milter.sanitizer_report()
        self.assertEqual(report, '', 'sanitizer findings in the milter log:\n' + report)
        report = self.api.sanitizer_report()
        self.assertEqual(report, '', 'sanitizer findings in the API log:\n' + report)

    # -- helpers ---------------------------------------------------------------------------

    def api_call(self, method, path, body=None, token=None, expect=200):
        a = call(self.nginx.port, method, path, body=body, token=token)
        self.assertEqual(a.status, expect, '%s %s: %r' % (method, path, a))
        return a

    def admin_token(self):
        a = self.api_call('POST', '/api/v1/sessions',
                          body={'username': self.admin, 'password': self.admin_pw}, expect=201)
        return a.json['token']

    def submit(self, user, pw, env_from, header_from, rcpt, token):
        """submit - authenticated submission; returns None when accepted, else the
        SMTPResponseException / SMTPSenderRefused / SMTPDataError raised."""
        msg = ('From: %s\r\nTo: %s\r\nSubject: e2e %s\r\nMessage-ID: <%s@%s>\r\n\r\nbody %s\r\n'
               % (header_from, rcpt, token, token, DOMAIN, token))
        with smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=30) as s:
            s.ehlo('client.%s' % DOMAIN)
            s.login(user, pw)
            try:
                s.sendmail(env_from, [rcpt], msg)
            except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
                return e
        return None

    def fetch(self, user, pw, token, mailbox='INBOX', timeout=20):
        """fetch - (flags, message) of the message whose body holds TOKEN in MAILBOX."""
        found = labcase.imap_fetch(self.dovecot.imap_port, user, pw, token, mailbox,
                                   timeout=timeout)
        return None if found is None else (found[0], email.message_from_bytes(found[1]))

    # -- tests -----------------------------------------------------------------------------

    def test_allowed_from_changed_through_api_is_enforced_by_milter(self):
        tok = self.admin_token()
        user = '%s@%s' % (uniq('e2e'), DOMAIN)
        first = '%s@%s' % (uniq('first'), DOMAIN)
        second = '%s@%s' % (uniq('second'), DOMAIN)
        a = self.api_call('POST', '/api/v1/users', body={'username': user}, token=tok,
                          expect=201)
        pw = a.json['password']
        self.api_call('PUT', '/api/v1/users/%s/allowed-from' % user,
                      body={'patterns': [first]}, token=tok)

        token = uniq('t')
        self.assertIsNone(self.submit(user, pw, first, first, user, token))
        self.assertIsNotNone(self.fetch(user, pw, token), 'allowed message not delivered')
        refused = self.submit(user, pw, second, second, user, uniq('t'))
        self.assertIsNotNone(refused, 'a sender outside the patterns was accepted')
        self.assertEqual(refused.smtp_code, 550)
        self.assertIn(b'5.7.1', refused.smtp_error)

        # replace the patterns through the API: the milter follows within its cache TTL
        self.api_call('PUT', '/api/v1/users/%s/allowed-from' % user,
                      body={'patterns': [second]}, token=tok)
        time.sleep(CACHE_TTL + 1)
        token = uniq('t')
        self.assertIsNone(self.submit(user, pw, second, second, user, token))
        self.assertIsNotNone(self.fetch(user, pw, token), 'newly allowed message not delivered')
        refused = self.submit(user, pw, first, first, user, uniq('t'))
        self.assertIsNotNone(refused, 'a removed pattern still allowed sending')
        self.assertEqual(refused.smtp_code, 550)

        # disabling through the API stops SMTP AUTH at once
        self.api_call('PATCH', '/api/v1/users/%s' % user, body={'status': 'disabled'}, token=tok)
        with smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=30) as s:
            s.ehlo('client.%s' % DOMAIN)
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                s.login(user, pw)

    def forged_message(self, rcpt, token):
        return ('From: outsider@example.net\r\nTo: %s\r\nSubject: forged verdict %s\r\n'
                'Message-ID: <%s@example.net>\r\n'
                'X-Mailwarden-Spam: yes; score=99.0; required=5.0; tests=FORGED\r\n'
                'Authentication-Results: %s; dmarc=fail header.from=example.net\r\n'
                '\r\nbody %s\r\n' % (rcpt, token, token, AUTHSERV_ID, token))

    def test_forged_verdict_headers_never_reach_the_plugin(self):
        user = '%s@%s' % (uniq('rcpt'), DOMAIN)
        pw = self.store.add_user(user)

        # through Postfix + milter (unauthenticated inbound): the forged headers are removed
        token = uniq('t')
        with smtplib.SMTP('127.0.0.1', self.postfix.smtp_port, timeout=30) as s:
            s.ehlo('mx.example.net')
            s.sendmail('outsider@example.net', [user], self.forged_message(user, token))
        got = self.fetch(user, pw, token)
        self.assertIsNotNone(got, 'inbound message not delivered to INBOX')
        flags, msg = got
        self.assertNotIn('$Junk', flags)
        self.assertNotIn('$DMARCFail', flags)
        self.assertIsNone(msg['X-Mailwarden-Spam'])
        forged = [v for v in msg.get_all('Authentication-Results', [])
                  if 'FORGED' in v or ('dmarc=fail' in v and v.strip().startswith(AUTHSERV_ID))]
        self.assertEqual(forged, [])

        # control: the same headers delivered straight over LMTP do drive the plugin
        token = uniq('t')
        with smtplib.LMTP('127.0.0.1', self.dovecot.lmtp_port, timeout=30) as l:
            l.sendmail('outsider@example.net', [user], self.forged_message(user, token))
        got = self.fetch(user, pw, token, mailbox='Junk')
        self.assertIsNotNone(got, 'LMTP control: spam verdict did not file into Junk')
        self.assertIn('$Junk', got[0])


if __name__ == '__main__':
    unittest.main()
