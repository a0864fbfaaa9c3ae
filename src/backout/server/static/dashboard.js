// The run page, live: append the journal's new events to the timeline, and keep the
// status badge current, from the run's Server-Sent Events (the sign-in cookie
// authenticates the stream). Without this script the page is complete as of its load.
// The sections the server draws from the whole run (the summary, the trigger and its
// evidence, the charts, the steps, the checks, the explanation, the forms of a run that
// needs attention) are drawn again from the page itself, at most every REDRAW_MS while
// events come: one request for a burst of events, never one an event. A checkpoint's
// approve form goes once the deploy moves past it.
(function () {
  "use strict";
  var table = document.getElementById("timeline");
  if (!table || !window.EventSource || table.dataset.over === "1") { return; }
  var run = table.dataset.run;
  var body = table.tBodies[0];
  var badge = document.getElementById("run-status");
  var note = document.getElementById("live-note");
  var last = parseInt(table.dataset.lastSeq, 10) || 0;
  var base = "/api/v1/runs/" + encodeURIComponent(run);
  var MOVED_ON = ["checkpoint_passed", "backout_started", "run_finished"];
  var source = new EventSource(base + "/events?after=" + last);
  var over = false;
  var REDRAW_MS = 400;
  var SECTIONS = ["summary", "trigger", "charts", "steps", "checks", "explain", "attention"];
  var redrawing = null;
  var journal = document.getElementById("journal");

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function utc(at) {
    var d = new Date(at * 1000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) +
      " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  }
  function cell(row, text, code) {
    var td = row.insertCell(-1);
    var el = code ? td.appendChild(document.createElement("code")) : td;
    el.textContent = text;  // text, never markup
  }
  function sorted(data) {
    var out = {};
    Object.keys(data || {}).sort().forEach(function (k) { out[k] = data[k]; });
    return Object.keys(out).length ? JSON.stringify(out) : "";
  }
  function refresh() {
    fetch(base, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (report) {
        if (!report) { return; }
        badge.textContent = report.status;
        badge.className = "badge badge-" + report.status;
        var result = document.getElementById("run-result");  // the summary is redrawn
        if (result) { result.textContent = report.result || ""; }
        if (report.status === "succeeded" || report.status === "failed") {
          // the stream ends by itself once it has sent the run's last event: its end (an
          // error to the EventSource) closes it then, so no event on its way is dropped
          over = true;
          table.dataset.over = "1";
          if (note) { note.textContent = "The run is over."; }
        }
      });
  }
  function typing() {  // never redraw a form under someone's hands
    var active = document.activeElement;
    return active && active.form && document.getElementById("attention") &&
      document.getElementById("attention").contains(active);
  }
  function redraw() {
    redrawing = null;
    if (typing()) { later(); return; }
    fetch(location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var page = new DOMParser().parseFromString(html, "text/html");
        SECTIONS.forEach(function (id) {
          var fresh = page.getElementById(id);
          var shown = document.getElementById(id);
          if (fresh && shown) {
            shown.replaceWith(document.importNode(fresh, true));
          } else if (fresh && journal) {
            journal.parentNode.insertBefore(document.importNode(fresh, true), journal);
          } else if (shown && id === "attention") {
            shown.remove();  // resumed or abandoned meanwhile
          }
        });
      });
  }
  function later() {
    if (redrawing === null) { redrawing = setTimeout(redraw, REDRAW_MS); }
  }
  function add(message) {
    var event = JSON.parse(message.data);
    if (event.seq <= last) { return; }
    last = event.seq;
    table.dataset.lastSeq = String(last);
    var row = body.insertRow(-1);
    row.className = "event-row event-new";
    row.dataset.seq = String(event.seq);
    cell(row, String(event.seq));
    cell(row, utc(event.at));
    cell(row, event.kind);
    cell(row, event.step === null ? "" : event.step + (event.attempt ? " · attempt " + event.attempt : ""));
    cell(row, sorted(event.data), true);
    if (MOVED_ON.indexOf(event.kind) >= 0) {
      var checkpoint = document.getElementById("checkpoint");
      if (checkpoint) { checkpoint.hidden = true; }
    }
    refresh();
    later();
  }
  table.dataset.kinds.split(" ").forEach(function (kind) {
    source.addEventListener(kind, add);
  });
  source.addEventListener("message", add);
  source.onerror = function () { if (over) { source.close(); } };
  source.onopen = function () { if (note && !over) { note.textContent = "Live: new events appear as they are written."; } };
})();
