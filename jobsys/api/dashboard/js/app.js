// The dashboard's shell: sign-in, the hash router, and the timers of the current view.

import { api, getToken, setToken, setUnauthorizedHandler } from "./api.js";
import { h, refreshTimes } from "./ui.js";
import * as overview from "./overview.js";
import * as jobs from "./jobs.js";
import * as job from "./job.js";
import * as deadLetter from "./dead_letter.js";
import * as workers from "./workers.js";
import * as workflow from "./workflow.js";

// route name -> view module; each exports mount(root, params, ctx).
const ROUTES = {
  overview,
  jobs,
  job,
  "dead-letter": deadLetter,
  workers,
  workflow,
};

/** What the views get: the caller's role and a way to run code periodically. */
const ctx = {
  role: "unknown",
  timers: [],
  /** Run fn now and then every `ms` (until the view changes); skips while one is running. */
  every(ms, fn) {
    let busy = false;
    const tick = async () => {
      if (busy || document.hidden) return;
      busy = true;
      try {
        await fn();
      } finally {
        busy = false;
      }
    };
    tick();
    this.timers.push(setInterval(tick, ms));
  },
  isAdmin() {
    return this.role === "admin" || this.role === "open" || this.role === "unknown";
  },
  navigate(hash) {
    window.location.hash = hash;
  },
};

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = Object.fromEntries(new URLSearchParams(query));
  if (parts.length === 0) return { name: "overview", params };
  if (parts[0] === "job" && parts[1]) return { name: "job", params: { ...params, id: parts[1] } };
  if (parts[0] === "workflow" && parts[1]) return { name: "workflow", params: { ...params, id: parts[1] } };
  return { name: ROUTES[parts[0]] ? parts[0] : "not-found", params };
}

let generation = 0;

async function render() {
  for (const t of ctx.timers) clearInterval(t);
  ctx.timers = [];
  const gen = ++generation;
  const { name, params } = parseHash();
  for (const a of document.querySelectorAll("#nav a")) {
    const active = a.dataset.route === name || (name === "job" && a.dataset.route === "jobs");
    a.classList.toggle("active", active);
  }
  const root = document.getElementById("view");
  root.replaceChildren();
  root.dataset.view = name;
  const view = ROUTES[name];
  if (!view) {
    root.append(h("div.empty", {}, h("strong", {}, "No such page"), h("p", {}, h("a", { href: "#/" }, "Back to the overview"))));
    return;
  }
  document.title = `${view.TITLE || name} · jobsys`;
  // A view checks `alive()` after each await, so a slow answer for a page the user
  // has left never draws over the next one.
  await view.mount(root, params, { ...ctx, alive: () => gen === generation, timers: ctx.timers });
}

// ---- sign-in ----------------------------------------------------------------------

let signingIn = null;

function showTokenDialog(message) {
  const dialog = document.getElementById("token-dialog");
  const error = document.getElementById("token-error");
  error.hidden = !message;
  error.textContent = message || "";
  document.getElementById("token-input").value = "";
  if (!dialog.open) dialog.showModal();
  if (!signingIn) {
    signingIn = new Promise((resolve) => {
      document.getElementById("token-form").onsubmit = () => {
        setToken(document.getElementById("token-input").value.trim());
        resolve();
      };
    }).then(async () => {
      signingIn = null;
      await whoami();
      render();
    });
  }
  return signingIn;
}

/** Ask the API who we are; 401 -> the token prompt; no /auth/whoami -> auth is off. */
async function whoami() {
  try {
    const me = await api("/auth/whoami");
    ctx.role = (me && me.role) || "unknown";
  } catch (e) {
    if (e.status === 401) {
      // A stored token that no longer works is dropped before asking again.
      const had = Boolean(getToken());
      setToken("");
      await showTokenDialog(had ? "That token was refused (401). Try another." : "");
      return;
    }
    ctx.role = e.missingEndpoint ? "open" : "unknown";
  }
  drawSession();
}

function drawSession() {
  const session = document.getElementById("session");
  const notices = document.getElementById("notices");
  session.replaceChildren();
  notices.replaceChildren();
  if (ctx.role !== "open" && ctx.role !== "unknown") {
    session.append(h(`span.role.role-${ctx.role}`, { "data-testid": "role" }, ctx.role));
  }
  if (getToken()) {
    session.append(
      h("button.ghost.small", {
        onclick: () => {
          setToken("");
          ctx.role = "unknown";
          whoami().then(render);
        },
      }, "Sign out"),
    );
  }
  if (ctx.role !== "admin" && ctx.role !== "open" && ctx.role !== "unknown") {
    notices.append(
      h("div.banner.banner-warn", { "data-testid": "role-notice" },
        h("strong", {}, `Signed in as ${ctx.role}. `),
        "You can look at everything; admin actions (cancel, retry, purge) will be refused (403)."),
    );
  }
}

setUnauthorizedHandler((err) => {
  // whoami handles its own 401 (it is how sign-in starts).
  if (!signingIn && err.path !== "/auth/whoami") {
    const had = Boolean(getToken());
    setToken("");
    showTokenDialog(had ? "The API refused the token (401). Sign in again." : "");
  }
});

window.addEventListener("hashchange", render);
setInterval(() => refreshTimes(), 1000);

whoami().then(() => {
  if (!signingIn) render();
});
