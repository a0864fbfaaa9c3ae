// The runs list, live: the newest page follows every run's events (the global stream,
// /api/v1/events; the sign-in cookie authenticates it) and draws its list again from the
// server while events come: one request for a burst of events, at most every REDRAW_MS,
// so a new run appears and a running one's status, trigger and duration change without a
// reload. Without this script, or on an older page, the list is as of the page's load.
(function () {
  "use strict";
  var list = document.getElementById("runs-list");
  if (!list || list.dataset.live !== "1" || !window.EventSource) { return; }
  var REDRAW_MS = 500;
  var note = document.getElementById("live-note");
  var source = new EventSource("/api/v1/events");
  var waiting = null;

  function redraw() {
    waiting = null;
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("runs-list");
        var shown = document.getElementById("runs-list");
        if (fresh && shown) {
          shown.replaceWith(document.importNode(fresh, true));
          note = document.getElementById("live-note");
          if (note) { note.textContent = LIVE; }
        }
      });
  }
  function changed() {
    if (waiting === null) { waiting = setTimeout(redraw, REDRAW_MS); }
  }
  var LIVE = "Live: runs change here as their events are written.";
  list.dataset.kinds.split(" ").forEach(function (kind) { source.addEventListener(kind, changed); });
  source.addEventListener("message", changed);
  source.onopen = function () { if (note) { note.textContent = LIVE; } };
})();
