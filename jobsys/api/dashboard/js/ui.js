// Small DOM helpers shared by the views: element builder, badges, times, banners.

/**
 * h("a.link", {href: "#/"}, "text", child...) -> an element. Attributes starting
 * with "on" are event listeners; `style` is an object ({width: "5%"}); `null`/`false`
 * children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const node = document.createElement(name || "div");
  if (classes.length) node.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "class") node.className += ` ${v}`;
    // Through the CSSOM: the Content-Security-Policy refuses style="" attributes.
    else if (k === "style") Object.assign(node.style, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const STATUSES = ["queued", "scheduled", "processing", "completed", "failed", "cancelled", "waiting"];

/** A coloured status pill. */
export function badge(status) {
  return h(`span.badge.status-${status || "unknown"}`, { "data-status": status }, status || "?");
}

/** "12 s ago", "in 3 min"; `iso` an ISO-8601 time (or null -> "—"). */
export function relTime(iso, now = Date.now()) {
  if (!iso) return "—";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return String(iso);
  return relSeconds((now - t) / 1000);
}

function relSeconds(ago) {
  const future = ago < 0;
  let s = Math.abs(ago);
  let text;
  if (s < 1) return future ? "in a moment" : "just now";
  if (s < 60) text = `${Math.round(s)} s`;
  else if ((s /= 60) < 60) text = `${Math.round(s)} min`;
  else if ((s /= 60) < 48) text = `${Math.round(s)} h`;
  else text = `${Math.round(s / 24)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

/** A duration in seconds, short: "850 ms", "42 s", "3 min 5 s", "2 h 4 min". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A <time> whose text is relative and whose tooltip is the exact UTC time. */
export function timeCell(iso) {
  if (!iso) return h("span.muted", {}, "—");
  return h("time", { datetime: iso, title: iso, "data-rel": "1" }, relTime(iso));
}

/** Refresh every relative <time> under `root` (called once a second). */
export function refreshTimes(root = document) {
  for (const t of root.querySelectorAll("time[data-rel]")) {
    t.textContent = relTime(t.getAttribute("datetime"));
  }
}

export function shortId(id) {
  return id && id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

export function fmtInt(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
}

/** A banner for an error (an ApiError or anything thrown). */
export function errorBanner(err, what = "") {
  const status = err && err.status;
  let title;
  if (status === 0) title = "The API cannot be reached";
  else if (status === 503) title = "The API's Redis is unavailable (503)";
  else if (status === 401) title = "Not signed in (401)";
  else if (status === 403) title = "Not allowed (403): this needs an admin token";
  else if (status) title = `The API answered ${status}`;
  else title = "Something went wrong";
  const detail = err && (err.detail || err.error || err.message);
  return h(
    "div.banner.banner-error",
    { role: "alert" },
    h("strong", {}, what ? `${what}: ${title}` : title),
    detail ? h("span.detail", {}, ` — ${detail}`) : null,
  );
}

/** The panel content for an endpoint the API does not have yet (a 404 on its route). */
export function notAvailable(what, path, why = "it answered 404") {
  return h(
    "div.empty.not-available",
    { "data-testid": "not-available" },
    h("strong", {}, `${what}: not available`),
    h("p.muted", {}, `This API does not serve ${path} (${why}). Upgrade jobsys to see it.`),
  );
}

export function empty(title, text = "") {
  return h("div.empty", {}, h("strong", {}, title), text ? h("p.muted", {}, text) : null);
}

/** A transient message at the bottom right. */
export function toast(text, kind = "ok") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts" });
    document.body.append(box);
  }
  const t = h(`div.toast.toast-${kind}`, { role: "status" }, text);
  box.append(t);
  setTimeout(() => t.remove(), 4000);
}

/** Ask for confirmation in the page's <dialog>; resolves to true or false. */
export function confirmDialog(title, text, okLabel = "Confirm") {
  const dialog = document.getElementById("confirm-dialog");
  dialog.querySelector("#confirm-title").textContent = title;
  dialog.querySelector("#confirm-text").textContent = text;
  dialog.querySelector("#confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

/** Pretty JSON in a <pre>, or a muted dash. */
export function jsonBlock(value, present = true) {
  if (!present) return h("span.muted", {}, "—");
  return h("pre.json", {}, JSON.stringify(value, null, 2));
}
