// The chat widget page (/chat/widget): opens or resumes a visitor session and wires the compose form.
(function () {
  'use strict';
  var ui = ChatbotFileUpload.ui;
  var byId = function (id) { return document.getElementById(id); };
  var root = byId('chat');
  var widgetKey = root.getAttribute('data-widget-key') || '';
  var companyId = root.getAttribute('data-company-id') || '';
  var storageKey = 'vitrine-chat:' + widgetKey;
  var statusEl = byId('chat-status');
  var notice = byId('chat-notice');
  var text = byId('chat-text');
  var send = byId('chat-send');
  var pick = byId('chat-pick');
  var conv = new ui.Conversation(byId('conversation'), { self: 'user', labels: { user: 'You', agent: 'Agent' } });

  var client = null;
  var waiting = [];      // uploads chosen before the session was ready
  var lastRenewal = 0;
  var dead = false;      // gave up: nothing will connect without a reload
  var memory = null;     // when sessionStorage is not available (sandboxed frame, privacy mode)

  /* ------------------------------ the stored session ------------------------------ */

  function valid(s) {
    return !!s && typeof s === 'object' && typeof s.session_id === 'string' && s.session_id !== '' &&
      typeof s.token === 'string' && s.token !== '' && typeof s.company_id === 'string' && s.company_id !== '' &&
      (!companyId || s.company_id === companyId);
  }

  function readSession() {
    var raw = memory;
    try { raw = window.sessionStorage.getItem(storageKey); } catch (e) { /* keep memory */ }
    var s = null;
    try { s = raw ? JSON.parse(raw) : null; } catch (e) { s = null; }
    return valid(s) ? s : null;
  }

  function writeSession(s) {
    memory = JSON.stringify({ company_id: s.company_id, session_id: s.session_id, token: s.token });
    try { window.sessionStorage.setItem(storageKey, memory); } catch (e) { /* memory only */ }
  }

  function dropSession() {
    memory = null;
    try { window.sessionStorage.removeItem(storageKey); } catch (e) { /* nothing stored */ }
  }

  /* ------------------------------ page state ------------------------------ */

  function say(message, info) {
    notice.textContent = message || '';
    notice.classList.toggle('is-info', !!info);
  }

  function setReady(ready) {
    text.disabled = !ready;
    send.disabled = !ready;
    pick.disabled = !ready;
  }

  function getClient() {
    if (client || dead) return client;
    return new Promise(function (resolve) { waiting.push(resolve); });
  }

  function release(value) {
    waiting.splice(0).forEach(function (resolve) { resolve(value); });
  }

  /* ------------------------------ opening a session ------------------------------ */

  // The page the visitor is on, for the agents: `?page_url=` of the widget's address (the
  // embedding site may pass it), else the page that embedded or linked the widget.
  function pageUrl() {
    var given = '';
    try { given = new URLSearchParams(location.search).get('page_url') || ''; } catch (e) { given = ''; }
    var url = given || document.referrer || '';
    return /^https?:\/\//i.test(url) && url.length <= 2048 ? url : '';
  }

  // A page address the server refuses is left out: the chat opens all the same.
  var reportPage = true;

  function sessionRequest() {
    var body = { widget_key: widgetKey };
    var url = reportPage ? pageUrl() : '';
    if (url) body.page_url = url;
    return body;
  }

  function openSession(attempt) {
    ui.showStatus(statusEl, 'connecting');
    fetch('/api/chat/sessions/', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify(sessionRequest()),
      credentials: 'same-origin',
      cache: 'no-store'
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (body) {
        if (res.ok) {
          var s = { company_id: String(body.company_id || ''), session_id: String(body.session_id || ''), token: String(body.token || '') };
          if (!valid(s)) throw new Error('The server answered with an unexpected session.');
          writeSession(s);
          start(s);
          return;
        }
        if (res.status === 404) {
          fail('This chat is not available.');
          return;
        }
        if (res.status === 400 && reportPage && body && body.fields && body.fields.page_url) {
          reportPage = false;
          openSession(attempt);
          return;
        }
        var wait = res.status === 429 ? Number(res.headers.get('Retry-After')) || 30 : 0;
        retry(String(body.error || 'The chat could not be started.'), attempt, wait);
      });
    }).catch(function (err) {
      retry(err && err.message && err.message.indexOf('unexpected') !== -1 ? err.message : 'The server could not be reached.', attempt, 0);
    });
  }

  function retry(message, attempt, seconds) {
    var wait = seconds || Math.min(30, Math.pow(2, attempt));
    say(message + ' Trying again in ' + wait + ' s.');
    ui.showStatus(statusEl, 'closed', { retryInMs: wait * 1000 });
    setTimeout(function () { openSession(attempt + 1); }, wait * 1000);
  }

  function fail(message) {
    dead = true;
    say(message);
    ui.showStatus(statusEl, 'closed', { stopped: true });
    setReady(false);
    release(null);
  }

  function start(s) {
    var c = new ChatbotFileUpload({
      companyId: s.company_id,
      sessionId: s.session_id,
      jwt: s.token,
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
    release(c);
    c.connect();
  }

  function handleError(err) {
    // The token or the session is no longer good: start over with a new session.
    if (err.status === 401 || (err.status === 403 && err.source !== 'send')) {
      renew();
      return;
    }
    if (err.source === 'upload') return; // shown on the upload's own line
    say(ui.describeError(err));
  }

  function renew() {
    var old = client;
    client = null;
    if (old) old.close();
    dropSession();
    setReady(false);
    var now = Date.now();
    if (now - lastRenewal < 15000) {
      fail('The chat could not be opened. Reload the page to try again.');
      return;
    }
    lastRenewal = now;
    conv.clear();
    say('Your chat session had ended, so a new one was started.', true);
    openSession(0);
  }

  /* ------------------------------ sending ------------------------------ */

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

  ui.wireDropZone(root, function (files) {
    say('');
    ui.uploadFiles(getClient, files, byId('chat-uploads'));
  }, { input: byId('chat-file-input'), button: pick, highlight: byId('chat-dropzone') });

  var stored = readSession();
  if (stored) start(stored);
  else openSession(0);
})();
