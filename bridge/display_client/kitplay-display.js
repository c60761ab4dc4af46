// kitplay: added by kitplay-bridge to Xpra's HTML5 client (its index.html, right after
// js/Client.js), served under /display/<session>/. It admits the client to its session:
//
// - Xpra's client opens its WebSocket in XpraClient.open_protocol (js/Client.js) at
//   ws://host:port + this.path, where path is the page's own pathname (index.html,
//   init_client). A browser cannot put a header on a WebSocket, so before each connection
//   (the first and every reconnection) this script asks the bridge for a one-time ticket with
//   the page's session token and puts it in the path: /display/<session>/?ticket=...
// - The session token is the one the kitplay page keeps in sessionStorage ("kitplay.session"):
//   a same-origin iframe shares its page's sessionStorage, and a tab the page opens with
//   window.open starts with a copy. Nothing else is read, and nothing is written there.
// - Xpra's client would go to connect.html when its connection ends (a form that connects
//   anywhere; the bridge does not serve it): this script says why it ended instead, and
//   mends the client's reconnection (below).
//
// It tells the page that framed it (same origin only) how the display is, with
// postMessage({kitplay: "display", state: "connected" | "closed", reason}).
"use strict";

(() => {
  const TOKEN_KEY = "kitplay.session";
  const base = location.pathname.replace(/[^/]*$/, ""); // /display/<session>/

  function tell(state, reason) {
    if (window.parent !== window) {
      window.parent.postMessage({ kitplay: "display", state, reason }, location.origin);
    }
  }

  function say(text) {
    let box = document.getElementById("kitplay-closed");
    if (!box) {
      box = document.createElement("div");
      box.id = "kitplay-closed";
      box.setAttribute("role", "status");
      box.style.cssText = "position:fixed;inset:0;display:flex;align-items:center;" +
        "justify-content:center;padding:2em;background:#20232a;color:#eee;font:16px sans-serif;" +
        "text-align:center;z-index:100000";
      document.body.append(box);
    }
    box.textContent = text;
  }

  async function ticket() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      throw new Error("Not signed in: open this display from the kitplay playground " +
        "(kitplay open), beside its job's log.");
    }
    const resp = await fetch("/api/v1/stream-tickets", {
      method: "POST", cache: "no-store", body: "{}",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    });
    const body = await resp.json().catch(() => null);
    if (!resp.ok) {
      throw new Error(resp.status === 401
        ? "The playground's sign-in ended (the bridge restarted): run `kitplay open`."
        : (body && body.error && body.error.message) || `HTTP ${resp.status}`);
    }
    return body.ticket;
  }

  const openProtocol = XpraClient.prototype.open_protocol;
  XpraClient.prototype.open_protocol = function () {
    ticket().then((t) => {
      this.path = `${base}?ticket=${encodeURIComponent(t)}`;
      openProtocol.call(this);
    }, (err) => {
      this.reconnect = false;
      this.callback_close(err.message);
    });
  };

  const init = XpraClient.prototype.init;
  XpraClient.prototype.init = function (...args) {
    // index.html set its own callback_close (to connect.html) just before calling init.
    this.callback_close = (reason) => {
      say(`The display closed: ${reason || "the session ended"}.`);
      tell("closed", String(reason || ""));
    };
    return init.apply(this, args);
  };

  // Xpra 3.1.3's do_reconnect reads an undefined global `win` and throws (js/Client.js), so
  // the client neither reconnects nor reports the end when its connection drops. The same
  // steps without that line: it reconnects (with a new ticket), and after its last attempt
  // calls callback_close.
  XpraClient.prototype.do_reconnect = function () {
    this.reconnect_in_progress = true;
    const protocol = this.protocol;
    setTimeout(() => {
      try {
        this.close_windows();
        this.close_audio();
        this.clear_timers();
        this.init_state();
        if (protocol) {
          this.protocol = null;
          protocol.terminate();
        }
        this.emit_connection_lost();
        this.connect();
      } finally {
        this.reconnect_in_progress = false;
      }
    }, this.reconnect_delay);
  };

  const connected = XpraClient.prototype._process_hello;
  if (typeof connected === "function") {
    XpraClient.prototype._process_hello = function (...args) {
      tell("connected", "");
      return connected.apply(this, args);
    };
  }

  window.opener = null; // a full-size tab needs nothing of the page that opened it
})();
