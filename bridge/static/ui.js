// Small DOM helpers shared by the panels: building elements, words for times, sizes and job
// states, the error banner, the activity line (what started, what it waits for, how it
// ended) and a confirmation dialog. No server calls here (api.js makes them).

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "hidden" || k === "disabled" || k === "checked" || k === "selected") {
      node[k] = !!v;
    } else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const TERMINAL = new Set(["succeeded", "failed", "cancelled", "interrupted"]);

export function badge(status) {
  return el("span", { class: `status ${status}` }, status);
}

export function jobApp(job) {
  const p = job.params || {};
  return p.app || (job.kind === "create" ? p.name : "") || "";
}

const KIND_WORDS = {
  create: "Create", build: "Build", launch: "Launch", test: "Test", package: "Package",
  modify: "Add layers", package_container: "Container",
};
export function kindWord(kind) { return KIND_WORDS[kind] || kind; }

export function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s) || s < 0) return "";
  if (s < 0.1) return `${Math.max(1, Math.round(s * 1000))} ms`; // not "0.0 s"
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

// "10:31:02" today, "Tue 10:31" this week, "2026-11-30 10:31" before.
export function fmtWhen(t) {
  if (!t) return "";
  const d = new Date(t * 1000);
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === now.toDateString()) return `${hm}:${pad(d.getSeconds())}`;
  if (now - d < 6 * 86400e3) return `${d.toLocaleDateString(undefined, { weekday: "short" })} ${hm}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
}

export function fullDate(t) {
  return t ? new Date(t * 1000).toLocaleString() : "";
}

export function jobDuration(job, now = Date.now() / 1000) {
  if (!job.started_at) return null;
  return (job.finished_at || now) - job.started_at;
}

// A job's state in words: what it waits for while it runs, how it ended.
export function jobWords(job) {
  const what = `${kindWord(job.kind)}${jobApp(job) ? " of " + jobApp(job) : ""}`;
  const took = fmtDuration(jobDuration(job));
  switch (job.status) {
    case "queued": return `${what}: queued, waiting for a free slot`;
    case "running": {
      const p = job.progress;
      if (p && p.steps) return `${what}: step ${p.step}/${p.steps}${p.message ? " (" + p.message + ")" : ""}`;
      if (job.kind === "launch") {
        const display = (job.params || {}).display;
        if (display === "xpra") {
          return hasDisplay(job) ? `${what}: running, its display is shown`
            : `${what}: starting, waiting for its Xpra display`;
        }
        return `${what}: running`;
      }
      return `${what}: running`;
    }
    case "succeeded": return `${what} succeeded${took ? " in " + took : ""}`;
    case "cancelled": return `${what} was stopped${took ? " after " + took : ""}`;
    case "interrupted": return `${what} was interrupted (the daemon stopped while it ran)`;
    case "failed": {
      const msg = job.error && job.error.message ? `: ${job.error.message}` : "";
      return `${what} failed${msg}. Open its log for the details.`;
    }
    default: return `${what}: ${job.status}`;
  }
}

export function hasDisplay(job) {
  const r = job && job.result;
  return !!(job && job.status === "running" && r &&
    ((r.display && typeof r.display === "object" && r.display.path) || r.url));
}

// ------------------------------------------------------------------------------- banner

export function showError(err, title = "") {
  const b = $("banner");
  const msg = err instanceof Error ? err.message : String(err);
  const hint = err && err.hint ? ` ${err.hint}` : "";
  $("banner-title").textContent = title ? `${title}:` : "";
  $("banner-body").textContent = msg + hint;
  b.hidden = false;
}

export function clearError() { $("banner").hidden = true; }

// ----------------------------------------------------------------------------- activity

// The status bar: one entry per long action, in words: started, waiting for what, ended how.
const entries = new Map();
let seq = 0;

export function activity(key, state, text) {
  const bar = $("statusbar");
  let entry = entries.get(key);
  if (!entry) {
    entry = { node: el("span", { class: "activity" }), seq: ++seq };
    entries.set(key, entry);
    bar.prepend(entry.node);
  }
  entry.node.className = `activity ${state}`;
  entry.node.textContent = text;
  entry.node.title = text;
  // Keep the last few; finished ones fade out after a while.
  const all = [...entries.entries()].sort((a, b) => b[1].seq - a[1].seq);
  for (const [k, e] of all.slice(4)) { e.node.remove(); entries.delete(k); }
  clearTimeout(entry.timer);
  if (state === "ok") {
    entry.timer = setTimeout(() => { entry.node.remove(); entries.delete(key); }, 20000);
  }
}

// ----------------------------------------------------------------------------- dialogs

// A modal confirmation: title, body nodes, the confirming button's label. Resolves true/false.
export function confirmDialog(title, body, confirmLabel, danger = true) {
  const dialog = $("confirm-dialog");
  return new Promise((resolve) => {
    const done = (value) => { dialog.close(); resolve(value); };
    put(dialog, 
      el("form", { method: "dialog", class: "dialog-body" },
        el("h2", { id: "confirm-title" }, title),
        el("div", { class: "dialog-content" }, body),
        el("div", { class: "dialog-actions" },
          el("button", { type: "button", class: "secondary", onclick: () => done(false) },
            "Cancel"),
          el("button", { type: "button", class: danger ? "danger" : "primary",
            id: "confirm-ok", onclick: () => done(true) }, confirmLabel))));
    dialog.onclose = () => resolve(false);
    dialog.showModal();
    dialog.querySelector(".secondary").focus();
  });
}

// A modal asking for one line of text. act(value) does the work: what it returns resolves
// the promise; what it throws is shown in the dialog, which stays open for another try.
// Resolves null when cancelled.
export function promptDialog(title, { label, hint = "", value = "", placeholder = "",
  actLabel, act }) {
  const dialog = $("confirm-dialog");
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result) => { settled = true; dialog.close(); resolve(result); };
    const input = el("input", { type: "text", id: "prompt-input", value, placeholder,
      spellcheck: "false", autocomplete: "off" });
    const error = el("p", { class: "form-error", id: "prompt-error", role: "alert", hidden: true });
    const ok = el("button", { type: "submit", class: "primary", id: "confirm-ok" }, actLabel);
    const submit = async (e) => {
      e.preventDefault();
      ok.disabled = true;
      error.hidden = true;
      try {
        finish(await act(input.value));
      } catch (err) {
        error.textContent = err.message || String(err);
        error.hidden = false;
        input.focus();
      } finally {
        ok.disabled = false;
      }
    };
    put(dialog,
      el("form", { class: "dialog-body", onsubmit: submit },
        el("h2", { id: "confirm-title" }, title),
        el("div", { class: "dialog-content" },
          el("label", {}, label, input, hint ? el("span", { class: "help" }, hint) : null),
          error),
        el("div", { class: "dialog-actions" },
          el("button", { type: "button", class: "secondary", onclick: () => finish(null) },
            "Cancel"),
          ok)));
    dialog.onclose = () => { if (!settled) resolve(null); };
    dialog.showModal();
    input.focus();
  });
}

// Split a command line into words: spaces separate, quotes group, backslash escapes.
export function splitArgs(text) {
  const out = [];
  let cur = "", quote = null, any = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < text.length) cur += text[++i];
      else cur += c;
    } else if (c === "'" || c === '"') { quote = c; any = true; }
    else if (c === "\\" && i + 1 < text.length) { cur += text[++i]; any = true; }
    else if (/\s/.test(c)) { if (cur || any) out.push(cur); cur = ""; any = false; }
    else { cur += c; any = true; }
  }
  if (quote) throw new Error(`unclosed ${quote} in the arguments`);
  if (cur || any) out.push(cur);
  return out;
}

// node.replaceChildren(...kids), leaving out null, undefined and false.
export function put(node, ...kids) {
  node.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
  return node;
}
