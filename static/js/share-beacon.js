// The share page's optional enhancement (the URL comes from this script tag's data-beacon-url): reports time on page and load time; nothing on this page needs it.
(function () {
  'use strict';
  var beaconUrl = document.currentScript.getAttribute('data-beacon-url');
  var start = Date.now();
  var sent = false;
  function report() {
    if (sent || !navigator.sendBeacon) return;
    sent = true;
    var nav = performance.getEntriesByType && performance.getEntriesByType('navigation')[0];
    var load = nav && nav.loadEventEnd > 0 ? Math.round(nav.loadEventEnd - nav.startTime) : null;
    navigator.sendBeacon(beaconUrl, JSON.stringify({ time_on_page_ms: Date.now() - start, load_ms: load }));
  }
  document.addEventListener('visibilitychange', function () { if (document.visibilityState === 'hidden') report(); });
  window.addEventListener('pagehide', report);
})();
