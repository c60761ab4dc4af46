// Markdown to DOM, safely: template READMEs come from the workspace, which may be hostile.
//
// markdown-it renders with raw HTML disabled (any <tag> in the source stays text) and refuses
// javascript:/vbscript:/file:/data: links. Its HTML is then parsed into an inert document
// (scripts never run there) and copied, element by element, into new nodes: only the tags
// below, only the attributes below, links only to http(s) and mailto (opened in a new tab
// with no referrer), images shown as their alt text (the page loads nothing from elsewhere).

import { vendor } from "./vendor-load.js";

const TAGS = new Set(["p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote",
  "pre", "code", "em", "strong", "del", "s", "hr", "br", "table", "thead", "tbody", "tr",
  "th", "td", "a", "span"]);
const HEADINGS = { h1: "h3", h2: "h4", h3: "h5", h4: "h6", h5: "h6", h6: "h6" };

let md = null;

export async function renderMarkdown(text) {
  if (!md) {
    const { MarkdownIt } = await vendor();
    md = new MarkdownIt({ html: false, linkify: false, typographer: false });
  }
  const html = md.render(String(text || ""));
  const doc = new DOMParser().parseFromString(`<body>${html}</body>`, "text/html");
  const out = document.createDocumentFragment();
  copyChildren(doc.body, out);
  return out;
}

function copyChildren(from, to) {
  for (const node of from.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) { to.append(document.createTextNode(node.data)); continue; }
    if (node.nodeType !== Node.ELEMENT_NODE) continue;
    const tag = node.localName;
    if (tag === "img") {
      const alt = node.getAttribute("alt");
      if (alt) to.append(document.createTextNode(`[${alt}]`));
      continue;
    }
    if (!TAGS.has(tag)) { copyChildren(node, to); continue; }
    const copy = document.createElement(HEADINGS[tag] || tag);
    if (tag === "a") {
      const href = node.getAttribute("href") || "";
      if (/^(https?:|mailto:)/i.test(href)) {
        copy.setAttribute("href", href);
        copy.setAttribute("target", "_blank");
        copy.setAttribute("rel", "noopener noreferrer");
      }
    } else if (tag === "ol" && /^\d{1,6}$/.test(node.getAttribute("start") || "")) {
      copy.setAttribute("start", node.getAttribute("start"));
    } else if (tag === "code" && /^language-[\w+-]{1,30}$/.test(node.className)) {
      copy.className = node.className;
    } else if ((tag === "th" || tag === "td")) {
      const align = /text-align:\s*(left|right|center)/.exec(node.getAttribute("style") || "");
      if (align) copy.className = `align-${align[1]}`;
    }
    copyChildren(node, copy);
    to.append(copy);
  }
}
