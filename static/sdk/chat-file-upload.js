/*
 * Vitrine chat: new ChatbotFileUpload({companyId, sessionId, apiBaseUrl, jwt, ...})
 *
 * The client side of docs/chat.md: uploads files to a chat session over HTTP (with progress),
 * lists its files and messages, and keeps one WebSocket to /ws/chat/{company_id}/{session_id}/
 * open for live `file_shared` and `message` events, reconnecting with `last_seq` so that nothing
 * is missed or seen twice. Plain ES2017, no dependencies: load it with a classic <script> (it
 * sets window.ChatbotFileUpload) or require() it (CommonJS).
 *
 * Options:
 *   companyId, sessionId   the session (required)
 *   apiBaseUrl             origin of the Vitrine server (default '': this page's origin)
 *   wsBaseUrl              ws:// or wss:// origin of the socket (default: from apiBaseUrl, else
 *                          this page: wss:// on https pages)
 *   jwt                    visitor chat token or agent access token; leave it out on same-origin
 *                          pages signed in with the session cookie (then no Authorization header
 *                          and no ?token= on the socket; uploads and other writes then carry the
 *                          page's CSRF token in X-CSRF-Token, as the cookie rule of the API wants)
 *   csrfToken              that CSRF token (default: the page's <meta name="csrf-token">, which
 *                          every signed-in Vitrine page carries, else a readable vitrine_csrf
 *                          cookie); only sent without a jwt, and only to this page's origin
 *   autoConnect            false: do not open the socket from the constructor, call connect()
 *   loadHistory            false: do not fetch files and messages after the first connection
 *   urlRefreshMs           file links are signed for an hour: the file list is fetched again this
 *                          often while connected and handed to onFileList (default 40 min, 0: off)
 *
 * Callbacks (options of the same name, or set later as properties of the client):
 *   onFileShared(file)     a file new to this client: from a `file_shared` event or from the
 *                          answer of one of its own uploads, whichever comes first (once per id)
 *   onMessage(msg)         a chat message new to this client (once per id)
 *   onFileList(files)      the whole file list: answer to requestFileList(), or a reload
 *   onReset({files, messages, reason})
 *                          the session's history, fetched after the first connection
 *                          (reason 'initial') and again when the server could not replay what
 *                          was missed (reason 'gap'). Without this callback the same data goes
 *                          to onFileList(files) and onMessage(msg) for each message not seen yet.
 *   onError(error)         an Error with `code`, `error` (the server's text, also `message`),
 *                          `status` (HTTP status, 0 when none) and `source` ('upload', 'list',
 *                          'send', 'socket', 'connect'). After a 401/403 on connecting (close
 *                          code 1008/4401/4403, or a refused upgrade that a REST probe confirms)
 *                          the client stops reconnecting.
 *   onProgress(fraction, file)   upload progress, 0..1
 *   onStatus(status, info)       'connecting' | 'open' | 'closed'; info.retryInMs when a
 *                                reconnection is scheduled, info.stopped when it will not be
 *   onEvent(frame)               every frame received, after it was handled
 *
 * Methods: connect(), close(), upload(file, {onProgress}) -> Promise<file>, listFiles() ->
 * Promise<files>, listMessages() -> Promise<messages>, sendMessage(text) -> bool,
 * requestFileList() -> bool. Properties: files and messages (deduplicated by id, in arrival
 * order), lastSeq, role ('user' | 'agent' once connected), status.
 *
 * ChatbotFileUpload.ui holds the DOM helpers both chat pages share (conversation rendering,
 * drop zone, upload progress). Server data reaches the page through textContent and DOM
 * properties only, never through innerHTML.
 */
(function (global) {
  'use strict';

  var PING_MS = 25000;
  var DEAD_AFTER_MS = 70000;      // no frame at all (not even a pong) for this long: dead socket
  var MIN_BACKOFF_MS = 1000;
  var MAX_BACKOFF_MS = 30000;
  // A socket closed with 1001 (the server is shutting down; another instance takes over) comes
  // back at once, without the backoff, at most once in this long.
  var AWAY_RETRY_MS = 10000;
  var URL_REFRESH_MS = 40 * 60 * 1000;
  var MAX_TEXT_CHARS = 4000;
  var WS_CONNECTING = 0;
  var WS_OPEN = 1;

  // Close codes after which reconnecting cannot help: the credentials were refused.
  var FATAL_CLOSE = {
    1008: { status: 403, code: 'forbidden', error: 'This chat session is not available to you.' },
    4401: { status: 401, code: 'unauthenticated', error: 'Your chat session has expired.' },
    4403: { status: 403, code: 'forbidden', error: 'This chat session is not available to you.' }
  };

  var STATUS_TEXT = {
    400: 'The request was refused.',
    401: 'Your chat session has expired.',
    403: 'This chat session is not available to you.',
    404: 'Not found.',
    413: 'This file is too large.',
    415: 'This type of file is not accepted.',
    422: 'This file was refused.',
    429: 'Too many requests: wait a minute and try again.',
    503: 'The service is unavailable right now: try again later.'
  };

  var STATUS_CODE = {
    400: 'validation_failed', 401: 'unauthenticated', 403: 'forbidden', 404: 'not_found',
    413: 'too_large', 415: 'unsupported_type', 422: 'refused', 429: 'rate_limited', 503: 'unavailable'
  };

  /* ----------------------------------------------------------------------------------------- */
  /* Helpers                                                                                    */
  /* ----------------------------------------------------------------------------------------- */

  function noop() {}

  function trimSlash(s) {
    return String(s || '').replace(/\/+$/, '');
  }

  function parseJson(text) {
    if (typeof text !== 'string' || text === '') return null;
    try {
      return JSON.parse(text);
    } catch (e) {
      return null;
    }
  }

  // Unicode characters, as the server counts them (a string's length counts UTF-16 units).
  function charCount(s) {
    return Array.from(String(s)).length;
  }

  // ws(s):// origin: from apiBaseUrl when it is absolute, else from this page (wss:// on https:
  // browsers refuse ws:// from an https page).
  // Whether `apiBaseUrl` ('' or an origin) is this page's own origin.
  function sameOrigin(apiBaseUrl) {
    if (!apiBaseUrl) return true;
    if (typeof location === 'undefined' || !location.origin) return false;
    var m = /^(https?:\/\/[^/?#]+)/i.exec(apiBaseUrl);
    return !!m && m[1].toLowerCase() === location.origin.toLowerCase();
  }

  // The page's CSRF token (SPEC §0: a request that the session cookie authenticates carries it in
  // X-CSRF-Token when it changes something). The CSRF cookie itself is HttpOnly: signed-in Vitrine
  // pages copy its value into <meta name="csrf-token">; a readable vitrine_csrf cookie also works.
  function pageCsrfToken() {
    if (typeof document === 'undefined') return '';
    var meta = document.querySelector && document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.getAttribute('content')) return meta.getAttribute('content');
    var m = /(?:^|;\s*)vitrine_csrf=([^;]+)/.exec(document.cookie || '');
    if (!m) return '';
    try {
      return decodeURIComponent(m[1]);
    } catch (e) {
      return m[1];
    }
  }

  function defaultWsBase(apiBaseUrl) {
    var m = /^(https?):\/\/([^/?#]+)/i.exec(apiBaseUrl || '');
    if (m) return (m[1].toLowerCase() === 'https' ? 'wss://' : 'ws://') + m[2];
    if (typeof location === 'undefined' || !location.host) return '';
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host;
  }

  // An Error carrying the server's answer: {code, error, status, ...the JSON body}.
  function chatError(fields) {
    var f = fields || {};
    var text = String(f.error || f.message || 'Something went wrong.');
    var e = new Error(text);
    e.name = 'ChatError';
    Object.keys(f).forEach(function (k) {
      if (k !== 'message' && k !== 'stack' && k !== 'name') e[k] = f[k];
    });
    e.error = text;
    e.code = String(f.code || 'error');
    e.status = Number(f.status) || 0;
    return e;
  }

  function httpError(xhr, body, source) {
    var status = xhr.status;
    var b = body && typeof body === 'object' && !Array.isArray(body) ? body : {};
    var fields = Object.assign({}, b, {
      status: status,
      source: source,
      code: b.code || STATUS_CODE[status] || 'http_' + status,
      error: b.error || b.detail || b.message || STATUS_TEXT[status] || 'The request failed (HTTP ' + status + ').'
    });
    if (status === 429) {
      var retry = Number(xhr.getResponseHeader('Retry-After'));
      fields.retryAfter = Number.isFinite(retry) && retry > 0 ? retry : null;
    }
    return chatError(fields);
  }

  // A durable frame without its envelope: the file or message it carries (seq and at are kept).
  function payload(frame) {
    var out = Object.assign({}, frame);
    delete out.type;
    return out;
  }

  function isAuthError(err) {
    return !!err && (err.status === 401 || err.status === 403);
  }

  /* ----------------------------------------------------------------------------------------- */
  /* Client                                                                                     */
  /* ----------------------------------------------------------------------------------------- */

  class ChatbotFileUpload {
    constructor(options) {
      var o = options || {};
      if (!o.companyId || !o.sessionId) throw new TypeError('ChatbotFileUpload: companyId and sessionId are required');
      this.options = o;
      this.companyId = String(o.companyId);
      this.sessionId = String(o.sessionId);
      this.apiBaseUrl = trimSlash(o.apiBaseUrl);
      this.wsBaseUrl = trimSlash(o.wsBaseUrl || defaultWsBase(this.apiBaseUrl));
      this.jwt = o.jwt ? String(o.jwt) : null;
      this.csrfToken = o.csrfToken ? String(o.csrfToken) : null;
      this.urlRefreshMs = o.urlRefreshMs === undefined ? URL_REFRESH_MS : Number(o.urlRefreshMs) || 0;

      ['onFileShared', 'onMessage', 'onFileList', 'onReset', 'onError', 'onProgress', 'onStatus', 'onEvent']
        .forEach((name) => { this[name] = typeof o[name] === 'function' ? o[name] : null; });

      this.files = [];
      this.messages = [];
      this.lastSeq = 0;
      this.role = null;
      this.status = 'closed';
      this.socket = null;

      this._fileIndex = new Map();    // String(id) -> entry of this.files
      this._messageIndex = new Map(); // String(id) -> entry of this.messages
      this._synced = false;     // a connection_established was handled: lastSeq means "what I have"
      this._active = false;     // between connect() and close(): keep a socket open
      this._closed = false;     // close() was called: callbacks stay silent
      this._stopped = null;     // the error that ended reconnection (credentials refused)
      this._generation = 0;     // bumped by close(): late answers of an older life are dropped
      this._attempt = 0;
      this._reconnectTimer = null;
      this._awayAt = 0;
      this._pingTimer = null;
      this._refreshTimer = null;
      this._lastFrameAt = 0;
      this._onOnline = () => this._reconnectNow();

      if (o.autoConnect !== false) this.connect();
    }

    static defaultWsBase(apiBaseUrl) {
      return defaultWsBase(apiBaseUrl);
    }

    /* -------------------------------- connection -------------------------------- */

    socketUrl() {
      var q = [];
      if (this.jwt) q.push('token=' + encodeURIComponent(this.jwt));
      // Before a first connection_established, lastSeq 0 would ask for the whole history.
      if (this._synced) q.push('last_seq=' + encodeURIComponent(String(this.lastSeq)));
      return this.wsBaseUrl + '/ws/chat/' + encodeURIComponent(this.companyId) + '/' +
        encodeURIComponent(this.sessionId) + '/' + (q.length ? '?' + q.join('&') : '');
    }

    connect() {
      this._active = true;
      this._closed = false;
      this._stopped = null;
      if (typeof window !== 'undefined' && window.addEventListener) {
        window.removeEventListener('online', this._onOnline);
        window.addEventListener('online', this._onOnline);
      }
      this._startRefresh();
      this._open();
      return this;
    }

    _open() {
      if (!this._active || this._stopped) return;
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      var current = this.socket;
      if (current && (current.readyState === WS_CONNECTING || current.readyState === WS_OPEN)) return;
      if (typeof WebSocket === 'undefined') {
        this._stop(chatError({ code: 'unsupported', error: 'This browser cannot open live connections.', source: 'connect' }));
        return;
      }
      var ws;
      try {
        ws = new WebSocket(this.socketUrl());
      } catch (e) {
        this._setStatus('closed');
        this._scheduleReconnect();
        return;
      }
      var opened = false;
      this.socket = ws;
      this._setStatus('connecting');
      // Handlers check that their socket is still the current one: a replaced socket's late
      // events must not touch its successor.
      ws.onopen = () => {
        if (ws !== this.socket) return;
        opened = true;
        this._attempt = 0;
        this._lastFrameAt = Date.now();
        this._startPing();
        this._setStatus('open');
      };
      ws.onmessage = (event) => {
        if (ws !== this.socket) return;
        this._lastFrameAt = Date.now();
        var frame = parseJson(event.data);
        if (frame && typeof frame === 'object' && !Array.isArray(frame)) this._handle(frame);
      };
      ws.onerror = noop; // always followed by a close event, where reconnection is decided
      ws.onclose = (event) => {
        if (ws !== this.socket) return;
        this._socketClosed(event, opened);
      };
    }

    _socketClosed(event, opened) {
      this.socket = null;
      this._stopPing();
      if (!this._active) return;
      var fatal = FATAL_CLOSE[event && event.code];
      if (fatal) {
        this._stop(chatError({
          status: fatal.status, code: fatal.code, error: (event.reason || '') || fatal.error,
          closeCode: event.code, source: 'connect'
        }));
        return;
      }
      this._setStatus('closed');
      // 1001 "going away": the server shuts down and another instance serves the session; come
      // back now with last_seq (a failure then takes the usual backoff).
      if (opened && event && event.code === 1001 && Date.now() - this._awayAt >= AWAY_RETRY_MS) {
        this._awayAt = Date.now();
        this._open();
        return;
      }
      if (opened) {
        this._scheduleReconnect();
        return;
      }
      // Refused before the upgrade: the browser does not tell the HTTP status, so ask the REST
      // API whether the credentials still work before trying again.
      var gen = this._generation;
      this._get(this._listPath('files'), 'list', 'none').then(
        () => { if (gen === this._generation) this._scheduleReconnect(); },
        (err) => {
          if (gen !== this._generation) return;
          if (isAuthError(err)) {
            err.source = 'connect';
            this._stop(err);
          } else {
            this._scheduleReconnect();
          }
        }
      );
    }

    _scheduleReconnect() {
      if (this._reconnectTimer || !this._active || this._stopped) return;
      var delay = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * Math.pow(2, Math.min(this._attempt, 10)));
      // ±20% so that clients do not all come back in the same instant after a restart.
      delay = Math.round(Math.max(MIN_BACKOFF_MS, Math.min(MAX_BACKOFF_MS, delay * (0.8 + Math.random() * 0.4))));
      this._attempt++;
      this._setStatus('closed', { retryInMs: delay });
      this._reconnectTimer = setTimeout(() => {
        this._reconnectTimer = null;
        this._open();
      }, delay);
    }

    _reconnectNow() {
      if (!this._active || this._stopped || this.socket) return;
      this._attempt = 0;
      this._open();
    }

    // Credentials refused: no more reconnection until connect() is called again.
    _stop(err) {
      this._stopped = err;
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      this._dropSocket();
      this._setStatus('closed', { stopped: true, error: err });
      this._emit('onError', err);
    }

    close() {
      this._active = false;
      this._setStatus('closed');
      this._closed = true;
      this._generation++;
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      this._stopRefresh();
      this._dropSocket();
      if (typeof window !== 'undefined' && window.removeEventListener) window.removeEventListener('online', this._onOnline);
    }

    _dropSocket() {
      var ws = this.socket;
      this.socket = null;
      this._stopPing();
      if (!ws) return;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try {
        ws.close(1000, 'bye');
      } catch (e) {
        // already closing
      }
    }

    _startPing() {
      this._stopPing();
      this._pingTimer = setInterval(() => {
        var ws = this.socket;
        if (!ws || ws.readyState !== WS_OPEN) return;
        // A socket whose peer vanished (laptop lid, NAT timeout) may never report a close.
        if (Date.now() - this._lastFrameAt > DEAD_AFTER_MS) {
          this._dropSocket();
          this._setStatus('closed');
          this._scheduleReconnect();
          return;
        }
        this._sendFrame({ type: 'ping' });
      }, PING_MS);
    }

    _stopPing() {
      if (this._pingTimer !== null) clearInterval(this._pingTimer);
      this._pingTimer = null;
    }

    _startRefresh() {
      this._stopRefresh();
      if (!(this.urlRefreshMs > 0)) return;
      this._refreshTimer = setInterval(() => {
        if (!this._active || this._stopped) return;
        var gen = this._generation;
        this._get(this._listPath('files'), 'list', 'auth').then((body) => {
          if (gen !== this._generation) return;
          var files = Array.isArray(body && body.files) ? body.files : [];
          files.forEach((f) => this._addFile(f, false));
          this._emit('onFileList', files.slice());
        }, noop);
      }, this.urlRefreshMs);
    }

    _stopRefresh() {
      if (this._refreshTimer !== null) clearInterval(this._refreshTimer);
      this._refreshTimer = null;
    }

    _setStatus(status, info) {
      this.status = status;
      this._emit('onStatus', status, info || {});
    }

    _emit(name, a, b) {
      var fn = this[name];
      // A closed client stays silent (its page may already show another session).
      if (typeof fn !== 'function' || (this._closed && name !== 'onStatus')) return;
      try {
        fn.call(this, a, b);
      } catch (e) {
        if (typeof console !== 'undefined' && console.error) console.error('ChatbotFileUpload ' + name + ':', e);
      }
    }

    /* -------------------------------- frames -------------------------------- */

    _handle(frame) {
      switch (frame.type) {
        case 'connection_established':
          this._established(frame);
          break;
        case 'file_shared':
          if (this._fresh(frame)) this._addFile(payload(frame), true);
          break;
        case 'message':
          if (this._fresh(frame)) this._addMessage(payload(frame), true);
          break;
        case 'file_list': {
          var files = Array.isArray(frame.files) ? frame.files : [];
          files.forEach((f) => this._addFile(f, false));
          this._emit('onFileList', files.slice());
          break;
        }
        case 'error':
          this._emit('onError', chatError({
            code: frame.code || 'error', error: frame.error || frame.message, status: 0, source: 'socket'
          }));
          break;
        default: // pong, and whatever a newer server adds
          break;
      }
      this._emit('onEvent', frame);
    }

    // Durable frames are applied once: a seq at or below the highest seen is a duplicate.
    _fresh(frame) {
      var seq = Number(frame.seq);
      if (frame.seq === undefined || frame.seq === null || !Number.isFinite(seq)) return true;
      if (seq <= this.lastSeq) return false;
      this.lastSeq = seq;
      return true;
    }

    _established(frame) {
      if (frame.role) this.role = String(frame.role);
      this._attempt = 0;
      var seq = Number(frame.seq);
      if (!Number.isFinite(seq) || seq < 0) seq = 0;
      var first = !this._synced;
      // recovered:true: the missed events follow on this socket, in order, once. Otherwise
      // (first connection, gap too old, or a server whose counter is behind ours) start from
      // the server's seq and fetch the history over REST; ids deduplicate the overlap.
      if (first || frame.recovered === false || seq < this.lastSeq) {
        this.lastSeq = seq;
        this._synced = true;
        if (!first || this.options.loadHistory !== false) this._reload(first ? 'initial' : 'gap');
      }
    }

    _reload(reason) {
      var gen = this._generation;
      return Promise.all([
        this._get(this._listPath('files'), 'list', 'all'),
        this._get(this._listPath('messages'), 'list', 'all')
      ]).then((answers) => {
        if (gen !== this._generation) return;
        var files = Array.isArray(answers[0] && answers[0].files) ? answers[0].files : [];
        var messages = Array.isArray(answers[1] && answers[1].messages) ? answers[1].messages : [];
        files.forEach((f) => this._addFile(f, false));
        var fresh = messages.filter((m) => this._addMessage(m, false));
        if (typeof this.onReset === 'function') {
          this._emit('onReset', { files: files.slice(), messages: messages.slice(), reason: reason });
        } else {
          this._emit('onFileList', files.slice());
          fresh.forEach((m) => this._emit('onMessage', m));
        }
      }, noop); // already reported through onError
    }

    // Returns whether the file is new to this client; a known one gets its fields refreshed
    // (new signed links, seq).
    _addFile(file, notify) {
      if (!file || typeof file !== 'object' || file.id === undefined || file.id === null) return false;
      var key = String(file.id);
      var known = this._fileIndex.get(key);
      if (known) {
        Object.assign(known, file);
        return false;
      }
      var entry = Object.assign({}, file);
      this.files.push(entry);
      this._fileIndex.set(key, entry);
      if (notify) this._emit('onFileShared', entry);
      return true;
    }

    _addMessage(msg, notify) {
      if (!msg || typeof msg !== 'object' || msg.id === undefined || msg.id === null) return false;
      var key = String(msg.id);
      var known = this._messageIndex.get(key);
      if (known) {
        Object.assign(known, msg);
        return false;
      }
      var entry = Object.assign({}, msg);
      this.messages.push(entry);
      this._messageIndex.set(key, entry);
      if (notify) this._emit('onMessage', entry);
      return true;
    }

    _sendFrame(obj) {
      var ws = this.socket;
      if (!ws || ws.readyState !== WS_OPEN) return false;
      try {
        ws.send(JSON.stringify(obj));
        return true;
      } catch (e) {
        return false;
      }
    }

    sendMessage(text) {
      var t = text === undefined || text === null ? '' : String(text);
      var n = charCount(t);
      if (!t.trim() || n > MAX_TEXT_CHARS) {
        this._emit('onError', chatError({
          code: 'validation_failed', status: 0, source: 'send',
          error: n > MAX_TEXT_CHARS ? 'A message has at most ' + MAX_TEXT_CHARS + ' characters (this one has ' + n + ').' : 'Type a message first.'
        }));
        return false;
      }
      if (this._sendFrame({ type: 'message', text: t })) return true;
      this._emit('onError', chatError({
        code: 'not_connected', status: 0, source: 'send', error: 'Not connected: the message was not sent. Try again in a moment.'
      }));
      return false;
    }

    requestFileList() {
      return this._sendFrame({ type: 'request_file_list', session_id: this.sessionId, company_id: this.companyId });
    }

    /* -------------------------------- HTTP -------------------------------- */

    _listPath(kind) {
      return '/api/chat/' + kind + '/?session_id=' + encodeURIComponent(this.sessionId) +
        '&company_id=' + encodeURIComponent(this.companyId);
    }

    // XMLHttpRequest for everything (upload progress needs it; one error shape for all).
    // cb(err, body); returns the request.
    _request(method, path, body, opts, cb) {
      var o = opts || {};
      var xhr = new XMLHttpRequest();
      xhr.open(method, this.apiBaseUrl + path, true);
      xhr.setRequestHeader('Accept', 'application/json');
      if (this.jwt) {
        xhr.setRequestHeader('Authorization', 'Bearer ' + this.jwt);
      } else if (method !== 'GET' && method !== 'HEAD' && sameOrigin(this.apiBaseUrl)) {
        // The session cookie authenticates: a write carries the page's CSRF token.
        var csrf = this.csrfToken || pageCsrfToken();
        if (csrf) xhr.setRequestHeader('X-CSRF-Token', csrf);
      }
      var data = body;
      if (body && typeof body === 'object' && !(typeof FormData !== 'undefined' && body instanceof FormData)) {
        xhr.setRequestHeader('Content-Type', 'application/json');
        data = JSON.stringify(body);
      }
      if (o.onProgress && xhr.upload) {
        xhr.upload.onprogress = (e) => {
          if (e.lengthComputable && e.total > 0) o.onProgress(Math.min(1, e.loaded / e.total));
        };
      }
      var done = false;
      var finish = (err, answer) => {
        if (done) return;
        done = true;
        cb(err, answer);
      };
      xhr.onload = () => {
        var answer = parseJson(xhr.responseText);
        if (xhr.status >= 200 && xhr.status < 300) finish(null, answer);
        else finish(httpError(xhr, answer, o.source));
      };
      xhr.onerror = () => finish(chatError({
        status: 0, code: 'network_error', source: o.source,
        error: 'The server could not be reached. Check your connection and try again.'
      }));
      xhr.ontimeout = xhr.onerror;
      xhr.onabort = () => finish(chatError({ status: 0, code: 'aborted', source: o.source, error: 'Cancelled.' }));
      xhr.send(data === undefined ? null : data);
      return xhr;
    }

    // GET returning the JSON body; report: 'all' | 'auth' (only 401/403) | 'none' to onError.
    _get(path, source, report) {
      return new Promise((resolve, reject) => {
        this._request('GET', path, null, { source: source }, (err, body) => {
          if (!err) return resolve(body);
          if (report === 'all' || (report === 'auth' && isAuthError(err))) this._emit('onError', err);
          reject(err);
        });
      });
    }

    listFiles() {
      return this._get(this._listPath('files'), 'list', 'all').then((body) => {
        var files = Array.isArray(body && body.files) ? body.files : [];
        files.forEach((f) => this._addFile(f, false));
        return files;
      });
    }

    listMessages() {
      return this._get(this._listPath('messages'), 'list', 'all').then((body) => {
        var messages = Array.isArray(body && body.messages) ? body.messages : [];
        messages.forEach((m) => this._addMessage(m, false));
        return messages;
      });
    }

    // Multipart POST /api/chat/upload/. Resolves with the stored file (201 answer); rejects with
    // a ChatError ({code, error, status}, plus retryAfter on 429). The promise has abort().
    upload(file, opts) {
      var o = opts || {};
      if (!file || typeof file !== 'object' || typeof file.size !== 'number') {
        var bad = chatError({ code: 'validation_failed', status: 0, source: 'upload', error: 'Choose a file to upload.' });
        this._emit('onError', bad);
        return Promise.reject(bad);
      }
      var name = String(file.name || 'file');
      var form = new FormData();
      // Metadata before the bytes, so that a streaming server can check it before reading them.
      form.append('company_id', this.companyId);
      form.append('session_id', this.sessionId);
      form.append('original_name', name);
      // An empty type is "no claim" for the server; leaving the field out says the same.
      if (file.type) form.append('mime_type', String(file.type));
      form.append('size', String(file.size));
      form.append('file', file, name);
      var xhr = null;
      var promise = new Promise((resolve, reject) => {
        var progress = (fraction) => {
          if (typeof o.onProgress === 'function') {
            try { o.onProgress(fraction, file); } catch (e) { /* the page's problem */ }
          }
          this._emit('onProgress', fraction, file);
        };
        xhr = this._request('POST', '/api/chat/upload/', form, { onProgress: progress, source: 'upload' }, (err, body) => {
          if (err) {
            this._emit('onError', err);
            reject(err);
            return;
          }
          progress(1);
          var stored = body && typeof body === 'object' ? body : {};
          this._addFile(stored, true);
          resolve(Object.assign({}, this._fileIndex.get(String(stored.id)) || stored));
        });
      });
      promise.abort = () => { if (xhr) xhr.abort(); };
      return promise;
    }
  }

  /* ----------------------------------------------------------------------------------------- */
  /* Shared DOM helpers of the widget and the agent page                                        */
  /* ----------------------------------------------------------------------------------------- */

  // Creates an element whose text (if any) is set as text: the one way data reaches the DOM.
  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function detach(node) {
    if (node && node.parentNode) node.parentNode.removeChild(node);
  }

  function humanSize(bytes) {
    var n = Number(bytes);
    if (!Number.isFinite(n) || n < 0) return '';
    if (n < 1024) return n + ' B';
    var units = ['KB', 'MB', 'GB', 'TB'];
    var i = -1;
    do {
      n /= 1024;
      i++;
    } while (n >= 1024 && i < units.length - 1);
    return (n < 10 ? n.toFixed(1).replace(/\.0$/, '') : String(Math.round(n))) + ' ' + units[i];
  }

  function timeOf(iso) {
    var t = Date.parse(iso);
    return Number.isFinite(t) ? t : NaN;
  }

  function relativeTime(iso, now) {
    var t = timeOf(iso);
    if (!Number.isFinite(t)) return '';
    var s = Math.max(0, Math.round(((now === undefined ? Date.now() : now) - t) / 1000));
    if (s < 10) return 'just now';
    if (s < 60) return s + ' s ago';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min ago';
    var h = Math.floor(m / 60);
    if (h < 24) return h + ' h ago';
    var d = Math.floor(h / 24);
    if (d === 1) return 'yesterday';
    if (d < 7) return d + ' days ago';
    return new Date(t).toLocaleDateString();
  }

  // The page's date helper (static/js/shell.js, on Vitrine's own pages): dates printed as the
  // server prints them. Elsewhere the SDK formats them itself.
  function pageDates() {
    var d = typeof global !== 'undefined' && global ? global.vitrineDates : null;
    return d && typeof d.time === 'function' ? d : null;
  }

  // "14:05" today, "3 Sep, 14:05" another day.
  function shortTime(iso) {
    var t = timeOf(iso);
    if (!Number.isFinite(t)) return '';
    var d = new Date(t);
    var time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    if (d.toDateString() === new Date().toDateString()) return time;
    return d.toLocaleDateString([], { day: 'numeric', month: 'short' }) + ', ' + time;
  }

  // Only http(s) links and same-origin paths become href/src (no javascript:, data:, ...).
  function safeUrl(u) {
    if (typeof u !== 'string' || !u) return null;
    var s = u.trim();
    if (/^https?:\/\//i.test(s)) return s;
    if (s.charAt(0) === '/' && s.charAt(1) !== '/' && s.charAt(1) !== '\\') return s;
    return null;
  }

  function fileName(file) {
    return String((file && (file.original_name || file.name)) || 'file');
  }

  function fileKind(file) {
    var m = /\.([A-Za-z0-9]{1,6})$/.exec(fileName(file));
    if (m) return m[1].toUpperCase();
    var mime = String((file && file.mime_type) || '');
    var sub = mime.split('/')[1];
    return sub ? sub.split(/[+.;-]/)[0].toUpperCase().slice(0, 6) : 'FILE';
  }

  function senderOf(item) {
    return item && (item.sender || item.uploader) === 'agent' ? 'agent' : 'user';
  }

  function describeError(err) {
    if (!err) return 'Something went wrong.';
    var text = String(err.error || err.message || 'Something went wrong.');
    if (err.status === 429 && err.retryAfter) text += ' Try again in ' + err.retryAfter + ' s.';
    return text;
  }

  function itemHead(item, opts, sender) {
    var labels = (opts && opts.labels) || {};
    var head = el('div', 'chat-meta');
    head.appendChild(el('span', 'chat-sender', labels[sender] || (sender === 'agent' ? 'Agent' : 'Visitor')));
    var iso = item.created_at || item.at;
    if (iso) {
      head.appendChild(document.createTextNode(' '));
      var dates = pageDates();
      var time;
      if (dates) {
        time = dates.time(String(iso));
        time.className = 'chat-time';
      } else {
        time = el('time', 'chat-time', shortTime(iso));
        time.dateTime = String(iso);
        var t = timeOf(iso);
        if (Number.isFinite(t)) time.title = new Date(t).toLocaleString();
      }
      head.appendChild(time);
    }
    return head;
  }

  function itemShell(kind, item, opts) {
    var sender = senderOf(item);
    var li = el('li', 'chat-item ' + kind + ' chat-from-' + sender);
    if (opts && opts.self === sender) li.classList.add('chat-own');
    li.appendChild(itemHead(item, opts, sender));
    return li;
  }

  // <li class="chat-item chat-file" data-file-id> with name (link), size, thumbnail.
  function renderFile(file, opts) {
    var li = itemShell('chat-file', file, opts);
    li.setAttribute('data-file-id', String(file.id));
    var body = el('div', 'chat-bubble chat-file-body');
    fillFileBody(body, file);
    li.appendChild(body);
    return li;
  }

  function fillFileBody(body, file) {
    while (body.firstChild) body.removeChild(body.firstChild);
    var name = fileName(file);
    var href = safeUrl(file.url);
    var thumb = safeUrl(file.thumbnail);
    var link = function (className) {
      var a = el(href ? 'a' : 'span', className);
      if (href) {
        a.href = href;
        a.target = '_blank';
        a.rel = 'noopener noreferrer';
      }
      return a;
    };
    // The preview repeats the name's link for the mouse; keyboards and screen readers get one.
    var preview = link('chat-preview');
    preview.setAttribute('aria-hidden', 'true');
    if (href) preview.tabIndex = -1;
    if (thumb) {
      var img = el('img', 'chat-thumb');
      img.src = thumb;
      img.alt = '';
      img.loading = 'lazy';
      img.decoding = 'async';
      img.addEventListener('error', function () {
        // An expired or refused preview: show the type badge instead of a broken image.
        if (img.hidden) return;
        img.hidden = true;
        preview.appendChild(el('span', 'chat-file-badge', fileKind(file)));
      });
      preview.appendChild(img);
    } else {
      preview.appendChild(el('span', 'chat-file-badge', fileKind(file)));
    }
    body.appendChild(preview);
    var info = el('div', 'chat-file-info');
    var a = link('chat-file-name');
    a.textContent = name;
    if (href && file.mime_type) a.type = String(file.mime_type);
    info.appendChild(a);
    if (href) info.appendChild(el('span', 'sr-only', ' (opens in a new tab)'));
    var details = [humanSize(file.size), fileKind(file)].filter(Boolean).join(' \u00b7 ');
    info.appendChild(el('span', 'chat-file-size', details));
    body.appendChild(info);
  }

  // <li class="chat-item chat-message" data-message-id> with the text.
  function renderMessage(msg, opts) {
    var li = itemShell('chat-message', msg, opts);
    li.setAttribute('data-message-id', String(msg.id));
    li.appendChild(el('p', 'chat-bubble chat-text', msg.text === undefined || msg.text === null ? '' : msg.text));
    return li;
  }

  // A conversation list: messages and files interleaved by time, each id once.
  class Conversation {
    constructor(list, opts) {
      var o = opts || {};
      this.list = list;
      this.opts = { labels: o.labels || {}, self: o.self || null };
      this.items = new Map(); // 'f:' + id | 'm:' + id -> <li>
      if (list && !list.hasAttribute('data-empty')) list.setAttribute('data-empty', 'No messages yet.');
    }

    clear() {
      this.items.clear();
      while (this.list.firstChild) this.list.removeChild(this.list.firstChild);
    }

    addFile(file) {
      if (!file || file.id === undefined || file.id === null) return null;
      var key = 'f:' + file.id;
      var known = this.items.get(key);
      if (known) {
        // Same file again (list refresh): take the newer signed links.
        var body = known.querySelector('.chat-file-body');
        if (body && (file.url || file.thumbnail)) fillFileBody(body, file);
        return known;
      }
      return this._insert(key, renderFile(file, this.opts), file);
    }

    addMessage(msg) {
      if (!msg || msg.id === undefined || msg.id === null) return null;
      var key = 'm:' + msg.id;
      var known = this.items.get(key);
      if (known) return known;
      return this._insert(key, renderMessage(msg, this.opts), msg);
    }

    // History: both lists merged in time order.
    merge(files, messages) {
      var all = [];
      (files || []).forEach(function (f) { all.push({ kind: 'f', item: f }); });
      (messages || []).forEach(function (m) { all.push({ kind: 'm', item: m }); });
      all.sort(function (a, b) {
        var ta = timeOf(a.item.created_at || a.item.at);
        var tb = timeOf(b.item.created_at || b.item.at);
        return (Number.isFinite(ta) ? ta : Infinity) - (Number.isFinite(tb) ? tb : Infinity) || 0;
      });
      this.list.setAttribute('aria-busy', 'true');
      all.forEach((x) => { if (x.kind === 'f') this.addFile(x.item); else this.addMessage(x.item); });
      this.list.removeAttribute('aria-busy');
      this.scrollToEnd();
    }

    _insert(key, li, item) {
      var t = timeOf(item.created_at || item.at);
      var sortKey = Number.isFinite(t) ? t : Infinity;
      li.setAttribute('data-time', String(sortKey));
      var stick = this._nearEnd() || li.classList.contains('chat-own');
      // After every item at or before this time: arrival order breaks ties.
      var before = null;
      var node = this.list.lastElementChild;
      while (node && Number(node.getAttribute('data-time')) > sortKey) {
        before = node;
        node = node.previousElementSibling;
      }
      this.list.insertBefore(li, before);
      this.items.set(key, li);
      if (stick && !before) this.scrollToEnd();
      return li;
    }

    _nearEnd() {
      var l = this.list;
      return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
    }

    scrollToEnd() {
      this.list.scrollTop = this.list.scrollHeight;
    }
  }

  // Drop zone + picker: onFiles(File[]) for files dropped on `zone` or chosen with `input`
  // (opened by `button`). Returns a function that removes the listeners.
  function wireDropZone(zone, onFiles, opts) {
    var o = opts || {};
    var depth = 0;
    var off = [];
    var on = function (target, type, fn) {
      target.addEventListener(type, fn);
      off.push(function () { target.removeEventListener(type, fn); });
    };
    var hasFiles = function (e) {
      var types = e.dataTransfer && e.dataTransfer.types;
      return !!types && Array.prototype.indexOf.call(types, 'Files') !== -1;
    };
    var highlight = function (yes) {
      zone.classList.toggle('is-dragover', yes);
      if (o.highlight) o.highlight.classList.toggle('is-dragover', yes);
    };
    var give = function (list) {
      var files = Array.prototype.slice.call(list || []);
      if (files.length) onFiles(files);
    };
    on(zone, 'dragenter', function (e) {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth++;
      highlight(true);
    });
    on(zone, 'dragover', function (e) {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
      highlight(true);
    });
    on(zone, 'dragleave', function () {
      depth = Math.max(0, depth - 1);
      if (depth === 0) highlight(false);
    });
    on(zone, 'drop', function (e) {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      highlight(false);
      give(e.dataTransfer.files);
    });
    if (o.input) {
      on(o.input, 'change', function () {
        give(o.input.files);
        o.input.value = ''; // the same file can be chosen again
      });
    }
    if (o.button && o.input) {
      on(o.button, 'click', function (e) {
        e.preventDefault();
        o.input.click();
      });
    }
    // A file dropped next to the zone must not make the browser navigate away to it.
    if (o.guardWindow !== false && typeof window !== 'undefined') {
      var guard = function (e) {
        if (hasFiles(e) && !zone.contains(e.target)) {
          e.preventDefault();
          if (e.type === 'dragover') e.dataTransfer.dropEffect = 'none';
        }
      };
      on(window, 'dragover', guard);
      on(window, 'drop', guard);
    }
    return function unwire() {
      off.forEach(function (f) { f(); });
      off = [];
    };
  }

  // One upload row in `container` (a <ul>): name + <progress>; done() removes it, fail(err)
  // turns it into an error line with the server's text.
  function uploadRow(container, file) {
    var li = el('li', 'chat-upload');
    var name = el('span', 'chat-upload-name', String((file && file.name) || 'file'));
    var pct = el('span', 'chat-upload-pct', 'waiting');
    var bar = el('progress');
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute('aria-label', 'Uploading ' + String((file && file.name) || 'file'));
    li.appendChild(name);
    li.appendChild(pct);
    li.appendChild(bar);
    container.appendChild(li);
    return {
      element: li,
      update: function (fraction) {
        var f = Math.max(0, Math.min(1, Number(fraction) || 0));
        bar.value = f;
        pct.textContent = Math.round(f * 100) + '%';
      },
      done: function () {
        detach(li);
      },
      fail: function (err) {
        while (li.firstChild) li.removeChild(li.firstChild);
        li.className = 'chat-upload chat-upload-failed';
        li.setAttribute('role', 'alert');
        var text = el('span', 'chat-upload-error error');
        text.appendChild(el('span', 'chat-upload-name', String((file && file.name) || 'file')));
        text.appendChild(document.createTextNode(': ' + describeError(err)));
        li.appendChild(text);
        var dismiss = el('button', 'chat-dismiss', '\u00d7');
        dismiss.type = 'button';
        dismiss.setAttribute('aria-label', 'Dismiss this error');
        dismiss.addEventListener('click', function () { detach(li); });
        li.appendChild(dismiss);
      }
    };
  }

  // Uploads files one after the other with a progress row each. getClient (a client, or a
  // function returning a client or a promise of one) is asked at each file's turn. Resolves
  // when all are done.
  function uploadFiles(getClient, files, container, opts) {
    var o = opts || {};
    var chain = Promise.resolve();
    Array.prototype.slice.call(files || []).forEach(function (file) {
      var row = uploadRow(container, file);
      chain = chain.then(function () {
        return typeof getClient === 'function' ? getClient() : getClient;
      }).then(function (client) {
        if (!client) {
          row.fail({ error: 'Not connected to a chat session.' });
          return null;
        }
        row.update(0);
        return client.upload(file, { onProgress: row.update }).then(function (stored) {
          row.done();
          if (o.onUploaded) o.onUploaded(stored, client);
        }, function (err) {
          row.fail(err);
          if (o.onFailed) o.onFailed(err, file, client);
        });
      });
    });
    return chain;
  }

  // The connection state in words: exactly 'connected' while the socket is open.
  function showStatus(node, status, info) {
    if (!node) return;
    var i = info || {};
    var text;
    if (status === 'open') text = 'connected';
    else if (status === 'connecting') text = 'connecting\u2026';
    else if (i.stopped) text = 'offline';
    else if (i.retryInMs) text = 'offline, retrying in ' + Math.max(1, Math.round(i.retryInMs / 1000)) + ' s';
    else text = 'offline';
    node.textContent = text;
    node.setAttribute('data-state', status === 'open' || status === 'connecting' ? status : 'closed');
  }

  var CSS = [
    '.chat-conversation{list-style:none;margin:0;padding:.75rem;overflow-y:auto;display:flex;flex-direction:column;gap:.65rem;overscroll-behavior:contain}',
    '.chat-conversation:empty::before{content:attr(data-empty);color:var(--muted,#5d6470);margin:auto;text-align:center;padding:1rem}',
    '.chat-item{display:flex;flex-direction:column;align-items:flex-start;max-width:85%;min-width:0}',
    '.chat-item.chat-own{align-self:flex-end;align-items:flex-end}',
    '.chat-meta{font-size:.75rem;color:var(--muted,#5d6470);margin:0 .35rem .1rem}',
    '.chat-sender{font-weight:600;color:var(--fg,#1b1d21)}',
    '.chat-bubble{margin:0;padding:.5rem .75rem;border-radius:.85rem;background:#eef0f3;color:var(--fg,#1b1d21);overflow-wrap:anywhere;max-width:100%}',
    '.chat-own .chat-bubble{background:#e8eefc}',
    '.chat-text{white-space:pre-wrap}',
    '.chat-file-body{display:flex;align-items:center;gap:.65rem;background:var(--card,#fff);border:1px solid #e3e6ea}',
    '.chat-own .chat-file-body{background:var(--card,#fff);border-color:#c9d5f5}',
    '.chat-preview{flex:none;display:block;text-decoration:none}',
    '.chat-thumb[hidden]{display:none}',
    '.chat-thumb{display:block;width:4.5rem;height:4.5rem;object-fit:cover;border-radius:.5rem;background:#eef0f3}',
    '.chat-file-badge{display:flex;align-items:center;justify-content:center;width:2.6rem;height:3.2rem;border-radius:.35rem;background:#eef0f3;border:1px solid #c4c9d0;color:var(--muted,#5d6470);font-size:.7rem;font-weight:700;letter-spacing:.02em}',
    '.chat-file-info{min-width:0;display:flex;flex-direction:column}',
    '.chat-file-name{font-weight:600;color:var(--accent,#2451d6);overflow-wrap:anywhere}',
    '.chat-file-size{font-size:.8rem;color:var(--muted,#5d6470)}',
    '.chat-uploads{list-style:none;margin:0;padding:0;display:flex;flex-direction:column;gap:.35rem}',
    '.chat-uploads:empty{display:none}',
    '.chat-upload{display:grid;grid-template-columns:minmax(0,1fr) auto;gap:.1rem .5rem;font-size:.85rem}',
    '.chat-upload progress{grid-column:1/-1;width:100%;height:.5rem;accent-color:var(--accent,#2451d6)}',
    '.chat-upload-name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font-weight:600}',
    '.chat-upload-pct{color:var(--muted,#5d6470);font-variant-numeric:tabular-nums}',
    '.chat-upload-failed{display:flex;align-items:flex-start;justify-content:space-between;gap:.5rem;padding:.35rem .5rem;border-radius:.5rem;background:#f6e1e0}',
    '.chat-upload-error{overflow-wrap:anywhere}',
    '.chat-upload-error .chat-upload-name{white-space:normal}',
    'button.chat-dismiss{flex:none;background:none;color:var(--err,#b3261e);padding:0 .4rem;font-size:1.1rem;line-height:1.2}',
    '.chat-dropzone{display:flex;align-items:center;flex-wrap:wrap;gap:.5rem .75rem;padding:.5rem .75rem;border:2px dashed #c4c9d0;border-radius:.75rem;color:var(--muted,#5d6470);font-size:.9rem}',
    '.chat-dropzone.is-dragover,.is-dragover .chat-dropzone{border-color:var(--accent,#2451d6);background:#e8eefc;color:var(--fg,#1b1d21)}',
    '.chat-drop-target.is-dragover{outline:3px dashed var(--accent,#2451d6);outline-offset:-3px}',
    'button.chat-secondary{background:var(--card,#fff);color:var(--accent,#2451d6);border:1px solid var(--accent,#2451d6);padding:.4rem .8rem}',
    '.chat-compose{display:flex;gap:.5rem}',
    '.chat-compose input{flex:1 1 auto;min-width:0}',
    '.chat-compose button:disabled,.chat-dropzone button:disabled{opacity:.6;cursor:not-allowed}',
    '.chat-status{font-size:.8rem;color:var(--muted,#5d6470);white-space:nowrap}',
    '.chat-status::before{content:"";display:inline-block;width:.55rem;height:.55rem;margin-right:.35rem;border-radius:50%;background:#c4c9d0;vertical-align:baseline}',
    '.chat-status[data-state="open"]::before{background:#117733}',
    '.chat-status[data-state="connecting"]::before{background:#e6a700}',
    '.chat-notice:empty{display:none}',
    '.chat-notice{margin:0;padding:.4rem .6rem;border-radius:.5rem;background:#f6e1e0;font-size:.9rem}',
    '.chat-notice.is-info{background:#e8eefc;color:var(--fg,#1b1d21);font-weight:400}'
  ].join('\n');

  // Adds the chat styles once (a <style> element: the pages allow inline styles).
  function injectStyles(doc) {
    var d = doc || document;
    if (d.getElementById('vitrine-chat-styles')) return;
    var style = d.createElement('style');
    style.id = 'vitrine-chat-styles';
    style.textContent = CSS;
    (d.head || d.documentElement).appendChild(style);
  }

  ChatbotFileUpload.ui = {
    el: el,
    detach: detach,
    humanSize: humanSize,
    relativeTime: relativeTime,
    shortTime: shortTime,
    safeUrl: safeUrl,
    fileName: fileName,
    describeError: describeError,
    renderFile: renderFile,
    renderMessage: renderMessage,
    Conversation: Conversation,
    wireDropZone: wireDropZone,
    uploadRow: uploadRow,
    uploadFiles: uploadFiles,
    showStatus: showStatus,
    injectStyles: injectStyles,
    css: CSS
  };
  ChatbotFileUpload.chatError = chatError;
  ChatbotFileUpload.MAX_TEXT_CHARS = MAX_TEXT_CHARS;

  global.ChatbotFileUpload = ChatbotFileUpload;
  if (typeof module !== 'undefined' && module.exports) module.exports = ChatbotFileUpload;
})(typeof window !== 'undefined' ? window : typeof globalThis !== 'undefined' ? globalThis : this);
