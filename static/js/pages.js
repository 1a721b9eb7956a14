// Small enhancements for the owner's pages; every page works without this file.
(function () {
  'use strict';
  document.querySelectorAll('[data-copy]').forEach(function (button) {
    button.hidden = false;
    button.addEventListener('click', function () {
      var input = document.getElementById(button.getAttribute('data-copy'));
      if (!input) return;
      var text = input.value;
      var done = function () { button.textContent = 'Copied!'; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { input.select(); document.execCommand('copy'); done(); });
      } else {
        input.select();
        document.execCommand('copy');
        done();
      }
    });
  });
})();
