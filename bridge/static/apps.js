// The app bar: what can be done to the selected app. Build, Test, Package (then the archive
// it made), Launch with arguments on a display that is available (the default comes from
// the daemon's status), Stop, Clean and Delete (after a confirmation that names the app and
// lists what goes). Every job started here is followed in the log and said in words in the
// status bar: started, what it waits for, how it ended.

import * as api from "./api.js";
import { state, on, emit, appByName, runningLaunches, upsertJob } from "./store.js";
import {
  $, el, showError, activity, jobWords, kindWord, TERMINAL, confirmDialog, splitArgs,
  fmtBytes, put,
} from "./ui.js";
import { saveAppTabs } from "./editor.js";

const DISPLAY_ORDER = ["native", "xpra", "headless"];
const DISPLAY_WORDS = { native: "native window", xpra: "in the page (Xpra)", headless: "headless" };
const tracked = new Map(); // job id -> {app, kind}
const bar = { display: null, chosen: false, args: new Map(), note: new Map(), seen: null };

export function init() {
  on("select", render);
  on("apps", render);
  on("status", () => {
    const now = JSON.stringify((state.status && state.status.displays) || {});
    if (now === bar.seen) return;
    bar.seen = now;
    chooseDisplay();
    const old = $("display");
    if (old) old.replaceWith(displaySelect());
    if ($("launch")) $("launch").disabled = false;
  });
  on("job", (job, old) => {
    if (tracked.has(job.id)) report(job, old);
    if (job.kind === "launch" && (job.params || {}).app === state.selected) renderStop();
  });
}

// The display to offer first: the first available in DISPLAY_ORDER, unless the user chose.
function displays() {
  const d = (state.status && state.status.displays) || {};
  return DISPLAY_ORDER.map((name) => ({ name, ...(d[name] || { available: null }) }));
}

function chooseDisplay() {
  const list = displays();
  const current = list.find((d) => d.name === bar.display);
  if (bar.chosen && current && current.available !== false) return;
  const first = list.find((d) => d.available === true);
  bar.display = first ? first.name : "headless";
}

function render() {
  // Keep the user's place in the arguments box across a redraw.
  const focused = document.activeElement && document.activeElement.id === "launch-args"
    ? [document.activeElement.selectionStart, document.activeElement.selectionEnd] : null;
  draw();
  if (focused && $("launch-args")) {
    $("launch-args").focus();
    $("launch-args").setSelectionRange(...focused);
  }
}

function draw() {
  const host = $("appbar");
  const app = appByName(state.selected);
  if (!app) {
    put(host, el("p", { class: "placeholder" },
      state.apps.length ? "Select an app in the project tree to build, test or launch it."
        : "Create an app from a template to start."));
    return;
  }
  const args = bar.args.get(app.name) || "";
  put(host, 
    el("div", { class: "appbar-title" },
      el("h2", {}, app.display_name || app.name),
      el("span", { class: "app-meta" },
        el("code", {}, app.name), app.version ? ` · ${app.version}` : "",
        app.template ? ` · ${app.template}` : "",
        el("span", { class: `pill ${app.built ? "ok" : ""}` }, app.built ? "built" : "not built"))),
    el("div", { class: "appbar-actions" },
      el("div", { class: "group" },
        button("Build", "build", () => start("build", app.name), "Build the app (its build steps)", "primary"),
        button("Test", "test", () => start("test", app.name), "Run the app's tests"),
        button("Package", "package", () => start("package", app.name), "Make an archive of the app")),
      el("form", { class: "group launch-group", onsubmit: (e) => { e.preventDefault(); launch(app.name); } },
        el("input", { id: "launch-args", type: "text", value: args, placeholder: "arguments",
          "aria-label": "Launch arguments", title: "Arguments for the app, as in a shell: --lines 3 \"two words\"",
          oninput: (e) => bar.args.set(app.name, e.target.value) }),
        displaySelect(),
        el("button", { type: "submit", class: "launch primary", id: "launch",
          disabled: !state.status }, "▶ Launch"),
        el("span", { id: "stop-slot" })),
      el("div", { class: "group" },
        button("Clean", "clean", () => clean(app.name), "Remove the app's build outputs"),
        button("Delete", "delete danger-text", () => remove(app.name), "Delete the app and its files"),
        el("button", { type: "button", class: "small link", onclick: () => emit("jobs-for", app.name),
          title: "Show this app's jobs" }, "Jobs"))),
    el("div", { class: "appbar-note", id: "appbar-note" }, bar.note.get(app.name) || ""));
  renderStop();
}

function button(label, cls, onclick, title, extra = "") {
  return el("button", { type: "button", class: `${cls} ${extra}`.trim(), onclick, title }, label);
}

function displaySelect() {
  const select = el("select", { id: "display", "aria-label": "Display",
    title: "Where the app's windows go", disabled: !state.status,
    onchange: (e) => { bar.display = e.target.value; bar.chosen = true; } });
  if (!state.status) {
    select.append(el("option", {}, "checking the displays…"));
    return select;
  }
  for (const d of displays()) {
    const why = d.available === false
      ? `unavailable: ${(d.missing || []).map((m) => m.what + (m.package ? ` (apt install ${m.package})` : "")).join("; ")}`
      : d.available === null ? "being checked…" : "";
    select.append(el("option", { value: d.name, selected: d.name === bar.display,
      disabled: d.available === false, title: why },
    `${DISPLAY_WORDS[d.name]}${d.available === false ? " (unavailable)" : d.available === null ? " (checking…)" : ""}`));
  }
  return select;
}

function renderStop() {
  const slot = $("stop-slot");
  if (!slot) return;
  const running = runningLaunches(state.selected);
  put(slot, running.length ? el("button", { type: "button", class: "stop danger",
    id: "stop", title: `Stop ${running.map((j) => j.id).join(", ")}`,
    onclick: () => stop(state.selected) }, running.length > 1 ? `■ Stop (${running.length})` : "■ Stop") : "");
}

function setNote(app, node) {
  bar.note.set(app, node);
  if (state.selected === app && $("appbar-note")) put($("appbar-note"), node || "");
}

// ------------------------------------------------------------------------------- actions

async function start(kind, app, params = {}) {
  const key = `${kind}:${app}`;
  const unsaved = await saveAppTabs(app); // the job runs what the editor shows
  if (unsaved.length) {
    activity(key, "bad", `${kindWord(kind)} of ${app} not started: ` +
      `${unsaved.map((p) => p.split("/").pop()).join(", ")} not saved`);
    return null;
  }
  activity(key, "run", `${kindWord(kind)} of ${app}: asking the daemon…`);
  try {
    const { job } = await api.call(kind, { app, ...params });
    track(job);
    emit("follow-request", job.id);
    return job;
  } catch (err) {
    activity(key, "bad", `${kindWord(kind)} of ${app} did not start: ${err.message}`);
    showError(err, `${kindWord(kind)} of ${app} did not start`);
    return null;
  }
}

async function launch(app) {
  let args;
  try {
    args = splitArgs(bar.args.get(app) || "");
  } catch (err) {
    showError(err, "The launch arguments do not parse");
    return;
  }
  const params = { display: bar.display || "headless" };
  if (args.length) params.args = args;
  await start("launch", app, params);
}

async function stop(app) {
  for (const job of runningLaunches(app)) {
    activity(`launch:${app}`, "run", `Stopping ${app} (${job.id})…`);
    try {
      upsertJob((await api.call("jobs.cancel", { job_id: job.id })).job);
    } catch (err) { showError(err, `Cannot stop ${job.id}`); }
  }
}

async function clean(app) {
  const key = `clean:${app}`;
  activity(key, "run", `Cleaning ${app}: removing its build outputs…`);
  try {
    const got = await api.call("apps.clean", { app });
    const n = got.removed.length;
    activity(key, "ok", n ? `Cleaned ${app}: removed ${n} path${n === 1 ? "" : "s"}` :
      `${app} had no build outputs to remove`);
    emit("files", app);
    emit("apps-refresh");
  } catch (err) {
    activity(key, "bad", `Could not clean ${app}: ${err.message}`);
    showError(err, `Cannot clean ${app}`);
  }
}

async function remove(app) {
  // Asked without a confirmation, the daemon changes nothing and says what it would remove.
  let removes, edits = [];
  try {
    await api.call("apps.delete", { app });
    removes = null; // a daemon that deleted without asking: nothing left to confirm
  } catch (err) {
    if (err.status === 400 && err.data && Array.isArray(err.data.removes)) {
      removes = err.data.removes;
      edits = Array.isArray(err.data.edits) ? err.data.edits : [];
    } else { showError(err, `Cannot delete ${app}`); return; }
  }
  if (removes) {
    const ok = await confirmDialog(`Delete ${app}?`, [
      el("p", {}, "This deletes the app ", el("strong", {}, app),
        ". It cannot be undone. It removes:"),
      el("ul", { class: "removes" }, ...removes.slice(0, 50).map((p) => el("li", {}, el("code", {}, p)))),
      removes.length > 50 ? el("p", { class: "muted" }, `…and ${removes.length - 50} more`) : null,
      edits.length ? el("p", {}, "and takes it out of the files it shares:") : null,
      edits.length ? el("ul", { class: "removes" }, ...edits.map((e) =>
        el("li", {}, el("code", {}, e.file), `: ${e.what}`))) : null,
    ], `Delete ${app}`);
    if (!ok) return;
    try {
      const got = await api.call("apps.delete", { app, confirm: app });
      activity(`delete:${app}`, "ok", `Deleted ${app} (${got.removed.length} paths removed)`);
    } catch (err) {
      showError(err, `Cannot delete ${app}`);
      return;
    }
  }
  emit("app-deleted", app);
  emit("apps-refresh");
}

// ------------------------------------------------------------------------------ tracking

export function track(job) {
  tracked.set(job.id, { app: (job.params || {}).app || (job.params || {}).name });
  upsertJob(job);
  report(job, null);
}

function report(job, old) {
  const info = tracked.get(job.id);
  const key = `${job.kind}:${info.app}`;
  const ended = TERMINAL.has(job.status);
  // A stop the user asked for is no failure.
  const how = ["succeeded", "cancelled"].includes(job.status) ? "ok" : "bad";
  activity(key, ended ? how : "run", jobWords(job));
  if (ended && (!old || !TERMINAL.has(old.status))) {
    tracked.delete(job.id);
    if (job.kind !== "launch") emit("apps-refresh");
    if (job.kind === "package" && job.status === "succeeded") showArchives(info.app, job);
    else if (job.status === "failed") {
      setNote(info.app, el("span", { class: "bad" }, jobWords(job)));
    } else setNote(info.app, "");
  }
}

async function showArchives(app, job) {
  const archives = (job.result && job.result.archives) || [];
  if (!archives.length) { setNote(app, "The package job made no archive."); return; }
  const sizes = new Map();
  const dir = job.result.packages_dir;
  const ws = state.status && state.status.workspace;
  if (dir && ws && dir.startsWith(ws + "/")) {
    try {
      const got = await api.call("files.list", { path: dir.slice(ws.length + 1) });
      for (const e of got.entries) sizes.set(e.path.split("/").pop(), e.size);
    } catch (err) { /* sizes are a nicety */ }
  }
  setNote(app, el("span", { class: "archives" }, "Package: ",
    ...archives.map((a) => {
      const name = a.split("/").pop();
      return el("span", { class: "archive", title: a }, el("code", {}, a),
        sizes.has(name) ? ` (${fmtBytes(sizes.get(name))})` : "");
    })));
}
