// Dead letter: jobs that used up their retries; retry one, retry or purge all that match.

import { api } from "./api.js";
import { confirmDialog, empty, errorBanner, fmtInt, h, notAvailable, shortId, timeCell, toast } from "./ui.js";

export const TITLE = "Dead letter";
const PAGE = 50;

export async function mount(root, params, ctx) {
  const filters = { task: params.task || "", queue: params.queue || "" };
  const filtered = Boolean(filters.task || filters.queue);
  const banner = h("div");
  const body = h("div");
  const total = h("span.count", { "data-testid": "dead-total" }, "");
  const admin = ctx.isAdmin();
  const adminTitle = admin ? null : "needs an admin token";

  const taskIn = h("input", { name: "task", placeholder: "task", value: filters.task, "aria-label": "Task" });
  const queueIn = h("input", { name: "queue", placeholder: "queue", value: filters.queue, "aria-label": "Queue" });
  const apply = (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (taskIn.value.trim()) q.set("task", taskIn.value.trim());
    if (queueIn.value.trim()) q.set("queue", queueIn.value.trim());
    const next = `#/dead-letter${q.toString() ? `?${q}` : ""}`;
    if (window.location.hash === next) load(true);
    else ctx.navigate(next);
  };

  // The body that selects "everything matching the filter" for retry and purge.
  const selection = () => (filtered
    ? Object.fromEntries(Object.entries(filters).filter(([, v]) => v))
    : { all: true });
  const scope = filtered
    ? `every dead job${filters.task ? ` of task "${filters.task}"` : ""}${filters.queue ? ` in queue "${filters.queue}"` : ""}`
    : "every dead job";

  async function bulk(kind) {
    const n = total.dataset.n || "?";
    const ok = kind === "retry"
      ? await confirmDialog("Retry all matching?", `Requeue ${scope} (${n}) with fresh attempts.`, "Retry all")
      : await confirmDialog("Purge the dead letter?", `Delete ${scope} (${n}) for good. This cannot be undone.`, "Purge");
    if (!ok) return;
    try {
      const r = await api(`/dead-letter/${kind}`, { method: "POST", body: selection() });
      toast(kind === "retry" ? `${fmtInt(r.retried)} job(s) requeued` : `${fmtInt(r.purged)} job(s) purged`);
      await load(true);
    } catch (e) {
      banner.replaceChildren(errorBanner(e, kind === "retry" ? "Retry" : "Purge"));
    }
  }

  async function retryOne(id, button) {
    button.disabled = true;
    try {
      const r = await api("/dead-letter/retry", { method: "POST", body: { ids: [id] } });
      if (r.retried) {
        toast("Job requeued");
        const row = button.closest("tr");
        row.classList.add("done");
        button.replaceWith(h("a", { href: `#/job/${encodeURIComponent(id)}` }, "requeued →"));
        const n = Math.max(0, Number(total.dataset.n || 1) - 1);
        total.dataset.n = n;
        total.textContent = `${fmtInt(n)} dead`;
      } else {
        toast("Not retried: the job is no longer in the dead letter", "warn");
        button.disabled = false;
      }
    } catch (e) {
      button.disabled = false;
      banner.replaceChildren(errorBanner(e, "Retry"));
    }
  }

  root.append(
    h("div.page-head", {}, h("h1", {}, "Dead letter ", total),
      h("div.toolbar", {},
        h("button", { onclick: () => bulk("retry"), "data-testid": "retry-all", disabled: !admin, title: adminTitle }, filtered ? "Retry all matching filter" : "Retry all"),
        h("button.danger", { onclick: () => bulk("purge"), "data-testid": "purge", disabled: !admin, title: adminTitle }, filtered ? "Purge matching" : "Purge"))),
    h("form.filters", { onsubmit: apply }, taskIn, queueIn, h("button.primary", { type: "submit" }, "Filter"),
      filtered ? h("a.clear", { href: "#/dead-letter" }, "Clear") : null),
    banner,
    body,
  );

  const tbody = h("tbody");
  const more = h("button", { "data-testid": "load-more" }, "Load more");
  let cursor = null;

  async function load(first) {
    let data;
    try {
      data = await api("/dead-letter", { query: { ...filters, limit: PAGE, cursor: first ? null : cursor } });
    } catch (e) {
      if (!ctx.alive()) return;
      if (e.missingEndpoint) {
        body.replaceChildren(notAvailable("The dead letter", "GET /dead-letter"));
        for (const b of root.querySelectorAll(".toolbar button")) b.disabled = true;
      } else {
        banner.replaceChildren(errorBanner(e, "Dead letter"));
      }
      return;
    }
    if (!ctx.alive()) return;
    banner.replaceChildren();
    cursor = data.next_cursor;
    total.dataset.n = data.total ?? "";
    total.textContent = typeof data.total === "number" ? `${fmtInt(data.total)} dead` : "";
    if (first) tbody.replaceChildren();
    for (const j of data.jobs || []) {
      const retry = h("button.small", { "data-testid": "retry", disabled: !admin, title: adminTitle }, "Retry");
      retry.addEventListener("click", () => retryOne(j.id, retry));
      tbody.append(h("tr", { "data-job": j.id },
        h("td.mono", {}, h("a", { href: `#/job/${encodeURIComponent(j.id)}`, title: j.id }, shortId(j.id))),
        h("td", {}, j.task),
        h("td", {}, j.queue || "default"),
        h("td.num", {}, j.attempts ?? "—"),
        h("td", {}, timeCell(j.failed_at)),
        h("td.error-cell", { title: j.error || "" }, h("code.error-text", {}, j.error || "—")),
        h("td.actions", {}, retry)));
    }
    if (!tbody.children.length) {
      body.replaceChildren(empty(filtered ? "No dead jobs match" : "The dead letter is empty", filtered ? "Try other filters." : "Jobs land here when they fail every attempt."));
      return;
    }
    body.replaceChildren(
      h("table.grid-table", { "data-testid": "dead-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Job"), h("th", {}, "Task"), h("th", {}, "Queue"), h("th.num", {}, "Attempts"), h("th", {}, "Failed"), h("th", {}, "Last error"), h("th", {}, ""))),
        tbody),
      h("div.pager", {}, h("span.muted.small", {}, `${tbody.children.length} shown`), cursor ? more : null),
    );
  }
  more.addEventListener("click", () => load(false));
  await load(true);
}
