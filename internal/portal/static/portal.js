// picoflow portal: live runs table and the interactive spectrum. No
// framework; htmx handles the search form.
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
        fetch(location.pathname + location.search + (location.search ? "&" : "?") + "fragment=1", { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) { if (html !== null) runs.innerHTML = html; });
      }, 250);
    });
  }

  // Interactive spectrum: log-scale plot of spectrum.csv with a readout.
  var canvas = document.getElementById("spectrum-canvas");
  if (canvas) {
    var readout = document.getElementById("spectrum-readout");
    fetch(canvas.dataset.src, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (text) {
      var e = [], c = [];
      text.split("\n").slice(1).forEach(function (line) {
        var p = line.split(",");
        if (p.length >= 2) { e.push(parseFloat(p[0])); c.push(parseFloat(p[1])); }
      });
      var last = 0;
      for (var i = 0; i < c.length; i++) if (c[i] > 0) last = i;
      var n = Math.min(c.length, Math.max(16, Math.ceil(last * 1.05)));
      var max = 1;
      for (i = 0; i < n; i++) max = Math.max(max, c[i]);
      function draw(hover) {
        var w = canvas.width = canvas.clientWidth * devicePixelRatio;
        var h = canvas.height = canvas.clientHeight * devicePixelRatio;
        var ctx = canvas.getContext("2d");
        ctx.clearRect(0, 0, w, h);
        ctx.strokeStyle = "#2f5fb3"; ctx.lineWidth = devicePixelRatio;
        ctx.beginPath();
        for (var i = 0; i < n; i++) {
          var x = i / (n - 1) * w;
          var y = h - Math.log10(Math.max(c[i], 0.5) / 0.5) / Math.log10(max / 0.5) * (h - 4);
          if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
        }
        ctx.stroke();
        if (hover !== undefined) {
          ctx.strokeStyle = "#b3261e";
          ctx.beginPath(); ctx.moveTo(hover / (n - 1) * w, 0); ctx.lineTo(hover / (n - 1) * w, h); ctx.stroke();
        }
      }
      draw();
      canvas.dataset.ready = "1";
      canvas.addEventListener("mousemove", function (ev) {
        var r = canvas.getBoundingClientRect();
        var i = Math.round((ev.clientX - r.left) / r.width * (n - 1));
        if (i < 0 || i >= n) return;
        draw(i);
        readout.textContent = e[i].toFixed(3) + " keV: " + c[i] + " counts";
      });
      window.addEventListener("resize", function () { draw(); });
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
