// The agents' chat page (/agent/): lists the sessions of their companies and answers in one.
(function () {
  'use strict';
  var ui = ChatbotFileUpload.ui;
  var byId = function (id) { return document.getElementById(id); };
  var root = byId('chat-agent');
  var token = root.getAttribute('data-token') || '';
  var list = byId('conversation');
  var title = byId('chat-title');
  var statusEl = byId('chat-status');
  var notice = byId('chat-notice');
  var text = byId('chat-text');
  var send = byId('chat-send');
  var pick = byId('chat-pick');
  var conv = new ui.Conversation(list, { self: 'agent', labels: { user: 'Visitor', agent: 'You (agent)' } });
  var POLL_MS = 5000;

  var companies = Array.prototype.map.call(document.querySelectorAll('.chat-company'), function (section) {
    return {
      id: section.getAttribute('data-company-id') || '',
      name: section.querySelector('h2').textContent,
      list: section.querySelector('.chat-sessions'),
      note: section.querySelector('.chat-company-note'),
      items: new Map(),     // session id -> <li>
      activity: new Map()   // session id -> last_activity_at seen
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

  function plural(n, one, many) {
    return n + ' ' + (n === 1 ? one : many);
  }

  // The access token first; when it is refused, the page's own session cookie.
  function headers() {
    var h = { 'Accept': 'application/json' };
    if (token) h.Authorization = 'Bearer ' + token;
    return h;
  }

  function getJson(path) {
    return fetch(path, { headers: headers(), credentials: 'same-origin', cache: 'no-store' }).then(function (res) {
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
  }

  function buildSession(co, id) {
    var li = ui.el('li', 'chat-session');
    li.setAttribute('data-session-id', id);
    var button = ui.el('button');
    button.type = 'button';
    var name = ui.el('span', 'chat-session-id', shortId(id));
    name.title = id;
    var badge = ui.el('span', 'chat-session-new', 'new');
    badge.hidden = true;
    name.appendChild(badge);
    button.appendChild(name);
    button.appendChild(ui.el('span', 'chat-session-when'));
    button.appendChild(ui.el('span', 'chat-session-counts'));
    button.addEventListener('click', function () { select(co, id); });
    li.appendChild(button);
    return li;
  }

  function updateSession(co, li, s, now) {
    var id = String(s.session_id);
    var button = li.querySelector('button');
    var when = li.querySelector('.chat-session-when');
    var activity = String(s.last_activity_at || s.created_at || '');
    when.textContent = ui.relativeTime(activity, now);
    when.title = Number.isFinite(Date.parse(activity)) ? new Date(activity).toLocaleString() : '';
    var files = Number(s.file_count) || 0;
    var messages = Number(s.message_count) || 0;
    li.querySelector('.chat-session-counts').textContent = plural(files, 'file', 'files') + ' \u00b7 ' + plural(messages, 'message', 'messages');
    var selected = !!current && current.company === co && current.sessionId === id;
    // Activity since the last look in a session that is not open: flag it.
    var before = co.activity.get(id);
    var badge = li.querySelector('.chat-session-new');
    if (selected) badge.hidden = true;
    else if (before !== undefined && before !== activity) badge.hidden = false;
    co.activity.set(id, activity);
    button.setAttribute('aria-label', 'Session ' + shortId(id) + (badge.hidden ? '' : ', new activity') + ', active ' +
      when.textContent + ', ' + li.querySelector('.chat-session-counts').textContent);
    if (selected) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
  }

  function markSelected() {
    companies.forEach(function (co) {
      co.items.forEach(function (li, id) {
        var button = li.querySelector('button');
        if (current && current.company === co && current.sessionId === id) {
          button.setAttribute('aria-current', 'true');
          li.querySelector('.chat-session-new').hidden = true;
        } else {
          button.removeAttribute('aria-current');
        }
      });
    });
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
    title.textContent = co.name + ' \u00b7 session ' + shortId(sessionId);
    markSelected();
    var c = new ChatbotFileUpload({
      companyId: co.id,
      sessionId: sessionId,
      jwt: token || undefined,
      autoConnect: false,
      onStatus: function (status, info) { if (c === client) ui.showStatus(statusEl, status, info); },
      onReset: function (h) { if (c === client) conv.merge(h.files, h.messages); },
      onFileShared: function (file) { if (c === client) conv.addFile(file); },
      onFileList: function (files) { if (c === client) files.forEach(function (f) { conv.addFile(f); }); },
      onMessage: function (msg) { if (c === client) conv.addMessage(msg); },
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
  document.addEventListener('visibilitychange', function () { if (!document.hidden) poll(); });
})();
