/* app.js - the mailwarden web page: plain JavaScript, no library, no build step.
 *
 * It talks only to the API on the same origin (/api/v1/). The session lives in an
 * HttpOnly cookie that this script cannot read; the API hands the script a CSRF token,
 * which it sends as X-CSRF-Token with every change. Every value from the API is put into
 * the page with textContent or as an attribute value, never parsed as markup, and
 * QR codes (SVG drawn by the API) are shown as <img> from a data: URI, where no script runs.
 * The page's Content-Security-Policy (nginx) allows scripts, styles and connections from
 * this origin only, and images from this origin and data: URIs.
 */
'use strict';

(function () {
  var API = '/api/v1';
  var me = null;          /* {username, role, csrf_token} once logged in */
  var auditNext = null;   /* the id to page back from in the audit log */
  var usersNext = null;
  var resetUser = null;
  var rlUser = null;
  var afUser = null;

  function $(id) { return document.getElementById(id); }

  /* el - an element with attributes and children (strings become text nodes) */
  function el(tag, attrs) {
    var e = document.createElement(tag), i, k, c;
    if (attrs) for (k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'onclick') e.addEventListener('click', attrs[k]);
      else e.setAttribute(k, attrs[k]);
    }
    for (i = 2; i < arguments.length; i++) {
      c = arguments[i];
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  function say(msg) { $('error').textContent = ''; $('status').textContent = msg; }
  function fail(msg) { $('status').textContent = ''; $('error').textContent = msg; }

  function when(t) {
    if (t === null || t === undefined || t === 0) return '';
    return new Date(t * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }

  function u(s) { return encodeURIComponent(s); }

  /* api - one request; resolves {status, json}. Changes carry the CSRF token. */
  function api(method, path, body) {
    var h = {};
    if (body !== undefined) h['Content-Type'] = 'application/json';
    if (method !== 'GET' && me && me.csrf_token) h['X-CSRF-Token'] = me.csrf_token;
    return fetch(API + path, {
      method: method, headers: h, credentials: 'same-origin', cache: 'no-store',
      redirect: 'error', body: body !== undefined ? JSON.stringify(body) : undefined
    }).then(function (r) {
      return r.text().then(function (t) {
        var j = null;
        try { j = t ? JSON.parse(t) : null; } catch (e) { j = null; }
        if (r.status === 401 && me && path !== '/sessions/cookie') loggedOut('Your session has ended; please log in again.');
        return { status: r.status, json: j };
      });
    }, function () { return { status: 0, json: null }; });
  }

  function errText(a) {
    if (a.json && a.json.error) return a.json.error.message || a.json.error.code;
    if (a.status === 0) return 'The server cannot be reached.';
    return 'The server answered ' + a.status + '.';
  }

  /* ok - a 2xx answer, or the error shown and false */
  function ok(a) {
    if (a.status >= 200 && a.status < 300) return true;
    if (a.status !== 401) fail(errText(a));
    return false;
  }

  function fieldValue(id) { return $(id).value; }
  function optional(o, k, v) { if (v !== '') o[k] = v; return o; }

  /* ---- views ---- */
  var views = ['login', 'account', 'app-passwords', 'sessions', 'tag-rules', 'users',
               'allowed-from', 'rate-limits', 'dkim', 'audit'];
  var adminViews = ['users', 'allowed-from', 'rate-limits', 'dkim', 'audit'];
  var loaders = {};

  var moved = false; /* focus moves to a page's heading when the person went there */

  function show(name) {
    var i, v, links = document.querySelectorAll('#nav a');
    if (!me) name = 'login';
    else if (views.indexOf(name) < 0 || name === 'login' ||
             (adminViews.indexOf(name) >= 0 && me.role !== 'admin')) name = 'account';
    for (i = 0; i < views.length; i++) {
      v = $('view-' + views[i]);
      v.hidden = views[i] !== name;
    }
    for (i = 0; i < links.length; i++) {
      if (links[i].getAttribute('href') === '#' + name) links[i].setAttribute('aria-current', 'page');
      else links[i].removeAttribute('aria-current');
    }
    document.title = (name === 'login' ? 'Log in' : $('view-' + name).querySelector('h2').textContent) + ' - mailwarden';
    if (loaders[name]) loaders[name]();
    var first = $('view-' + name).querySelector('input, select, button');
    if (name === 'login' && first) first.focus();
    else if (moved) $('view-' + name).querySelector('h2').focus();
  }

  function route() { show(location.hash.replace(/^#/, '') || 'account'); }

  /* reauthFields - each <div class="reauth" data-id="P"> becomes the fields a change asks
     for again (a stolen session alone must not make it): the current password P-current
     and, shown only when TOTP is on, the authenticator code P-code */
  function reauthFields() {
    var d = document.querySelectorAll('.reauth'), i, p;
    for (i = 0; i < d.length; i++) {
      p = d[i].getAttribute('data-id');
      d[i].parentNode.insertBefore(el('label', { 'for': p + '-current', text: 'Current password' }), d[i]);
      d[i].parentNode.insertBefore(el('input', { id: p + '-current', type: 'password',
        autocomplete: 'current-password', required: '' }), d[i]);
      d[i].parentNode.replaceChild(el('div', { 'class': 'totp-needed' },
        el('label', { 'for': p + '-code', text: 'Authenticator code (when two-factor login is on)' }),
        el('input', { id: p + '-code', autocomplete: 'one-time-code', inputmode: 'numeric' })), d[i]);
    }
  }

  /* totpFields - the code fields of the forms are shown only when TOTP is on */
  function totpFields(on) {
    var f = document.querySelectorAll('.totp-needed'), i;
    for (i = 0; i < f.length; i++) f[i].hidden = !on;
  }

  function loggedIn(j) {
    me = j;
    totpFields(me.totp === true);
    $('nav').hidden = false;
    $('who').textContent = me.username + (me.role === 'admin' ? ' (admin)' : '');
    var admin = document.querySelectorAll('#nav .admin'), i;
    for (i = 0; i < admin.length; i++) admin[i].hidden = me.role !== 'admin';
    route();
  }

  function loggedOut(msg) {
    me = null;
    forgetShown();
    $('nav').hidden = true;
    $('login-totp-box').hidden = true;
    $('login-form').reset();
    show('login');
    if (msg) fail(msg);
  }

  /* ---- log in / out ---- */
  $('login-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var body = { username: fieldValue('login-username'), password: fieldValue('login-password') };
    optional(body, 'totp', fieldValue('login-totp').trim());
    api('POST', '/sessions/cookie', body).then(function (a) {
      if (a.status === 201) {
        $('login-password').value = '';
        $('login-totp').value = '';
        say('');
        return api('GET', '/sessions/current').then(function (c) {
          if (c.status === 200) loggedIn(c.json);
          else if (c.status === 401) fail('The browser did not keep the session cookie. It is sent over HTTPS only: open this page over HTTPS.');
          else fail(errText(c));
        });
      }
      if (a.json && a.json.error && a.json.error.totp_required) {
        $('login-totp-box').hidden = false;
        $('login-totp').focus();
        fail($('login-totp').value ? 'That code is not right.' : 'Enter the code from your authenticator app.');
        return;
      }
      fail(errText(a));
    });
  });

  $('logout').addEventListener('click', function () {
    api('DELETE', '/sessions/current').then(function () { loggedOut(''); say('You are logged out.'); });
  });

  /* ---- account: password and TOTP ---- */
  loaders.account = function () {
    api('GET', '/sessions/current').then(function (a) {
      if (!ok(a)) return;
      var on = a.json.totp === true;
      me.totp = on;
      totpFields(on);
      $('totp-state').textContent = 'Two-factor login is ' + (on ? 'on.' : 'off.');
      $('totp-delete-form').hidden = !on;
      $('totp-enrol-form').hidden = on;
    });
    loadMyUsage();
  };

  /* loadMyUsage - the person's own rate-limit counters (from mailwarden-policyd, through the
     API); when the daemon cannot be reached, a sentence in place of the table, not an error */
  function loadMyUsage() {
    var asked = me.username;
    $('usage-state').textContent = 'Reading your counters...';
    api('GET', '/users/' + u(asked) + '/ratelimit').then(function (a) {
      if (!me || me.username !== asked) return;
      var tb = clearBody('usage-table'), limits;
      if (a.status !== 200 || !a.json || !Array.isArray(a.json.limits)) {
        $('usage-table').hidden = true;
        if (a.status === 401) return;
        $('usage-state').textContent = a.status === 503 || a.status === 502 || a.status === 0
          ? 'Your sending counters cannot be shown right now: the rate-limit service is not reachable. Try again later, or tell your administrator if this lasts.'
          : 'Your sending counters cannot be shown: ' + errText(a);
        return;
      }
      limits = a.json.limits;
      limits.forEach(function (l) {
        addRow(tb, row(String(l.limit), String(l.used), String(l.count),
                       l.resets_at ? when(l.resets_at) : 'now'));
      });
      $('usage-table').hidden = limits.length === 0;
      $('usage-state').textContent = limits.length === 0 ? 'No sending limit applies to you.'
        : limits.some(function (l) { return l.degraded; })
          ? 'The counters are approximate right now (the counter store is degraded).'
          : 'Counted as of ' + when(Math.floor(Date.now() / 1000)) + '.';
    });
  }
  $('usage-refresh').addEventListener('click', function () { loadMyUsage(); });

  $('password-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (fieldValue('pw-new') !== fieldValue('pw-new2')) { fail('The two new passwords differ.'); return; }
    var body = { current_password: fieldValue('pw-current'), password: fieldValue('pw-new') };
    optional(body, 'code', fieldValue('pw-code').trim());
    api('POST', '/users/' + u(me.username) + '/password', body).then(function (a) {
      if (!ok(a)) return;
      $('password-form').reset();
      say('Your password is changed.');
    });
  });

  $('totp-enrol-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    api('POST', '/users/' + u(me.username) + '/totp', { current_password: fieldValue('totp-enrol-password') }).then(function (a) {
      if (!ok(a)) return;
      $('totp-enrol-form').reset();
      $('totp-secret').textContent = a.json.secret;
      if (a.json.otpauth_qr_svg) $('totp-qr').src = 'data:image/svg+xml;base64,' + btoa(a.json.otpauth_qr_svg);
      var list = $('totp-recovery'), i;
      while (list.firstChild) list.removeChild(list.firstChild);
      for (i = 0; i < a.json.recovery_codes.length; i++) list.appendChild(el('li', null, el('code', { text: a.json.recovery_codes[i] })));
      $('totp-enrolment').hidden = false;
      $('totp-confirm-code').focus();
      say('Scan the code, then confirm with a code from the app.');
    });
  });

  $('totp-confirm-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    api('POST', '/users/' + u(me.username) + '/totp/confirm', { code: fieldValue('totp-confirm-code').trim() }).then(function (a) {
      if (!ok(a)) return;
      $('totp-confirm-form').reset();
      $('totp-enrolment').hidden = true;
      $('totp-secret').textContent = '';
      $('totp-qr').removeAttribute('src');
      say('Two-factor login is on.');
      loaders.account();
    });
  });

  $('totp-delete-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    api('DELETE', '/users/' + u(me.username) + '/totp', { password: fieldValue('totp-delete-password'), code: fieldValue('totp-delete-code').trim() }).then(function (a) {
      if (!ok(a)) return;
      $('totp-delete-form').reset();
      say('Two-factor login is off.');
      loaders.account();
    });
  });

  /* ---- app passwords ---- */
  function clearBody(table) {
    var tb = $(table).tBodies[0];
    while (tb.firstChild) tb.removeChild(tb.firstChild);
    return tb;
  }

  /* addRow - append tr to the table body tb; each cell is labelled with its column's
     heading (shown before the value on a phone, where the heading row is hidden) */
  function addRow(tb, tr) {
    var th = tb.parentNode.tHead ? tb.parentNode.tHead.rows[0].cells : [], i;
    for (i = 0; i < tr.cells.length && i < th.length; i++) {
      if (th[i].textContent && !th[i].querySelector('.sr')) tr.cells[i].setAttribute('data-label', th[i].textContent);
    }
    tb.appendChild(tr);
  }

  function row() {
    var tr = el('tr'), i;
    for (i = 0; i < arguments.length; i++) {
      var c = arguments[i];
      tr.appendChild(typeof c === 'string' || typeof c === 'number' ? el('td', { text: String(c) }) : el('td', null, c));
    }
    return tr;
  }

  loaders['app-passwords'] = function () {
    api('GET', '/users/' + u(me.username) + '/app-passwords').then(function (a) {
      if (!ok(a)) return;
      var tb = clearBody('apppw-table');
      a.json.app_passwords.forEach(function (p) {
        addRow(tb, row(p.name, p.protocols.join(', '), when(p.expires_at) || 'never',
          (p.allow_nets || []).join(', ') || 'any',
          p.last_used_at ? when(p.last_used_at) + (p.last_ip ? ' from ' + p.last_ip : '') : 'never',
          el('button', { type: 'button', 'aria-label': 'Revoke ' + p.name, text: 'Revoke', onclick: function () {
            if (!window.confirm('Revoke the app password "' + p.name + '"?')) return;
            api('DELETE', '/users/' + u(me.username) + '/app-passwords/' + u(String(p.id))).then(function (d) {
              if (ok(d)) { say('Revoked "' + p.name + '".'); loaders['app-passwords'](); }
            });
          } })));
      });
    });
  };

  $('apppw-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var protos = [], body, nets, exp;
    if ($('apppw-imap').checked) protos.push('imap');
    if ($('apppw-smtp').checked) protos.push('smtp');
    body = { name: fieldValue('apppw-name'), protocols: protos, current_password: fieldValue('apppw-current') };
    optional(body, 'code', fieldValue('apppw-code').trim());
    nets = fieldValue('apppw-nets').split(',').map(function (s) { return s.trim(); }).filter(function (s) { return s !== ''; });
    if (nets.length) body.allow_nets = nets;
    exp = fieldValue('apppw-expires');
    if (exp) body.expires_at = Math.floor(Date.parse(exp + 'T23:59:59Z') / 1000);
    api('POST', '/users/' + u(me.username) + '/app-passwords', body).then(function (a) {
      if (!ok(a)) return;
      $('apppw-form').reset();
      $('apppw-secret').textContent = a.json.password;
      if (a.json.password_qr_svg) $('apppw-qr').src = 'data:image/svg+xml;base64,' + btoa(a.json.password_qr_svg);
      $('apppw-new').hidden = false;
      $('apppw-done').focus();
      say('App password "' + a.json.name + '" created. Copy it now: it is not shown again.');
      loaders['app-passwords']();
    });
  });

  $('apppw-done').addEventListener('click', function () {
    $('apppw-secret').textContent = '';
    $('apppw-qr').removeAttribute('src');
    $('apppw-new').hidden = true;
    say('');
  });

  /* ---- sessions ---- */
  loaders.sessions = function () {
    api('GET', '/sessions').then(function (a) {
      if (!ok(a)) return;
      var tb = clearBody('sessions-table');
      a.json.sessions.forEach(function (s) {
        addRow(tb, row(when(s.created_at), when(s.last_seen_at), s.client_ip, s.user_agent,
          s.current ? el('span', { text: 'this session' })
            : el('button', { type: 'button', text: 'End', 'aria-label': 'End the session from ' + s.client_ip + ' started ' + when(s.created_at), onclick: function () {
              api('DELETE', '/sessions/' + u(s.id)).then(function (d) { if (ok(d)) { say('Session ended.'); loaders.sessions(); } });
            } })));
      });
    });
  };

  /* ---- tag rules ---- */
  loaders['tag-rules'] = function () {
    api('GET', '/users/' + u(me.username) + '/tag-rules').then(function (a) {
      if (!ok(a)) return;
      var tb = clearBody('tagrule-table');
      (a.json.rules || a.json.tag_rules || []).forEach(function (r) {
        addRow(tb, row(r.field || '', r.match, r.value || '', r.keyword || '', r.mailbox || '',
          el('button', { type: 'button', text: 'Delete', 'aria-label': 'Delete the rule on ' + (r.field || '') + ' ' + (r.value || ''), onclick: function () {
            api('DELETE', '/users/' + u(me.username) + '/tag-rules/' + u(String(r.id))).then(function (d) { if (ok(d)) { say('Rule deleted.'); loaders['tag-rules'](); } });
          } })));
      });
    });
  };

  $('tagrule-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var body = { field: fieldValue('tr-field'), match: fieldValue('tr-match') };
    optional(body, 'value', fieldValue('tr-value'));
    optional(body, 'keyword', fieldValue('tr-keyword'));
    optional(body, 'mailbox', fieldValue('tr-mailbox'));
    api('POST', '/users/' + u(me.username) + '/tag-rules', body).then(function (a) {
      if (!ok(a)) return;
      $('tagrule-form').reset();
      say('Rule added.');
      loaders['tag-rules']();
    });
  });

  /* ---- admin: users ---- */
  function userRow(x) {
    var toggle = x.status === 'disabled' ? 'active' : 'disabled';
    return row(x.username, x.role, x.status, when(x.password_changed_at),
      el('span', null,
        el('button', { type: 'button', text: toggle === 'disabled' ? 'Disable' : 'Enable', 'aria-label': (toggle === 'disabled' ? 'Disable ' : 'Enable ') + x.username, onclick: function () {
          api('PATCH', '/users/' + u(x.username), { status: toggle }).then(function (d) {
            if (ok(d)) { say(x.username + ' is now ' + toggle + '.'); loaders.users(); }
          });
        } }), ' ',
        el('button', { type: 'button', text: 'Reset password', 'aria-label': 'Reset the password of ' + x.username, onclick: function () {
          resetUser = x.username;
          $('reset-title').textContent = 'Reset the password of ' + x.username;
          $('reset-form').hidden = false;
          $('reset-password').focus();
        } })));
  }

  function loadUsers(after) {
    api('GET', '/users?limit=50' + (after ? '&after=' + u(String(after)) : '')).then(function (a) {
      if (!ok(a)) return;
      var tb = after ? $('users-table').tBodies[0] : clearBody('users-table');
      a.json.users.forEach(function (x) { addRow(tb, userRow(x)); });
      usersNext = a.json.next_after;
      $('users-more').hidden = usersNext === null || usersNext === undefined;
    });
  }
  loaders.users = function () { loadUsers(null); };
  $('users-more').addEventListener('click', function () { loadUsers(usersNext); });

  $('user-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var body = { username: fieldValue('user-name'), role: fieldValue('user-role'), status: fieldValue('user-status') };
    optional(body, 'password', fieldValue('user-password'));
    api('POST', '/users', body).then(function (a) {
      if (!ok(a)) return;
      $('user-form').reset();
      say('User ' + a.json.username + ' created' + (a.json.generated_password ? ' with the password ' + a.json.generated_password : '') + '.');
      loaders.users();
    });
  });

  $('reset-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    api('POST', '/users/' + u(resetUser) + '/password', { password: fieldValue('reset-password') }).then(function (a) {
      if (!ok(a)) return;
      $('reset-form').reset();
      $('reset-form').hidden = true;
      say('The password of ' + resetUser + ' is set.');
    });
  });

  /* ---- admin: allowed From ---- */
  function loadAf() {
    api('GET', '/users/' + u(afUser) + '/allowed-from').then(function (a) {
      if (!ok(a)) return;
      var list = $('af-list');
      while (list.firstChild) list.removeChild(list.firstChild);
      $('af-add-form').hidden = false;
      (a.json.patterns || []).forEach(function (p) {
        list.appendChild(el('li', null, el('code', { text: p }), ' ',
          el('button', { type: 'button', text: 'Remove', 'aria-label': 'Remove ' + p, onclick: function () {
            api('DELETE', '/users/' + u(afUser) + '/allowed-from/' + u(p)).then(function (d) { if (ok(d)) { say('Removed ' + p + '.'); loadAf(); } });
          } })));
      });
    });
  }
  $('af-load-form').addEventListener('submit', function (ev) { ev.preventDefault(); afUser = fieldValue('af-user'); loadAf(); });
  $('af-add-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    api('POST', '/users/' + u(afUser) + '/allowed-from', { pattern: fieldValue('af-pattern') }).then(function (a) {
      if (ok(a)) { $('af-add-form').reset(); say('Pattern added.'); loadAf(); }
    });
  });

  /* ---- admin: rate limits ---- */
  loaders['rate-limits'] = function () {
    api('GET', '/ratelimit/policies').then(function (a) {
      if (!ok(a)) return;
      var tb = clearBody('rl-table');
      (a.json.policies || []).forEach(function (p) {
        var scope = p.direction && p.direction !== 'outbound' ? p.direction + ':' + p.scope : p.scope;
        addRow(tb, row(scope, p.match || '(every)', p.metric, p.count, p.window_seconds, p.action, p.username || '',
          el('button', { type: 'button', text: 'Delete', 'aria-label': 'Delete policy ' + p.id, onclick: function () {
            api('DELETE', '/ratelimit/policies/' + u(String(p.id))).then(function (d) { if (ok(d)) { say('Policy deleted.'); loaders['rate-limits'](); } });
          } })));
      });
    });
  };
  $('rl-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var body = { scope: fieldValue('rl-scope'), metric: fieldValue('rl-metric'), count: parseInt(fieldValue('rl-count'), 10),
                 window_seconds: parseInt(fieldValue('rl-window'), 10), action: fieldValue('rl-action'),
                 direction: fieldValue('rl-direction') };
    optional(body, 'match', fieldValue('rl-match'));
    optional(body, 'username', fieldValue('rl-username'));
    api('POST', '/ratelimit/policies', body).then(function (a) { if (ok(a)) { $('rl-form').reset(); say('Policy added.'); loaders['rate-limits'](); } });
  });
  function loadUsage() {
    api('GET', '/users/' + u(rlUser) + '/ratelimit').then(function (a) {
      if (!ok(a)) return;
      $('rl-usage').textContent = JSON.stringify(a.json, null, 2);
      $('rl-usage').hidden = false;
      $('rl-reset').hidden = false;
    });
  }
  $('rl-user-form').addEventListener('submit', function (ev) { ev.preventDefault(); rlUser = fieldValue('rl-user'); loadUsage(); });
  $('rl-reset').addEventListener('click', function () {
    api('DELETE', '/users/' + u(rlUser) + '/ratelimit').then(function (a) { if (ok(a)) { say('Counters reset.'); loadUsage(); } });
  });

  /* ---- admin: DKIM ---- */
  /* Keys grouped by domain, one table each: selector, state (pending, active, retiring,
     retired, inactive: lib/mw-dkim-rotate.c), when it was created, became active and
     retires (or retired), and the TXT record to publish. */
  var dkimStateHelp = {
    pending: 'made by a rotation; signs once its TXT record is visible in DNS',
    active: 'signs the domain\'s mail',
    retiring: 'still signs beside the new key until its retire time',
    retired: 'no longer signs; withdraw its record some days later',
    inactive: 'does not sign (another key was activated by hand)'
  };
  function dkimKeyRow(k) {
    var id = k.domain + '/' + k.selector;
    var state = k.state || (k.active ? 'active' : 'inactive');
    var mayActivate = state === 'inactive' || state === 'pending';
    return el('tr', { 'class': 'dkim-key', 'data-selector': k.selector, 'data-state': state },
      el('td', { 'data-label': 'Selector' }, el('code', { text: k.selector })),
      el('td', { 'data-label': 'State' },
        el('span', { 'class': 'state state-' + state, text: state, title: dkimStateHelp[state] || '' })),
      el('td', { 'data-label': 'Created', text: when(k.created_at) || '-' }),
      el('td', { 'data-label': 'Activated', text: when(k.activated_at) || '-' }),
      el('td', { 'data-label': state === 'retired' ? 'Retired' : 'Retires', text: when(k.retire_at) || '-' }),
      el('td', { 'data-label': 'Publish in DNS' },
        el('code', { text: k.dns_name || (k.selector + '._domainkey.' + k.domain) }), ' TXT',
        el('pre', { 'class': 'txt', text: k.txt_record || '' })),
      el('td', { 'data-label': 'Actions' },
        mayActivate ? el('button', { type: 'button', text: 'Activate', 'aria-label': 'Activate ' + id, onclick: function () {
          api('POST', '/dkim/keys/' + u(k.domain) + '/' + u(k.selector) + '/activate').then(function (d) { if (ok(d)) { say(id + ' is active.'); loaders.dkim(); } });
        } }) : null, ' ',
        k.active ? null : el('button', { type: 'button', text: 'Delete', 'aria-label': 'Delete ' + id, onclick: function () {
          if (!window.confirm('Delete the key ' + id + '?')) return;
          api('DELETE', '/dkim/keys/' + u(k.domain) + '/' + u(k.selector)).then(function (d) { if (ok(d)) { say(id + ' deleted.'); loaders.dkim(); } });
        } })));
  }
  loaders.dkim = function () {
    api('GET', '/dkim/keys').then(function (a) {
      if (!ok(a)) return;
      var box = $('dkim-list'), domains = [], byDomain = {};
      while (box.firstChild) box.removeChild(box.firstChild);
      (a.json.keys || []).forEach(function (k) {
        if (!byDomain[k.domain]) { byDomain[k.domain] = []; domains.push(k.domain); }
        byDomain[k.domain].push(k);
      });
      domains.sort();
      if (!domains.length) box.appendChild(el('p', { text: 'No DKIM keys yet.' }));
      domains.forEach(function (d) {
        var tbody = el('tbody');
        byDomain[d].forEach(function (k) { tbody.appendChild(dkimKeyRow(k)); });
        box.appendChild(el('section', { 'class': 'dkim-domain', 'data-domain': d, 'aria-label': 'DKIM keys of ' + d },
          el('h3', { text: d }),
          el('table', { 'class': 'dkim-table' },
            el('caption', { text: byDomain[d].length + (byDomain[d].length === 1 ? ' key' : ' keys') + ' (times in UTC)' }),
            el('thead', null, el('tr', null,
              el('th', { scope: 'col', text: 'Selector' }), el('th', { scope: 'col', text: 'State' }),
              el('th', { scope: 'col', text: 'Created' }), el('th', { scope: 'col', text: 'Activated' }),
              el('th', { scope: 'col', text: 'Retires / retired' }),
              el('th', { scope: 'col', text: 'Publish in DNS' }), el('th', { scope: 'col', text: 'Actions' }))),
            tbody)));
      });
    });
  };
  $('dkim-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var body = { domain: fieldValue('dkim-domain') };
    optional(body, 'selector', fieldValue('dkim-selector'));
    if ($('dkim-activate').checked) body.activate = true;
    api('POST', '/dkim/keys', body).then(function (a) { if (ok(a)) { $('dkim-form').reset(); say('Key generated.'); loaders.dkim(); } });
  });

  /* ---- admin: audit log, newest first ---- */
  function loadAudit(before) {
    var q = 'order=desc&limit=50';
    ['actor', 'action', 'target'].forEach(function (k) {
      var v = fieldValue('audit-' + k).trim();
      if (v) q += '&' + k + '=' + u(v);
    });
    if (before) q += '&before=' + u(String(before));
    api('GET', '/audit?' + q).then(function (a) {
      if (!ok(a)) return;
      var tb = before ? $('audit-table').tBodies[0] : clearBody('audit-table');
      (a.json.entries || []).forEach(function (e) {
        addRow(tb, row(when(e.at || e.time || e.created_at), e.actor, e.action, e.target || '', e.client || '',
          e.details ? (typeof e.details === 'string' ? e.details : JSON.stringify(e.details)) : ''));
      });
      auditNext = a.json.next_before;
      $('audit-older').hidden = auditNext === null || auditNext === undefined;
    });
  }
  loaders.audit = function () { loadAudit(null); };
  $('audit-form').addEventListener('submit', function (ev) { ev.preventDefault(); loadAudit(null); });
  $('audit-older').addEventListener('click', function () { loadAudit(auditNext); });

  /* ---- start ---- */
  /* forgetShown - secrets shown once leave the page when the person leaves it */
  function forgetShown() {
    $('apppw-secret').textContent = '';
    $('apppw-qr').removeAttribute('src');
    $('apppw-new').hidden = true;
    $('totp-secret').textContent = '';
    $('totp-qr').removeAttribute('src');
    $('totp-enrolment').hidden = true;
    var list = $('totp-recovery');
    while (list.firstChild) list.removeChild(list.firstChild);
  }

  reauthFields();
  window.addEventListener('hashchange', function () {
    say(''); $('error').textContent = ''; forgetShown(); moved = true; route();
  });
  api('GET', '/sessions/current').then(function (a) {
    if (a.status === 200) loggedIn(a.json); else loggedOut('');
  });
}());
