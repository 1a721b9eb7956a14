/*
 * Vitrine real-time collaboration: new CollaborationClient(sessionId, assetId, options)
 *
 * Speaks the WebSocket protocol of docs/realtime.md on /ws/collaboration/{session_id}/ and draws
 * into whatever of these elements the page provides (every one is optional; missing ones are
 * skipped, so the seed's bare `new CollaborationClient(sessionId, assetId)` works on any page):
 *
 *   #collab-stage          the container: cursors and comment pins are drawn over it and every
 *                          position is a fraction (0..1) of its box (default: document.body)
 *   #collab-timeline       bar under the video/audio where comments with a media time appear
 *   #collab-online         <ul> of who is online
 *   #collab-comments       <ol> comment thread (replies nested under their parent)
 *   #collab-comment-form   form with a textarea `content` and hidden inputs `position_x`,
 *                          `position_y`, `timestamp`, `parent_comment_id`; #collab-comment-context
 *                          inside it says what the next comment replies to / is pinned to
 *   #collab-notifications  aria-live region for `notification` events
 *   #collab-errors         role=alert region for `error` events and local failures
 *   #collab-status         connection state ("Connected", "Reconnecting in 6 s…")
 *   #collab-expires        <time> that gets the session's expiry in local time
 *   #collab-banner         where "this session has ended" is shown (created when missing)
 *   #collab-voice, #collab-screen   voice chat / screen sharing toggles (shown when enabled)
 *   #collab-remote-media   where remote screens (and the hidden remote audio) are placed
 *
 * Options (all optional):
 *   token             access token sent as ?token= (without it the session cookie authenticates)
 *   apiBase           origin of the Vitrine server (default: this page's origin); only used to
 *                     derive wsBase when that is not given
 *   wsBase            ws:// or wss:// origin of the socket (default: from apiBase or this page,
 *                     wss:// on https pages)
 *   container         element (or its id) cursors and pins are drawn in
 *   onMessage(data)   called with every message after the client handled it
 *   autoInit          false: do not connect from the constructor, call init() yourself
 *   reconnectDelayMs  first reconnection delay (default 3000), doubled per failure up to 30 s
 *   cursorHz          most cursor updates sent per second (default 20)
 *   iceServers        RTCIceServer list for voice/screen (default none: works on one network)
 *   commentPrompt     false: Shift+click fills the comment form instead of calling prompt()
 *
 * CollaborationClient.Replay (also window.CollaborationReplay) plays a session recording back
 * with the same cursors, pins and thread; see the bottom of this file.
 *
 * No libraries and no network access besides the socket (and the recording for the replay).
 * Every piece of user data reaches the page through textContent / createTextNode only.
 */
(function (global) {
  'use strict';

  var CURSOR_IDLE_MS = 10000;     // a cursor that has not moved for this long fades out
  var MAX_RECONNECT_MS = 30000;
  // A socket closed with 1001 (the server is shutting down; another instance takes over) comes
  // back at once, without the backoff, at most once in this long.
  var AWAY_RETRY_MS = 10000;
  var HEARTBEAT_MS = 25000;       // below the usual 30-60 s idle timeout of reverse proxies
  var DEAD_AFTER_MS = 70000;      // no frame at all (not even a pong) for this long: dead socket
  var ERROR_SHOW_MS = 10000;
  var PENDING_TIMEOUT_MS = 15000; // the comment form unlocks if the echo never comes
  var MAX_NOTIFICATIONS = 30;
  var WS_OPEN = 1;
  var SVG_NS = 'http://www.w3.org/2000/svg';

  // Participant colours: each keeps at least ~4.5:1 contrast with the white label text drawn on
  // it, and neighbours differ in lightness too, not only in hue.
  var PALETTE = [
    '#0072B2', '#B3261E', '#117733', '#882255', '#332288', '#AA4499',
    '#0F766E', '#8C6D1F', '#6D28D9', '#9A3412', '#1D4ED8', '#5B6170'
  ];

  var CALLS = {
    voice: { feature: 'voice_chat', button: 'collab-voice', start: 'Start voice chat', stop: 'Stop voice chat' },
    screen: { feature: 'screen_sharing', button: 'collab-screen', start: 'Share your screen', stop: 'Stop sharing' }
  };

  var ENDED_TEXT = {
    ended: 'This session has ended.',
    expired: 'This session has expired.',
    removed: 'You were removed from this session.'
  };

  /* ----------------------------------------------------------------------------------------- */
  /* Small helpers                                                                              */
  /* ----------------------------------------------------------------------------------------- */

  function hasDocument() {
    return typeof document !== 'undefined' && document !== null;
  }

  function byId(id) {
    return hasDocument() && typeof document.getElementById === 'function' ? document.getElementById(id) : null;
  }

  // Creates an element whose text (if any) is set as text: the one way data reaches the DOM here.
  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function detach(node) {
    if (node && node.parentNode) node.parentNode.removeChild(node);
  }

  function removeChildren(node) {
    while (node && node.firstChild) node.removeChild(node.firstChild);
  }

  // Server ids are integers, but a recording or another client may hand them over as strings:
  // compare them as strings so 7 and "7" are the same participant.
  function idKey(id) {
    return id === null || id === undefined ? '' : String(id);
  }

  function sameId(a, b) {
    return a !== null && a !== undefined && b !== null && b !== undefined && String(a) === String(b);
  }

  // Numeric order when both ids are numbers ("9" < "10"), string order otherwise; both peers
  // must reach the same verdict, which plain string comparison of numbers would not guarantee.
  function compareIds(a, b) {
    var na = Number(a);
    var nb = Number(b);
    if (Number.isFinite(na) && Number.isFinite(nb)) return na < nb ? -1 : na > nb ? 1 : 0;
    var sa = String(a);
    var sb = String(b);
    return sa < sb ? -1 : sa > sb ? 1 : 0;
  }

  // A position fraction, or null when unusable; out-of-range values are pulled to the edge so a
  // slightly-off cursor stays visible instead of vanishing.
  function clamp01(v) {
    if (v === null || v === undefined || v === '') return null;
    var n = Number(v);
    if (!Number.isFinite(n)) return null;
    return n < 0 ? 0 : n > 1 ? 1 : n;
  }

  function positive(v, fallback) {
    var n = Number(v);
    return Number.isFinite(n) && n > 0 ? n : fallback;
  }

  function pad(n, width) {
    var s = String(n);
    while (s.length < width) s = '0' + s;
    return s;
  }

  // Media position of a comment in seconds, or null. Accepts what the server returns
  // ("HH:MM:SS", "HH:MM:SS.mmm"), "MM:SS" and plain seconds; an RFC 3339 date (what the seed's
  // client sends) does not match and means "no media position", as on the server.
  function parseMediaTime(ts) {
    if (ts === null || ts === undefined || ts === '') return null;
    if (typeof ts === 'number') return Number.isFinite(ts) && ts >= 0 ? ts : null;
    var m = /^\s*(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:\.(\d{1,3}))?\s*$/.exec(String(ts));
    if (!m) return null;
    return (Number(m[1] || 0) * 3600) + (Number(m[2]) * 60) + Number(m[3]) + (m[4] ? Number('0.' + m[4]) : 0);
  }

  // "HH:MM:SS.mmm", the format the comment API documents for media positions.
  function formatMediaTime(seconds) {
    var ms = Math.max(0, Math.round(Number(seconds) * 1000)) || 0;
    return pad(Math.floor(ms / 3600000), 2) + ':' + pad(Math.floor(ms / 60000) % 60, 2) + ':' +
      pad(Math.floor(ms / 1000) % 60, 2) + '.' + pad(ms % 1000, 3);
  }

  // What a comment's media position looks like in the thread: as the server wrote it when it is a
  // string, which drops ".000" already.
  function mediaTimeLabel(ts) {
    if (typeof ts === 'string') return ts.trim();
    var s = parseMediaTime(ts);
    return s === null ? '' : formatMediaTime(s).replace(/\.000$/, '');
  }

  // Player clock: "4:05", or "1:04:05" past an hour.
  function formatClock(ms) {
    var total = Math.max(0, Math.floor((Number(ms) || 0) / 1000));
    var h = Math.floor(total / 3600);
    var m = Math.floor(total / 60) % 60;
    var s = total % 60;
    return h > 0 ? h + ':' + pad(m, 2) + ':' + pad(s, 2) : m + ':' + pad(s, 2);
  }

  // The page's date helper (static/js/shell.js, on Vitrine's own pages): dates printed as the
  // server prints them. Elsewhere the SDK formats them itself.
  function pageDates() {
    var d = typeof global !== 'undefined' && global ? global.vitrineDates : null;
    return d && typeof d.time === 'function' ? d : null;
  }

  function localDateTime(iso) {
    var d = new Date(iso);
    if (!iso || isNaN(d.getTime())) return String(iso || '');
    try {
      return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
    } catch (e) {
      return d.toLocaleString();
    }
  }

  function localTime(date) {
    try {
      return date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
    } catch (e) {
      return date.toLocaleTimeString();
    }
  }

  // FNV-1a: stable across browsers and reloads, so a participant keeps their colour everywhere.
  function colourFor(key) {
    var s = idKey(key);
    var h = 0x811c9dc5;
    for (var i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return PALETTE[(h >>> 0) % PALETTE.length];
  }

  function authorKey(comment) {
    var a = comment && comment.author;
    if (!a) return 'unknown';
    return a.id !== null && a.id !== undefined ? a.id : 'guest:' + (a.name || '');
  }

  function authorName(comment) {
    var a = comment && comment.author;
    var name = a && a.name ? String(a.name) : 'Someone';
    return a && a.is_guest ? name + ' (guest)' : name;
  }

  function excerpt(text, max) {
    var s = String(text || '').replace(/\s+/g, ' ').trim();
    return s.length > max ? s.slice(0, max - 1) + '\u2026' : s;
  }

  // Restarts the highlight animation even when the element is already highlighted.
  function flash(node) {
    if (!node || !node.classList) return;
    node.classList.remove('collab-flash');
    void node.offsetWidth;
    node.classList.add('collab-flash');
    setTimeout(function () { node.classList.remove('collab-flash'); }, 2000);
  }

  function resolveElement(value, fallbackId) {
    if (value && typeof value === 'object' && value.nodeType === 1) return value;
    if (typeof value === 'string' && value) return byId(value.replace(/^#/, ''));
    return byId(fallbackId) || (hasDocument() ? document.body : null);
  }

  // The overlay is the positioned layer cursors and pins live in. It covers the container exactly,
  // so a fraction of the container box is a percentage of the overlay. Inline styles keep the SDK
  // usable on pages that do not load vitrine.css.
  function ensureOverlay(container) {
    if (!container) return null;
    var overlay = null;
    for (var i = 0; i < container.children.length && !overlay; i++) {
      if (container.children[i].classList.contains('collab-overlay')) overlay = container.children[i];
    }
    if (overlay && overlay.getAttribute('data-collab-ready')) return overlay;
    if (typeof getComputedStyle === 'function' && getComputedStyle(container).position === 'static') {
      container.style.position = 'relative';
    }
    if (!overlay) {
      overlay = el('div', 'collab-overlay');
      container.appendChild(overlay);
    }
    // Also applied to an overlay the page provides: clicks must reach the media underneath.
    var s = overlay.style;
    s.position = 'absolute';
    s.left = s.top = s.right = s.bottom = '0';
    s.pointerEvents = 'none';
    s.zIndex = '2';
    overlay.setAttribute('data-collab-ready', '1');
    return overlay;
  }

  // setLocalDescription() without arguments (create the right offer/answer) is the modern form;
  // browsers from before 2020 need the description spelled out.
  function setLocal(pc) {
    return Promise.resolve()
      .then(function () { return pc.setLocalDescription(); })
      .catch(function (err) {
        if (!err || err.name !== 'TypeError') throw err;
        var make = pc.signalingState === 'have-remote-offer' ? pc.createAnswer() : pc.createOffer();
        return make.then(function (d) { return pc.setLocalDescription(d); });
      });
  }

  /* ----------------------------------------------------------------------------------------- */
  /* Cursors                                                                                    */
  /* ----------------------------------------------------------------------------------------- */

  // Other people's cursors: an arrow in their colour with their name, positioned in percent of the
  // overlay. Shared by the live client and the replay.
  class CursorLayer {
    constructor(getOverlay) {
      this.getOverlay = getOverlay;
      this.map = new Map(); // idKey(user id) -> element
    }

    ensure(userId, name) {
      var key = idKey(userId);
      var c = this.map.get(key);
      if (!c) {
        var colour = colourFor(key);
        c = el('div', 'collab-cursor');
        c.setAttribute('aria-hidden', 'true'); // decorative: the online list says who is here
        c.setAttribute('data-user-id', key);
        var s = c.style;
        s.position = 'absolute';
        s.left = '0';
        s.top = '0';
        s.pointerEvents = 'none';
        s.zIndex = '3';
        s.transition = 'left 80ms linear, top 80ms linear, opacity 600ms ease';
        var svg = document.createElementNS(SVG_NS, 'svg');
        svg.setAttribute('width', '16');
        svg.setAttribute('height', '20');
        svg.setAttribute('viewBox', '0 0 16 20');
        svg.setAttribute('focusable', 'false');
        svg.style.display = 'block';
        var path = document.createElementNS(SVG_NS, 'path');
        path.setAttribute('d', 'M1 1 L1 17 L5.5 12.8 L8.6 19 L11.4 17.7 L8.4 11.6 L14.5 11.6 Z');
        path.setAttribute('fill', colour);
        path.setAttribute('stroke', '#fff');
        path.setAttribute('stroke-width', '1.2');
        svg.appendChild(path);
        c.appendChild(svg);
        var label = el('span', 'collab-cursor-label');
        label.style.background = colour;
        label.style.color = '#fff';
        label.style.whiteSpace = 'nowrap';
        c.appendChild(label);
        c.collabLabel = label;
        this.map.set(key, c);
      }
      if (name !== undefined && name !== null && c.collabLabel.textContent !== String(name)) {
        c.collabLabel.textContent = String(name);
      }
      var overlay = this.getOverlay();
      if (overlay && c.parentNode !== overlay) overlay.appendChild(c);
      return c;
    }

    update(userId, x, y, name) {
      var c = this.ensure(userId, name);
      c.style.left = (x * 100) + '%';
      c.style.top = (y * 100) + '%';
      this.setIdle(userId, false);
      return c;
    }

    setIdle(userId, idle) {
      var c = this.map.get(idKey(userId));
      if (!c) return;
      c.style.opacity = idle ? '0' : '1';
      c.classList.toggle('is-idle', !!idle);
    }

    remove(userId) {
      var key = idKey(userId);
      detach(this.map.get(key));
      this.map.delete(key);
    }

    clear() {
      this.map.forEach(detach);
      this.map.clear();
    }
  }

  /* ----------------------------------------------------------------------------------------- */
  /* Comments: thread, pins, timeline markers                                                   */
  /* ----------------------------------------------------------------------------------------- */

  // Keeps the thread, the pins on the media and the timeline markers in step with a set of
  // comments, updating the DOM in place (so focus and scroll survive live updates). Shared by the
  // live client and the replay. Every option is a getter so elements are looked up when needed.
  //   list(), overlay(), timeline(), media(), duration()  -> element / seconds or null
  //   idPrefix   prefix of each <li id>
  //   onReply(comment)  when set, each comment gets a Reply button
  class CommentBoard {
    constructor(opts) {
      this.opts = opts || {};
      this.items = new Map(); // idKey(comment id) -> {c, li, head, body, replies, pin, marker, number}
      this.orphans = new Set(); // replies shown at top level until their parent arrives
      this.nextPin = 1;
    }

    _get(name) {
      var f = this.opts[name];
      return typeof f === 'function' ? f() : null;
    }

    get size() {
      return this.items.size;
    }

    get(id) {
      var it = this.items.get(idKey(id));
      return it ? it.c : null;
    }

    clear() {
      this.items.forEach(function (it) {
        detach(it.pin);
        detach(it.marker);
      });
      this.items.clear();
      this.orphans.clear();
      this.nextPin = 1;
      // The thread belongs to the board: whatever it showed before is stale after a rebuild.
      removeChildren(this._get('list'));
    }

    // Create-or-update; an update (comment_updated) carries no replies, so what it omits is kept.
    upsert(comment, options) {
      if (!comment || typeof comment !== 'object' || comment.id === null || comment.id === undefined) return null;
      var key = idKey(comment.id);
      var it = this.items.get(key);
      var isNew = !it;
      var copy = Object.assign({}, isNew ? {} : it.c, comment);
      delete copy.replies;
      if (isNew) {
        it = this._create(copy);
        this.items.set(key, it);
      }
      it.c = copy;
      if (it.number === null && this._position(copy)) it.number = this.nextPin++;
      this._fill(it);
      this._place(it);
      this._pin(it);
      this._marker(it);
      if (isNew && options && options.flash) flash(it.li);
      if (Array.isArray(comment.replies)) {
        comment.replies.forEach((r) => {
          if (r && typeof r === 'object' && (r.parent_comment_id === null || r.parent_comment_id === undefined)) {
            r = Object.assign({}, r, { parent_comment_id: comment.id });
          }
          this.upsert(r, options);
        });
      }
      return it.li;
    }

    // A deleted comment takes its replies with it, as it does on the server.
    remove(id) {
      var key = idKey(id);
      if (!this.items.has(key)) return false;
      var doomed = [key];
      for (var i = 0; i < doomed.length; i++) {
        this.items.forEach(function (o, k) {
          if (idKey(o.c.parent_comment_id) === doomed[i] && doomed.indexOf(k) < 0) doomed.push(k);
        });
      }
      doomed.forEach((k) => {
        var o = this.items.get(k);
        detach(o.li);
        detach(o.pin);
        detach(o.marker);
        this.items.delete(k);
        this.orphans.delete(k);
      });
      return true;
    }

    // Media duration changed (metadata loaded): markers move to their place or appear.
    refreshTimeline() {
      this.items.forEach((it) => this._marker(it));
    }

    focus(id) {
      var it = this.items.get(idKey(id));
      if (!it) return;
      if (typeof it.li.scrollIntoView === 'function') it.li.scrollIntoView({ block: 'nearest' });
      try {
        it.li.focus({ preventScroll: true });
      } catch (e) {
        it.li.focus();
      }
      flash(it.li);
    }

    seek(seconds) {
      var media = this._get('media');
      if (!media) return;
      try {
        media.currentTime = seconds;
      } catch (e) {
        // not seekable yet (metadata still loading): nothing sensible to do
      }
    }

    _position(c) {
      var x = clamp01(c.position_x);
      var y = clamp01(c.position_y);
      return x === null || y === null ? null : { x: x, y: y };
    }

    _create(c) {
      var prefix = this.opts.idPrefix || 'collab-comment-';
      var li = el('li', 'collab-comment');
      li.id = prefix + idKey(c.id);
      li.tabIndex = -1; // focus target for pins and markers
      li.setAttribute('data-comment-id', idKey(c.id));
      var head = el('p', 'collab-comment-head');
      var body = el('p', 'collab-comment-body');
      li.appendChild(head);
      li.appendChild(body);
      if (typeof this.opts.onReply === 'function') {
        var actions = el('p', 'collab-comment-actions');
        var reply = el('button', 'link collab-reply', 'Reply');
        reply.type = 'button';
        reply.addEventListener('click', () => {
          var it = this.items.get(idKey(c.id));
          if (it) this.opts.onReply(it.c);
        });
        actions.appendChild(reply);
        li.appendChild(actions);
      }
      var replies = el('ol', 'collab-replies');
      li.appendChild(replies);
      return { c: c, li: li, head: head, body: body, replies: replies, pin: null, marker: null, number: null };
    }

    _fill(it) {
      var c = it.c;
      var head = it.head;
      removeChildren(head);
      if (it.number !== null && this._position(c)) {
        var no = el('span', 'collab-comment-no', it.number);
        no.style.background = colourFor(authorKey(c));
        no.title = 'Pin ' + it.number + ' on the media';
        head.appendChild(no);
        head.appendChild(document.createTextNode(' '));
      }
      head.appendChild(el('strong', 'collab-comment-author', authorName(c)));
      if (c.created_at) {
        head.appendChild(document.createTextNode(' \u00b7 '));
        var dates = pageDates();
        var time;
        if (dates) {
          time = dates.time(String(c.created_at));
          time.className = 'collab-comment-time';
        } else {
          time = el('time', 'collab-comment-time', localDateTime(c.created_at));
          time.dateTime = String(c.created_at);
        }
        head.appendChild(time);
      }
      var at = parseMediaTime(c.timestamp);
      if (at !== null) {
        head.appendChild(document.createTextNode(' \u00b7 '));
        var label = 'at ' + mediaTimeLabel(c.timestamp);
        if (this._get('media')) {
          var seek = el('button', 'link collab-comment-at', label);
          seek.type = 'button';
          seek.title = 'Play from ' + mediaTimeLabel(c.timestamp);
          seek.addEventListener('click', () => this.seek(at));
          head.appendChild(seek);
        } else {
          head.appendChild(el('span', 'collab-comment-at', label));
        }
      }
      if (c.resolved) {
        head.appendChild(document.createTextNode(' '));
        head.appendChild(el('span', 'badge collab-resolved', 'Resolved'));
      }
      it.body.textContent = String(c.content === undefined || c.content === null ? '' : c.content);
      it.li.classList.toggle('is-resolved', !!c.resolved);
    }

    _place(it) {
      var key = idKey(it.c.id);
      var pid = it.c.parent_comment_id;
      var hasParentId = pid !== null && pid !== undefined && idKey(pid) !== key;
      var parent = hasParentId ? this.items.get(idKey(pid)) : null;
      // Never nest a comment inside its own reply (a malformed parent chain would detach both).
      if (parent && it.li.contains(parent.li)) parent = null;
      var target = parent ? parent.replies : this._get('list');
      if (target && it.li.parentNode !== target) target.appendChild(it.li);
      if (hasParentId && !parent) this.orphans.add(key);
      else this.orphans.delete(key);
      if (this.orphans.size) {
        this.orphans.forEach((k) => {
          var o = this.items.get(k);
          if (o && idKey(o.c.parent_comment_id) === key && !o.li.contains(it.li)) {
            this.orphans.delete(k);
            it.replies.appendChild(o.li);
          }
        });
      }
    }

    _pin(it) {
      var pos = this._position(it.c);
      var overlay = pos ? this._get('overlay') : null;
      if (!pos || !overlay) {
        detach(it.pin);
        it.pin = null;
        return;
      }
      var c = it.c;
      if (!it.pin) {
        var pin = el('button', 'collab-pin');
        pin.type = 'button';
        pin.setAttribute('data-comment-id', idKey(c.id));
        var s = pin.style;
        s.position = 'absolute';
        s.pointerEvents = 'auto';
        s.transform = 'translate(-50%, -50%)';
        pin.addEventListener('click', (e) => {
          e.stopPropagation(); // a Shift+click on a pin must not start a new comment
          this.focus(c.id);
        });
        it.pin = pin;
      }
      var text = 'Comment ' + it.number + ' by ' + authorName(c) + ': ' + excerpt(c.content, 80);
      it.pin.textContent = String(it.number);
      it.pin.setAttribute('aria-label', text);
      it.pin.title = text;
      it.pin.style.left = (pos.x * 100) + '%';
      it.pin.style.top = (pos.y * 100) + '%';
      it.pin.style.background = colourFor(authorKey(c));
      it.pin.classList.toggle('is-resolved', !!c.resolved);
      if (it.pin.parentNode !== overlay) overlay.appendChild(it.pin);
    }

    _marker(it) {
      var c = it.c;
      var t = parseMediaTime(c.timestamp);
      var timeline = t === null ? null : this._get('timeline');
      if (t === null || !timeline) {
        detach(it.marker);
        it.marker = null;
        return;
      }
      if (!it.marker) {
        var m = el('button', 'collab-marker');
        m.type = 'button';
        m.setAttribute('data-comment-id', idKey(c.id));
        m.style.position = 'absolute';
        m.addEventListener('click', () => {
          var cur = this.items.get(idKey(c.id));
          var at = cur ? parseMediaTime(cur.c.timestamp) : null;
          if (at !== null) this.seek(at);
          this.focus(c.id);
        });
        it.marker = m;
      }
      var d = Number(this._get('duration'));
      var text = mediaTimeLabel(c.timestamp) + ' \u2013 ' + authorName(c) + ': ' + excerpt(c.content, 80);
      it.marker.setAttribute('aria-label', text);
      it.marker.title = text;
      it.marker.style.background = colourFor(authorKey(c));
      // Without a duration there is no scale to place the marker on; it waits hidden.
      it.marker.hidden = !(d > 0);
      if (d > 0) it.marker.style.left = (Math.min(1, t / d) * 100) + '%';
      if (it.marker.parentNode !== timeline) timeline.appendChild(it.marker);
    }
  }

  /* ----------------------------------------------------------------------------------------- */
  /* WebRTC: one connection per other participant                                              */
  /* ----------------------------------------------------------------------------------------- */

  // "Perfect negotiation" (W3C WebRTC example): either side may start negotiating at any time;
  // when both send an offer at once, the polite peer (the lower user id) rolls its own back and
  // answers, the impolite one ignores the incoming offer. Signalling goes through the session
  // socket as {type:'signal', to, data:{kind:'offer'|'answer'|'ice', …}}.
  class PeerLink {
    constructor(client, userId) {
      this.client = client;
      this.userId = userId;
      this.polite = compareIds(client.userId, userId) < 0;
      this.makingOffer = false;
      this.ignoreOffer = false;
      this.answerPending = false;
      this.senders = { voice: [], screen: [] };
      this.remote = { audio: null, video: null };
      this.closed = false;
      // Incoming signals are handled one at a time, so an ICE candidate is never added before
      // the description it belongs to has been applied.
      this._chain = Promise.resolve();
      var pc = new RTCPeerConnection({ iceServers: client.iceServers });
      this.pc = pc;
      pc.onnegotiationneeded = () => {
        this.makingOffer = true;
        setLocal(pc)
          // Usually an offer; an answer when a remote offer overtook ours (then it is the reply).
          .then(() => this._sendLocal())
          .catch((err) => client._rtcError(err))
          .then(() => { this.makingOffer = false; });
      };
      pc.onicecandidate = (e) => {
        if (!e.candidate) return; // end of candidates: nothing the other side needs
        this.send({ kind: 'ice', candidate: typeof e.candidate.toJSON === 'function' ? e.candidate.toJSON() : e.candidate });
      };
      pc.ontrack = (e) => client._onRemoteTrack(this, e.track, e.streams && e.streams[0]);
      pc.oniceconnectionstatechange = () => {
        // A changed network (Wi-Fi to cable, VPN) breaks the path; an ICE restart finds a new one.
        if (pc.iceConnectionState === 'failed' && typeof pc.restartIce === 'function') pc.restartIce();
      };
    }

    send(data) {
      if (!this.closed) this.client.sendMessage({ type: 'signal', to: this.userId, data: data });
    }

    // The kind is read from the description actually set: under glare, a parameterless
    // setLocalDescription() meant to make an offer may have made the answer instead.
    _sendLocal() {
      var d = this.pc.localDescription;
      if (d && (d.type === 'offer' || d.type === 'answer')) this.send({ kind: d.type, sdp: d.sdp });
    }

    // Adds the tracks of the local streams this connection does not send yet.
    attach(local) {
      if (this.closed) return;
      Object.keys(this.senders).forEach((kind) => {
        var stream = local[kind];
        if (!stream || this.senders[kind].length) return;
        stream.getTracks().forEach((track) => {
          this.senders[kind].push(this.pc.addTrack(track, stream));
        });
      });
    }

    detachKind(kind) {
      var list = this.senders[kind] || [];
      this.senders[kind] = [];
      if (this.closed) return;
      list.forEach((sender) => {
        try {
          this.pc.removeTrack(sender);
        } catch (e) {
          // connection already closed
        }
      });
    }

    receive(data) {
      var p = this._chain.then(() => this._handle(data));
      this._chain = p.catch(function () {});
      return p;
    }

    _handle(data) {
      var pc = this.pc;
      if (this.closed) return Promise.resolve();
      if (data.kind === 'offer' || data.kind === 'answer') {
        if (typeof data.sdp !== 'string') return Promise.resolve();
        var readyForOffer = !this.makingOffer && (pc.signalingState === 'stable' || this.answerPending);
        var collision = data.kind === 'offer' && !readyForOffer;
        this.ignoreOffer = !this.polite && collision;
        if (this.ignoreOffer) return Promise.resolve();
        this.answerPending = data.kind === 'answer';
        var desc = { type: data.kind, sdp: data.sdp };
        var apply = collision && pc.signalingState === 'have-local-offer'
          ? pc.setLocalDescription({ type: 'rollback' }).then(() => pc.setRemoteDescription(desc))
          : pc.setRemoteDescription(desc);
        return apply
          .then(() => {
            this.answerPending = false;
            if (data.kind !== 'offer') return null;
            return setLocal(pc).then(() => this._sendLocal());
          }, (err) => {
            this.answerPending = false;
            throw err;
          });
      }
      if (data.kind === 'ice' && data.candidate) {
        return pc.addIceCandidate(data.candidate).catch((err) => {
          // Candidates of an offer we chose to ignore are expected to fail.
          if (!this.ignoreOffer) throw err;
        });
      }
      return Promise.resolve();
    }

    close() {
      if (this.closed) return;
      this.closed = true;
      try {
        this.pc.close();
      } catch (e) {
        // already closed
      }
      detach(this.remote.audio);
      detach(this.remote.video);
      detach(this.remote.unmute);
      this.remote = { audio: null, video: null };
    }
  }

  /* ----------------------------------------------------------------------------------------- */
  /* Live client                                                                                */
  /* ----------------------------------------------------------------------------------------- */

  class CollaborationClient {
    constructor(sessionId, assetId, options) {
      var o = options || {};
      this.sessionId = String(sessionId);
      this.assetId = assetId;
      this.options = o;
      this.token = o.token || null;
      this.apiBase = String(o.apiBase || '').replace(/\/+$/, '');
      this.wsBase = String(o.wsBase || CollaborationClient.defaultWsBase(this.apiBase)).replace(/\/+$/, '');
      this.reconnectDelayMs = positive(o.reconnectDelayMs, 3000);
      this.cursorHz = positive(o.cursorHz, 20);
      this.iceServers = Array.isArray(o.iceServers) ? o.iceServers : [];
      this.commentPrompt = o.commentPrompt !== false;
      this.container = null;

      this.websocket = null;
      this.userId = null;
      this.features = {};
      this.asset = null;
      this.expiresAt = null;
      this.lastSeq = 0;
      this.online = new Map(); // idKey(user id) -> {user_id, name}
      this.connected = false;  // a session_state arrived on the current socket
      this.ended = false;      // the session is over: never reconnect
      this.closed = false;     // close() was called
      this.status = '';
      this.peers = new Map();  // idKey(user id) -> PeerLink
      this.local = { voice: null, screen: null };

      this._hadState = false;
      this._attempt = 0;
      this._failures = 0;
      this._suspended = false;
      this._reconnectTimer = null;
      this._awayAt = 0;
      this._heartbeat = null;
      this._lastFrameAt = 0;
      this._lastSentType = null;
      this._cursorTimer = null;
      this._cursorPending = null;
      this._cursorSent = null;
      this._cursorLast = 0;
      this._idleTimers = new Map();
      this._outbox = [];
      this._pending = null;
      this._pendingTimer = null;
      this._errorTimer = null;
      this._lastError = { text: '', at: 0 };
      this._listeners = [];
      this._initialised = false;

      this._cursorLayer = new CursorLayer(() => this._overlay());
      this.cursors = this._cursorLayer.map; // the seed's Map of cursor elements
      this.board = new CommentBoard({
        list: () => byId('collab-comments'),
        overlay: () => this._overlay(),
        timeline: () => byId('collab-timeline'),
        media: () => this._media(),
        duration: () => this._duration(),
        idPrefix: 'collab-comment-',
        onReply: (comment) => this.startReply(comment)
      });

      if (o.autoInit !== false) this.init();
    }

    // ws(s):// origin: from apiBase when it is absolute, else from this page (wss on https, which
    // the seed's hard-coded ws:// got wrong: browsers refuse ws:// from an https page).
    static defaultWsBase(apiBase) {
      var m = /^(https?):\/\/([^/]+)/i.exec(apiBase || '');
      if (m) return (m[1].toLowerCase() === 'https' ? 'wss://' : 'ws://') + m[2];
      if (typeof location === 'undefined') return '';
      return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host;
    }

    init() {
      if (this._initialised || this.closed) return this;
      this._initialised = true;
      this.connectWebSocket();
      this.setupEventListeners();
      return this;
    }

    // The seed calls this; the server ignores any user_id a client sends anyway.
    getUserId() {
      return this.userId;
    }

    /* -------------------------------- connection -------------------------------- */

    socketUrl() {
      var q = [];
      if (this.token) q.push('token=' + encodeURIComponent(this.token));
      // Only after a first session_state does lastSeq mean "what I have"; before it, 0 would
      // ask the server to replay the room's whole history.
      if (this._hadState || this.lastSeq > 0) q.push('last_seq=' + encodeURIComponent(this.lastSeq));
      return this.wsBase + '/ws/collaboration/' + encodeURIComponent(this.sessionId) + '/' + (q.length ? '?' + q.join('&') : '');
    }

    connectWebSocket() {
      if (this.closed || this.ended || this._suspended) return null;
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      var current = this.websocket;
      if (current && (current.readyState === 0 || current.readyState === WS_OPEN)) return current;
      if (typeof WebSocket === 'undefined') {
        this._setStatus('This browser cannot join live sessions.');
        return null;
      }
      var ws;
      try {
        ws = new WebSocket(this.socketUrl());
      } catch (e) {
        this._failures++;
        this._scheduleReconnect();
        return null;
      }
      this.websocket = ws;
      this.connected = false;
      this._setStatus(this._hadState ? 'Reconnecting\u2026' : 'Connecting\u2026');
      // Handlers check that their socket is still the current one: a replaced socket's late
      // events must not tear down its successor.
      ws.onopen = () => {
        if (ws !== this.websocket) return;
        this._lastFrameAt = Date.now();
        this._startHeartbeat();
      };
      ws.onmessage = (event) => {
        if (ws !== this.websocket) return;
        this._lastFrameAt = Date.now();
        var data;
        try {
          data = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        if (data && typeof data === 'object') this.handleMessage(data);
      };
      ws.onerror = function () {
        // always followed by a close event, which is where reconnection is decided
      };
      ws.onclose = (event) => {
        if (ws !== this.websocket) return;
        this._socketGone(event);
      };
      return ws;
    }

    _socketGone(event) {
      // A socket that closed before its session_state did not get in (403/404/410 at upgrade,
      // server down): such failures grow the delay; a working connection that dropped does not.
      var wasConnected = this.connected;
      if (!this.connected) this._failures++;
      this.websocket = null;
      this.connected = false;
      this._stopHeartbeat();
      this._cancelCursor();
      if (this.closed || this.ended || this._suspended) return;
      // 1001 "going away": the server shuts down and another instance serves the session; come
      // back now with last_seq (a failure then takes the usual backoff).
      if (wasConnected && event && event.code === 1001 && Date.now() - this._awayAt >= AWAY_RETRY_MS) {
        this._awayAt = Date.now();
        this.connectWebSocket();
        return;
      }
      this._scheduleReconnect();
    }

    // Closes the current socket without letting its close event schedule anything.
    _dropSocket(code, reason) {
      var ws = this.websocket;
      this.websocket = null;
      this.connected = false;
      this._stopHeartbeat();
      if (!ws) return;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try {
        ws.close(code || 1000, reason || '');
      } catch (e) {
        // already closing
      }
    }

    _scheduleReconnect() {
      if (this._reconnectTimer || this.closed || this.ended || this._suspended) return;
      var delay = Math.min(MAX_RECONNECT_MS, this.reconnectDelayMs * Math.pow(2, Math.min(this._attempt, 10)));
      // ±25% jitter: after a server restart, clients do not all come back in the same instant.
      delay = Math.min(MAX_RECONNECT_MS, Math.round(delay * (0.75 + Math.random() * 0.5)));
      this._attempt++;
      var text = 'Disconnected. Reconnecting in ' + Math.max(1, Math.round(delay / 1000)) + ' s\u2026';
      if (this._failures >= 3) text += ' (If this goes on, reload the page: you may have been signed out.)';
      this._setStatus(text);
      this._reconnectTimer = setTimeout(() => {
        this._reconnectTimer = null;
        this.connectWebSocket();
      }, delay);
    }

    // Skips the wait (network back, page shown again).
    reconnectNow() {
      if (this.closed || this.ended || this.connected) return;
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      this.connectWebSocket();
    }

    _startHeartbeat() {
      this._stopHeartbeat();
      this._heartbeat = setInterval(() => {
        var ws = this.websocket;
        if (!ws || ws.readyState !== WS_OPEN) return;
        // A socket whose peer vanished (laptop lid, NAT timeout) may never report a close.
        if (Date.now() - this._lastFrameAt > DEAD_AFTER_MS) {
          this._dropSocket(4000, 'no answer');
          this._scheduleReconnect();
          return;
        }
        this.sendMessage({ type: 'ping' });
      }, HEARTBEAT_MS);
    }

    _stopHeartbeat() {
      if (this._heartbeat !== null) clearInterval(this._heartbeat);
      this._heartbeat = null;
    }

    // Returns whether the message was handed to the socket; like the seed, nothing is queued here
    // (comments have their own outbox, cursors and signals are worthless once stale).
    sendMessage(data) {
      var ws = this.websocket;
      if (!ws || ws.readyState !== WS_OPEN) return false;
      try {
        ws.send(JSON.stringify(data));
      } catch (e) {
        return false;
      }
      if (data && data.type !== 'ping') this._lastSentType = data.type;
      return true;
    }

    /* -------------------------------- page wiring -------------------------------- */

    _on(target, type, fn, opts) {
      if (!target || typeof target.addEventListener !== 'function') return;
      target.addEventListener(type, fn, opts);
      this._listeners.push([target, type, fn, opts]);
    }

    _container() {
      if (!this.container) this.container = resolveElement(this.options.container, 'collab-stage');
      return this.container;
    }

    _overlay() {
      return ensureOverlay(this._container());
    }

    _media() {
      var c = this._container();
      return c && typeof c.querySelector === 'function' ? c.querySelector('video, audio') : null;
    }

    _duration() {
      var m = this._media();
      if (m && Number.isFinite(m.duration) && m.duration > 0) return m.duration;
      var d = this.asset ? Number(this.asset.duration_seconds) : NaN;
      return Number.isFinite(d) && d > 0 ? d : null;
    }

    _form() {
      return byId('collab-comment-form');
    }

    _field(name) {
      var form = this._form();
      return form && form.elements ? form.elements.namedItem(name) : null;
    }

    setupEventListeners() {
      if (!hasDocument()) return;
      var container = this._container();
      if (!container) return;
      var move = typeof window !== 'undefined' && window.PointerEvent ? 'pointermove' : 'mousemove';
      this._on(container, move, (e) => this._onPointerMove(e));
      // Shift+mousedown would otherwise select text around the media.
      this._on(container, 'mousedown', (e) => { if (e.shiftKey) e.preventDefault(); });
      this._on(container, 'click', (e) => {
        if (!e.shiftKey) return;
        var t = e.target;
        if (t && typeof t.closest === 'function' && t.closest('.collab-pin, .collab-marker')) return;
        e.preventDefault(); // keeps a Shift+click on a video from also toggling playback
        this.createComment(e.clientX, e.clientY);
      });

      var media = this._media();
      var retime = () => this.board.refreshTimeline();
      this._on(media, 'loadedmetadata', retime);
      this._on(media, 'durationchange', retime);

      var form = this._form();
      if (form) {
        form.hidden = false; // the form only works with this script: the page hides it without
        this._on(form, 'submit', (e) => {
          e.preventDefault();
          this._submitForm();
        });
        var text = this._field('content');
        this._on(text, 'keydown', (e) => {
          if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            this._submitForm();
          }
        });
      }

      Object.keys(CALLS).forEach((kind) => {
        this._on(byId(CALLS[kind].button), 'click', () => this.toggleCall(kind));
      });

      if (typeof window !== 'undefined') {
        this._on(window, 'online', () => this.reconnectNow());
        // Pages with an open socket are not kept in the back/forward cache: let go of it when
        // the page is cached and come back (with last_seq) when it is shown again.
        this._on(window, 'pagehide', (e) => {
          if (!e.persisted) return;
          this._suspended = true;
          clearTimeout(this._reconnectTimer);
          this._reconnectTimer = null;
          this._dropSocket(1001, 'page hidden');
        });
        this._on(window, 'pageshow', (e) => {
          if (!e.persisted || !this._suspended) return;
          this._suspended = false;
          this.connectWebSocket();
        });
      }
    }

    /* -------------------------------- incoming -------------------------------- */

    handleMessage(data) {
      if (!data || typeof data !== 'object') return;
      var type = data.type;
      // Durable events carry a seq. Recovery already sends each exactly once; this check is the
      // second line of defence against a replay overlapping what arrived live.
      if (type !== 'session_state' && typeof data.seq === 'number' && Number.isFinite(data.seq)) {
        if (data.seq <= this.lastSeq) return;
        this.lastSeq = data.seq;
      }
      try {
        switch (type) {
          case 'session_state':
            this._onSessionState(data);
            break;
          case 'cursor_position':
            if (!sameId(data.user_id, this.userId)) this.updateCursor(data.user_id, data.x, data.y, data.name);
            break;
          case 'comment':
          case 'comment_updated':
            if (data.comment) {
              this.displayComment(data.comment);
              this._settlePending(data.comment);
            }
            break;
          case 'comment_deleted':
            this.removeComment(data.comment_id);
            break;
          case 'participant_joined':
            this._onJoined(data.user);
            break;
          case 'participant_left':
            this._onLeft(data.user);
            break;
          case 'notification':
            this._showNotification(data.notification);
            break;
          case 'session_ended':
            this._onEnded(data.reason);
            break;
          case 'error':
            this._onServerError(data);
            break;
          case 'signal':
            this._onSignal(data.from, data.data);
            break;
          case 'pong':
            break; // its arrival already refreshed _lastFrameAt
          default:
            break; // a newer server's message: nothing to do with it here
        }
      } catch (err) {
        if (typeof console !== 'undefined') console.error('collaboration: could not handle', type, err);
      }
      if (typeof this.options.onMessage === 'function') {
        try {
          this.options.onMessage(data);
        } catch (err) {
          if (typeof console !== 'undefined') console.error('collaboration: onMessage failed', err);
        }
      }
    }

    _onSessionState(s) {
      if (s.user_id !== undefined && s.user_id !== null) this.userId = s.user_id;
      this.features = s.features && typeof s.features === 'object' ? s.features : {};
      if (s.asset && typeof s.asset === 'object') this.asset = s.asset;
      if (s.expires_at) this._showExpiry(s.expires_at);
      // recovered === true: the missed events follow and are applied one by one. Otherwise (first
      // connection, or too far behind for the retained window) this state is the truth: rebuild.
      if (s.recovered !== true) {
        var seq = Number(s.seq);
        this.lastSeq = Number.isFinite(seq) && seq > 0 ? seq : 0;
        this.board.clear();
        (Array.isArray(s.comments) ? s.comments : []).forEach((c) => this.board.upsert(c));
      }
      this._setOnline(s.online);
      this._hadState = true;
      this.connected = true;
      this._attempt = 0;
      this._failures = 0;
      this._setStatus('Connected');
      if (!this.features.cursor_tracking) {
        this._cancelCursor();
        this._cursorLayer.clear();
      }
      this._syncCallButtons();
      this._syncPeers();
      this._flushOutbox();
      this.board.refreshTimeline();
    }

    _setOnline(list) {
      this.online = new Map();
      (Array.isArray(list) ? list : []).forEach((u) => {
        if (u && u.user_id !== undefined && u.user_id !== null) this.online.set(idKey(u.user_id), u);
      });
      // Whoever left while we were away: their cursor and call go too.
      this.cursors.forEach((_, key) => { if (!this.online.has(key)) this._dropCursor(key); });
      this.peers.forEach((_, key) => { if (!this.online.has(key)) this._closePeer(key); });
      this._renderOnline();
    }

    _onJoined(user) {
      if (!user || user.user_id === undefined || user.user_id === null) return;
      this.online.set(idKey(user.user_id), user);
      this._renderOnline();
      if (sameId(user.user_id, this.userId)) return;
      // A join means a fresh page on their side: an old connection to them cannot be renegotiated.
      this._closePeer(user.user_id);
      this._syncPeers();
    }

    _onLeft(user) {
      if (!user || user.user_id === undefined || user.user_id === null) return;
      // Another tab of ours leaving does not make this one leave.
      if (sameId(user.user_id, this.userId)) return;
      this.online.delete(idKey(user.user_id));
      this._renderOnline();
      this._dropCursor(user.user_id);
      this._closePeer(user.user_id);
    }

    _nameOf(userId) {
      var u = this.online.get(idKey(userId));
      if (u && u.name) return String(u.name);
      var c = this.cursors.get(idKey(userId));
      if (c && c.collabLabel && c.collabLabel.textContent) return c.collabLabel.textContent;
      return 'Participant ' + idKey(userId);
    }

    _renderOnline() {
      var ul = byId('collab-online');
      var count = byId('collab-online-count');
      if (count) count.textContent = String(this.online.size);
      if (!ul) return;
      var people = Array.from(this.online.values());
      people.sort((a, b) => {
        var me = (sameId(b.user_id, this.userId) ? 1 : 0) - (sameId(a.user_id, this.userId) ? 1 : 0);
        return me || String(a.name || '').localeCompare(String(b.name || ''));
      });
      removeChildren(ul);
      people.forEach((u) => {
        var li = el('li', 'collab-person');
        li.setAttribute('data-user-id', idKey(u.user_id));
        var dot = el('span', 'collab-dot');
        dot.setAttribute('aria-hidden', 'true');
        dot.style.background = colourFor(u.user_id);
        li.appendChild(dot);
        li.appendChild(document.createTextNode(String(u.name || 'Participant ' + idKey(u.user_id))));
        if (sameId(u.user_id, this.userId)) li.appendChild(el('span', 'muted', ' (you)'));
        ul.appendChild(li);
      });
    }

    _showExpiry(iso) {
      this.expiresAt = iso;
      var t = byId('collab-expires');
      if (!t) return;
      var dates = pageDates();
      if (dates) {
        dates.time(String(iso), t);
        return;
      }
      t.setAttribute('datetime', String(iso));
      t.textContent = localDateTime(iso);
    }

    _setStatus(text) {
      this.status = text;
      var s = byId('collab-status');
      if (s && s.textContent !== text) s.textContent = text;
    }

    _showNotification(n) {
      if (!n || typeof n !== 'object') return;
      var box = byId('collab-notifications');
      if (!box) return;
      var text = n.message || n.kind || 'Notification';
      var tag = box.tagName === 'UL' || box.tagName === 'OL' ? 'li' : 'p';
      var item = el(tag, 'collab-notification');
      if (n.kind) item.setAttribute('data-kind', String(n.kind));
      var now = new Date();
      var dates = pageDates();
      var time;
      if (dates) {
        time = dates.time(now);
        time.className = 'muted';
      } else {
        time = el('time', 'muted', localTime(now));
        time.dateTime = now.toISOString();
      }
      item.appendChild(time);
      item.appendChild(document.createTextNode(' ' + String(text)));
      box.appendChild(item);
      while (box.children.length > MAX_NOTIFICATIONS) box.removeChild(box.firstElementChild);
    }

    showError(text) {
      var msg = String(text || 'Something went wrong');
      var now = Date.now();
      // The same failure repeated (e.g. a rate limit while moving) is announced once.
      if (msg === this._lastError.text && now - this._lastError.at < ERROR_SHOW_MS) return;
      this._lastError = { text: msg, at: now };
      var box = byId('collab-errors');
      if (!box) {
        if (typeof console !== 'undefined') console.warn('collaboration:', msg);
        return;
      }
      box.textContent = msg;
      clearTimeout(this._errorTimer);
      this._errorTimer = setTimeout(() => {
        box.textContent = '';
        this._lastError = { text: '', at: 0 };
      }, ERROR_SHOW_MS);
    }

    _onServerError(d) {
      var code = d.code ? String(d.code) : '';
      if (code === 'feature_disabled') {
        // The refusal answers what was just sent: stop sending more of it.
        if (this._lastSentType === 'cursor_position') {
          this.features = Object.assign({}, this.features, { cursor_tracking: false });
          this._cancelCursor();
        } else if (this._lastSentType === 'signal') {
          this._stopLocal('voice');
          this._stopLocal('screen');
        }
      }
      // Cursor moves cannot be invalid or too large; a rate limit may be about them, though.
      if (this._pending && (code === 'invalid' || code === 'too_large' || (code === 'rate_limited' && this._lastSentType === 'comment'))) {
        this._failPending();
      }
      this.showError(d.error || (code ? 'Error: ' + code : 'The server refused the last action.'));
    }

    _onEnded(reason) {
      this.ended = true;
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      this._stopHeartbeat();
      this._cancelCursor();
      this._cursorLayer.clear();
      this._stopLocal('voice');
      this._stopLocal('screen');
      this.peers.forEach((p) => p.close());
      this.peers.clear();
      var text = ENDED_TEXT[reason] || ENDED_TEXT.ended;
      this._setStatus(text);
      this._showBanner(text);
      var form = this._form();
      if (form) Array.prototype.forEach.call(form.elements, (f) => { f.disabled = true; });
      Object.keys(CALLS).forEach((kind) => {
        var b = byId(CALLS[kind].button);
        if (b) b.disabled = true;
      });
      this._outbox = [];
    }

    _showBanner(text) {
      var banner = byId('collab-banner');
      if (!banner) {
        var container = this._container();
        if (!container) return;
        banner = el('div', 'collab-banner');
        banner.id = 'collab-banner';
        if (container === document.body || !container.parentNode) container.insertBefore(banner, container.firstChild);
        else container.parentNode.insertBefore(banner, container);
      }
      banner.setAttribute('role', 'status');
      banner.textContent = text;
      banner.hidden = false;
    }

    /* -------------------------------- cursors -------------------------------- */

    _fractionAt(clientX, clientY) {
      var c = this._container();
      if (!c || typeof c.getBoundingClientRect !== 'function') return null;
      var r = c.getBoundingClientRect();
      if (!(r.width > 0 && r.height > 0)) return null;
      var x = clamp01((clientX - r.left) / r.width);
      var y = clamp01((clientY - r.top) / r.height);
      if (x === null || y === null) return null;
      // Four decimals is a tenth of a pixel on a 1000 px stage; more only costs bytes.
      return { x: Math.round(x * 10000) / 10000, y: Math.round(y * 10000) / 10000 };
    }

    _onPointerMove(e) {
      if (!this.connected || !this.features || this.features.cursor_tracking !== true) return;
      var p = this._fractionAt(e.clientX, e.clientY);
      if (!p) return;
      // Throttle with a trailing send: the newest position always goes out, at most cursorHz
      // times per second, so the others see where the pointer stopped, not where it was.
      this._cursorPending = p;
      var wait = this._cursorLast + 1000 / this.cursorHz - Date.now();
      if (wait <= 0) this._flushCursor();
      else if (!this._cursorTimer) {
        this._cursorTimer = setTimeout(() => {
          this._cursorTimer = null;
          this._flushCursor();
        }, wait);
      }
    }

    _flushCursor() {
      var p = this._cursorPending;
      this._cursorPending = null;
      if (!p || !this.features || this.features.cursor_tracking !== true) return;
      var last = this._cursorSent;
      if (last && last.x === p.x && last.y === p.y) return;
      // user_id is not sent: the server takes it from the connection (the seed's is ignored).
      if (this.sendMessage({ type: 'cursor_position', x: p.x, y: p.y })) {
        this._cursorSent = p;
        this._cursorLast = Date.now();
      }
    }

    _cancelCursor() {
      clearTimeout(this._cursorTimer);
      this._cursorTimer = null;
      this._cursorPending = null;
      this._cursorSent = null;
    }

    createCursorElement(userId) {
      return this._cursorLayer.ensure(userId, this._nameOf(userId));
    }

    updateCursor(userId, x, y, name) {
      var cx = clamp01(x);
      var cy = clamp01(y);
      if (cx === null || cy === null || userId === undefined || userId === null) return null;
      var label = name ? String(name) : this._nameOf(userId);
      if (!this.cursors.has(idKey(userId))) this.createCursorElement(userId);
      var c = this._cursorLayer.update(userId, cx, cy, label);
      var key = idKey(userId);
      clearTimeout(this._idleTimers.get(key));
      this._idleTimers.set(key, setTimeout(() => {
        this._idleTimers.delete(key);
        this._cursorLayer.setIdle(key, true);
      }, CURSOR_IDLE_MS));
      return c;
    }

    _dropCursor(userId) {
      var key = idKey(userId);
      clearTimeout(this._idleTimers.get(key));
      this._idleTimers.delete(key);
      this._cursorLayer.remove(key);
    }

    /* -------------------------------- comments -------------------------------- */

    // Media position for a new comment: "HH:MM:SS.mmm" of the video/audio in the container,
    // clamped to the duration the server knows (it refuses a time past the end).
    _mediaTimestamp() {
      var m = this._media();
      if (!m || !Number.isFinite(m.currentTime)) return null;
      var t = m.currentTime;
      var d = this.asset ? Number(this.asset.duration_seconds) : NaN;
      if (Number.isFinite(d) && d > 0 && t > d) t = Math.floor(d * 1000) / 1000;
      return formatMediaTime(t);
    }

    // x, y: client pixel coordinates, as in the seed; null/undefined for a comment without a spot.
    createComment(x, y) {
      if (this.ended || this.closed) return null;
      var pos = x === null || x === undefined || y === null || y === undefined ? null : this._fractionAt(x, y);
      // Read before prompting: the video keeps playing while the dialog is open.
      var timestamp = this._mediaTimestamp() || new Date().toISOString();
      if (!this.commentPrompt || typeof prompt !== 'function') {
        this.pinNextComment(pos, timestamp);
        return null;
      }
      var content;
      try {
        content = prompt('Enter your comment:');
      } catch (e) {
        content = null;
      }
      if (content === null || content === undefined) return null;
      content = String(content).trim();
      if (!content) return null;
      var comment = {
        content: content,
        position_x: pos ? pos.x : null,
        position_y: pos ? pos.y : null,
        timestamp: timestamp
      };
      this._sendComment(comment, false);
      return comment;
    }

    // Prepares the form so its next comment is pinned at `pos` (the keyboard-friendly path and
    // the fallback where prompt() is unavailable).
    pinNextComment(pos, timestamp) {
      var form = this._form();
      if (!form) return;
      this._setField('parent_comment_id', '');
      this._setField('position_x', pos ? pos.x : '');
      this._setField('position_y', pos ? pos.y : '');
      this._setField('timestamp', timestamp && parseMediaTime(timestamp) !== null ? timestamp : '');
      this._setContext(pos ? 'Your comment will be pinned at the spot you clicked.' : '');
      this._focusText();
    }

    startReply(comment) {
      if (!comment || this.ended) return;
      var form = this._form();
      if (!form) return;
      this._setField('parent_comment_id', idKey(comment.id));
      // A reply belongs to its parent's spot and time, not to a new one.
      this._setField('position_x', '');
      this._setField('position_y', '');
      this._setField('timestamp', '');
      this._setContext('Replying to ' + authorName(comment) + ': \u201c' + excerpt(comment.content, 60) + '\u201d');
      this._focusText();
    }

    _setField(name, value) {
      var f = this._field(name);
      if (f) f.value = value === null || value === undefined ? '' : String(value);
    }

    _fieldValue(name) {
      var f = this._field(name);
      return f && typeof f.value === 'string' ? f.value.trim() : '';
    }

    _focusText() {
      var t = this._field('content');
      if (t && typeof t.focus === 'function') t.focus();
    }

    // The line above the textarea saying what the next comment is attached to, with a way out.
    _setContext(text) {
      var form = this._form();
      if (!form) return;
      var box = byId('collab-comment-context');
      if (!box) {
        box = el('p', 'collab-comment-context small');
        box.id = 'collab-comment-context';
        form.insertBefore(box, form.firstChild);
      }
      removeChildren(box);
      box.hidden = !text;
      if (!text) return;
      box.appendChild(document.createTextNode(text + ' '));
      var cancel = el('button', 'link', 'Cancel');
      cancel.type = 'button';
      cancel.addEventListener('click', () => {
        this._clearFormContext();
        this._focusText();
      });
      box.appendChild(cancel);
    }

    _clearFormContext() {
      ['parent_comment_id', 'position_x', 'position_y', 'timestamp'].forEach((n) => this._setField(n, ''));
      this._setContext('');
    }

    _submitForm() {
      if (this.ended || this.closed) return;
      var content = this._fieldValue('content');
      if (!content) {
        this._focusText();
        return;
      }
      var num = (name) => {
        var v = this._fieldValue(name);
        var n = v === '' ? NaN : Number(v);
        return Number.isFinite(n) ? n : null;
      };
      var parent = num('parent_comment_id');
      var x = clamp01(num('position_x'));
      var y = clamp01(num('position_y'));
      var timestamp = this._fieldValue('timestamp') || null;
      // A top-level comment written while the media is past its start is about that moment.
      if (timestamp === null && parent === null) {
        var m = this._media();
        if (m && m.currentTime > 0) timestamp = this._mediaTimestamp();
      }
      this._sendComment({
        content: content,
        position_x: x !== null && y !== null ? x : null,
        position_y: x !== null && y !== null ? y : null,
        timestamp: timestamp,
        parent_comment_id: parent
      }, true);
    }

    // Comments are never dropped silently: while disconnected they wait in an outbox that is
    // flushed after the next session_state. The form keeps its text until the server's echo
    // (broadcast to the sender too) proves the comment was stored.
    _sendComment(comment, fromForm) {
      var msg = { type: 'comment', comment: comment };
      this._pending = { content: comment.content, fromForm: fromForm };
      if (!this.connected || !this.sendMessage(msg)) {
        this._outbox.push(msg);
        this.showError('Not connected: your comment will be posted when the connection is back.');
      }
      if (fromForm) this._setFormBusy(true);
      clearTimeout(this._pendingTimer);
      this._pendingTimer = setTimeout(() => this._setFormBusy(false), PENDING_TIMEOUT_MS);
    }

    _flushOutbox() {
      while (this._outbox.length && this.sendMessage(this._outbox[0])) this._outbox.shift();
    }

    _settlePending(comment) {
      var p = this._pending;
      if (!p || !comment.author || !sameId(comment.author.id, this.userId)) return;
      if (String(comment.content || '').trim() !== p.content) return;
      this._pending = null;
      clearTimeout(this._pendingTimer);
      this._setFormBusy(false);
      if (p.fromForm && this._fieldValue('content') === p.content) {
        this._setField('content', '');
        this._clearFormContext();
      }
    }

    // The server refused the comment: unlock the form and make sure the text is not lost (a
    // comment typed into prompt() had nowhere else to live).
    _failPending() {
      var p = this._pending;
      this._pending = null;
      clearTimeout(this._pendingTimer);
      this._setFormBusy(false);
      if (p && !p.fromForm && !this._fieldValue('content')) this._setField('content', p.content);
    }

    _setFormBusy(busy) {
      var form = this._form();
      if (!form) return;
      var button = form.querySelector('button[type="submit"], button:not([type])');
      if (button && !this.ended) button.disabled = !!busy;
      form.setAttribute('aria-busy', busy ? 'true' : 'false');
    }

    displayComment(comment) {
      return this.board.upsert(comment, { flash: this.connected });
    }

    removeComment(commentId) {
      return this.board.remove(commentId);
    }

    /* -------------------------------- voice and screen -------------------------------- */

    _rtcSupported() {
      return typeof RTCPeerConnection === 'function' && typeof navigator !== 'undefined' && !!navigator.mediaDevices;
    }

    _syncCallButtons() {
      Object.keys(CALLS).forEach((kind) => {
        var spec = CALLS[kind];
        var on = !!(this.features && this.features[spec.feature]);
        if (!on) this._stopLocal(kind);
        var b = byId(spec.button);
        if (!b) return;
        b.hidden = !on;
        var api = kind === 'voice' ? 'getUserMedia' : 'getDisplayMedia';
        var ok = this._rtcSupported() && typeof navigator.mediaDevices[api] === 'function';
        b.disabled = !ok || this.ended;
        b.title = ok ? '' : 'Not available in this browser (or on a page not served over https)';
        this._updateCallButton(kind);
      });
    }

    _updateCallButton(kind) {
      var b = byId(CALLS[kind].button);
      if (!b) return;
      var active = !!this.local[kind];
      b.textContent = active ? CALLS[kind].stop : CALLS[kind].start;
      b.classList.toggle('is-active', active);
    }

    toggleCall(kind) {
      if (!CALLS[kind]) return Promise.resolve(false);
      if (this.local[kind]) {
        this._stopLocal(kind);
        return Promise.resolve(false);
      }
      return this.startCall(kind);
    }

    startCall(kind) {
      var spec = CALLS[kind];
      if (!spec || this.local[kind] || this.ended || this.closed) return Promise.resolve(false);
      if (!(this.features && this.features[spec.feature])) {
        this.showError('This session does not allow ' + (kind === 'voice' ? 'voice chat.' : 'screen sharing.'));
        return Promise.resolve(false);
      }
      if (!this._rtcSupported()) {
        this.showError('Voice and screen sharing need a recent browser and an https page.');
        return Promise.resolve(false);
      }
      var md = navigator.mediaDevices;
      var button = byId(spec.button);
      if (button) button.disabled = true; // the permission prompt is open
      var ask = kind === 'voice' ? md.getUserMedia({ audio: true }) : md.getDisplayMedia({ video: true });
      return Promise.resolve(ask)
        .then((stream) => {
          if (this.ended || this.closed || this.local[kind] || !(this.features && this.features[spec.feature])) {
            stream.getTracks().forEach((t) => t.stop());
            return false;
          }
          this.local[kind] = stream;
          // Ends when the browser's own "Stop sharing" is used or the microphone goes away.
          stream.getTracks().forEach((t) => {
            t.addEventListener('ended', () => {
              if (this.local[kind] === stream && stream.getTracks().every((x) => x.readyState === 'ended')) this._stopLocal(kind);
            });
          });
          this._syncPeers();
          return true;
        }, (err) => {
          var denied = err && (err.name === 'NotAllowedError' || err.name === 'SecurityError');
          this.showError(denied
            ? (kind === 'voice' ? 'Microphone access was not allowed.' : 'Screen sharing was not allowed.')
            : 'Could not start ' + (kind === 'voice' ? 'voice chat' : 'screen sharing') + (err && err.message ? ': ' + err.message : '.'));
          return false;
        })
        .then((started) => {
          if (button) button.disabled = this.ended;
          this._updateCallButton(kind);
          return started;
        });
    }

    _stopLocal(kind) {
      var stream = this.local[kind];
      if (!stream) return;
      this.local[kind] = null;
      this.peers.forEach((p) => p.detachKind(kind)); // renegotiates: the others' view goes away
      stream.getTracks().forEach((t) => t.stop());
      this._updateCallButton(kind);
    }

    _hasLocalMedia() {
      return !!(this.local.voice || this.local.screen);
    }

    // While we send something, everyone online gets a connection carrying it. Without local media
    // no connection is opened: an incoming offer creates one (we receive only).
    _syncPeers() {
      if (!this._hasLocalMedia() || !this._rtcSupported() || this.userId === null || !this.connected) return;
      this.online.forEach((u) => {
        if (!sameId(u.user_id, this.userId)) this._peer(u.user_id).attach(this.local);
      });
    }

    _peer(userId) {
      var key = idKey(userId);
      var p = this.peers.get(key);
      if (!p || p.closed) {
        p = new PeerLink(this, userId);
        this.peers.set(key, p);
      }
      return p;
    }

    _closePeer(userId) {
      var key = idKey(userId);
      var p = this.peers.get(key);
      if (p) p.close();
      this.peers.delete(key);
    }

    _onSignal(from, data) {
      if (from === undefined || from === null || sameId(from, this.userId)) return;
      if (!data || typeof data !== 'object' || !this._rtcSupported() || this.ended) return;
      var key = idKey(from);
      var peer = this.peers.get(key);
      if (!peer) {
        if (data.kind !== 'offer') return; // candidates/answers of a connection we do not have
        peer = this._peer(from);
      }
      var handle = (p, retry) => p.receive(data).then(() => p.attach(this.local), (err) => {
        // An offer that cannot apply to the existing connection comes from a new one on their
        // side (page reloaded): start over with a fresh connection, once.
        if (retry && data.kind === 'offer' && !p.closed) {
          this._closePeer(from);
          return handle(this._peer(from), false);
        }
        this._rtcError(err);
        return null;
      });
      handle(peer, true);
    }

    _rtcError(err) {
      if (typeof console !== 'undefined') console.warn('collaboration: WebRTC', err);
    }

    _remoteBox() {
      return byId('collab-remote-media') || this._container();
    }

    _onRemoteTrack(peer, track, stream) {
      if (peer.closed || !track) return;
      var box = this._remoteBox();
      if (!box) return;
      var s = stream || new MediaStream([track]);
      var name = this._nameOf(peer.userId);
      var media;
      if (track.kind === 'audio') {
        if (!peer.remote.audio) {
          var a = el('audio', 'collab-remote-audio');
          a.autoplay = true;
          a.hidden = true;
          a.setAttribute('data-user-id', idKey(peer.userId));
          box.appendChild(a);
          peer.remote.audio = a;
        }
        media = peer.remote.audio;
      } else {
        if (!peer.remote.video) {
          var fig = el('figure', 'collab-remote-screen');
          fig.setAttribute('data-user-id', idKey(peer.userId));
          var v = el('video');
          v.autoplay = true;
          v.muted = true; // no sound on a screen track; muted lets it start without a gesture
          v.playsInline = true;
          v.setAttribute('playsinline', '');
          fig.appendChild(v);
          fig.appendChild(el('figcaption', null, name + '\u2019s screen'));
          box.appendChild(fig);
          peer.remote.video = fig;
        }
        media = peer.remote.video.querySelector('video');
      }
      if (media.srcObject !== s) media.srcObject = s;
      this._play(peer, media, name);
      // The other side stopped sending (removeTrack + renegotiation) or hung up.
      var check = () => this._dropRemoteIfIdle(peer);
      track.addEventListener('ended', check);
      s.addEventListener('removetrack', check);
    }

    // Browsers may refuse to start audio before the user interacted with the page; then a button
    // does it, since the click is the interaction they want.
    _play(peer, media, name) {
      var p;
      try {
        p = media.play();
      } catch (e) {
        p = null;
      }
      if (!p || typeof p.catch !== 'function' || media.tagName !== 'AUDIO') return;
      p.catch(() => {
        if (peer.closed || peer.remote.unmute) return;
        var b = el('button', 'collab-unmute', 'Play audio from ' + name);
        b.type = 'button';
        b.addEventListener('click', () => {
          media.play().catch(function () {});
          detach(b);
          peer.remote.unmute = null;
        });
        peer.remote.unmute = b;
        this._remoteBox().appendChild(b);
      });
    }

    _dropRemoteIfIdle(peer) {
      var live = (m, kind) => {
        var s = m && m.srcObject;
        if (!s || typeof s.getTracks !== 'function') return false;
        return s.getTracks().some((t) => t.kind === kind && t.readyState !== 'ended');
      };
      if (peer.remote.audio && !live(peer.remote.audio, 'audio')) {
        detach(peer.remote.audio);
        detach(peer.remote.unmute);
        peer.remote.audio = null;
        peer.remote.unmute = null;
      }
      if (peer.remote.video && !live(peer.remote.video.querySelector('video'), 'video')) {
        detach(peer.remote.video);
        peer.remote.video = null;
      }
    }

    /* -------------------------------- teardown -------------------------------- */

    // Final: leaves the session, hangs up, stops every timer and listener. The drawing stays.
    close() {
      if (this.closed) return;
      this.closed = true;
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      clearTimeout(this._errorTimer);
      clearTimeout(this._pendingTimer);
      this._cancelCursor();
      this._idleTimers.forEach((t) => clearTimeout(t));
      this._idleTimers.clear();
      this._stopLocal('voice');
      this._stopLocal('screen');
      this.peers.forEach((p) => p.close());
      this.peers.clear();
      this._dropSocket(1000, 'bye');
      this._outbox = [];
      this._listeners.forEach((l) => l[0].removeEventListener(l[1], l[2], l[3]));
      this._listeners = [];
      if (!this.ended) this._setStatus('Disconnected');
    }
  }

  /* ----------------------------------------------------------------------------------------- */
  /* Replay                                                                                     */
  /* ----------------------------------------------------------------------------------------- */

  /*
   * new CollaborationReplay(recordingUrl, options) plays back
   * GET /api/v3/collaboration/sessions/{id}/recording/ = {session_id, events:[{seq, type, at, data}]}
   * into #replay-stage (overlay), #replay-comments, #replay-log with the controls #replay-play,
   * #replay-position (range, ms), #replay-speed (select), #replay-elapsed, #replay-status and
   * #replay-controls (unhidden once the recording loaded).
   * Options: token (Bearer; default: session cookie), container, autoInit (default true).
   * Methods: init(), load(), setRecording(rec), play(), pause(), toggle(), seek(ms), setSpeed(n),
   * destroy().
   */
  class CollaborationReplay {
    constructor(recordingUrl, options) {
      var o = options || {};
      this.recordingUrl = String(recordingUrl || '');
      this.options = o;
      this.token = o.token || null;
      this.container = resolveElement(o.container, 'replay-stage');
      this.events = [];
      this.startedAt = 0;   // epoch ms of the first event
      this.duration = 0;    // ms from the first to the last event
      this.position = 0;    // ms into the recording
      this.speed = 1;
      this.playing = false;
      this._next = 0;       // index of the first event not applied yet
      this._raf = null;
      this._lastFrame = 0;
      this._cursorSeen = new Map(); // idKey(user) -> position (ms) of their last cursor sample
      this._names = new Map();
      this._listeners = [];
      this._cursorLayer = new CursorLayer(() => ensureOverlay(this.container));
      this.cursors = this._cursorLayer.map;
      this.board = new CommentBoard({
        list: () => byId('replay-comments'),
        overlay: () => ensureOverlay(this.container),
        timeline: () => null,
        media: () => (this.container && this.container.querySelector ? this.container.querySelector('video, audio') : null),
        duration: () => null,
        idPrefix: 'replay-comment-'
      });
      this.ready = o.autoInit === false ? Promise.resolve(null) : this.init();
    }

    // Never rejects (it starts from the constructor, where nobody could catch it).
    init() {
      this._status('Loading the recording\u2026');
      return Promise.resolve()
        .then(() => this.load())
        .then((rec) => {
          this.setRecording(rec);
          this._bindControls();
          var controls = byId('replay-controls');
          if (controls) controls.hidden = false;
          this._status(this.events.length ? '' : 'Nothing was recorded in this session.');
          return rec;
        })
        .catch((err) => {
          this._status('Could not load the recording' + (err && err.message ? ': ' + err.message : '.'));
          return null;
        });
    }

    load() {
      if (typeof fetch !== 'function') return Promise.reject(new Error('this browser is too old'));
      var init = { method: 'GET', headers: { Accept: 'application/json' } };
      if (this.token) {
        init.headers.Authorization = 'Bearer ' + this.token;
        init.credentials = 'omit';
      } else {
        init.credentials = 'same-origin';
      }
      return fetch(this.recordingUrl, init).then((response) => response.json().catch(() => null).then((body) => {
        if (!response.ok) {
          var err = new Error((body && body.error) || 'HTTP ' + response.status);
          err.status = response.status;
          throw err;
        }
        if (!body || typeof body !== 'object') throw new Error('the answer was not JSON');
        return body;
      }));
    }

    setRecording(rec) {
      var raw = rec && Array.isArray(rec.events) ? rec.events : [];
      var prev = null;
      var out = [];
      raw.forEach((e) => {
        if (!e || typeof e !== 'object' || typeof e.type !== 'string') return;
        var t = Date.parse(e.at);
        if (!Number.isFinite(t)) t = prev === null ? 0 : prev;
        // The recording is in order; equal or skewed clocks must not make time run backwards.
        if (prev !== null && t < prev) t = prev;
        prev = t;
        out.push({ seq: e.seq, type: e.type, at: e.at, data: e.data && typeof e.data === 'object' ? e.data : {}, t: t });
      });
      this.startedAt = out.length ? out[0].t : 0;
      out.forEach((e) => { e.t -= this.startedAt; });
      this.events = out;
      this.duration = out.length ? out[out.length - 1].t : 0;
      var range = byId('replay-position');
      if (range) {
        range.min = '0';
        range.max = String(this.duration);
        range.step = 'any';
        range.disabled = out.length === 0;
      }
      var play = byId('replay-play');
      if (play) play.disabled = out.length === 0;
      this.pause();
      this._reset();
      this._advance(0);
    }

    _bindControls() {
      if (this._bound) return;
      this._bound = true;
      var on = (target, type, fn) => {
        if (!target) return;
        target.addEventListener(type, fn);
        this._listeners.push([target, type, fn]);
      };
      on(byId('replay-play'), 'click', () => this.toggle());
      on(byId('replay-position'), 'input', (e) => this.seek(Number(e.target.value)));
      on(byId('replay-speed'), 'change', (e) => this.setSpeed(Number(e.target.value)));
      var media = this.board.opts.media();
      on(media, 'loadedmetadata', () => this.board.refreshTimeline());
    }

    play() {
      if (!this.events.length || this.playing) return;
      if (this.position >= this.duration) this.seek(0); // Play at the end starts over
      this.playing = true;
      this._lastFrame = 0;
      this._raf = requestAnimationFrame((now) => this._frame(now));
      this._renderControls();
    }

    pause() {
      this.playing = false;
      if (this._raf !== null) cancelAnimationFrame(this._raf);
      this._raf = null;
      this._renderControls();
    }

    toggle() {
      if (this.playing) this.pause();
      else this.play();
    }

    setSpeed(n) {
      this.speed = [1, 2, 4, 8].indexOf(n) >= 0 ? n : 1;
      var sel = byId('replay-speed');
      if (sel && Number(sel.value) !== this.speed) sel.value = String(this.speed);
    }

    // Forward seeks apply what lies between; backward ones rebuild from the start, since events
    // (a deletion, someone leaving) cannot be undone one by one.
    seek(ms) {
      var target = Math.max(0, Math.min(this.duration, Number(ms) || 0));
      if (target < this.position) this._reset();
      this._advance(target);
    }

    _frame(now) {
      this._raf = null;
      if (!this.playing) return;
      var dt = this._lastFrame ? Math.min(now - this._lastFrame, 250) : 0; // a background tab's gap is not played at once
      this._lastFrame = now;
      var target = Math.min(this.duration, this.position + dt * this.speed);
      this._advance(target);
      if (target >= this.duration) {
        this.pause();
        return;
      }
      this._raf = requestAnimationFrame((n) => this._frame(n));
    }

    _reset() {
      this.board.clear();
      this._cursorLayer.clear();
      this._cursorSeen.clear();
      removeChildren(byId('replay-log'));
      this._next = 0;
      this.position = 0;
    }

    _advance(target) {
      var live = this.playing;
      // Only the last cursor sample per person inside this step is drawn: a rebuild may cross
      // thousands of them.
      var moves = new Map();
      while (this._next < this.events.length && this.events[this._next].t <= target) {
        var ev = this.events[this._next++];
        var d = ev.data;
        if (ev.type === 'cursor_position') {
          if (d.user_id === undefined || d.user_id === null) continue;
          if (d.name) this._names.set(idKey(d.user_id), String(d.name));
          moves.set(idKey(d.user_id), { d: d, t: ev.t });
          continue;
        }
        if (ev.type === 'participant_left' && d.user) moves.delete(idKey(d.user.user_id));
        this._apply(ev, live);
      }
      moves.forEach((m, key) => {
        var x = clamp01(m.d.x);
        var y = clamp01(m.d.y);
        if (x === null || y === null) return;
        this._cursorLayer.update(key, x, y, this._names.get(key) || 'Participant ' + key);
        this._cursorSeen.set(key, m.t);
      });
      this.position = target;
      this._cursorSeen.forEach((t, key) => this._cursorLayer.setIdle(key, target - t > CURSOR_IDLE_MS));
      this._renderControls();
    }

    _apply(ev, live) {
      var d = ev.data;
      switch (ev.type) {
        case 'comment':
        case 'comment_updated':
          if (d.comment) this.board.upsert(d.comment, { flash: live });
          break;
        case 'comment_deleted':
          this.board.remove(d.comment_id);
          break;
        case 'participant_joined':
          if (d.user) {
            this._names.set(idKey(d.user.user_id), String(d.user.name || ''));
            this._log(ev, this._who(d.user) + ' joined');
          }
          break;
        case 'participant_left':
          if (d.user) {
            this._cursorLayer.remove(d.user.user_id);
            this._cursorSeen.delete(idKey(d.user.user_id));
            this._log(ev, this._who(d.user) + ' left');
          }
          break;
        case 'notification':
          if (d.notification) this._log(ev, String(d.notification.message || d.notification.kind || 'Notification'));
          break;
        case 'session_ended':
          this._log(ev, ENDED_TEXT[d.reason] || ENDED_TEXT.ended);
          break;
        case 'session_state':
          // A recording may start with a snapshot; it seeds the thread like a first connection.
          (Array.isArray(d.comments) ? d.comments : []).forEach((c) => this.board.upsert(c));
          break;
        default:
          break;
      }
    }

    _who(user) {
      return user && user.name ? String(user.name) : 'Participant ' + idKey(user && user.user_id);
    }

    _log(ev, text) {
      var log = byId('replay-log');
      if (!log) return;
      var li = el('li', 'replay-event replay-' + ev.type.replace(/[^a-z_]/gi, ''));
      var time = el('time', 'muted', formatClock(ev.t));
      if (ev.at) time.dateTime = String(ev.at);
      li.appendChild(time);
      li.appendChild(document.createTextNode(' ' + text));
      log.appendChild(li);
      if (this.playing) log.scrollTop = log.scrollHeight;
    }

    _renderControls() {
      var range = byId('replay-position');
      var text = formatClock(this.position) + ' / ' + formatClock(this.duration);
      if (range) {
        range.value = String(this.position);
        range.setAttribute('aria-valuetext', text);
      }
      var elapsed = byId('replay-elapsed');
      if (elapsed) {
        elapsed.textContent = text;
        if (this.events.length) {
          var at = this.startedAt + this.position;
          var dates = pageDates();
          elapsed.title = 'Recorded at ' + (dates ? dates.words(at) : new Date(at).toLocaleString());
        }
      }
      var play = byId('replay-play');
      if (play) play.textContent = this.playing ? 'Pause' : 'Play';
    }

    _status(text) {
      var s = byId('replay-status');
      if (s) s.textContent = text;
    }

    destroy() {
      this.pause();
      this._listeners.forEach((l) => l[0].removeEventListener(l[1], l[2]));
      this._listeners = [];
    }
  }

  CollaborationClient.Replay = CollaborationReplay;
  CollaborationClient.CommentBoard = CommentBoard;
  CollaborationClient.parseMediaTime = parseMediaTime;
  CollaborationClient.formatMediaTime = formatMediaTime;

  global.CollaborationClient = CollaborationClient;
  global.CollaborationReplay = CollaborationReplay;
  if (typeof module !== 'undefined' && module.exports) module.exports = CollaborationClient;
})(typeof window !== 'undefined' ? window : globalThis);
