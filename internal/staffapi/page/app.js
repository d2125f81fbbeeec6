// The approvals and exceptions page. Every piece of data comes from the staff
// API with "Authorization: Bearer <token>"; the token lives in sessionStorage
// (this tab only). Data is only ever put in the page with textContent.
(function () {
  'use strict';

  var TOKEN_KEY = 'coiflow.staffToken';
  // The API is beside the page: /app -> /api/..., /<stage>/app -> /<stage>/api/...
  var base = location.pathname.replace(/\/app\/?$/, '');

  function $(id) { return document.getElementById(id); }

  // el builds an element; text is set with textContent, attributes one by one.
  function el(tag, opts, children) {
    var e = document.createElement(tag);
    opts = opts || {};
    if (opts.cls) { e.className = opts.cls; }
    if (opts.text !== undefined && opts.text !== null) { e.textContent = String(opts.text); }
    if (opts.title) { e.title = opts.title; }
    if (opts.attrs) {
      Object.keys(opts.attrs).forEach(function (k) { e.setAttribute(k, opts.attrs[k]); });
    }
    (children || []).forEach(function (c) { if (c) { e.appendChild(c); } });
    return e;
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

  // A token in the URL fragment (#token=...) is taken and removed from the
  // address bar and the history entry.
  function takeFragmentToken() {
    var h = location.hash.replace(/^#/, '');
    if (!h) { return false; }
    var t = new URLSearchParams(h).get('token');
    if (!t) { return false; }
    sessionStorage.setItem(TOKEN_KEY, t.trim());
    history.replaceState(null, '', location.pathname + location.search);
    return true;
  }

  function ApiError(status, message, requestId) {
    this.status = status;
    this.message = message;
    this.requestId = requestId || '';
  }
  ApiError.prototype.toString = function () {
    return this.message + (this.requestId ? ' (request ' + this.requestId + ')' : '');
  };

  // newKey is a fresh Idempotency-Key (crypto.randomUUID needs a secure
  // context; the fallback builds the same random UUID v4 by hand).
  function newKey() {
    if (window.crypto && typeof crypto.randomUUID === 'function') { return crypto.randomUUID(); }
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  // Action keys: one Idempotency-Key per click of an action button. A request
  // that ended without a definite answer (no response, or a 5xx) keeps its key
  // for the next click on the same action: that click is a retry, and the API
  // answers it with the first request's outcome instead of acting twice.
  var pendingKeys = {};
  function actionKey(action) {
    if (!pendingKeys[action]) { pendingKeys[action] = newKey(); }
    return pendingKeys[action];
  }
  function settleKey(action, err) {
    if (!err || (err.status && err.status < 500)) { delete pendingKeys[action]; }
  }

  // session counts sign-outs: an answer to a request made before the last
  // sign-out is dropped, so a late reply never refills the page afterwards.
  var session = 0;

  // inflight counts API requests under way; while there are any the body
  // carries data-busy (a progress cursor, and what tests wait on).
  var inflight = 0;
  function track(delta) {
    inflight += delta;
    if (inflight > 0) { document.body.setAttribute('data-busy', String(inflight)); } else { document.body.removeAttribute('data-busy'); }
  }

  // api calls the staff API and returns the decoded JSON (or the Response when
  // raw is set). A 401 signs out. key, when given, is sent as Idempotency-Key.
  function api(method, path, body, raw, key) {
    var made = session;
    var headers = { 'Authorization': 'Bearer ' + token() };
    if (key) { headers['Idempotency-Key'] = key; }
    var init = { method: method, headers: headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    function current() {
      if (made !== session) {
        var stale = new ApiError(0, 'signed out');
        stale.stale = true;
        throw stale;
      }
    }
    track(1);
    return fetch(base + '/api/' + path, init).then(function (resp) {
      current();
      if (resp.status === 401) {
        signOut('The token was not accepted. Sign in again.');
        throw new ApiError(401, 'authentication required');
      }
      if (raw && resp.ok) { return resp; }
      return resp.text().then(function (text) {
        current();
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!resp.ok) {
          throw new ApiError(resp.status, (data && data.error) || ('HTTP ' + resp.status), data && data.requestId);
        }
        return data;
      });
    }).finally(function () { track(-1); });
  }

  // ---- formatting

  function when(iso) {
    if (!iso) { return el('span', { text: '—' }); }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return el('span', { text: iso }); }
    return el('time', { text: d.toLocaleString(), title: iso, attrs: { datetime: iso } });
  }

  function statusBadge(status) {
    return el('span', { cls: 'badge s-' + String(status || '').toLowerCase(), text: status || '?' });
  }

  function certCell(x) {
    var lines = [el('div', { cls: 'mono', text: x.certificateId || '—' })];
    if (x.insuredName) { lines.push(el('div', { text: x.insuredName })); }
    if (x.policyNumber) { lines.push(el('div', { cls: 'sub', text: 'Policy ' + x.policyNumber })); }
    return el('td', {}, lines);
  }

  function holderCell(x) {
    var lines = [el('div', { text: x.holderName || x.holderId || '—' })];
    if (x.holderEmail) { lines.push(el('div', { cls: 'sub', text: x.holderEmail })); }
    if (x.fax) { lines.push(el('div', { cls: 'sub', text: 'Fax ' + x.fax })); }
    return el('td', {}, lines);
  }

  function show(id, on) { $(id).hidden = !on; }

  function notice(text, kind) {
    var n = $('notice');
    n.textContent = text;
    n.className = 'notice' + (kind ? ' ' + kind : '');
  }

  function fail(where) {
    return function (err) {
      if (err && (err.status === 401 || err.stale)) { return; }
      notice(where + ': ' + String(err), 'bad');
    };
  }

  // ---- the decision dialog (approve with an optional note; reject and resend with a reason)

  var dialogDone = null;

  function decide(title, detail, label, okText, required) {
    $('decide-title').textContent = title;
    $('decide-detail').textContent = detail;
    $('decide-label').textContent = label;
    $('decide-ok').textContent = okText;
    $('decide-error').textContent = '';
    var text = $('decide-text');
    text.value = '';
    text.required = !!required;
    $('decide').showModal();
    text.focus();
    return new Promise(function (resolve) {
      dialogDone = function (ok) {
        var v = text.value.trim();
        if (ok && required && !v) {
          $('decide-error').textContent = 'A reason is required.';
          return false;
        }
        dialogDone = null;
        $('decide').close();
        resolve(ok ? { text: v } : null);
        return true;
      };
    });
  }

  function setupDialog() {
    $('decide-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      if (dialogDone) { dialogDone(true); }
    });
    $('decide-cancel').addEventListener('click', function () { if (dialogDone) { dialogDone(false); } });
    $('decide').addEventListener('cancel', function (ev) {
      ev.preventDefault();
      if (dialogDone) { dialogDone(false); }
    });
  }

  // ---- holds

  function holdRow(h) {
    var tr = el('tr', { attrs: { 'data-hold-id': h.id } });
    var reasons = el('ul', { cls: 'reasons' }, (h.reasons || []).map(function (r) { return el('li', { text: r }); }));
    var reasonCell = el('td', {}, [reasons]);
    if (h.lastError) { reasonCell.appendChild(el('div', { cls: 'error', text: 'Last attempt: ' + h.lastError })); }
    var approve = el('button', { cls: 'primary approve', text: 'Approve', attrs: { type: 'button' } });
    var reject = el('button', { cls: 'reject', text: 'Reject', attrs: { type: 'button' } });
    var result = el('div', { cls: 'result' });
    var actions = el('td', { cls: 'actions' }, [approve, reject, result]);
    tr.append(certCell(h), holderCell(h), reasonCell, el('td', {}, [when(h.createdAt)]), actions);

    // Both buttons are disabled from the click until the request is answered:
    // a hold gets one decision request at a time.
    function busy(on) { approve.disabled = on; reject.disabled = on; }
    var who = (h.holderName || h.holderId || 'the holder') + (h.holderEmail ? ' <' + h.holderEmail + '>' : '');
    var action = 'hold:' + h.id;

    approve.addEventListener('click', function () {
      if (approve.disabled) { return; }
      busy(true);
      decide('Approve and send', 'Certificate ' + h.certificateId + ' goes to ' + who +
        ' through NowCerts (Approve, then send).', 'Note for the log (optional)', 'Approve and send', false)
        .then(function (d) {
          if (!d) { busy(false); return; }
          result.textContent = 'Approving…';
          return api('POST', 'holds/' + encodeURIComponent(h.id) + '/approve', d.text ? { note: d.text } : {}, false, actionKey(action))
            .then(function (res) {
              settleKey(action);
              var o = res.outcome || {};
              tr.classList.add('decided');
              approve.remove();
              reject.remove();
              result.replaceChildren(statusBadge(o.status),
                el('span', { text: ' ' + (o.status === 'SENT' ? 'Approved and sent' : 'Approved: ' + (o.message || o.status)) }),
                el('div', { cls: 'sub mono', text: (o.sendIds || []).join(', ') }));
              countHolds();
              notice('Hold for certificate ' + h.certificateId + ' approved by ' + res.approvedBy + ': ' + o.status + '.', o.status === 'SENT' ? 'good' : 'bad');
              loadExceptions();
              search(false);
            }, function (err) {
              settleKey(action, err);
              busy(false);
              result.textContent = '';
              result.appendChild(el('span', { cls: 'error', text: String(err) }));
              fail('Approval')(err);
            });
        });
    });

    reject.addEventListener('click', function () {
      if (reject.disabled) { return; }
      busy(true);
      decide('Reject hold', 'Certificate ' + h.certificateId + ' will not be sent to ' + who + '.',
        'Reason (required, kept in the audit log)', 'Reject', true)
        .then(function (d) {
          if (!d) { busy(false); return; }
          return api('POST', 'holds/' + encodeURIComponent(h.id) + '/reject', { reason: d.text }, false, actionKey(action))
            .then(function (res) {
              settleKey(action);
              tr.classList.add('decided');
              approve.remove();
              reject.remove();
              result.replaceChildren(statusBadge('REJECTED'), el('span', { text: ' Rejected: ' + res.reason }));
              countHolds();
              notice('Hold for certificate ' + h.certificateId + ' rejected.', 'good');
              search(false);
            }, function (err) {
              settleKey(action, err);
              busy(false);
              fail('Rejection')(err);
            });
        });
    });
    return tr;
  }

  // countHolds shows how many listed holds are still pending: a decided row
  // stays in the list (with its outcome) until the next refresh, uncounted.
  function countHolds() {
    var pending = $('holds-body').querySelectorAll('tr[data-hold-id]:not(.decided)').length;
    $('holds-count').textContent = String(pending);
    show('holds-empty', pending === 0);
  }

  function loadHolds() {
    return api('GET', 'holds?status=pending&limit=500').then(function (data) {
      var holds = data.holds || [];
      $('holds-body').replaceChildren.apply($('holds-body'), holds.map(holdRow));
      countHolds();
    }, fail('Holds'));
  }

  // ---- sends (exceptions and search results)

  // resending holds the ids of the sends whose resend request is in flight:
  // every Resend button of such a send (it may be listed twice: exceptions and
  // search results, and lists reload meanwhile) stays disabled until the
  // answer, so one click makes one request.
  var resending = {};

  function resendButtons(id) {
    return Array.prototype.filter.call(document.querySelectorAll('button.resend'), function (b) {
      return b.getAttribute('data-resend-of') === id;
    });
  }

  function setResending(id, on) {
    if (on) { resending[id] = true; } else { delete resending[id]; }
    resendButtons(id).forEach(function (b) { b.disabled = on; });
  }

  function resendButton(s, after) {
    var b = el('button', { cls: 'resend', text: 'Resend', attrs: { type: 'button', 'data-resend-of': s.id } });
    b.disabled = !!resending[s.id];
    var action = 'resend:' + s.id;
    b.addEventListener('click', function () {
      if (b.disabled || resending[s.id]) { return; }
      setResending(s.id, true);
      var who = (s.holderName || s.holderId || 'the holder') + (s.holderEmail ? ' <' + s.holderEmail + '>' : '');
      decide('Resend certificate', 'Certificate ' + s.certificateId + ' will be sent again to ' + who +
        '. This is recorded as a new send linked to ' + s.id + '.', 'Reason (required, kept in the audit log)', 'Resend', true)
        .then(function (d) {
          if (!d) { setResending(s.id, false); return; }
          return api('POST', 'sends/' + encodeURIComponent(s.id) + '/resend', { reason: d.text }, false, actionKey(action))
            .then(function (res) {
              settleKey(action);
              delete resending[s.id];
              var o = res.outcome || {};
              var shown = el('span', {}, [statusBadge(o.status), el('span', { cls: 'sub mono', text: ' ' + (o.sendIds || []).join(', ') })]);
              resendButtons(s.id).forEach(function (x) { x.replaceWith(shown.cloneNode(true)); });
              notice('Resend of ' + s.id + ': ' + o.status + (o.repeat ? ' (already requested)' : '') + '.', o.status === 'SENT' ? 'good' : 'bad');
              if (after) { after(); }
              search(false);
            }, function (err) {
              settleKey(action, err);
              setResending(s.id, false);
              fail('Resend')(err);
            });
        });
    });
    return b;
  }

  var resendable = { SENT: true, FAILED: true, UNKNOWN: true };

  // resendAction is the Resend button, or where a send was already resent to.
  function resendAction(s, after) {
    if (s.supersededBy) { return el('span', { cls: 'sub superseded', text: 'Resent as ' + s.supersededBy }); }
    if (!resendable[s.status]) { return el('span', { cls: 'sub', text: '—' }); }
    return resendButton(s, after);
  }

  function exceptionRow(s) {
    var problem = s.error || s.nowcertsAnswer || (s.status === 'UNKNOWN' ? 'no answer recorded' : '');
    return el('tr', { attrs: { 'data-send-id': s.id } }, [
      el('td', {}, [statusBadge(s.status), el('div', { cls: 'sub mono', text: s.id })]),
      certCell(s), holderCell(s),
      el('td', { cls: 'problem', text: problem }),
      el('td', {}, [when(s.createdAt)]),
      el('td', { cls: 'actions' }, [resendAction(s, loadExceptions)])
    ]);
  }

  function isoDay(d) { return d.toISOString().slice(0, 10); }

  function loadExceptions() {
    var from = isoDay(new Date(Date.now() - 30 * 864e5));
    return Promise.all(['UNKNOWN', 'FAILED'].map(function (st) {
      return api('GET', 'sends?status=' + st + '&from=' + from + '&limit=500');
    })).then(function (pages) {
      var sends = pages[0].sends.concat(pages[1].sends);
      $('exceptions-body').replaceChildren.apply($('exceptions-body'), sends.map(exceptionRow));
      $('exceptions-count').textContent = String(sends.length);
      show('exceptions-empty', sends.length === 0);
    }, fail('Unknown and failed sends'));
  }

  function resultRow(s) {
    return el('tr', { attrs: { 'data-send-id': s.id } }, [
      el('td', {}, [when(s.createdAt)]),
      el('td', {}, [statusBadge(s.status), el('div', { cls: 'sub mono', text: s.id })]),
      certCell(s), holderCell(s),
      el('td', { text: s.channel || '—' }),
      el('td', {}, [when(s.sentAt)]),
      el('td', { text: s.approvedBy || (s.resendBy ? 'resend by ' + s.resendBy : '—') }),
      el('td', { cls: 'actions' }, [resendAction(s, null)])
    ]);
  }

  var nextCursor = '';

  function searchParams() {
    var f = $('search-form');
    var p = new URLSearchParams();
    ['certificateId', 'holder', 'from', 'to', 'status'].forEach(function (k) {
      var v = f.elements[k].value.trim();
      if (v) { p.set(k, v); }
    });
    return p;
  }

  function search(more) {
    var p = searchParams();
    p.set('limit', '100');
    if (more && nextCursor) { p.set('cursor', nextCursor); }
    return api('GET', 'sends?' + p.toString()).then(function (data) {
      var rows = (data.sends || []).map(resultRow);
      var body = $('results-body');
      if (more) { rows.forEach(function (r) { body.appendChild(r); }); } else { body.replaceChildren.apply(body, rows); }
      nextCursor = data.next || '';
      show('more', !!nextCursor);
      show('results-empty', body.children.length === 0);
    }, fail('Search'));
  }

  // exportSends downloads the export through fetch (a plain link could not
  // carry the Authorization header).
  function exportSends(format) {
    var p = searchParams();
    p.set('format', format);
    notice('Preparing the ' + format.toUpperCase() + ' export…');
    return api('GET', 'sends/export?' + p.toString(), undefined, true).then(function (resp) {
      var cd = resp.headers.get('Content-Disposition') || '';
      var m = /filename="([^"]+)"/.exec(cd);
      var name = m ? m[1] : 'coi-sends.' + format;
      var rows = resp.headers.get('X-Export-Rows') || '?';
      return resp.blob().then(function (blob) {
        var url = URL.createObjectURL(blob);
        var a = el('a', { attrs: { href: url, download: name } });
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
        notice('Exported ' + rows + ' sends to ' + name + '.', 'good');
      });
    }).catch(fail('Export'));
  }

  // ---- quarantine

  function quarantineRow(q) {
    var details = el('details', {}, [
      el('summary', { text: (q.contentType || 'body') + ', ' + q.size + ' bytes' + (q.truncated ? ' (first ' + q.preview.length + ' characters shown)' : '') }),
      el('pre', { text: q.preview || '' })
    ]);
    return el('tr', { attrs: { 'data-quarantine-id': q.id } }, [
      el('td', {}, [when(q.receivedAt)]),
      el('td', { text: q.source }),
      el('td', { text: q.reason }),
      el('td', {}, [el('div', { cls: 'mono sub', text: q.id }), details])
    ]);
  }

  function loadQuarantine() {
    return api('GET', 'quarantine?limit=50').then(function (data) {
      var events = data.events || [];
      $('quarantine-body').replaceChildren.apply($('quarantine-body'), events.map(quarantineRow));
      $('quarantine-count').textContent = String(events.length);
      show('quarantine-empty', events.length === 0);
    }, fail('Quarantine'));
  }

  // ---- CRM sync failures (permanent: recorded, not retried)

  function crmFailureRow(f) {
    var answer = [];
    var head = [f.status ? 'HTTP ' + f.status : '', f.code || ''].filter(Boolean).join(' ');
    if (head) { answer.push(el('div', { cls: 'mono', text: head })); }
    answer.push(el('div', { cls: 'problem', text: f.message || '' }));
    var record = [el('div', { cls: 'mono', text: f.externalId || '—' })];
    if (f.op) { record.push(el('div', { cls: 'sub', text: f.op })); }
    return el('tr', { attrs: { 'data-crm-failure': f.jobId + '/' + (f.externalId || '') } }, [
      el('td', {}, [when(f.at)]),
      el('td', {}, record),
      el('td', {}, answer),
      el('td', {}, [
        el('div', { cls: 'mono sub', text: 'event ' + (f.eventId || '—') }),
        el('div', { cls: 'mono sub', text: 'job ' + f.jobId })
      ])
    ]);
  }

  function loadCRMFailures() {
    return api('GET', 'crm/failures?limit=50').then(function (data) {
      var failures = data.failures || [];
      $('crm-failures-body').replaceChildren.apply($('crm-failures-body'), failures.map(crmFailureRow));
      $('crm-failures-count').textContent = String(failures.length);
      show('crm-failures-empty', failures.length === 0);
    }, fail('CRM sync failures'));
  }

  // ---- session

  function loadAll() {
    notice('');
    return Promise.all([loadHolds(), loadExceptions(), loadQuarantine(), loadCRMFailures(), search(false)]).then(function () {
      document.body.setAttribute('data-loaded', 'true');
    });
  }

  function signedIn() {
    show('signin', false);
    show('desk', true);
    show('session', true);
    loadAll();
  }

  function signOut(message) {
    session++;
    sessionStorage.removeItem(TOKEN_KEY);
    document.body.removeAttribute('data-loaded');
    ['holds-body', 'exceptions-body', 'quarantine-body', 'crm-failures-body', 'results-body'].forEach(function (id) { $(id).replaceChildren(); });
    show('desk', false);
    show('session', false);
    show('signin', true);
    $('signin-error').textContent = message || '';
    $('token').value = '';
    $('token').focus();
  }

  function start() {
    setupDialog();
    takeFragmentToken();
    $('signin-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var t = $('token').value.trim();
      if (!t) { return; }
      sessionStorage.setItem(TOKEN_KEY, t);
      $('token').value = '';
      $('signin-error').textContent = '';
      signedIn();
    });
    $('signout').addEventListener('click', function () { signOut(''); });
    $('refresh').addEventListener('click', function () { loadAll(); });
    $('search-form').addEventListener('submit', function (ev) { ev.preventDefault(); search(false); });
    $('more').addEventListener('click', function () { search(true); });
    $('export-csv').addEventListener('click', function () { exportSends('csv'); });
    $('export-xlsx').addEventListener('click', function () { exportSends('xlsx'); });
    window.addEventListener('hashchange', function () { if (takeFragmentToken()) { signedIn(); } });
    if (token()) { signedIn(); } else { signOut(''); }
  }

  start();
}());
