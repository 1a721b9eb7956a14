// The agents' chat page (/agent/): lists the sessions of their companies and answers in one.
(function () {
  'use strict';
  var ui = ChatbotFileUpload.ui;
  var byId = function (id) { return document.getElementById(id); };
  var root = byId('chat-agent');
  var token = root.getAttribute('data-token') || '';
  var csrf = root.getAttribute('data-csrf') || '';
  var fromEl = byId('chat-from');
  var list = byId('conversation');
  var title = byId('chat-title');
  var statusEl = byId('chat-status');
  var notice = byId('chat-notice');
  var text = byId('chat-text');
  var send = byId('chat-send');
  var pick = byId('chat-pick');
  var conv = new ui.Conversation(list, { self: 'agent', labels: { user: 'Visitor', agent: 'You (agent)' } });
  var POLL_MS = 5000;
  var TICK_MS = 10000;     // how often the "last activity" labels are brought up to date

  var companies = Array.prototype.map.call(document.querySelectorAll('.chat-company'), function (section) {
    return {
      id: section.getAttribute('data-company-id') || '',
      name: section.querySelector('h2').textContent,
      list: section.querySelector('.chat-sessions'),
      note: section.querySelector('.chat-company-note'),
      items: new Map(),     // session id -> <li>
      info: new Map()       // session id -> {label, pageUrl}
    };
  });

  var client = null;
  var current = null;       // {company, sessionId}
  var signedOut = false;
  var polling = false;

  function say(message) {
    notice.textContent = message || '';
  }

  function shortId(id) {
    return String(id).slice(0, 8);
  }

  // The server's friendly name of the session's visitor ("Visitor Amber Fox").
  function labelOf(co, id) {
    var info = co.info.get(id);
    return (info && info.label) || 'Visitor ' + shortId(id);
  }

  // "shop.example/pricing" for https://shop.example/pricing?plan=pro
  function pageName(url) {
    try {
      var u = new URL(url);
      return u.host + (u.pathname === '/' ? '' : u.pathname);
    } catch (e) {
      return String(url);
    }
  }

  function plural(n, one, many) {
    return n + ' ' + (n === 1 ? one : many);
  }

  // The access token first; when it is refused, the page's own session cookie (writes then
  // carry the page's CSRF token, SPEC §0).
  function headers(write) {
    var h = { 'Accept': 'application/json' };
    if (token) h.Authorization = 'Bearer ' + token;
    if (write && csrf) h['X-CSRF-Token'] = csrf;
    return h;
  }

  function getJson(path, method) {
    var write = !!method && method !== 'GET';
    return fetch(path, { method: method || 'GET', headers: headers(write), credentials: 'same-origin', cache: 'no-store' }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (body) {
        if (res.ok) return body;
        var err = new Error(String((body && body.error) || 'HTTP ' + res.status));
        err.status = res.status;
        err.code = body && body.code;
        throw err;
      });
    });
  }

  function signOut() {
    signedOut = true;
    byId('agent-signed-out').hidden = false;
    if (client) client.close();
    client = null;
    setReady(false);
    ui.showStatus(statusEl, 'closed', { stopped: true });
  }

  // A refused token: go on with the cookie session if there is one, else ask to sign in.
  function tokenRefused() {
    if (!token) {
      signOut();
      return false;
    }
    token = '';
    return true;
  }

  /* ------------------------------ sessions ------------------------------ */

  function poll() {
    if (polling || signedOut) return;
    polling = true;
    Promise.all(companies.map(function (co) {
      return getJson('/api/chat/sessions/?company_id=' + encodeURIComponent(co.id)).then(function (body) {
        renderSessions(co, body);
      }, function (err) {
        if (err.status === 401) {
          if (tokenRefused()) setTimeout(poll, 0);
          return;
        }
        co.note.textContent = err.status === 403
          ? 'You are not an agent of this company any more.'
          : 'The sessions could not be loaded (' + err.message + '); trying again.';
      });
    })).then(function () { polling = false; });
  }

  function renderSessions(co, body) {
    var results = Array.isArray(body && body.results) ? body.results : [];
    var count = Number(body && body.count) || results.length;
    co.note.textContent = !results.length ? 'No chat sessions yet.'
      : count > results.length ? 'The ' + results.length + ' most recently active of ' + count + ' sessions.' : '';
    var now = Date.now();
    var order = results.map(function (s) {
      var id = String(s.session_id);
      co.info.set(id, { label: String(s.visitor_label || ''), pageUrl: s.page_url ? String(s.page_url) : '' });
      var li = co.items.get(id);
      if (!li) {
        li = buildSession(co, id);
        co.items.set(id, li);
      }
      updateSession(co, li, s, now);
      return li;
    });
    co.items.forEach(function (li, id) {
      if (order.indexOf(li) === -1) {
        ui.detach(li);
        co.items.delete(id);
      }
    });
    // Most recently active first; moving a node would drop its focus, so put it back.
    var focused = document.activeElement;
    order.forEach(function (li, i) {
      if (co.list.children[i] !== li) co.list.insertBefore(li, co.list.children[i] || null);
    });
    if (focused && focused !== document.activeElement && document.body.contains(focused)) focused.focus();
    if (current && current.company === co) showTitle();
  }

  function buildSession(co, id) {
    var li = ui.el('li', 'chat-session');
    li.setAttribute('data-session-id', id);
    var button = ui.el('button');
    button.type = 'button';
    var name = ui.el('span', 'chat-session-name', labelOf(co, id));
    name.title = 'Session ' + id;
    var badge = ui.el('span', 'chat-session-new chat-session-unread', '0');
    badge.hidden = true;
    button.appendChild(name);
    button.appendChild(ui.el('time', 'chat-session-when'));
    button.appendChild(ui.el('span', 'chat-session-counts'));
    var from = ui.el('span', 'chat-session-from');
    from.hidden = true;
    button.appendChild(from);
    name.appendChild(badge);
    button.addEventListener('click', function () { select(co, id); });
    li.appendChild(button);
    return li;
  }

  function updateSession(co, li, s, now) {
    var id = String(s.session_id);
    var when = li.querySelector('.chat-session-when');
    var activity = String(s.last_activity_at || s.created_at || '');
    if (when.getAttribute('data-activity') !== activity) {
      when.setAttribute('data-activity', activity);
      showWhen(when, activity, now);
    }
    var files = Number(s.file_count) || 0;
    var messages = Number(s.message_count) || 0;
    li.querySelector('.chat-session-counts').textContent = plural(files, 'file', 'files') + ' \u00b7 ' + plural(messages, 'message', 'messages');
    var name = li.querySelector('.chat-session-name');
    name.firstChild.nodeValue = labelOf(co, id);
    var info = co.info.get(id);
    var from = li.querySelector('.chat-session-from');
    from.textContent = info && info.pageUrl ? 'from ' + pageName(info.pageUrl) : '';
    from.title = info && info.pageUrl ? info.pageUrl : '';
    from.hidden = !(info && info.pageUrl);
    li.setAttribute('data-unread', String(Math.max(0, Number(s.unread_count) || 0)));
    tickOne(li, now);
    showUnread(co, li, id);
  }

  // The unread badge: the visitor's messages and files this agent has not seen (from the
  // server, the same on every instance); never on the session that is open.
  function showUnread(co, li, id) {
    var selected = !!current && current.company === co && current.sessionId === id;
    var unread = selected ? 0 : Number(li.getAttribute('data-unread')) || 0;
    var badge = li.querySelector('.chat-session-unread');
    badge.textContent = unread > 99 ? '99+' : String(unread);
    badge.hidden = unread === 0;
    badge.title = plural(unread, 'unread message', 'unread messages');
    describe(co, li, id);
    var button = li.querySelector('button');
    if (selected) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
  }

  function describe(co, li, id) {
    var badge = li.querySelector('.chat-session-unread');
    var from = li.querySelector('.chat-session-from');
    li.querySelector('button').setAttribute('aria-label', labelOf(co, id) +
      (badge.hidden ? '' : ', ' + badge.title) + ', active ' + li.querySelector('.chat-session-when').textContent + ', ' +
      li.querySelector('.chat-session-counts').textContent + (from.hidden ? '' : ', ' + from.textContent));
  }

  // The page's one date helper (static/js/shell.js): the server's words and a relative label.
  function dates() {
    return window.vitrineDates && typeof window.vitrineDates.time === 'function' ? window.vitrineDates : null;
  }

  function showWhen(when, activity, now) {
    var d = dates();
    if (d) {
      d.time(activity, when, now);
    } else {
      when.setAttribute('datetime', activity);
      when.textContent = ui.relativeTime(activity, now);
    }
  }

  // "Last activity" labels move with the clock, between two polls too.
  function tickOne(li, now) {
    var when = li.querySelector('.chat-session-when');
    var d = dates();
    var rel = when.querySelector('.rel');
    if (d && rel) {
      var ms = Date.parse(when.getAttribute('datetime'));
      var label = Number.isFinite(ms) ? '(' + d.relative(ms, now) + ')' : '';
      if (rel.textContent !== label) rel.textContent = label;
      return;
    }
    showWhen(when, when.getAttribute('data-activity') || '', now);
  }

  function tick() {
    var now = Date.now();
    companies.forEach(function (co) {
      co.items.forEach(function (li, id) {
        var before = li.querySelector('.chat-session-when').textContent;
        tickOne(li, now);
        if (li.querySelector('.chat-session-when').textContent !== before) describe(co, li, id);
      });
    });
  }

  function markSelected() {
    companies.forEach(function (co) {
      co.items.forEach(function (li, id) { showUnread(co, li, id); });
    });
  }

  // The open session's visitor and where they came from.
  function showTitle() {
    if (!current) return;
    var co = current.company;
    var info = co.info.get(current.sessionId);
    title.textContent = co.name + ' \u00b7 ' + labelOf(co, current.sessionId);
    title.title = 'Session ' + current.sessionId;
    fromEl.textContent = '';
    fromEl.hidden = !(info && info.pageUrl);
    if (info && info.pageUrl) {
      fromEl.appendChild(document.createTextNode('Came from '));
      var a = ui.el('a', null, pageName(info.pageUrl));
      a.href = info.pageUrl;
      a.title = info.pageUrl;
      a.target = '_blank';
      a.rel = 'noopener noreferrer nofollow';
      fromEl.appendChild(a);
    }
  }

  /* ------------------------------ read marks ------------------------------ */

  // Tells the server this agent has seen the open session (unread count back to zero there);
  // coalesced, and only while the page is visible.
  var readTimer = null;
  function markRead() {
    if (!current || signedOut || document.hidden) return;
    var target = current;
    clearTimeout(readTimer);
    readTimer = setTimeout(function () {
      if (current !== target) return;
      getJson('/api/chat/sessions/' + encodeURIComponent(target.sessionId) + '/read/', 'POST').then(function () {
        var li = target.company.items.get(target.sessionId);
        if (li) {
          li.setAttribute('data-unread', '0');
          showUnread(target.company, li, target.sessionId);
        }
      }, function (err) {
        if (err.status === 401 && tokenRefused()) markRead();
      });
    }, 300);
  }

  /* ------------------------------ the open session ------------------------------ */

  function setReady(ready) {
    text.disabled = !ready;
    send.disabled = !ready;
    pick.disabled = !ready;
  }

  function select(co, sessionId, force) {
    if (signedOut) return;
    if (!force && current && current.company === co && current.sessionId === sessionId) return;
    if (client) client.close();
    client = null;
    current = { company: co, sessionId: sessionId };
    conv.clear();
    say('');
    list.setAttribute('data-empty', 'No messages or files in this session yet.');
    showTitle();
    markSelected();
    markRead();
    var c = new ChatbotFileUpload({
      companyId: co.id,
      sessionId: sessionId,
      jwt: token || undefined,
      csrfToken: csrf || undefined,
      autoConnect: false,
      onStatus: function (status, info) { if (c === client) ui.showStatus(statusEl, status, info); },
      onReset: function (h) { if (c === client) conv.merge(h.files, h.messages); },
      onFileShared: function (file) {
        if (c !== client) return;
        conv.addFile(file);
        if (file && file.uploader === 'user') markRead();
      },
      onFileList: function (files) { if (c === client) files.forEach(function (f) { conv.addFile(f); }); },
      onMessage: function (msg) {
        if (c !== client) return;
        conv.addMessage(msg);
        if (msg && msg.sender === 'user') markRead();
      },
      onError: function (err) { if (c === client) handleError(err); }
    });
    client = c;
    setReady(true);
    c.connect();
    try {
      history.replaceState(null, '', '#' + encodeURIComponent(co.id) + '/' + encodeURIComponent(sessionId));
    } catch (e) { /* the hash is a convenience */ }
  }

  function handleError(err) {
    if (err.status === 401) {
      if (tokenRefused() && current) select(current.company, current.sessionId, true);
      return;
    }
    if (err.source === 'upload') return; // shown on the upload's own line
    if (err.status === 403) {
      say('You cannot open this session: it belongs to a company you do not answer for.');
      return;
    }
    say(ui.describeError(err));
  }

  byId('chat-form').addEventListener('submit', function (e) {
    e.preventDefault();
    if (!client) return;
    if (!text.value.trim()) {
      text.focus();
      return;
    }
    if (client.sendMessage(text.value)) {
      text.value = '';
      say('');
    }
    text.focus();
  });

  // The files go to the session that was open when they were dropped.
  ui.wireDropZone(byId('chat-panel'), function (files) {
    var target = client;
    if (!target) {
      say('Choose a session first.');
      return;
    }
    say('');
    ui.uploadFiles(function () { return target; }, files, byId('chat-uploads'));
  }, { input: byId('chat-file-input'), button: pick, highlight: byId('chat-dropzone') });

  // Reopen the session named in the address (#company/session) after a reload.
  var m = /^#([^/]+)\/(.+)$/.exec(location.hash || '');
  if (m) {
    var wanted = decodeURIComponent(m[1]);
    var co = companies.filter(function (x) { return x.id === wanted; })[0];
    if (co) select(co, decodeURIComponent(m[2]));
  }

  poll();
  setInterval(function () { if (!document.hidden) poll(); }, POLL_MS);
  setInterval(function () { if (!document.hidden) tick(); }, TICK_MS);
  document.addEventListener('visibilitychange', function () {
    if (document.hidden) return;
    tick();
    markRead();
    poll();
  });
})();
