// The bundled third-party code (vendor/vendor.js: CodeMirror, markdown-it), loaded once, on
// first need: the jobs list and the tree draw before it arrives.

let loading = null;

export function vendor() {
  if (!loading) loading = import("./vendor/vendor.js");
  return loading;
}

// Start fetching it while the browser is idle (the editor then opens at once).
export function preload() {
  const go = () => vendor().catch(() => { loading = null; });
  if ("requestIdleCallback" in window) requestIdleCallback(go, { timeout: 2000 });
  else setTimeout(go, 500);
}
