// Overview: live counts per queue, workers alive and the throughput chart: redrawn on
// the queues' events (GET /events, at most once a second) and every 10 s (workers).

import { api } from "./api.js";
import { mergeThroughput, throughputChart } from "./chart.js";
import { duration, empty, errorBanner, fmtInt, h, notAvailable, toast } from "./ui.js";

export const TITLE = "Overview";
const REFRESH_MS = 10000;
// Fewest ms between two redraws caused by events.
const EVENT_REDRAW_MS = 1000;
// Most queues followed (GET /events takes up to 16).
const MAX_FOLLOWED = 16;

function sum(queues, field) {
  if (!queues.length || !queues.some((q) => field in q)) return null;
  return queues.reduce((a, q) => a + (q[field] || 0), 0);
}

function card(label, value, { hint = "", testid = "", tone = "" } = {}) {
  return h(
    `div.card.stat${tone ? `.tone-${tone}` : ""}`,
    { "data-testid": testid || null },
    h("div.stat-label", {}, label),
    h("div.stat-value", {}, value),
    hint ? h("div.stat-hint", {}, hint) : null,
  );
}

export async function mount(root, _params, ctx) {
  const banner = h("div");
  const cards = h("div.cards");
  const chart = h("div.card-body");
  const table = h("div");
  const updated = h("span.muted.small", { "data-testid": "updated" }, "");
  const dot = h("span.dot");
  root.append(
    h("div.page-head", {}, h("h1", {}, "Overview"), h("div.live", {}, dot, "live ", updated)),
    banner,
    cards,
    h("section.card", {}, h("div.card-head", {}, h("h2", {}, "Throughput"), h("span.muted.small", {}, "jobs finished per minute, last 15 minutes, all queues"),
      h("span.legend", {}, h("i.sw.completed"), "completed", h("i.sw.failed"), "failed")), chart),
    h("section.card", {}, h("div.card-head", {}, h("h2", {}, "Queues")), table),
  );

  let followed = "";
  let stopFollowing = null;
  let pollingFast = false;
  let redrawAt = 0;
  let timer = null;
  const onEvent = () => {
    // Coalesce a burst of events into one redraw per EVENT_REDRAW_MS.
    if (timer) return;
    const wait = Math.max(0, redrawAt + EVENT_REDRAW_MS - Date.now());
    timer = setTimeout(() => { timer = null; redraw(); }, wait);
  };
  // Follow the events of every queue; past MAX_FOLLOWED queues, redraw every 2 s instead.
  const follow = (queues) => {
    const names = queues.map((x) => x.name).sort();
    if (names.length > MAX_FOLLOWED) {
      if (stopFollowing) stopFollowing();
      stopFollowing = null;
      followed = "";
      if (!pollingFast) {
        pollingFast = true;
        ctx.every(2000, redraw);
      }
      return;
    }
    if (!names.length || names.join(",") === followed) return;
    if (stopFollowing) stopFollowing();
    followed = names.join(",");
    stopFollowing = ctx.onEvents(names, onEvent, { fallbackMs: 2000 });
  };
  const redraw = async () => {
    redrawAt = Date.now();
    const [q, w] = await Promise.allSettled([api("/queues"), api("/workers")]);
    if (!ctx.alive()) return;
    banner.replaceChildren();
    dot.classList.toggle("stale", q.status === "rejected");
    if (q.status === "rejected") {
      banner.append(errorBanner(q.reason, "Queues"));
      // Try again in 2 s (no event may come to redraw it).
      if (!timer) timer = setTimeout(() => { timer = null; if (ctx.alive()) redraw(); }, 2000);
      return; // keep the last good numbers on screen
    }
    const queues = q.value.queues || [];
    if (!pollingFast) follow(queues);
    let workersValue = "n/a";
    let workersHint = "GET /workers not available";
    if (w.status === "fulfilled") {
      const live = w.value.workers || [];
      workersValue = fmtInt(live.length);
      workersHint = `${fmtInt(live.reduce((a, x) => a + (x.concurrency || 0), 0))} slots`;
    } else if (!w.reason.missingEndpoint) {
      workersHint = `error: ${w.reason.message}`;
    }
    const dead = sum(queues, "dead");
    const ages = queues.map((x) => x.oldest_age_seconds).filter((x) => typeof x === "number");
    const hasAges = queues.some((x) => "oldest_age_seconds" in x);
    cards.replaceChildren(
      card("Ready", fmtInt(sum(queues, "depth") ?? 0), { testid: "stat-ready", hint: `${queues.length} queue${queues.length === 1 ? "" : "s"}` }),
      card("In flight", fmtInt(sum(queues, "in_flight") ?? 0), { testid: "stat-in-flight", tone: "blue" }),
      card("Scheduled", fmtInt(sum(queues, "scheduled") ?? 0), { testid: "stat-scheduled" }),
      card("Dead", dead === null ? "n/a" : fmtInt(dead), { testid: "stat-dead", tone: dead ? "red" : "", hint: dead === null ? "not reported by this API" : "" }),
      card("Oldest waiting", hasAges ? (ages.length ? duration(Math.max(...ages)) : "—") : "n/a", { testid: "stat-oldest", hint: hasAges ? "" : "not reported by this API" }),
      card("Workers alive", workersValue, { testid: "stat-workers", hint: workersHint, tone: workersValue === "0" ? "red" : "" }),
    );
    const series = mergeThroughput(queues);
    if (!queues.some((x) => "throughput" in x)) {
      chart.replaceChildren(notAvailable("Throughput", "per-minute throughput", "GET /queues has no throughput field"));
    } else if (!series.length) {
      chart.replaceChildren(empty("No jobs finished in the last 15 minutes"));
    } else {
      chart.replaceChildren(throughputChart(series));
    }
    table.replaceChildren(queueTable(queues, ctx));
    updated.textContent = `· updated ${new Date().toLocaleTimeString("en-GB")}`;
  };
  ctx.every(REFRESH_MS, redraw);
  ctx.redraw = redraw;  // after a pause or resume, which makes no job event
}

// Pause or resume a queue (flow control, docs/flow-control.md); admin only.
async function setPaused(name, paused, button, done) {
  button.disabled = true;
  try {
    await api(`/queues/${encodeURIComponent(name)}/${paused ? "pause" : "resume"}`, { method: "POST" });
    toast(paused ? `Queue ${name} paused` : `Queue ${name} resumed`);
    if (done) done();
  } catch (e) {
    toast(`${e.message}${e.detail ? `: ${e.detail}` : ""}`, "error");
    button.disabled = false;
  }
}

// The queue's limits in words: "50/10s · 2 per key · call-api: 5/60s".
function limitsText(limits) {
  if (!limits) return "";
  const one = (l) => [
    l.rate ? `${l.rate.limit}/${l.rate.period_seconds}s` : "",
    l.concurrency ? `${l.concurrency} per key` : "",
    l.hold_until ? `held until ${new Date(l.hold_until).toLocaleTimeString("en-GB")}` : "",
  ].filter(Boolean).join(", ");
  const parts = [one(limits), ...Object.entries(limits.tasks || {}).map(([t, l]) => `${t}: ${one(l)}`)];
  return parts.filter(Boolean).join(" · ") || "—";
}

function pauseButton(q, ctx) {
  const admin = ctx.isAdmin();
  const paused = Boolean(q.paused);
  return h(
    "button.small",
    {
      "data-testid": `pause-${q.name}`,
      disabled: !admin,
      title: admin ? null : "needs an admin token",
      onclick: (ev) => setPaused(q.name, !paused, ev.currentTarget, ctx.redraw),
    },
    paused ? "Resume" : "Pause",
  );
}

function queueTable(queues, ctx) {
  if (!queues.length) return empty("No queues yet", "A queue appears when its first job is submitted.");
  const max = Math.max(1, ...queues.map((q) => q.depth || 0));
  const rows = [...queues]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((q) =>
      h(
        "tr",
        { "data-queue": q.name },
        h("td", {}, h("a", { href: `#/jobs?queue=${encodeURIComponent(q.name)}` }, q.name), q.paused ? h("span.badge.status-cancelling", { "data-testid": `paused-${q.name}` }, "paused") : null),
        h("td.num", { "data-col": "depth" }, h("div.depth", {}, h("span.bar", { style: { width: `${Math.round(((q.depth || 0) / max) * 100)}%` } }), h("span", {}, fmtInt(q.depth)))),
        h("td.num", { "data-col": "in_flight" }, fmtInt(q.in_flight)),
        h("td.num", { "data-col": "scheduled" }, fmtInt(q.scheduled)),
        h("td.num", { "data-col": "dead" }, "dead" in q ? (q.dead ? h("a.dead-link", { href: `#/dead-letter?queue=${encodeURIComponent(q.name)}` }, fmtInt(q.dead)) : "0") : h("span.muted", {}, "n/a")),
        h("td.num", { "data-col": "oldest" }, "oldest_age_seconds" in q ? duration(q.oldest_age_seconds) : h("span.muted", {}, "n/a")),
        h("td.small", { "data-col": "limits" }, "limits" in q ? limitsText(q.limits) : h("span.muted", {}, "n/a")),
        h("td", { "data-col": "flow" }, "paused" in q ? pauseButton(q, ctx) : null),
      ),
    );
  return h(
    "table.grid-table",
    { "data-testid": "queues-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Queue"), h("th.num", {}, "Ready"), h("th.num", {}, "In flight"), h("th.num", {}, "Scheduled"), h("th.num", {}, "Dead"), h("th.num", {}, "Oldest waiting"), h("th", {}, "Limits"), h("th", {}, ""))),
    h("tbody", {}, rows),
  );
}
