// picoflow portal: the live runs table and movie frame stepping (the
// spectrum viewer is spectrum.js). No framework; htmx handles the search form.
(function () {
  "use strict";

  // Runs dashboard: refresh the table when the server reports a change.
  var runs = document.getElementById("runs-body");
  if (runs && window.EventSource) {
    var pending = null;
    var es = new EventSource("/runs/events");
    var live = document.getElementById("live");
    es.onopen = function () { if (live) live.textContent = "live"; };
    es.onerror = function () { if (live) live.textContent = "reconnecting…"; };
    es.addEventListener("run", function () {
      if (pending) return;
      pending = setTimeout(function () {
        pending = null;
        fetch(location.pathname + location.search, { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) {
            if (html === null) return;
            // The rows and the totals, from the page as it is now.
            var doc = new DOMParser().parseFromString(html, "text/html");
            ["runs-body", "run-totals"].forEach(function (id) {
              var fresh = doc.getElementById(id), here = document.getElementById(id);
              if (fresh && here) here.innerHTML = fresh.innerHTML;
            });
          });
      }, 250);
    });
  }
})();

// Movies: step frame by frame (buttons, or , and . keys on a focused
// video) with a readout of the time and frame number.
(function () {
  "use strict";
  document.querySelectorAll("video[data-frames]").forEach(function (v) {
    var box = v.nextElementSibling;
    if (!box || !box.classList.contains("frame-controls")) return;
    var n = parseInt(v.dataset.frames, 10) || 0;
    var out = box.querySelector(".frame-readout");
    var period = function () { return n > 0 && v.duration > 0 ? v.duration / n : 0.1; };
    var frame = function () { return Math.min(n - 1, Math.max(0, Math.floor(v.currentTime / period() + 1e-6))); };
    var show = function () {
      var f = frame(), dt = parseFloat(v.dataset.frameTime) || 0;
      out.textContent = (dt > 0 ? "t = " + (f * dt).toFixed(2) + " s · " : "") + "frame " + (f + 1) + " / " + n;
    };
    var step = function (d) {
      v.pause();
      var f = Math.min(n - 1, Math.max(0, frame() + d));
      v.currentTime = (f + 0.5) * period();
    };
    box.querySelectorAll("button[data-step]").forEach(function (b) {
      b.addEventListener("click", function () { step(parseInt(b.dataset.step, 10)); });
    });
    v.addEventListener("keydown", function (ev) {
      if (ev.key === ",") { step(-1); ev.preventDefault(); }
      if (ev.key === ".") { step(1); ev.preventDefault(); }
    });
    ["timeupdate", "seeked", "loadedmetadata"].forEach(function (e) { v.addEventListener(e, show); });
    show();
  });
})();

// Movies: the longest particle tracks from tracks.csv, in calibrated units,
// with their diameters and growth, and the events (merges, nucleations,
// dissolutions) from events.csv.
(function () {
  "use strict";
  var box = document.getElementById("particles");
  if (!box) return;
  var px = parseFloat(box.dataset.pixel) || 0, unit = px > 0 ? box.dataset.units : "px", dt = parseFloat(box.dataset.frameTime) || 0;
  if (px <= 0) px = 1;
  var median = function (v) { var s = v.slice().sort(function (a, b) { return a - b; }); return s.length ? s[Math.floor(s.length / 2)] : 0; };
  var when = function (f) { return dt > 0 ? (f * dt).toFixed(2) + " s" : "frame " + (f + 1); };
  // addRow appends a table row of values; num(i) says which are numbers.
  var addRow = function (body, values, num) {
    var tr = document.createElement("tr");
    values.forEach(function (v, i) {
      var td = document.createElement("td"); td.textContent = v; if (num(i)) td.className = "num"; tr.appendChild(td);
    });
    body.appendChild(tr);
  };
  fetch(box.dataset.src, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (text) {
    var lines = text.split("\n");
    var head = lines[0].split(","), col = head.indexOf("diameter_px");
    var tracks = {};
    lines.slice(1).forEach(function (line) {
      var p = line.split(",");
      if (p.length < 6) return;
      var id = p[0], f = +p[1];
      var t = tracks[id] || (tracks[id] = { id: id, first: f, last: f, x0: +p[2], y0: +p[3], x1: +p[2], y1: +p[3], d: [] });
      if (f < t.first) { t.first = f; t.x0 = +p[2]; t.y0 = +p[3]; }
      if (f >= t.last) { t.last = f; t.x1 = +p[2]; t.y1 = +p[3]; }
      t.d.push(col >= 0 ? +p[col] : (+p[4] + +p[5]) / 2);
    });
    var list = Object.keys(tracks).map(function (k) { return tracks[k]; }).filter(function (t) { return t.id !== "-1"; });
    list.sort(function (a, b) { return (b.last - b.first) - (a.last - a.first); });
    var med = median(list.map(function (t) { return median(t.d) * px; }));
    box.querySelector(".summary").textContent = list.length + " tracks; median diameter " + med.toFixed(1) + " " + unit + "; the " + Math.min(15, list.length) + " longest:";
    var body = box.querySelector("tbody");
    list.slice(0, 15).forEach(function (t) {
      var dur = dt > 0 ? ((t.last - t.first) * dt).toFixed(2) + " s" : (t.last - t.first) + " frames";
      var k = Math.max(1, Math.floor(t.d.length / 5));
      var growth = median(t.d.slice(-k)) / Math.max(median(t.d.slice(0, k)), 1e-9) - 1;
      addRow(body, [t.id, (t.first + 1) + "–" + (t.last + 1), dur, (median(t.d) * px).toFixed(1) + " " + unit,
       (growth >= 0 ? "+" : "") + (100 * growth).toFixed(0) + " %",
       (Math.hypot(t.x1 - t.x0, t.y1 - t.y0) * px).toFixed(1) + " " + unit], function (i) { return i !== 1; });
    });
    box.dataset.ready = "1";
  });
  if (!box.dataset.events) return;
  fetch(box.dataset.events, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (text) {
    var rows = text.split("\n").slice(1).filter(function (l) { return l.split(",").length >= 7; });
    var table = box.querySelector("table.events"), body = table.querySelector("tbody");
    var counts = {};
    rows.forEach(function (l) { var t = l.split(",")[0]; counts[t] = (counts[t] || 0) + 1; });
    var title = box.querySelector(".events-title");
    title.textContent = "Events: " + (counts.merge || 0) + " merges, " + (counts.nucleation || 0) + " nucleations, " + (counts.dissolution || 0) + " dissolutions" + (rows.length > 30 ? " (the first 30)" : "");
    title.hidden = false;
    if (!rows.length) return;
    rows.slice(0, 30).forEach(function (l) {
      var p = l.split(",");
      var tracks = p[0] === "merge" ? p[4] + " into " + p[3] : p[0] === "nucleation" ? p[3] : p[4];
      addRow(body, [p[0], when(+p[1]), tracks, (+p[5]).toFixed(1) + ", " + (+p[6]).toFixed(1) + " " + unit], function (i) { return i > 0; });
    });
    table.hidden = false;
  });
})();

// "back to the search" goes back in history when the search led here.
(function () {
  "use strict";
  document.querySelectorAll("a.back").forEach(function (a) {
    a.addEventListener("click", function (ev) {
      if (document.referrer && new URL(document.referrer).origin === location.origin && history.length > 1) {
        ev.preventDefault();
        history.back();
      }
    });
  });
})();

// A table wider than its panel (on a phone) scrolls: make it reachable by
// keyboard, with a name, so it can be scrolled without a pointer.
(function () {
  "use strict";
  function mark() {
    document.querySelectorAll("main table").forEach(function (t) {
      if (t.scrollWidth > t.clientWidth + 1) {
        t.setAttribute("tabindex", "0");
        if (!t.hasAttribute("aria-label")) t.setAttribute("aria-label", "table (scrolls sideways)");
      } else if (t.getAttribute("tabindex") === "0") {
        t.removeAttribute("tabindex");
      }
    });
  }
  mark();
  window.addEventListener("resize", mark);
  new MutationObserver(mark).observe(document.querySelector("main") || document.body, { childList: true, subtree: true });
})();

// Running runs: their runtime counts on between updates.
(function () {
  "use strict";
  setInterval(function () {
    document.querySelectorAll("#runs-body td[data-created]").forEach(function (td) {
      var s = (Date.now() - parseInt(td.dataset.created, 10)) / 1000;
      td.textContent = s >= 10 ? s.toFixed(1) + " s" : s.toFixed(2) + " s";
    });
  }, 1000);
})();

// The file's raw metadata as a tree, built level by level as it is opened
// (a Velox file holds thousands of keys); values are text, never markup.
(function () {
  "use strict";
  var box = document.getElementById("raw-metadata");
  if (!box) return;
  function node(key, value) {
    if (value !== null && typeof value === "object") {
      var d = document.createElement("details");
      var s = document.createElement("summary");
      var n = Array.isArray(value) ? value.length : Object.keys(value).length;
      s.textContent = key + " (" + n + ")";
      d.appendChild(s);
      d.addEventListener("toggle", function () {
        if (!d.open || d.dataset.filled) return;
        d.dataset.filled = "1";
        Object.keys(value).forEach(function (k) { d.appendChild(node(k, value[k])); });
      });
      return d;
    }
    var div = document.createElement("div");
    div.className = "leaf";
    var k = document.createElement("span"); k.className = "k"; k.textContent = key + ": ";
    var v = document.createElement("span"); v.textContent = String(value);
    div.appendChild(k); div.appendChild(v);
    return div;
  }
  box.addEventListener("toggle", function () {
    if (!box.open || box.dataset.filled) return;
    box.dataset.filled = "1";
    fetch(box.dataset.src, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (e) {
      var raw = (e.record && e.record.rawMetadata) || {};
      var tree = box.querySelector(".tree");
      Object.keys(raw).forEach(function (k) { tree.appendChild(node(k, raw[k])); });
      box.dataset.ready = "1";
    });
  });
})();
