// The collaboration page: joins the session named by #collab-stage's data attributes.
(function () {
  'use strict';
  var stage = document.getElementById('collab-stage');
  window.collab = new CollaborationClient(stage.getAttribute('data-session-id'), Number(stage.getAttribute('data-asset-id')));
})();
