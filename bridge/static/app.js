// kitplay playground: signs in, then starts the panels. Each panel is a module of its own
// (gallery, tree, editor, apps, jobs, log; display.js shows an app's display); api.js is the
// only one that talks to the bridge; store.js is what they share.

import * as api from "./api.js";
import { state, on, emit, select } from "./store.js";
import { $, el, showError, clearError, put } from "./ui.js";
import * as jobs from "./jobs.js";
import * as log from "./log.js";
import { splitter } from "./splitter.js";

const STATUS_MS = 5000;

async function refreshStatus() {
  try {
    const s = await api.call("daemon.status");
    state.status = s;
    const tc = s.toolchain && s.toolchain.kind ? s.toolchain.kind : "no toolchain";
    const running = (s.jobs && s.jobs.running) || 0;
    put($("daemon"), ...[
      el("span", { class: "dot ok" }), `kitplayd ${s.version}`,
      el("span", { class: "sep" }, "·"), `${tc} workspace `,
      el("code", { title: s.workspace }, s.workspace),
      running ? el("span", { class: "sep" }, "·") : null,
      running ? `${running} running` : null].filter(Boolean));
    $("daemon").className = "daemon ok";
    emit("status", s);
  } catch (err) {
    put($("daemon"), el("span", { class: "dot bad" }),
      err.status === 401 ? "not signed in" : `daemon unreachable: ${err.message}`);
    $("daemon").className = "daemon bad";
  }
}

async function refreshApps(early = null) {
  try {
    const { apps } = (await early) || await api.call("apps.list");
    state.apps = apps;
    if (state.selected && !apps.some((a) => a.name === state.selected)) select(null);
    emit("apps", apps);
    if (!state.selected && apps.length) select(apps[0].name);
  } catch (err) {
    if (!state.apps.length) {
      put($("tree"), el("p", { class: "placeholder bad" },
        `Cannot list the apps: ${err.message}`));
    }
  }
}

// ----------------------------------------------------------------------- the center area

function showGallery() {
  document.querySelector(".workbench").classList.add("gallery-open");
  $("gallery-view").hidden = false;
  $("editor-view").hidden = true;
  $("new-app").classList.add("active");
}

function showEditor() {
  document.querySelector(".workbench").classList.remove("gallery-open");
  $("gallery-view").hidden = true;
  $("editor-view").hidden = false;
  $("new-app").classList.remove("active");
}

// The project column (200 px up to half the window) and the display (Xpra's client needs
// 600 px; the editor keeps 280) can be dragged wider or narrower.
function splitters() {
  splitter($("side-split"), { name: "side-w", grow: 1,
    min: () => 200, max: () => Math.max(200, window.innerWidth / 2),
    measure: () => document.querySelector(".side").getBoundingClientRect().width });
  splitter($("display-split"), { name: "display-w", grow: -1,
    min: () => 600, max: () => Math.max(600, $("center").getBoundingClientRect().width - 288),
    measure: () => $("display-panel").getBoundingClientRect().width });
}

async function start() {
  $("banner-close").addEventListener("click", clearError);
  splitters();
  jobs.init();
  log.init();
  try {
    await api.signIn();
  } catch (err) {
    put($("daemon"), el("span", { class: "dot bad" }), "not signed in");
    $("daemon").className = "daemon bad";
    showError(err, "Not signed in");
    put($("tree"), el("p", { class: "placeholder" }, "Sign in to see your apps."));
    put($("jobs"), el("tr", {}, el("td", { colspan: 4, class: "placeholder" },
      "Sign in to see the jobs.")));
    return;
  }
  api.onSignedOut(() => showError(new Error(api.signInHelp()),
    "Signed out (the bridge restarted)"));
  // The jobs list first: it is what most visits look at; the other panels load after it.
  put($("log"), el("span", { class: "log-hint" }, "Pick a job in the list to see its log here."));
  await jobs.refresh();
  const apps0 = api.call("apps.list").catch(() => null);
  log.displayPanel().catch(() => {});

  const [tree, editor, apps, gallery] = await Promise.all([
    import("./tree.js"), import("./editor.js"), import("./apps.js"), import("./gallery.js")]);
  tree.init();
  editor.init();
  apps.init();
  gallery.init();
  on("apps-refresh", () => refreshApps());
  on("show-gallery", showGallery);
  on("hide-gallery", showEditor);
  on("show-editor", showEditor);
  on("gallery", () => gallery.show());
  on("jobs-for", (app) => jobs.filterByApp(app));
  on("app-deleted", (app) => { if (state.selected === app) select(null); });

  await Promise.all([refreshStatus(), refreshApps(apps0)]);
  if (!state.apps.length) gallery.show();
  else showEditor();
  setInterval(() => { if (!document.hidden) refreshStatus(); }, STATUS_MS);
  // Apps made or removed from a terminal or an editor show up when the user comes back.
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshApps();
  });
  const { preload } = await import("./vendor-load.js");
  preload();
}

start().catch((err) => showError(err, "The page could not start"));
