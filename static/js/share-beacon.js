// The share page's optional enhancement (the URL comes from this script tag's data-beacon-url): reports time on page and load time once, and, each time the page is hidden, the document viewer's time per page (window.vitrineReadings, filled by pdf-viewer.js); nothing on this page needs it.
(function () {
  'use strict';
  var beaconUrl = document.currentScript.getAttribute('data-beacon-url');
  var start = Date.now();
  var sent = false;
  var LIMIT = 3800; // the endpoint takes 4096 bytes
  function documents() {
    var out = [];
    var readings = window.vitrineReadings || [];
    for (var i = 0; i < readings.length; i++) {
      for (var n = 0; n < 100; n++) {
        var r = readings[i].take();
        if (r) out.push(r);
        if (!r || !readings[i].hasMore()) break;
      }
    }
    return out;
  }
  function report() {
    if (!navigator.sendBeacon) return;
    var body = {};
    if (!sent) {
      sent = true;
      var nav = performance.getEntriesByType && performance.getEntriesByType('navigation')[0];
      body.time_on_page_ms = Date.now() - start;
      body.load_ms = nav && nav.loadEventEnd > 0 ? Math.round(nav.loadEventEnd - nav.startTime) : null;
    }
    var docs = documents();
    var batch = [];
    function flush(force) {
      if (!force && !batch.length) return;
      if (batch.length) body.documents = batch;
      navigator.sendBeacon(beaconUrl, JSON.stringify(body));
      body = {};
      batch = [];
    }
    var any = body.time_on_page_ms !== undefined;
    for (var i = 0; i < docs.length; i++) {
      batch.push(docs[i]);
      body.documents = batch;
      if (batch.length > 10 || JSON.stringify(body).length > LIMIT) {
        batch.pop();
        flush(false);
        batch.push(docs[i]);
      }
      any = true;
    }
    if (any) flush(true);
  }
  document.addEventListener('visibilitychange', function () { if (document.visibilityState === 'hidden') report(); });
  window.addEventListener('pagehide', report);
})();
