// One workflow (POST /workflows): its steps drawn as a graph, left to right, each
// step in the column of its depth (the longest chain of `after` before it), an
// arrow from every step it runs after; each box links to its job.

import { api } from "./api.js";
import { badge, errorBanner, h, timeCell } from "./ui.js";

export const TITLE = "Workflow";
const REFRESH_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const BOX_W = 170;
const BOX_H = 52;
const GAP_X = 70;
const GAP_Y = 22;

function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

/** Column (depth) and row of every step, by name. */
export function layout(steps) {
  const byName = new Map(steps.map((st) => [st.name, st]));
  const depth = new Map();
  const depthOf = (name) => {
    if (depth.has(name)) return depth.get(name);
    depth.set(name, 0); // a cycle cannot happen (the API refuses one); this stops one anyway
    const after = byName.get(name)?.after || [];
    const d = after.length ? 1 + Math.max(...after.map(depthOf)) : 0;
    depth.set(name, d);
    return d;
  };
  const rows = [];
  const place = new Map();
  for (const st of steps) {
    const col = depthOf(st.name);
    rows[col] = (rows[col] || 0) + 1;
    place.set(st.name, { col, row: rows[col] - 1 });
  }
  return place;
}

function graph(steps) {
  const place = layout(steps);
  const cols = Math.max(...[...place.values()].map((p) => p.col)) + 1;
  const rows = Math.max(...[...place.values()].map((p) => p.row)) + 1;
  const x = (p) => 10 + p.col * (BOX_W + GAP_X);
  const y = (p) => 10 + p.row * (BOX_H + GAP_Y);
  const width = 20 + cols * BOX_W + (cols - 1) * GAP_X;
  const height = 20 + rows * BOX_H + (rows - 1) * GAP_Y;
  const svg = s("svg", { class: "workflow-graph", width, height, viewBox: `0 0 ${width} ${height}`, "data-testid": "workflow-graph" },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto" },
      s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "wf-arrow-head" }))));
  for (const st of steps) {
    const to = place.get(st.name);
    for (const a of st.after) {
      const from = place.get(a);
      svg.append(s("line", { class: "wf-edge", x1: x(from) + BOX_W, y1: y(from) + BOX_H / 2, x2: x(to), y2: y(to) + BOX_H / 2, "marker-end": "url(#arrow)", "data-edge": `${a}->${st.name}` }));
    }
  }
  for (const st of steps) {
    const p = place.get(st.name);
    const status = st.status || "expired";
    svg.append(s("a", { href: `#/job/${st.id}`, "data-step": st.name, "data-status": status },
      s("rect", { class: `wf-box status-${status}`, x: x(p), y: y(p), width: BOX_W, height: BOX_H, rx: "8" }),
      s("text", { class: "wf-name", x: x(p) + 10, y: y(p) + 21 }, st.name),
      s("text", { class: "wf-task", x: x(p) + 10, y: y(p) + 40 }, `${st.task} · ${status}`)));
  }
  return svg;
}

export async function mount(root, params, ctx) {
  const id = params.id;
  const banner = h("div");
  const view = h("div");
  root.append(h("div.crumbs", {}, "Workflow ", h("span.mono", {}, id)), banner, view);
  let last = null;
  ctx.every(REFRESH_MS, async () => {
    if (last && last.status !== "running") return; // an ended workflow no longer changes
    try {
      const wf = await api(`/workflows/${encodeURIComponent(id)}`);
      if (!ctx.alive()) return;
      banner.replaceChildren();
      if (last && JSON.stringify(wf) === JSON.stringify(last)) return;
      last = wf;
      view.replaceChildren(
        h("div.page-head", {}, h("h1", {}, "Workflow ", badge(wf.status))),
        h("section.card", {}, h("div.card-head", {}, h("h2", {}, "Steps"), h("span.muted", {}, "queue ", wf.queue, " · created ", timeCell(wf.created_at))),
          h("div.workflow-scroll", {}, graph(wf.steps))),
        h("section.card", {}, h("table.grid-table", { "data-testid": "workflow-steps" },
          h("thead", {}, h("tr", {}, h("th", {}, "Step"), h("th", {}, "Task"), h("th", {}, "After"), h("th", {}, "Status"))),
          h("tbody", {}, wf.steps.map((st) => h("tr", { "data-step": st.name },
            h("td", {}, h("a", { href: `#/job/${st.id}` }, st.name)), h("td", {}, st.task),
            h("td", {}, st.after.join(", ") || "—"), h("td", {}, badge(st.status))))))),
      );
    } catch (e) {
      if (!ctx.alive()) return;
      if (e.status === 404 && !e.missingEndpoint) {
        view.replaceChildren(h("div.empty", { "data-testid": "workflow-missing" }, h("strong", {}, "No such workflow")));
        last = { status: "gone" };
      } else {
        banner.replaceChildren(errorBanner(e, "Workflow"));
      }
    }
  });
}
