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
        fetch(location.pathname + location.search + (location.search ? "&" : "?") + "fragment=1", { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) { if (html !== null) runs.innerHTML = html; });
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
