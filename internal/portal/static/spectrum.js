// picoflow spectrum viewer: an EDS spectrum (spectrum.csv: energy_keV,
// counts, model, background) on a calibrated energy axis with ticks, log or
// linear counts, the fitted model and background, K/L/M line markers of the
// identified elements and of any element typed in, zoom and pan (wheel,
// drag, buttons, keys), and a readout that follows the pointer, a finger or
// the arrow keys. No dependencies.
(function () {
  "use strict";
  var box = document.getElementById("spectrum-viewer");
  if (!box) return;
  var canvas = box.querySelector("canvas");
  var readout = box.querySelector(".readout");
  var dpr = window.devicePixelRatio || 1;
  var st = { e: [], c: [], model: [], bg: [], lines: {}, shown: [], typed: [], log: true, v0: 0, v1: 10, hover: -1, drag: null };
  var colours = ["#b3261e", "#1b7f3b", "#6a3fb5", "#c26a00", "#0b7285", "#a61e4d", "#5c940d", "#364fc7"];
  var M = { l: 62, r: 12, t: 58, b: 38 }; // margins (CSS px); the top holds the line labels

  function fetchText(u) { return fetch(u, { credentials: "same-origin" }).then(function (r) { if (!r.ok) throw new Error(u + ": " + r.status); return r.text(); }); }

  Promise.all([fetchText(canvas.dataset.src), fetchText(canvas.dataset.lines)]).then(function (res) {
    res[0].split("\n").slice(1).forEach(function (line) {
      var p = line.split(",");
      if (p.length < 2 || p[0] === "") return;
      st.e.push(parseFloat(p[0])); st.c.push(parseFloat(p[1]));
      st.model.push(p.length > 2 ? parseFloat(p[2]) : 0); st.bg.push(p.length > 3 ? parseFloat(p[3]) : 0);
    });
    st.lines = JSON.parse(res[1]);
    st.shown = (canvas.dataset.elements || "").split(",").filter(function (s) { return s && st.lines[s]; });
    st.hasModel = st.model.some(function (v) { return v > 0; });
    reset();
    canvas.dataset.ready = "1";
  }).catch(function (err) { readout.textContent = "spectrum not available: " + err.message; });

  // The default view holds the lines: a quarter beyond the highest line of a
  // shown element, at least 10 keV, never beyond the data.
  function reset() {
    var last = 0, hi = 0;
    for (var i = 0; i < st.c.length; i++) if (st.c[i] > 0) last = i;
    var top = st.e[last] || 10;
    st.shown.concat(st.typed).forEach(function (el) { (st.lines[el] || []).forEach(function (l) { if (l[2] >= 0.1 && l[1] <= top) hi = Math.max(hi, l[1]); }); });
    st.v0 = Math.max(0, st.e[0] || 0);
    st.v1 = Math.min((st.e[last] || 10) * 1.02, Math.max(10, hi * 1.25));
    draw();
  }

  function niceStep(span, n) {
    var raw = span / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = [1, 2, 5, 10].find(function (k) { return k * p >= raw; });
    return m * p;
  }

  function fmt(v) { return Math.abs(v) >= 1e4 ? v.toExponential(0).replace("e+", "e") : String(+v.toFixed(3)); }

  function draw() {
    var W = canvas.clientWidth, H = canvas.clientHeight;
    canvas.width = W * dpr; canvas.height = H * dpr;
    var g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    g.font = "11px system-ui, sans-serif";
    var pw = W - M.l - M.r, ph = H - M.t - M.b;
    var i0 = 0, i1 = st.e.length - 1;
    while (i0 < i1 && st.e[i0] < st.v0) i0++;
    while (i1 > i0 && st.e[i1] > st.v1) i1--;
    var ymax = 1;
    for (var i = i0; i <= i1; i++) ymax = Math.max(ymax, st.c[i], st.hasModel ? st.model[i] : 0);
    var y0 = st.log ? 0.5 : 0, y1 = st.log ? ymax * 2 : ymax * 1.08;
    var X = function (e) { return M.l + (e - st.v0) / (st.v1 - st.v0) * pw; };
    var Y = st.log ? function (c) { return M.t + ph - Math.log(Math.max(c, y0) / y0) / Math.log(y1 / y0) * ph; }
                   : function (c) { return M.t + ph - Math.max(c, 0) / y1 * ph; };
    st.X = X; st.i0 = i0; st.i1 = i1;
    // Axes, ticks and grid.
    g.strokeStyle = "#dde3ec"; g.fillStyle = "#5b6474"; g.lineWidth = 1;
    var step = niceStep(st.v1 - st.v0, Math.max(3, Math.floor(pw / 80)));
    g.textAlign = "center"; g.textBaseline = "top";
    for (var t = Math.ceil(st.v0 / step) * step; t <= st.v1 + 1e-9; t += step) {
      var x = X(t);
      g.beginPath(); g.moveTo(x, M.t); g.lineTo(x, M.t + ph); g.stroke();
      g.fillText(fmt(+t.toFixed(6)), x, M.t + ph + 4);
    }
    g.fillText("Energy (keV)", M.l + pw / 2, M.t + ph + 20);
    g.textAlign = "right"; g.textBaseline = "middle";
    var ticks = [];
    if (st.log) { for (var d = 1; d <= y1; d *= 10) ticks.push(d); }
    else { var ys = niceStep(y1, Math.max(2, Math.floor(ph / 40))); for (var v = 0; v <= y1; v += ys) ticks.push(v); }
    ticks.forEach(function (v) { var y = Y(v); g.beginPath(); g.moveTo(M.l, y); g.lineTo(M.l + pw, y); g.stroke(); g.fillText(fmt(v), M.l - 5, y); });
    g.save(); g.translate(12, M.t + ph / 2); g.rotate(-Math.PI / 2); g.textAlign = "center";
    g.fillText(st.log ? "Counts (log)" : "Counts", 0, 0); g.restore();
    g.strokeStyle = "#9aa5b5"; g.strokeRect(M.l, M.t, pw, ph);
    // Data, then the fitted model and background.
    g.save(); g.beginPath(); g.rect(M.l, M.t, pw, ph); g.clip();
    // gaps: channels at exactly 0 are outside the fit (model, background).
    function curve(arr, colour, width, dash, gaps) {
      g.strokeStyle = colour; g.lineWidth = width; g.setLineDash(dash || []);
      g.beginPath();
      var pen = false;
      for (var i = Math.max(0, i0 - 1); i <= Math.min(st.e.length - 1, i1 + 1); i++) {
        if (gaps && arr[i] === 0) { pen = false; continue; }
        var x = X(st.e[i]), y = Y(arr[i]);
        if (!pen) g.moveTo(x, y); else g.lineTo(x, y);
        pen = true;
      }
      g.stroke(); g.setLineDash([]);
    }
    curve(st.c, "#2f5fb3", 1.2);
    if (st.hasModel && box.querySelector(".show-model").checked) {
      curve(st.model, "#e8590c", 1.3, null, true);
      curve(st.bg, "#5f6670", 1.2, [5, 3], true);
    }
    g.restore();
    // Line markers, labels in rows so none overlaps another.
    var rows = [[], [], [], []], marks = [];
    st.shown.concat(st.typed).forEach(function (el, k) {
      (st.lines[el] || []).forEach(function (l) {
        if (l[2] < 0.05 || l[1] < st.v0 || l[1] > st.v1) return;
        marks.push({ el: el, name: l[0], e: l[1], w: l[2], colour: colours[k % colours.length] });
      });
    });
    marks.sort(function (a, b) { return b.w - a.w || a.e - b.e; });
    st.marks = marks;
    marks.forEach(function (m) {
      var x = X(m.e), label = m.el + " " + m.name, tw = g.measureText(label).width + 6;
      g.strokeStyle = m.colour; g.globalAlpha = m.w >= 0.5 ? 0.9 : 0.4; g.setLineDash([3, 2]);
      g.beginPath(); g.moveTo(x, M.t); g.lineTo(x, M.t + ph); g.stroke(); g.setLineDash([]); g.globalAlpha = 1;
      // Weak lines are drawn but labelled only when zoomed in near them.
      if (m.w < 0.15 && st.v1 - st.v0 > 3) return;
      for (var r = 0; r < rows.length; r++) {
        var free = rows[r].every(function (s) { return x + tw / 2 < s[0] || x - tw / 2 > s[1]; });
        if (free) {
          rows[r].push([x - tw / 2, x + tw / 2]);
          g.fillStyle = m.colour; g.textAlign = "center"; g.textBaseline = "bottom";
          g.fillText(label, x, M.t - 2 - r * 13);
          break;
        }
      }
    });
    // The readout's cursor.
    if (st.hover >= 0) {
      var hx = X(st.e[st.hover]);
      g.strokeStyle = "#212529"; g.lineWidth = 1;
      g.beginPath(); g.moveTo(hx, M.t); g.lineTo(hx, M.t + ph); g.stroke();
    }
    canvas.dataset.view = st.v0.toFixed(3) + "-" + st.v1.toFixed(3);
    canvas.dataset.scale = st.log ? "log" : "linear";
    canvas.dataset.elements = st.shown.concat(st.typed).join(",");
  }

  function showReadout(i) {
    if (i < 0 || i >= st.e.length) return;
    st.hover = i;
    var txt = st.e[i].toFixed(3) + " keV: " + st.c[i] + " counts";
    if (st.hasModel) txt += " · model " + st.model[i].toFixed(1) + " · background " + st.bg[i].toFixed(1);
    var near = (st.marks || []).filter(function (m) { return Math.abs(m.e - st.e[i]) < 0.08; }).map(function (m) { return m.el + " " + m.name + " " + m.e.toFixed(3); });
    if (near.length) txt += " · " + near.join(", ");
    readout.textContent = txt;
    draw();
  }

  function channelAt(clientX) {
    var r = canvas.getBoundingClientRect();
    var e = st.v0 + (clientX - r.left - M.l) / (r.width - M.l - M.r) * (st.v1 - st.v0);
    var best = -1, d = Infinity;
    for (var i = st.i0; i <= st.i1; i++) { var dd = Math.abs(st.e[i] - e); if (dd < d) { d = dd; best = i; } }
    return best;
  }

  function zoom(f, at) {
    var span = (st.v1 - st.v0) * f;
    if (span < 0.05 || !isFinite(span)) return;
    if (at === undefined) at = (st.v0 + st.v1) / 2;
    var lo = st.e[0] || 0, hi = st.e[st.e.length - 1] || 40;
    var a = at - (at - st.v0) * f;
    st.v0 = Math.max(lo, a); st.v1 = Math.min(hi, st.v0 + span);
    draw();
  }

  function pan(frac) {
    var span = st.v1 - st.v0, d = span * frac;
    var lo = st.e[0] || 0, hi = st.e[st.e.length - 1] || 40;
    st.v0 = Math.min(Math.max(lo, st.v0 + d), hi - span); st.v1 = st.v0 + span;
    draw();
  }

  canvas.addEventListener("pointermove", function (ev) {
    if (st.drag) {
      var r = canvas.getBoundingClientRect();
      var de = (ev.clientX - st.drag.x) / (r.width - M.l - M.r) * (st.drag.v1 - st.drag.v0);
      var span = st.drag.v1 - st.drag.v0, lo = st.e[0] || 0, hi = st.e[st.e.length - 1] || 40;
      st.v0 = Math.min(Math.max(lo, st.drag.v0 - de), hi - span); st.v1 = st.v0 + span;
      if (Math.abs(ev.clientX - st.drag.x) > 3) st.drag.moved = true;
    }
    showReadout(channelAt(ev.clientX));
  });
  canvas.addEventListener("pointerdown", function (ev) {
    canvas.setPointerCapture(ev.pointerId);
    st.drag = { x: ev.clientX, v0: st.v0, v1: st.v1 };
    showReadout(channelAt(ev.clientX));
  });
  canvas.addEventListener("pointerup", function () { st.drag = null; });
  canvas.addEventListener("pointercancel", function () { st.drag = null; });
  canvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var i = channelAt(ev.clientX);
    zoom(ev.deltaY > 0 ? 1.25 : 0.8, i >= 0 ? st.e[i] : undefined);
  }, { passive: false });
  canvas.addEventListener("dblclick", reset);
  canvas.addEventListener("keydown", function (ev) {
    var k = ev.key, i = st.hover >= 0 ? st.hover : st.i0;
    if (k === "ArrowRight" || k === "ArrowLeft") {
      var d = k === "ArrowRight" ? 1 : -1;
      if (ev.shiftKey) pan(d * 0.1); else showReadout(Math.min(st.e.length - 1, Math.max(0, i + d)));
    } else if (k === "+" || k === "=") zoom(0.8, st.hover >= 0 ? st.e[st.hover] : undefined);
    else if (k === "-") zoom(1.25, st.hover >= 0 ? st.e[st.hover] : undefined);
    else if (k === "0") reset();
    else if (k === "l") { st.log = !st.log; draw(); }
    else return;
    ev.preventDefault();
  });
  box.querySelector(".scale").addEventListener("click", function (ev) {
    st.log = !st.log; ev.target.textContent = st.log ? "linear counts" : "log counts"; draw();
  });
  box.querySelector(".zoom-in").addEventListener("click", function () { zoom(0.8); });
  box.querySelector(".zoom-out").addEventListener("click", function () { zoom(1.25); });
  box.querySelector(".reset").addEventListener("click", reset);
  box.querySelector(".show-model").addEventListener("change", draw);
  box.querySelector("form.add-element").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var input = ev.target.querySelector("input");
    var s = input.value.trim();
    s = s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();
    if (!st.lines[s]) { readout.textContent = "no X-ray lines known for “" + input.value + "”"; return; }
    if (st.shown.indexOf(s) < 0 && st.typed.indexOf(s) < 0) st.typed.push(s);
    input.value = "";
    draw();
  });
  window.addEventListener("resize", draw);
})();
