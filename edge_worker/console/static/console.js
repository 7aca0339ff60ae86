// Live updates: the server says "change" over server-sent events; the page fetches its own
// live part again (?fragment=1) and swaps it in. EventSource reconnects by itself and sends
// the last change id it saw, so the server tells a reconnecting page at once when it missed
// something. No framework, no build step.
(function () {
  "use strict";
  var live = document.querySelector("[data-live]");
  var status = document.getElementById("live-status");
  if (!live || !window.EventSource) { return; }
  var busy = false, again = false, deferred = false;

  // Never replace a form someone is filling in: refresh once they leave it.
  function editing() {
    var active = document.activeElement;
    if (active && live.contains(active) && /^(TEXTAREA|INPUT|SELECT)$/.test(active.tagName)) {
      return true;
    }
    return Array.prototype.some.call(live.querySelectorAll("textarea"), function (t) {
      return t.value.trim() !== "";
    });
  }
  live.addEventListener("focusout", function () {
    window.setTimeout(function () {
      if (deferred && !editing()) { deferred = false; refresh(); }
    }, 0);
  });

  function fragmentUrl() {
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    return url.toString();
  }

  function refresh() {
    if (editing()) { deferred = true; return; }
    if (busy) { again = true; return; }
    busy = true;
    fetch(fragmentUrl(), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null) {
          live.innerHTML = html;
          live.dataset.refreshed = String(Date.now());
          document.dispatchEvent(new CustomEvent("console:refreshed"));
        }
      })
      .catch(function () { /* the next change retries */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  // The first event names the current change: the page was rendered from that change
  // unless something happened between the render and the stream's opening.
  var first = true;
  var source = new EventSource("/console/events");
  source.addEventListener("change", function (event) {
    if (first) {
      first = false;
      if (event.lastEventId === live.dataset.change) { return; }
    }
    refresh();
  });
  source.onopen = function () { if (status) { status.className = "live-status on"; } };
  source.onerror = function () { if (status) { status.className = "live-status off"; } };
})();
