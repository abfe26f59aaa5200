// One job: its state, payload, result, errors and attempt history; Cancel while it can run.

import { api } from "./api.js";
import { badge, confirmDialog, duration, errorBanner, h, jsonBlock, timeCell, toast } from "./ui.js";

export const TITLE = "Job";
const REFRESH_MS = 2000;
const ENDED = new Set(["completed", "failed", "cancelled"]);

function field(label, value, testid = null) {
  return h("div.field", { "data-field": testid }, h("dt", {}, label), h("dd", {}, value ?? h("span.muted", {}, "—")));
}

function seconds(a, b) {
  const t = (Date.parse(b) - Date.parse(a)) / 1000;
  return Number.isFinite(t) && t >= 0 ? duration(t) : null;
}

export async function mount(root, params, ctx) {
  const id = params.id;
  const banner = h("div");
  const view = h("div");
  root.append(
    h("div.crumbs", {}, h("a", { href: "#/jobs" }, "Jobs"), " / ", h("span.mono", {}, id)),
    banner,
    view,
  );
  let last = null;

  async function cancel() {
    const running = last.status === "processing";
    const ok = await confirmDialog(
      "Cancel this job?",
      running
        ? "The job is running: its worker is asked to stop it (a handler that runs in a thread stops only if it checks cancel_requested)."
        : "The job has not started: it is cancelled at once and will never run.",
      "Cancel job",
    );
    if (!ok) return;
    try {
      last = await api(`/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
      toast(last.status === "cancelled" ? "Job cancelled" : "Cancellation requested");
      draw(last);
    } catch (e) {
      banner.replaceChildren(errorBanner(e, "Cancel"));
    }
  }

  function draw(j) {
    const canCancel = !ENDED.has(j.status) && !j.cancel_requested;
    const maxAttempts = typeof j.max_retries === "number" ? j.max_retries + 1 : null;
    const head = h("div.page-head", {},
      h("h1", {}, j.task, " ", badge(j.status), j.cancel_requested && !ENDED.has(j.status) ? h("span.badge.status-cancelling", {}, "cancel requested") : null),
      canCancel ? h("button.danger", { onclick: cancel, "data-testid": "cancel", disabled: !ctx.isAdmin(), title: ctx.isAdmin() ? null : "needs an admin token" }, "Cancel job") : null);
    const progress = typeof j.progress === "number"
      ? h("div.card", { "data-testid": "progress" }, h("div.card-head", {}, h("h2", {}, "Progress"), h("span.muted", {}, `${Math.round(j.progress * 100)}%${j.progress_message ? ` — ${j.progress_message}` : ""}`)),
        h("div.progress", {}, h("span", { style: { width: `${Math.round(j.progress * 100)}%` } })))
      : null;
    const facts = h("dl.facts", {},
      field("Status", badge(j.status), "status"),
      field("Task", j.task, "task"),
      field("Queue", h("a", { href: `#/jobs?queue=${encodeURIComponent(j.queue || "default")}` }, j.queue || "default"), "queue"),
      field("Attempts", maxAttempts ? `${j.attempts ?? 0} of ${maxAttempts}` : String(j.attempts ?? 0), "attempts"),
      j.priority ? field("Priority", String(j.priority)) : null,
      field("Worker", j.worker ? h("span.mono", {}, j.worker) : null, "worker"),
      field("Created", timeCell(j.created_at), "created_at"),
      j.run_at ? field("Runs at", timeCell(j.run_at)) : null,
      field("Started", timeCell(j.started_at), "started_at"),
      j.next_attempt_at ? field("Next attempt", timeCell(j.next_attempt_at)) : null,
      j.completed_at ? field("Completed", h("span", {}, timeCell(j.completed_at), j.started_at ? h("span.muted", {}, ` (ran ${seconds(j.started_at, j.completed_at)})`) : null), "completed_at") : null,
      j.failed_at ? field("Failed", timeCell(j.failed_at), "failed_at") : null,
      j.cancelled_at ? field("Cancelled", timeCell(j.cancelled_at), "cancelled_at") : null,
      j.replayed ? field("Retried from dead letter", h("span", {}, `${j.replayed}× `, timeCell(j.replayed_at))) : null,
      j.timeout_seconds ? field("Timeout", duration(j.timeout_seconds)) : null,
      j.schedule ? field("Schedule", `${j.schedule}${j.tick ? ` (tick ${j.tick})` : ""}`) : null,
      j.depends_on ? field("Depends on", h("span", {}, j.depends_on.map((p, i) => [i ? ", " : "", h("a.mono", { href: `#/job/${p}` }, p.slice(0, 8))]), j.waiting_on ? h("span.muted", {}, ` (${j.waiting_on} not ended)`) : null), "depends_on") : null,
      j.batch || j.batch_callback ? field(j.batch ? "Batch" : "Callback of batch", h("span.mono", {}, j.batch || j.batch_callback), "batch") : null,
    );
    const history = Array.isArray(j.history) && j.history.length
      ? h("section.card", { "data-testid": "history" }, h("div.card-head", {}, h("h2", {}, "Failed attempts")),
        h("table.grid-table", {},
          h("thead", {}, h("tr", {}, h("th.num", {}, "#"), h("th", {}, "Worker"), h("th", {}, "Started"), h("th", {}, "Ran"), h("th", {}, "Error"))),
          h("tbody", {}, j.history.map((a) => h("tr", {},
            h("td.num", {}, a.attempt ?? ""), h("td.mono", {}, a.worker || "—"), h("td", {}, timeCell(a.started_at)),
            h("td", {}, seconds(a.started_at, a.ended_at) || "—"), h("td", {}, h("code.error-text", {}, a.error || "")))))))
      : null;
    view.replaceChildren(...[
      head,
      progress,
      j.error ? h("div.banner.banner-error", { "data-testid": "job-error" }, h("strong", {}, j.status === "failed" ? "Last error: " : "Error of the last attempt: "), h("code", {}, j.error)) : null,
      h("div.two-col", {},
        h("section.card", {}, h("div.card-head", {}, h("h2", {}, "Details")), facts),
        h("div", {},
          h("section.card", {}, h("div.card-head", {}, h("h2", {}, "Payload")), jsonBlock(j.payload, "payload" in j)),
          h("section.card", { "data-testid": "result" }, h("div.card-head", {}, h("h2", {}, "Result")), jsonBlock(j.result, "result" in j)))),
      history,
      h("details.raw", {}, h("summary", {}, "Raw JSON"), jsonBlock(j)),
    ].filter(Boolean));
  }

  ctx.every(REFRESH_MS, async () => {
    if (last && ENDED.has(last.status)) return; // a finished job no longer changes
    try {
      const j = await api(`/jobs/${encodeURIComponent(id)}`);
      if (!ctx.alive()) return;
      banner.replaceChildren();
      // Redraw only on change, so an open <details> or a text selection survives.
      if (!last || JSON.stringify(j) !== JSON.stringify(last)) {
        last = j;
        draw(j);
      }
    } catch (e) {
      if (!ctx.alive()) return;
      if (e.status === 404 && !e.missingEndpoint) {
        view.replaceChildren(h("div.empty", { "data-testid": "job-missing" }, h("strong", {}, "No such job"),
          h("p.muted", {}, "Unknown id, or the job ended longer ago than its retention and was removed.")));
        last = { status: "completed" }; // stop polling
      } else {
        banner.replaceChildren(errorBanner(e, "Job"));
      }
    }
  });
}
