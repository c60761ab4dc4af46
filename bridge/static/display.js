// kitplay playground: the display of a running launch job, an ES module the page imports.
//
// A launch with display "xpra" runs its app in an Xpra session that the bridge serves on this
// origin under /display/<session>/ (Xpra's HTML5 client and its WebSocket): no other port, no
// password anywhere. A running job's record says where: job.result.display = {session, path};
// an ended job carries none.
//
// Interface:
//   displayOf(job) -> {session, path} | null
//     The display of a job record: a running job whose result has a display, else null.
//   openDisplay(display) -> Window | null
//     Opens the session full size in a new tab. The embedded view stays live beside it (Xpra
//     runs with sharing on: both clients see and drive the same windows).
//   new DisplayPanel({panel, frame, fullButton?, status?})
//     .show(job)    frames the job's display in `frame` and shows `panel`, or hides the panel
//                   (frame: about:blank) when the job has none; the same session is never
//                   reloaded by a call that changes nothing
//     .openFull()   openDisplay() of the shown session
//     .display      the shown {session, path}, or null
//     .state        "none" | "connecting" | "connected" | "closed", from the framed client
//     .onstate      optional callback (state, reason) whenever .state changes; `status`, an
//                   element, gets a short text for it as well
//
// Admission needs nothing from the page but its sign-in: the client page served at the path
// asks the bridge for a one-time WebSocket ticket itself, with the session token this page
// keeps in sessionStorage ("kitplay.session"). A same-origin iframe shares this page's
// sessionStorage, and a tab opened by window.open (without noopener) starts with a copy of
// it; a tab opened any other way is not signed in and says so. The framed client tells this
// page how it is with postMessage({kitplay: "display", state, reason}) (same origin only).

const PATH = /^\/display\/[A-Za-z0-9_-]{16}\/$/;

export function displayOf(job) {
  const d = job && job.status === "running" && job.result ? job.result.display : null;
  return d && typeof d === "object" && typeof d.path === "string" && PATH.test(d.path)
    ? { session: String(d.session), path: d.path } : null;
}

export function openDisplay(display) {
  if (!display || !PATH.test(display.path)) return null;
  // Not "noopener": the new tab's sessionStorage starts as a copy of this page's (the
  // session token); the client page drops window.opener once loaded.
  return window.open(display.path, "_blank");
}

const STATE_TEXT = {
  none: "", connecting: "connecting…", connected: "", closed: "display closed",
};

export class DisplayPanel {
  constructor({ panel, frame, fullButton = null, status = null }) {
    this.panel = panel;
    this.frame = frame;
    this.status = status;
    this.display = null;
    this.state = "none";
    this.onstate = null;
    if (fullButton) fullButton.addEventListener("click", () => this.openFull());
    window.addEventListener("message", (event) => {
      const msg = event.data;
      if (event.origin !== location.origin || event.source !== this.frame.contentWindow ||
          !msg || msg.kitplay !== "display") return;
      this._set(msg.state === "connected" ? "connected" : "closed", String(msg.reason || ""));
    });
  }

  show(job) {
    const d = displayOf(job);
    if ((d && d.path) === (this.display && this.display.path)) return; // the same session
    this.display = d;
    this.panel.hidden = !d;
    this.frame.src = d ? d.path : "about:blank";
    this._set(d ? "connecting" : "none", "");
  }

  openFull() {
    return openDisplay(this.display);
  }

  _set(state, reason) {
    if (state === this.state) return;
    this.state = state;
    if (this.status) this.status.textContent = STATE_TEXT[state] || "";
    if (this.onstate) this.onstate(state, reason);
  }
}
