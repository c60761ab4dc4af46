// The one module that talks to the bridge: REST calls (with retries), the session (sign-in
// with the URL's one-time #code=, or joining an open tab's sign-in), WebSocket tickets and
// job streams, and files fetched with the session header (icons, logs).
//
// No cookie: the session token lives in this tab's sessionStorage and goes out as
// `Authorization: Bearer`. Nothing here is readable by another origin.

const SESSION_KEY = "kitplay.session";
const CHANNEL = "kitplay.signin";
const JOIN_WAIT_MS = 1200;

// Each method's REST route (the bridge derives them from the daemon's method registry).
const ROUTES = {
  "daemon.status": ["GET", "/daemon/status"],
  "templates.list": ["GET", "/templates/list"],
  "templates.get": ["GET", "/templates/get/{name}"],
  "templates.create": ["POST", "/templates/create"],
  "apps.list": ["GET", "/apps/list"],
  "apps.delete": ["POST", "/apps/delete"],
  "apps.clean": ["POST", "/apps/clean"],
  "build": ["POST", "/build"],
  "test": ["POST", "/test"],
  "package": ["POST", "/package"],
  "launch": ["POST", "/launch"],
  "jobs.list": ["GET", "/jobs"],
  "jobs.get": ["GET", "/jobs/{job_id}"],
  "jobs.cancel": ["DELETE", "/jobs/{job_id}"],
  "jobs.logs": ["GET", "/jobs/{job_id}/logs"],
  "files.list": ["GET", "/files/list"],
  "files.read": ["GET", "/files/read"],
  "files.write": ["POST", "/files/write"],
  "files.delete": ["POST", "/files/delete"],
  "sessions.list": ["GET", "/sessions"],
};

export class ApiError extends Error {
  constructor(status, error, method) {
    super(error && error.message ? error.message : `HTTP ${status}`);
    this.status = status;
    this.code = error ? error.code : undefined;
    this.data = error ? error.data : undefined;
    this.method = method;
  }

  get reason() { return this.data && this.data.reason; }

  // What to do next, when the message does not say it already.
  get hint() {
    if (this.status === 401) return signInHelp();
    if (this.status === 503) return "Start the daemon (`kitplay daemon start`); the page " +
      "reconnects by itself.";
    if (this.status === 429) return "Wait a moment and try again.";
    if (this.status === 404 && this.code === -32601 && this.method) {
      return `This kitplayd has no ${this.method}: update kitplay (the page is newer than it).`;
    }
    return "";
  }
}

export function signInHelp() {
  return "Open the URL that kitplay-bridge printed, or run `kitplay open --browser` for a " +
    "new one.";
}

// ------------------------------------------------------------------------------- session

export function token() { return sessionStorage.getItem(SESSION_KEY) || ""; }
export function signedIn() { return !!token(); }

const listeners = { signedOut: new Set() };
export function onSignedOut(fn) { listeners.signedOut.add(fn); }
function signedOut() { for (const fn of listeners.signedOut) fn(); }

// The one-time code in the address bar is traded as soon as this module runs: index.html
// loads it on its own (async), so the sign-in travels while the rest of the page loads.
// The code comes off the URL at once. A page controlled by a service worker never sends it:
// the bridge never registers one, so one controlling this page was put here by someone
// else, and would see the sign-in (the code, the session in every request).
const codeLogin = (() => {
  const m = /(?:^#|&)code=([^&]*)/.exec(location.hash);
  if (!m) return null;
  history.replaceState(null, "", location.pathname + location.search); // off the URL
  if (navigator.serviceWorker && navigator.serviceWorker.controller) {
    return Promise.resolve({ refused: true });
  }
  return fetch("/api/v1/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code: decodeURIComponent(m[1]) }),
  }).then(async (resp) => {
    const body = await resp.json().catch(() => null);
    if (resp.ok && body && typeof body.session === "string") {
      sessionStorage.setItem(SESSION_KEY, body.session);
      prefetch();
    }
    return { resp, body };
  }, (error) => ({ error }));
})();

// Sign in: the one-time code in the address bar, else this tab's session, else the session
// of another open tab of this origin (BroadcastChannel). Resolves to how ("code", "tab",
// "joined"); rejects with the reason when none works.
export async function signIn() {
  let how = null;
  if (codeLogin) {
    const got = await codeLogin;
    if (got.refused) {
      throw new Error("Not signing in: a service worker that is not kitplay's controls this " +
        "page. Close this tab and run `kitplay open --browser` for a fresh address.");
    }
    if (got.error) throw got.error;
    const { resp, body } = got;
    if (resp.ok) {
      how = "code"; // the session is stored (codeLogin)
    } else if (!signedIn()) {
      throw new ApiError(resp.status, body && body.error);
    }
  }
  if (!how && signedIn()) how = "tab";
  if (!how) {
    const joined = await joinSignIn();
    if (joined) { sessionStorage.setItem(SESSION_KEY, joined); how = "joined"; }
  }
  if (!how) throw new Error(`Not signed in. ${signInHelp()}`);
  performance.mark("kitplay:signed-in");
  answerJoins();
  return how;
}

// Joining another tab's sign-in.
//
// BroadcastChannel reaches only documents of this very origin (scheme, host and port; and,
// in Chromium, of the same top-level site), so another origin can neither ask nor listen.
// Within the origin, a join request proves that it is fresh and who may read the answer:
// it carries a random id and an ephemeral ECDH public key; a tab that holds a session
// answers that id only, with the session sealed (AES-GCM) under the key both sides derive,
// so a document that merely listens on the channel learns nothing, and a tab only ever
// takes an answer to a request it made itself (an unasked-for "session" is ignored).
const subtle = globalThis.crypto && crypto.subtle;
const ECDH = { name: "ECDH", namedCurve: "P-256" };

async function sealKey(privateKey, peerRaw) {
  const peer = await subtle.importKey("raw", peerRaw, ECDH, false, []);
  return subtle.deriveKey({ name: "ECDH", public: peer }, privateKey,
    { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

function randomId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0")).join("");
}

async function joinSignIn() {
  if (typeof BroadcastChannel === "undefined" || !subtle) return null;
  const pair = await subtle.generateKey(ECDH, false, ["deriveKey"]);
  const raw = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
  const id = randomId();
  const channel = new BroadcastChannel(CHANNEL);
  try {
    return await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), JOIN_WAIT_MS);
      channel.onmessage = async (event) => {
        const msg = event.data;
        if (!msg || msg.type !== "offer" || msg.id !== id) return;
        try {
          const key = await sealKey(pair.privateKey, msg.key);
          const plain = await subtle.decrypt({ name: "AES-GCM", iv: msg.iv }, key, msg.box);
          clearTimeout(timer);
          resolve(new TextDecoder().decode(plain));
        } catch (err) { /* not sealed for us: keep waiting */ }
      };
      channel.postMessage({ type: "join", id, key: raw });
    });
  } finally {
    channel.close();
  }
}

let answering = null;
function answerJoins() {
  if (answering || typeof BroadcastChannel === "undefined" || !subtle) return;
  answering = new BroadcastChannel(CHANNEL);
  answering.onmessage = async (event) => {
    const msg = event.data;
    if (!msg || msg.type !== "join" || typeof msg.id !== "string" ||
        !(msg.key instanceof Uint8Array) || !signedIn()) return;
    try {
      const pair = await subtle.generateKey(ECDH, false, ["deriveKey"]);
      const key = await sealKey(pair.privateKey, msg.key);
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const box = new Uint8Array(await subtle.encrypt({ name: "AES-GCM", iv }, key,
        new TextEncoder().encode(token())));
      const mine = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
      answering.postMessage({ type: "offer", id: msg.id, key: mine, iv, box });
    } catch (err) { /* a malformed key: no answer */ }
  };
}

// ----------------------------------------------------------------------------------- REST

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function request(verb, url, body) {
  const init = { method: verb, headers: { Authorization: `Bearer ${token()}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(url, init);
}

// Call a daemon method through its REST route. GETs are retried on a lost connection or a
// daemon that is restarting (503); any call is retried once after a rate-limit refusal
// (429: nothing was done). Rejects with ApiError (its .hint says what to do next).
export async function call(method, params = {}) {
  const [verb, url, body] = routeOf(method, params);
  for (let attempt = 0; ; attempt++) {
    let resp;
    try {
      resp = attempt === 0 && early.has(url) ? await takeEarly(url)
        : await request(verb, url, body);
    } catch (err) {
      if (verb === "GET" && attempt < 3) { await sleep(250 * 2 ** attempt); continue; }
      throw new ApiError(0, { message: "the bridge is unreachable (stopped, or the " +
        "network dropped)" }, method);
    }
    const data = await resp.json().catch(() => null);
    if (resp.ok) return data;
    const err = new ApiError(resp.status, data && data.error, method);
    if (resp.status === 429 && attempt < 1) {
      const wait = Number(resp.headers.get("Retry-After") || "1");
      await sleep(Math.min(5, Math.max(0.2, wait)) * 1000);
      continue;
    }
    if (resp.status === 503 && verb === "GET" && attempt < 3) {
      await sleep(250 * 2 ** attempt);
      continue;
    }
    if (resp.status === 401) signedOut();
    throw err;
  }
}

// A method's REST request: [verb, url, JSON body or undefined].
function routeOf(method, params) {
  const route = ROUTES[method];
  if (!route) throw new Error(`unknown method ${method}`);
  const [verb, template] = route;
  const rest = { ...params };
  const path = template.replace(/\{(\w+)\}/g, (_, name) => {
    const v = rest[name];
    delete rest[name];
    return encodeURIComponent(v);
  });
  let url = "/api/v1" + path;
  let body;
  if (verb === "GET") {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(rest)) {
      if (v === undefined || v === null || v === "") continue;
      if (Array.isArray(v)) for (const item of v) q.append(k, item);
      else q.append(k, String(v));
    }
    const qs = q.toString();
    if (qs) url += "?" + qs;
  } else if (verb === "POST" || Object.keys(rest).length) {
    body = rest;
  }
  return [verb, url, body];
}

// The first page of the jobs list (what most visits look at first) is asked for as soon as
// the session is known, while the page's modules still load; the jobs panel's first call
// takes that answer. Only GETs of a given URL, each used once.
export const JOBS_PAGE = 20;
const early = new Map();

function startEarly(method, params) {
  const [verb, url] = routeOf(method, params);
  if (verb !== "GET" || early.has(url)) return;
  const pending = request(verb, url);
  pending.catch(() => {}); // a failure is the caller's to see, when it takes the answer
  early.set(url, pending);
}

function takeEarly(url) {
  const pending = early.get(url);
  early.delete(url);
  return pending;
}

function prefetch() {
  startEarly("jobs.list", { limit: JOBS_PAGE, offset: 0 });
}

// A file the bridge serves with the session header (a template's icon): a blob: URL for
// an <img>, or null. The caller revokes it once the image has loaded.
export async function blobUrl(path) {
  if (typeof path !== "string" || !path.startsWith("/api/")) return null;
  try {
    const resp = await request("GET", path);
    if (!resp.ok) return null;
    const type = (resp.headers.get("Content-Type") || "").split(";")[0].trim();
    if (!/^image\/(png|jpeg|gif|webp|svg\+xml|x-icon|vnd\.microsoft\.icon)$/.test(type)) {
      return null;
    }
    return URL.createObjectURL(await resp.blob());
  } catch (err) {
    return null;
  }
}

// A job's whole log, read page by page, as one Blob (for a download).
export async function logBlob(jobId, onProgress) {
  const parts = [];
  let offset = 0;
  for (;;) {
    const page = await call("jobs.logs", { job_id: jobId, offset, limit: 4 * 1024 * 1024 });
    parts.push(page.data);
    offset = page.next_offset;
    if (onProgress) onProgress(offset);
    if (page.eof || page.next_offset === page.offset) break;
  }
  return new Blob(parts, { type: "text/plain;charset=utf-8" });
}

// -------------------------------------------------------------------------------- streams

// Follow a job's log and state over the WebSocket, from a byte offset. A dropped
// connection reconnects from the last next_offset (nothing lost, nothing twice), backing off
// up to 5 s. Handlers: output(text), state(job), end(job), conn(state, words), where state
// is "connecting" | "live" | "retry" | "signin" | "closed".
export class Follower {
  constructor(jobId, handlers, offset = 0) {
    this.jobId = jobId;
    this.h = handlers;
    this.nextOffset = offset;
    this.ended = false;
    this.closed = false;
    this.retry = 0;
    this.connects = 0;
    this.ws = null;
    this.timer = null;
    this.connect();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) { this.ws.onclose = null; this.ws.close(); this.ws = null; }
  }

  drop() { if (this.ws) this.ws.close(); } // for tests: see it resume

  emit(name, ...args) { if (!this.closed && this.h[name]) this.h[name](...args); }

  async connect() {
    if (this.closed) return;
    this.emit("conn", "connecting", "connecting…");
    let ticket;
    try {
      ticket = (await postRaw("/api/v1/stream-tickets")).ticket;
    } catch (err) {
      if (this.closed || this.ws) return;
      if (err instanceof ApiError && err.status === 401) {
        // The bridge restarted and this page's session ended with it: retrying cannot help.
        this.emit("conn", "signin", `Signed out: the bridge restarted. ${signInHelp()}`);
        signedOut();
        return;
      }
      this.later(err instanceof ApiError && err.status ? err.message : "the bridge is unreachable");
      return;
    }
    if (this.closed || this.ws) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/stream/` +
      `${encodeURIComponent(this.jobId)}?offset=${this.nextOffset}` +
      `&ticket=${encodeURIComponent(ticket)}`);
    this.ws = ws;
    this.connects += 1;
    ws.onopen = () => { if (this.ws === ws) this.emit("conn", "live", "live"); };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      const msg = JSON.parse(event.data);
      if (msg.type === "output") {
        if (msg.offset !== this.nextOffset) return; // offsets are contiguous
        this.nextOffset = msg.next_offset;
        this.retry = 0;
        this.emit("output", msg.data);
      } else if (msg.type === "state") {
        this.emit("state", msg.job);
      } else if (msg.type === "end") {
        this.ended = true;
        this.emit("end", msg.job);
      } else if (msg.type === "error") {
        this.emit("conn", "retry", msg.error.message);
      }
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.ended) { this.emit("conn", "closed", ""); return; }
      // 1013 (try again later): the bridge lost the daemon, which is restarting or stopped.
      this.later(event.code === 1013 ? "the daemon is away" : "connection lost");
    };
  }

  later(why) {
    const delay = Math.min(5000, 250 * 2 ** this.retry++);
    this.emit("conn", "retry", `${why}; reconnecting from byte ${this.nextOffset}…`);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}

async function postRaw(url) {
  let resp;
  try {
    resp = await request("POST", url, {});
  } catch (err) {
    throw new ApiError(0, { message: "the bridge is unreachable" });
  }
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data && data.error);
  return data;
}

// The OpenAPI document (for the reference page).
export async function openapi() {
  const resp = await request("GET", "/api/v1/openapi.json");
  if (!resp.ok) {
    const data = await resp.json().catch(() => null);
    throw new ApiError(resp.status, data && data.error);
  }
  return resp.json();
}

// A reload of a signed-in tab asks for its first jobs at once too (here, at the end: the
// early-request table above must exist first).
if (!codeLogin && signedIn()) prefetch();
