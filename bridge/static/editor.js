// The editor: open files as tabs, CodeMirror 6 with colouring for Python, TOML (and .kit),
// JSON and Markdown; Ctrl-S saves with the file's etag. When the file changed on disk since
// it was read, the save is refused and a banner offers: reload from disk, overwrite with
// this version, or show the differences (a line diff).
//
// CodeMirror lives in a shadow root: its styles then go in as constructed style sheets,
// which the page's CSP (no inline style) allows, where a <style> element would be refused.

import * as api from "./api.js";
import { state, on, emit } from "./store.js";
import { $, el, fmtBytes, showError, activity, confirmDialog, put } from "./ui.js";
import { vendor } from "./vendor-load.js";
import { renderMarkdown } from "./markdown.js";
import { lineDiff } from "./diff.js";

const ed = {
  cm: null, view: null, root: null, tabs: [], active: null, langs: null,
  preview: false,
};

export function init() {
  on("open-file", (path, app) => open(path, app));
  on("file-deleted", (path) => {
    const tab = ed.tabs.find((t) => t.path === path);
    if (tab) close(tab, true); // the user said so when deleting it
  });
  document.addEventListener("keydown", (e) => {
    // Ctrl-S outside the editor's text (the editor's own keymap took it there already).
    if (e.defaultPrevented) return;
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s" && ed.active &&
        !$("editor-view").hidden) {
      e.preventDefault();
      save(ed.active);
    }
  });
  window.addEventListener("focus", checkDisk);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) checkDisk(); });
  window.addEventListener("beforeunload", (e) => {
    if (ed.tabs.some(dirty)) { e.preventDefault(); e.returnValue = ""; }
  });
  window.kitplay = Object.assign(window.kitplay || {}, {
    editorText: () => (ed.view ? ed.view.state.doc.toString() : null),
    setEditorText: (text) => {
      if (!ed.view) return false;
      ed.view.dispatch({ changes: { from: 0, to: ed.view.state.doc.length, insert: text } });
      return true;
    },
  });
}

function dirty(tab) {
  return tab.state && tab.state.doc.toString() !== tab.saved;
}

function nameOf(path) { return path.split("/").pop(); }

function langFor(path) {
  const name = nameOf(path).toLowerCase();
  const L = ed.langs;
  if (name.endsWith(".py")) return { ext: L.python(), label: "Python" };
  if (name.endsWith(".toml")) return { ext: L.toml, label: "TOML" };
  if (name.endsWith(".kit")) return { ext: L.toml, label: ".kit (TOML)" };
  if (name.endsWith(".json")) return { ext: L.json(), label: "JSON" };
  if (name.endsWith(".md")) return { ext: L.markdown, label: "Markdown" };
  return { ext: [], label: "Plain text" };
}

async function ensureEditor() {
  if (ed.view) return;
  const cm = await vendor();
  ed.cm = cm;
  ed.langs = {
    python: cm.python, json: cm.json,
    toml: cm.StreamLanguage.define(cm.toml),
    markdown: cm.markdownLanguage,
  };
  const host = $("editor-host");
  ed.root = host.shadowRoot || host.attachShadow({ mode: "open" });
  const box = document.createElement("div");
  box.className = "cm-box";
  put(ed.root, box);
  ed.view = new cm.EditorView({ root: ed.root, parent: box,
    state: cm.EditorState.create({ doc: "" }) });
}

function extensions(tab) {
  const cm = ed.cm;
  const highlight = cm.HighlightStyle.define([
    { tag: cm.tags.keyword, color: "#8a3ab9", fontWeight: "600" },
    { tag: [cm.tags.string, cm.tags.special(cm.tags.string)], color: "#287a2f" },
    { tag: cm.tags.comment, color: "#7b8494", fontStyle: "italic" },
    { tag: [cm.tags.number, cm.tags.bool, cm.tags.null], color: "#b35a00" },
    { tag: [cm.tags.function(cm.tags.variableName), cm.tags.function(cm.tags.propertyName)], color: "#1f5fbf" },
    { tag: [cm.tags.definition(cm.tags.variableName), cm.tags.className], color: "#0d6e8a" },
    { tag: [cm.tags.propertyName, cm.tags.attributeName], color: "#1f5fbf" },
    { tag: [cm.tags.heading], color: "#1d2330", fontWeight: "700" },
    { tag: cm.tags.emphasis, fontStyle: "italic" },
    { tag: cm.tags.strong, fontWeight: "700" },
    { tag: [cm.tags.link, cm.tags.url], color: "#1f5fbf", textDecoration: "underline" },
    { tag: [cm.tags.meta, cm.tags.processingInstruction], color: "#7b8494" },
    { tag: [cm.tags.operator, cm.tags.punctuation], color: "#4b5563" },
    { tag: cm.tags.invalid, color: "#c62828" },
  ]);
  const theme = cm.EditorView.theme({
    "&": { height: "100%", fontSize: "13px", backgroundColor: "#ffffff", color: "#1d2330" },
    ".cm-scroller": { fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Cascadia Code", monospace',
      lineHeight: "1.55" },
    ".cm-content": { padding: "8px 0" },
    ".cm-gutters": { backgroundColor: "#f7f8fa", color: "#9aa1ad", borderRight: "1px solid #e3e6eb" },
    ".cm-activeLine": { backgroundColor: "#f4f8ec" },
    ".cm-activeLineGutter": { backgroundColor: "#eaf2dc", color: "#3d6b00" },
    "&.cm-focused": { outline: "none" },
    ".cm-selectionBackground, &.cm-focused .cm-selectionBackground": { backgroundColor: "#d7e8bf" },
    ".cm-searchMatch": { backgroundColor: "#ffe8a3" },
    ".cm-panels": { backgroundColor: "#f7f8fa", color: "#1d2330" },
  });
  return [
    cm.lineNumbers(), cm.highlightActiveLineGutter(), cm.highlightSpecialChars(),
    cm.history(), cm.foldGutter(), cm.drawSelection(), cm.dropCursor(),
    cm.EditorState.allowMultipleSelections.of(true), cm.indentOnInput(),
    cm.syntaxHighlighting(highlight), cm.bracketMatching(), cm.closeBrackets(),
    cm.highlightActiveLine(), cm.highlightSelectionMatches(),
    cm.keymap.of([
      { key: "Mod-s", preventDefault: true, run: () => { save(tab); return true; } },
      ...cm.closeBracketsKeymap, ...cm.defaultKeymap, ...cm.searchKeymap,
      ...cm.historyKeymap, ...cm.foldKeymap, cm.indentWithTab,
    ]),
    theme, langFor(tab.path).ext,
    cm.EditorView.updateListener.of((u) => {
      if (u.docChanged) { tab.state = u.state; renderTabs(); status(); }
      else if (u.selectionSet) { tab.state = u.state; status(); }
    }),
  ];
}

// ------------------------------------------------------------------------------- opening

export async function open(path, app) {
  emit("show-editor");
  let tab = ed.tabs.find((t) => t.path === path);
  if (!tab) {
    tab = { path, app: app || state.selected, state: null, saved: "", etag: null, size: 0,
      conflict: null };
    ed.tabs.push(tab);
    renderTabs();
    setStatus(`Opening ${path}…`);
    let file;
    try {
      [file] = await Promise.all([api.call("files.read", { path }), ensureEditor()]);
    } catch (err) {
      ed.tabs = ed.tabs.filter((t) => t !== tab);
      renderTabs();
      setStatus("");
      const next = err.status === 404 && err.code === -32601
        ? "This kitplayd cannot read files yet (no files.read): update kitplay."
        : err.message;
      showError(new Error(next), `Cannot open ${nameOf(path)}`);
      if (ed.active) activate(ed.active);
      return;
    }
    tab.saved = file.text;
    tab.etag = file.etag;
    tab.size = file.size;
    tab.state = ed.cm.EditorState.create({ doc: file.text, extensions: extensions(tab) });
    note = "";
  }
  activate(tab);
}

function activate(tab) {
  ed.active = tab;
  ed.preview = false;
  if (ed.view && tab.state) ed.view.setState(tab.state);
  emit("file-open", tab.path);
  renderTabs();
  renderBanner();
  status();
  if (ed.view) ed.view.focus();
}

async function close(tab, force = false) {
  if (dirty(tab) && !force) {
    const ok = await confirmDialog(`Close ${nameOf(tab.path)}?`,
      el("p", {}, "Your changes to ", el("code", {}, tab.path), " are not saved. Closing the tab loses them."),
      "Close without saving");
    if (!ok) return;
  }
  const i = ed.tabs.indexOf(tab);
  ed.tabs.splice(i, 1);
  if (ed.active === tab) {
    const next = ed.tabs[Math.min(i, ed.tabs.length - 1)];
    if (next) activate(next);
    else {
      ed.active = null;
      if (ed.view) ed.view.setState(ed.cm.EditorState.create({ doc: "" }));
      emit("file-open", null);
      renderTabs();
      renderBanner();
      status();
      emit("editor-empty");
    }
  } else renderTabs();
}

function renderTabs() {
  $("editor-empty").hidden = ed.tabs.length > 0;
  $("editor-tabs").hidden = !ed.tabs.length;
  $("editor-status").hidden = !ed.tabs.length;
  $("editor-host").hidden = !ed.tabs.length || ed.preview;
  const bar = $("editor-tabs");
  put(bar, ...ed.tabs.map((t) => el("div", {
    class: `tab${t === ed.active ? " active" : ""}${dirty(t) ? " dirty" : ""}`,
    role: "tab", "aria-selected": t === ed.active ? "true" : "false", title: t.path,
    "data-path": t.path,
    onclick: (e) => { if (!e.target.closest(".tab-close") && t.state) activate(t); },
  },
  el("span", { class: "tab-name" }, nameOf(t.path)),
  el("span", { class: "tab-dirty", title: "not saved" }, "●"),
  el("button", { type: "button", class: "tab-close", title: "Close",
    onclick: () => close(t) }, "×"))));
  if (ed.active) {
    bar.append(el("div", { class: "tab-tools" },
      ed.active.path.endsWith(".md") ? el("button", { type: "button", class: "small",
        onclick: togglePreview }, ed.preview ? "Edit" : "Preview") : null,
      el("button", { type: "button", class: "small primary", id: "editor-save",
        disabled: !dirty(ed.active), title: "Save (Ctrl-S)", onclick: () => save(ed.active) },
      "Save")));
  }
}

async function togglePreview() {
  const tab = ed.active;
  if (!tab) return;
  ed.preview = !ed.preview;
  const box = ed.root.querySelector(".cm-box");
  let pv = $("editor-preview");
  if (ed.preview) {
    if (!pv) {
      pv = el("div", { id: "editor-preview", class: "markdown preview" });
      $("editor-host").after(pv);
    }
    put(pv, await renderMarkdown(tab.state.doc.toString()));
    pv.hidden = false;
    $("editor-host").hidden = true;
  } else {
    if (pv) pv.hidden = true;
    $("editor-host").hidden = false;
    if (box) ed.view.focus();
  }
  renderTabs();
}

// -------------------------------------------------------------------------------- saving

// Before a job of `app` starts (Build, Test, Package, Launch) its unsaved tabs are saved, as
// an IDE saves before it runs, so the job sees what the editor shows. Resolves to the paths
// that could not be saved (changed on disk meanwhile: the banner says so; or an error),
// empty when everything is on disk.
export async function saveAppTabs(app) {
  const tabs = ed.tabs.filter((t) => t.app === app && dirty(t));
  for (const tab of tabs) await save(tab);
  return tabs.filter(dirty).map((t) => t.path);
}

// One save at a time per file, each with the etag the last one left: a save asked for while
// one is on its way runs after it.
export async function save(tab, force = false) {
  if (!tab || !tab.state) return;
  if (tab.saving) { tab.again = { force: force || (tab.again && tab.again.force) }; return; }
  tab.saving = true;
  try {
    await write(tab, force);
    while (tab.again) {
      const next = tab.again;
      tab.again = null;
      if (!dirty(tab) && !next.force) break;
      await write(tab, next.force);
    }
  } finally {
    tab.saving = false;
    tab.again = null;
  }
}

async function write(tab, force) {
  const text = tab.state.doc.toString();
  const params = { path: tab.path, text };
  if (force) { if (tab.conflict && tab.conflict.etag) params.if_match = tab.conflict.etag; }
  else if (tab.etag) params.if_match = tab.etag;
  setStatus(`Saving ${nameOf(tab.path)}…`);
  try {
    const got = await api.call("files.write", params);
    tab.etag = got.etag;
    tab.saved = text;
    tab.size = got.size;
    tab.conflict = null;
    renderTabs();
    renderBanner();
    status(`Saved ${nameOf(tab.path)} (${fmtBytes(got.size)}) at ${new Date().toLocaleTimeString()}`);
    activity(`save:${tab.path}`, "ok", `Saved ${tab.path}`);
    emit("saved", tab.path, tab.app);
  } catch (err) {
    if (err.status === 409 && err.data && "etag" in err.data) {
      tab.conflict = { etag: err.data.etag, diff: null };
      renderBanner();
      status(`Not saved: ${nameOf(tab.path)} changed on disk`);
      return;
    }
    status(`Not saved: ${err.message}`);
    showError(err, `Cannot save ${nameOf(tab.path)}`);
  }
}

// A file changed on disk while open (another editor, a build): say so in a banner.
function renderBanner() {
  const box = $("editor-banner");
  const tab = ed.active;
  if (!tab || !tab.conflict) { box.hidden = true; put(box); return; }
  const gone = tab.conflict.etag === null;
  put(box, 
    el("div", { class: "banner-text" },
      el("strong", {}, gone ? `${nameOf(tab.path)} was deleted on disk` :
        `${nameOf(tab.path)} changed on disk`),
      gone ? " since you opened it. Save again to write your version back, or close the tab."
        : " since you opened it. Your version is not saved. Reload the file from disk (your " +
          "changes are dropped), overwrite it with your version, or compare the two first."),
    el("div", { class: "banner-actions" },
      gone ? null : el("button", { type: "button", class: "small", id: "stale-reload",
        onclick: () => reload(tab) }, "Reload from disk"),
      el("button", { type: "button", class: "small danger", id: "stale-overwrite",
        onclick: () => save(tab, true) }, gone ? "Write my version" : "Overwrite with mine"),
      gone ? null : el("button", { type: "button", class: "small", id: "stale-diff",
        onclick: () => showDiff(tab) }, tab.conflict.diff ? "Hide changes" : "Show changes")));
  if (tab.conflict.diff) box.append(tab.conflict.diff);
  box.hidden = false;
}

async function reload(tab) {
  try {
    const file = await api.call("files.read", { path: tab.path });
    tab.saved = file.text;
    tab.etag = file.etag;
    tab.size = file.size;
    tab.conflict = null;
    tab.state = ed.cm.EditorState.create({ doc: file.text, extensions: extensions(tab) });
    if (ed.active === tab) activate(tab);
    status(`Reloaded ${nameOf(tab.path)} from disk`);
  } catch (err) { showError(err, `Cannot reload ${nameOf(tab.path)}`); }
}

async function showDiff(tab) {
  if (tab.conflict.diff) { tab.conflict.diff = null; renderBanner(); return; }
  try {
    const file = await api.call("files.read", { path: tab.path });
    tab.conflict.etag = file.etag;
    const rows = lineDiff(file.text, tab.state.doc.toString());
    tab.conflict.diff = el("div", { class: "diff", id: "stale-diff-view" },
      el("div", { class: "diff-legend" }, el("span", { class: "del" }, "− on disk"), " ",
        el("span", { class: "add" }, "+ yours")),
      el("pre", {}, ...rows.map(([op, text]) => el("div",
        { class: op === "-" ? "del" : op === "+" ? "add" : op === "~" ? "skip" : "same" },
        `${op === "=" ? " " : op === "~" ? "…" : op} ${text}`))));
    renderBanner();
  } catch (err) { showError(err, `Cannot compare ${nameOf(tab.path)}`); }
}

// When the page regains focus: has the open file changed on disk? Reload it if it has no
// unsaved changes, else show the banner now rather than at the next save.
async function checkDisk() {
  const tab = ed.active;
  if (!tab || !tab.state || tab.conflict) return;
  let file;
  try { file = await api.call("files.read", { path: tab.path }); } catch (err) { return; }
  if (file.etag === tab.etag) return;
  if (!dirty(tab)) {
    await reload(tab);
    status(`${nameOf(tab.path)} changed on disk: reloaded`);
  } else {
    tab.conflict = { etag: file.etag, diff: null };
    renderBanner();
  }
}

// ------------------------------------------------------------------------------- status

let note = "";
function setStatus(text) { note = text; status(); }

function status(text) {
  if (text !== undefined) note = text;
  const tab = ed.active;
  const bar = $("editor-status");
  if (!tab || !tab.state) { put(bar, note); return; }
  const pos = tab.state.selection.main.head;
  const line = tab.state.doc.lineAt(pos);
  put(bar,
    el("span", { class: "path", title: tab.path }, tab.path),
    el("span", {}, langFor(tab.path).label),
    el("span", {}, `Ln ${line.number}, Col ${pos - line.from + 1}`),
    el("span", { class: dirty(tab) ? "warn" : "" }, dirty(tab) ? "unsaved changes (Ctrl-S saves)" : "saved"),
    note ? el("span", { class: "note", title: note }, note) : null);
}

export function hasTabs() { return ed.tabs.length > 0; }
