// The uploader's page of a file request (SPEC §11): drag and drop, several files, per-file
// progress. Files over 8 MiB go through tus at /upload/{uuid}/tus/ (resumable.js: resumes after
// a network failure); smaller ones are one multipart POST. Without JavaScript the plain
// multipart form sends one file.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }
  function human(n) {
    if (n >= 1073741824) return (n / 1073741824).toFixed(1) + " GiB";
    if (n >= 1048576) return (n / 1048576).toFixed(1) + " MiB";
    if (n >= 1024) return (n / 1024).toFixed(1) + " KiB";
    return n + " B";
  }
  ready(function () {
    var root = document.getElementById("file-request");
    var form = document.getElementById("upload-form");
    if (!root || !form) return;
    var input = document.getElementById("file-input");
    var zone = document.getElementById("drop-zone");
    var list = document.getElementById("upload-list");
    var action = root.getAttribute("data-action");
    var maxBytes = Number(root.getAttribute("data-max-bytes")) || 0;
    var tusEndpoint = root.getAttribute("data-tus");
    var token = root.getAttribute("data-token");
    input.multiple = true;
    var queue = [];

    function row(file) {
      var li = document.createElement("li");
      li.className = "upload-item";
      var name = document.createElement("span");
      name.textContent = file.name + " (" + human(file.size) + ")";
      var bar = document.createElement("progress");
      bar.max = 100;
      bar.value = 0;
      var state = document.createElement("span");
      state.className = "upload-state";
      li.appendChild(name);
      li.appendChild(bar);
      li.appendChild(state);
      list.appendChild(li);
      return { li: li, bar: bar, state: state };
    }

    function add(files) {
      input.required = false;
      for (var i = 0; i < files.length; i++) {
        var f = files[i];
        var r = row(f);
        if (maxBytes && f.size > maxBytes) {
          r.state.textContent = " too large (at most " + human(maxBytes) + ")";
          r.li.className += " failed";
          continue;
        }
        queue.push({ file: f, row: r });
      }
    }

    function fields() {
      var out = {};
      ["uploader_name", "uploader_email", "message"].forEach(function (k) {
        var el = form.elements[k];
        if (el && el.value) out[k] = el.value;
      });
      return out;
    }

    function settled(item, ok, why) {
      if (ok) {
        item.row.bar.value = 100;
        item.row.state.textContent = " received";
        item.row.li.className += " done";
      } else {
        item.row.state.textContent = " " + why;
        item.row.li.className += " failed";
      }
    }

    // Large files go through tus (resumable.js): progress, and resume after a network failure.
    function sendResumable(item, done) {
      var headers = {};
      var csrf = form.elements.csrf_token;
      if (csrf) headers["X-CSRF-Token"] = csrf.value;
      if (token) headers.Authorization = "Bearer " + token;
      item.row.li.setAttribute("data-via", "tus");
      window.VitrineUpload.send(item.file, {
        tusEndpoint: tusEndpoint,
        formEndpoint: action,
        headers: headers,
        metadata: fields(),
        onProgress: function (sent, total) {
          if (total) item.row.bar.value = Math.round((sent / total) * 100);
        },
      }).then(function () {
        settled(item, true);
        done();
      }, function (err) {
        var why = "refused (" + (err && err.status) + ")";
        var body = err && err.body;
        if (body) {
          why = body.fields ? Object.keys(body.fields).map(function (k) { return k + ": " + body.fields[k]; }).join("; ") : body.error;
        } else if (err && err.status === 0) {
          why = "network error";
        }
        settled(item, false, why);
        done();
      });
    }

    function send(item, done) {
      if (tusEndpoint && window.VitrineUpload && item.file.size > window.VitrineUpload.RESUMABLE_FROM) {
        sendResumable(item, done);
        return;
      }
      var data = new FormData();
      ["csrf_token", "uploader_name", "uploader_email", "message"].forEach(function (k) {
        var el = form.elements[k];
        if (el && el.value) data.append(k, el.value);
      });
      data.append("file", item.file, item.file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", action);
      xhr.setRequestHeader("Accept", "application/json");
      var csrf = form.elements.csrf_token;
      if (csrf) xhr.setRequestHeader("X-CSRF-Token", csrf.value);
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) item.row.bar.value = Math.round((e.loaded / e.total) * 100);
      };
      xhr.onload = function () {
        if (xhr.status === 201) {
          item.row.bar.value = 100;
          item.row.state.textContent = " received";
          item.row.li.className += " done";
        } else {
          var why = "refused (" + xhr.status + ")";
          try {
            var body = JSON.parse(xhr.responseText);
            why = body.fields ? Object.keys(body.fields).map(function (k) { return k + ": " + body.fields[k]; }).join("; ") : body.error;
          } catch (e) { /* keep the status */ }
          item.row.state.textContent = " " + why;
          item.row.li.className += " failed";
        }
        done();
      };
      xhr.onerror = function () {
        item.row.state.textContent = " network error";
        item.row.li.className += " failed";
        done();
      };
      xhr.send(data);
    }

    function run() {
      var next = queue.shift();
      if (next) send(next, run);
    }

    zone.addEventListener("dragover", function (e) {
      e.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", function () {
      zone.classList.remove("over");
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      zone.classList.remove("over");
      if (e.dataTransfer && e.dataTransfer.files) add(e.dataTransfer.files);
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!form.reportValidity || form.reportValidity()) {
        if (input.files && input.files.length) add(input.files);
        input.value = "";
        input.required = false;
        run();
      }
    });
    input.addEventListener("change", function () {
      input.required = false;
    });
  });
})();
