// kitplay playground: plain JS, no build step. Talks to the bridge's REST routes and its
// WebSocket stream. No cookie: the page URL's #code= (one-time) is traded for a session token
// kept in sessionStorage and sent as `Authorization: Bearer`; each WebSocket opens with a
// one-time ticket. An ES module: display.js shows a running job's display.
"use strict";

import { DisplayPanel, displayOf, openDisplay } from "./display.js";

const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "interrupted"]);
const LOG_KEEP_CHARS = 2 * 1024 * 1024; // the view keeps the tail; offsets keep counting

// ---------------------------------------------------------------------------------- REST

class ApiError extends Error {
  constructor(status, error) {
    super(error && error.message ? error.message : `HTTP ${status}`);
    this.status = status;
    this.error = error;
  }
}

const SESSION_KEY = "kitplay.session";

function signInHelp() {
  return "Not signed in (or the bridge restarted): open the URL that kitplay-bridge printed, " +
    "or run `kitplay open` for a new one.";
}

// Trade the one-time login code in the address bar for a session; take the code off the URL.
async function signIn() {
  const m = /(?:^#|&)code=([^&]*)/.exec(location.hash);
  if (m) {
    history.replaceState(null, "", location.pathname + location.search);
    // The bridge never registers a service worker: one controlling this page was put here by
    // someone else, and would see the sign-in. Never hand it the code.
    if (navigator.serviceWorker && navigator.serviceWorker.controller) {
      throw new Error("Not signing in: a service worker that is not kitplay's controls this " +
        "page. Close this tab and run `kitplay open --browser` for a fresh address.");
    }
    const resp = await fetch("/api/v1/login", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: decodeURIComponent(m[1]) }),
    });
    const body = await resp.json().catch(() => null);
    if (resp.ok) sessionStorage.setItem(SESSION_KEY, body.session);
    else if (!sessionStorage.getItem(SESSION_KEY)) {
      throw new ApiError(resp.status, body && body.error);
    }
  }
  if (!sessionStorage.getItem(SESSION_KEY)) throw new Error(signInHelp());
}

async function api(verb, path, params) {
  const init = {
    method: verb,
    headers: { Authorization: `Bearer ${sessionStorage.getItem(SESSION_KEY) || ""}` },
  };
  let url = "/api/v1" + path;
  if (verb === "GET" && params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.append(k, v);
    url += "?" + q;
  } else if (verb !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(params || {});
  }
  const resp = await fetch(url, init);
  const body = await resp.json().catch(() => null);
  if (resp.status === 401) throw new ApiError(401, { message: signInHelp() });
  if (!resp.ok) throw new ApiError(resp.status, body && body.error);
  return body;
}

function showError(err) {
  const b = $("banner");
  b.textContent = err instanceof Error ? err.message : String(err);
  b.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { b.hidden = true; }, 8000);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c));
  return node;
}

// ---------------------------------------------------------------------------- daemon status

async function refreshStatus() {
  try {
    const s = await api("GET", "/daemon/status");
    const counts = Object.entries(s.jobs || {}).map(([k, v]) => `${v} ${k}`).join(", ");
    $("daemon").textContent = `kitplayd ${s.version} · API v${s.api_version} · ` +
      `${s.toolchain && s.toolchain.kind ? s.toolchain.kind : "no toolchain"} workspace ` +
      `${s.workspace}${counts ? " · " + counts : ""}`;
    $("daemon").className = "daemon ok";
  } catch (err) {
    $("daemon").textContent = err.status === 401
      ? "not signed in: open the URL kitplay-bridge printed"
      : `daemon unreachable: ${err.message}`;
    $("daemon").className = "daemon bad";
  }
}

// ------------------------------------------------------------------------- templates, apps

async function refreshTemplates() {
  const { templates } = await api("GET", "/templates/list");
  const list = $("templates");
  const select = $("create-template");
  list.replaceChildren();
  select.replaceChildren();
  for (const t of templates) {
    list.append(el("li", {},
      el("strong", {}, t.display_name), " ", el("code", {}, t.name),
      el("div", { class: "muted" }, t.description)));
    select.append(el("option", { value: t.name }, `${t.display_name} (${t.name})`));
  }
}

async function refreshApps() {
  const { apps } = await api("GET", "/apps/list");
  const body = $("apps");
  body.replaceChildren();
  if (!apps.length) {
    body.append(el("tr", {}, el("td", { colspan: 3, class: "muted" }, "No apps yet: create one.")));
  }
  for (const a of apps) {
    body.append(el("tr", { "data-app": a.name },
      el("td", {}, el("strong", {}, a.display_name || a.name), el("br"),
        el("code", {}, a.name)),
      el("td", {}, a.built ? "yes" : "no"),
      el("td", { class: "actions" },
        el("button", { class: "build", onclick: () => startJob("build", { app: a.name }) },
          "Build"),
        el("button", {
          class: "launch",
          onclick: () => startJob("launch", { app: a.name, display: $("display").value }),
        }, "Launch"))));
  }
}

async function createApp(event) {
  event.preventDefault();
  const params = { template: $("create-template").value, name: $("create-name").value.trim() };
  const dn = $("create-display-name").value.trim();
  const ver = $("create-version").value.trim();
  if (dn) params.display_name = dn;
  if (ver) params.version = ver;
  try {
    const { job } = await api("POST", "/templates/create", params);
    follow(job.id);
    await refreshJobs();
  } catch (err) { showError(err); }
}

async function startJob(kind, params) {
  try {
    const { job } = await api("POST", kind === "build" ? "/build" : "/launch", params);
    follow(job.id);
    await refreshJobs();
  } catch (err) { showError(err); }
}

async function cancelJob(id) {
  try {
    await api("DELETE", `/jobs/${encodeURIComponent(id)}`);
    await refreshJobs();
  } catch (err) { showError(err); }
}

// -------------------------------------------------------------------------------- jobs

const jobs = new Map();
let jobsLoaded = false;

function target(job) {
  const p = job.params || {};
  return p.app || p.name || (job.kind === "build" ? "(workspace)" : "");
}

const kitplayDisplay = new DisplayPanel({
  panel: $("display-panel"), frame: $("display-frame"), fullButton: $("display-full"),
});

function displayLink(job) {
  const d = displayOf(job);
  return d ? el("a", { href: d.path, class: "session",
    onclick: (e) => { e.preventDefault(); openDisplay(d); } }, "Open display") : "";
}

function badge(status) {
  return el("span", { class: `status ${status}` }, status);
}

async function refreshJobs() {
  let list;
  try {
    ({ jobs: list } = await api("GET", "/jobs", { limit: 30 }));
  } catch (err) { return; } // the status line says why
  // A create or build that ended since the last look changes the apps list.
  let appsChanged = false;
  for (const j of list) {
    const old = jobs.get(j.id);
    const ended = TERMINAL.has(j.status) && (old ? !TERMINAL.has(old.status) : jobsLoaded);
    if (ended && j.kind !== "launch") appsChanged = true;
    jobs.set(j.id, j);
  }
  jobsLoaded = true;
  renderJobs(list);
  if (stream.jobId && jobs.has(stream.jobId)) renderLogHeader(jobs.get(stream.jobId));
  if (appsChanged) refreshApps().catch(showError);
}

function renderJobs(list) {
  const body = $("jobs");
  body.replaceChildren();
  for (const j of list) {
    const started = j.started_at ? new Date(j.started_at * 1000).toLocaleTimeString() : "";
    const row = el("tr", { "data-job": j.id, class: j.id === stream.jobId ? "selected" : "" },
      el("td", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); follow(j.id); } },
        el("code", {}, j.id))),
      el("td", {}, j.kind),
      el("td", {}, target(j)),
      el("td", {}, badge(j.status)),
      el("td", {}, started),
      el("td", { class: "actions" },
        displayLink(j),
        TERMINAL.has(j.status) ? "" :
          el("button", { class: "cancel", onclick: () => cancelJob(j.id) }, "Cancel")));
    body.append(row);
  }
}

// ------------------------------------------------------------------------------ live log

// The log view follows one job through the WebSocket. It remembers next_offset, so after a
// dropped connection it reconnects from there: nothing lost, nothing shown twice.
const stream = {
  jobId: null, ws: null, nextOffset: 0, ended: false, retry: 0, timer: null, connects: 0,
};

function follow(jobId) {
  if (stream.ws) { stream.ws.onclose = null; stream.ws.close(); }
  clearTimeout(stream.timer);
  Object.assign(stream, { jobId, ws: null, nextOffset: 0, ended: false, retry: 0, connects: 0 });
  $("log").replaceChildren();
  $("log-title").textContent = jobId;
  $("log-status").replaceChildren();
  for (const tr of $("jobs").querySelectorAll("tr")) {
    tr.classList.toggle("selected", tr.dataset.job === jobId);
  }
  if (jobs.has(jobId)) renderLogHeader(jobs.get(jobId));
  else kitplayDisplay.show(null);
  connect();
}

function renderLogHeader(job) {
  kitplayDisplay.show(job); // display.js: the session beside the log
  const status = $("log-status");
  status.replaceChildren(badge(job.status));
  const link = displayLink(job);
  if (link) status.append(" ", link);
}

async function connect() {
  const jobId = stream.jobId;
  let ticket;
  try {
    ticket = (await api("POST", "/stream-tickets")).ticket;
  } catch (err) {
    if (stream.jobId !== jobId || stream.ws) return;
    if (err instanceof ApiError && err.status === 401) {
      // The bridge restarted and this page's session ended with it: retrying cannot help.
      $("log-conn").textContent = signInHelp();
      $("log-conn").className = "conn retry";
      return;
    }
    retryLater(jobId, err instanceof ApiError ? err.message : "the bridge is unreachable");
    return;
  }
  if (stream.jobId !== jobId || stream.ws) return;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${proto}//${location.host}/api/v1/stream/${encodeURIComponent(jobId)}` +
    `?offset=${stream.nextOffset}&ticket=${encodeURIComponent(ticket)}`;
  const ws = new WebSocket(url);
  stream.ws = ws;
  stream.connects += 1;
  ws.onopen = () => {  // not before: while the daemon is away the upgrade is refused
    if (stream.ws !== ws) return;
    $("log-conn").textContent = "live";
    $("log-conn").className = "conn live";
  };
  ws.onmessage = (event) => {
    if (stream.ws !== ws) return;
    const msg = JSON.parse(event.data);
    if (msg.type === "output") {
      if (msg.offset !== stream.nextOffset) return; // never happens: offsets are contiguous
      appendLog(msg.data);
      stream.nextOffset = msg.next_offset;
      stream.retry = 0;
    } else if (msg.type === "state" || msg.type === "end") {
      jobs.set(msg.job.id, msg.job);
      renderLogHeader(msg.job);
      const row = $("jobs").querySelector(`tr[data-job="${CSS.escape(msg.job.id)}"]`);
      if (row) row.children[3].replaceChildren(badge(msg.job.status));
      if (msg.type === "end") {
        stream.ended = true;
        refreshJobs();
        if (msg.job.kind !== "launch") refreshApps().catch(showError);
      }
    } else if (msg.type === "error") {
      $("log-conn").textContent = msg.error.message;
    }
  };
  ws.onclose = (event) => {
    if (stream.ws !== ws) return;
    stream.ws = null;
    if (stream.ended) {
      $("log-conn").textContent = "";
      $("log-conn").className = "conn";
      return;
    }
    // 1013 (try again later): the bridge lost the daemon, which is restarting or stopped.
    retryLater(jobId, event.code === 1013 ? "the daemon is away" : "connection lost");
  };
}

// Dropped before the end: say why, and resume from next_offset, backing off up to 5 s (a
// daemon or bridge restart takes about a second; the page keeps trying until it is back).
function retryLater(jobId, why = "connection lost") {
  const delay = Math.min(5000, 250 * 2 ** stream.retry++);
  $("log-conn").textContent = `${why}; reconnecting from byte ${stream.nextOffset}…`;
  $("log-conn").className = "conn retry";
  stream.timer = setTimeout(() => { if (stream.jobId === jobId) connect(); }, delay);
}

function appendLog(text) {
  const log = $("log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(document.createTextNode(text));
  let size = log.textContent.length;
  while (size > LOG_KEEP_CHARS && log.firstChild) {
    size -= log.firstChild.textContent.length;
    log.firstChild.remove();
  }
  if (atBottom) log.scrollTop = log.scrollHeight;
}

// ------------------------------------------------------------------------------- start

// For tests and the curious: drop the stream's connection to see it resume.
window.kitplay = {
  stream,
  display: kitplayDisplay,
  dropStream() { if (stream.ws) stream.ws.close(); },
};

async function start() {
  try {
    await signIn();
  } catch (err) {
    $("daemon").textContent = "not signed in";
    showError(err);
    clearTimeout(showError.timer); // keep saying so
    return;
  }
  $("create-form").addEventListener("submit", createApp);
  await refreshStatus();
  await Promise.all([refreshTemplates(), refreshApps(), refreshJobs()]).catch(showError);
  setInterval(() => { if (!document.hidden) refreshJobs(); }, 1000);
  setInterval(() => { if (!document.hidden) refreshStatus(); }, 5000);
}

start();
