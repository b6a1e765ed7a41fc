/*
 * Warren's web console: a page per hash route (#/overview, #/queues, ...),
 * each drawn from the management API with the credentials given at log in
 * (kept in sessionStorage, sent as HTTP Basic).  Names from the broker are
 * any bytes: they are only ever set as text, never as HTML.  A user whose
 * only tag is monitoring gets the read-only console (the API refuses
 * changes anyway).
 */
"use strict";

const REFRESH_MS = 5000;
const HISTORY_POINTS = 120; /* ten minutes of overview samples */

let auth = sessionStorage.getItem("warren-auth");
let me = null;
let timer = null;
const history = [];

/* ---- helpers ------------------------------------------------------------ */

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function enc(s) { return encodeURIComponent(s); }

async function api(method, path, body) {
  /* X-Requested-With: a 401 then comes without WWW-Authenticate, so the
   * browser puts up no password dialog of its own. */
  const opts = { method, headers: { Authorization: "Basic " + auth, "X-Requested-With": "warren-console" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch("/api" + path, opts);
  const text = await r.text();
  const json = text ? JSON.parse(text) : null;
  if (r.status === 401 && path === "/whoami") throw new Error("login failed");
  if (!r.ok) throw new Error((json && json.reason) || r.status + " " + r.statusText);
  return json;
}

function status(msg, ok) {
  const s = document.getElementById("status");
  s.textContent = msg || "";
  s.className = ok ? "ok" : "error";
}

/* Run a change, then redraw; its error shows in the status line. */
function act(fn, done) {
  return async (ev) => {
    if (ev) ev.preventDefault();
    try {
      const r = await fn();
      status(done || "", true);
      await show();
      return r;
    } catch (e) {
      status(e.message, false);
    }
  };
}

function table(rows, columns) {
  const head = el("tr", {}, columns.map((c) => el("th", {}, c.title)));
  const body = rows.map((row) => el("tr", {}, columns.map((c) => {
    const v = c.value(row);
    return el("td", { class: c.num ? "num" : "" }, v instanceof Node ? v : (v === null || v === undefined ? "" : String(v)));
  })));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

function field(label, input) { return el("label", {}, label, input); }

function rate(stats, name) {
  const d = stats && stats[name + "_details"];
  return d ? d.rate.toFixed(1) : "0.0";
}

function vhostsSelect(vhosts, id) {
  return el("select", { id }, vhosts.map((v) => el("option", { value: v.name }, v.name)));
}

/* A line chart of series [{label, color, points: [numbers]}] in SVG. */
function chart(series, width, height) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const max = Math.max(1, ...series.flatMap((s) => s.points));
  const n = Math.max(2, ...series.map((s) => s.points.length));
  const x = (i) => 40 + (i * (width - 50)) / (n - 1);
  const y = (v) => height - 20 - (v * (height - 30)) / max;
  const line = (x1, y1, x2, y2) => {
    const l = document.createElementNS(ns, "line");
    l.setAttribute("x1", x1); l.setAttribute("y1", y1);
    l.setAttribute("x2", x2); l.setAttribute("y2", y2);
    l.setAttribute("class", "axis");
    svg.append(l);
  };
  line(40, height - 20, width - 10, height - 20);
  line(40, 10, 40, height - 20);
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 2); label.setAttribute("y", 16);
  label.textContent = max.toFixed(0) + "/s";
  svg.append(label);
  for (const s of series) {
    const p = document.createElementNS(ns, "polyline");
    p.setAttribute("fill", "none");
    p.setAttribute("stroke", s.color);
    p.setAttribute("stroke-width", "2");
    p.setAttribute("points", s.points.map((v, i) => x(i) + "," + y(v)).join(" "));
    svg.append(p);
  }
  const legend = el("div", { class: "legend" }, series.map((s) => {
    const i = el("i");
    i.style.background = s.color;
    return el("span", {}, i, s.label);
  }));
  return el("div", {}, svg, legend);
}

/* ---- pages -------------------------------------------------------------- */

async function overview() {
  const [o, alarms] = await Promise.all([api("GET", "/overview"),
    api("GET", "/health/checks/alarms").catch((e) => ({ status: "failed", reason: e.message }))]);
  const ms = o.message_stats || {};
  history.push({ publish: Number(rate(ms, "publish")), deliver: Number(rate(ms, "deliver_get")), ack: Number(rate(ms, "ack")) });
  while (history.length > HISTORY_POINTS) history.shift();
  const t = o.object_totals || {};
  const q = o.queue_totals || {};
  const card = (label, value, id) => el("div", { class: "card" }, el("div", { class: "value", id }, value), el("div", { class: "label" }, label));
  return [
    el("h1", {}, "Overview: ", o.node || ""),
    alarms.status === "ok" ? null : el("div", { class: "alarm", id: "alarms" }, "Alarm: ", alarms.reason || JSON.stringify(alarms)),
    el("div", { class: "cards" },
      card("messages ready", q.messages_ready || 0, "total-ready"),
      card("unacknowledged", q.messages_unacknowledged || 0, "total-unacked"),
      card("queues", t.queues || 0, "total-queues"),
      card("connections", t.connections || 0, "total-connections"),
      card("channels", t.channels || 0),
      card("consumers", t.consumers || 0)),
    el("h2", {}, "Message rates (per second, refreshed every 5 s)"),
    chart([
      { label: "publish", color: "#2f6fdb", points: history.map((h) => h.publish) },
      { label: "deliver / get", color: "#1c8a4c", points: history.map((h) => h.deliver) },
      { label: "ack", color: "#c47a12", points: history.map((h) => h.ack) },
    ], 640, 200),
  ];
}

function ms(v) { return v === null || v === undefined ? "" : v + " ms"; }
function pct(l, p) { return l ? ms(l[p]) : ""; }

async function queues() {
  const [list, vhosts] = await Promise.all([api("GET", "/queues"), api("GET", "/vhosts")]);
  const link = (q) => el("a", { href: "#/queue/" + enc(q.vhost) + "/" + enc(q.name) }, q.name);
  const name = el("input", { id: "new-queue-name", required: "" });
  return [
    el("h1", {}, "Queues"),
    table(list, [
      { title: "vhost", value: (q) => q.vhost },
      { title: "name", value: link },
      { title: "type", value: (q) => q.type },
      { title: "ready", value: (q) => q.messages_ready, num: true },
      { title: "unacked", value: (q) => q.messages_unacknowledged, num: true },
      { title: "consumers", value: (q) => q.consumers, num: true },
      { title: "publish/s", value: (q) => rate(q.message_stats, "publish"), num: true },
      { title: "deliver/s", value: (q) => rate(q.message_stats, "deliver_get"), num: true },
      { title: "oldest ready", value: (q) => ms(q.oldest_ready_age_ms), num: true },
      { title: "time in queue p50/p99", value: (q) => q.time_in_queue_ms ? pct(q.time_in_queue_ms, "p50") + " / " + pct(q.time_in_queue_ms, "p99") : "" },
    ]),
    el("h2", { class: "mutating" }, "Add a queue"),
    el("form", { class: "inline mutating", on: { submit: act(() =>
      api("PUT", "/queues/" + enc(document.getElementById("new-queue-vhost").value) + "/" + enc(name.value), { durable: true }),
    "queue declared") } },
      field("vhost", vhostsSelect(vhosts, "new-queue-vhost")), field("name", name),
      el("button", { type: "submit" }, "Declare")),
  ];
}

function messagesTable(messages) {
  return table(messages, [
    { title: "#", value: (m) => m.position, num: true },
    { title: "routing key", value: (m) => m.routing_key },
    { title: "message id", value: (m) => (m.properties || {}).message_id },
    { title: "delivery count", value: (m) => m.delivery_count, num: true },
    { title: "bytes", value: (m) => m.payload_bytes, num: true },
    { title: "payload", value: (m) => m.payload },
  ]);
}

async function queuePage(vhost, name) {
  const path = "/queues/" + enc(vhost) + "/" + enc(name);
  const [q, browse] = await Promise.all([api("GET", path), api("GET", path + "/browse?count=20&preview=200").catch(() => null)]);
  const util = q.consumer_utilisation;
  const rows = [
    ["messages ready", q.messages_ready], ["unacknowledged", q.messages_unacknowledged],
    ["paged out", q.messages_paged_out], ["consumers", q.consumers],
    ["publish / deliver / ack per second", rate(q.message_stats, "publish") + " / " + rate(q.message_stats, "deliver_get") + " / " + rate(q.message_stats, "ack")],
    ["oldest ready message", ms(q.oldest_ready_age_ms)],
    ["time in queue p50 / p99", q.time_in_queue_ms ? pct(q.time_in_queue_ms, "p50") + " / " + pct(q.time_in_queue_ms, "p99") : ""],
    ["delivery to ack p50 / p99", q.delivery_to_ack_ms ? pct(q.delivery_to_ack_ms, "p50") + " / " + pct(q.delivery_to_ack_ms, "p99") : ""],
    ["consumer utilisation", util === null || util === undefined ? "" : (util * 100).toFixed(0) + "%"],
    ["arguments", JSON.stringify(q.arguments)],
  ];
  const payload = el("input", { id: "publish-payload" });
  const got = el("div", { id: "got" });
  return [
    el("h1", {}, "Queue ", el("span", { id: "queue-name" }, name), " in ", vhost),
    el("table", { id: "queue-details" }, el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "num", "data-field": k }, v))))),
    el("div", { class: "mutating" },
      el("button", { id: "purge", on: { click: act(() => api("DELETE", path + "/contents"), "queue purged") } }, "Purge"), " ",
      el("button", { id: "delete-queue", class: "danger", on: { click: act(async () => { await api("DELETE", path); location.hash = "#/queues"; }, "queue deleted") } }, "Delete"), " ",
      el("button", { id: "get-one", on: { click: async () => {
        try {
          const m = await api("POST", path + "/get", { count: 1, ackmode: "ack_requeue_true", encoding: "auto" });
          got.replaceChildren(m.length ? messagesTable(m.map((x, i) => Object.assign({ position: i }, x))) : "the queue is empty");
        } catch (e) { status(e.message, false); }
      } } }, "Get one (requeued)")),
    got,
    el("form", { class: "inline mutating", on: { submit: act(() =>
      api("POST", "/exchanges/" + enc(vhost) + "/amq.default/publish", { routing_key: name, payload: payload.value, payload_encoding: "string", properties: {} }),
    "message published") } },
      field("publish to this queue", payload), el("button", { type: "submit", id: "publish" }, "Publish")),
    el("h2", {}, "Ready messages (browsed: nothing is taken or moved)"),
    browse ? messagesTable(browse.messages) : el("p", {}, "a stream is read by consumers, not browsed"),
  ];
}

async function exchanges() {
  const list = await api("GET", "/exchanges");
  return [
    el("h1", {}, "Exchanges"),
    table(list, [
      { title: "vhost", value: (x) => x.vhost },
      { title: "name", value: (x) => el("a", { href: "#/exchange/" + enc(x.vhost) + "/" + enc(x.name || "amq.default") }, x.name || "(default)") },
      { title: "type", value: (x) => x.type },
      { title: "durable", value: (x) => x.durable },
      { title: "internal", value: (x) => x.internal },
    ]),
  ];
}

async function exchangePage(vhost, name) {
  const xname = name === "amq.default" ? "" : name;
  const bindings = await api("GET", "/exchanges/" + enc(vhost) + "/" + enc(name) + "/bindings/source").catch(() => []);
  const key = el("input", { id: "trace-key" });
  const headers = el("input", { id: "trace-headers", placeholder: '{"format": "pdf"}' });
  const out = el("div", { id: "trace-result" });
  const trace = async (ev) => {
    ev.preventDefault();
    try {
      const props = headers.value ? { headers: JSON.parse(headers.value) } : {};
      const t = await api("POST", "/route/" + enc(vhost) + "/" + enc(name), { routing_key: key.value, properties: props });
      out.replaceChildren(
        el("p", { id: "trace-queues" }, t.queues.length ? "reaches: " + t.queues.join(", ") : "reaches no queue: " + (t.unroutable_why || "")),
        el("ol", {}, t.steps.map((s) => el("li", {}, s.step + " " + (s.exchange !== undefined ? "'" + s.exchange + "'" : "") +
          (s.binding ? " " + s.binding.source + " → " + s.binding.destination + " ('" + s.binding.routing_key + "')" : "") +
          (s.queue ? " queue " + s.queue : "") + (s.why ? ": " + s.why : "")))),
        t.not_matched.length ? el("h2", {}, "Not matched") : null,
        el("ul", {}, t.not_matched.map((n) => el("li", {}, n.source + " → " + n.destination + ": " + n.why))));
    } catch (e) { status(e.message, false); }
  };
  return [
    el("h1", {}, "Exchange ", xname || "(default)", " in ", vhost),
    table(bindings, [
      { title: "destination", value: (b) => b.destination },
      { title: "type", value: (b) => b.destination_type },
      { title: "routing key", value: (b) => b.routing_key },
      { title: "arguments", value: (b) => JSON.stringify(b.arguments) },
    ]),
    el("h2", {}, "Where would a message go? (nothing is published)"),
    el("form", { class: "inline", id: "trace-form", on: { submit: trace } },
      field("routing key", key), field("headers (JSON)", headers), el("button", { type: "submit", id: "trace-submit" }, "Trace")),
    out,
  ];
}

async function connections() {
  const [conns, chans] = await Promise.all([api("GET", "/connections"), api("GET", "/channels")]);
  return [
    el("h1", {}, "Connections"),
    table(conns, [
      { title: "name", value: (c) => c.name },
      { title: "user", value: (c) => c.user },
      { title: "vhost", value: (c) => c.vhost },
      { title: "channels", value: (c) => c.channels, num: true },
      { title: "state", value: (c) => c.state },
      { title: "", value: (c) => el("button", { class: "mutating close-connection", "data-name": c.name, on: { click: act(() => api("DELETE", "/connections/" + enc(c.name)), "connection closed") } }, "Close") },
    ]),
    el("h2", {}, "Channels"),
    table(chans, [
      { title: "name", value: (c) => c.name },
      { title: "user", value: (c) => c.user },
      { title: "consumers", value: (c) => c.consumer_count, num: true },
      { title: "unacked", value: (c) => c.messages_unacknowledged, num: true },
      { title: "prefetch", value: (c) => c.prefetch_count, num: true },
    ]),
  ];
}

async function admin() {
  const admin = me.tags.includes("administrator");
  const [vhosts, users, perms] = await Promise.all([api("GET", "/vhosts"),
    admin ? api("GET", "/users") : [], admin ? api("GET", "/permissions") : []]);
  const user = el("input", { id: "new-user" }), pass = el("input", { id: "new-password", type: "password" });
  const tags = el("input", { id: "new-tags", placeholder: "management" }), vhost = el("input", { id: "new-vhost" });
  const imp = el("textarea", { id: "import-text", rows: 4, cols: 60, placeholder: "definitions JSON" });
  return [
    el("h1", {}, "Virtual hosts"),
    table(vhosts, [
      { title: "name", value: (v) => v.name },
      { title: "messages", value: (v) => v.messages, num: true },
      { title: "tracing", value: (v) => v.tracing },
      { title: "", value: (v) => el("button", { class: "mutating danger", on: { click: act(() => api("DELETE", "/vhosts/" + enc(v.name)), "vhost deleted") } }, "Delete") },
    ]),
    el("form", { class: "inline mutating", on: { submit: act(() => api("PUT", "/vhosts/" + enc(vhost.value), {}), "vhost added") } },
      field("new vhost", vhost), el("button", { type: "submit" }, "Add")),
    admin ? el("h1", {}, "Users") : null,
    admin ? table(users, [
      { title: "name", value: (u) => u.name },
      { title: "tags", value: (u) => [].concat(u.tags).join(", ") },
      { title: "", value: (u) => el("button", { class: "mutating danger", on: { click: act(() => api("DELETE", "/users/" + enc(u.name)), "user deleted") } }, "Delete") },
    ]) : null,
    admin ? el("form", { class: "inline mutating", on: { submit: act(async () => {
      await api("PUT", "/users/" + enc(user.value), { password: pass.value, tags: tags.value });
      await api("PUT", "/permissions/" + enc("/") + "/" + enc(user.value), { configure: ".*", write: ".*", read: ".*" });
    }, "user added, with every permission on /") } },
      field("user", user), field("password", pass), field("tags", tags), el("button", { type: "submit" }, "Add")) : null,
    admin ? el("h1", {}, "Permissions") : null,
    admin ? table(perms, [
      { title: "user", value: (p) => p.user }, { title: "vhost", value: (p) => p.vhost },
      { title: "configure", value: (p) => p.configure }, { title: "write", value: (p) => p.write },
      { title: "read", value: (p) => p.read },
      { title: "", value: (p) => el("button", { class: "mutating danger clear-permission", on: { click: act(() =>
        api("DELETE", "/permissions/" + enc(p.vhost) + "/" + enc(p.user)), "permissions cleared") } }, "Clear") },
    ]) : null,
    admin ? permissionsForm(users, vhosts) : null,
    admin ? el("h1", {}, "Definitions") : null,
    admin ? el("p", {}, el("button", { id: "export", on: { click: async () => {
      const d = await api("GET", "/definitions");
      const a = el("a", { href: "data:application/json," + enc(JSON.stringify(d, null, 2)), download: "warren-definitions.json" });
      document.body.append(a); a.click(); a.remove();
    } } }, "Export (download)")) : null,
    admin ? el("form", { class: "inline mutating", on: { submit: act(() => api("POST", "/definitions", JSON.parse(imp.value)), "definitions imported") } },
      field("import", imp), el("button", { type: "submit" }, "Import")) : null,
  ];
}

/* Set a user's configure / write / read expressions on a vhost. */
function permissionsForm(users, vhosts) {
  const user = el("select", { id: "perm-user" }, users.map((u) => el("option", { value: u.name }, u.name)));
  const vhost = vhostsSelect(vhosts, "perm-vhost");
  const conf = el("input", { id: "perm-configure", value: ".*" });
  const write = el("input", { id: "perm-write", value: ".*" });
  const read = el("input", { id: "perm-read", value: ".*" });
  return el("form", { class: "inline mutating", id: "perm-form", on: { submit: act(() =>
    api("PUT", "/permissions/" + enc(vhost.value) + "/" + enc(user.value),
      { configure: conf.value, write: write.value, read: read.value }), "permissions set") } },
    field("user", user), field("vhost", vhost), field("configure", conf), field("write", write),
    field("read", read), el("button", { type: "submit", id: "perm-submit" }, "Set"));
}

async function journeys() {
  const vhosts = await api("GET", "/vhosts");
  const id = el("input", { id: "journey-id" });
  const sel = vhostsSelect(vhosts, "journey-vhost");
  const out = el("div", { id: "journey-result" });
  const search = async (ev) => {
    ev.preventDefault();
    try {
      const t = await api("GET", "/trace/" + enc(sel.value) + "?id=" + enc(id.value));
      out.replaceChildren(t.tracing ? table(t.events, [
        { title: "time", value: (e) => e.time }, { title: "step", value: (e) => e.step },
        { title: "where", value: (e) => e.where }, { title: "detail", value: (e) => e.detail },
        { title: "connection", value: (e) => e.connection },
      ]) : el("p", {}, "tracing is off in this vhost"));
    } catch (e) { status(e.message, false); }
  };
  return [
    el("h1", {}, "Message journeys"),
    table(vhosts, [
      { title: "vhost", value: (v) => v.name },
      { title: "tracing", value: (v) => v.tracing ? "on" : "off" },
      { title: "", value: (v) => el("button", { class: "mutating", on: { click: act(() => api("PUT", "/vhosts/" + enc(v.name), { tracing: !v.tracing }), "tracing changed") } }, v.tracing ? "Turn off" : "Turn on") },
    ]),
    el("form", { class: "inline", on: { submit: search } },
      field("vhost", sel), field("message-id or correlation-id", id), el("button", { type: "submit" }, "Find")),
    out,
  ];
}

/* ---- routing and log in -------------------------------------------------- */

const pages = { overview, queues, exchanges, connections, admin, journeys };

async function show() {
  const [, page, ...args] = (location.hash || "#/overview").split("/");
  const target = document.getElementById("page");
  for (const a of document.querySelectorAll("#nav a"))
    a.classList.toggle("active", a.dataset.page === page || (page === "queue" && a.dataset.page === "queues") || (page === "exchange" && a.dataset.page === "exchanges"));
  try {
    let content;
    if (page === "queue") content = await queuePage(decodeURIComponent(args[0]), decodeURIComponent(args.slice(1).join("/")));
    else if (page === "exchange") content = await exchangePage(decodeURIComponent(args[0]), decodeURIComponent(args.slice(1).join("/")));
    else content = await (pages[page] || overview)();
    /* Keep what is being typed: forms are redrawn only on navigation. */
    if (document.activeElement && target.contains(document.activeElement) && document.activeElement.tagName !== "BUTTON" && !show.navigated) return;
    show.navigated = false;
    target.replaceChildren(...[].concat(content).filter((c) => c));
  } catch (e) {
    status(e.message, false);
  }
}

/* Pages that show live state redraw themselves; those where a result was
 * asked for (a trace, a search, a get) keep it until the user moves on. */
function refresh() {
  const page = (location.hash || "#/overview").split("/")[1];
  const got = document.getElementById("got");
  if (["exchange", "journeys", "admin"].includes(page) || (got && got.childNodes.length))
    return;
  show();
}

function schedule() {
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

async function start() {
  try {
    me = await api("GET", "/whoami");
  } catch (e) {
    sessionStorage.removeItem("warren-auth");
    auth = null;
    return login(e.message === "login failed" ? "wrong user or password, or not a management user" : e.message);
  }
  me.tags = [].concat(me.tags || []).flatMap((t) => String(t).split(",")).filter((t) => t);
  const changes = ["administrator", "management", "policymaker"].some((t) => me.tags.includes(t));
  document.body.classList.toggle("readonly", !changes);
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("who").replaceChildren(me.name + (changes ? "" : " (read only)"),
    el("button", { id: "logout", on: { click: () => { sessionStorage.removeItem("warren-auth"); location.reload(); } } }, "Log out"));
  show.navigated = true;
  await show();
  schedule();
}

function login(error) {
  document.getElementById("login").hidden = false;
  document.getElementById("nav").hidden = true;
  document.getElementById("page").replaceChildren();
  document.getElementById("login-error").textContent = error || "";
}

document.getElementById("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const u = document.getElementById("login-user").value;
  const p = document.getElementById("login-password").value;
  auth = btoa(unescape(encodeURIComponent(u + ":" + p)));
  sessionStorage.setItem("warren-auth", auth);
  start();
});
window.addEventListener("hashchange", () => { show.navigated = true; status(""); show(); });

if (auth) start(); else login();
