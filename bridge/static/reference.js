// The API reference: GET /api/openapi.json (the bridge generates it from the daemon's method
// registry) rendered as a page: each method with its route, parameters, body, result and
// errors; the WebSocket routes and sign-in routes OpenAPI cannot describe; the schemas.
// The page signs in as the playground does (this tab's session, or an open tab's).

import * as api from "./api.js";
import { $, el, put, showError, clearError } from "./ui.js";

const VERBS = ["get", "post", "delete", "put", "patch"];
let doc = null;

async function start() {
  $("banner-close").addEventListener("click", clearError);
  try {
    await api.signIn();
    doc = await api.openapi();
  } catch (err) {
    put($("ref-main"), el("p", { class: "placeholder" }, "The reference needs a signed-in page."));
    put($("ref-toc"));
    showError(err, "Cannot load the OpenAPI document");
    return;
  }
  render();
  $("ref-filter").addEventListener("input", filter);
  if (location.hash) {
    const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target) target.scrollIntoView();
  }
}

// Text with `code` spans (as the registry's docs write them).
function inline(text) {
  return String(text || "").split(/(`[^`]+`)/).map((part) =>
    part.length > 2 && part.startsWith("`") && part.endsWith("`") ? el("code", {}, part.slice(1, -1)) : part);
}

function ref(schema) {
  if (!schema || !schema.$ref) return schema;
  const parts = schema.$ref.replace(/^#\//, "").split("/");
  let node = doc;
  for (const p of parts) node = node && node[p];
  return node || schema;
}

function operations() {
  const out = [];
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const verb of VERBS) {
      if (item[verb]) out.push({ path, verb, op: item[verb] });
    }
  }
  return out;
}

function anchor(id) { return `op-${id.replace(/[^\w.-]/g, "_")}`; }

function render() {
  const info = doc.info || {};
  const server = ((doc.servers || [])[0] || {}).url || "";
  put($("ref-version"), `${info.title || "API"} ${info.version || ""}`,
    info["x-api-version"] ? el("span", { class: "sep" }, "·") : null,
    info["x-api-version"] ? `API v${info["x-api-version"]}` : null);
  const ops = operations();
  const groups = new Map();
  for (const o of ops) {
    const tag = (o.op.tags || ["other"])[0];
    if (!groups.has(tag)) groups.set(tag, []);
    groups.get(tag).push(o);
  }
  put($("ref-toc"),
    el("a", { href: "#overview", class: "toc-top" }, "Overview"),
    ...[...groups.entries()].map(([tag, list]) => el("div", { class: "toc-group", "data-tag": tag },
      el("div", { class: "toc-tag" }, tag),
      ...list.map((o) => el("a", { href: `#${anchor(o.op.operationId || o.path)}`,
        class: "toc-op", "data-filter": `${o.op.operationId} ${o.path} ${o.op.summary || ""}`.toLowerCase() },
      el("span", { class: `verb ${o.verb}` }, o.verb.toUpperCase()),
      el("span", {}, o.op.operationId || o.path))))),
    el("a", { href: "#websockets", class: "toc-top" }, "WebSockets"),
    el("a", { href: "#signin", class: "toc-top" }, "Sign-in routes"),
    el("a", { href: "#errors", class: "toc-top" }, "Errors"),
    el("a", { href: "#schemas", class: "toc-top" }, "Schemas"));

  put($("ref-main"),
    el("section", { id: "overview", class: "ref-section" },
      el("h1", {}, info.title || "API reference"),
      el("p", {}, inline(info.description)),
      el("p", {}, "Base paths: ", ...(doc.servers || []).map((s, i) =>
        [i ? ", " : "", el("code", {}, s.url)])),
      el("p", { class: "muted" }, `${ops.length} routes. Every request needs `,
        el("code", {}, "Authorization: Bearer <token>"),
        "; a POST takes its parameters as a JSON object, a GET in the query string. ",
        el("a", { href: "#", id: "raw-openapi", onclick: saveDoc }, "Download the OpenAPI document"),
        " (", el("code", {}, "GET /api/openapi.json"), ").")),
    ...ops.map((o) => operation(o, server)),
    websockets(), signin(), errors(), schemas());
}

function operation({ path, verb, op }, server) {
  const params = op.parameters || [];
  const body = op.requestBody && ref(op.requestBody);
  const bodySchema = body && body.content && body.content["application/json"] &&
    ref(body.content["application/json"].schema);
  const ok = op.responses && op.responses["200"] && ref(op.responses["200"]);
  const okSchema = ok && ok.content && ok.content["application/json"] &&
    ref(ok.content["application/json"].schema);
  const errorCodes = Object.keys(op.responses || {}).filter((c) => c !== "200");
  return el("section", { class: "op", id: anchor(op.operationId || path),
    "data-filter": `${op.operationId} ${path} ${op.summary || ""}`.toLowerCase() },
  el("div", { class: "op-head" },
    el("span", { class: `verb ${verb}` }, verb.toUpperCase()),
    el("code", { class: "op-path" }, server + path),
    el("span", { class: "op-id" }, op.operationId || "")),
  el("p", { class: "op-summary" }, inline(op.summary)),
  op.description && op.description !== op.summary ? el("p", { class: "muted" }, inline(op.description)) : null,
  params.length ? el("div", { class: "op-block" }, el("h4", {}, "Parameters"),
    paramTable(params.map((p) => ({ name: p.name, where: p.in, required: p.required,
      schema: p.schema || {}, description: p.description })))) : null,
  bodySchema && bodySchema.properties ? el("div", { class: "op-block" },
    el("h4", {}, "JSON body"),
    paramTable(Object.entries(bodySchema.properties).map(([name, s]) => ({
      name, where: "body", required: (bodySchema.required || []).includes(name), schema: s,
      description: s.description })))) : null,
  okSchema ? el("div", { class: "op-block" }, el("h4", {}, "Result (200)"), schemaView(okSchema)) : null,
  errorCodes.length ? el("div", { class: "op-block errors-line" }, el("h4", {}, "Errors"),
    ...errorCodes.map((c) => el("a", { href: "#errors", class: "err-code",
      title: (ref(op.responses[c]) || {}).description || "" }, c))) : null);
}

function typeText(s) {
  s = ref(s) || {};
  let t = Array.isArray(s.type) ? s.type.filter((x) => x !== "null").join(" | ") +
    (s.type.includes("null") ? " | null" : "") : (s.type || (s.$ref ? "" : enumType(s) || "any"));
  if ((s.type === "array" || (Array.isArray(s.type) && s.type.includes("array"))) && s.items) {
    t = t.replace("array", `array of ${typeText(s.items)}`);
  }
  return t;
}

// The type an untyped enum's values share ("string | null" for null, "full", ...), if one.
function enumType(s) {
  const kinds = new Set((s.enum || []).filter((v) => v !== null).map((v) => typeof v));
  if (kinds.size !== 1) return "";
  return [...kinds][0] + (s.enum.includes(null) ? " | null" : "");
}

function constraints(s) {
  const out = [];
  if (s.enum) out.push(["one of", s.enum.filter((v) => v !== null).map((v) => JSON.stringify(v)).join(", ")]);
  if (s.default !== undefined) out.push(["default", JSON.stringify(s.default)]);
  if (s.minimum !== undefined) out.push(["min", String(s.minimum)]);
  if (s.maximum !== undefined) out.push(["max", String(s.maximum)]);
  if (s.pattern) out.push(["pattern", s.pattern]);
  return out.map(([k, v]) => el("span", { class: "constraint" }, `${k} `, el("code", {}, v)));
}

function paramTable(rows) {
  return el("table", { class: "params cols4" },
    el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "In"), el("th", {}, "Type"),
      el("th", {}, "Description"))),
    el("tbody", {}, ...rows.map((r) => el("tr", {},
      el("td", {}, el("code", {}, r.name), r.required ? el("span", { class: "req" }, "required") : null),
      el("td", { class: "muted" }, r.where),
      el("td", {}, el("code", { class: "type" }, typeLink(r.schema))),
      el("td", {}, inline(r.description), el("div", {}, constraints(r.schema)))))));
}

function typeLink(s) {
  if (s && s.$ref) {
    const name = s.$ref.split("/").pop();
    return el("a", { href: `#schema-${name}` }, name);
  }
  if (s && s.items && s.items.$ref) {
    const name = s.items.$ref.split("/").pop();
    return ["array of ", el("a", { href: `#schema-${name}` }, name)];
  }
  return typeText(s);
}

// An object's properties as a nested list, $refs as links.
function schemaView(s, depth = 0) {
  if (s.$ref) return el("p", {}, typeLink(s));
  s = ref(s);
  if (!s.properties) {
    return el("p", {}, el("code", { class: "type" }, typeLink(s)), s.description ? ` — ${s.description}` : "");
  }
  return el("ul", { class: "props" }, ...Object.entries(s.properties).map(([name, p]) =>
    el("li", {}, el("code", {}, name), " ", el("code", { class: "type" }, typeLink(p)),
      (s.required || []).includes(name) ? null : el("span", { class: "opt" }, "optional"),
      p.description ? el("span", { class: "desc" }, " — ", inline(p.description)) : null,
      constraints(p),
      p.properties && depth < 3 ? schemaView(p, depth + 1) : null)));
}

function websockets() {
  const ws = doc["x-websockets"] || {};
  const server = ((doc.servers || [])[0] || {}).url || "";
  return el("section", { id: "websockets", class: "ref-section" },
    el("h2", {}, "WebSockets"),
    el("p", { class: "muted" }, "OpenAPI cannot describe these; they are listed under x-websockets."),
    ...Object.entries(ws).map(([path, w]) => el("div", { class: "op" },
      el("div", { class: "op-head" }, el("span", { class: "verb ws" }, "WS"),
        el("code", { class: "op-path" }, server + path), el("span", { class: "op-id" }, w.method || "")),
      el("p", {}, inline(w.description)),
      w.query ? paramTable(Object.entries(w.query).map(([name, d]) => ({ name, where: "query",
        schema: {}, description: d }))) : null)));
}

function signin() {
  const login = doc["x-login"] || {};
  return el("section", { id: "signin", class: "ref-section" },
    el("h2", {}, "Sign-in routes"),
    el("table", { class: "params" }, el("tbody", {}, ...Object.entries(login).map(([route, d]) =>
      el("tr", {}, el("td", {}, el("code", {}, route)), el("td", {}, inline(d)))))));
}

function errors() {
  const responses = (doc.components && doc.components.responses) || {};
  return el("section", { id: "errors", class: "ref-section" },
    el("h2", {}, "Errors"),
    el("p", {}, "Every error answers ", el("code", {}, '{"error": {"code", "message", "data"}}'),
      ": the JSON-RPC error the daemon gave (or the bridge's refusal), with a fitting HTTP status. ",
      "The message says what went wrong and what to do; data names the parameter or reason."),
    el("table", { class: "params" }, el("thead", {}, el("tr", {}, el("th", {}, "HTTP"), el("th", {}, "Meaning"))),
      el("tbody", {}, ...Object.entries(responses).map(([name, r]) => el("tr", {},
        el("td", {}, el("code", {}, name.replace(/^E/, ""))), el("td", {}, r.description || ""))))));
}

function schemas() {
  const all = (doc.components && doc.components.schemas) || {};
  return el("section", { id: "schemas", class: "ref-section" },
    el("h2", {}, "Schemas"),
    ...Object.entries(all).map(([name, s]) => el("div", { class: "op", id: `schema-${name}` },
      el("div", { class: "op-head" }, el("span", { class: "verb schema" }, "SCHEMA"),
        el("code", { class: "op-path" }, name)),
      s.description ? el("p", {}, s.description) : null,
      schemaView(s))));
}

function saveDoc(event) {
  event.preventDefault();
  const url = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)],
    { type: "application/json" }));
  const a = el("a", { href: url, download: "kitplay-openapi.json", hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function filter() {
  const q = $("ref-filter").value.trim().toLowerCase();
  for (const node of document.querySelectorAll("[data-filter]")) {
    node.hidden = !!q && !node.dataset.filter.includes(q);
  }
  for (const g of document.querySelectorAll(".toc-group")) {
    g.hidden = ![...g.querySelectorAll(".toc-op")].some((a) => !a.hidden);
  }
}

start().catch((err) => showError(err, "The reference could not start"));
