// Workers: every live worker process, its queues, slots, current jobs and heartbeat.

import { api } from "./api.js";
import { empty, errorBanner, fmtInt, h, notAvailable, shortId, timeCell } from "./ui.js";

export const TITLE = "Workers";
const REFRESH_MS = 2000;

export async function mount(root, _params, ctx) {
  const banner = h("div");
  const body = h("div");
  root.append(h("div.page-head", {}, h("h1", {}, "Workers"), h("div.live", {}, h("span.dot"), "live · every 2 s")), banner, body);
  ctx.every(REFRESH_MS, async () => {
    let data;
    try {
      data = await api("/workers");
    } catch (e) {
      if (!ctx.alive()) return;
      if (e.missingEndpoint) body.replaceChildren(notAvailable("Workers", "GET /workers"));
      else banner.replaceChildren(errorBanner(e, "Workers"));
      return;
    }
    if (!ctx.alive()) return;
    banner.replaceChildren();
    const workers = data.workers || [];
    if (!workers.length) {
      body.replaceChildren(empty("No live workers", "Start one with: jobsys worker --queues default"));
      return;
    }
    body.replaceChildren(h("table.grid-table", { "data-testid": "workers-table" },
      h("thead", {}, h("tr", {}, ["Worker", "Host", "PID", "Queues", "Busy", "Current jobs", "Processed", "Failed", "Started", "Last heartbeat"].map((t) => h(/^(PID|Busy|Processed|Failed)$/.test(t) ? "th.num" : "th", {}, t)))),
      h("tbody", {}, workers.map((w) => {
        const current = w.current_jobs || [];
        return h("tr", { "data-worker": w.id },
          h("td.mono", {}, w.id),
          h("td", {}, w.host || "—"),
          h("td.num", {}, w.pid ?? "—"),
          h("td", {}, (w.queues || []).map((q) => h("span.chip", {}, q))),
          h("td.num", {}, `${current.length} / ${w.concurrency ?? "?"}`),
          h("td.mono", {}, current.length ? current.slice(0, 5).map((id) => h("a.chip", { href: `#/job/${encodeURIComponent(id)}`, title: id }, shortId(id))) : h("span.muted", {}, "idle"),
            current.length > 5 ? h("span.muted", {}, ` +${current.length - 5}`) : null),
          h("td.num", {}, fmtInt(w.processed)),
          h("td.num", {}, fmtInt(w.failed)),
          h("td", {}, timeCell(w.started_at)),
          h("td", {}, timeCell(w.last_heartbeat)));
      }))));
  });
}
