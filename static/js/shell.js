// The page shell's dates: every <time datetime> printed by the server (pages::shell::Shell::time)
// shows the date in the reader's own time zone and a relative label ("3 minutes ago") that stays
// current. Without this file the page shows the UTC date and the label of when it was made.
// Page scripts print their dates with vitrineDates.time(...) (the SDK classes too, when this file
// is on the page): the same element, the same words, kept current the same way.
(function () {
  'use strict';
  var UNITS = [
    [45 * 60, 60, 'minute'],
    [22 * 3600, 3600, 'hour'],
    [26 * 86400, 86400, 'day'],
    [320 * 86400, 30 * 86400, 'month'],
    [Infinity, 365 * 86400, 'year']
  ];

  // The same words as domain::time::relative on the server.
  function relative(ms, now) {
    var diff = Math.trunc((ms - now) / 1000);
    var secs = Math.abs(diff);
    if (secs < 45) return 'just now';
    for (var i = 0; i < UNITS.length; i++) {
      if (secs < UNITS[i][0]) {
        var n = Math.max(1, Math.floor((secs + UNITS[i][1] / 2) / UNITS[i][1]));
        var words = n + ' ' + UNITS[i][2] + (n === 1 ? '' : 's');
        return diff < 0 ? words + ' ago' : 'in ' + words;
      }
    }
    return '';
  }

  var local = null;
  try {
    local = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  } catch (e) { local = null; }

  var MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  function two(n) {
    return (n < 10 ? '0' : '') + n;
  }

  // The same words as domain::time::human_date on the server: "4 Dec 2026, 13:09 UTC".
  function words(ms) {
    var d = new Date(ms);
    return d.getUTCDate() + ' ' + MONTHS[d.getUTCMonth()] + ' ' + d.getUTCFullYear() + ', ' +
      two(d.getUTCHours()) + ':' + two(d.getUTCMinutes()) + ' UTC';
  }

  // A calendar day ("2026-12-04", the analytics' UTC days) in the same words: "4 Dec".
  function day(iso) {
    var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(iso || ''));
    if (!m || +m[2] < 1 || +m[2] > 12) return String(iso || '');
    return (+m[3]) + ' ' + MONTHS[+m[2] - 1];
  }

  // RFC 3339 to the second, as domain::time::rfc3339 prints it: "2026-12-04T13:09:23Z".
  function rfc3339(ms) {
    var d = new Date(Math.floor(ms / 1000) * 1000);
    return d.getUTCFullYear() + '-' + two(d.getUTCMonth() + 1) + '-' + two(d.getUTCDate()) + 'T' +
      two(d.getUTCHours()) + ':' + two(d.getUTCMinutes()) + ':' + two(d.getUTCSeconds()) + 'Z';
  }

  // Milliseconds of an RFC 3339 text, a Date or a number of milliseconds; NaN otherwise.
  function msOf(value) {
    if (typeof value === 'number') return value;
    if (value instanceof Date) return value.getTime();
    if (typeof value === 'string' && value.trim()) return Date.parse(value);
    return NaN;
  }

  // One <time> brought up to date: its relative label from `now`, its words in the reader's time
  // zone (once).
  function update(t, now) {
    var rel = t.querySelector('.rel');
    if (!rel) return;
    var ms = Date.parse(t.getAttribute('datetime'));
    if (isNaN(ms)) return;
    if (local && !t.hasAttribute('data-local')) {
      t.setAttribute('data-local', '');
      t.firstChild.nodeValue = local.format(new Date(ms)) + ' ';
    }
    rel.textContent = '(' + relative(ms, now) + ')';
  }

  function refresh(now) {
    now = typeof now === 'number' ? now : Date.now();
    var times = document.querySelectorAll('time[datetime]');
    for (var i = 0; i < times.length; i++) update(times[i], now);
  }

  // The one date helper of the pages' scripts: the element the server prints for a date
  // (pages::shell::Shell::time), `<time datetime="RFC 3339" title="4 Dec 2026, 13:09 UTC">4 Dec 2026,
  // 13:09 UTC <span class="rel">(3 minutes ago)</span></time>`, then shown like the server's: in the
  // reader's time zone, its label kept current by refresh(). `value`: RFC 3339 text, Date or ms.
  // `into`: an existing <time> to fill instead of a new one. Anything else than a date is shown as
  // it is (as text), like the server does.
  function time(value, into, now) {
    var t = into || document.createElement('time');
    var ms = msOf(value);
    while (t.firstChild) t.removeChild(t.firstChild);
    t.removeAttribute('data-local');
    if (isNaN(ms)) {
      t.removeAttribute('datetime');
      t.removeAttribute('title');
      t.textContent = value == null ? '' : String(value);
      return t;
    }
    var absolute = words(ms);
    t.setAttribute('datetime', rfc3339(ms));
    t.setAttribute('title', absolute);
    t.appendChild(document.createTextNode(absolute + ' '));
    var rel = document.createElement('span');
    rel.className = 'rel';
    t.appendChild(rel);
    update(t, typeof now === 'number' ? now : Date.now());
    return t;
  }

  window.vitrineDates = { time: time, words: words, day: day, refresh: refresh, relative: relative };
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', function () { refresh(); });
  } else {
    refresh();
  }
  setInterval(refresh, 30000);
})();
