// pio web UI: a single page with hash routes (#/inventory, #/experiments[/EXP],
// #/pioreactors[/EXP], #/profiles[/EXP], #/cluster). Plain ES module, no build step, no framework.
// Live updates come from GET /api/events on the node this page was loaded from;
// every /api call goes to that node, which forwards it to the leader. Writes carry
// the cluster's API token (see "sign-in" below).

// ---------- small DOM helpers ----------

/** h builds an element: h("button", {class: "x", onclick: f}, "text", child...). */
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}
const $ = (sel, root = document) => root.querySelector(sel);
const sleep = ms => new Promise(r => setTimeout(r, ms));

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map(v => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 2) return "just now";
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}
const when = iso => (iso ? new Date(iso).toLocaleString() : "—");

/** A stable colour per experiment name, so assignments are easy to spot. */
function expColor(name) {
  let x = 0;
  for (const c of name) x = (x * 31 + c.codePointAt(0)) >>> 0;
  return `hsl(${x % 360} 70% 88%)`;
}
const expChip = name => h("span", { class: "exp-chip", style: `background:${expColor(name)}` }, name);

// ---------- the API ----------

/** ApiError carries the API's {error, status, cause, remediation}. */
class ApiError extends Error {
  constructor(body, status) {
    super(body.error || `HTTP ${status}`);
    this.status = body.status || status;
    this.cause = body.cause || "";
    this.remediation = body.remediation || "";
    this.errors = Array.isArray(body.errors) ? body.errors : []; // a profile's errors, with line and column
  }
}

const conn = { nodeDown: false, lastOK: Date.now() };

const unreachable = e => new ApiError({ error: "this node does not answer", cause: `${location.host} is unreachable (${e.message})`, remediation: "check that the Pioreactor is powered and on the network, or open the UI on another node" }, 0);

/**
 * api sends one request to this node, with the API token once signed in. A write
 * carries one X-Request-Id for all its attempts, so retrying it is safe. 503 (no
 * leader yet: Retry-After) and a node that does not answer are retried until
 * `patience` ms have passed. A 401 (no token, or not this cluster's) asks to sign
 * in, then sends the same request again.
 */
async function api(method, path, body, { patience = 20000, text: asText = false } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-Request-Id"] = uuid();
  let deadline = Date.now() + patience;
  for (let attempt = 0; ; attempt++) {
    const sent = auth.token;
    if (sent) headers.Authorization = `Bearer ${sent}`; else delete headers.Authorization;
    let r;
    try {
      r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
    } catch (e) {
      setNodeDown(true);
      if (Date.now() < deadline) { await sleep(Math.min(1000, 200 * (attempt + 1))); continue; }
      throw unreachable(e);
    }
    setNodeDown(false);
    if (r.status === 503 && Date.now() < deadline) {
      const wait = Math.min(2000, Math.max(200, 1000 * (parseFloat(r.headers.get("Retry-After")) || 0.5)));
      await r.body?.cancel();
      await sleep(wait);
      continue;
    }
    const text = await r.text();
    if (asText && r.ok) return { status: r.status, data: text };
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
    if (r.status === 401) {
      // Refused before anything was done: once signed in, the same request (same
      // X-Request-Id) goes again. Reads ask only until a sign-in was cancelled.
      const e = new ApiError(data || {}, 401);
      if (auth.token !== sent) continue; // signed in meanwhile
      if ((method !== "GET" || !auth.dismissed) && await signIn(whyOf(e, method))) { deadline = Date.now() + patience; continue; }
      if (auth.token) { auth.refused = true; renderAuth(); }
      throw e;
    }
    if (!r.ok) throw new ApiError(data || {}, r.status);
    return { status: r.status, data };
  }
}
const get = async path => (await api("GET", path)).data;

/** task waits for a 202 task answer to finish, polling its result URL on this node every `every` ms. */
async function task(accepted, timeout = 30000, every = 250) {
  const a = accepted.data || accepted;
  if (!a || !a.result_url_path) return a;
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const r = await api("GET", a.result_url_path);
    if (r.status === 200) {
      if (r.data.status === "failed") throw new ApiError(r.data, 500);
      // Fan-out results are keyed by unit: a failed unit fails the whole.
      const res = r.data.result;
      if (res && typeof res === "object") {
        for (const v of Object.values(res)) if (v && v.status === "failed") throw new ApiError(v, 500);
      }
      return r.data;
    }
    await sleep(every);
  }
  throw new ApiError({ error: "the task did not finish in time", cause: `still running after ${timeout / 1000} s`, remediation: "look at the unit's state again in a moment" }, 0);
}

function errorBox(e) {
  const cause = e.cause || "";
  const remedy = e.remediation || "";
  return h("div", { class: "error-box", role: "alert" },
    h("strong", {}, e.message || String(e)),
    cause && h("div", {}, "Cause: ", cause),
    remedy && h("div", {}, "What to do: ", remedy));
}

function toast(msg, bad) {
  const t = h("div", { class: "toast" + (bad ? " bad" : "") }, msg);
  const box = $("#toasts");
  box.append(t);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => t.remove(), bad ? 9000 : 3500);
}

/** act runs an action of a button: disables it, shows errors with cause and remediation. */
async function act(btn, label, fn) {
  if (btn) btn.disabled = true;
  try {
    const res = await fn();
    if (label) toast(label);
    return res;
  } catch (e) {
    showError(e);
  } finally {
    if (btn) btn.disabled = false;
  }
}

function showError(e) {
  const box = errorBox(e);
  const place = $("#page-error");
  if (place) place.replaceChildren(box);
  toast(`${e.message}${e.cause ? ": " + e.cause : ""}`, true);
}

// ---------- sign-in ----------

// Writes need the cluster's API token (`sudo pio token --api` on any of its
// Pioreactors); with api.read_auth, reads too. The page asks for it once, keeps
// it in this origin's localStorage, and sends it with every request.

const TOKEN_KEY = "pio.apiToken";
const auth = {
  token: "",
  mode: "", // how this node takes writes (GET /unit_api/health): "token", "off", "open"; "" not known
  readAuth: false, // reads need the token too (api.read_auth)
  refused: false, // the kept token was refused: it is not this cluster's (any more)
  dismissed: false, // a sign-in was cancelled: reads in the background do not ask again
};
let started = false; // the page has read the node's health and connected
try { auth.token = localStorage.getItem(TOKEN_KEY) || ""; } catch { /* storage blocked: ask on each load */ }

function keepToken(token) {
  auth.token = token;
  try { if (token) localStorage.setItem(TOKEN_KEY, token); else localStorage.removeItem(TOKEN_KEY); } catch { /* kept for this page only */ }
}

/** whyOf says why a sign-in is needed, after a 401. */
function whyOf(e, method) {
  const what = auth.token ? "This browser's API token was refused: the Pioreactor may have joined another cluster, or its token was changed."
    : method === "GET" ? "Reading this cluster needs its API token (api.read_auth is on)." : "Changing the cluster needs its API token.";
  return [what, " ", h("span", { class: "hint" }, "Cause: ", e.cause || e.message)];
}

/** checkToken asks this node whether it takes token (POST /unit_api/auth_check changes nothing). */
async function checkToken(token) {
  let r;
  try {
    r = await fetch("/unit_api/auth_check", { method: "POST", headers: { Accept: "application/json", Authorization: `Bearer ${token}` }, cache: "no-store" });
  } catch (e) { throw unreachable(e); }
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(data || {}, r.status);
  return data || {};
}

let signingIn = null;
/**
 * signIn opens the sign-in dialog (one for every request waiting on it) and
 * resolves true once the node took the token, which is then kept; false when
 * the user cancels. why (optional) says what asked for it.
 */
function signIn(why) {
  if (signingIn) return signingIn;
  signingIn = new Promise(resolve => {
    let ok = false;
    openDialog(document.activeElement, close => {
      const input = h("input", { id: "signin-token", name: "token", type: "password", required: true, autocomplete: "off", autocapitalize: "off", spellcheck: "false", autofocus: true, "aria-describedby": "signin-hint" });
      const err = h("div", { id: "signin-error", "aria-live": "polite" });
      const submit = h("button", { class: "primary", type: "submit", id: "signin-submit" }, "Sign in");
      const form = h("form", {
        onsubmit: async ev => {
          ev.preventDefault();
          const token = input.value.trim();
          if (!/^[\x21-\x7e]+$/.test(token)) {
            err.replaceChildren(errorBox({ message: "that is not an API token", cause: "it has spaces or characters a token does not have", remediation: "copy the whole line that `sudo pio token --api` prints" }));
            input.focus();
            return;
          }
          submit.disabled = input.readOnly = true;
          err.replaceChildren(h("progress", { "aria-label": "checking the token" }));
          try {
            const res = await checkToken(token);
            if (!$("#signin-dialog").open) return; // cancelled meanwhile
            keepToken(token);
            Object.assign(auth, { refused: false, dismissed: false });
            if (res.auth) Object.assign(auth, { mode: res.auth, readAuth: !!res.read_auth });
            ok = true;
            close();
            toast("Signed in");
          } catch (e) {
            err.replaceChildren(errorBox(e));
            submit.disabled = input.readOnly = false;
            input.select();
            input.focus();
          }
        },
      },
      h("h2", { id: "signin-title" }, "Sign in"),
      why ? h("p", { id: "signin-why" }, why) : null,
      h("div", { class: "field" }, h("label", { for: "signin-token" }, "API token"), input,
        h("span", { class: "hint", id: "signin-hint" }, "Print it with ", h("code", {}, "sudo pio token --api"), " on any Pioreactor of the cluster. This browser keeps it until you sign out.")),
      err,
      h("div", { class: "buttons" }, h("button", { type: "button", id: "signin-cancel", onclick: close }, "Cancel"), submit));
      return [form];
    }, $("#signin-dialog"), () => {
      signingIn = null;
      if (!ok) auth.dismissed = true;
      renderAuth();
      if (ok && started && auth.readAuth) { connectEvents(); refresh(); } // the stream and reads take the new token
      resolve(ok);
    });
  });
  return signingIn;
}

function signOut() {
  keepToken("");
  fetch("/unit_api/sign_out", { method: "POST" }).catch(() => { /* the cookie stays until the node answers */ });
  auth.refused = false;
  if (auth.readAuth) { location.reload(); return; } // nothing of the cluster may stay on the page
  renderAuth();
  toast("Signed out: the next change asks for the API token");
}

/** renderAuth shows the sign-in state in the header and warns when the API is open to anyone. */
function renderAuth() {
  const open = auth.mode === "off" || auth.mode === "open";
  const signedIn = !!auth.token && !auth.refused;
  $("#auth").hidden = open && !auth.token;
  $("#auth-state").textContent = signedIn ? "Signed in" : auth.token ? "Token refused" : "";
  $("#auth-button").textContent = signedIn ? "Sign out" : "Sign in";
  const b = $("#auth-banner");
  if (auth.mode === "off") {
    b.replaceChildren(h("code", {}, "api.auth"), " is off on this Pioreactor: anyone on the network can change the cluster. ",
      h("span", { class: "hint" }, "To require the API token, remove ", h("code", {}, "api.auth: off"), " from its config (or PIO_API_AUTH) and restart pio."));
  } else if (auth.mode === "open") {
    b.replaceChildren("This cluster has no secrets (it was made by an older pio): anyone on the network can change it. Run ",
      h("code", {}, "pio security enable"), " on any Pioreactor.");
  }
  b.hidden = !open;
}

/** loadHealth learns from this node how its API takes writes and reads. */
async function loadHealth() {
  try {
    const hl = (await api("GET", "/unit_api/health", undefined, { patience: 0 })).data || {};
    Object.assign(auth, { mode: hl.auth || "", readAuth: !!hl.read_auth });
  } catch { /* not answering (the red banner says so), or an older node */ }
  renderAuth();
}

/** checkKeptToken tells whether the token this browser kept is still this cluster's. */
async function checkKeptToken() {
  try { await checkToken(auth.token); auth.refused = false; }
  catch (e) { if (e.status === 401) auth.refused = true; }
  renderAuth();
}

// ---------- state, refreshed by topic ----------

const S = {
  hello: null, cluster: null, workers: [], assignments: [], counts: [], experiments: [],
  events: [], jobs: {}, labels: {}, series: {}, logs: null, logsMissing: false,
  profiles: [], runs: {},
};

const fetchers = {
  async cluster() {
    try { S.cluster = await get("/api/cluster"); }
    catch (e) {
      if (e.status !== 0) S.cluster = await get("/api/cluster?stale=true");
      else throw e;
    }
  },
  async inventory() {
    const [w, a, c] = await Promise.all([get("/api/workers"), get("/api/workers/assignments"), get("/api/experiments/assignment_count")]);
    S.workers = w; S.assignments = a; S.counts = c;
  },
  async experiments() { S.experiments = await get("/api/experiments"); },
  async events() { S.events = await get("/api/cluster/events"); },
  async jobs() {
    S.jobs = await get("/api/workers/$broadcast/jobs/running");
  },
  async labels() {
    const exp = currentExp();
    if (exp) S.labels[exp] = await get(`/api/experiments/${encodeURIComponent(exp)}/unit_labels`);
  },
  async profiles() { S.profiles = await get("/api/experiment_profiles"); },
  async runs() {
    const exp = currentExp();
    if (exp && route().page === "profiles") S.runs[exp] = await get(`/api/experiments/${encodeURIComponent(exp)}/experiment_profiles/recent`);
  },
  async readings() {
    const exp = currentExp();
    if (!exp || route().page !== "pioreactors") return;
    const e = encodeURIComponent(exp);
    const [od, gr, temp] = await Promise.all(["od_readings", "growth_rates", "temperature_readings"].map(
      s => get(`/api/experiments/${e}/time_series/${s}?lookback=12&max_points=300`)));
    S.series[exp] = { od, gr, temp };
    if (!S.logsMissing) {
      try { S.logs = await get(`/api/experiments/${e}/recent_logs`); }
      catch (err) { if (err.status === 404) { S.logsMissing = true; S.logs = null; } }
    }
  },
};

// Which topics each page needs; an event refetches only those.
const pageTopics = {
  inventory: ["cluster", "inventory", "experiments"],
  experiments: ["cluster", "inventory", "experiments", "labels"],
  pioreactors: ["cluster", "inventory", "experiments", "labels", "jobs", "readings"],
  profiles: ["cluster", "inventory", "experiments", "profiles", "runs"],
  cluster: ["cluster", "events", "inventory"],
};

let pending = new Set();
let refreshWaiters = [];
let refreshing = false;
let refreshTimer = null;

/** refresh refetches topics (coalesced) and re-renders the page; it resolves when done. */
function refresh(...topics) {
  for (const t of topics.length ? topics : pageTopics[route().page]) pending.add(t);
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(runRefresh, 30);
  return new Promise(r => refreshWaiters.push(r));
}

async function runRefresh() {
  if (refreshing) return; // the running loop picks the new topics up
  refreshing = true;
  try {
    for (;;) {
      const wanted = new Set(pageTopics[route().page]);
      const topics = [...pending].filter(t => wanted.has(t));
      if (!topics.length) break;
      for (const t of topics) pending.delete(t); // the others wait for a page that needs them
      const waiters = refreshWaiters; refreshWaiters = [];
      // The inventory first: the jobs and labels depend on who is where.
      if (topics.includes("inventory") && topics.length > 1) await fetchers.inventory().catch(() => {});
      const results = await Promise.allSettled(topics.filter(t => t !== "inventory" || topics.length === 1).map(t => fetchers[t]()));
      const failed = results.find(r => r.status === "rejected");
      if (failed && failed.reason.status !== 0 && failed.reason.status !== 404) console.warn("refresh:", failed.reason.message);
      if (failed?.reason.status === 401 && !S.cluster && !S.workers.length) readsRefused(failed.reason);
      render();
      renderStatus();
      waiters.forEach(r => r());
    }
  } finally {
    refreshing = false;
    const waiters = refreshWaiters; refreshWaiters = [];
    waiters.forEach(r => r());
  }
}

// ---------- live updates ----------

let es = null;
let esRetry = null;
function connectEvents() {
  clearTimeout(esRetry);
  es?.close();
  es = null;
  // With api.read_auth the stream needs the token too, in its URL: an EventSource sends no headers.
  if (auth.readAuth && !auth.token) { renderStatus(); return; }
  const mine = es = new EventSource(auth.readAuth ? `/api/events?access_token=${encodeURIComponent(auth.token)}` : "/api/events");
  es.onmessage = m => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    switch (ev.type) {
      case "hello":
        S.hello = ev; setNodeDown(false);
        loadHealth(); // a node that restarted may take writes another way now
        refresh(...pageTopics[route().page]);
        break;
      case "leader":
        if (S.hello) Object.assign(S.hello, { leader: ev.leader, leader_id: ev.leader_id, term: ev.term });
        renderStatus();
        refresh(...pageTopics[route().page]);
        break;
      case "members": refresh("cluster", "inventory", "jobs"); break;
      case "inventory": refresh("inventory", "cluster", "jobs"); break;
      case "experiments": refresh("experiments", "inventory", "labels"); break;
      case "event": refresh("events"); break;
      case "readings": if (route().page === "pioreactors") scheduleReadings(); break;
      case "profiles": refresh("profiles", "runs"); break; // profiles, runs, their steps
    }
  };
  es.onerror = () => {
    if (es !== mine) return;
    if (es.readyState === EventSource.CLOSED) {
      // Refused (401: reads need a token this page lacks) or failed: the node's
      // health, then a read, tell which; the read asks to sign in if need be.
      loadHealth().then(() => {
        if (es !== mine) return;
        if (!auth.readAuth) { esRetry = setTimeout(connectEvents, 2000); return; }
        get("/api/cluster?stale=true").then(() => { if (es === mine) esRetry = setTimeout(connectEvents, 2000); }, () => {});
      });
      return;
    }
    // CONNECTING: the browser retries by itself; say so if it lasts.
    setTimeout(() => { if (es === mine && es.readyState !== EventSource.OPEN) setNodeDown(true); }, 1500);
  };
}
// New readings refresh the charts at once, then at most every 2 s: the
// leader stores the workers' readings every 2 s, so a reading shows within
// ~4 s of being measured.
let readingsTimer = null;
let readingsAt = 0;
function scheduleReadings() {
  if (readingsTimer) return;
  const wait = Math.max(0, readingsAt + 2000 - Date.now());
  readingsTimer = setTimeout(() => { readingsTimer = null; readingsAt = Date.now(); refresh("readings"); }, wait);
}

function setNodeDown(down) {
  if (down === conn.nodeDown) return;
  conn.nodeDown = down;
  const b = $("#banner");
  if (down) {
    const others = (S.cluster?.members || []).filter(m => m.http_addr && m.http_addr !== location.host && m.health === "alive");
    b.replaceChildren(
      `This node (${S.hello?.node || location.host}) does not answer: it may be down or restarting. The page reconnects by itself.`,
      others.length ? h("span", {}, " Or open another node: ", others.map((m, i) => [i ? ", " : "", h("a", { href: `http://${m.http_addr}/${location.hash}` }, m.name)])) : "");
    b.hidden = false;
  } else {
    b.hidden = true;
    if (es && es.readyState !== EventSource.OPEN) connectEvents();
  }
  renderStatus();
}

function renderStatus() {
  const dot = $("#live-dot");
  const live = es && es.readyState === EventSource.OPEN && !conn.nodeDown;
  dot.className = "dot " + (conn.nodeDown ? "down" : live ? "live" : "");
  const node = S.hello?.node || location.host;
  // This node's live view (from its event stream) first: it changes before /api/cluster is refetched.
  const leader = S.hello ? S.hello.leader : S.cluster?.leader?.name;
  const term = S.hello ? S.hello.term : S.cluster?.term;
  $("#status-text").textContent = conn.nodeDown
    ? `${node}: not answering`
    : auth.readAuth && (!auth.token || auth.refused) ? `${node}: sign in to see the cluster`
    : `via ${node} · leader ${leader || "none (electing…)"}${term ? " · term " + term : ""}`;
}

// ---------- routing ----------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = pageTopics[parts[0]] ? parts[0] : "inventory";
  return { page, arg: parts[1] || "" };
}
function currentExp() {
  const { arg } = route();
  if (arg) return arg;
  return S.experiments[0]?.experiment || "";
}

let lastPage = "";
function onRoute() {
  const { page } = route();
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const title = { inventory: "Inventory", experiments: "Experiments", pioreactors: "Pioreactors", profiles: "Profiles", cluster: "Cluster" }[page];
  document.title = `${title} · pio`;
  if (page !== lastPage) {
    lastPage = page;
    $("#main").replaceChildren(h("p", { class: "muted" }, "Loading…"));
    lastHTML = "";
    $("#main").focus({ preventScroll: true });
  }
  render();
  refresh(...pageTopics[page]);
}

// ---------- rendering ----------

/** readsRefused fills the page when nothing could be read without the API token. */
function readsRefused(e) {
  lastHTML = "";
  $("#main").replaceChildren(h("h1", {}, "Sign in to see the cluster"), errorBox(e),
    h("button", { class: "primary", onclick: () => signIn() }, "Sign in"));
}

/** render redraws the current page, keeping focus and what is typed in its forms. */
function render() {
  const main = $("#main");
  // Do not redraw under a user typing in a form of the page.
  const active = document.activeElement;
  if (active && main.contains(active) && (active.tagName === "INPUT" || active.tagName === "TEXTAREA" || active.tagName === "SELECT")) {
    deferredRender = true; return;
  }
  if (!S.cluster && !S.workers.length) return;
  const focusKey = active && main.contains(active) ? active.dataset.key : null;
  const scrollY = window.scrollY;
  const { page } = route();
  const view = { inventory: inventoryPage, experiments: experimentsPage, pioreactors: pioreactorsPage, profiles: profilesPage, cluster: clusterPage }[page]();
  // Most events change nothing on this page: keep the DOM (and focus, and clicks in flight) then.
  const html = view.outerHTML;
  if (html === lastHTML && main.firstElementChild) return;
  lastHTML = html;
  main.replaceChildren(view);
  if (!firstRender) firstRender = performance.now();
  if (focusKey) main.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus({ preventScroll: true });
  window.scrollTo(0, scrollY);
}
let deferredRender = false;
let lastHTML = "";
let firstRender = 0; // when the first page with data was drawn (ms since navigation)
document.addEventListener("focusout", () => setTimeout(() => {
  if (deferredRender && !$("#main").contains(document.activeElement)) { deferredRender = false; render(); }
}, 0));

const membersById = () => Object.fromEntries((S.cluster?.members || []).map(m => [m.node_id, m]));
const expOf = unit => S.assignments.find(a => a.pioreactor_unit === unit)?.experiment || null;

function roleBadges(m) {
  if (!m) return [];
  return [m.leader && h("span", { class: "badge leader", title: "Raft leader: answers the API" }, "leader"),
    m.voter ? h("span", { class: "badge voter" }, "voter") : h("span", { class: "badge nonvoter" }, "non-voter")];
}
const healthBadge = health => h("span", { class: `badge ${health || "unknown"}` }, health || "unknown");

// ----- Inventory -----

function inventoryPage() {
  const members = membersById();
  const unassigned = S.workers.filter(w => !expOf(w.pioreactor_unit)).length;
  const head = h("div", { class: "page-head" },
    h("h1", {}, "Inventory"),
    h("button", { class: "primary", id: "add-worker", "data-key": "add-worker", onclick: ev => addWorkerDialog(ev.currentTarget) }, "Add new Pioreactor"));
  const summary = h("ul", { class: "summary", "aria-label": "Assignments by experiment" },
    S.counts.map(c => h("li", {}, expChip(c.experiment), ` ${c.worker_count} worker${c.worker_count === 1 ? "" : "s"}`)),
    h("li", {}, h("strong", {}, "Unassigned"), ` ${unassigned}`),
    h("li", {}, h("strong", {}, "Total"), ` ${S.workers.length} (${S.workers.filter(w => w.is_active).length} active)`));
  const rows = S.workers.map(w => inventoryRow(w, members[w.node_id]));
  const table = h("div", { class: "scroll" }, h("table", { class: "stack", id: "inventory" },
    h("thead", {}, h("tr", {}, ["Pioreactor", "Health", "Active", "Experiment", "Model", "Address", "Node ID", "Actions"].map(t => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No Pioreactors yet: add one.")))));
  return h("div", {}, head, h("div", { id: "page-error" }), summary, table);
}

function inventoryRow(w, m) {
  const unit = w.pioreactor_unit;
  const exp = expOf(unit);
  const active = !!w.is_active;
  const k = s => `${s}-${unit}`;
  return h("tr", { dataset: { unit } },
    h("td", { "data-label": "Pioreactor" }, h("strong", {}, unit), " ", roleBadges(m)),
    h("td", { "data-label": "Health" }, healthBadge(w.health), h("div", { class: "hint" }, "seen ", ago(w.last_seen))),
    h("td", { "data-label": "Active" }, h("button", {
      class: "switch", role: "switch", "aria-checked": String(active), "data-key": k("active"),
      "aria-label": `${unit} active`,
      onclick: ev => act(ev.currentTarget, `${unit} is now ${active ? "inactive" : "active"}`, async () => {
        await api("PUT", `/api/workers/${encodeURIComponent(unit)}/is_active`, { is_active: active ? 0 : 1 });
        await refresh("inventory", "cluster");
      }),
    }, h("span", { class: "knob", "aria-hidden": "true" }), active ? "active" : "inactive")),
    h("td", { "data-label": "Experiment" }, exp ? h("a", { href: `#/pioreactors/${encodeURIComponent(exp)}` }, expChip(exp)) : h("span", { class: "muted" }, "unassigned")),
    h("td", { "data-label": "Model" }, [w.model_name, w.model_version].filter(Boolean).join(" ") || h("span", { class: "muted" }, "—")),
    h("td", { "data-label": "Address", class: "mono" }, w.ipv4_address || m?.http_addr || "—"),
    h("td", { "data-label": "Node ID", class: "mono", title: w.node_id }, (w.node_id || "").slice(0, 8)),
    h("td", { "data-label": "Actions", class: "actions" },
      h("button", { class: "small", "data-key": k("identify"), onclick: ev => act(ev.currentTarget, `${unit} blinked`, async () => {
        await task(await api("POST", `/api/workers/${encodeURIComponent(unit)}/blink`));
      }) }, "Identify"), " ",
      h("button", { class: "small", "data-key": k("unassign"), disabled: !exp, onclick: ev => act(ev.currentTarget, `${unit} unassigned from ${exp}`, async () => {
        await api("DELETE", `/api/experiments/${encodeURIComponent(exp)}/workers/${encodeURIComponent(unit)}`);
        await refresh("inventory");
      }) }, "Unassign"), " ",
      h("button", { class: "small", "data-key": k("reboot"), onclick: ev => confirmDialog(ev.currentTarget, {
        title: `Reboot ${unit}?`, body: "Its activities stop while it restarts.", yes: "Reboot",
        run: async () => { await task(await api("POST", `/api/units/${encodeURIComponent(unit)}/system/reboot`)); toast(`${unit} is rebooting`); },
      }) }, "Reboot"), " ",
      h("button", { class: "small danger", "data-key": k("remove"), onclick: ev => confirmDialog(ev.currentTarget, {
        title: `Remove ${unit}?`, body: `${unit} leaves the inventory and the cluster; its jobs stop and it goes back to a standalone Pioreactor. Its history is kept.`, yes: "Remove", danger: true,
        run: async () => { await task(await api("DELETE", `/api/workers/${encodeURIComponent(unit)}`)); toast(`${unit} removed`); await refresh("inventory", "cluster"); },
      }) }, "Remove")));
}

// ----- dialogs (native <dialog>: modal, focus inside, Escape closes) -----

function openDialog(opener, build, dlg = $("#dialog"), onClose) {
  dlg.replaceChildren(...build(() => dlg.close()));
  const restore = () => {
    dlg.removeEventListener("close", restore);
    // Back to the opener; if a running action disabled it, to its dialog or the page.
    if (opener?.isConnected && opener !== document.body && !opener.disabled) opener.focus();
    else (opener?.closest?.("dialog[open]")?.querySelector("input:not(:disabled), button:not(:disabled)") || $("#main")).focus();
    if (deferredRender) { deferredRender = false; render(); }
    onClose?.();
  };
  dlg.addEventListener("close", restore);
  dlg.showModal();
  (dlg.querySelector("[autofocus]") || dlg.querySelector("input,button"))?.focus();
}

function confirmDialog(opener, { title, body, yes, danger, run }) {
  openDialog(opener, close => {
    const err = h("div", {});
    const ok = h("button", { class: danger ? "danger solid" : "primary", id: "confirm-yes" }, yes);
    ok.addEventListener("click", async () => {
      ok.disabled = true; err.replaceChildren(h("progress", { "aria-label": "working" }));
      try { await run(); close(); } catch (e) { err.replaceChildren(errorBox(e)); ok.disabled = false; }
    });
    return [h("h2", { id: "dialog-title" }, title), h("p", {}, body), err,
      h("div", { class: "buttons" }, h("button", { autofocus: true, onclick: close }, "Cancel"), ok)];
  });
}

function addWorkerDialog(opener) {
  openDialog(opener, close => {
    const name = h("input", { id: "new-unit-name", name: "name", required: true, pattern: "[A-Za-z0-9_\\-]{1,63}", autocomplete: "off", autofocus: true, "aria-describedby": "new-unit-hint" });
    const addr = h("input", { id: "new-unit-address", name: "address", autocomplete: "off", placeholder: "HOST[:PORT]" });
    const progress = h("div", { id: "add-progress", "aria-live": "polite" });
    const submit = h("button", { class: "primary", type: "submit", id: "add-submit" }, "Add");
    const form = h("form", {
      onsubmit: async ev => {
        ev.preventDefault();
        const unit = name.value.trim();
        const body = { pioreactor_unit: unit };
        if (addr.value.trim()) body.address = addr.value.trim();
        submit.disabled = name.disabled = addr.disabled = true;
        const started = Date.now();
        const bar = h("progress", { "aria-label": "adding" });
        const label = h("span", {}, `Inviting ${unit} and waiting until it is alive…`);
        progress.replaceChildren(label, bar);
        const tick = setInterval(() => { label.textContent = `Inviting ${unit} and waiting until it is alive… ${Math.round((Date.now() - started) / 1000)} s`; }, 1000);
        try {
          await api("PUT", "/api/workers", body, { patience: 60000 });
          clearInterval(tick);
          close();
          toast(`${unit} added to the cluster`);
          await refresh("inventory", "cluster");
        } catch (e) {
          clearInterval(tick);
          progress.replaceChildren(errorBox(e));
          submit.disabled = name.disabled = addr.disabled = false;
          name.focus();
        }
      },
    },
    h("h2", { id: "dialog-title" }, "Add new Pioreactor"),
    discoveredList(name, addr, submit),
    h("div", { class: "field" }, h("label", { for: "new-unit-name" }, "Name"), name,
      h("span", { class: "hint", id: "new-unit-hint" }, "Its hostname: letters, digits, - and _.")),
    h("div", { class: "field" }, h("label", { for: "new-unit-address" }, "Address ", h("span", { class: "hint" }, "(optional; default NAME or NAME.local, port 8080)")), addr),
    progress,
    h("div", { class: "buttons" }, h("button", { type: "button", onclick: close }, "Cancel"), submit));
    return [form];
  });
}

/**
 * discoveredList is the "Found on the network" part of the Add dialog: the
 * standalone pio nodes that GET /api/workers/discover finds (mDNS); picking one
 * fills the name and address fields. It says when it is looking, when it found
 * none and when it could not look; "Look again" browses again.
 */
function discoveredList(name, addr, submit) {
  const status = h("p", { id: "discover-status", class: "hint", "aria-live": "polite" });
  const list = h("ul", { id: "discovered", class: "discovered", "aria-labelledby": "discover-h" });
  const again = h("button", { type: "button", class: "small", id: "discover-again" }, "Look again");
  const look = async () => {
    again.disabled = true;
    list.replaceChildren();
    status.replaceChildren(h("progress", { "aria-label": "looking" }), "Looking for Pioreactors on the network…");
    let found;
    try {
      found = await get("/api/workers/discover");
    } catch (e) {
      if (list.isConnected) status.replaceChildren(`Could not look on the network: ${e.message}. Enter a name below.`);
      again.disabled = false;
      return;
    }
    if (!list.isConnected) return; // the dialog was closed meanwhile
    again.disabled = false;
    found = Array.isArray(found) ? found : [];
    status.replaceChildren(found.length
      ? `${found.length} found: pick one to fill in its name and address.`
      : "None found on the network (a new Pioreactor shows up here once pio runs on it). Enter its name below.");
    list.replaceChildren(...found.map(n => {
      const unit = n.pioreactor_unit;
      const about = [n.address || n.ipv4_address, [n.model, n.version].filter(Boolean).join(" "),
        n.fresh === false ? "holds data of its own: it will refuse to join" : ""].filter(Boolean).join(" · ");
      return h("li", {}, h("button", {
        type: "button", class: "pick", "aria-pressed": "false", dataset: { unit },
        onclick: ev => {
          name.value = unit;
          addr.value = n.address || n.ipv4_address || "";
          for (const b of list.querySelectorAll("button.pick")) b.setAttribute("aria-pressed", String(b === ev.currentTarget));
          submit.focus();
        },
      }, h("strong", {}, unit), " ", h("span", { class: "hint" }, about)));
    }));
  };
  again.addEventListener("click", look);
  look();
  return h("section", { class: "field", "aria-labelledby": "discover-h" },
    h("div", { class: "discover-head" }, h("span", { id: "discover-h", class: "label" }, "Found on the network"), again), status, list);
}

// ----- Experiments -----

function experimentsPage() {
  const sel = route().arg || S.experiments[0]?.experiment || "";
  const create = h("form", {
    class: "card", id: "create-experiment", "aria-labelledby": "create-h",
    onsubmit: ev => {
      ev.preventDefault();
      const f = ev.currentTarget;
      const body = { experiment: f.experiment.value.trim() };
      if (f.description.value.trim()) body.description = f.description.value.trim();
      const tags = f.tags.value.split(",").map(s => s.trim()).filter(Boolean);
      if (tags.length) body.tags = tags;
      act(f.querySelector("button"), `experiment ${body.experiment} created`, async () => {
        await api("POST", "/api/experiments", body);
        f.reset();
        document.activeElement?.blur();
        await refresh("experiments");
        // Show the new experiment, unless the user went elsewhere meanwhile.
        if (route().page === "experiments") location.hash = `#/experiments/${encodeURIComponent(body.experiment)}`;
      });
    },
  },
  h("h2", { id: "create-h", style: "margin-top:0" }, "New experiment"),
  h("div", { class: "row" },
    h("div", { class: "field" }, h("label", { for: "exp-name" }, "Name"), h("input", { id: "exp-name", name: "experiment", required: true, maxlength: 199, autocomplete: "off" })),
    h("div", { class: "field" }, h("label", { for: "exp-desc" }, "Description"), h("input", { id: "exp-desc", name: "description", autocomplete: "off" })),
    h("div", { class: "field" }, h("label", { for: "exp-tags" }, "Tags ", h("span", { class: "hint" }, "(comma-separated)")), h("input", { id: "exp-tags", name: "tags", autocomplete: "off" })),
    h("button", { class: "primary", type: "submit", id: "exp-create" }, "Create")));
  const counts = Object.fromEntries(S.counts.map(c => [c.experiment, c.worker_count]));
  const list = h("nav", { "aria-label": "Experiments" }, h("ul", { class: "exp-list", id: "experiment-list" },
    S.experiments.length ? S.experiments.map(e => h("li", {}, h("a", {
      href: `#/experiments/${encodeURIComponent(e.experiment)}`, "aria-current": e.experiment === sel ? "true" : null,
    }, e.experiment, h("span", { class: "hint" }, ` · ${counts[e.experiment] || 0} worker${counts[e.experiment] === 1 ? "" : "s"}`)))) : h("li", { class: "empty" }, "No experiments yet.")));
  const exp = S.experiments.find(e => e.experiment === sel);
  return h("div", {}, h("h1", {}, "Experiments"), h("div", { id: "page-error" }), create,
    h("div", { class: "two" }, list, exp ? experimentDetail(exp) : h("p", { class: "empty" }, "Choose or create an experiment.")));
}

function experimentDetail(exp) {
  const name = exp.experiment;
  const en = encodeURIComponent(name);
  const assigned = S.assignments.filter(a => a.experiment === name).map(a => a.pioreactor_unit);
  const others = S.workers.map(w => w.pioreactor_unit).filter(u => !assigned.includes(u));
  const labels = S.labels[name] || {};
  const edit = h("form", {
    id: "edit-experiment",
    onsubmit: ev => {
      ev.preventDefault();
      const f = ev.currentTarget;
      act(f.querySelector("button"), `${name} saved`, async () => {
        await api("PATCH", `/api/experiments/${en}`, { description: f.description.value, tags: f.tags.value.split(",").map(s => s.trim()).filter(Boolean) });
        document.activeElement?.blur();
        await refresh("experiments");
      });
    },
  }, h("div", { class: "row" },
    h("div", { class: "field" }, h("label", { for: "edit-desc" }, "Description"), h("input", { id: "edit-desc", name: "description", value: exp.description || "", "data-key": "edit-desc" })),
    h("div", { class: "field" }, h("label", { for: "edit-tags" }, "Tags"), h("input", { id: "edit-tags", name: "tags", value: (exp.tags || []).join(", "), "data-key": "edit-tags" })),
    h("button", { type: "submit" }, "Save")));
  const assign = h("form", {
    id: "assign-form",
    onsubmit: ev => {
      ev.preventDefault();
      const unit = ev.currentTarget.unit.value;
      if (!unit) return;
      act(ev.currentTarget.querySelector("button"), `${unit} assigned to ${name}`, async () => {
        await api("PUT", `/api/experiments/${en}/workers`, { pioreactor_unit: unit });
        document.activeElement?.blur();
        await refresh("inventory");
      });
    },
  }, h("div", { class: "row" },
    h("div", { class: "field" }, h("label", { for: "assign-unit" }, "Assign a Pioreactor"),
      h("select", { id: "assign-unit", name: "unit" }, others.map(u => h("option", { value: u }, u + (expOf(u) ? ` (now in ${expOf(u)})` : ""))))),
    h("button", { type: "submit", disabled: !others.length, id: "assign-submit" }, "Assign")));
  const rows = assigned.map(u => h("tr", { dataset: { unit: u } },
    h("td", { "data-label": "Pioreactor" }, h("strong", {}, u)),
    h("td", { "data-label": "Label" }, h("form", {
      class: "row", onsubmit: ev => {
        ev.preventDefault();
        const label = ev.currentTarget.label.value;
        act(ev.currentTarget.querySelector("button"), `label of ${u} saved`, async () => {
          await api("PUT", `/api/experiments/${en}/unit_labels`, { unit: u, label });
          document.activeElement?.blur();
          await refresh("labels");
        });
      },
    }, h("label", { class: "hint", for: `label-${u}` }, "Label"), h("input", { id: `label-${u}`, name: "label", value: labels[u] || "", size: 12, "data-key": `label-${u}` }), h("button", { class: "small", type: "submit" }, "Save"))),
    h("td", { "data-label": "Actions", class: "actions" }, h("button", { class: "small", onclick: ev => act(ev.currentTarget, `${u} unassigned`, async () => {
      await api("DELETE", `/api/experiments/${en}/workers/${encodeURIComponent(u)}`);
      await refresh("inventory");
    }) }, "Unassign"))));
  return h("section", { class: "card", id: "experiment-detail", "aria-labelledby": "exp-h" },
    h("div", { class: "page-head" }, h("h2", { id: "exp-h", style: "margin:0" }, expChip(name)),
      h("div", {}, h("a", { class: "button", href: `#/pioreactors/${en}` }, "Pioreactors"), " ",
        h("button", { id: "export-open", "data-key": "export-open", onclick: ev => exportDialog(ev.currentTarget, name) }, "Export data"), " ",
        h("button", { class: "danger", onclick: ev => confirmDialog(ev.currentTarget, {
          title: `Delete ${name}?`, body: "Its jobs stop and its workers are unassigned. Its readings stay in the history.", yes: "Delete", danger: true,
          run: async () => { await api("DELETE", `/api/experiments/${en}`); toast(`${name} deleted`); location.hash = "#/experiments"; await refresh("experiments", "inventory"); },
        }) }, "Delete"))),
    h("p", { class: "hint" }, "Created ", when(exp.created_at), exp.tags?.length ? [" · ", h("span", { class: "tags" }, exp.tags.map(t => h("span", { class: "tag" }, t)))] : ""),
    exp.description ? h("p", {}, exp.description) : null,
    edit,
    h("h2", {}, `Workers (${assigned.length})`),
    assigned.length ? h("div", { class: "scroll" }, h("table", { class: "stack", id: "experiment-workers" }, h("tbody", {}, rows))) : h("p", { class: "empty" }, "No workers assigned."),
    assign);
}

// ----- Export data -----

// An export is made by the node this page talks to (every node holds every
// reading) as a task; the page polls it, then downloads the zip from that node.

let exportable = null; // GET /api/datasets/exportable: built into the node, fetched once

/** exportHref is the download address of an export file (with the token when reads need it: a link sends no header). */
const exportHref = file => `/exports/${encodeURIComponent(file)}` + (auth.readAuth && auth.token ? `?access_token=${encodeURIComponent(auth.token)}` : "");

/** download makes the browser save an export file, as a click on a link would. */
function download(file) {
  const a = h("a", { href: exportHref(file), download: file, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
}

function exportDialog(opener, exp) {
  openDialog(opener, close => {
    const legend = () => h("legend", {}, "Datasets");
    const sets = h("fieldset", { id: "export-datasets", class: "datasets" }, legend(), h("p", { class: "muted" }, "Loading…"));
    const byUnit = h("input", { type: "checkbox", id: "export-by-unit", name: "partition_by_unit" });
    const start = h("input", { type: "datetime-local", id: "export-start", name: "start_time", step: 1 });
    const end = h("input", { type: "datetime-local", id: "export-end", name: "end_time", step: 1 });
    const progress = h("div", { id: "export-progress", "aria-live": "polite" });
    const submit = h("button", { class: "primary", type: "submit", id: "export-submit", disabled: true }, "Export");
    (exportable ? Promise.resolve(exportable) : get("/api/datasets/exportable")).then(list => {
      exportable = list;
      sets.replaceChildren(legend(), ...list.map(d => h("label", { class: "check" },
        h("input", { type: "checkbox", name: "dataset", value: d.dataset_name }),
        h("span", {}, d.display_name, d.source && d.source !== "app" ? h("span", { class: "hint" }, ` (provided by ${d.source})`) : null,
          d.description ? h("span", { class: "hint block" }, d.description) : null))));
      submit.disabled = false;
    }, e => sets.replaceChildren(legend(), errorBox(e)));
    const iso = input => (input.value ? new Date(input.value).toISOString() : null);
    const form = h("form", {
      onsubmit: async ev => {
        ev.preventDefault();
        const datasets = [...sets.querySelectorAll("input[name=dataset]:checked")].map(i => i.value);
        if (!datasets.length) {
          progress.replaceChildren(errorBox({ message: "choose what to export", cause: "no dataset is ticked", remediation: "tick at least one dataset" }));
          return;
        }
        const body = { experiment: exp, datasets, partition_by_unit: byUnit.checked, partition_by_experiment: true, start_time: iso(start), end_time: iso(end) };
        const inputs = [...form.querySelectorAll("input")];
        inputs.forEach(i => { i.disabled = true; });
        submit.disabled = true;
        const began = Date.now();
        const label = h("span", {}, "Exporting…");
        progress.replaceChildren(label, h("progress", { "aria-label": "exporting" }));
        const tick = setInterval(() => { label.textContent = `Exporting… ${Math.round((Date.now() - began) / 1000)} s`; }, 1000);
        try {
          // An export may take minutes on a Pi (the node gives it up to 30).
          const done = await task(await api("POST", "/api/datasets/exportable/export", body), 31 * 60 * 1000, 1000);
          const file = done?.result?.filename;
          if (!file) throw new ApiError({ error: "the export finished without a file", cause: "its task answered no filename", remediation: "look at this node's log (journalctl -u pio), then export again" }, 0);
          progress.replaceChildren(h("p", {}, "Done: ", h("a", { id: "export-link", href: exportHref(file), download: file }, file), " is downloading."));
          download(file);
          toast(`${file} exported`);
        } catch (e) {
          progress.replaceChildren(errorBox(e));
        } finally {
          clearInterval(tick);
          inputs.forEach(i => { i.disabled = false; });
          submit.disabled = false;
        }
      },
    },
    h("h2", { id: "dialog-title" }, "Export data of ", expChip(exp)),
    sets,
    h("label", { class: "check" }, byUnit, h("span", {}, "One file per Pioreactor ", h("span", { class: "hint" }, "(partition by unit)"))),
    h("div", { class: "row" },
      h("div", { class: "field" }, h("label", { for: "export-start" }, "From ", h("span", { class: "hint" }, "(optional)")), start),
      h("div", { class: "field" }, h("label", { for: "export-end" }, "To ", h("span", { class: "hint" }, "(optional)")), end)),
    h("p", { class: "hint" }, "Times are this browser's local time. The zip holds one folder of CSV files per dataset."),
    progress,
    h("div", { class: "buttons" }, h("button", { type: "button", id: "export-close", onclick: close }, "Close"), submit));
    return [form];
  });
}

// ----- Pioreactors -----

const JOBS = {
  stirring: { label: "Stirring", settings: { target_rpm: { def: 500, step: 10 } } },
  od_reading: { label: "OD reading", settings: { interval: { def: 5, step: 1 }, ir_led_intensity: { def: 80, step: 1 } } },
  growth_rate_calculating: { label: "Growth rate", settings: {} },
  temperature_automation: { label: "Temperature automation", settings: { target_temperature: { def: 30, step: 0.5 } } },
  dosing_automation: { label: "Dosing automation", settings: { automation_name: { options: ["turbidostat", "chemostat"] }, target_od: { def: 1, step: 0.05 }, volume: { def: 1, step: 0.1 }, duration: { def: 0.25, step: 0.05, hint: "duration (min)" } } },
  led_automation: { label: "LED automation", settings: { light_intensity: { def: 50, step: 1 } } },
};

function pioreactorsPage() {
  const exp = currentExp();
  const pick = h("div", { class: "field" }, h("label", { for: "exp-pick" }, "Experiment"),
    h("select", { id: "exp-pick", onchange: ev => { location.hash = `#/pioreactors/${encodeURIComponent(ev.currentTarget.value)}`; ev.currentTarget.blur(); } },
      S.experiments.map(e => h("option", { value: e.experiment, selected: e.experiment === exp }, e.experiment))));
  const head = h("div", { class: "page-head" }, h("h1", {}, "Pioreactors", exp ? [" · ", expChip(exp)] : ""), pick);
  if (!exp) return h("div", {}, head, h("p", { class: "empty" }, "No experiment yet: create one on the Experiments page."));
  const units = S.assignments.filter(a => a.experiment === exp).map(a => a.pioreactor_unit);
  const workers = Object.fromEntries(S.workers.map(w => [w.pioreactor_unit, w]));
  const labels = S.labels[exp] || {};
  const cards = units.map(u => unitCard(exp, workers[u] || { pioreactor_unit: u }, labels[u]));
  const series = S.series[exp];
  const charts = h("div", { class: "charts" },
    chart("Optical density", bySensor(series?.od), "OD"), chart("Growth rate", series?.gr, "1/h"), chart("Temperature", series?.temp, "°C"));
  const logs = S.logs && !S.logsMissing ? h("section", { class: "card", "aria-labelledby": "logs-h" }, h("h2", { id: "logs-h", style: "margin-top:0" }, "Recent logs"),
    h("div", { class: "logs scroll" }, h("table", {}, h("tbody", {}, S.logs.slice(0, 50).map(l => h("tr", {},
      h("td", { class: "mono" }, new Date(l.timestamp).toLocaleTimeString()), h("td", {}, l.pioreactor_unit), h("td", {}, l.level), h("td", {}, l.message))))))) : null;
  return h("div", {}, head, h("div", { id: "page-error" }),
    h("h2", {}, `Units (${units.length})`),
    units.length ? h("div", { class: "cards", id: "unit-cards" }, cards) : h("p", { class: "empty" }, "No Pioreactor is assigned to this experiment: assign one on the Experiments page."),
    h("h2", {}, "Readings (last 12 h)"), charts, logs);
}

function unitCard(exp, w, label) {
  const unit = w.pioreactor_unit;
  const jobs = Object.fromEntries((S.jobs[unit] || []).filter(j => !j.experiment || j.experiment === exp).map(j => [j.job_name, j]));
  let reason = "";
  if (!w.is_active) reason = "Inactive: no activity can run. Set it active on the Inventory page.";
  else if (w.health === "dead") reason = `Not reachable (dead; last seen ${ago(w.last_seen)}).`;
  else if (w.health === "left") reason = "It left the cluster.";
  else if (w.health === "suspect") reason = "Suspect: it may be unreachable.";
  const disabled = !w.is_active || w.health === "dead" || w.health === "left";
  const en = encodeURIComponent(exp), un = encodeURIComponent(unit);
  const jobPath = (verb, job) => `/api/workers/${un}/jobs/${verb}/job_name/${job}/experiments/${en}`;
  const jobRows = Object.entries(JOBS).map(([job, spec]) => {
    const j = jobs[job];
    const running = j && j.state !== "lost";
    const state = j ? j.state : "off";
    const inputs = Object.entries(spec.settings).map(([k, s]) => {
      const id = `${unit}-${job}-${k}`;
      const cur = j?.settings?.[k] ?? s.def;
      const input = s.options
        ? h("select", { id, name: k, "data-key": id, disabled }, s.options.map(o => h("option", { value: o, selected: o === cur }, o)))
        : h("input", { id, name: k, type: "number", step: s.step, value: cur, "data-key": id, disabled, inputmode: "decimal" });
      return h("div", { class: "field" }, h("label", { for: id, class: "hint" }, s.hint || k), input);
    });
    const values = f => Object.fromEntries(Object.entries(spec.settings).map(([k, s]) => [k, s.options ? f[k].value : Number(f[k].value)]));
    const form = h("form", {
      onsubmit: ev => {
        ev.preventDefault();
        const f = ev.currentTarget;
        const btn = ev.submitter || f.querySelector("button[type=submit]");
        if (running) {
          act(btn, `${job} on ${unit} updated`, async () => {
            await task(await api("PATCH", jobPath("update", job), { settings: values(f) }));
            document.activeElement?.blur();
            await refresh("jobs");
          });
        } else {
          act(btn, `${job} started on ${unit}`, async () => {
            await task(await api("POST", jobPath("run", job), { options: values(f) }));
            document.activeElement?.blur();
            await refresh("jobs");
          });
        }
      },
    }, inputs,
    h("button", { type: "submit", class: running ? "small" : "small primary", disabled, "data-key": `${unit}-${job}-go` }, running ? (inputs.length ? "Update" : "Restart") : "Start"),
    running ? h("button", { type: "button", class: "small", disabled, "data-key": `${unit}-${job}-sleep`, onclick: ev => act(ev.currentTarget, `${job} on ${unit} ${state === "sleeping" ? "resumed" : "sleeping"}`, async () => {
      await task(await api("PATCH", jobPath("update", job), { settings: { $state: state === "sleeping" ? "ready" : "sleeping" } }));
      await refresh("jobs");
    }) }, state === "sleeping" ? "Resume" : "Sleep") : null,
    running ? h("button", { type: "button", class: "small danger", disabled: state === "lost", "data-key": `${unit}-${job}-stop`, onclick: ev => act(ev.currentTarget, `${job} stopped on ${unit}`, async () => {
      await task(await api("POST", jobPath("stop", job)));
      await refresh("jobs");
    }) }, "Stop") : null);
    if (running && !inputs.length) form.querySelector("button[type=submit]").remove();
    const shown = j ? Object.entries(j.settings || {}).map(([k, v]) => h("span", {}, `${k}: `, h("strong", {}, typeof v === "number" ? +v.toFixed(3) : String(v)))) : [];
    return h("div", { class: "job", dataset: { job } },
      h("div", { class: "job-head" }, h("span", { class: "name" }, spec.label), h("span", { class: `badge ${state}`, "data-state": state }, state)),
      shown.length ? h("div", { class: "settings" }, shown) : null,
      form);
  });
  return h("article", { class: "unit-card" + (disabled ? " inactive" : ""), dataset: { unit }, "aria-labelledby": `card-${unit}` },
    h("h2", { id: `card-${unit}` }, unit, label ? h("span", { class: "hint" }, `(${label})`) : null, healthBadge(w.health), w.is_active ? null : h("span", { class: "badge off" }, "inactive")),
    reason ? h("p", { class: "reason" }, reason) : null,
    jobRows);
}

const PALETTE = ["#5331ca", "#e8710a", "#137333", "#c5221f", "#1a73e8", "#9334e6", "#b06000", "#007b83"];

/** bySensor names OD series by unit: the API names them {unit}-{photodiode channel}, as Pioreactor does. */
function bySensor(ts) {
  return ts && { ...ts, series: (ts.series || []).map(n => n.replace(/-\d+$/, "")) };
}

/** chart draws {series, data} as an inline SVG line chart (downsampled to 300 points a line). */
function chart(title, ts, unitLabel) {
  const W = 480, H = 200, L = 46, R = 10, T = 10, B = 26;
  const box = h("figure", { class: "chart", style: "margin:0" }, h("h3", {}, title));
  const lines = (ts?.series || []).map((name, i) => {
    let pts = (ts.data[i] || []).map(p => [typeof p.x === "number" ? p.x : Date.parse(p.x), +p.y]).filter(p => isFinite(p[0]) && isFinite(p[1]));
    if (pts.length > 300) { const step = pts.length / 300; pts = Array.from({ length: 300 }, (_, k) => pts[Math.floor(k * step)]); }
    return { name, pts };
  }).filter(l => l.pts.length);
  if (!lines.length) { box.append(h("p", { class: "empty" }, "No readings yet.")); return box; }
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const l of lines) for (const [x, y] of l.pts) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y1 += Math.abs(y1) * 0.05 || 1; y0 -= Math.abs(y0) * 0.05 || 1; }
  const pad = (y1 - y0) * 0.08; y0 -= pad; y1 += pad;
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R), sy = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const ns = "http://www.w3.org/2000/svg";
  const s = (tag, attrs, text) => { const el = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v); if (text !== undefined) el.textContent = text; return el; };
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title} over time, ${lines.length} unit${lines.length === 1 ? "" : "s"}` });
  const fmt = v => Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2);
  for (let k = 0; k <= 4; k++) {
    const y = y0 + (y1 - y0) * k / 4;
    svg.append(s("line", { class: "grid", x1: L, x2: W - R, y1: sy(y), y2: sy(y) }), s("text", { x: L - 4, y: sy(y) + 4, "text-anchor": "end" }, fmt(y)));
  }
  for (let k = 0; k <= 3; k++) {
    const x = x0 + (x1 - x0) * k / 3;
    svg.append(s("text", { x: sx(x), y: H - 8, "text-anchor": k === 0 ? "start" : k === 3 ? "end" : "middle" }, new Date(x).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  }
  svg.append(s("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }), s("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }),
    s("text", { x: 4, y: T + 8 }, unitLabel));
  lines.forEach((l, i) => svg.append(s("polyline", { fill: "none", stroke: PALETTE[i % PALETTE.length], "stroke-width": 1.6, points: l.pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ") })));
  box.append(svg, h("ul", { class: "legend" }, lines.map((l, i) => h("li", {}, h("span", { style: `background:${PALETTE[i % PALETTE.length]}` }), l.name))));
  return box;
}

// ----- Profiles -----

// The editor's state lives here, not in the DOM, so that a redraw keeps what is typed.
const editor = { open: false, isNew: true, filename: "", text: "", errors: [], checked: "", plan: null };

const PROFILE_TEMPLATE = `version: "1.0"
experiment_profile_name: my profile
metadata:
  author: ""
  description: ""
common:
  jobs:
    stirring:
      actions:
        - type: start
          t: 0
          options:
            target_rpm: 400
        - type: stop
          t: 2h
`;

/** fmtOffset prints seconds from a run's start: 0s, 1m 30s, 2h, 1d 6h. */
function fmtOffset(sec) {
  let rest = Math.round(sec || 0);
  if (rest < 60) return `${rest}s`;
  const out = [];
  for (const [n, u] of [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]]) {
    if (rest >= n) { out.push(`${Math.floor(rest / n)}${u}`); rest %= n; }
  }
  return out.slice(0, 2).join(" ");
}
function inFuture(ms) {
  const s = (ms - Date.now()) / 1000;
  if (s <= 0) return "due now";
  if (s < 90) return `in ${Math.round(s)} s`;
  if (s < 5400) return `in ${Math.round(s / 60)} min`;
  return s < 172800 ? `in ${Math.round(s / 3600)} h` : `in ${Math.round(s / 86400)} days`;
}

/** editorText reads what is typed into the editor's state. */
function editorText() {
  const ta = $("#profile-text"), fn = $("#profile-filename");
  if (ta) editor.text = ta.value;
  if (fn) editor.filename = fn.value.trim();
  return editor.text;
}

/** profileAct is act for the editor: a profile's errors (with line and column) go to the editor. */
async function profileAct(btn, label, fn) {
  if (btn) btn.disabled = true;
  try {
    const res = await fn();
    if (label) toast(label);
    return res;
  } catch (e) {
    if (e.errors?.length) {
      Object.assign(editor, { errors: e.errors, checked: "", plan: null });
      $("#page-error")?.replaceChildren();
      render();
      toast(`${e.errors.length} error${e.errors.length === 1 ? "" : "s"} in the profile: see the lines named`, true);
    } else showError(e);
  } finally {
    if (btn) btn.disabled = false;
  }
}

/** goToLine selects a line of the editor and scrolls it into view. */
function goToLine(line) {
  const ta = $("#profile-text");
  if (!ta) return;
  const ls = ta.value.split("\n");
  let start = 0;
  for (let i = 0; i < line - 1 && i < ls.length; i++) start += ls[i].length + 1;
  ta.focus();
  ta.setSelectionRange(start, start + (ls[line - 1] || "").length);
  ta.scrollTop = Math.max(0, (line - 4) * (parseFloat(getComputedStyle(ta).lineHeight) || 18));
}

/** gutter numbers the editor's lines, the ones with an error marked. */
function gutterLines(n, bad) {
  return Array.from({ length: n }, (_, i) => h("span", { class: bad.has(i + 1) ? "bad" : null, title: bad.has(i + 1) ? "an error on this line" : null }, i + 1));
}

function profileEditor() {
  const lines = editor.text.split("\n");
  const bad = new Set(editor.errors.map(e => e.line).filter(Boolean));
  const gutter = h("pre", { class: "gutter", "aria-hidden": "true" }, gutterLines(lines.length, bad));
  const ta = h("textarea", {
    id: "profile-text", "data-key": "profile-text", class: "code", rows: Math.min(28, Math.max(12, lines.length + 1)), wrap: "off",
    spellcheck: "false", autocapitalize: "off", autocomplete: "off", "aria-label": "Profile (YAML)", "aria-describedby": "profile-errors", "aria-invalid": editor.errors.length ? "true" : null,
    oninput: ev => {
      editor.text = ev.currentTarget.value; editor.checked = "";
      gutter.replaceChildren(...gutterLines(editor.text.split("\n").length, bad));
    },
    onscroll: ev => { gutter.scrollTop = ev.currentTarget.scrollTop; },
  }, editor.text);
  const problems = editor.errors.length
    ? h("div", { class: "error-box", role: "alert", id: "profile-errors" },
      h("strong", {}, `${editor.errors.length} error${editor.errors.length === 1 ? "" : "s"}: the profile is not valid`),
      h("ul", { class: "profile-errors" }, editor.errors.map(e => h("li", { dataset: { line: e.line || "" } },
        e.line ? h("button", { type: "button", class: "small", onclick: () => goToLine(e.line) }, `Line ${e.line}${e.column ? `, column ${e.column}` : ""}`) : null,
        " ", e.message,
        e.line && lines[e.line - 1] !== undefined ? h("pre", { class: "err-line" }, `${e.line} | ${lines[e.line - 1]}\n${" ".repeat(String(e.line).length + 2 + Math.max(1, e.column || 1))}^`) : null))),
      h("div", {}, "What to do: fix the lines named above (their numbers are red beside the text), then Validate again."))
    : h("div", { id: "profile-errors", role: "status" }, editor.checked ? h("p", { class: "ok-box" }, editor.checked) : null);
  const plan = editor.plan ? h("section", { "aria-labelledby": "plan-h" },
    h("h3", { id: "plan-h" }, `Dry run: ${editor.plan.steps.length} step${editor.plan.steps.length === 1 ? "" : "s"}`, editor.plan.more ? " (and more repeats)" : ""),
    h("p", { class: "hint" }, "Times from the start of a run; conditions as they are now."),
    h("ol", { class: "timeline", id: "profile-plan" }, editor.plan.steps.map(s => stepItem({ ...s, state: "planned", message: s.kind === "log" ? s.message : "" }, 0, false)))) : null;
  return h("section", { class: "card", id: "profile-editor", "aria-labelledby": "editor-h" },
    h("h2", { id: "editor-h", style: "margin-top:0" }, editor.isNew ? "New profile" : `Edit ${editor.filename}`),
    h("div", { class: "field" }, h("label", { for: "profile-filename" }, "Filename"),
      h("input", { id: "profile-filename", "data-key": "profile-filename", value: editor.filename, readonly: !editor.isNew, placeholder: "my_profile.yaml", maxlength: 128, autocomplete: "off", "aria-describedby": "filename-hint",
        oninput: ev => { editor.filename = ev.currentTarget.value.trim(); } }),
      h("span", { class: "hint", id: "filename-hint" }, editor.isNew ? "ends in .yaml or .yml" : "saving replaces the stored profile")),
    h("div", { class: "editor" }, gutter, ta),
    problems,
    h("div", { class: "row" },
      h("button", { type: "button", id: "profile-validate", onclick: ev => profileAct(ev.currentTarget, null, async () => {
        await api("POST", "/api/experiment_profiles/validate", { body: editorText() });
        Object.assign(editor, { errors: [], checked: "Valid: no errors.", plan: null });
        render();
      }) }, "Validate"),
      h("button", { type: "button", id: "profile-dry-run", onclick: ev => profileAct(ev.currentTarget, null, async () => {
        const r = await api("POST", "/api/experiment_profiles/dry_run", { body: editorText() });
        Object.assign(editor, { errors: [], checked: "", plan: r.data });
        render();
      }) }, "Dry run"),
      h("button", { type: "button", class: "primary", id: "profile-save", onclick: ev => profileAct(ev.currentTarget, null, async () => {
        const body = editorText(), f = editor.filename;
        if (editor.isNew) await api("POST", "/api/experiment_profiles", { filename: f, body });
        else await api("PATCH", `/api/experiment_profiles/${encodeURIComponent(f)}`, { body });
        Object.assign(editor, { isNew: false, errors: [], checked: `Saved as ${f}.` });
        toast(`${f} saved`);
        await refresh("profiles");
      }) }, "Save"),
      h("button", { type: "button", id: "profile-close", onclick: () => { editor.open = false; render(); } }, "Close")),
    plan);
}

function stepLabel(s) {
  return [s.kind, s.job_name, s.pioreactor_unit ? `on ${s.pioreactor_unit}` : "on every active unit"].filter(Boolean).join(" ");
}
const STEP_STATES = { done: "done", skipped: "skipped", claimed: "doing", due: "due", planned: "planned", "not-run": "not run" };

/** stepItem is one step of a timeline: its time, its state (and why it was skipped), what it does. */
function stepItem(s, start, isNext) {
  const st = s.state || "planned";
  const opts = Object.entries(s.options || {}).filter(([k]) => !(s.kind === "log" && k === "message"))
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
  const detail = [opts, s.if ? `if ${s.if}` : ""].filter(Boolean).join(" · ");
  return h("li", { class: `step ${st}${isNext ? " next" : ""}`, dataset: { step: s.key, state: st } },
    h("span", { class: "at mono" }, `+${fmtOffset(s.at_seconds)}`, start ? h("span", { class: "hint" }, ` ${new Date(start + s.at_seconds * 1000).toLocaleTimeString()}`) : null),
    h("span", { class: `badge step-${st}` }, isNext ? `next · ${STEP_STATES[st] || st}` : STEP_STATES[st] || st),
    h("span", { class: "what" }, h("strong", {}, stepLabel(s)), detail ? h("span", { class: "hint" }, ` ${detail}`) : null,
      s.message ? h("div", { class: st === "skipped" ? "why" : "hint" }, st === "skipped" ? `Skipped: ${s.message}` : s.message) : null,
      s.done_at_seconds != null ? h("div", { class: "hint" }, `${st === "skipped" ? "skipped" : "done"} at +${fmtOffset(s.done_at_seconds)}`) : null));
}

/** runTimeline shows the runs of exp, newest first: each step with its time and state, and what is next. */
function runTimeline(exp, runs) {
  const en = encodeURIComponent(exp);
  if (!runs.length) return h("p", { class: "empty", id: "timeline" }, `No profile has run on ${exp} yet: run one from the list above.`);
  return h("div", { id: "timeline" }, runs.slice(0, 5).map(r => {
    const start = Date.parse(r.started_at);
    const running = r.state === "running";
    const steps = r.actions || [];
    const nextIdx = running ? steps.findIndex(s => s.state === "planned" || s.state === "due" || s.state === "claimed") : -1;
    const next = steps[nextIdx];
    const finished = steps.filter(s => s.state === "done" || s.state === "skipped").length;
    return h("section", { class: "card run", dataset: { run: r.run_id, state: r.state }, "aria-labelledby": `run-${r.run_id}` },
      h("div", { class: "page-head" },
        h("h3", { id: `run-${r.run_id}`, style: "margin:0" }, r.experiment_profile_name, " ", h("span", { class: "hint mono" }, r.profile_filename), " ",
          h("span", { class: `badge run-${r.state}`, "data-run-state": r.state }, r.state)),
        running ? h("button", { class: "small danger", id: `stop-${r.run_id}`, "data-key": `stop-${r.run_id}`, onclick: ev => confirmDialog(ev.currentTarget, {
          title: `Stop ${r.profile_filename} on ${exp}?`, body: "The steps not done yet will not run, and the jobs this run started stop.", yes: "Stop", danger: true,
          run: async () => {
            await api("POST", `/api/experiments/${en}/experiment_profiles/runs/${encodeURIComponent(r.run_id)}/stop`, {}, { patience: 60000 });
            toast(`${r.profile_filename} stopped on ${exp}`);
            await refresh("runs");
          },
        }) }, "Stop") : null),
      h("p", { class: "hint" }, `Started ${when(r.started_at)}`, r.ended_at ? ` · ended ${when(r.ended_at)}` : "", ` · ${finished} of ${steps.length} steps done or skipped`),
      running ? h("p", { class: "next-line", "data-next": next?.key || "" }, next
        ? ["Next: ", h("strong", {}, stepLabel(next)), ` at +${fmtOffset(next.at_seconds)} (${new Date(start + next.at_seconds * 1000).toLocaleTimeString()}, ${inFuture(start + next.at_seconds * 1000)})`]
        : "Next: nothing planned yet (a repeat or a condition may add steps).") : null,
      // Once a run has ended, the steps it did not reach will not run.
      h("ol", { class: "timeline" }, steps.map((s, i) => stepItem(running || s.state === "done" || s.state === "skipped" ? s : { ...s, state: "not-run" }, start, i === nextIdx))));
  }));
}

function profilesPage() {
  const exp = currentExp();
  const en = encodeURIComponent(exp || "");
  const runs = (exp && S.runs[exp]) || [];
  const busy = runs.some(r => r.state === "running");
  const pick = h("div", { class: "field" }, h("label", { for: "exp-pick" }, "Experiment"),
    h("select", { id: "exp-pick", onchange: ev => { location.hash = `#/profiles/${encodeURIComponent(ev.currentTarget.value)}`; ev.currentTarget.blur(); } },
      S.experiments.map(e => h("option", { value: e.experiment, selected: e.experiment === exp }, e.experiment))));
  const head = h("div", { class: "page-head" }, h("h1", {}, "Profiles", exp ? [" · ", expChip(exp)] : ""),
    h("div", { class: "row" }, exp ? pick : null,
      h("button", { class: "primary", id: "profile-new", onclick: () => {
        Object.assign(editor, { open: true, isNew: true, filename: "", text: PROFILE_TEMPLATE, errors: [], checked: "", plan: null });
        render();
        $("#profile-filename")?.focus();
      } }, "New profile")));
  const rows = S.profiles.map(p => {
    const f = p.file, ep = p.experimentProfile || {};
    return h("tr", { dataset: { file: f } },
      h("td", { "data-label": "File", class: "mono" }, f),
      h("td", { "data-label": "Name" }, h("strong", {}, ep.experiment_profile_name || "—")),
      h("td", { "data-label": "Description" }, ep.metadata?.description || h("span", { class: "muted" }, "—")),
      h("td", { "data-label": "Actions", class: "actions" },
        h("button", { class: "small", "data-key": `edit-${f}`, onclick: ev => act(ev.currentTarget, null, async () => {
          const text = (await api("GET", `/api/experiment_profiles/${encodeURIComponent(f)}`, undefined, { text: true })).data;
          Object.assign(editor, { open: true, isNew: false, filename: f, text, errors: [], checked: "", plan: null });
          render();
          $("#profile-text")?.focus();
        }) }, "Edit"), " ",
        h("button", { class: "small primary", "data-key": `run-${f}`, disabled: !exp || busy, title: busy ? `a profile already runs on ${exp}: stop it first` : null,
          onclick: ev => act(ev.currentTarget, `${f} started on ${exp}`, async () => {
            await api("POST", `/api/experiments/${en}/experiment_profiles/runs`, { filename: f });
            await refresh("runs");
          }) }, exp ? `Run on ${exp}` : "Run"), " ",
        h("button", { class: "small danger", "data-key": `delete-${f}`, onclick: ev => confirmDialog(ev.currentTarget, {
          title: `Delete ${f}?`, body: "The profile is deleted from every Pioreactor. Runs already started keep their copy.", yes: "Delete", danger: true,
          run: async () => {
            await api("DELETE", `/api/experiment_profiles/${encodeURIComponent(f)}`);
            if (editor.filename === f && !editor.isNew) editor.open = false;
            toast(`${f} deleted`);
            await refresh("profiles");
          },
        }) }, "Delete")));
  });
  const table = h("div", { class: "scroll" }, h("table", { class: "stack", id: "profiles" },
    h("thead", {}, h("tr", {}, ["File", "Name", "Description", "Actions"].map(t => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No profiles yet: write one with New profile.")))));
  return h("div", {}, head, h("div", { id: "page-error" }), table,
    editor.open ? profileEditor() : null,
    h("h2", {}, "Runs", exp ? [" on ", expChip(exp)] : ""),
    exp ? runTimeline(exp, runs) : h("p", { class: "empty" }, "No experiment yet: create one on the Experiments page to run a profile."));
}

// ----- Cluster -----

function clusterPage() {
  const ci = S.cluster;
  if (!ci) return h("p", { class: "muted" }, "Loading…");
  const local = S.hello?.members || {};
  const voters = ci.members.filter(m => m.voter), nonvoters = ci.members.filter(m => !m.voter && m.health !== "left");
  const facts = h("dl", { class: "card summary", id: "cluster-facts" },
    h("div", {}, h("dt", {}, "Leader"), h("dd", { id: "leader-name" }, ci.leader ? ci.leader.name : "none (an election is running)")),
    h("div", {}, h("dt", {}, "Term"), h("dd", {}, ci.term)),
    h("div", {}, h("dt", {}, "Commit index"), h("dd", {}, ci.commit_index)),
    h("div", {}, h("dt", {}, "Voters"), h("dd", {}, voters.map(m => m.name || m.node_id.slice(0, 8)).join(", ") || "—")),
    h("div", {}, h("dt", {}, "Non-voters"), h("dd", {}, nonvoters.map(m => m.name || m.node_id.slice(0, 8)).join(", ") || "—")),
    h("div", {}, h("dt", {}, "This page is served by"), h("dd", {}, S.hello?.node || location.host)));
  const members = h("div", { class: "scroll" }, h("table", { class: "stack", id: "members" },
    h("thead", {}, h("tr", {}, ["Node", "Role", "Health (leader's view)", `Seen by ${S.hello?.node || "this node"}`, "Last contact", "Addresses", "Version"].map(t => h("th", { scope: "col" }, t)))),
    h("tbody", {}, ci.members.map(m => h("tr", { dataset: { node: m.node_id } },
      h("td", { "data-label": "Node" }, h("strong", {}, m.name || "(unregistered)"), h("div", { class: "hint mono", title: m.node_id }, m.node_id.slice(0, 8)), m.problem ? h("div", { class: "error-box" }, m.problem) : null),
      h("td", { "data-label": "Role" }, roleBadges(m), " ", m.worker ? "worker" : "no bioreactor"),
      h("td", { "data-label": "Health" }, healthBadge(m.health)),
      h("td", { "data-label": "Local gossip" }, local[m.node_id] ? healthBadge(local[m.node_id]) : h("span", { class: "muted" }, "—")),
      h("td", { "data-label": "Last contact" }, ago(m.last_seen)),
      h("td", { "data-label": "Addresses", class: "mono" }, h("div", {}, "http ", m.http_addr || "—"), h("div", {}, "raft ", m.raft_addr || "—"), h("div", {}, "gossip ", m.gossip_addr || "—")),
      h("td", { "data-label": "Version" }, m.version || "—"))))));
  const events = h("div", { class: "scroll" }, h("table", { class: "stack", id: "events" },
    h("thead", {}, h("tr", {}, ["Time", "Kind", "Pioreactor", "What happened"].map(t => h("th", { scope: "col" }, t)))),
    h("tbody", {}, S.events.length ? S.events.slice(0, 200).map(e => h("tr", {},
      h("td", { "data-label": "Time" }, when(e.time)), h("td", { "data-label": "Kind" }, e.kind), h("td", { "data-label": "Pioreactor" }, e.pioreactor_unit || "—"), h("td", { "data-label": "What" }, e.message)))
      : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No events yet.")))));
  return h("div", {}, h("h1", {}, "Cluster"), h("div", { id: "page-error" }), facts, h("h2", {}, `Members (${ci.members.length})`), members, h("h2", {}, "Event log"), events);
}

// ---------- start ----------

$("#auth-button").addEventListener("click", () => { if (auth.token && !auth.refused) signOut(); else signIn(); });
window.addEventListener("hashchange", onRoute);
// Jobs are not in the replicated state (they run on the workers): poll them while they are shown.
setInterval(() => { if (route().page === "pioreactors" && !document.hidden && !conn.nodeDown && !(auth.readAuth && (!auth.token || auth.refused))) refresh("jobs"); }, 3000);
// "seen N s ago" ages; a slow redraw keeps it honest.
setInterval(() => { if (!document.hidden && route().page !== "pioreactors") render(); }, 10000);
/**
 * thenPage is where to go once signed in: a page of the other UI this node
 * serves at / (api's ui.dir, such as Pioreactor's own), which sends no token
 * of its own but the cookie that signing in here sets. Only this node's paths.
 */
const thenPage = (() => {
  const t = new URLSearchParams(location.search).get("then") || "";
  return t.startsWith("/") && !/^\/[\\/]/.test(t) && !t.startsWith("/pio/") ? t : "";
})();

loadHealth().then(async () => {
  if (thenPage) {
    if (auth.mode !== "token") { location.replace(thenPage); return; }
    if (auth.token) await checkKeptToken(); // sets the cookie again
    if ((auth.token && !auth.refused) || await signIn(["The Pioreactor UI on this node needs you signed in: sign in here once, and it takes your changes."])) {
      location.replace(thenPage);
      return;
    }
  }
  // With api.read_auth nothing shows without the token: ask at once.
  if (auth.readAuth && !auth.token) await signIn(["Reading this cluster needs its API token (api.read_auth is on)."]);
  else if (auth.token && auth.mode === "token") checkKeptToken();
  started = true;
  connectEvents();
  onRoute();
});
// For tests and the curious: the UI's state and a way to wait for quiet.
window.pio = { state: S, refresh, render, firstRender: () => firstRender };
