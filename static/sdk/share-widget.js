/*
 * Vitrine share widget: new ShareWidget(assetId, options)
 *
 * Creates a share link for an asset through the API (POST /api/v3/assets/{id}/share/) with
 * `options` as the body, then renders into #share-buttons (or options.container): one button per
 * social network, the QR code image and a "Copy Link" button. Works from any page: the API
 * accepts cross-origin requests with a Bearer token.
 *
 * Widget-only options (not sent to the API):
 *   token      access token (default: window.VITRINE_TOKEN, then localStorage "vitrine_token"
 *              or "access_token"); with none, a same-origin page's session cookie authenticates
 *              and the request carries the page's CSRF token (X-CSRF-Token)
 *   csrfToken  that CSRF token (default: the page's <meta name="csrf-token">, which every
 *              signed-in Vitrine page carries, else a readable vitrine_csrf cookie)
 *   container  element or element id (default "share-buttons")
 *   apiBase    origin of the Vitrine server (default: this page's origin)
 *   onCreated  callback(shareData) after the link is created
 *   onError    callback(error) when creation fails (default: message in the container)
 *   silent     true: no alert() after copying (the button still says "Copied!")
 */
(function (global) {
  'use strict';

  var WIDGET_KEYS = ['token', 'csrfToken', 'container', 'apiBase', 'onCreated', 'onError', 'silent'];

  class ShareWidget {
    constructor(assetId, options = {}) {
      this.assetId = assetId;
      this.options = options;
      this.shareData = null;
      this.ready = this.init();
    }

    async init() {
      try {
        const shareData = await this.createShareLink();
        this.shareData = shareData;
        this.renderShareButtons(shareData);
        if (typeof this.options.onCreated === 'function') this.options.onCreated(shareData);
        return shareData;
      } catch (err) {
        if (typeof this.options.onError === 'function') {
          this.options.onError(err);
        } else {
          const box = this.container();
          if (box) {
            const p = document.createElement('p');
            p.className = 'share-error';
            p.setAttribute('role', 'alert');
            p.textContent = 'Could not create the share link: ' + err.message;
            box.appendChild(p);
          }
        }
        return null;
      }
    }

    getAuthToken() {
      if (this.options.token) return this.options.token;
      if (global.VITRINE_TOKEN) return global.VITRINE_TOKEN;
      try {
        return global.localStorage.getItem('vitrine_token') || global.localStorage.getItem('access_token') || '';
      } catch (e) {
        return '';
      }
    }

    apiBase() {
      return (this.options.apiBase || '').replace(/\/+$/, '');
    }

    body() {
      const out = {};
      Object.keys(this.options).forEach((k) => {
        if (WIDGET_KEYS.indexOf(k) === -1) out[k] = this.options[k];
      });
      return out;
    }

    container() {
      const c = this.options.container || 'share-buttons';
      return typeof c === 'string' ? document.getElementById(c) : c;
    }

    // The page's CSRF token: the option, the page's <meta name="csrf-token"> (the HttpOnly CSRF
    // cookie's value, on signed-in Vitrine pages), or a readable vitrine_csrf cookie.
    getCsrfToken() {
      if (this.options.csrfToken) return String(this.options.csrfToken);
      if (typeof document === 'undefined') return '';
      const meta = document.querySelector('meta[name="csrf-token"]');
      if (meta && meta.getAttribute('content')) return meta.getAttribute('content');
      const m = /(?:^|;\s*)vitrine_csrf=([^;]+)/.exec(document.cookie || '');
      return m ? decodeURIComponent(m[1]) : '';
    }

    async createShareLink() {
      const token = this.getAuthToken();
      const headers = { 'Content-Type': 'application/json' };
      const init = { method: 'POST', headers: headers, body: JSON.stringify(this.body()) };
      if (token) {
        headers.Authorization = `Bearer ${token}`;
      } else {
        // No token: the same-origin session cookie authenticates, with the page's CSRF token.
        init.credentials = 'same-origin';
        const csrf = this.getCsrfToken();
        if (csrf) headers['X-CSRF-Token'] = csrf;
      }
      const response = await fetch(`${this.apiBase()}/api/v3/assets/${encodeURIComponent(this.assetId)}/share/`, init);
      const data = await response.json().catch(() => ({}));
      if (!response.ok) {
        const err = new Error(data.error || `HTTP ${response.status}`);
        err.status = response.status;
        err.code = data.code;
        err.fields = data.fields;
        throw err;
      }
      return data;
    }

    renderShareButtons(shareData) {
      const container = this.container();
      if (!container) throw new Error('no element to render the share buttons into');

      // Social media buttons
      Object.entries(shareData.social_links || {}).forEach(([platform, url]) => {
        const button = document.createElement('a');
        button.href = url;
        button.target = '_blank';
        button.rel = 'noopener noreferrer';
        button.className = `share-btn share-${platform}`;
        button.textContent = platform.charAt(0).toUpperCase() + platform.slice(1);
        container.appendChild(button);
      });

      // QR Code
      const qrImg = document.createElement('img');
      qrImg.src = shareData.qr_code_data;
      qrImg.alt = 'QR Code for sharing';
      qrImg.className = 'share-qr';
      container.appendChild(qrImg);

      // Copy link button
      const copyBtn = document.createElement('button');
      copyBtn.type = 'button';
      copyBtn.className = 'share-copy';
      copyBtn.textContent = 'Copy Link';
      copyBtn.onclick = () => this.copyToClipboard(shareData.share_url, copyBtn);
      container.appendChild(copyBtn);
    }

    copyToClipboard(text, button) {
      const done = () => {
        if (button) button.textContent = 'Copied!';
        if (this.options.silent !== true && typeof global.alert === 'function') {
          global.alert('Share link copied to clipboard!');
        }
      };
      if (global.navigator && global.navigator.clipboard && global.isSecureContext) {
        return global.navigator.clipboard.writeText(text).then(done, () => this.fallbackCopy(text, done));
      }
      return Promise.resolve(this.fallbackCopy(text, done));
    }

    // Older browsers and plain-http pages: select a hidden textarea and copy it.
    fallbackCopy(text, done) {
      const ta = document.createElement('textarea');
      ta.value = text;
      ta.setAttribute('readonly', '');
      ta.style.position = 'fixed';
      ta.style.opacity = '0';
      document.body.appendChild(ta);
      ta.select();
      let ok = false;
      try {
        ok = document.execCommand('copy');
      } catch (e) {
        ok = false;
      }
      document.body.removeChild(ta);
      if (ok) done();
      return ok;
    }
  }

  global.ShareWidget = ShareWidget;
  if (typeof module !== 'undefined' && module.exports) module.exports = ShareWidget;
})(typeof window !== 'undefined' ? window : globalThis);
