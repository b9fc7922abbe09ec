"""test_web_browser - the web page driven in a real browser, as a person would (issue 15).

Debian's chromium through chromium-driver and python3-selenium, headless, against the lab's
nginx (the page under /, the API under /api/v1/) with Dovecot and Postfix behind it. A person
logs in, enrols TOTP reading the secret from the page and computing the code, logs in again
with a code; another creates an app password, logs in to IMAP with it, revokes it and sees
IMAP refuse it; an admin in a second browser disables that user and the user's page session
ends. No console message may report a Content-Security-Policy violation, and a script that
the policy forbids really does not run. Screenshots of each page go to
$MW_TEST_OUTPUT/web (scripts/test sets it to BUILDDIR/test-output), default
/tmp/mailwarden-test-output/web.

Without chromium, chromedriver or selenium every test fails, loudly.
"""

import base64
import hashlib
import hmac
import os
import struct
import time
import unittest
import uuid

import labcase
import mailwarden_lab as lab_mod
from labcase import call
from test_api_resources import submit
from test_login import imap_login
from test_web_api import WEB_DIR

DOMAIN = lab_mod.DOMAIN
CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
USAGE_LIMITS = ['sasl_username messages 5/1h defer']
OUT = os.path.join(os.environ.get('MW_TEST_OUTPUT', '/tmp/mailwarden-test-output'), 'web')

try:
    from selenium import webdriver
    from selenium.common.exceptions import (NoSuchElementException,
                                            StaleElementReferenceException, TimeoutException)
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    SELENIUM_ERROR = None
except ImportError as e:  # reported by every test, never skipped
    SELENIUM_ERROR = e


def totp(secret_b32, step):
    """totp - the RFC 6238 code (SHA-1, 6 digits) of STEP."""
    key = base64.b32decode(secret_b32 + '=' * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack('>Q', step), hashlib.sha1).digest()
    off = mac[-1] & 0x0f
    return '%06d' % ((struct.unpack('>I', mac[off:off + 4])[0] & 0x7fffffff) % 1000000)


def need_browser():
    """need_browser - raise (a failure, not a skip) when the browser stack is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if SELENIUM_ERROR is not None:
        missing.append('python3-selenium (%s)' % SELENIUM_ERROR)
    if missing:
        raise AssertionError('the browser tests need %s: install chromium chromium-driver '
                             'python3-selenium (scripts/setup)' % ', '.join(missing))


class Browser:
    """Browser - one headless chromium with its own profile (cookies)."""

    def __init__(self, base, width=1100, height=900, phone=False):
        opts = webdriver.ChromeOptions()
        if phone:  # a phone's viewport (a desktop window cannot be that narrow)
            opts.add_experimental_option('mobileEmulation', {'deviceMetrics': {
                'width': width, 'height': height, 'pixelRatio': 2.0}})
        opts.binary_location = CHROMIUM
        for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
                  '--no-first-run', '--disable-extensions', '--disable-background-networking',
                  '--window-size=%d,%d' % (width, height)):
            opts.add_argument(a)
        opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
        self.d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.d.set_page_load_timeout(60)
        self.base = base
        self.console = []

    def quit(self):
        self.d.quit()

    def go(self, fragment=''):
        self.d.get(self.base + '/' + (('#' + fragment) if fragment else ''))

    def wait(self, cond, what, timeout=30):
        try:
            return WebDriverWait(self.d, timeout).until(lambda d: cond())
        except TimeoutException:
            raise AssertionError('timed out waiting for %s; status %r error %r' % (
                what, self.text('status'), self.text('error')))

    def el(self, id_):
        return self.d.find_element(By.ID, id_)

    def text(self, id_):
        try:
            return self.el(id_).text
        except Exception:  # the page may not be there at all
            return None

    def visible(self, id_):
        return self.el(id_).is_displayed()

    def type(self, id_, value, clear=True):
        e = self.el(id_)
        if clear:
            e.clear()
        e.send_keys(value)

    def rows(self, table_id):
        """rows - the text of each body row of a table, read at once (no stale elements)."""
        return self.d.execute_script(
            'return Array.from(document.querySelectorAll(arguments[0])).map('
            'function (r) { return r.innerText; });', '#%s tbody tr' % table_id)

    def click_xpath(self, xpath, what):
        """click_xpath - click what XPATH finds, again if the page redrew it meanwhile."""
        def attempt():
            try:
                self.d.find_element(By.XPATH, xpath).click()
                return True
            except (NoSuchElementException, StaleElementReferenceException):
                return False
        self.wait(attempt, what)

    def click(self, id_):
        self.el(id_).click()

    def logs(self):
        """logs - the console messages so far (kept, since reading them empties the buffer)."""
        self.console += self.d.get_log('browser')
        return self.console

    def shot(self, name):
        os.makedirs(OUT, exist_ok=True)
        self.d.save_screenshot(os.path.join(OUT, name + '.png'))


class BrowserCase(labcase.LabCase):
    """BrowserCase - what every browser test class shares: browsers closed after each test
    with no CSP violation, users, logging in. A subclass starts its lab in start_lab and sets
    cls.store, cls.api and cls.base."""

    def setUp(self):
        need_browser()
        self.browsers = []

    def tearDown(self):
        for b in self.browsers:
            try:
                self.check_no_csp_violation(b)
            finally:
                b.quit()
        self.browsers = []
        self.assertEqual(self.api.sanitizer_report(), '', 'sanitizer report in the API log')

    def browser(self, **kw):
        b = Browser(self.base, **kw)
        self.browsers.append(b)
        return b

    def check_no_csp_violation(self, b):
        bad = [m for m in b.logs() if 'Content Security Policy' in m.get('message', '') or
               'Refused to' in m.get('message', '')]
        self.assertEqual(bad, [], 'CSP violations in the console')

    def new_user(self, role='user'):
        user, pw = 'w%s@%s' % (uuid.uuid4().hex[:8], DOMAIN), 'Web-pass-' + uuid.uuid4().hex[:10]
        self.store.add_user(user, pw, role=role)
        return user, pw

    def log_in(self, b, user, pw, code=None, shot=None):
        b.go()
        b.wait(lambda: b.visible('login-username'), 'the login form')
        b.type('login-username', user)
        b.type('login-password', pw)
        if shot:
            b.shot(shot)
        b.el('login-password').send_keys(Keys.ENTER)
        if code is not None:
            b.wait(lambda: b.visible('login-totp'), 'the TOTP field')
            b.shot('02-login-totp')
            b.type('login-totp', code)
            b.el('login-totp').send_keys(Keys.ENTER)
        b.wait(lambda: b.visible('nav') and user in b.text('who'), 'being logged in')


class WebBrowserTest(BrowserCase):
    @classmethod
    def start_lab(cls):
        need_browser()
        cls.store, cls.dovecot, cls.postfix = cls.lab.mail_stack()
        cls.start_api(web=WEB_DIR, api_config=labcase.MANY_LOGINS)
        cls.base = 'http://127.0.0.1:%d' % cls.nginx.port

    def test_login_totp_enrolment_and_login_with_a_code(self):
        user, pw = self.new_user()
        b = self.browser()
        self.log_in(b, user, pw, shot='01-login')
        # the session is in an HttpOnly cookie: the page's scripts cannot see it
        self.assertEqual(b.d.execute_script('return document.cookie'), '')
        cookies = {c['name']: c for c in b.d.get_cookies()}
        self.assertTrue(cookies['__Host-mw_session']['httpOnly'])
        self.assertTrue(cookies['__Host-mw_session']['secure'])
        self.assertEqual(cookies['__Host-mw_session']['sameSite'], 'Strict')
        b.wait(lambda: b.text('totp-state') == 'Two-factor login is off.', 'the TOTP state')
        b.shot('03-account')
        b.type('totp-enrol-password', pw)
        b.el('totp-enrol-password').send_keys(Keys.ENTER)
        b.wait(lambda: b.visible('totp-enrolment') and b.text('totp-secret'), 'the secret')
        secret = b.text('totp-secret')
        qr = b.el('totp-qr')
        self.assertTrue(qr.get_attribute('src').startswith('data:image/svg+xml;base64,'))
        b.wait(lambda: b.d.execute_script('return arguments[0].naturalWidth', qr) > 0,
               'the QR code to load')
        self.assertEqual(len(b.d.find_elements(By.CSS_SELECTOR, '#totp-recovery li')), 10)
        b.shot('04-totp-enrol')
        step = int(time.time() // 30)
        b.type('totp-confirm-code', totp(secret, step))
        b.el('totp-confirm-code').send_keys(Keys.ENTER)
        b.wait(lambda: b.text('totp-state') == 'Two-factor login is on.', 'TOTP to be on')
        b.shot('05-totp-on')
        # log out and in again: the password alone is not enough, the next code is
        b.click('logout')
        b.wait(lambda: b.visible('login-username'), 'the login form after logging out')
        self.assertNotIn('__Host-mw_session', {c['name'] for c in b.d.get_cookies()})
        self.log_in(b, user, pw, code=totp(secret, step + 1))
        b.shot('06-logged-in-with-totp')

    def test_app_password_for_imap_then_revoked(self):
        user, pw = self.new_user()
        b = self.browser()
        self.log_in(b, user, pw)
        b.go('app-passwords')
        b.wait(lambda: b.visible('apppw-name'), 'the app password form')
        b.type('apppw-name', 'phone <b>&amp;')
        b.click('apppw-smtp')  # IMAP only
        b.type('apppw-current', pw)
        b.shot('07-app-password-form')
        b.el('apppw-current').send_keys(Keys.ENTER)
        b.wait(lambda: b.visible('apppw-new') and b.text('apppw-secret'), 'the new password')
        secret = b.text('apppw-secret')
        b.wait(lambda: len(b.d.find_elements(By.CSS_SELECTOR, '#apppw-table tbody tr')) == 1,
               'the list')
        b.shot('08-app-password-created')
        # the hostile name is shown as text, never as markup
        cell = b.d.find_element(By.CSS_SELECTOR, '#apppw-table tbody td')
        self.assertEqual(cell.text, 'phone <b>&amp;')
        self.assertEqual(b.d.find_elements(By.CSS_SELECTOR, '#apppw-table b'), [])
        self.assertTrue(imap_login(self.dovecot.imap_port, user, secret))
        b.click('apppw-done')
        self.assertEqual(b.text('apppw-secret'), '')
        # revoke it (the page asks first)
        b.click_xpath('//table[@id="apppw-table"]/tbody//button', 'the Revoke button')
        b.d.switch_to.alert.accept()
        b.wait(lambda: not b.d.find_elements(By.CSS_SELECTOR, '#apppw-table tbody tr'),
               'the list to be empty')
        b.shot('09-app-password-revoked')
        self.assertFalse(imap_login(self.dovecot.imap_port, user, secret))

    def test_sessions_tag_rules_and_password_pages(self):
        user, pw = self.new_user()
        b = self.browser()
        self.log_in(b, user, pw)
        # a second session elsewhere (a script with a bearer token), ended from the page
        other = call(self.nginx.port, 'POST', '/api/v1/sessions',
                     body={'username': user, 'password': pw},
                     headers={'User-Agent': 'phone-script/1'}).json['token']
        self.assertEqual(call(self.nginx.port, 'GET', '/api/v1/sessions', token=other).status,
                         200)
        b.go('sessions')
        b.wait(lambda: len(b.rows('sessions-table')) == 2, 'the two sessions')
        b.shot('10-sessions')
        b.click_xpath('//tr[td[contains(., "phone-script/1")]]//button', 'the End button')
        b.wait(lambda: len(b.rows('sessions-table')) == 1 and 'ended' in b.text('status'),
               'the session to end')
        self.assertEqual(call(self.nginx.port, 'GET', '/api/v1/sessions', token=other).status,
                         401)
        b.go('tag-rules')
        b.wait(lambda: b.visible('tr-field'), 'the tag rule form')
        b.type('tr-field', 'List-Id')
        b.type('tr-value', '<script>alert(1)</script>')
        b.type('tr-keyword', 'lists')
        b.el('tr-keyword').send_keys(Keys.ENTER)
        b.wait(lambda: b.d.find_elements(By.CSS_SELECTOR, '#tagrule-table tbody tr'),
               'the new rule')
        self.assertIn('<script>alert(1)</script>',
                      b.d.find_element(By.CSS_SELECTOR, '#tagrule-table tbody').text)
        b.shot('11-tag-rules')
        b.go('account')
        new = 'New-pass-' + uuid.uuid4().hex[:10]
        b.wait(lambda: b.visible('pw-current'), 'the password form')
        b.type('pw-current', pw)
        b.type('pw-new', new)
        b.type('pw-new2', new)
        b.el('pw-new2').send_keys(Keys.ENTER)
        b.wait(lambda: 'changed' in b.text('status'), 'the password to change')
        b.shot('12-password-changed')

    def test_admin_disables_a_user_and_their_page_session_ends(self):
        admin, apw = self.new_user(role='admin')
        user, pw = self.new_user()
        ub = self.browser()
        self.log_in(ub, user, pw)
        ub.go('sessions')
        ub.wait(lambda: ub.d.find_elements(By.CSS_SELECTOR, '#sessions-table tbody tr'),
                'the sessions')
        ab = self.browser()
        self.log_in(ab, admin, apw)
        for view, probe in (('users', '#users-table tbody tr'),
                            ('rate-limits', '#rl-table'),
                            ('dkim', '#dkim-form'),
                            ('audit', '#audit-table tbody tr'),
                            ('allowed-from', '#af-user')):
            ab.go(view)
            ab.wait(lambda: ab.d.find_elements(By.CSS_SELECTOR, probe) and
                    ab.d.find_elements(By.CSS_SELECTOR, probe)[0].is_displayed(), view)
            ab.shot('2x-admin-' + view)
        self.admin_pages_change_things(ab)
        ab.go('users')
        button = '//tr[td[1][text()="%s"]]//button[text()="Disable"]' % user
        ab.click_xpath(button, 'the user row')
        ab.wait(lambda: 'disabled' in ab.text('status'), 'the user to be disabled')
        ab.shot('admin-user-disabled')
        # the audit log shows it first (newest first), and filters by action
        ab.go('audit')
        ab.wait(lambda: ab.rows('audit-table') and 'user.update' in ab.rows('audit-table')[0],
                'the audit entry')
        self.assertIn(user, ab.rows('audit-table')[0])
        ab.type('audit-action', 'session.create')
        ab.el('audit-action').send_keys(Keys.ENTER)
        ab.wait(lambda: ab.rows('audit-table') and
                all('session.create' in r for r in ab.rows('audit-table')), 'the filter')
        ab.shot('admin-audit-filtered')
        # the user's next step on the page finds the session gone
        ub.go('tag-rules')
        ub.d.refresh()
        ub.wait(lambda: ub.visible('login-username'), 'the user to be logged out')
        ub.shot('13-user-session-ended')

    def admin_pages_change_things(self, ab):
        """admin_pages_change_things - create a user and reset their password (they log in to
        IMAP with it), allow a From pattern, add a rate policy, generate a DKIM key."""
        new, pw1, pw2 = ('n%s@%s' % (uuid.uuid4().hex[:8], DOMAIN), 'First-pass-1234567',
                         'Second-pass-1234567')
        ab.go('users')
        ab.wait(lambda: ab.visible('user-name'), 'the user form')
        ab.type('user-name', new)
        ab.type('user-password', pw1)
        ab.el('user-password').send_keys(Keys.ENTER)
        ab.wait(lambda: [r for r in ab.rows('users-table') if new in r], 'the new user')
        self.assertTrue(imap_login(self.dovecot.imap_port, new, pw1))
        ab.click_xpath('//tr[td[1][text()="%s"]]//button[text()="Reset password"]' % new,
                       'the reset button')
        ab.wait(lambda: ab.visible('reset-password'), 'the reset form')
        ab.type('reset-password', pw2)
        ab.el('reset-password').send_keys(Keys.ENTER)
        ab.wait(lambda: 'is set' in ab.text('status'), 'the password to be set')
        self.assertTrue(imap_login(self.dovecot.imap_port, new, pw2))
        self.assertFalse(imap_login(self.dovecot.imap_port, new, pw1))
        # allowed From
        ab.go('allowed-from')
        ab.wait(lambda: ab.visible('af-user'), 'the allowed-From form')
        ab.type('af-user', new)
        ab.el('af-user').send_keys(Keys.ENTER)
        ab.wait(lambda: ab.visible('af-pattern'), 'the pattern form')
        ab.type('af-pattern', 'alias@' + DOMAIN)
        ab.el('af-pattern').send_keys(Keys.ENTER)
        ab.wait(lambda: 'alias@' + DOMAIN in ab.el('af-list').text, 'the pattern')
        ab.shot('2x-admin-allowed-from-added')
        # a rate policy
        ab.go('rate-limits')
        ab.wait(lambda: ab.visible('rl-count'), 'the policy form')
        ab.type('rl-match', new)
        ab.type('rl-count', '77')
        ab.el('rl-count').send_keys(Keys.ENTER)
        ab.wait(lambda: [r for r in ab.rows('rl-table') if new in r and '77' in r], 'the policy')
        ab.shot('2x-admin-rate-policy-added')
        # a DKIM key and the record to publish
        ab.go('dkim')
        ab.wait(lambda: ab.visible('dkim-domain'), 'the DKIM form')
        ab.type('dkim-domain', 'web.example')
        ab.type('dkim-selector', 'webtest')
        ab.el('dkim-selector').send_keys(Keys.ENTER)
        ab.wait(lambda: 'v=DKIM1' in ab.el('dkim-list').text, 'the DKIM record', timeout=90)
        self.assertIn('webtest._domainkey.web.example', ab.el('dkim-list').text)
        ab.shot('2x-admin-dkim-generated')

    def test_admin_sees_dkim_key_states(self):
        """The DKIM page shows each domain's keys with selector, state, created / activated /
        retire-at times and the TXT record to publish, as the API lists them (keys in every
        state of a rotation: set in the store, as a rotation leaves them), at desktop and
        phone width."""
        import sqlite3
        dom = 'states%s.example' % uuid.uuid4().hex[:6]
        states = (('s1', 'retired', 0, 1700000000, 1700500000),
                  ('s2', 'retiring', 1, 1700500000, 4102444800),
                  ('s3', 'active', 1, 1790000000, None),
                  ('s4', 'pending', 0, None, None))
        for sel, *_ in states:
            self.store.ctl('dkim', 'generate', dom, '--selector', sel)
        db = sqlite3.connect(self.store.db)
        with db:
            for sel, state, active, activated, retire in states:
                db.execute('UPDATE dkim_keys SET state = ?, active = ?, activated_at = ?, '
                           'retire_at = ? WHERE domain = ? AND selector = ?',
                           (state, active, activated, retire, dom, sel))
        db.close()
        admin, apw = self.new_user(role='admin')
        for phone in (False, True):
            b = self.browser(width=375, height=740, phone=True) if phone else self.browser()
            self.log_in(b, admin, apw)
            b.go('dkim')
            sel = 'section[data-domain="%s"] tr.dkim-key' % dom
            b.wait(lambda: len(b.d.find_elements(By.CSS_SELECTOR, sel)) == 4, 'the keys')
            rows = b.d.execute_script(
                'return Array.from(document.querySelectorAll(arguments[0])).map(function (r) {'
                ' return [r.dataset.selector, r.dataset.state, r.innerText]; });', sel)
            got = {r[0]: (r[1], r[2]) for r in rows}
            self.assertEqual({k: v[0] for k, v in got.items()},
                             {'s1': 'retired', 's2': 'retiring', 's3': 'active',
                              's4': 'pending'})
            # the state is shown as a word, and the times in UTC
            for sel_, state, _a, activated, retire in states:
                text = got[sel_][1]
                self.assertIn(state, text)
                self.assertIn('%s._domainkey.%s' % (sel_, dom), text)
                self.assertIn('v=DKIM1', text)
                for t in (activated, retire):
                    if t:
                        self.assertIn(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(t)),
                                      text)
            self.assertIn('2100-01-01 00:00:00 UTC', got['s2'][1])  # retire-at of retiring
            # the pending key may be activated by hand, the signing ones not deleted
            self.assertEqual(len(b.d.find_elements(
                By.CSS_SELECTOR, 'tr[data-selector="s4"] button[aria-label^="Activate"]')), 1)
            self.assertEqual(len(b.d.find_elements(
                By.CSS_SELECTOR, 'tr[data-selector="s3"] button[aria-label^="Delete"]')), 0)
            heading = b.d.find_element(By.CSS_SELECTOR, 'section[data-domain="%s"] h3' % dom)
            b.d.execute_script('arguments[0].scrollIntoView()', heading)
            if phone:
                self.assertLessEqual(
                    b.d.execute_script('return document.documentElement.scrollWidth'), 375,
                    'the DKIM page scrolls sideways on a phone')
                b.shot('16-phone-admin-dkim-states')
            else:
                b.shot('2x-admin-dkim-states')

    def test_own_usage_when_policyd_is_not_reachable(self):
        """No mailwarden-policyd in this lab: the Account page says the counters cannot be
        shown, in a sentence, without the API's error text (no socket path reaches a user)."""
        user, pw = self.new_user()
        b = self.browser()
        self.log_in(b, user, pw)
        b.wait(lambda: 'cannot be shown right now' in (b.text('usage-state') or ''),
               'the unavailable message')
        self.assertFalse(b.visible('usage-table'))
        self.assertNotIn('control', b.text('usage-state'))
        self.assertNotIn('.sock', b.text('usage-state'))
        self.assertEqual(b.text('error'), '')
        b.d.execute_script('arguments[0].scrollIntoView()', b.el('usage-state'))
        b.shot('17-usage-unavailable')

    def test_phone_width_keyboard_and_csp_enforced(self):
        user, pw = self.new_user()
        b = self.browser(width=375, height=740, phone=True)
        b.go()
        b.wait(lambda: b.visible('login-username'), 'the login form')
        # keyboard only: the skip link and the fields are reachable with Tab
        body = b.d.find_element(By.TAG_NAME, 'body')
        body.send_keys(Keys.TAB)
        seen = []
        for _ in range(6):
            seen.append(b.d.switch_to.active_element.get_attribute('id') or
                        b.d.switch_to.active_element.get_attribute('class'))
            b.d.switch_to.active_element.send_keys(Keys.TAB)
        self.assertIn('login-username', seen)
        self.assertIn('login-password', seen)
        b.el('login-username').send_keys(user)
        b.el('login-username').send_keys(Keys.TAB)
        b.d.switch_to.active_element.send_keys(pw + Keys.ENTER)
        b.wait(lambda: b.visible('nav'), 'being logged in')
        self.assertEqual(b.d.execute_script('return window.innerWidth'), 375)
        width = b.d.execute_script('return document.documentElement.scrollWidth')
        self.assertLessEqual(width, 375, 'the page scrolls sideways on a phone')
        b.shot('14-phone-account')
        b.go('app-passwords')
        b.wait(lambda: b.visible('apppw-name'), 'app passwords')
        self.assertLessEqual(b.d.execute_script('return document.documentElement.scrollWidth'),
                             375)
        b.shot('15-phone-app-passwords')
        # a link followed with the keyboard moves the focus to the new page's heading
        link = b.d.find_element(By.CSS_SELECTOR, '#nav a[href="#sessions"]')
        link.send_keys(Keys.ENTER)
        b.wait(lambda: b.d.switch_to.active_element.get_attribute('id') == 'h-sessions',
               'the focus on the heading')
        # on a phone each cell says which column it is (the heading row is hidden)
        b.wait(lambda: b.rows('sessions-table'), 'the sessions')
        cell = b.d.find_element(By.CSS_SELECTOR, '#sessions-table tbody td')
        self.assertEqual(cell.get_attribute('data-label'), 'Started')
        self.assertIn('Started', b.d.execute_script(
            'return getComputedStyle(arguments[0], "::before").content', cell))
        self.assertLessEqual(b.d.execute_script('return document.documentElement.scrollWidth'),
                             375)
        b.shot('16-phone-sessions')
        # the policy is in force: an inline script added to the page does not run, and
        # the browser reports it (this one violation is ours, so it is taken out again)
        ran = b.d.execute_script(
            'window.__mwViolations = 0;'
            'document.addEventListener("securitypolicyviolation", function () {'
            '  window.__mwViolations++; });'
            'var s = document.createElement("script"); s.textContent = "window.__mwRan = 1;";'
            'document.body.appendChild(s); return window.__mwRan === 1;')
        self.assertFalse(ran)
        b.wait(lambda: b.d.execute_script('return window.__mwViolations') >= 1,
               'the violation event')
        logs = b.logs()
        self.assertTrue([m for m in logs if 'Content Security Policy' in m['message']], logs)
        b.console = [m for m in logs if 'Content Security Policy' not in m['message']]



class WebUsageBrowserTest(BrowserCase, labcase.PolicydCase):
    """A user's own rate-limit usage on their Account page, counted by a real
    mailwarden-policyd from real SMTP AUTH submissions through Postfix (issue 15). The API runs
    as the policy daemon's user, as its control socket requires (test_api_resources.py)."""

    @classmethod
    def start_lab(cls):
        need_browser()
        cls.store = cls.lab.store()
        cls.dovecot = cls.lab.dovecot(cls.store)
        cls.policyd = cls.lab.policyd(cls.store, limits=USAGE_LIMITS,
                                      extra='store_refresh = 1s\n')
        cls.postfix = cls.lab.postfix(cls.dovecot, policy_services=[cls.policyd.service])
        cls.api = cls.lab.api(cls.store, run_as='dovecot', api_config=(
            'max_sessions_per_user = 1000\n\n[policyd]\ncontrol_socket = %s\n'
            % cls.policyd.control))
        cls.nginx = cls.lab.nginx(fastcgi=cls.api.fastcgi(), web=WEB_DIR)
        cls.base = 'http://127.0.0.1:%d' % cls.nginx.port

    def usage_rows(self, b):
        return b.d.execute_script(
            'return Array.from(document.querySelectorAll("#usage-table tbody tr")).map('
            'function (r) { return Array.from(r.cells).map(function (c) {'
            ' return c.textContent; }); });')

    def test_user_page_shows_own_counters(self):
        user, pw = self.new_user()
        other, opw = self.new_user()
        self.assertEqual(submit(self.postfix.smtp_port, user, pw, 3), [250, 250, 250])
        self.assertEqual(submit(self.postfix.smtp_port, other, opw, 1), [250])
        b = self.browser()
        self.log_in(b, user, pw)
        b.wait(lambda: b.visible('usage-table') and self.usage_rows(b), 'the counters')
        rows = self.usage_rows(b)
        self.assertEqual([r[:3] for r in rows], [[USAGE_LIMITS[0], '3', '5']])
        self.assertRegex(rows[0][3], r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$')
        self.assertIn('Counted as of', b.text('usage-state'))
        b.d.execute_script('arguments[0].scrollIntoView()', b.el('usage-state'))
        b.shot('18-account-usage')
        # one more message, then Refresh shows it
        self.assertEqual(submit(self.postfix.smtp_port, user, pw, 1), [250])
        b.click('usage-refresh')
        b.wait(lambda: [r[1] for r in self.usage_rows(b)] == ['4'], 'the refreshed count')
        self.assertEqual(b.text('error'), '')
        # the page asks for the logged-in user's counters only; the other user's are refused
        # to this session, and so is a reset of its own
        status = b.d.execute_async_script(
            'var done = arguments[arguments.length - 1];'
            'fetch("/api/v1/users/" + encodeURIComponent(arguments[0]) + "/ratelimit",'
            ' {credentials: "same-origin"}).then(function (r) { done(r.status); });', other)
        self.assertEqual(status, 403)


if __name__ == '__main__':
    unittest.main()
