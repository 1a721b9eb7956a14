// Vitrine's uploads from the pages: files over 8 MiB go through tus (SPEC §12) with
// tus-js-client (vendored: /static/js/vendor/tus.min.js, MIT licence beside it), in 8 MiB PATCHes
// with progress and automatic resume after a network failure; smaller files are one multipart POST.
//
//   VitrineUpload.send(file, {
//     tusEndpoint: "/api/v3/uploads/",     // where tus uploads are created
//     formEndpoint: "/api/v3/assets/",     // where a small file is POSTed as multipart `file`
//     headers: {Authorization: "Bearer …"},
//     metadata: {title: "…"},              // tus metadata (filename is added), form fields for a POST
//     onProgress: (sent, total) => {},
//   }) → Promise<{status, location, asset, body}>
(function () {
  "use strict";
  var RESUMABLE_FROM = 8 * 1024 * 1024;
  var CHUNK = 8 * 1024 * 1024;

  function viaTus(file, opts) {
    return new Promise(function (resolve, reject) {
      var metadata = Object.assign({ filename: file.name }, opts.metadata || {});
      if (file.type && !metadata.content_type) metadata.content_type = file.type;
      var last = null;
      var upload = new window.tus.Upload(file, {
        endpoint: opts.tusEndpoint,
        chunkSize: CHUNK,
        retryDelays: [0, 1000, 2000, 4000, 8000, 15000, 30000],
        headers: opts.headers || {},
        metadata: metadata,
        removeFingerprintOnSuccess: true,
        onProgress: function (sent, total) {
          if (opts.onProgress) opts.onProgress(sent, total);
        },
        onAfterResponse: function (req, res) {
          last = res;
        },
        onShouldRetry: function (err, attempt, options) {
          var status = err.originalResponse ? err.originalResponse.getStatus() : 0;
          // A refusal (4xx other than a conflict or too many requests) will not change on retry.
          if (status >= 400 && status < 500 && status !== 409 && status !== 423 && status !== 429) return false;
          return true;
        },
        onError: function (err) {
          var res = err.originalResponse;
          var body = null;
          if (res) {
            try { body = JSON.parse(res.getBody()); } catch (e) { body = null; }
          }
          reject({ status: res ? res.getStatus() : 0, body: body, error: err });
        },
        onSuccess: function () {
          resolve({
            status: last ? last.getStatus() : 204,
            location: upload.url,
            asset: last ? last.getHeader("Vitrine-Asset") : null,
            body: null,
          });
        },
      });
      upload.findPreviousUploads().then(function (previous) {
        if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
        upload.start();
      });
    });
  }

  function viaForm(file, opts) {
    return new Promise(function (resolve, reject) {
      var form = new FormData();
      var fields = opts.metadata || {};
      Object.keys(fields).forEach(function (k) { form.append(k, fields[k]); });
      form.append("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", opts.formEndpoint);
      var headers = opts.headers || {};
      Object.keys(headers).forEach(function (k) { xhr.setRequestHeader(k, headers[k]); });
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (e) {
        if (opts.onProgress && e.lengthComputable) opts.onProgress(e.loaded, e.total);
      };
      xhr.onload = function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status >= 200 && xhr.status < 300) resolve({ status: xhr.status, location: null, asset: null, body: body });
        else reject({ status: xhr.status, body: body });
      };
      xhr.onerror = function () { reject({ status: 0, body: null }); };
      xhr.send(form);
    });
  }

  window.VitrineUpload = {
    RESUMABLE_FROM: RESUMABLE_FROM,
    send: function (file, opts) {
      if (opts.tusEndpoint && file.size > RESUMABLE_FROM && window.tus && window.tus.isSupported) {
        return viaTus(file, opts);
      }
      return viaForm(file, opts);
    },
  };
})();
