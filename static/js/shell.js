// The page shell's dates: every <time datetime> printed by the server (pages::shell::Shell::time)
// shows the date in the reader's own time zone and a relative label ("3 minutes ago") that stays
// current. Without this file the page shows the UTC date and the label of when it was made.
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

  function refresh(now) {
    now = typeof now === 'number' ? now : Date.now();
    var times = document.querySelectorAll('time[datetime]');
    for (var i = 0; i < times.length; i++) {
      var t = times[i];
      var rel = t.querySelector('.rel');
      if (!rel) continue;
      var ms = Date.parse(t.getAttribute('datetime'));
      if (isNaN(ms)) continue;
      if (local && !t.hasAttribute('data-local')) {
        t.setAttribute('data-local', '');
        t.firstChild.nodeValue = local.format(new Date(ms)) + ' ';
      }
      rel.textContent = '(' + relative(ms, now) + ')';
    }
  }

  window.vitrineDates = { refresh: refresh, relative: relative };
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', function () { refresh(); });
  } else {
    refresh();
  }
  setInterval(refresh, 30000);
})();
