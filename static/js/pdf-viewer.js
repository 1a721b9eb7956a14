// The share page's document viewer (loaded only on pages that show a PDF): renders each
// `.pdf-viewer[data-pdf-src]` page by page with pdf.js (vendored, served by Vitrine), with page
// navigation, zoom and keyboard control, an optional tiled watermark, and time per page for the
// page's beacon (share-beacon.js reads `window.vitrineReadings`). The preview URL is the only
// address it fetches. Without JavaScript the page's <noscript> fallback (the browser's own viewer)
// stays in place.
const PDFJS = '/static/js/vendor/pdfjs/pdf.min.mjs';
const WORKER = '/static/js/vendor/pdfjs/pdf.worker.min.mjs';
const ZOOM_STEPS = [0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 3, 4];
const MAX_PAGES_PER_TAKE = 100;

let pdfjsPromise = null;
function pdfjs() {
  if (!pdfjsPromise) {
    pdfjsPromise = import(PDFJS).then((lib) => {
      lib.GlobalWorkerOptions.workerSrc = WORKER;
      return lib;
    });
  }
  return pdfjsPromise;
}

window.vitrineReadings = window.vitrineReadings || [];

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Time per page of one reading (one opening of the viewer), counted only while the page is
// visible; `take()` hands what accumulated since the last call to the beacon.
class Reading {
  constructor(assetId, pageCount) {
    this.assetId = assetId;
    this.pageCount = pageCount;
    this.pending = new Map(); // page -> [views, ms]
    this.current = null;
    this.since = null;
    this.opened = false; // reported as opened
    this.reachedLast = false;
    this.completedSent = false;
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'hidden') this.pause();
      else this.resume();
    });
  }

  entry(page) {
    let e = this.pending.get(page);
    if (!e) {
      e = [0, 0];
      this.pending.set(page, e);
    }
    return e;
  }

  show(page) {
    if (page === this.current) return;
    this.pause();
    this.current = page;
    this.entry(page)[0] += 1;
    if (page === this.pageCount) this.reachedLast = true;
    this.resume();
  }

  pause() {
    if (this.current !== null && this.since !== null) {
      this.entry(this.current)[1] += performance.now() - this.since;
    }
    this.since = null;
  }

  resume() {
    if (this.current !== null && document.visibilityState !== 'hidden') this.since = performance.now();
  }

  // What to report now (null when nothing is new); the clock of the current page restarts.
  take() {
    const running = this.since !== null;
    this.pause();
    const pages = [];
    for (const [page, [views, ms]] of this.pending) {
      if (pages.length >= MAX_PAGES_PER_TAKE) break;
      if (views > 0 || ms >= 1) pages.push([page, views, Math.round(ms)]);
      this.pending.delete(page);
    }
    if (running) this.resume();
    const completed = this.reachedLast && !this.completedSent;
    if (!pages.length && this.opened && !completed) return null;
    const out = { page_count: this.pageCount, pages: pages, opened: !this.opened, completed: completed };
    if (this.assetId) out.asset_id = this.assetId;
    this.opened = true;
    if (completed) this.completedSent = true;
    return out;
  }

  hasMore() {
    return this.pending.size > 0;
  }
}

class Viewer {
  constructor(root) {
    this.root = root;
    this.src = root.getAttribute('data-pdf-src');
    this.assetId = Number(root.getAttribute('data-asset-id')) || null;
    this.watermark = root.getAttribute('data-watermark') || '';
    this.prefix = root.id || 'pdf';
    this.page = 1;
    this.zoom = 3; // index into ZOOM_STEPS (1 = fit width)
    this.rendering = null;
  }

  async start() {
    const title = this.root.getAttribute('data-title') || 'Document';
    this.root.setAttribute('data-state', 'loading');
    this.root.setAttribute('role', 'region');
    this.root.setAttribute('aria-label', 'Document viewer: ' + title);
    const lib = await pdfjs();
    this.doc = await lib.getDocument({ url: this.src, isEvalSupported: false, withCredentials: true }).promise;
    this.count = this.doc.numPages;
    this.reading = new Reading(this.assetId, this.count);
    window.vitrineReadings.push(this.reading);
    this.build(title);
    await this.go(1);
    this.root.setAttribute('data-state', 'ready');
  }

  build(title) {
    const p = this.prefix;
    const bar = el('div', { class: 'pdf-toolbar', role: 'toolbar', 'aria-label': 'Document controls', 'aria-controls': p + '-canvas' });
    this.prev = el('button', { type: 'button', id: p + '-prev', 'aria-label': 'Previous page' }, '‹ Prev');
    this.next = el('button', { type: 'button', id: p + '-next', 'aria-label': 'Next page' }, 'Next ›');
    const label = el('label', { for: p + '-page' }, 'Page');
    this.input = el('input', { type: 'number', id: p + '-page', min: '1', max: String(this.count), value: '1', inputmode: 'numeric', class: 'pdf-page-input' });
    const of = el('span', { id: p + '-count' }, 'of ' + this.count);
    this.zoomOut = el('button', { type: 'button', id: p + '-zoom-out', 'aria-label': 'Zoom out' }, '−');
    this.zoomLabel = el('output', { id: p + '-zoom', 'aria-live': 'polite', 'aria-label': 'Zoom level' }, '100%');
    this.zoomIn = el('button', { type: 'button', id: p + '-zoom-in', 'aria-label': 'Zoom in' }, '+');
    bar.append(this.prev, label, this.input, of, this.next, this.zoomOut, this.zoomLabel, this.zoomIn);
    this.stage = el('div', { class: 'pdf-stage', tabindex: '0', id: p + '-stage', role: 'group',
      'aria-label': title + ': use the arrow keys or Page Up / Page Down to turn pages, + and - to zoom' });
    this.canvas = el('canvas', { id: p + '-canvas', role: 'img', 'aria-label': 'Page 1 of ' + this.count });
    this.status = el('p', { id: p + '-status', class: 'sr-only', 'aria-live': 'polite' });
    this.stage.append(this.canvas);
    this.root.replaceChildren(bar, this.stage, this.status);
    this.prev.addEventListener('click', () => this.go(this.page - 1));
    this.next.addEventListener('click', () => this.go(this.page + 1));
    this.zoomOut.addEventListener('click', () => this.setZoom(this.zoom - 1));
    this.zoomIn.addEventListener('click', () => this.setZoom(this.zoom + 1));
    this.input.addEventListener('change', () => this.go(Number(this.input.value)));
    this.root.addEventListener('keydown', (e) => this.key(e));
  }

  key(e) {
    if (e.target === this.input && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) return;
    const actions = {
      ArrowRight: () => this.go(this.page + 1), PageDown: () => this.go(this.page + 1),
      ArrowLeft: () => this.go(this.page - 1), PageUp: () => this.go(this.page - 1),
      Home: () => this.go(1), End: () => this.go(this.count),
      '+': () => this.setZoom(this.zoom + 1), '=': () => this.setZoom(this.zoom + 1),
      '-': () => this.setZoom(this.zoom - 1), '_': () => this.setZoom(this.zoom - 1),
    };
    const act = actions[e.key];
    if (!act || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.target === this.input && (e.key === 'Home' || e.key === 'End')) return;
    e.preventDefault();
    act();
  }

  setZoom(i) {
    this.zoom = Math.max(0, Math.min(ZOOM_STEPS.length - 1, i));
    this.zoomLabel.textContent = Math.round(ZOOM_STEPS[this.zoom] * 100) + '%';
    this.zoomOut.disabled = this.zoom === 0;
    this.zoomIn.disabled = this.zoom === ZOOM_STEPS.length - 1;
    return this.render();
  }

  async go(n) {
    if (!Number.isFinite(n)) n = this.page;
    n = Math.max(1, Math.min(this.count, Math.round(n)));
    this.page = n;
    this.input.value = String(n);
    this.prev.disabled = n === 1;
    this.next.disabled = n === this.count;
    this.reading.show(n);
    this.root.setAttribute('data-page', String(n));
    await this.render();
  }

  async render() {
    // Only the latest call draws: each one cancels the drawing under way and checks, after every
    // wait, that no newer call came in (one canvas takes one render at a time).
    const seq = (this.seq = (this.seq || 0) + 1);
    const n = this.page;
    const zoom = ZOOM_STEPS[this.zoom];
    const previous = this.rendering;
    if (previous) {
      previous.cancel();
      await previous.promise.catch(() => {});
    }
    if (seq !== this.seq) return;
    const page = await this.doc.getPage(n);
    if (seq !== this.seq) return;
    const base = page.getViewport({ scale: 1 });
    const width = Math.max(200, (this.stage.clientWidth || 800) - 2);
    const scale = (width / base.width) * zoom;
    const ratio = window.devicePixelRatio || 1;
    const viewport = page.getViewport({ scale: scale * ratio });
    const canvas = this.canvas;
    canvas.width = Math.floor(viewport.width);
    canvas.height = Math.floor(viewport.height);
    canvas.style.width = Math.floor(viewport.width / ratio) + 'px';
    canvas.style.height = Math.floor(viewport.height / ratio) + 'px';
    const ctx = canvas.getContext('2d');
    const task = page.render({ canvasContext: ctx, viewport: viewport });
    this.rendering = task;
    try {
      await task.promise;
    } catch (e) {
      if (e && e.name === 'RenderingCancelledException') return;
      throw e;
    } finally {
      if (this.rendering === task) this.rendering = null;
    }
    if (seq !== this.seq) return;
    if (this.watermark) drawWatermark(ctx, canvas.width, canvas.height, this.watermark, ratio);
    canvas.setAttribute('aria-label', 'Page ' + n + ' of ' + this.count);
    this.status.textContent = 'Page ' + n + ' of ' + this.count;
    this.root.setAttribute('data-rendered-page', String(n));
  }
}

// The same tiled, semi-transparent text the server draws on images of watermarked links.
function drawWatermark(ctx, w, h, text, ratio) {
  ctx.save();
  const size = Math.round(18 * ratio);
  ctx.font = 'bold ' + size + 'px monospace';
  ctx.fillStyle = 'rgba(128, 128, 128, 0.28)';
  ctx.translate(w / 2, h / 2);
  ctx.rotate(-Math.PI / 6);
  const stepX = ctx.measureText(text).width + size * 3;
  const stepY = size * 5;
  const reach = Math.hypot(w, h);
  for (let y = -reach; y < reach; y += stepY) {
    const shift = (Math.round(y / stepY) % 2) * (stepX / 2);
    for (let x = -reach - shift; x < reach; x += stepX) ctx.fillText(text, x, y);
  }
  ctx.restore();
}

function fail(root, err) {
  root.setAttribute('data-state', 'failed');
  const msg = root.querySelector('.pdf-fallback');
  if (msg) msg.hidden = false;
  if (window.console) console.warn('PDF viewer:', err);
}

function start(root) {
  if (root.getAttribute('data-state')) return;
  new Viewer(root).start().catch((e) => fail(root, e));
}

for (const root of document.querySelectorAll('.pdf-viewer[data-pdf-src]')) {
  // In a closed <details> (collection pages), start when it is opened.
  const details = root.closest('details');
  if (details && !details.open) {
    details.addEventListener('toggle', () => { if (details.open) start(root); });
  } else {
    start(root);
  }
}
