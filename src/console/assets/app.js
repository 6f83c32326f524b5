// The console: signs in with a bearer token (sessionStorage of this tab
// only), reads everything through the gateway's JSON API with it, and
// renders with textContent only. Views by role: admin (operator), auditor,
// agency. Pages show ids, codes, counts and hashes, never a record's content.

import { t, lang, num, pct, date, time } from "./i18n.js";
import { fromBase64, toHex, leafHash, verifyInclusion, parseKey, openCheckpoint } from "./verify.js";

const TOKEN = "registry-gateway-token";
const main = document.getElementById("main");
const statusLine = document.getElementById("status");
let me = null;
let timer = null;

// ---- DOM helpers ---------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function table(caption, headers, rows, attrs = {}) {
  return h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": caption },
    h("table", attrs,
      h("caption", { text: caption }),
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col", text: x })))),
      h("tbody", {}, rows)));
}

function dl(pairs) {
  return h("dl", { class: "facts" }, pairs.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)]));
}

function say(text) {
  statusLine.textContent = text;
}

function page(title, ...content) {
  main.replaceChildren(h("h1", { id: "page-title", text: title }), ...content.flat().filter(Boolean));
  document.title = `${title} – ${t("title")}`;
}

// ---- API -----------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN);
  const headers = { Authorization: `Bearer ${token}`, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" });
  if (!response.ok) {
    let problem = null;
    try { problem = await response.json(); } catch { /* not a problem document */ }
    throw new ApiError(response.status, problem);
  }
  const type = response.headers.get("content-type") || "";
  return type.startsWith("application/json") ? response.json() : response.text();
}

// ---- sign in, navigation -------------------------------------------------

const VIEWS = {
  admin: [["overview", "overview"], ["dead-letters", "deadLetters"], ["record", "record"], ["manifest", "manifest"]],
  auditor: [["checkpoint", "checkpoint"], ["log", "log"], ["history", "history"], ["manifest", "manifest"]],
  agency: [["record", "record"]],
};

function signInView(problem) {
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "token-help" });
  const form = h("form", { class: "signin", on: { submit: async (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN, input.value.trim());
    await start();
  } } },
  h("label", { for: "token", text: t("token") }), input,
  h("p", { id: "token-help", class: "help", text: t("tokenHelp") }),
  problem ? h("p", { class: "error", role: "alert", text: problem }) : null,
  h("button", { type: "submit", class: "primary", id: "signin", text: t("signin") }));
  page(t("signin"), form);
  document.getElementById("nav").replaceChildren();
  document.getElementById("who").replaceChildren();
  input.focus();
}

function signOut() {
  sessionStorage.removeItem(TOKEN);
  me = null;
  location.hash = "";
  signInView();
}

function chrome() {
  const views = VIEWS[me.role] || [];
  const current = route().view;
  document.getElementById("nav").replaceChildren(h("ul", {}, views.map(([id, key]) =>
    h("li", {}, h("a", { href: `#/${id}`, id: `nav-${id}`, "aria-current": id === current ? "page" : null, text: t(key) })))));
  document.getElementById("who").replaceChildren(
    h("span", { id: "whoami", "data-role": me.role, text: t("signedInAs", me.client, me.role) }),
    h("button", { type: "button", id: "signout", on: { click: signOut }, text: t("signout") }));
}

function route() {
  const [view, arg] = location.hash.replace(/^#\/?/, "").split("/");
  return { view, arg: arg ? decodeURIComponent(arg) : "" };
}

async function start() {
  if (!sessionStorage.getItem(TOKEN)) return signInView();
  try {
    me = await api("/v1/whoami");
  } catch (e) {
    sessionStorage.removeItem(TOKEN);
    return signInView(e.status === 401 ? t("badToken") : t("unavailable"));
  }
  const views = VIEWS[me.role] || [];
  if (!views.length) {
    chrome();
    return page(t("noViews"));
  }
  if (!views.some(([id]) => id === route().view)) location.hash = `#/${views[0][0]}`;
  else show();
}

async function show() {
  if (!me) return;
  clearInterval(timer);
  timer = null;
  chrome();
  const { view, arg } = route();
  const views = VIEWS[me.role] || [];
  if (!views.some(([id]) => id === view)) return;
  say("");
  try {
    await RENDER[view](arg);
  } catch (e) {
    main.append(h("p", { class: "error", role: "alert", text: e instanceof ApiError ? e.message : t("unavailable") }));
  }
  main.focus({ preventScroll: true });
}

// ---- operator: overview --------------------------------------------------

const STOPPED = ["dead", "parked", "referred", "cancelled"];

function chart(d) {
  const W = 600, H = 140, pad = 20, bw = (W - pad) / d.minutes.length;
  const peak = Math.max(1, ...d.minutes.map((m) => Math.max(m.sent, Object.values(m.outcomes).reduce((a, b) => a + b, 0))));
  const totals = { sent: 0, delivered: 0, failed: 0 };
  const bars = [];
  d.minutes.forEach((m, i) => {
    const delivered = (m.outcomes.delivered || 0) + (m.outcomes.awaiting || 0);
    const retry = m.outcomes.pending || 0;
    const stopped = STOPPED.reduce((a, k) => a + (m.outcomes[k] || 0), 0);
    totals.sent += m.sent;
    totals.delivered += delivered;
    totals.failed += retry + stopped;
    let y = H - pad;
    for (const [n, cls] of [[delivered, "bar-ok"], [retry, "bar-retry"], [stopped, "bar-stop"]]) {
      if (!n) continue;
      const bh = (n / peak) * (H - 2 * pad);
      y -= bh;
      bars.push(s("rect", { x: (pad + i * bw).toFixed(1), y: y.toFixed(1), width: Math.max(1, bw - 1).toFixed(1), height: bh.toFixed(1), class: cls },
        s("title", {}, `${time(m.at)}: ${n}`)));
    }
  });
  const title = t("chartTitle", d.name);
  const summary = t("chartSummary", num(totals.sent), num(totals.delivered), num(totals.failed));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title}. ${summary}`, class: "chart", "data-bars": String(bars.length) },
    s("line", { x1: pad, y1: H - pad, x2: W, y2: H - pad, class: "axis" }),
    s("text", { x: pad, y: 12, class: "axis-label" }, num(peak)),
    s("text", { x: pad, y: H - 4, class: "axis-label" }, time(d.minutes[0].at)),
    s("text", { x: W - 40, y: H - 4, class: "axis-label" }, time(d.minutes[d.minutes.length - 1].at)),
    ...bars);
  const legend = h("ul", { class: "legend" },
    [["bar-ok", "legendDelivered"], ["bar-retry", "legendRetry"], ["bar-stop", "legendStopped"]].map(([cls, key]) =>
      h("li", {}, h("span", { class: `swatch ${cls}`, "aria-hidden": "true" }), t(key))));
  return h("figure", {}, svg, h("figcaption", { text: summary }), legend);
}

function paceFacts(p, minutes) {
  const last = minutes[minutes.length - 1];
  const last10 = minutes.slice(-10).reduce((a, m) => a + m.sent, 0);
  const perMinute = p.rate_per_second ? p.rate_per_second * 60 + p.burst : null;
  const use = perMinute ? last.sent / perMinute : null;
  const b = p.breaker;
  return dl([
    [t("sentLastMinute"), num(last.sent)],
    [t("sentLast10"), num(last10)],
    [t("limit"), p.rate_per_second ? `${t("perSecond", num(p.rate_per_second))}, ${t("burst", num(p.burst))}` : t("noLimit")],
    [t("closeness"), use === null ? "–" : h("span", {}, h("meter", { min: "0", max: "1", low: "0.7", high: "0.9", optimum: "0", value: String(Math.min(1, use)), "aria-label": t("closeness") }), " ", pct(use))],
    [t("breaker"), h("span", { class: `breaker-${b.state}`, "data-breaker": b.state }, t("breakerState")[b.state] + (b.until ? ` (${t("until", date(b.until))})` : ""), ` · ${num(b.failures)}/${num(b.threshold)}`)],
    [t("retryAfter"), p.retry_after_until ? t("until", date(p.retry_after_until)) : t("none")],
    [t("quota"), p.daily_quota ? `${num(p.sent_today)} / ${num(p.daily_quota)} (${pct(p.sent_today / p.daily_quota)})` : `${num(p.sent_today)} · ${t("noQuota")}`],
    [t("nextClosed"), p.closed_until ? t("closedNow", date(p.closed_until)) : p.next_closed ? `${date(p.next_closed.from)} – ${date(p.next_closed.to)}` : t("none")],
  ]);
}

function destinationCard(d) {
  const statuses = Object.entries(d.deliveries);
  const counts = statuses.length
    ? table(t("deliveriesByStatus"), [t("status"), t("count")],
      statuses.map(([k, n]) => h("tr", {}, h("td", { text: k }), h("td", { class: "num", "data-status": k, text: num(n) }))))
    : h("p", { text: `${t("deliveriesByStatus")}: ${t("none")}` });
  return h("section", { class: "card", "aria-labelledby": `dest-${d.name}`, "data-destination": d.name },
    h("h2", { id: `dest-${d.name}`, text: `${d.name} · ${d.kind}` }),
    counts,
    d.pace ? paceFacts(d.pace, d.minutes) : h("p", { text: t("notRunning") }),
    d.minutes ? chart(d) : null);
}

async function overview() {
  const holder = h("div", { class: "cards", id: "destinations" });
  page(t("overview"), h("p", { class: "help", id: "as-of" }), holder);
  const load = async () => {
    const data = await api("/v1/admin/destinations");
    document.getElementById("as-of").textContent = date(data.at);
    holder.replaceChildren(...data.destinations.map(destinationCard));
  };
  await load();
  timer = setInterval(() => load().catch(() => say(t("unavailable"))), 2000);
}

// ---- operator: dead letters ----------------------------------------------

const confirmDialog = document.getElementById("confirm");
function confirmed(text) {
  document.getElementById("confirm-title").textContent = t("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-cancel").textContent = t("cancel");
  document.getElementById("confirm-ok").textContent = t("replay");
  confirmDialog.returnValue = "";
  confirmDialog.showModal();
  document.getElementById("confirm-cancel").focus();
  return new Promise((resolve) => confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "ok"), { once: true }));
}

async function replay(body, text) {
  if (!(await confirmed(text))) return;
  const answer = await api("/v1/admin/dead-letters/replay", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  await deadLetters();
  say(t("replayed", num(answer.replayed.length)));
}

async function deadLetters() {
  const { dead_letters: letters } = await api("/v1/admin/dead-letters?limit=1000");
  if (!letters.length) return page(t("deadLetters"), h("p", { id: "no-dead-letters", text: t("noDeadLetters") }));
  const rows = letters.map((l) => h("tr", { "data-delivery": String(l.delivery_id) },
    h("td", {}, h("input", { type: "checkbox", class: "pick", value: String(l.delivery_id), id: `pick-${l.delivery_id}`, "aria-label": `${t("select")} ${l.delivery_id}` })),
    h("td", { class: "num", text: String(l.delivery_id) }),
    h("td", {}, h("a", { href: `#/record/${encodeURIComponent(l.record_id)}`, class: "id", text: l.record_id })),
    h("td", { text: l.route }), h("td", { text: l.destination }), h("td", { class: "num", text: num(l.attempts) }),
    h("td", {}, h("code", { text: (l.last_error || "").split(":")[0] })),
    h("td", {}, h("code", { class: "wrap", text: l.last_error || "" })),
    h("td", { text: date(l.failed_at) })));
  const destinations = [...new Set(letters.map((l) => l.destination))];
  const selected = () => [...main.querySelectorAll("input.pick:checked")].map((c) => Number(c.value));
  page(t("deadLetters"),
    h("div", { class: "buttons" },
      h("button", { type: "button", id: "replay-selected", class: "primary", on: { click: () => {
        const ids = selected();
        if (!ids.length) return say(t("nothingSelected"));
        replay({ ids }, t("confirmReplay", num(ids.length))).catch((e) => say(e.message));
      } }, text: t("replaySelected") }),
      destinations.map((d) => h("button", { type: "button", "data-replay-destination": d, on: { click: () =>
        replay({ destination: d }, t("confirmReplay", 0, d)).catch((e) => say(e.message)) }, text: t("replayDestination", d) }))),
    table(t("deadLetters"), [t("select"), t("deliveryId"), t("recordId"), t("route"), t("destination"), t("attempts"), t("reason"), t("lastError"), t("failedAt")], rows, { id: "dead-letters" }));
}

// ---- a record's status (operator, agency) -------------------------------

function lookupForm(view, value, label) {
  const input = h("input", { id: "record-id", name: "id", value, required: true, autocomplete: "off", spellcheck: "false", "aria-describedby": "record-id-help", pattern: "[0-9a-fA-F-]{36}" });
  return h("form", { class: "lookup", on: { submit: (e) => {
    e.preventDefault();
    location.hash = `#/${view}/${encodeURIComponent(input.value.trim())}`;
  } } },
  h("label", { for: "record-id", text: label }), input,
  h("button", { type: "submit", id: "lookup", text: t("lookUp") }),
  h("p", { id: "record-id-help", class: "help", text: t("recordIdHelp") }));
}

function receiptText(r) {
  if (!r) return "–";
  const parts = [r.status, r.reference, r.http_status ? `HTTP ${r.http_status}` : null];
  return parts.filter(Boolean).join(" · ");
}

const FINAL = ["delivered", "referred", "dead", "cancelled"];

async function record(id) {
  page(t("record"), lookupForm("record", id, t("recordId")));
  if (!id) return;
  const holder = h("div", { id: "record" });
  main.append(holder);
  const load = async () => {
    let r;
    try {
      r = await api(`/v1/records/${encodeURIComponent(id)}`);
    } catch (e) {
      clearInterval(timer);
      if (e.status === 404 || e.status === 403) return holder.replaceChildren(h("p", { class: "error", role: "alert", id: "not-visible", text: t("notVisible") }));
      throw e;
    }
    holder.replaceChildren(
      dl([[t("recordId"), h("code", { text: r.id })], [t("source"), r.source], [t("recordType"), r.record_type], [t("receivedAt"), date(r.received_at)],
        r.purged_at ? [t("purgedAt"), date(r.purged_at)] : null].filter(Boolean)),
      table(t("route"), [t("route"), t("destination"), t("status"), t("attempts"), t("receipt"), t("lastError"), t("updatedAt")],
        r.routes.map((d) => h("tr", { "data-route": d.route },
          h("td", { text: d.route }), h("td", { text: d.destination }),
          h("td", {}, h("span", { class: `state state-${d.status}`, "data-status": d.status, text: d.status })),
          h("td", { class: "num", text: num(d.attempts) }), h("td", {}, h("code", { class: "wrap", text: receiptText(d.receipt) })),
          h("td", {}, h("code", { class: "wrap", text: d.last_error || "–" })), h("td", { text: date(d.updated_at) }))), { id: "routes" }));
    if (r.routes.every((d) => FINAL.includes(d.status))) clearInterval(timer);
  };
  await load();
  timer = setInterval(() => load().catch(() => say(t("unavailable"))), 1500);
}

// ---- auditor: checkpoint, log, history ----------------------------------

async function verifiedCheckpoint(note) {
  const key = await parseKey(await api("/v1/audit/public-key"));
  const text = note ?? (await api("/v1/audit/checkpoint"));
  try {
    return { key, note: text, cp: await openCheckpoint(text, key) };
  } catch (e) {
    return { key, note: text, error: e.message };
  }
}

function checkpointFacts({ key, cp, error }) {
  return h("section", { class: "card", id: "checkpoint", "data-verdict": error ? "fail" : "ok" },
    h("h2", { text: t("checkpointTitle") }),
    h("p", { class: error ? "verdict fail" : "verdict ok", id: "signature", text: error ? t("sigFail", error) : t("sigOk") }),
    dl([
      ...(cp ? [[t("origin"), cp.origin], [t("treeSize"), num(cp.size)], [t("root"), h("code", { class: "wrap", text: cp.rootB64 })]] : []),
      [t("keyName"), key.name], [t("keyHash"), h("code", { text: key.hash })], [t("keyLine"), h("code", { class: "wrap", text: key.line })],
    ]));
}

async function checkpoint() {
  page(t("checkpoint"), h("p", { text: t("loading") }));
  try {
    const verified = await verifiedCheckpoint();
    page(t("checkpoint"), checkpointFacts(verified));
  } catch (e) {
    if (e.status === 404) return page(t("checkpoint"), h("p", { text: t("noAudit") }));
    throw e;
  }
}

function eventCodes(e) {
  const d = e.delivery || {};
  return [e.record_type, d.route, d.destination, d.error_class, d.receipt_status, d.reason,
    ...(e.routes || []).map((r) => `${r.route}:${r.outcome ?? ""}`), ...(e.problems || []).map((p) => `${p.pointer} ${p.code}`)]
    .filter(Boolean).join(" · ");
}

async function download(path, name) {
  const bundle = await api(path);
  const url = URL.createObjectURL(new Blob([JSON.stringify(bundle, null, 2)], { type: "application/json" }));
  const a = h("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  say(t("bundleReady"));
}

async function log(arg) {
  const q = new URLSearchParams(arg);
  const cp = await verifiedCheckpoint();
  const size = cp.cp ? cp.cp.size : 0;
  // By default the last 200 entries the checkpoint covers, and any after it.
  const start = q.has("start") ? Number(q.get("start")) : Math.max(0, size - 200);
  const end = q.has("end") ? Number(q.get("end")) : Math.max(size, start) + 200;
  const entries = (await api(`/v1/audit/entries?start=${start}&end=${end}`)).entries;
  const events = entries.map((e) => ({ index: e.index, event: JSON.parse(new TextDecoder().decode(fromBase64(e.leaf))) }));
  const kinds = [...new Set(events.map((e) => e.event.kind))].sort();
  const want = { kind: q.get("kind") || "", record: q.get("record") || "", from: q.get("from") || "", to: q.get("to") || "" };
  const shown = events.filter(({ event }) =>
    (!want.kind || event.kind === want.kind) && (!want.record || event.record_id === want.record) &&
    (!want.from || new Date(event.at) >= new Date(want.from)) && (!want.to || new Date(event.at) <= new Date(want.to)));
  const field = (name, label, attrs = {}) => h("div", { class: "field" }, h("label", { for: `f-${name}`, text: label }), h("input", { id: `f-${name}`, name, ...attrs }));
  const form = h("form", { class: "filters", id: "log-filter", on: { submit: (e) => {
    e.preventDefault();
    const data = new URLSearchParams([...new FormData(e.target)].filter(([, v]) => v !== ""));
    location.hash = `#/log/${encodeURIComponent(data.toString())}`;
  } } },
  field("start", t("start"), { type: "number", min: "0", value: String(start) }),
  field("end", t("end"), { type: "number", min: "0", value: String(end) }),
  h("div", { class: "field" }, h("label", { for: "f-kind", text: t("eventKind") }),
    h("select", { id: "f-kind", name: "kind" }, h("option", { value: "", text: t("anyKind") }), kinds.map((k) => h("option", { value: k, selected: k === want.kind, text: k })))),
  field("record", t("recordId"), { value: want.record, autocomplete: "off" }),
  field("from", t("from"), { type: "datetime-local", value: want.from, step: "1" }),
  field("to", t("to"), { type: "datetime-local", value: want.to, step: "1" }),
  h("button", { type: "submit", id: "show", text: t("show") }));
  const rows = shown.map(({ index, event }) => h("tr", { "data-index": String(index) },
    h("td", { class: "num", text: String(index) }), h("td", { text: date(event.at) }), h("td", {}, h("code", { text: event.kind })),
    h("td", { text: event.client }), h("td", {}, event.record_id ? h("a", { href: `#/history/${event.record_id}`, class: "id", text: event.record_id }) : "–"),
    h("td", {}, h("code", { class: "wrap", text: eventCodes(event) }))));
  page(t("log"), form,
    h("p", { id: "log-count", text: t("entriesShown", num(shown.length), num(start), num(end)) }),
    h("div", { class: "buttons" },
      h("a", { class: "button", href: `#/log/${encodeURIComponent(`start=${Math.max(0, start - 200)}&end=${start}`)}`, text: t("earlier") }),
      h("a", { class: "button", href: `#/log/${encodeURIComponent(`start=${end}&end=${end + 200}`)}`, text: t("later") }),
      h("button", { type: "button", id: "export-range", on: { click: () => download(`/v1/audit/bundle?start=${start}&end=${end}`, `audit-bundle-${start}-${end}.json`).catch((e) => say(e.message)) }, text: t("exportBundle") })),
    table(t("log"), [t("index"), t("at"), t("eventKind"), t("client"), t("recordId"), t("details")], rows, { id: "log" }));
}

async function history(id) {
  page(t("history"), lookupForm("history", id, t("recordId")));
  if (!id) return;
  let answer;
  try {
    answer = await api(`/v1/audit/records/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status === 404) return main.append(h("p", { class: "error", role: "alert", id: "not-visible", text: t("noHistory") }));
    throw e;
  }
  const verified = await verifiedCheckpoint(answer.checkpoint);
  const results = [];
  for (const entry of answer.entries) {
    const bytes = fromBase64(entry.leaf);
    const leaf = await leafHash(bytes);
    const event = JSON.parse(new TextDecoder().decode(bytes));
    let verdict = "pending";
    if (entry.inclusion && verified.cp) {
      verdict = (await verifyInclusion(entry.index, verified.cp.size, leaf, entry.inclusion.map(fromBase64), verified.cp.root)) ? "ok" : "fail";
    } else if (entry.inclusion || !verified.cp) {
      verdict = "fail";
    }
    results.push({ entry, event, leaf, verdict });
  }
  const ok = results.filter((r) => r.verdict === "ok").length;
  const fail = results.filter((r) => r.verdict === "fail").length;
  const label = { ok: t("proofOk"), fail: t("proofFail"), pending: t("proofPending") };
  const indexes = answer.entries.map((e) => e.index);
  main.append(
    checkpointFacts(verified),
    h("p", { id: "proof-summary", class: fail ? "verdict fail" : "verdict ok", role: fail ? "alert" : null, text: t("proofSummary", num(ok), num(results.length), fail) }),
    h("div", { class: "buttons" }, h("button", { type: "button", id: "export-record", on: { click: () =>
      download(`/v1/audit/bundle?start=${Math.min(...indexes)}&end=${Math.max(...indexes) + 1}`, `audit-bundle-${id}.json`).catch((e) => say(e.message)) }, text: t("exportBundle") })),
    table(t("history"), [t("index"), t("at"), t("eventKind"), t("details"), t("leafHash"), t("proof")],
      results.map(({ entry, event, leaf, verdict }) => h("tr", { "data-index": String(entry.index), "data-verdict": verdict, class: `verdict-${verdict}` },
        h("td", { class: "num", text: String(entry.index) }), h("td", { text: date(event.at) }), h("td", {}, h("code", { text: event.kind })),
        h("td", {}, h("code", { class: "wrap", text: eventCodes(event) })), h("td", {}, h("code", { class: "hash", text: toHex(leaf) })),
        h("td", {}, h("span", { class: `verdict ${verdict}`, text: label[verdict] })))), { id: "history" }));
}

// ---- manifest ------------------------------------------------------------

function plainWords(markdown) {
  const out = [];
  let list = null;
  for (const raw of markdown.split("\n")) {
    const line = raw.replaceAll("`", "").trim();
    if (!line || line.startsWith("#")) { list = null; continue; }
    const item = line.match(/^(?:[-*]|[0-9]+\.)\s+(.*)$/);
    if (item) {
      if (!list) out.push((list = h("ul", {})));
      list.append(h("li", { text: item[1] }));
    } else {
      list = null;
      out.push(h("p", { text: line }));
    }
  }
  return out;
}

function fieldsTable(fields) {
  const rows = fields.map((f) => h("tr", {},
    h("td", {}, h("code", { text: f.to })), h("td", {}, h("code", { text: f.from })),
    h("td", { text: f.transform.join(", ") }), h("td", { text: f.sensitivity.join(", ") }), h("td", { text: f.policy })));
  return table(t("fields"), [t("to_"), t("from_"), t("transform"), t("sensitivity"), t("whatPolicyDoes")], rows);
}

function routeCard(r) {
  return h("section", { class: "card", "data-route": r.route, "aria-labelledby": `route-${r.route}` },
    h("h2", { id: `route-${r.route}`, text: r.route }),
    h("p", { text: t("routeTo", r.record_type, r.destination, r.destination_kind) }),
    h("h3", { text: t("policy") }),
    r.policy_text ? h("div", { class: "policy" }, plainWords(r.policy_text)) : h("p", { text: t("noPolicy") }),
    h("details", {}, h("summary", { text: `${t("fields")} (${num(r.fields.length)})` }), fieldsTable(r.fields)));
}

async function manifest() {
  const { routes } = await api("/v1/manifest");
  page(t("manifest"), routes.map(routeCard));
}

const RENDER = { overview, "dead-letters": deadLetters, record, checkpoint, log, history, manifest };

document.documentElement.lang = lang;
document.getElementById("skip").textContent = t("skip");
document.getElementById("nav").setAttribute("aria-label", t("views"));
document.getElementById("skip").addEventListener("click", (e) => {
  e.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", show);
start();
