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
