// What the panels share, and how they hear of changes: the daemon's status, the apps, the
// jobs seen so far (from the jobs list and from the followed job's stream), the selected app.
// Topics: "status", "apps", "job" (job, previous), "select" (app name), "follow" (job id),
// "files" (app name).

import { TERMINAL } from "./ui.js";

export const state = {
  status: null,        // daemon.status
  apps: [],            // apps.list
  jobs: new Map(),     // id -> record, newest seen
  selected: null,      // the app the app bar and tree show
  followed: null,      // the job the log shows
};

const subs = new Map();

export function on(topic, fn) {
  if (!subs.has(topic)) subs.set(topic, new Set());
  subs.get(topic).add(fn);
  return () => subs.get(topic).delete(fn);
}

export function emit(topic, ...args) {
  for (const fn of subs.get(topic) || []) {
    try { fn(...args); } catch (err) { console.error(err); }
  }
}

// Record a job; tell the panels when it changed. A record older than the one held (by
// status: an ended job never goes back to running) is ignored.
export function upsertJob(job) {
  const old = state.jobs.get(job.id);
  if (old && TERMINAL.has(old.status) && !TERMINAL.has(job.status)) return old;
  if (old && JSON.stringify(old) === JSON.stringify(job)) return old;
  state.jobs.set(job.id, job);
  emit("job", job, old);
  return job;
}

export function select(app) {
  if (state.selected === app) return;
  state.selected = app;
  emit("select", app);
}

export function appByName(name) {
  return state.apps.find((a) => a.name === name) || null;
}

// The running launch jobs of an app, newest first.
export function runningLaunches(app) {
  return [...state.jobs.values()]
    .filter((j) => j.kind === "launch" && !TERMINAL.has(j.status) &&
      (j.params || {}).app === app)
    .sort((a, b) => b.created_at - a.created_at);
}
