// The jobs panel: filters (app, kind, status), pages of jobs (newest first) with their start
// date and duration, Cancel and Open display on running ones; a click follows a job's log.
// The list is read again every second while the page is visible (one small GET).

import * as api from "./api.js";
import { state, on, emit, upsertJob } from "./store.js";
import {
  $, el, badge, jobApp, kindWord, fmtWhen, fullDate, fmtDuration, jobDuration, TERMINAL,
  showError, put,
} from "./ui.js";

const KINDS = ["create", "build", "test", "package", "launch", "modify", "package_container"];
const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "interrupted"];
const PAGE = api.JOBS_PAGE; // the first page is asked for early (api.js)
const POLL_MS = 1000;

const view = { offset: 0, total: 0, rows: [], loading: false, again: false, drawn: false };

function filters() {
  return { app: $("filter-app").value, kind: $("filter-kind").value,
    status: $("filter-status").value };
}

export function init() {
  for (const k of KINDS) $("filter-kind").append(el("option", { value: k }, kindWord(k)));
  for (const s of STATUSES) $("filter-status").append(el("option", { value: s }, s));
  for (const id of ["filter-app", "filter-kind", "filter-status"]) {
    $(id).addEventListener("change", () => {
      $(id).classList.toggle("active", !!$(id).value);
      view.offset = 0;
      refresh();
    });
  }
  $("jobs-newer").addEventListener("click", () => {
    view.offset = Math.max(0, view.offset - PAGE); refresh();
  });
  $("jobs-older").addEventListener("click", () => { view.offset += PAGE; refresh(); });
  on("apps", fillAppFilter);
  on("job", (job) => patchRow(job));
  on("follow", (id) => {
    for (const tr of $("jobs").querySelectorAll("tr[data-job]")) {
      tr.classList.toggle("selected", tr.dataset.job === id);
    }
  });
  setInterval(() => { if (!document.hidden) refresh(); }, POLL_MS);
  setInterval(tickDurations, 1000);
}

function fillAppFilter() {
  const select = $("filter-app");
  const current = select.value;
  const names = state.apps.map((a) => a.name);
  if (current && !names.includes(current)) names.push(current);
  put(select, el("option", { value: "" }, "All apps"),
    ...names.map((n) => el("option", { value: n, selected: n === current }, n)));
}

// Show one app's jobs (the app bar's "Jobs" link).
export function filterByApp(app) {
  fillAppFilter();
  if (![...$("filter-app").options].some((o) => o.value === app)) {
    $("filter-app").append(el("option", { value: app }, app));
  }
  $("filter-app").value = app;
  $("filter-app").classList.add("active");
  view.offset = 0;
  refresh();
}

export async function refresh() {
  if (view.loading) { view.again = true; return; }
  view.loading = true;
  try {
    const got = await api.call("jobs.list", { ...filters(), limit: PAGE, offset: view.offset });
    view.rows = got.jobs;
    view.total = got.total !== undefined ? got.total : view.offset + got.jobs.length;
    if (!got.jobs.length && view.offset > 0 && view.total <= view.offset) {
      view.offset = Math.max(0, Math.floor((view.total - 1) / PAGE) * PAGE);
      view.again = true;
    }
    for (const j of got.jobs) upsertJob(j);
    render();
  } catch (err) {
    if (!view.drawn) {
      put($("jobs"), el("tr", {}, el("td", { colspan: 4, class: "placeholder" },
        `Cannot list the jobs: ${err.message}`)));
    }
  } finally {
    view.loading = false;
    if (view.again) { view.again = false; refresh(); }
  }
}

function render() {
  const body = $("jobs");
  const f = filters();
  if (!view.rows.length) {
    const any = f.app || f.kind || f.status;
    put(body, el("tr", {}, el("td", { colspan: 4, class: "placeholder" },
      any ? "No job matches these filters." :
        "No jobs yet. Build, test or launch an app: its job shows here.")));
  } else {
    put(body, ...view.rows.map((j) => row(state.jobs.get(j.id) || j)));
    if (!view.drawn) performance.mark("kitplay:first-job-row");
  }
  view.drawn = true;
  const from = view.rows.length ? view.offset + 1 : 0;
  $("jobs-range").textContent = view.total
    ? `${from}–${view.offset + view.rows.length} of ${view.total}` : "";
  $("jobs-newer").disabled = view.offset === 0;
  $("jobs-older").disabled = view.offset + view.rows.length >= view.total;
}

function row(j) {
  const dur = jobDuration(j);
  return el("tr", { "data-job": j.id, class: j.id === state.followed ? "selected" : "",
    onclick: (e) => { if (!e.target.closest("button, a.session")) emit("follow-request", j.id); } },
  el("td", { class: "job-cell", title: `${kindWord(j.kind)} ${jobApp(j) || "(workspace)"} · ${j.id}` },
    el("div", { class: "job-line" },
      el("a", { href: "#", class: "follow", onclick: (e) => { e.preventDefault(); } },
        kindWord(j.kind)),
      el("span", { class: "job-app" }, jobApp(j) || "workspace")),
    el("code", { class: "job-id" }, j.id)),
  el("td", { class: "status-cell", title: j.error && j.error.message ? j.error.message : "" },
    badge(j.status)),
  el("td", { class: "when", title: fullDate(j.started_at || j.created_at) },
    fmtWhen(j.started_at || j.created_at),
    el("span", { class: "took", "data-started": j.started_at || "",
      "data-running": TERMINAL.has(j.status) ? "" : "1" }, dur === null ? "" : fmtDuration(dur))),
  el("td", { class: "actions" }, actions(j)));
}

function actions(j) {
  const out = [];
  if (!TERMINAL.has(j.status)) {
    out.push(el("button", { type: "button", class: "small cancel",
      onclick: () => cancel(j) }, j.kind === "launch" ? "Stop" : "Cancel"));
  }
  return out;
}

export async function cancel(j) {
  try {
    upsertJob((await api.call("jobs.cancel", { job_id: j.id })).job);
  } catch (err) { showError(err, `Cannot stop ${j.id}`); }
}

// A job changed (its stream, or a poll): redraw its row where it is shown.
function patchRow(job) {
  const tr = $("jobs").querySelector(`tr[data-job="${CSS.escape(job.id)}"]`);
  if (tr) tr.replaceWith(row(job));
}

function tickDurations() {
  const now = Date.now() / 1000;
  for (const td of $("jobs").querySelectorAll('.took[data-running="1"]')) {
    const started = Number(td.dataset.started);
    if (started) td.textContent = fmtDuration(now - started);
  }
}
