// Jobs: the newest jobs first, filtered by status, task and queue, paged with a cursor.

import { api } from "./api.js";
import { STATUSES, badge, empty, errorBanner, h, notAvailable, shortId, timeCell } from "./ui.js";

export const TITLE = "Jobs";
const PAGE = 50;

/** The time of a job's latest change, for the "Last change" column. */
export function lastChange(j) {
  return j.completed_at || j.failed_at || j.cancelled_at || j.started_at || j.run_at || j.created_at;
}

export function jobRow(j) {
  const progress = typeof j.progress === "number" && j.status === "processing"
    ? h("span.progress.inline", { title: j.progress_message || "" }, h("span", { style: { width: `${Math.round(j.progress * 100)}%` } }))
    : null;
  return h(
    "tr",
    { "data-job": j.id },
    h("td.mono", {}, h("a", { href: `#/job/${encodeURIComponent(j.id)}`, title: j.id }, shortId(j.id))),
    h("td", {}, badge(j.status), progress),
    h("td", {}, j.task),
    h("td", {}, j.queue || "default"),
    h("td.num", {}, j.attempts ?? 0),
    h("td", {}, timeCell(j.created_at)),
    h("td", {}, timeCell(lastChange(j))),
  );
}

export async function mount(root, params, ctx) {
  const filters = { status: params.status || "", task: params.task || "", queue: params.queue || "" };
  const banner = h("div");
  const body = h("div");

  const statusSel = h("select", { name: "status", "aria-label": "Status" }, h("option", { value: "" }, "any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s)));
  const taskIn = h("input", { name: "task", placeholder: "task", value: filters.task, "aria-label": "Task" });
  const queueIn = h("input", { name: "queue", placeholder: "queue", value: filters.queue, list: "queue-names", "aria-label": "Queue" });
  const queueList = h("datalist", { id: "queue-names" });
  const apply = (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of [["status", statusSel.value], ["task", taskIn.value.trim()], ["queue", queueIn.value.trim()]]) if (v) q.set(k, v);
    const next = `#/jobs${q.toString() ? `?${q}` : ""}`;
    if (window.location.hash === next) load(true);
    else ctx.navigate(next);
  };
  statusSel.addEventListener("change", apply);
  const lookup = h("input", { name: "id", placeholder: "job id", "aria-label": "Job id", class: "mono" });

  root.append(
    h("div.page-head", {}, h("h1", {}, "Jobs"),
      h("form.lookup", { onsubmit: (e) => { e.preventDefault(); const id = lookup.value.trim(); if (id) ctx.navigate(`#/job/${encodeURIComponent(id)}`); } },
        lookup, h("button", { type: "submit" }, "Open"))),
    h("form.filters", { onsubmit: apply, "data-testid": "job-filters" },
      statusSel, taskIn, queueIn, queueList,
      h("button.primary", { type: "submit" }, "Filter"),
      (filters.status || filters.task || filters.queue) ? h("a.clear", { href: "#/jobs" }, "Clear") : null),
    banner,
    body,
  );

  api("/queues").then((d) => {
    for (const q of d.queues || []) queueList.append(h("option", { value: q.name }));
  }).catch(() => {});

  const tbody = h("tbody");
  const more = h("button", { "data-testid": "load-more" }, "Load more");
  let cursor = null;

  async function load(first) {
    more.disabled = true;
    let data;
    try {
      data = await api("/jobs", { query: { ...filters, limit: PAGE, cursor: first ? null : cursor } });
    } catch (e) {
      if (!ctx.alive()) return;
      more.disabled = false;
      if (e.missingEndpoint) body.replaceChildren(notAvailable("The job list", "GET /jobs"), h("p.muted", {}, "You can still open a job by its id above."));
      else banner.replaceChildren(errorBanner(e, "Jobs"));
      return;
    }
    if (!ctx.alive()) return;
    banner.replaceChildren();
    cursor = data.next_cursor;
    if (first) tbody.replaceChildren();
    for (const j of data.jobs || []) tbody.append(jobRow(j));
    if (!tbody.children.length) {
      body.replaceChildren(empty("No jobs match", filters.status || filters.task || filters.queue ? "Try other filters." : "Submit a job to see it here."));
      return;
    }
    body.replaceChildren(
      h("table.grid-table", { "data-testid": "jobs-table" },
        h("thead", {}, h("tr", {}, ["Job", "Status", "Task", "Queue", "Attempts", "Created", "Last change"].map((t, i) => h(i === 4 ? "th.num" : "th", {}, t)))),
        tbody),
      h("div.pager", {}, h("span.muted.small", {}, `${tbody.children.length} shown`), cursor ? more : null),
    );
    more.disabled = false;
  }
  more.addEventListener("click", () => load(false));
  await load(true);
}
