/*
 * Vitrine analytics dashboard: new AnalyticsDashboard(shareUuid, options)
 *
 * Fetches GET /api/v3/shares/{uuid}/analytics/?days=N and renders it into whatever of these
 * elements the page provides (every one is optional; missing ones are skipped silently):
 *
 *   summary cards  #total-views #total-downloads #unique-visitors #conversion-rate
 *                  #avg-time-on-page #avg-load
 *   charts         #geographic-chart (pie)  #device-chart (pie)  #timeline-chart (line)
 *                  #browser-chart #os-chart #referrer-chart (horizontal bars)
 *   errors         #analytics-error (gets role="alert")
 *
 * A chart element that is a <canvas> is drawn with the 2D context (scaled for devicePixelRatio);
 * any other element (usually a <div>) receives an inline, accessible SVG. No libraries and no
 * network access besides the API call: pages that embed this cannot load a CDN.
 *
 * Options (all optional):
 *   days       period in days sent to the API (default 30)
 *   apiBase    origin of the Vitrine server (default '' = this page's origin)
 *   token      access token; sent as "Authorization: Bearer"; without it the request relies on
 *              the signed-in session cookie (credentials: 'same-origin')
 *   refreshMs  auto-refresh period in ms (default 30000; 0 disables auto-refresh)
 *   autoInit   false: do not fetch/render from the constructor, call init() yourself
 *
 * Each chart lives in this.charts.<name> (geographic, device, timeline, browser, os, referrer)
 * and has update(rows) and destroy().
 */
(function (global) {
  'use strict';

  var SVG_NS = 'http://www.w3.org/2000/svg';
  var FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  var EMPTY_TEXT = 'No data yet';
  var OTHER_LABEL = 'Other';
  var DASH = '\u2013'; // shown when an average is unknown (null)

  // Colour-blind-friendly palette (Okabe-Ito plus Paul Tol's darker hues): every colour keeps a
  // readable contrast against white and the set stays distinguishable with common colour-vision
  // deficiencies. Grey is reserved for the aggregated "Other" slice so it never looks like data.
  var PALETTE = [
    '#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9',
    '#882255', '#117733', '#332288', '#AA4499', '#44AA99', '#8C6D1F'
  ];
  var OTHER_COLOUR = '#9E9E9E';

  // The two timeline series also differ by dash pattern, so they are not told apart by colour only.
  var SERIES = [
    { key: 'views', name: 'Views', colour: '#0072B2', dash: null },
    { key: 'downloads', name: 'Downloads', colour: '#D55E00', dash: [6, 4] }
  ];

  /* ----------------------------------------------------------------------------------------- */
  /* Small helpers                                                                              */
  /* ----------------------------------------------------------------------------------------- */

  function hasDocument() {
    return typeof document !== 'undefined' && document !== null;
  }

  function byId(id) {
    return hasDocument() && typeof document.getElementById === 'function' ? document.getElementById(id) : null;
  }

  // Counts from the API should be non-negative integers, but a dashboard must never throw on a
  // malformed value: anything unusable becomes 0.
  function toCount(v) {
    var n = Number(v);
    return Number.isFinite(n) && n > 0 ? n : 0;
  }

  // Averages are legitimately null ("not measured yet"); keep that distinct from 0.
  function toNullableNumber(v) {
    if (v === null || v === undefined || v === '') return null;
    var n = Number(v);
    return Number.isFinite(n) ? n : null;
  }

  var intFormatter = null;
  function formatInt(n) {
    var v = Math.round(toCount(n));
    try {
      if (!intFormatter && typeof Intl !== 'undefined') intFormatter = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
      if (intFormatter) return intFormatter.format(v);
    } catch (e) {
      intFormatter = null;
    }
    return String(v);
  }

  // Large shares read better without a decimal ("45%"), small ones need it ("2.5%").
  function formatPct(fraction) {
    var p = fraction * 100;
    if (p > 0 && p < 0.1) return '<0.1%';
    return (p >= 10 ? String(Math.round(p)) : p.toFixed(1)) + '%';
  }

  // Labels are shown exactly as the server sends them (ISO alpha-2 country codes, "unknown", …);
  // only a missing/empty label is replaced so the legend never has a blank entry.
  function labelOf(v) {
    if (v === null || v === undefined) return 'unknown';
    var s = String(v).trim();
    return s === '' ? 'unknown' : s;
  }

  // "YYYY-MM-DD" -> "Jan 5" in the viewer's locale. Parsed by hand and formatted in UTC so the day
  // never shifts with the viewer's time zone (new Date('2024-01-05') is UTC midnight).
  // On Vitrine's own pages the page's date helper (static/js/shell.js) names the day: "5 Jan".
  var dateFormatter = null;
  function formatDay(iso) {
    var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(iso || ''));
    if (!m) return String(iso || '');
    var dates = global.vitrineDates;
    if (dates && typeof dates.day === 'function') return dates.day(iso);
    try {
      if (!dateFormatter) dateFormatter = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
      return dateFormatter.format(new Date(Date.UTC(+m[1], +m[2] - 1, +m[3])));
    } catch (e) {
      return m[2] + '-' + m[3];
    }
  }

  // FNV-1a: tiny, stable across browsers and sessions, good enough spread for a 12-colour palette.
  function hashLabel(label) {
    var h = 0x811c9dc5;
    for (var i = 0; i < label.length; i++) {
      h ^= label.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h >>> 0;
  }

  // Deterministic colour per label: the label's hash picks its palette slot, so "US" keeps its
  // colour across refreshes and across charts. Two labels of the same chart that hash to the same
  // slot would be indistinguishable, so collisions move to the next free slot; labels are handled
  // in sorted order so the outcome depends only on the set of labels, not on their ranking.
  function assignColours(labels) {
    var out = {};
    var used = {};
    var usedCount = 0;
    labels.slice().sort().forEach(function (label) {
      if (Object.prototype.hasOwnProperty.call(out, label)) return;
      if (label === OTHER_LABEL) {
        out[label] = OTHER_COLOUR;
        return;
      }
      var idx = hashLabel(label) % PALETTE.length;
      while (used[idx] && usedCount < PALETTE.length) idx = (idx + 1) % PALETTE.length;
      if (!used[idx]) usedCount++;
      used[idx] = true;
      out[label] = PALETTE[idx];
    });
    return out;
  }

  // Black or white text on a slice, whichever contrasts more with the slice colour (WCAG luminance).
  function textOn(hex) {
    var m = /^#?([0-9a-f]{6})$/i.exec(hex || '');
    if (!m) return '#000';
    var n = parseInt(m[1], 16);
    var ch = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map(function (c) {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var lum = 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
    return (lum + 0.05) / 0.05 > 1.05 / (lum + 0.05) ? '#000' : '#fff';
  }

  // Axis scale with "round" steps (1, 2, 5 × 10^k) so gridlines land on readable values.
  // Counts are integers, so the step never goes below 1.
  function niceScale(max, targetTicks) {
    if (!(max > 0)) return { step: 1, top: 1 };
    var rough = max / (targetTicks || 4);
    var mag = Math.pow(10, Math.floor(Math.log10(rough)));
    var norm = rough / mag;
    var step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
    step = Math.max(1, step);
    return { step: step, top: Math.ceil(max / step) * step };
  }

  // Text measurement shared by both renderers, so a chart has the same layout on canvas and in
  // SVG. An offscreen canvas gives real metrics; without one (very old browsers, tests) a
  // per-character estimate keeps layout sane.
  var measureCtx;
  function measureText(text, size, weight) {
    if (measureCtx === undefined) {
      measureCtx = null;
      try {
        if (hasDocument() && typeof document.createElement === 'function') {
          var c = document.createElement('canvas');
          measureCtx = c && typeof c.getContext === 'function' ? c.getContext('2d') : null;
        }
      } catch (e) {
        measureCtx = null;
      }
    }
    if (measureCtx && typeof measureCtx.measureText === 'function') {
      measureCtx.font = (weight || 'normal') + ' ' + size + 'px ' + FONT;
      var w = measureCtx.measureText(text).width;
      if (Number.isFinite(w)) return w;
    }
    return String(text).length * size * 0.58;
  }

  // Shorten a label with an ellipsis so it fits maxWidth; long referrer URLs would otherwise push
  // the bars or the legend out of the chart.
  function fitText(text, maxWidth, size, weight) {
    text = String(text);
    if (maxWidth <= 0) return '';
    if (measureText(text, size, weight) <= maxWidth) return text;
    var lo = 0;
    var hi = text.length;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      if (measureText(text.slice(0, mid) + '\u2026', size, weight) <= maxWidth) lo = mid;
      else hi = mid - 1;
    }
    return lo > 0 ? text.slice(0, lo) + '\u2026' : '';
  }

  /* ----------------------------------------------------------------------------------------- */
  /* Data preparation                                                                           */
  /* ----------------------------------------------------------------------------------------- */

  // Breakdown rows -> [{label, value}] sorted by views, duplicates merged, zero rows dropped (a
  // zero slice or bar carries no information), and the tail folded into "Other" so a pie with 60
  // countries stays readable.
  function prepareRows(raw, labelKey, maxItems) {
    var merged = {};
    var order = [];
    (Array.isArray(raw) ? raw : []).forEach(function (r) {
      if (!r || typeof r !== 'object') return;
      var label = labelOf(r[labelKey]);
      var value = toCount(r.views);
      if (value <= 0) return;
      if (!Object.prototype.hasOwnProperty.call(merged, label)) {
        merged[label] = 0;
        order.push(label);
      }
      merged[label] += value;
    });
    var rows = order.map(function (label) { return { label: label, value: merged[label] }; });
    rows.sort(function (a, b) { return b.value - a.value || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0); });
    if (maxItems > 1 && rows.length > maxItems) {
      var kept = rows.slice(0, maxItems - 1);
      var rest = rows.slice(maxItems - 1).reduce(function (s, r) { return s + r.value; }, 0);
      kept.push({ label: OTHER_LABEL, value: rest });
      rows = kept;
    }
    var colours = assignColours(rows.map(function (r) { return r.label; }));
    var total = 0;
    rows.forEach(function (r) {
      r.colour = colours[r.label];
      total += r.value;
    });
    return { rows: rows, total: total, empty: total <= 0 };
  }

  function prepareTimeline(raw) {
    var days = (Array.isArray(raw) ? raw : [])
      .filter(function (d) { return d && typeof d === 'object'; })
      .map(function (d) {
        return {
          date: String(d.date || ''),
          views: toCount(d.views),
          downloads: toCount(d.downloads),
          unique_visitors: toCount(d.unique_visitors)
        };
      });
    // ISO dates sort correctly as strings; the API already orders them, this is just insurance.
    days.sort(function (a, b) { return a.date < b.date ? -1 : a.date > b.date ? 1 : 0; });
    var max = 0;
    var totals = { views: 0, downloads: 0 };
    days.forEach(function (d) {
      max = Math.max(max, d.views, d.downloads);
      totals.views += d.views;
      totals.downloads += d.downloads;
    });
    return { days: days, max: max, totals: totals, empty: days.length === 0 || max <= 0 };
  }

  // The API shape is fixed, but a dashboard must survive partial or null payloads (a proxy error
  // page, an older server) without throwing.
  function normalise(data) {
    var d = data && typeof data === 'object' ? data : {};
    var s = d.summary && typeof d.summary === 'object' ? d.summary : {};
    var e = d.engagement && typeof d.engagement === 'object' ? d.engagement : {};
    var p = d.performance && typeof d.performance === 'object' ? d.performance : {};
    var arr = function (v) { return Array.isArray(v) ? v : []; };
    return {
      summary: {
        total_views: toCount(s.total_views),
        total_downloads: toCount(s.total_downloads),
        unique_visitors: toCount(s.unique_visitors),
        conversion_rate: Number.isFinite(Number(s.conversion_rate)) ? Number(s.conversion_rate) : 0
      },
      geographic_breakdown: arr(d.geographic_breakdown),
      device_breakdown: arr(d.device_breakdown),
      daily_breakdown: arr(d.daily_breakdown),
      browser_breakdown: arr(d.browser_breakdown),
      os_breakdown: arr(d.os_breakdown),
      referrer_breakdown: arr(d.referrer_breakdown),
      engagement: { avg_time_on_page_seconds: toNullableNumber(e.avg_time_on_page_seconds) },
      performance: { avg_load_ms: toNullableNumber(p.avg_load_ms) }
    };
  }

  /* ----------------------------------------------------------------------------------------- */
  /* Scenes: renderer-independent geometry                                                      */
  /* ----------------------------------------------------------------------------------------- */
  //
  // Each chart type is laid out once as a list of primitives (rect, line, polyline, circle,
  // slice, text) in CSS pixels; paintCanvas() and paintSvg() then draw that list. This keeps the
  // canvas and SVG versions identical and each layout written once.
  // A null fill/stroke means "the element's text colour" so charts follow light/dark themes.

  function emptyScene(w, h, title) {
    return {
      width: w,
      height: h,
      label: title + ': ' + EMPTY_TEXT.toLowerCase(),
      items: [{ type: 'text', x: w / 2, y: h / 2, text: EMPTY_TEXT, align: 'middle', size: 14, muted: true }]
    };
  }

  function legendLine(row, total) {
    return row.label + '  ' + formatInt(row.value) + ' (' + formatPct(row.value / total) + ')';
  }

  function summaryOfRows(title, model) {
    var top = model.rows.slice(0, 6).map(function (r) {
      return r.label + ' ' + formatInt(r.value) + ' (' + formatPct(r.value / model.total) + ')';
    });
    return title + ': ' + top.join(', ') + (model.rows.length > 6 ? ', …' : '');
  }

  function pieScene(model, w, h, title) {
    if (model.empty) return emptyScene(w, h, title);
    var items = [];
    var rowH = 20;
    var size = 12;
    var cx;
    var cy;
    var r;
    var legendX;
    var legendY;
    var legendW;
    var widest = 0;
    model.rows.forEach(function (row) { widest = Math.max(widest, measureText(legendLine(row, model.total), size)); });
    // Legend beside or below the pie: whichever leaves the larger pie. Beside wins on wide
    // elements, below on narrow ones, and a short fixed-height canvas keeps its legend beside.
    var sideW = Math.min(w * 0.5, widest + 24);
    var rSide = Math.min(w - sideW - 16, h) / 2 - 10;
    var rBelow = Math.min(w, h - model.rows.length * rowH - 16) / 2 - 8;
    var legendBelow = rBelow > rSide;
    if (legendBelow) {
      r = Math.max(10, rBelow);
      cx = w / 2;
      cy = 8 + r;
      legendX = 8;
      legendY = cy + r + 12;
      legendW = w - 16;
    } else {
      legendW = sideW;
      r = Math.max(10, rSide);
      cx = 8 + (w - sideW - 16) / 2;
      cy = h / 2;
      legendX = w - legendW;
      legendY = Math.max(8, h / 2 - (model.rows.length * rowH) / 2);
    }

    var angle = -Math.PI / 2; // start at 12 o'clock like most pie charts
    model.rows.forEach(function (row) {
      var sweep = (row.value / model.total) * Math.PI * 2;
      var tip = row.label + ': ' + formatInt(row.value) + ' views (' + formatPct(row.value / model.total) + ')';
      items.push({ type: 'slice', cx: cx, cy: cy, r: r, a0: angle, a1: angle + sweep, fill: row.colour, seam: model.rows.length > 1, title: tip });
      // Percentages inside the slice only where they fit; the legend always has them.
      if (sweep > 0.45 && r > 40) {
        var mid = angle + sweep / 2;
        items.push({
          type: 'text', x: cx + Math.cos(mid) * r * 0.62, y: cy + Math.sin(mid) * r * 0.62,
          text: formatPct(row.value / model.total), align: 'middle', size: 11, weight: 'bold', fill: textOn(row.colour)
        });
      }
      angle += sweep;
    });

    model.rows.forEach(function (row, i) {
      var y = legendY + i * rowH + rowH / 2;
      items.push({ type: 'rect', x: legendX, y: y - 6, w: 12, h: 12, fill: row.colour, title: legendLine(row, model.total) });
      items.push({ type: 'text', x: legendX + 18, y: y, text: fitText(legendLine(row, model.total), legendW - 22, size), align: 'start', size: size });
    });

    return { width: w, height: h, label: summaryOfRows(title, model), items: items };
  }

  function barScene(model, w, h, title) {
    if (model.empty) return emptyScene(w, h, title);
    var items = [];
    var size = 12;
    var n = model.rows.length;
    var padT = 8;
    var padB = 8;
    var rowH = Math.max(14, Math.min(32, (h - padT - padB) / n));
    // Not simply rows[0]: the folded "Other" row can outweigh the largest single label.
    var max = model.rows.reduce(function (m, r) { return Math.max(m, r.value); }, 0);

    var widestLabel = 0;
    var widestValue = 0;
    model.rows.forEach(function (r) {
      widestLabel = Math.max(widestLabel, measureText(r.label, size));
      widestValue = Math.max(widestValue, measureText(formatInt(r.value), size));
    });
    var labelW = Math.min(widestLabel, w * 0.38);
    var barX = 8 + labelW + 8;
    var barMax = Math.max(10, w - barX - widestValue - 14);

    model.rows.forEach(function (r, i) {
      var mid = padT + i * rowH + rowH / 2;
      var bh = Math.max(6, rowH * 0.66);
      var bw = Math.max(1, (r.value / max) * barMax);
      var tip = r.label + ': ' + formatInt(r.value) + ' views (' + formatPct(r.value / model.total) + ')';
      items.push({ type: 'text', x: barX - 8, y: mid, text: fitText(r.label, labelW, size), align: 'end', size: size });
      items.push({ type: 'rect', x: barX, y: mid - bh / 2, w: bw, h: bh, fill: r.colour, title: tip });
      items.push({ type: 'text', x: barX + bw + 6, y: mid, text: formatInt(r.value), align: 'start', size: size, muted: true });
    });
    return { width: w, height: h, label: summaryOfRows(title, model), items: items };
  }

  function lineScene(model, w, h, title) {
    if (model.empty) return emptyScene(w, h, title);
    var items = [];
    var size = 11;
    var days = model.days;
    var n = days.length;
    var scale = niceScale(model.max, 4);
    var ticks = [];
    for (var t = 0; t <= scale.top + 1e-9; t += scale.step) ticks.push(t);
    var tickW = 0;
    ticks.forEach(function (v) { tickW = Math.max(tickW, measureText(formatInt(v), size)); });

    var padL = Math.ceil(tickW) + 12;
    var padR = 14;
    var padT = 30; // room for the legend
    var padB = 24; // room for the date labels
    var plotW = Math.max(10, w - padL - padR);
    var plotH = Math.max(10, h - padT - padB);
    var xAt = function (i) { return n === 1 ? padL + plotW / 2 : padL + (i * plotW) / (n - 1); };
    var yAt = function (v) { return padT + plotH - (v / scale.top) * plotH; };

    // Gridlines and y labels.
    ticks.forEach(function (v) {
      var y = yAt(v);
      items.push({ type: 'line', x1: padL, y1: y, x2: padL + plotW, y2: y, stroke: null, width: 1, opacity: v === 0 ? 0.45 : 0.15 });
      items.push({ type: 'text', x: padL - 6, y: y, text: formatInt(v), align: 'end', size: size, muted: true });
    });

    // Date labels: as many as fit without overlapping, evenly spaced, clamped inside the chart.
    var sampleW = measureText(formatDay(days[0].date), size) + 14;
    var every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(plotW / sampleW))));
    for (var i = 0; i < n; i += every) {
      var text = formatDay(days[i].date);
      var half = measureText(text, size) / 2;
      var x = Math.min(Math.max(xAt(i), half + 1), w - half - 1);
      items.push({ type: 'text', x: x, y: padT + plotH + 14, text: text, align: 'middle', size: size, muted: true });
    }

    // One transparent column per day: in SVG its <title> is the hover tooltip for that day.
    var colW = n === 1 ? plotW : plotW / (n - 1);
    days.forEach(function (d, i) {
      items.push({
        type: 'rect', x: xAt(i) - colW / 2, y: padT, w: colW, h: plotH, fill: 'transparent',
        title: formatDay(d.date) + ': ' + formatInt(d.views) + ' views, ' + formatInt(d.downloads) + ' downloads, ' +
          formatInt(d.unique_visitors) + ' unique visitors'
      });
    });

    SERIES.forEach(function (s) {
      var pts = days.map(function (d, i) { return [xAt(i), yAt(d[s.key])]; });
      if (n > 1) items.push({ type: 'polyline', points: pts, stroke: s.colour, width: 2, dash: s.dash });
      // Markers only while they are sparse enough to help (and a single day needs one to be seen).
      if (n <= 45) pts.forEach(function (p) { items.push({ type: 'circle', cx: p[0], cy: p[1], r: n === 1 ? 4 : 2.5, fill: s.colour }); });
    });

    // Legend, top-left: a swatch drawn like the series (same dash) plus name and period total.
    var lx = padL;
    SERIES.forEach(function (s) {
      var label = s.name + ' (' + formatInt(model.totals[s.key]) + ')';
      items.push({ type: 'polyline', points: [[lx, 12], [lx + 20, 12]], stroke: s.colour, width: 2, dash: s.dash });
      items.push({ type: 'text', x: lx + 26, y: 12, text: label, align: 'start', size: 12 });
      lx += 26 + measureText(label, 12) + 18;
    });

    var first = formatDay(days[0].date);
    var last = formatDay(days[n - 1].date);
    return {
      width: w,
      height: h,
      label: title + ', ' + (n === 1 ? first : first + ' to ' + last) + ': ' + formatInt(model.totals.views) + ' views, ' +
        formatInt(model.totals.downloads) + ' downloads',
      items: items
    };
  }

  /* ----------------------------------------------------------------------------------------- */
  /* Painters                                                                                   */
  /* ----------------------------------------------------------------------------------------- */

  function textColourOf(el) {
    try {
      if (typeof getComputedStyle === 'function') {
        var c = getComputedStyle(el).color;
        if (c) return c;
      }
    } catch (e) { /* detached element or no CSSOM: use the fallback */ }
    return '#333';
  }

  function paintCanvas(canvas, scene, dpr) {
    var ctx = typeof canvas.getContext === 'function' ? canvas.getContext('2d') : null;
    if (!ctx) return;
    // Backing store in device pixels, drawing in CSS pixels: crisp on HiDPI screens.
    canvas.width = Math.max(1, Math.round(scene.width * dpr));
    canvas.height = Math.max(1, Math.round(scene.height * dpr));
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, scene.width, scene.height);
    var ink = textColourOf(canvas);

    scene.items.forEach(function (it) {
      ctx.save();
      if (it.opacity !== undefined) ctx.globalAlpha = it.opacity;
      switch (it.type) {
        case 'rect':
          if (it.fill === 'transparent') break; // hover targets only matter in SVG
          ctx.fillStyle = it.fill || ink;
          ctx.fillRect(it.x, it.y, it.w, it.h);
          break;
        case 'line':
          ctx.strokeStyle = it.stroke || ink;
          ctx.lineWidth = it.width || 1;
          ctx.beginPath();
          // Half-pixel offset keeps 1px horizontal gridlines sharp.
          ctx.moveTo(it.x1, Math.round(it.y1) + 0.5);
          ctx.lineTo(it.x2, Math.round(it.y2) + 0.5);
          ctx.stroke();
          break;
        case 'polyline':
          ctx.strokeStyle = it.stroke || ink;
          ctx.lineWidth = it.width || 1;
          ctx.lineJoin = 'round';
          ctx.lineCap = 'round';
          if (typeof ctx.setLineDash === 'function') ctx.setLineDash(it.dash || []);
          ctx.beginPath();
          it.points.forEach(function (p, i) { if (i === 0) ctx.moveTo(p[0], p[1]); else ctx.lineTo(p[0], p[1]); });
          ctx.stroke();
          break;
        case 'circle':
          ctx.fillStyle = it.fill || ink;
          ctx.beginPath();
          ctx.arc(it.cx, it.cy, it.r, 0, Math.PI * 2);
          ctx.fill();
          break;
        case 'slice':
          ctx.fillStyle = it.fill;
          ctx.beginPath();
          if (it.a1 - it.a0 >= Math.PI * 2 - 1e-6) {
            ctx.arc(it.cx, it.cy, it.r, 0, Math.PI * 2);
          } else {
            ctx.moveTo(it.cx, it.cy);
            ctx.arc(it.cx, it.cy, it.r, it.a0, it.a1);
            ctx.closePath();
          }
          ctx.fill();
          if (it.seam) {
            // Thin white seams separate neighbouring slices of similar lightness.
            ctx.strokeStyle = '#fff';
            ctx.lineWidth = 1;
            ctx.stroke();
          }
          break;
        case 'text':
          ctx.fillStyle = it.fill || ink;
          if (it.muted) ctx.globalAlpha = 0.7;
          ctx.font = (it.weight || 'normal') + ' ' + it.size + 'px ' + FONT;
          ctx.textAlign = it.align === 'middle' ? 'center' : it.align === 'end' ? 'right' : 'left';
          ctx.textBaseline = 'middle';
          ctx.fillText(it.text, it.x, it.y);
          break;
        default:
          break;
      }
      ctx.restore();
    });
    // A canvas is opaque to assistive technology; the summary makes it an accessible image.
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', scene.label);
  }

  function svgEl(tag, attrs, title) {
    var el = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs).forEach(function (k) {
      if (attrs[k] !== null && attrs[k] !== undefined) el.setAttribute(k, String(attrs[k]));
    });
    if (title) {
      var t = document.createElementNS(SVG_NS, 'title');
      t.textContent = title; // textContent, never markup: labels come from visitors' requests
      el.appendChild(t);
    }
    return el;
  }

  function r2(n) {
    return Math.round(n * 100) / 100;
  }

  function paintSvg(host, scene) {
    var svg = svgEl('svg', {
      xmlns: SVG_NS,
      width: r2(scene.width),
      height: r2(scene.height),
      viewBox: '0 0 ' + r2(scene.width) + ' ' + r2(scene.height),
      role: 'img',
      'aria-label': scene.label,
      'font-family': FONT,
      // Scales down with a narrowing container instead of overflowing it.
      style: 'display:block;max-width:100%;height:auto;overflow:visible'
    }, scene.label);
    // currentColor: text and gridlines follow the host's CSS colour (dark mode included).
    var ink = 'currentColor';

    scene.items.forEach(function (it) {
      var node = null;
      switch (it.type) {
        case 'rect':
          node = svgEl('rect', { x: r2(it.x), y: r2(it.y), width: r2(Math.max(0, it.w)), height: r2(Math.max(0, it.h)), fill: it.fill || ink }, it.title);
          break;
        case 'line':
          node = svgEl('line', {
            x1: r2(it.x1), y1: r2(it.y1), x2: r2(it.x2), y2: r2(it.y2), stroke: it.stroke || ink,
            'stroke-width': it.width || 1, 'stroke-opacity': it.opacity, 'shape-rendering': 'crispEdges'
          });
          break;
        case 'polyline':
          node = svgEl('polyline', {
            points: it.points.map(function (p) { return r2(p[0]) + ',' + r2(p[1]); }).join(' '),
            fill: 'none', stroke: it.stroke || ink, 'stroke-width': it.width || 1,
            'stroke-linejoin': 'round', 'stroke-linecap': 'round',
            'stroke-dasharray': it.dash ? it.dash.join(' ') : null,
            // The hover columns sit underneath; let the pointer reach them through the lines.
            'pointer-events': 'none'
          });
          break;
        case 'circle':
          node = svgEl('circle', { cx: r2(it.cx), cy: r2(it.cy), r: it.r, fill: it.fill || ink, 'pointer-events': 'none' }, it.title);
          break;
        case 'slice':
          if (it.a1 - it.a0 >= Math.PI * 2 - 1e-6) {
            // An arc whose ends coincide draws nothing: a 100% slice is a plain circle.
            node = svgEl('circle', { cx: r2(it.cx), cy: r2(it.cy), r: r2(it.r), fill: it.fill }, it.title);
          } else {
            var x0 = it.cx + Math.cos(it.a0) * it.r;
            var y0 = it.cy + Math.sin(it.a0) * it.r;
            var x1 = it.cx + Math.cos(it.a1) * it.r;
            var y1 = it.cy + Math.sin(it.a1) * it.r;
            var large = it.a1 - it.a0 > Math.PI ? 1 : 0;
            node = svgEl('path', {
              d: 'M' + r2(it.cx) + ' ' + r2(it.cy) + 'L' + r2(x0) + ' ' + r2(y0) +
                'A' + r2(it.r) + ' ' + r2(it.r) + ' 0 ' + large + ' 1 ' + r2(x1) + ' ' + r2(y1) + 'Z',
              fill: it.fill,
              stroke: it.seam ? '#fff' : null,
              'stroke-width': it.seam ? 1 : null
            }, it.title);
          }
          break;
        case 'text':
          node = svgEl('text', {
            x: r2(it.x), y: r2(it.y),
            dy: '0.35em', // vertical centring that works everywhere, unlike dominant-baseline
            'text-anchor': it.align || 'start',
            'font-size': it.size,
            'font-weight': it.weight || null,
            fill: it.fill || ink,
            'fill-opacity': it.muted ? 0.7 : null,
            'pointer-events': 'none'
          });
          node.textContent = it.text;
          break;
        default:
          break;
      }
      if (node) svg.appendChild(node);
    });

    while (host.firstChild) host.removeChild(host.firstChild);
    host.appendChild(svg);
  }

  /* ----------------------------------------------------------------------------------------- */
  /* Chart                                                                                      */
  /* ----------------------------------------------------------------------------------------- */

  // Width available to the SVG: clientWidth includes the host's padding, which the SVG must not
  // cover (it would overflow the box by the padding).
  function contentWidth(el) {
    var w = el.clientWidth || 0;
    try {
      if (w && typeof getComputedStyle === 'function') {
        var cs = getComputedStyle(el);
        w -= (parseFloat(cs.paddingLeft) || 0) + (parseFloat(cs.paddingRight) || 0);
      }
    } catch (e) { /* no CSSOM: keep clientWidth */ }
    return Math.max(0, Math.floor(w));
  }

  function isCanvas(el) {
    return !!el && String(el.tagName || el.nodeName || '').toUpperCase() === 'CANVAS';
  }

  /**
   * One chart bound to one element. kind: 'pie' | 'bar' | 'line'.
   * update(rows) takes the raw API rows (e.g. data.geographic_breakdown) and redraws in place.
   */
  class Chart {
    constructor(el, config) {
      this.el = el;
      this.kind = config.kind;
      this.title = config.title;
      this.labelKey = config.labelKey || null;
      this.maxItems = config.maxItems || (config.kind === 'pie' ? 8 : 10);
      this.raw = [];
      this.model = null;
      this.renderer = isCanvas(el) ? 'canvas' : 'svg';
      this._size = null;
      this._pinned = false;
      this._observer = null;
      this._frame = null;
      this._observeResize();
    }

    update(rows) {
      this.raw = Array.isArray(rows) ? rows : [];
      this.model = this.kind === 'line' ? prepareTimeline(this.raw) : prepareRows(this.raw, this.labelKey, this.maxItems);
      this.draw();
      return this;
    }

    draw() {
      if (!this.model) return;
      var size = this._measure();
      var scene;
      if (this.kind === 'pie') scene = pieScene(this.model, size.w, size.h, this.title);
      else if (this.kind === 'bar') scene = barScene(this.model, size.w, size.h, this.title);
      else scene = lineScene(this.model, size.w, size.h, this.title);
      if (this.renderer === 'canvas') {
        var dpr = (typeof global.devicePixelRatio === 'number' && global.devicePixelRatio > 0) ? global.devicePixelRatio : 1;
        paintCanvas(this.el, scene, dpr);
      } else {
        paintSvg(this.el, scene);
      }
      this._size = size;
    }

    // Canvas: draw at its laid-out CSS size. SVG: the host's width, and a height that suits the
    // content (the host usually has no height of its own, it takes the SVG's).
    _measure() {
      var el = this.el;
      var rect = typeof el.getBoundingClientRect === 'function' ? el.getBoundingClientRect() : null;
      var rw = rect ? Math.round(rect.width) : 0;
      var rh = rect ? Math.round(rect.height) : 0;
      if (this.renderer === 'canvas') {
        if (!rw || !rh) {
          // Not laid out (display:none, detached): reuse the last size or the declared one; the
          // resize observer redraws once the canvas becomes visible.
          if (this._size) return this._size;
          return { w: parseInt(el.getAttribute && el.getAttribute('width'), 10) || 400, h: parseInt(el.getAttribute && el.getAttribute('height'), 10) || 300 };
        }
        if (!this._pinned) {
          this._pinned = true;
          // If no CSS sizes the canvas, its CSS size comes from its width/height attributes, which
          // we are about to multiply by devicePixelRatio; pin the current size inline so the
          // canvas does not grow on screen. A CSS-sized (fluid) canvas is left alone.
          var aw = parseInt(el.getAttribute && el.getAttribute('width'), 10) || 300;
          var ah = parseInt(el.getAttribute && el.getAttribute('height'), 10) || 150;
          if (el.style && !el.style.width && rw === aw) el.style.width = rw + 'px';
          if (el.style && !el.style.height && rh === ah) el.style.height = rh + 'px';
        }
        return { w: rw, h: rh };
      }
      var w = Math.min(1600, Math.max(240, contentWidth(el) || rw || 480));
      return { w: w, h: this._preferredHeight(w) };
    }

    _preferredHeight(w) {
      var m = this.model;
      if (!m || m.empty) return 180;
      if (this.kind === 'line') return 280;
      if (this.kind === 'bar') return 16 + m.rows.length * 28;
      if (w < 360) return Math.min(w, 220) + m.rows.length * 20 + 24;
      return Math.max(240, m.rows.length * 20 + 24);
    }

    // Redraw when the element's width changes (fluid layouts, sidebar toggles). Only real size
    // changes trigger a redraw, so writing the canvas backing store cannot loop.
    _observeResize() {
      if (typeof global.ResizeObserver !== 'function') return;
      var self = this;
      this._observer = new global.ResizeObserver(function () {
        if (!self.model || !self._size) return;
        var w = self.renderer === 'canvas' ? Math.round(self.el.getBoundingClientRect().width) : contentWidth(self.el);
        if (!w || Math.abs(Math.min(1600, Math.max(self.renderer === 'canvas' ? 0 : 240, w)) - self._size.w) < 1) return;
        if (self._frame !== null) return;
        var schedule = typeof global.requestAnimationFrame === 'function' ? global.requestAnimationFrame.bind(global) : function (f) { return setTimeout(f, 16); };
        self._frame = schedule(function () {
          self._frame = null;
          self.draw();
        });
      });
      this._observer.observe(this.el);
    }

    destroy() {
      if (this._observer) this._observer.disconnect();
      this._observer = null;
      if (this.renderer === 'svg') {
        while (this.el.firstChild) this.el.removeChild(this.el.firstChild);
      } else if (typeof this.el.getContext === 'function') {
        var ctx = this.el.getContext('2d');
        if (ctx) ctx.clearRect(0, 0, this.el.width, this.el.height);
      }
    }
  }

  /* ----------------------------------------------------------------------------------------- */
  /* Dashboard                                                                                  */
  /* ----------------------------------------------------------------------------------------- */

  // Extra breakdowns rendered as horizontal bars when their element exists.
  var BREAKDOWNS = [
    { id: 'browser-chart', key: 'browser_breakdown', labelKey: 'browser' },
    { id: 'os-chart', key: 'os_breakdown', labelKey: 'os' },
    { id: 'referrer-chart', key: 'referrer_breakdown', labelKey: 'referrer' }
  ];
  var LABEL_NAMES = { os: 'operating system', device_type: 'device type' };

  class AnalyticsDashboard {
    constructor(shareUuid, options = {}) {
      this.shareUuid = shareUuid;
      this.options = options || {};
      this.days = Number(this.options.days) > 0 ? Math.floor(Number(this.options.days)) : 30;
      this.apiBase = String(this.options.apiBase || '').replace(/\/+$/, '');
      this.token = this.options.token || null;
      this.refreshMs = this.options.refreshMs === undefined || this.options.refreshMs === null ? 30000 : Number(this.options.refreshMs);
      this.charts = {};
      this.data = null;
      this.lastError = null;
      this._timer = null;
      this._inFlight = null;
      this._lastRefresh = 0;
      this._onVisibility = null;
      this._destroyed = false;
      // The constructor cannot await; `ready` lets callers wait for the first render.
      this.ready = this.options.autoInit === false ? Promise.resolve(null) : this.init();
    }

    // Never rejects: it is started from the constructor, where nobody could catch it. Failures
    // go to #analytics-error and this.lastError.
    async init() {
      let data = null;
      try {
        data = await this.fetchAnalytics();
        if (!this._destroyed) {
          this.renderDashboard(data);
          this.clearError();
        }
      } catch (err) {
        this.showError(err);
      }
      this._lastRefresh = Date.now();
      // Polling starts even after a failed first load, so a transient outage heals by itself.
      if (!this._destroyed) this.setupRealTimeUpdates();
      return data;
    }

    async fetchAnalytics(days = this.days) {
      const url = `${this.apiBase}/api/v3/shares/${encodeURIComponent(this.shareUuid)}/analytics/?days=${encodeURIComponent(days)}`;
      const init = { method: 'GET', headers: { Accept: 'application/json' } };
      if (this.token) {
        // An explicit token is the only credential: no cookie, so the request means one thing.
        init.headers.Authorization = `Bearer ${this.token}`;
        init.credentials = 'omit';
      } else {
        init.credentials = 'same-origin'; // the signed-in session cookie authenticates
      }
      const response = await fetch(url, init);
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        const err = new Error((body && body.error) || `HTTP ${response.status}`);
        err.status = response.status;
        err.code = body && body.code;
        throw err;
      }
      if (!body || typeof body !== 'object') {
        const err = new Error('The analytics response was not valid JSON');
        err.status = response.status;
        err.code = 'invalid_response';
        throw err;
      }
      return body;
    }

    renderDashboard(data) {
      const d = normalise(data);
      this.data = d;
      this.renderSummaryCards(d.summary, d);
      this.renderGeographicChart(d.geographic_breakdown);
      this.renderDeviceChart(d.device_breakdown);
      this.renderTimelineChart(d.daily_breakdown);
      BREAKDOWNS.forEach((b) => this.renderBreakdownChart(b.id, d[b.key], b.labelKey));
    }

    // `full` is optional (the seed passes only the summary); the two averages live outside the
    // summary in the API response, so they are read from it when available.
    renderSummaryCards(summary, full) {
      const s = normalise({ summary: summary }).summary;
      const set = (id, text) => {
        const el = byId(id);
        if (el) el.textContent = text;
      };
      set('total-views', formatInt(s.total_views));
      set('total-downloads', formatInt(s.total_downloads));
      set('unique-visitors', formatInt(s.unique_visitors));
      set('conversion-rate', `${s.conversion_rate.toFixed(1)}%`);
      const extra = full ? normalise(full) : this.data;
      if (extra) {
        const t = extra.engagement.avg_time_on_page_seconds;
        const l = extra.performance.avg_load_ms;
        set('avg-time-on-page', t === null ? DASH : `${Math.round(t)} s`);
        set('avg-load', l === null ? DASH : `${Math.round(l)} ms`);
      }
    }

    renderGeographicChart(data) {
      return this._renderChart('geographic', 'geographic-chart', { kind: 'pie', labelKey: 'country', title: 'Views by country' }, data);
    }

    renderDeviceChart(data) {
      return this._renderChart('device', 'device-chart', { kind: 'pie', labelKey: 'device_type', title: 'Views by device type' }, data);
    }

    renderTimelineChart(data) {
      return this._renderChart('timeline', 'timeline-chart', { kind: 'line', title: 'Views and downloads per day' }, data);
    }

    // Horizontal bars for any [{<labelKey>, views}] list; the chart is stored under the id minus
    // its "-chart" suffix ("browser-chart" -> this.charts.browser).
    renderBreakdownChart(id, rows, labelKey) {
      const name = String(id).replace(/-chart$/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
      const what = LABEL_NAMES[labelKey] || String(labelKey).replace(/_/g, ' ');
      return this._renderChart(name, id, { kind: 'bar', labelKey: labelKey, title: `Views by ${what}` }, rows);
    }

    // Create-or-update: the render methods are idempotent, which is what lets updateCharts()
    // refresh in place. A chart whose element left the page (SPA navigation) is rebuilt on the
    // element now carrying the id; a missing element means "this page does not want it".
    _renderChart(name, id, config, rows) {
      const el = byId(id);
      let chart = this.charts[name];
      if (chart && chart.el !== el) {
        chart.destroy();
        delete this.charts[name];
        chart = null;
      }
      if (!el) return null;
      if (!chart) {
        chart = new Chart(el, config);
        this.charts[name] = chart;
      }
      return chart.update(rows);
    }

    updateCharts(data) {
      this.renderDashboard(data);
    }

    // One refresh cycle; never throws. Concurrent calls share the request in flight.
    refresh() {
      if (this._inFlight) return this._inFlight;
      this._inFlight = (async () => {
        try {
          const data = await this.fetchAnalytics();
          if (this._destroyed) return null;
          this.updateCharts(data);
          this.clearError();
          return data;
        } catch (err) {
          if (!this._destroyed) this.showError(err);
          return null;
        } finally {
          this._lastRefresh = Date.now();
          this._inFlight = null;
        }
      })();
      return this._inFlight;
    }

    setupRealTimeUpdates() {
      this._stopTimers();
      if (!(this.refreshMs > 0) || this._destroyed) return;
      // Background tabs skip their turn: no point polling for a page nobody sees.
      this._timer = setInterval(() => {
        if (hasDocument() && document.hidden) return;
        this.refresh();
      }, this.refreshMs);
      // …and catch up as soon as the tab is visible again if a refresh was missed meanwhile.
      if (hasDocument() && typeof document.addEventListener === 'function') {
        this._onVisibility = () => {
          if (!document.hidden && Date.now() - this._lastRefresh >= this.refreshMs) this.refresh();
        };
        document.addEventListener('visibilitychange', this._onVisibility);
      }
    }

    showError(err) {
      this.lastError = err;
      const el = byId('analytics-error');
      if (!el) return;
      let text = 'Could not load analytics';
      if (err && err.status === 401) text += ': please sign in again.';
      else if (err && err.message) text += `: ${err.message}`;
      el.setAttribute('role', 'alert');
      el.textContent = text;
      el.hidden = false;
    }

    clearError() {
      this.lastError = null;
      const el = byId('analytics-error');
      if (el && el.textContent) {
        el.textContent = '';
        el.hidden = true;
      }
    }

    _stopTimers() {
      if (this._timer !== null) clearInterval(this._timer);
      this._timer = null;
      if (this._onVisibility && hasDocument() && typeof document.removeEventListener === 'function') {
        document.removeEventListener('visibilitychange', this._onVisibility);
      }
      this._onVisibility = null;
    }

    // Stops polling and resize tracking; the last drawing stays on the page.
    destroy() {
      this._destroyed = true;
      this._stopTimers();
      Object.keys(this.charts).forEach((k) => {
        const c = this.charts[k];
        if (c && c._observer) {
          c._observer.disconnect();
          c._observer = null;
        }
      });
    }
  }

  // Exposed for pages that want a single chart or their own colours.
  AnalyticsDashboard.Chart = Chart;
  AnalyticsDashboard.PALETTE = PALETTE.slice();
  AnalyticsDashboard.colourFor = function (label) { return PALETTE[hashLabel(labelOf(label)) % PALETTE.length]; };

  global.AnalyticsDashboard = AnalyticsDashboard;
  if (typeof module !== 'undefined' && module.exports) module.exports = AnalyticsDashboard;
})(typeof window !== 'undefined' ? window : globalThis);
