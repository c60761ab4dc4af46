// kitplay playground: the display panel. A running launch job with an Xpra session shows
// its display (Xpra's own HTML5 client, framed) beside its log, with a button that opens it
// full size. app.js calls kitplayDisplay.show(job) whenever the followed job changes.
"use strict";

window.kitplayDisplay = (() => {
  const SESSION_URL = /^http:\/\/127\.0\.0\.1:\d+\/(\?|$)/; // sessions are loopback only
  let shown = null;

  function sessionOf(job) {
    const url = job && job.status === "running" && job.result ? job.result.url : null;
    return typeof url === "string" && SESSION_URL.test(url) ? url : null;
  }

  function show(job) {
    const url = sessionOf(job);
    if (url === shown) return; // the same session stays connected
    shown = url;
    const panel = document.getElementById("display-panel");
    panel.hidden = !url;
    document.getElementById("display-frame").src = url || "about:blank";
  }

  function openFull() {
    if (shown) window.open(shown, "_blank", "noopener");
  }

  document.getElementById("display-full").addEventListener("click", openFull);
  return { show, get url() { return shown; } };
})();
