// The throughput chart: completed and failed jobs per minute, stacked bars in inline SVG.

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

/** A "nice" axis maximum at or above `n` (1, 2, 5 × 10^k). */
function niceMax(n) {
  if (n <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

function hhmm(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString().slice(11, 16);
}

/**
 * series: [{minute: iso, completed: n, failed: n}, ...], oldest first.
 * Returns an <svg> that scales to its container's width.
 */
export function throughputChart(series) {
  const W = 1200;
  const H = 240;
  const pad = { l: 44, r: 12, t: 12, b: 28 };
  const iw = W - pad.l - pad.r;
  const ih = H - pad.t - pad.b;
  const max = niceMax(Math.max(0, ...series.map((p) => (p.completed || 0) + (p.failed || 0))));
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "aria-label": "Completed and failed jobs per minute",
    "data-testid": "throughput-chart",
  });
  const y = (v) => pad.t + ih - (v / max) * ih;
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    svg.append(s("line", { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(s("text", { x: pad.l - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, Number.isInteger(v) ? v : v.toFixed(1)));
  }
  const n = Math.max(series.length, 1);
  const slot = iw / n;
  const bw = Math.max(2, Math.min(48, slot * 0.62));
  series.forEach((p, i) => {
    const x = pad.l + i * slot + (slot - bw) / 2;
    const c = p.completed || 0;
    const f = p.failed || 0;
    const g = s("g", { class: "bar" });
    g.append(s("title", {}, `${hhmm(p.minute)} UTC — ${c} completed, ${f} failed`));
    // A transparent full-height target makes the tooltip easy to hit.
    g.append(s("rect", { x: pad.l + i * slot, y: pad.t, width: slot, height: ih, class: "hit" }));
    if (c > 0) g.append(s("rect", { x, y: y(c), width: bw, height: y(0) - y(c), rx: 2, class: "completed" }));
    if (f > 0) g.append(s("rect", { x, y: y(c + f), width: bw, height: y(c) - y(c + f), rx: 2, class: "failed" }));
    svg.append(g);
    const every = Math.ceil(n / 8);
    if (i % every === 0 || i === n - 1) {
      svg.append(s("text", { x: pad.l + i * slot + slot / 2, y: H - 8, class: "axis", "text-anchor": "middle" }, hhmm(p.minute)));
    }
  });
  svg.append(s("line", { x1: pad.l, x2: W - pad.r, y1: y(0), y2: y(0), class: "baseline" }));
  return svg;
}

/** Sum per-queue throughput lists into one list per minute, oldest first. */
export function mergeThroughput(queues) {
  const byMinute = new Map();
  for (const q of queues) {
    for (const p of q.throughput || []) {
      const cur = byMinute.get(p.minute) || { minute: p.minute, completed: 0, failed: 0 };
      cur.completed += p.completed || 0;
      cur.failed += p.failed || 0;
      byMinute.set(p.minute, cur);
    }
  }
  return [...byMinute.values()].sort((a, b) => (a.minute < b.minute ? -1 : 1));
}
