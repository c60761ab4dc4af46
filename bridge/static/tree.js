// The project tree: the workspace's apps and, under the open one, its files (build outputs
// grouped apart). A click on an app selects it (the app bar acts on it); on a file, opens
// it in the editor. An app's "New file…" makes a file in it; a file's × deletes it (asked
// first).

import * as api from "./api.js";
import { state, on, emit, select } from "./store.js";
import {
  $, el, fmtBytes, TERMINAL, put, confirmDialog, promptDialog, showError, activity,
} from "./ui.js";

const tree = {
  open: new Set(),          // expanded apps
  closedDirs: new Set(),    // folded directories ("app|rel/dir"); the rest are open
  openBuild: new Set(),     // apps whose build outputs are unfolded
  files: new Map(),         // app -> {entries, base, truncated, skipped} or {error}
  loading: new Set(),
  activePath: null,
};

export function init() {
  $("tree-refresh").addEventListener("click", () => {
    emit("apps-refresh");
    for (const app of tree.open) loadFiles(app);
  });
  on("apps", render);
  on("select", (app) => { if (app) { tree.open.add(app); loadFiles(app); } render(); });
  on("file-open", (path) => { tree.activePath = path; render(); });
  on("files", (app) => loadFiles(app));
  on("job", (job, old) => {
    // What a create, build, package or clean leaves changes the app's files.
    const app = (job.params || {}).app || (job.kind === "create" ? (job.params || {}).name : "");
    if (TERMINAL.has(job.status) && old && !TERMINAL.has(old.status) && tree.open.has(app) &&
        job.kind !== "launch") {
      loadFiles(app);
    }
  });
}

export async function loadFiles(app) {
  if (!app || tree.loading.has(app)) return;
  tree.loading.add(app);
  try {
    const got = await api.call("files.list", { app });
    const base = commonBase(got.entries);
    // The directories the prefix names (the app's own directory) are not rows of their own.
    const entries = got.entries.filter((e) => !(e.kind === "dir" && base.startsWith(e.path + "/")));
    tree.files.set(app, { entries, base, truncated: got.truncated, skipped: got.skipped || 0 });
  } catch (err) {
    tree.files.set(app, { error: err });
  } finally {
    tree.loading.delete(app);
    render();
  }
}

// The path of an entry below the directory its app's files share ("app.py" for the
// builtin toolchain's source/apps/<app>/app.py).
export function shortPath(app, path) {
  const base = (tree.files.get(app) || {}).base || "";
  return base && path.startsWith(base) ? path.slice(base.length) : path;
}

// The longest directory prefix ("a/b/") the app's own (not built) entries share.
function commonBase(entries) {
  const dirs = entries.filter((e) => !e.build_output).map((e) =>
    (e.kind === "dir" ? e.path + "/" : e.path.slice(0, e.path.lastIndexOf("/") + 1)));
  if (!dirs.length) return "";
  let base = dirs[0];
  for (const d of dirs) {
    while (!d.startsWith(base)) base = base.slice(0, base.lastIndexOf("/", base.length - 2) + 1);
  }
  return base;
}

function render() {
  const host = $("tree");
  if (!state.apps.length) {
    put(host, el("div", { class: "placeholder" },
      el("p", {}, "No apps yet."),
      el("p", {}, "Pick a template to create your first one."),
      el("button", { type: "button", class: "primary", onclick: () => emit("gallery") },
        "Browse templates")));
    return;
  }
  put(host, ...state.apps.map(appNode));
}

function appNode(app) {
  const open = tree.open.has(app.name);
  const selected = state.selected === app.name;
  const head = el("div", {
    class: `tree-row app-row${selected ? " selected" : ""}`, role: "treeitem",
    "aria-expanded": open ? "true" : "false", tabindex: "0", "data-app": app.name,
    title: app.path || app.name,
    onclick: () => toggleApp(app.name),
    onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggleApp(app.name); } },
  },
  el("span", { class: `twisty${open ? " open" : ""}` }, "▸"),
  el("span", { class: "app-name" },
    el("strong", {}, app.display_name || app.name),
    el("span", { class: "app-id" }, app.name)),
  el("span", { class: `pill ${app.built ? "ok" : ""}`, title: app.built ? "built" : "not built yet" },
    app.built ? "built" : "new"));
  const node = el("div", { class: "tree-app" }, head);
  if (open) node.append(filesNode(app.name));
  return node;
}

function toggleApp(name) {
  if (state.selected !== name) {
    select(name);
    return; // selecting opens it
  }
  if (tree.open.has(name)) tree.open.delete(name);
  else { tree.open.add(name); loadFiles(name); }
  render();
}

function filesNode(app) {
  const data = tree.files.get(app);
  const box = el("div", { class: "tree-files", role: "group" });
  if (!data) { box.append(el("div", { class: "tree-note" }, "Loading files…")); return box; }
  if (data.error) {
    const err = data.error;
    box.append(el("div", { class: "tree-note bad" },
      err.status === 404 && err.code === -32601
        ? "This kitplayd cannot list files yet (no files.list): update kitplay."
        : `Cannot list the files: ${err.message}`));
    return box;
  }
  const src = [], built = [];
  for (const e of data.entries) (e.build_output ? built : src).push(e);
  box.append(...level(app, nest(app, src), ""));
  box.append(el("div", { class: "tree-row new-file", role: "button", tabindex: "0",
    title: `Make a new file in ${app}`,
    onclick: () => newFile(app),
    onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); newFile(app); } },
  }, el("span", { class: "ficon add" }, "+"), el("span", { class: "file-name" }, "New file…")));
  if (built.length) {
    const open = tree.openBuild.has(app);
    box.append(el("div", { class: "tree-row dir build", onclick: () => toggleBuild(app) },
      el("span", { class: `twisty${open ? " open" : ""}` }, "▸"),
      el("span", { class: "file-name" }, `build outputs (${built.filter((e) => e.kind === "file").length} files)`)));
    if (open) {
      const sub = el("div", { class: "tree-sub" }, ...level(app, nest(app, built), "#build/"));
      box.append(sub);
    }
  }
  if (data.truncated) box.append(el("div", { class: "tree-note" }, "(list cut: too many files)"));
  if (data.skipped) {
    box.append(el("div", { class: "tree-note" }, `(${data.skipped} names that are not UTF-8 left out)`));
  }
  if (!data.entries.length) box.append(el("div", { class: "tree-note" }, "No files."));
  return box;
}

// entries -> nested {dirs: Map(name -> node), files: [entry]}
function nest(app, entries) {
  const root = { dirs: new Map(), files: [] };
  for (const e of entries) {
    const parts = shortPath(app, e.path).split("/");
    let node = root;
    for (const part of parts.slice(0, -1)) {
      if (!node.dirs.has(part)) node.dirs.set(part, { dirs: new Map(), files: [] });
      node = node.dirs.get(part);
    }
    const name = parts[parts.length - 1];
    if (e.kind === "dir") {
      if (!node.dirs.has(name)) node.dirs.set(name, { dirs: new Map(), files: [] });
    } else node.files.push({ ...e, name });
  }
  return root;
}

function level(app, node, prefix) {
  const out = [];
  for (const [name, sub] of [...node.dirs.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
    const key = `${app}|${prefix}${name}`;
    const open = !tree.closedDirs.has(key);
    out.push(el("div", { class: "tree-row dir", onclick: () => toggleDir(key) },
      el("span", { class: `twisty${open ? " open" : ""}` }, "▸"),
      el("span", { class: "file-name" }, name + "/")));
    if (open) out.push(el("div", { class: "tree-sub" }, ...level(app, sub, `${prefix}${name}/`)));
  }
  for (const f of node.files.sort((a, b) => a.name.localeCompare(b.name))) {
    const openable = f.kind === "file";
    out.push(el("div", {
      class: `tree-row file${f.path === tree.activePath ? " active" : ""}${openable ? "" : " odd"}`,
      role: "treeitem", tabindex: openable ? "0" : null, "data-path": f.path,
      title: `${f.path} · ${fmtBytes(f.size)}${openable ? "" : " · " + f.kind}`,
      onclick: () => openable && emit("open-file", f.path, app),
      onkeydown: (e) => { if (e.key === "Enter" && openable) emit("open-file", f.path, app); },
    },
    el("span", { class: `ficon ${fileType(f.name)}` }),
    el("span", { class: "file-name" }, f.name),
    f.kind === "symlink" ? el("span", { class: "muted" }, " →") : null,
    f.build_output ? null : el("button", { type: "button", class: "row-action delete-file",
      title: `Delete ${f.name}`, "aria-label": `Delete ${f.path}`,
      onclick: (e) => { e.stopPropagation(); deleteFile(app, f); },
      onkeydown: (e) => e.stopPropagation() }, "×"))); // its Enter is its own, not the row's
  }
  return out;
}

// "New file…": a path below the app's own directory; parent directories are made as needed.
async function newFile(app) {
  const base = (tree.files.get(app) || {}).base || "";
  const made = await promptDialog(`New file in ${app}`, {
    label: "Name", placeholder: "module.py, or tests/test_more.py",
    hint: base ? `Made in ${base}; folders in the name are made too.` : "",
    actLabel: "Create file",
    act: async (value) => {
      const rel = value.trim().replace(/^\/+/, "");
      if (!rel) throw new Error("Give the new file a name.");
      try {
        const got = await api.call("files.write", { path: base + rel, text: "", create: true });
        return got.path;
      } catch (err) {
        if (err.reason === "exists") {
          throw new Error(`${rel} exists already: pick another name, or open it from the tree.`);
        }
        throw err;
      }
    },
  });
  if (!made) return;
  activity(`new:${made}`, "ok", `Made ${made}`);
  await loadFiles(app);
  emit("open-file", made, app);
}

async function deleteFile(app, f) {
  const ok = await confirmDialog(`Delete ${f.name}?`,
    el("p", {}, el("code", {}, f.path), " is removed from disk; this cannot be undone. ",
      "An open tab of it closes, unsaved changes included."), "Delete file");
  if (!ok) return;
  try {
    await api.call("files.delete", f.kind === "file" ? { path: f.path, if_match: f.etag }
      : { path: f.path });
    emit("file-deleted", f.path);
    activity(`delete:${f.path}`, "ok", `Deleted ${f.path}`);
  } catch (err) {
    showError(err, `Cannot delete ${f.name}`);
  }
  await loadFiles(app);
}

function toggleDir(key) {
  if (tree.closedDirs.has(key)) tree.closedDirs.delete(key);
  else tree.closedDirs.add(key);
  render();
}

function toggleBuild(app) {
  if (tree.openBuild.has(app)) tree.openBuild.delete(app);
  else tree.openBuild.add(app);
  render();
}

export function fileType(name) {
  const m = /\.([a-z0-9]+)$/i.exec(name);
  const ext = m ? m[1].toLowerCase() : "";
  if (ext === "py") return "py";
  if (ext === "toml" || ext === "kit") return "toml";
  if (ext === "json") return "json";
  if (ext === "md") return "md";
  return "other";
}

export function refreshAll() {
  for (const app of tree.open) loadFiles(app);
}
