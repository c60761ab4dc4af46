// Drag handles between panels: the project column's width and the display panel's. A
// handle is a focusable separator; drag it, or focus it and use the arrow keys (Home puts
// the default back). The width lives in a CSS variable on <html>, kept in localStorage for
// the next load of this page (a width, nothing else).

const STORE = "kitplay.sizes";
const STEP = 24;

function saved() {
  try { return JSON.parse(localStorage.getItem(STORE) || "{}") || {}; } catch { return {}; }
}

function save(name, px) {
  const all = saved();
  if (px === null) delete all[name]; else all[name] = px;
  try { localStorage.setItem(STORE, JSON.stringify(all)); } catch { /* storage off: fine */ }
}

// handle: the separator element; name: the CSS variable (without "--"); min, max: functions
// giving the bounds in px now; grow: +1 when dragging right widens the panel, -1 when
// dragging left does (a panel on the right); measure: the panel's current width.
export function splitter(handle, { name, min, max, grow, measure }) {
  const root = document.documentElement;
  const apply = (px) => {
    const clamped = Math.round(Math.max(min(), Math.min(max(), px)));
    root.style.setProperty(`--${name}`, `${clamped}px`);
    handle.setAttribute("aria-valuenow", String(clamped));
    return clamped;
  };
  const reset = () => { root.style.removeProperty(`--${name}`); save(name, null); };
  const initial = saved()[name];
  if (typeof initial === "number") apply(initial);

  handle.setAttribute("role", "separator");
  handle.setAttribute("aria-orientation", "vertical");
  handle.tabIndex = 0;

  handle.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    const x0 = e.clientX;
    const w0 = measure();
    handle.setPointerCapture(e.pointerId);
    document.body.classList.add("resizing"); // frames let the pointer through meanwhile
    const move = (ev) => apply(w0 + grow * (ev.clientX - x0));
    const up = (ev) => {
      handle.releasePointerCapture(ev.pointerId);
      handle.removeEventListener("pointermove", move);
      handle.removeEventListener("pointerup", up);
      handle.removeEventListener("pointercancel", up);
      document.body.classList.remove("resizing");
      save(name, apply(w0 + grow * (ev.clientX - x0)));
    };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", up);
    handle.addEventListener("pointercancel", up);
  });
  handle.addEventListener("dblclick", reset);
  handle.addEventListener("keydown", (e) => {
    const by = { ArrowLeft: -STEP, ArrowRight: STEP }[e.key];
    if (e.key === "Home") { e.preventDefault(); reset(); return; }
    if (by === undefined) return;
    e.preventDefault();
    save(name, apply(measure() + grow * by));
  });
}
