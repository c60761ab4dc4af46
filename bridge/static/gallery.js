// The template gallery and the create dialog. Only templates that can be created on their
// own are offered; each shows its icon (fetched with the session header, shown from a blob:
// URL) and its docs (Markdown, rendered safely: markdown.js). The dialog asks for the
// name, display name and version, the layers where an application template takes them, and
// the workspace's licence where it must be accepted first.

import * as api from "./api.js";
import { state, on, emit, select } from "./store.js";
import { $, el, showError, activity, put } from "./ui.js";
import { renderMarkdown } from "./markdown.js";
import { track } from "./apps.js";

// App names: lowercase words joined by dots (my_company.my_app); kit-app-template also takes
// one word (my_app). The daemon has the last word; this only catches typos early.
const NAME_RE = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;
const KIT_NAME_RE = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$/;
const gal = { templates: null, license: null, toolchain: null, chosen: null, icons: new Map(),
  error: null };

export function init() {
  $("new-app").addEventListener("click", show);
}

// Creatable on its own: the daemon says so; an older daemon's records lack the field, and
// then applications and extensions are.
export function creatable(t) {
  if (typeof t.creatable === "boolean") return t.creatable;
  return ["application", "extension"].includes(t.kind || t.type);
}

function kindOf(t) { return t.kind || t.type || ""; }

// An older daemon says only whether a kit-app-template workspace's licence is accepted.
function licenceOf(toolchain) {
  if (!toolchain || typeof toolchain.license_accepted !== "boolean") return null;
  return { required: true, accepted: toolchain.license_accepted, url: null,
    summary: "Creating an app runs kit-app-template's tools, which ask you to accept the " +
      "NVIDIA Omniverse licence first (accepting writes .omniverse_eula_accepted.txt in " +
      "the workspace)." };
}

// A layer as {id, name, description} (an older daemon's records: {name, display_name}).
function layerOf(l) {
  if (l.id) return { id: l.id, name: l.name || l.id, description: l.description || "" };
  return { id: l.name, name: l.display_name || l.name, description: l.description || "" };
}

// The layers an application template takes (from templates.get when the list lacks them).
async function layersOf(t) {
  if (kindOf(t) !== "application") return [];
  if (!Array.isArray(t.layers)) {
    try {
      t.layers = (await api.call("templates.get", { name: t.name })).template.layers || [];
    } catch (err) {
      t.layers = [];
    }
  }
  return t.layers.map(layerOf);
}

export async function load() {
  try {
    const got = await api.call("templates.list");
    gal.templates = got.templates;
    gal.license = got.license || licenceOf(got.toolchain);
    gal.toolchain = got.toolchain || null;
    gal.error = null;
  } catch (err) {
    gal.error = err;
  }
  if (!$("gallery-view").hidden) render();
}

export async function show() {
  emit("show-gallery");
  if (!gal.templates && !gal.error) {
    put($("gallery-view"), el("p", { class: "placeholder" }, "Loading templates…"));
    await load();
  }
  render();
}

function render() {
  const view = $("gallery-view");
  if (gal.error) {
    put(view, el("div", { class: "placeholder" },
      el("p", {}, `Cannot list the templates: ${gal.error.message}`),
      el("button", { type: "button", onclick: () => { gal.error = null; show(); } }, "Try again")));
    return;
  }
  const list = (gal.templates || []).filter(creatable);
  if (!gal.chosen || !list.some((t) => t.name === gal.chosen)) {
    gal.chosen = list.length ? list[0].name : null;
  }
  const tc = gal.toolchain && gal.toolchain.kind;
  put(view, 
    el("div", { class: "gallery-head" },
      el("div", {},
        el("h2", {}, "New app from a template"),
        el("p", { class: "muted" }, `${list.length} template${list.length === 1 ? "" : "s"} ` +
          `to start from${tc ? ` (${tc} workspace)` : ""}. Pick one to read about it.`)),
      el("button", { type: "button", class: "secondary", onclick: () => emit("hide-gallery") },
        "Close")),
    licenceNote(),
    list.length ? el("div", { class: "gallery-body" },
      el("div", { class: "cards", id: "templates", role: "listbox", "aria-label": "Templates" },
        ...list.map(card)),
      el("article", { class: "template-docs", id: "template-docs" }, "")) :
      el("p", { class: "placeholder" }, "This workspace offers no template that can be created on its own."));
  if (gal.chosen) details(gal.chosen);
}

function licenceNote() {
  const lic = gal.license;
  if (!lic || !lic.required || lic.accepted) return null;
  return el("div", { class: "notice" }, el("strong", {}, "Licence: "),
    "this workspace asks you to accept its licence before creating an app. ",
    "The create dialog shows it.");
}

function card(t) {
  const icon = el("div", { class: "card-icon", "aria-hidden": "true" },
    (t.display_name || t.name).slice(0, 1).toUpperCase());
  if (t.icon) loadIcon(t, icon);
  return el("div", {
    class: `tcard${t.name === gal.chosen ? " chosen" : ""}`, role: "option", tabindex: "0",
    "data-template": t.name, "aria-selected": t.name === gal.chosen ? "true" : "false",
    onclick: (e) => { if (!e.target.closest("button")) choose(t.name); },
    ondblclick: () => openDialog(t),
    onkeydown: (e) => { if (e.key === "Enter") openDialog(t); },
  },
  icon,
  el("div", { class: "card-text" },
    el("div", { class: "card-title" }, el("strong", {}, t.display_name || t.name),
      el("span", { class: "tag" }, kindOf(t))),
    el("code", { class: "card-id" }, t.name),
    el("p", { class: "card-desc" }, t.description || "")),
  el("button", { type: "button", class: "small primary create", onclick: () => openDialog(t) },
    "Create…"));
}

async function loadIcon(t, holder) {
  let url = gal.icons.get(t.name);
  if (url === undefined) {
    url = await api.blobUrl(t.icon);
    gal.icons.set(t.name, url);
  }
  if (!url) return;
  const img = el("img", { src: url, alt: "" });
  img.addEventListener("error", () => img.remove());
  put(holder, img);
}

function choose(name) {
  gal.chosen = name;
  for (const c of document.querySelectorAll(".tcard")) {
    c.classList.toggle("chosen", c.dataset.template === name);
    c.setAttribute("aria-selected", c.dataset.template === name ? "true" : "false");
  }
  details(name);
}

async function details(name) {
  const t = gal.templates.find((x) => x.name === name);
  const box = $("template-docs");
  if (!t || !box) return;
  const layers = await layersOf(t);
  if (gal.chosen !== name) return;
  const body = el("div", { class: "markdown" }, el("p", { class: "muted" }, "Loading the docs…"));
  put(box, 
    el("div", { class: "docs-head" },
      el("div", {}, el("h3", {}, t.display_name || t.name), el("code", {}, t.name)),
      el("button", { type: "button", class: "primary", onclick: () => openDialog(t) },
        "Create from this template")),
    layers.length ? el("p", { class: "muted" },
      `Takes ${layers.length} optional layer${layers.length === 1 ? "" : "s"}: `,
      layers.map((l) => l.name).join(", ")) : null,
    body);
  const text = t.docs || t.description || "";
  try {
    const docs = text ? await renderMarkdown(text) : null;
    // A README that opens with the template's own name: the heading above says it already.
    const first = docs && docs.firstElementChild;
    if (first && /^h\d$/.test(first.localName) &&
        first.textContent.trim() === (t.display_name || t.name)) first.remove();
    put(body, docs || el("p", { class: "muted" }, "No docs."));
  } catch (err) {
    put(body, el("pre", {}, text));
  }
}

// ---------------------------------------------------------------------------- the dialog

function suggestName(t) {
  const vars = t.variables || {};
  const taken0 = new Set(state.apps.map((a) => a.name));
  for (const own of [vars.application_name, vars.extension_name, vars.name]) {
    if (typeof own === "string" && NAME_RE.test(own) && !taken0.has(own)) return own;
  }
  const slug = (t.name || "app").toLowerCase().replace(/[^a-z0-9_]+/g, "_").replace(/^[^a-z]+/, "") || "app";
  const taken = new Set(state.apps.map((a) => a.name));
  let name = `my_company.${slug}`;
  for (let i = 2; taken.has(name); i++) name = `my_company.${slug}_${i}`;
  return name;
}

export async function openDialog(t) {
  const dialog = $("create-dialog");
  const vars = t.variables || {};
  const layers = await layersOf(t);
  const lic = gal.license;
  const needLicence = !!(lic && lic.required && !lic.accepted);
  const error = el("p", { class: "form-error", id: "create-error", role: "alert", hidden: true });
  const form = el("form", { class: "dialog-body", id: "create-form", novalidate: true,
    autocomplete: "off", onsubmit: (e) => { e.preventDefault(); submit(t, form, error); } },
  el("h2", { id: "create-title" }, `New app from ${t.display_name || t.name}`),
  el("div", { class: "dialog-content" },
    el("label", {}, "Name",
      el("input", { id: "create-name", name: "name", required: true, value: suggestName(t),
        spellcheck: "false", "aria-describedby": "create-name-help" }),
      el("span", { class: "help", id: "create-name-help" },
        "Lowercase words joined by dots, such as my_company.my_app.")),
    el("div", { class: "row2" },
      el("label", {}, "Display name",
        el("input", { id: "create-display-name", name: "display_name",
          placeholder: vars.display_name || vars.application_display_name ||
            vars.extension_display_name || t.display_name || "" })),
      el("label", {}, "Version",
        el("input", { id: "create-version", name: "version", placeholder: vars.version || "0.1.0" }))),
    layers.length ? el("fieldset", { class: "layers" },
      el("legend", {}, "Layers (optional)"),
      ...layers.map((l) => el("label", { class: "check" },
        el("input", { type: "checkbox", name: "layer", value: l.id }),
        el("span", {}, el("strong", {}, l.name), " ", el("code", { class: "muted" }, l.id),
          l.description ? el("span", { class: "help" }, l.description) : null)))) : null,
    needLicence ? el("fieldset", { class: "licence", id: "create-licence" },
      el("legend", {}, "Licence"),
      el("p", {}, lic.summary || "This workspace's templates come under a licence you must accept first."),
      lic.url ? el("p", {}, el("a", { href: lic.url, target: "_blank", rel: "noopener noreferrer" },
        "Read the licence")) : null,
      el("label", { class: "check" },
        el("input", { type: "checkbox", id: "create-accept", name: "accept_license" }),
        el("span", {}, "I have read and accept this licence"))) : null,
    error),
  el("div", { class: "dialog-actions" },
    el("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Cancel"),
    el("button", { type: "submit", class: "primary", id: "create-submit" }, "Create app")));
  put(dialog, form);
  dialog.showModal();
  const name = form.querySelector("#create-name");
  name.focus();
  name.select();
}

async function submit(t, form, error) {
  const get = (id) => form.querySelector(id).value.trim();
  const name = get("#create-name");
  const fail = (msg) => { error.textContent = msg; error.hidden = false; };
  const kit = gal.toolchain && gal.toolchain.kind === "kit-app-template";
  if (!(kit ? KIT_NAME_RE : NAME_RE).test(name)) {
    fail(kit ? "The name must be lowercase letters, digits and _, in parts joined by dots, " +
      "such as my_company.my_app." :
      "The name must be lowercase words joined by dots, such as my_company.my_app.");
    form.querySelector("#create-name").focus();
    return;
  }
  const params = { template: t.name, name };
  if (get("#create-display-name")) params.display_name = get("#create-display-name");
  if (get("#create-version")) params.version = get("#create-version");
  const layers = [...form.querySelectorAll('input[name="layer"]:checked')].map((i) => i.value);
  if (layers.length) params.layers = layers;
  const accept = form.querySelector("#create-accept");
  if (accept) {
    if (!accept.checked) { fail("Accept the licence to create an app in this workspace."); return; }
    params.accept_license = true;
  }
  const button = form.querySelector("#create-submit");
  button.disabled = true;
  button.textContent = "Creating…";
  error.hidden = true;
  try {
    const { job } = await api.call("templates.create", params);
    if (accept) gal.license = { ...gal.license, accepted: true };
    $("create-dialog").close();
    track(job);
    emit("follow-request", job.id);
    activity(`create:${name}`, "run", `Creating ${name} from ${t.display_name || t.name}…`);
    pendingSelect(job.id, name);
  } catch (err) {
    fail(err.message + (err.hint ? ` ${err.hint}` : ""));
    button.disabled = false;
    button.textContent = "Create app";
  }
}

// Once the create job has succeeded and the app is listed, select it and show the editor.
function pendingSelect(jobId, name) {
  const off = on("apps", () => {
    if (!state.apps.some((a) => a.name === name)) return;
    off();
    emit("hide-gallery");
    select(name);
  });
  const offJob = on("job", (job) => {
    if (job.id !== jobId) return;
    if (job.status === "failed" || job.status === "cancelled") {
      off(); offJob();
      showError(new Error(job.error && job.error.message ? job.error.message : job.status),
        `Creating ${name} failed (its log says why)`);
    } else if (job.status === "succeeded") offJob();
  });
}
