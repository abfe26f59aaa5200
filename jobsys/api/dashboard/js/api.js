// The dashboard's only way to the HTTP API: adds the Bearer token, turns every
// non-2xx answer into an ApiError that carries the API's JSON {"error", "detail"}.

const TOKEN_KEY = "jobsys.token";

/** An answer other than 2xx, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(status, error, detail, path) {
    super(detail ? `${error}: ${detail}` : error);
    this.status = status;
    this.error = error;
    this.detail = detail;
    this.path = path;
  }

  /** True when the endpoint itself does not exist in this API (not merely an unknown id). */
  get missingEndpoint() {
    return this.status === 404 && /requested URL was not found/i.test(this.detail || "");
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// Called on every 401, so the app can ask for a (new) token.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** The API's base URL: the dashboard lives at <base>/dashboard/. */
const BASE = new URL("..", new URL(".", window.location.href)).pathname.replace(/\/$/, "");

/**
 * Call the API: `path` like "/queues"; `query` an object whose empty values are dropped.
 * Resolves to the parsed JSON body (null for 204); rejects with ApiError.
 */
export async function api(path, { method = "GET", query = null, body = undefined } = {}) {
  const url = new URL(BASE + path, window.location.origin);
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
    }
  }
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  // On every state-changing request, with a body or none: the API refuses others.
  if (method !== "GET" && method !== "HEAD") headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "API unreachable", `no answer from ${url.origin} (${e.message})`, path);
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text();
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const err = new ApiError(
      response.status,
      (data && data.error) || `HTTP ${response.status}`,
      (data && data.detail) || (data ? "" : text.slice(0, 200)),
      path,
    );
    if (response.status === 401) onUnauthorized(err);
    throw err;
  }
  return data;
}

/**
 * Follow GET /events for `queues` (Server-Sent Events read with fetch, so the Bearer
 * token goes along, which EventSource cannot send): `onEvent(data)` for each event;
 * reconnects with Last-Event-ID after a drop. Returns a function that stops it.
 * `onUnavailable(err)` is called once if the API has no /events (then nothing follows).
 */
export function followEvents(queues, { types = null, onEvent, onUnavailable = () => {} }) {
  const abort = new AbortController();
  let lastId = "";
  const url = new URL(BASE + "/events", window.location.origin);
  url.searchParams.set("queue", queues.join(","));
  if (types) url.searchParams.set("types", types.join(","));
  (async () => {
    while (!abort.signal.aborted) {
      const headers = { Accept: "text/event-stream" };
      const token = getToken();
      if (token) headers.Authorization = `Bearer ${token}`;
      if (lastId) headers["Last-Event-ID"] = lastId;
      try {
        const response = await fetch(url, { headers, cache: "no-store", signal: abort.signal });
        if (!response.ok) {
          onUnavailable(new ApiError(response.status, `HTTP ${response.status}`, "", "/events"));
          return;
        }
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const message = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let data = "";
            for (const line of message.split("\n")) {
              if (line.startsWith("id:")) lastId = line.slice(3).trim();
              else if (line.startsWith("data:")) data += line.slice(5).trim();
            }
            if (data) onEvent(JSON.parse(data));
          }
        }
      } catch (e) {
        if (abort.signal.aborted) return;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return () => abort.abort();
}
