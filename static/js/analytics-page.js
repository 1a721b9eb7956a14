// The analytics dashboard page: the share and the period come from this script tag's data attributes.
(function () {
  'use strict';
  var me = document.currentScript;
  window.dashboard = new AnalyticsDashboard(me.getAttribute('data-uuid'), {
    days: Number(me.getAttribute('data-days')),
    refreshMs: 30000
  });
})();
