// The log panel: one job's log, live over the WebSocket (api.Follower), with search, a
// follow toggle, a download of the whole log, and, for an app launched in Xpra, Xpra's own
// server lines hidden behind a toggle (the app's output stays). Beside it, the job's
// display while it runs (display.js).

import * as api from "./api.js";
import { state, on, emit, upsertJob } from "./store.js";
import { $, el, badge, jobApp, kindWord, showError, activity, put, TERMINAL } from "./ui.js";

const KEEP_CHARS = 2 * 1024 * 1024; // the view keeps the tail; offsets keep counting

// Xpra 3.1.3 writes its log as "YYYY-MM-DD HH:MM:SS,mmm text"; GTK and Xvfb add a few lines
// of their own. A blank line goes with the line before it.
const XPRA_LINE = new RegExp([
  String.raw`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} `,
  String.raw`^\(Xpra:\d+\): `,
  String.raw`^Warning: running as root`,
  String.raw`^_XSERVTrans`,
  String.raw`^The XKEYBOARD keymap compiler`,
  String.raw`^Errors from xkbcomp`,
  String.raw`^> (Warning|Ignoring|Error)`,
].join("|"));

const log = {
  follower: null, job: null, text: "", lines: [], carry: "", lastXpra: false,
  search: "", matches: [], current: -1, pending: false,
};

function isXpraLaunch(job) {
  return !!job && job.kind === "launch" && (job.params || {}).display === "xpra";
}

function filtering() {
  return isXpraLaunch(log.job) && !$("log-xpra").checked;
}

export function init() {
  on("follow-request", (id) => follow(id));
  on("job", (job) => { if (job.id === state.followed) header(job); });
  $("log-search").addEventListener("input", () => {
    log.search = $("log-search").value;
    rerender({ find: true });
  });
  $("log-search").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); step(e.shiftKey ? -1 : 1); }
  });
  $("log-next").addEventListener("click", () => step(1));
  $("log-prev").addEventListener("click", () => step(-1));
  $("log-xpra").addEventListener("change", () => { rerender(); displayLog(); });
  $("log-follow").addEventListener("change", () => { if ($("log-follow").checked) toBottom(); });
  $("log").addEventListener("wheel", userScrolled, { passive: true });
  $("log").addEventListener("keydown", userScrolled);
  $("log-download").addEventListener("click", download);
  window.addEventListener("blur", () => setTimeout(keyboardBack, 0)); // a frame took the focus
  // For tests and the curious: the stream's counters, and a way to see it resume.
  window.kitplay = window.kitplay || {};
  Object.defineProperty(window.kitplay, "stream", { get: () => ({
    connects: log.follower ? log.follower.connects : 0,
    nextOffset: log.follower ? log.follower.nextOffset : 0,
    jobId: log.follower ? log.follower.jobId : null }) });
  window.kitplay.dropStream = () => { if (log.follower) log.follower.drop(); };
}

function userScrolled() {
  requestAnimationFrame(() => {
    const pre = $("log");
    $("log-follow").checked = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  });
}

export function follow(jobId) {
  if (log.follower) log.follower.close();
  Object.assign(log, { text: "", carry: "", lastXpra: false, matches: [], current: -1,
    job: state.jobs.get(jobId) || null });
  state.followed = jobId;
  emit("follow", jobId);
  put($("log"));
  $("log-follow").checked = true;
  $("log-download").disabled = false;
  $("log-title").textContent = "";
  header(log.job || { id: jobId, status: "", kind: "" });
  log.follower = new api.Follower(jobId, {
    output: (text) => append(text),
    state: (job) => upsertJob(job),
    end: (job) => upsertJob(job),
    conn: (s, words) => {
      $("log-conn").textContent = s === "closed" ? "" : words;
      $("log-conn").className = `conn ${s}`;
      if (s === "signin") showError(new Error(words), "Signed out");
    },
  });
}

function header(job) {
  log.job = job;
  put($("log-title"), 
    job.kind ? `${kindWord(job.kind)}${jobApp(job) ? " · " + jobApp(job) : ""} · ` : "",
    el("code", {}, job.id));
  put($("log-status"), job.status ? badge(job.status) : "");
  $("log-xpra-wrap").hidden = !isXpraLaunch(job);
  $("display-title").textContent = `Display of ${jobApp(job) || "the app"}`;
  displayPanel().then((d) => {
    if (state.followed !== job.id) return;
    d.show(job);
    keyboardBack();
  });
}

// A display that went away must not keep the keyboard: Xpra's client takes the focus, and
// keys sent to a hidden frame (Ctrl-S in the editor) would go nowhere.
function keyboardBack() {
  const frame = $("display-frame");
  if ($("display-panel").hidden && document.activeElement === frame) frame.blur();
}

// The display panel is display.js's: it frames a running launch's display beside the editor,
// with its "Open full size". Loaded once, after the jobs list has drawn (or when first needed).
// display.js is an ES module exporting DisplayPanel; an older one was a classic script that
// set window.kitplayDisplay (imported as a module, it still does).
let displayLoading = null;
export function displayPanel() {
  if (!displayLoading) {
    displayLoading = import("./display.js").then((mod) => {
      const panel = mod.DisplayPanel ? new mod.DisplayPanel({
        panel: $("display-panel"), frame: $("display-frame"), fullButton: $("display-full"),
        status: $("display-state") }) : window.kitplayDisplay;
      window.kitplay = window.kitplay || {};
      window.kitplay.display = panel;
      return panel;
    }).catch((err) => { displayLoading = null; throw err; });
  }
  return displayLoading;
}

// ------------------------------------------------------------------------ Xpra's own log

// The daemon keeps an Xpra session's own log (Xpra and its X server) apart from the app's
// output: jobs.logs with log "display". It is read while the toggle is on, every second
// while the job runs. An older daemon mixed it into the job's log: then the toggle only
// stops hiding those lines.
const xlog = { jobId: null, offset: 0, timer: null, separate: null };

async function displayLog() {
  clearTimeout(xlog.timer);
  const job = log.job;
  const on = $("log-xpra").checked && isXpraLaunch(job) && xlog.separate !== false;
  $("log-display").hidden = $("log-display-head").hidden = !on;
  if (!on) return;
  if (xlog.jobId !== job.id) {
    Object.assign(xlog, { jobId: job.id, offset: 0 });
    put($("log-display"));
  }
  try {
    const page = await api.call("jobs.logs", { job_id: job.id, offset: xlog.offset,
      limit: 1024 * 1024, log: "display" });
    if (xlog.jobId !== job.id) return;
    xlog.separate = true;
    const pre = $("log-display");
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    if (page.data) pre.append(document.createTextNode(page.data));
    if (atBottom) pre.scrollTop = pre.scrollHeight;
    xlog.offset = page.next_offset;
    const running = !TERMINAL.has((state.jobs.get(job.id) || job).status);
    if (running || !page.eof) xlog.timer = setTimeout(displayLog, page.eof ? 1000 : 0);
  } catch (err) {
    if (err.status === 400 && err.data && err.data.param === "log") {
      xlog.separate = false; // mixed into the job's log: the toggle shows those lines
      $("log-display").hidden = $("log-display-head").hidden = true;
    } else if (err.status !== 404) {
      put($("log-display"), `Cannot read Xpra's log: ${err.message}`);
    }
  }
}

// ---------------------------------------------------------------------------- the text

function append(chunk) {
  log.text += chunk;
  if (log.text.length > KEEP_CHARS) {
    const cut = log.text.indexOf("\n", log.text.length - KEEP_CHARS);
    log.text = log.text.slice(cut >= 0 ? cut + 1 : log.text.length - KEEP_CHARS);
    rerender();
    return;
  }
  if (log.search) { schedule(); return; }
  const pre = $("log");
  if (filtering()) {
    const shown = visible(log.carry + chunk, true);
    if (shown) pre.append(document.createTextNode(shown));
  } else {
    pre.append(document.createTextNode(chunk));
    let size = pre.textContent.length;
    while (size > KEEP_CHARS && pre.firstChild) {
      size -= pre.firstChild.textContent.length;
      pre.firstChild.remove();
    }
  }
  if ($("log-follow").checked) toBottom();
}

// The lines of `text` to show; with `streaming`, an unfinished last line waits in carry.
function visible(text, streaming = false) {
  if (!filtering()) return text;
  const parts = text.split("\n");
  const last = parts.pop(); // "" when the text ends with a newline
  log.carry = streaming ? last : "";
  let out = "";
  for (const line of parts) if (!xpraLine(line)) out += line + "\n";
  if (!streaming && last !== "" && !xpraLine(last)) out += last;
  return out;
}

function xpraLine(line) {
  log.lastXpra = line.trim() === "" ? log.lastXpra : XPRA_LINE.test(line);
  return log.lastXpra;
}

function schedule() {
  if (log.pending) return;
  log.pending = true;
  setTimeout(() => { log.pending = false; rerender(); }, 250);
}

// The log drawn again from log.text. With a search, its matches are marked; `find` (the user
// typed the search) shows the first match, leaving follow; otherwise (more of a live log came)
// the current match stays the current one and nothing scrolls.
function rerender({ find = false } = {}) {
  const was = log.current;
  log.lastXpra = false;
  const text = filtering() ? visible(log.text) : log.text;
  const pre = $("log");
  const q = log.search;
  log.matches = [];
  if (!q) {
    put(pre, document.createTextNode(text));
    $("log-matches").textContent = "";
  } else {
    const lower = text.toLowerCase();
    const needle = q.toLowerCase();
    const nodes = [];
    let at = 0;
    for (let i = lower.indexOf(needle); i >= 0 && nodes.length < 20000;
      i = lower.indexOf(needle, i + needle.length)) {
      nodes.push(document.createTextNode(text.slice(at, i)));
      const mark = el("mark", {}, text.slice(i, i + needle.length));
      log.matches.push(mark);
      nodes.push(mark);
      at = i + needle.length;
    }
    nodes.push(document.createTextNode(text.slice(at)));
    put(pre, ...nodes);
    const n = log.matches.length;
    $("log-matches").textContent = n ? `${n} match${n === 1 ? "" : "es"}` : "no match";
    log.current = find || was < 0 ? -1 : Math.min(was, n - 1) - 1; // step() adds one
    if (n) step(1, find);
  }
  if ($("log-follow").checked) toBottom();
}

function step(dir, scroll = true) {
  const n = log.matches.length;
  if (!n) return;
  if (log.current >= 0) log.matches[log.current].classList.remove("current");
  log.current = (log.current + dir + n) % n;
  const mark = log.matches[log.current];
  mark.classList.add("current");
  $("log-matches").textContent = `${log.current + 1} of ${n}`;
  if (scroll) {
    $("log-follow").checked = false;
    mark.scrollIntoView({ block: "center" });
  }
}

function toBottom() {
  const pre = $("log");
  pre.scrollTop = pre.scrollHeight;
}

async function download() {
  const id = state.followed;
  if (!id) return;
  const key = `download:${id}`;
  activity(key, "run", `Downloading the log of ${id}…`);
  try {
    const blob = await api.logBlob(id, (n) => activity(key, "run",
      `Downloading the log of ${id}: ${Math.round(n / 1024)} KB…`));
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: `${id}.log`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    activity(key, "ok", `Saved the log of ${id} (${Math.round(blob.size / 1024)} KB) as ${id}.log`);
  } catch (err) {
    activity(key, "bad", `Could not download the log of ${id}: ${err.message}`);
  }
}
