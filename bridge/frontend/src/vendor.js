// The third-party code of the playground page, re-exported as one ES module.
// build.mjs bundles this file into bridge/static/vendor/vendor.js; the page's own modules
// import what they need from there. Add a name here only when the page uses it.
import { Language, defineLanguageFacet } from "@codemirror/language";
import { parser as markdownParser, GFM } from "@lezer/markdown";

export { EditorState, Compartment } from "@codemirror/state";
export {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, highlightSpecialChars, dropCursor,
} from "@codemirror/view";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export {
  syntaxHighlighting, HighlightStyle, indentOnInput, bracketMatching, StreamLanguage,
  foldGutter, foldKeymap,
} from "@codemirror/language";
export { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
export { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
export { tags } from "@lezer/highlight";
export { python } from "@codemirror/lang-python";
export { json } from "@codemirror/lang-json";
export { toml } from "@codemirror/legacy-modes/mode/toml";
export { default as MarkdownIt } from "markdown-it";

// Markdown as @codemirror/lang-markdown's markdownLanguage builds it (GFM), without that
// package's HTML, CSS and JavaScript support for embedded code (a third of the bundle).
export const markdownLanguage = new Language(
  defineLanguageFacet({ commentTokens: { block: { open: "<!--", close: "-->" } } }),
  markdownParser.configure([GFM]), [], "markdown");
